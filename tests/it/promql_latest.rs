//! Prometheus's newest PromQL test scripts (`latest/`, Prometheus 3.x), run
//! for a report, not as a gate (issue 4): 3.x deliberately changed some
//! semantics (left-open windows, name removal), and native histograms are
//! out of scope. Cases that use native histograms are skipped; the rest are
//! run and counted, and the counts are printed.

use std::sync::Arc;

use raymon::model::Labels;
use raymon::promql::engine::{Engine, EngineOptions, Value};
use raymon::promql::parser::parse_expr;
use raymon::storage::Appendable;
use raymon::tsdb::{Head, HeadOptions};

use crate::promql_tests::{
    almost_equal, duration_ms, expand_item, parse_number, parse_series, script_lines, split_series,
    test_files,
};

#[derive(Default, Debug)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
    errors: Vec<String>,
}

fn signed_duration(s: &str) -> Result<i64, String> {
    match s.strip_prefix('-') {
        Some(rest) => duration_ms(rest).map(|d| -d),
        None => duration_ms(s),
    }
}

fn run(path: &std::path::Path, tally: &mut Tally) {
    let lines = script_lines(path);
    let eval_re = regex::Regex::new(
        r"^eval(?:_(fail|ordered|warn|info))?\s+(instant|range)\s+(?:at\s+(\S+)|from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+))\s+(.+)$",
    )
    .unwrap();
    let engine = Engine::new(EngineOptions::default());
    let mut head = Arc::new(Head::new(HeadOptions::default()));
    let mut histograms_loaded = false;
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].clone();
        if line.is_empty() {
            i += 1;
            continue;
        }
        let lineno = i + 1;
        let word = line.split_whitespace().next().unwrap_or("").to_string();
        if word == "clear" {
            head = Arc::new(Head::new(HeadOptions::default()));
            histograms_loaded = false;
            i += 1;
            continue;
        }
        let mut block = Vec::new();
        let mut j = i + 1;
        while j < lines.len() && !lines[j].is_empty() {
            block.push(lines[j].clone());
            j += 1;
        }
        i = j;
        if word.starts_with("load") {
            if word != "load" || block.iter().any(|l| l.contains("{{") || l.contains("@st")) {
                histograms_loaded = true;
                continue;
            }
            let Ok(interval) = duration_ms(line.split_whitespace().nth(1).unwrap_or("")) else {
                continue;
            };
            let mut app = head.appender();
            for l in &block {
                let (series, values) = split_series(l);
                let Ok(labels) = parse_series(series) else {
                    continue;
                };
                let mut slots = Vec::new();
                if values
                    .split_whitespace()
                    .any(|item| expand_item(item, &mut slots).is_err())
                {
                    continue;
                }
                for (k, v) in slots.iter().enumerate() {
                    if let Some(v) = v {
                        let _ = app.append(0, &labels, k as i64 * interval, *v);
                    }
                }
            }
            let _ = app.commit();
            continue;
        }
        let Some(caps) = eval_re.captures(&line) else {
            tally.skipped += 1;
            continue;
        };
        if histograms_loaded || block.iter().any(|l| l.contains("{{")) {
            tally.skipped += 1;
            continue;
        }
        let mut fail = caps.get(1).is_some_and(|m| m.as_str() == "fail");
        let mut ordered = caps.get(1).is_some_and(|m| m.as_str() == "ordered");
        let mut expected_range: Option<(i64, i64, i64)> = None;
        let mut expected_string: Option<String> = None;
        let mut expected: Vec<&String> = Vec::new();
        for l in &block {
            if let Some(rest) = l.strip_prefix("expect ") {
                let rest = rest.trim();
                if rest.starts_with("fail") {
                    fail = true;
                } else if rest.starts_with("ordered") {
                    ordered = true;
                } else if let Some(r) = rest.strip_prefix("range vector from ") {
                    let p: Vec<&str> = r.split_whitespace().collect();
                    if p.len() == 5 {
                        expected_range = signed_duration(p[0])
                            .ok()
                            .zip(signed_duration(p[2]).ok())
                            .zip(duration_ms(p[4]).ok())
                            .map(|((a, b), c)| (a, b, c));
                    }
                } else if let Some(s) = rest.strip_prefix("string ") {
                    expected_string =
                        Some(s.trim().trim_matches(|c| c == '"' || c == '`').to_string());
                }
            } else if !l.starts_with("expected_fail") {
                expected.push(l);
            } else {
                fail = true;
            }
        }
        let query = caps.get(7).unwrap().as_str();
        let outcome = (|| -> Result<(), String> {
            let expr = parse_expr(query).map_err(|e| format!("parse error: {e}"))?;
            if caps.get(2).unwrap().as_str() == "range" {
                let start = signed_duration(caps.get(4).unwrap().as_str())?;
                let end = signed_duration(caps.get(5).unwrap().as_str())?;
                let step = duration_ms(caps.get(6).unwrap().as_str())?;
                let res = engine.range(head.as_ref(), &expr, start, end, step);
                if fail {
                    return if res.is_err() {
                        Ok(())
                    } else {
                        Err("expected failure".into())
                    };
                }
                let got = res.map_err(|e| e.to_string())?;
                compare_matrix(&got, &expected, start, step)
            } else {
                let at = signed_duration(caps.get(3).unwrap().as_str())?;
                let res = engine.instant(head.as_ref(), &expr, at);
                if fail {
                    return if res.is_err() {
                        Ok(())
                    } else {
                        Err("expected failure".into())
                    };
                }
                let got = res.map_err(|e| e.to_string())?;
                if let Some(s) = &expected_string {
                    return match got {
                        Value::String { s: g, .. } if &g == s => Ok(()),
                        other => Err(format!("expected string {s}, got {other:?}")),
                    };
                }
                if let Some((start, _, step)) = expected_range {
                    return compare_matrix(&got, &expected, start, step);
                }
                compare_instant(&got, &expected, ordered)
            }
        })();
        match outcome {
            Ok(()) => tally.passed += 1,
            Err(e) => {
                tally.failed += 1;
                tally.errors.push(format!("{name}:{lineno}: {query}: {e}"));
            }
        }
    }
}

fn compare_instant(got: &Value, expected: &[&String], ordered: bool) -> Result<(), String> {
    if let [only] = expected
        && let Some(v) = parse_number(only)
    {
        return match got {
            Value::Scalar { v: g, .. } if almost_equal(*g, v) => Ok(()),
            other => Err(format!("expected scalar {v}, got {other:?}")),
        };
    }
    let Value::Vector(samples) = got else {
        return Err(format!("expected a vector, got {}", got.result_type()));
    };
    let mut exp: Vec<(Labels, f64)> = Vec::new();
    for l in expected {
        let (series, value) = split_series(l);
        let labels = parse_series(series)?;
        let mut slots = Vec::new();
        expand_item(value, &mut slots)?;
        exp.push((labels, slots.first().copied().flatten().unwrap_or(f64::NAN)));
    }
    if exp.len() != samples.len() {
        return Err(format!(
            "expected {} samples, got {}",
            exp.len(),
            samples.len()
        ));
    }
    for (i, s) in samples.iter().enumerate() {
        let pos = if ordered {
            (exp[i].0 == s.labels).then_some(i)
        } else {
            exp.iter().position(|(l, _)| *l == s.labels)
        };
        let pos = pos.ok_or_else(|| format!("unexpected {}", s.labels))?;
        if !almost_equal(exp[pos].1, s.v) {
            return Err(format!(
                "{}: expected {}, got {}",
                s.labels, exp[pos].1, s.v
            ));
        }
    }
    Ok(())
}

fn compare_matrix(got: &Value, expected: &[&String], start: i64, step: i64) -> Result<(), String> {
    let Value::Matrix(series) = got else {
        return Err(format!("expected a matrix, got {}", got.result_type()));
    };
    if expected.len() != series.len() {
        return Err(format!(
            "expected {} series, got {}",
            expected.len(),
            series.len()
        ));
    }
    for l in expected {
        let (s, values) = split_series(l);
        let labels = parse_series(s)?;
        let mut slots = Vec::new();
        for item in values.split_whitespace() {
            expand_item(item, &mut slots)?;
        }
        let want: Vec<(i64, f64)> = slots
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (start + k as i64 * step, v)))
            .collect();
        let g = series
            .iter()
            .find(|s| s.labels == labels)
            .ok_or_else(|| format!("missing {labels}"))?;
        if g.samples.len() != want.len() {
            return Err(format!(
                "{labels}: expected {} points, got {}",
                want.len(),
                g.samples.len()
            ));
        }
        for (p, (t, v)) in g.samples.iter().zip(&want) {
            if p.t != *t || !almost_equal(p.v, *v) {
                return Err(format!("{labels}: expected {v}@{t}, got {}@{}", p.v, p.t));
            }
        }
    }
    Ok(())
}

#[test]
fn issue_4_latest_promql_scripts_report() {
    let Some(files) = test_files("latest") else {
        return;
    };
    let mut total = Tally::default();
    for f in &files {
        let mut t = Tally::default();
        run(f, &mut t);
        eprintln!(
            "latest/{}: {} passed, {} failed, {} skipped (native histograms or 3.x-only syntax)",
            f.file_name().unwrap().to_string_lossy(),
            t.passed,
            t.failed,
            t.skipped
        );
        total.passed += t.passed;
        total.failed += t.failed;
        total.skipped += t.skipped;
        total.errors.extend(t.errors);
    }
    for e in &total.errors {
        eprintln!("latest differs: {}", &e[..e.len().min(300)]);
    }
    eprintln!(
        "latest/: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    // A report, not a gate: 3.x semantics differ from 2.42 on purpose. The
    // counts are pinned, so that a change in the runner, in the scripts or in
    // the engine's answers shows up here; update them when one is meant.
    assert_eq!(
        (total.passed, total.failed, total.skipped),
        (448, 424, 1323),
        "{total:?}"
    );
}
