//! Runs Prometheus's own PromQL test scripts (`../shared/promql-tests/`,
//! read in place) against raymon's engine (issue 4).
//!
//! As Prometheus 2.42's runner (`promql/test.go`) does, each eval is also run
//! with every selector and subquery pinned to `@ <eval time>` at other
//! evaluation times (unless it calls a function of the evaluation time), and
//! every successful instant query is repeated as a range query around its
//! time, whose middle step must agree.

use std::path::Path;
use std::sync::Arc;

use raymon::model::{Labels, STALE_NAN};
use raymon::promql::engine::{Engine, EngineOptions, Value};
use raymon::promql::parser::{AtModifier, Expr, parse_expr};
use raymon::storage::Appendable;
use raymon::tsdb::{Head, HeadOptions};

/// One expected line of an `eval`: a series with a value, or a scalar.
#[derive(Debug)]
enum Expected {
    Scalar(f64),
    Sample(Labels, f64),
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub passed: usize,
    pub failed: Vec<String>,
    /// `@`-pinned variants run (each also in range mode).
    pub variants: usize,
}

/// Prometheus duration (`5m`, `1h30m`, `0`) to milliseconds.
pub(crate) fn duration_ms(s: &str) -> Result<i64, String> {
    raymon::model::duration::parse_duration_ms(s).map_err(|e| e.to_string())
}

/// Splits `name{labels} rest` into the series part and the rest.
pub(crate) fn split_series(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut in_braces = false;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' && q != b'`' {
                i += 1;
            } else if b == q {
                quote = None;
            }
        } else if in_braces {
            match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'}' => {
                    return (&line[..=i], line[i + 1..].trim());
                }
                _ => {}
            }
        } else if b == b'{' {
            in_braces = true;
        } else if b.is_ascii_whitespace() {
            return (&line[..i], line[i..].trim());
        }
        i += 1;
    }
    (line, "")
}

fn unquote(s: &str) -> Result<String, String> {
    let q = s.chars().next().ok_or("empty string")?;
    let inner = s
        .strip_prefix(q)
        .and_then(|r| r.strip_suffix(q))
        .ok_or_else(|| format!("bad string {s}"))?;
    if q == '`' {
        return Ok(inner.to_string());
    }
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => return Err("trailing backslash".into()),
        }
    }
    Ok(out)
}

/// `name{a="b", c='d'}`, `name`, `{__name__="x"}` or `{}` to labels.
pub(crate) fn parse_series(s: &str) -> Result<Labels, String> {
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.trim().is_empty() {
        pairs.push(("__name__".into(), name.trim().into()));
    }
    let body = rest.trim();
    if !body.is_empty() {
        let inner = body
            .strip_prefix('{')
            .and_then(|b| b.strip_suffix('}'))
            .ok_or_else(|| format!("bad label set {body}"))?;
        let mut rest = inner.trim();
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("bad label pair in {inner}"))?;
            let lname = rest[..eq].trim().to_string();
            let after = rest[eq + 1..].trim_start();
            let q = after.as_bytes().first().copied().ok_or("missing value")?;
            let mut end = 1;
            let ab = after.as_bytes();
            while end < ab.len() && ab[end] != q {
                if ab[end] == b'\\' && q != b'`' {
                    end += 1;
                }
                end += 1;
            }
            let value = unquote(&after[..=end.min(ab.len() - 1)])?;
            pairs.push((lname, value));
            rest = after[(end + 1).min(after.len())..].trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        }
    }
    Ok(Labels::from_pairs(pairs))
}

pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let owned = s.trim().replace('_', "");
    let t = owned.as_str();
    let (sign, body) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        b if b.starts_with("0x") => i64::from_str_radix(&b[2..], 16).ok()? as f64,
        _ => body.parse::<f64>().ok()?,
    };
    Some(sign * v)
}

/// Expands one value item of a series description into slots.
pub(crate) fn expand_item(item: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    if item == "stale" {
        out.push(Some(STALE_NAN));
        return Ok(());
    }
    if let Some(rest) = item.strip_prefix('_') {
        if rest.is_empty() {
            out.push(None);
            return Ok(());
        }
        let n: usize = rest
            .strip_prefix('x')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad item {item}"))?;
        out.extend(std::iter::repeat_n(None, n));
        return Ok(());
    }
    let (body, times) = match item.rfind('x') {
        Some(i) if item[i + 1..].chars().all(|c| c.is_ascii_digit()) && i + 1 < item.len() => (
            &item[..i],
            Some(item[i + 1..].parse::<usize>().map_err(|e| e.to_string())?),
        ),
        _ => (item, None),
    };
    // Find a `+`/`-` that separates a from b (not a sign or exponent sign).
    let bytes = body.as_bytes();
    let mut split = None;
    for i in 1..bytes.len() {
        if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
            split = Some(i);
            break;
        }
    }
    let (a, step) = match split {
        Some(i) => {
            let a = parse_number(&body[..i]).ok_or_else(|| format!("bad number in {item}"))?;
            let b = parse_number(&body[i + 1..]).ok_or_else(|| format!("bad number in {item}"))?;
            (a, if bytes[i] == b'-' { -b } else { b })
        }
        None => (
            parse_number(body).ok_or_else(|| format!("bad number {item}"))?,
            0.0,
        ),
    };
    match times {
        None => out.push(Some(a)),
        Some(n) => {
            let mut v = a;
            out.push(Some(v));
            for _ in 0..n {
                v += step;
                out.push(Some(v));
            }
        }
    }
    Ok(())
}

pub(crate) fn almost_equal(a: f64, b: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    const EPS: f64 = 1e-6;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < MIN_NORMAL {
        return diff < EPS * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()) < EPS
}

fn compare(expected: &[Expected], got: &Value, ordered: bool) -> Result<(), String> {
    match (expected.first(), got) {
        (Some(Expected::Scalar(e)), Value::Scalar { v, .. }) => {
            if almost_equal(*e, *v) {
                Ok(())
            } else {
                Err(format!("expected scalar {e}, got {v}"))
            }
        }
        (Some(Expected::Scalar(e)), other) => Err(format!("expected scalar {e}, got {other:?}")),
        (_, Value::Vector(samples)) => {
            let exp: Vec<(&Labels, f64)> = expected
                .iter()
                .filter_map(|e| match e {
                    Expected::Sample(l, v) => Some((l, *v)),
                    Expected::Scalar(_) => None,
                })
                .collect();
            if exp.len() != samples.len() {
                return Err(format!(
                    "expected {} samples, got {}: {:?}",
                    exp.len(),
                    samples.len(),
                    samples
                        .iter()
                        .map(|s| format!("{} {}", s.labels, s.v))
                        .collect::<Vec<_>>()
                ));
            }
            for (i, s) in samples.iter().enumerate() {
                let pos = if ordered {
                    (exp[i].0 == &s.labels).then_some(i)
                } else {
                    exp.iter().position(|(l, _)| *l == &s.labels)
                };
                let Some(pos) = pos else {
                    return Err(format!("unexpected sample {} {} (at {i})", s.labels, s.v));
                };
                if !almost_equal(exp[pos].1, s.v) {
                    return Err(format!(
                        "{}: expected {}, got {}",
                        s.labels, exp[pos].1, s.v
                    ));
                }
            }
            Ok(())
        }
        (_, other) => Err(format!("unexpected result type {}", other.result_type())),
    }
}

/// A script's lines, trimmed, with comments blanked: a comment ends a block
/// as a blank line does.
pub(crate) fn script_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect()
}

/// The `.test` scripts of one folder of Prometheus's PromQL tests, sorted;
/// None (after one `skipped: ...` line) when the scripts are absent.
pub(crate) fn test_files(folder: &str) -> Option<Vec<std::path::PathBuf>> {
    let Some(dir) = crate::support::promql_tests_dir() else {
        crate::support::skip(&format!(
            "Prometheus's PromQL test scripts ({folder}) are absent: set RAYMON_PROMQL_TESTS \
             or put them in ../shared/promql-tests"
        ));
        return None;
    };
    let dir = dir.join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    Some(files)
}

/// Runs one script; returns passes and failures (with line numbers).
pub fn run_file(path: &Path) -> Outcome {
    let lines = script_lines(path);
    let engine = Engine::new(EngineOptions::default());
    let mut head = Arc::new(Head::new(HeadOptions::default()));
    let mut out = Outcome::default();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let eval_re =
        regex::Regex::new(r"^eval(?:_(fail|ordered))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
            .unwrap();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if line.is_empty() {
            i += 1;
            continue;
        }
        let lineno = i + 1;
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if word == "clear" {
            // A one-line command: the next line may start another.
            head = Arc::new(Head::new(HeadOptions::default()));
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
        if word == "load" {
            let interval = duration_ms(line.split_whitespace().nth(1).unwrap_or("")).unwrap();
            // A later line for the same series replaces an earlier one, as
            // Prometheus's loader keys definitions by label set.
            let mut defs: Vec<(Labels, Vec<Option<f64>>)> = Vec::new();
            for l in &block {
                let (series, values) = split_series(l);
                let labels =
                    parse_series(series).unwrap_or_else(|e| panic!("{name}:{lineno}: {e}"));
                let mut slots = Vec::new();
                for item in values.split_whitespace() {
                    expand_item(item, &mut slots)
                        .unwrap_or_else(|e| panic!("{name}:{lineno}: {e}"));
                }
                match defs.iter_mut().find(|(l, _)| *l == labels) {
                    Some(d) => d.1 = slots,
                    None => defs.push((labels, slots)),
                }
            }
            let mut app = head.appender();
            for (labels, slots) in &defs {
                for (k, v) in slots.iter().enumerate() {
                    if let Some(v) = v {
                        app.append(0, labels, k as i64 * interval, *v)
                            .unwrap_or_else(|e| panic!("{name}:{lineno}: {labels} @{k}: {e}"));
                    }
                }
            }
            app.commit().unwrap();
        } else if word.starts_with("eval") {
            let caps = eval_re
                .captures(line)
                .unwrap_or_else(|| panic!("{name}:{lineno}: bad eval line"));
            let kind = caps.get(1).map(|m| m.as_str());
            let at = duration_ms(caps.get(2).map_or("0", |m| m.as_str())).unwrap();
            let query = caps.get(3).unwrap().as_str();
            let expected: Vec<Expected> = block
                .iter()
                .map(|l| match parse_number(l) {
                    Some(v) => Expected::Scalar(v),
                    None => {
                        let (series, value) = split_series(l);
                        let labels =
                            parse_series(series).unwrap_or_else(|e| panic!("{name}:{lineno}: {e}"));
                        let mut slots = Vec::new();
                        expand_item(value, &mut slots)
                            .unwrap_or_else(|e| panic!("{name}:{lineno}: {e}"));
                        Expected::Sample(labels, slots[0].unwrap_or(f64::NAN))
                    }
                })
                .collect();
            let result = check_eval(
                &engine,
                head.as_ref(),
                query,
                at,
                kind,
                &expected,
                &mut out.variants,
            );
            match result {
                Ok(()) => out.passed += 1,
                Err(e) => out.failed.push(format!("{name}:{lineno}: {query}: {e}")),
            }
        } else {
            panic!("{name}:{lineno}: unknown command {line}");
        }
    }
    out
}

/// Functions whose value depends on the evaluation time itself, so pinning
/// selectors with `@` changes their result (Prometheus 2.42's
/// `AtModifierUnsafeFunctions`).
const AT_UNSAFE_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

/// Pins every selector and subquery without an `@` to `@ at` (a written
/// `@ start()`/`@ end()` counts as none, as upstream resolves those only at
/// query time). Nothing inside a subquery is touched: upstream pins the
/// subquery first and then skips everything below a pinned subquery. Returns
/// false if an at-unsafe function is called outside subqueries.
fn pin_at(expr: &mut Expr, at: i64) -> bool {
    fn pin(slot: &mut Option<AtModifier>, at: i64) {
        if !matches!(slot, Some(AtModifier::Timestamp(_))) {
            *slot = Some(AtModifier::Timestamp(at));
        }
    }
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::VectorSelector(vs) => {
            pin(&mut vs.at, at);
            true
        }
        Expr::MatrixSelector(ms) => {
            pin(&mut ms.vs.at, at);
            true
        }
        Expr::Subquery(sq) => {
            pin(&mut sq.at, at);
            true
        }
        Expr::Call(c) => {
            let mut safe = !AT_UNSAFE_FUNCTIONS.contains(&c.func.name);
            for a in &mut c.args {
                safe &= pin_at(a, at);
            }
            safe
        }
        Expr::Aggregate(a) => {
            let mut safe = pin_at(&mut a.expr, at);
            if let Some(p) = &mut a.param {
                safe &= pin_at(p, at);
            }
            safe
        }
        Expr::Binary(b) => {
            let l = pin_at(&mut b.lhs, at);
            let r = pin_at(&mut b.rhs, at);
            l && r
        }
        Expr::Unary { expr, .. } | Expr::Paren(expr) => pin_at(expr, at),
    }
}

/// The extra evaluation times of the `@` variants of an eval at `at`.
fn variant_times(at: i64) -> Vec<i64> {
    if at == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * at, 0, at / 5, at, 10 * at]
    }
}

/// Runs one eval as Prometheus 2.42's runner does: the query at its time,
/// then (unless it calls an at-unsafe function) the query with every
/// selector pinned to `@ at`, at several other times. Each must give the
/// expected answer (or fail, for `eval_fail`), and each is cross-checked in
/// range mode.
fn check_eval(
    engine: &Engine,
    head: &Head,
    query: &str,
    at: i64,
    kind: Option<&str>,
    expected: &[Expected],
    variants: &mut usize,
) -> Result<(), String> {
    let expr = parse_expr(query).map_err(|e| format!("parse error: {e}"))?;
    check_one(engine, head, &expr, at, kind, expected)?;
    let mut pinned = expr.clone();
    if !pin_at(&mut pinned, at) {
        return Ok(());
    }
    for t in variant_times(at) {
        *variants += 1;
        check_one(engine, head, &pinned, t, kind, expected)
            .map_err(|e| format!("@ variant `{pinned}` at {t}ms: {e}"))?;
    }
    Ok(())
}

fn check_one(
    engine: &Engine,
    head: &Head,
    expr: &Expr,
    at: i64,
    kind: Option<&str>,
    expected: &[Expected],
) -> Result<(), String> {
    let res = engine.instant(head, expr, at);
    if kind == Some("fail") {
        return match res {
            Err(_) => Ok(()),
            Ok(v) => Err(format!("expected an error, got {v:?}")),
        };
    }
    let got = res.map_err(|e| format!("error: {e}"))?;
    compare(expected, &got, kind == Some("ordered"))?;
    // The same query in range mode must succeed and give the same answer at
    // `at`; upstream only skips the comparison for ordered evals.
    let range = engine
        .range(head, expr, at - 60_000, at + 60_000, 60_000)
        .map_err(|e| format!("range mode error: {e}"))?;
    if kind == Some("ordered") {
        return Ok(());
    }
    let Value::Matrix(m) = range else {
        return Err("range mode did not return a matrix".into());
    };
    let mut vec = Vec::new();
    for s in m {
        if let Some(p) = s.samples.iter().find(|p| p.t == at) {
            vec.push(raymon::promql::engine::VectorSample {
                labels: s.labels.clone(),
                t: at,
                v: p.v,
            });
        }
    }
    let as_value = match got {
        Value::Scalar { .. } => Value::Scalar {
            t: at,
            v: vec
                .first()
                .map(|s| s.v)
                .ok_or("range mode: no point for the scalar")?,
        },
        _ => Value::Vector(vec),
    };
    compare(expected, &as_value, false).map_err(|e| format!("range mode: {e}"))
}

#[test]
fn issue_4_prometheus_2_42_promql_test_scripts_pass() {
    let Some(files) = test_files("v2.42") else {
        return;
    };
    let (mut passed, mut failed, mut variants) = (0, Vec::new(), 0);
    for f in &files {
        let o = run_file(f);
        eprintln!(
            "{}: {} passed, {} failed, {} @ variants",
            f.file_name().unwrap().to_string_lossy(),
            o.passed,
            o.failed.len(),
            o.variants
        );
        passed += o.passed;
        variants += o.variants;
        failed.extend(o.failed);
    }
    for f in &failed {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "v2.42 PromQL scripts: {passed} passed, {} failed, {variants} @ variants",
        failed.len()
    );
    assert_eq!(
        passed + failed.len(),
        566,
        "every eval statement must be run"
    );
    // Every eval that calls no function of the evaluation time (outside
    // subqueries) runs 5 pinned variants, or 3 when evaluated at 0.
    assert_eq!(variants, 2519, "every @ variant must be run");
    assert!(failed.is_empty(), "{} of 566 evals failed", failed.len());
}

/// The `@` rewrite pins what upstream pins and nothing inside subqueries,
/// and gives up on expressions that call a function of the evaluation time.
#[test]
fn at_variants_pin_selectors_like_upstream() {
    let cases = [
        (
            "sum(rate(x[5m])) + y offset 1m",
            Some("sum(rate(x[5m] @ 3600)) + y @ 3600 offset 1m"),
        ),
        (
            "max_over_time(rate(x[1m])[10m:1m]) / z @ 100",
            Some("max_over_time(rate(x[1m])[10m:1m] @ 3600) / z @ 100"),
        ),
        (
            "sum_over_time(x[1m:] @ 50) - x @ start() + y @ end()",
            Some("sum_over_time(x[1m:] @ 50) - x @ 3600 + y @ 3600"),
        ),
        // A function of the evaluation time inside a subquery is not looked at.
        (
            "sum_over_time(timestamp(x)[5m:1m])",
            Some("sum_over_time(timestamp(x)[5m:1m] @ 3600)"),
        ),
        ("time() - x", None),
        ("-hour(x)", None),
        ("vector(1) + predict_linear(x[5m], 60)", None),
    ];
    for (query, want) in cases {
        let mut got = parse_expr(query).unwrap();
        let safe = pin_at(&mut got, 3_600_000);
        match want {
            Some(w) => {
                assert!(safe, "{query}");
                assert_eq!(got, parse_expr(w).unwrap(), "{query} pinned to {got}");
            }
            None => assert!(!safe, "{query}"),
        }
    }
    assert_eq!(variant_times(0), [-1000, 0, 1000]);
    assert_eq!(
        variant_times(50_000),
        [-500_000, 0, 10_000, 50_000, 500_000]
    );
}

/// `RAYMON_PROMQL_SCRIPT=path cargo test --test it promql_tests::one_script`
/// runs a single script, for debugging; without the variable it checks that
/// the runner reads a small script correctly.
#[test]
fn one_script() {
    let path = match std::env::var("RAYMON_PROMQL_SCRIPT") {
        Ok(p) => std::path::PathBuf::from(p),
        Err(_) => {
            let dir = crate::support::TempDir::new("promql");
            let p = dir.path().join("t.test");
            std::fs::write(&p, "load 5m\n  a{x=\"1\"} 0+1.5x4 _ stale\n\neval instant at 10m a\n  a{x=\"1\"} 3\n\neval instant at 30m a\n\neval instant at 10m scalar(a)\n  3\n").unwrap();
            let o = run_file(&p);
            assert_eq!((o.passed, o.failed.len()), (3, 0), "{:?}", o.failed);
            assert_eq!(o.variants, 15);
            return;
        }
    };
    let o = run_file(&path);
    for f in &o.failed {
        eprintln!("FAIL {f}");
    }
    assert!(o.failed.is_empty());
}
