//! Ray's dashboards against Prometheus 2.42's own answers (issue 4): the raw
//! samples Prometheus stored from a real Ray cluster are replayed into the
//! head, with the staleness markers it wrote rebuilt, and all 397 dashboard
//! `query_range` requests must give the same series, timestamps and values.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

use raymon::model::{Labels, STALE_NAN, Sample};
use raymon::promql::engine::{Engine, EngineOptions, Value};
use raymon::promql::parser::parse_expr;
use raymon::storage::Appendable;
use raymon::tsdb::{Head, HeadOptions};
use serde_json::Value as Json;

const SCRAPE_INTERVAL_MS: i64 = 10_000;
const LOOKBACK_MS: i64 = 300_000;

fn golden_dir() -> std::path::PathBuf {
    crate::support::fixtures_dir().join("ray/golden-prom-2.42")
}

fn read_gz(name: &str) -> Box<dyn BufRead> {
    let f = std::fs::File::open(golden_dir().join(name)).unwrap();
    Box::new(std::io::BufReader::new(flate2::read::GzDecoder::new(f)))
}

fn labels_of(metric: &Json) -> Labels {
    Labels::from_pairs(
        metric
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
    )
}

fn parse_value(v: &Json) -> f64 {
    match v.as_str().unwrap() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap(),
    }
}

fn ms(t: &Json) -> i64 {
    (t.as_f64().unwrap() * 1000.0).round() as i64
}

fn points(values: &Json) -> Vec<Sample> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Sample {
            t: ms(&p[0]),
            v: parse_value(&p[1]),
        })
        .collect()
}

/// Raw samples plus the staleness markers Prometheus must have written: a
/// series absent at a step although its last sample is within the lookback
/// was ended by a marker, written at the target's next scrape.
fn replay() -> (Head, usize, usize) {
    let raw: Json = serde_json::from_reader(read_gz("raw-samples.json.gz")).unwrap();
    let mut series: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for s in raw["data"]["result"].as_array().unwrap() {
        series.insert(labels_of(&s["metric"]), points(&s["values"]));
    }
    let meta: Json =
        serde_json::from_reader(std::fs::File::open(golden_dir().join("meta.json")).unwrap())
            .unwrap();
    let (start, end, step) = (
        meta["range_start"].as_i64().unwrap() * 1000,
        meta["range_end"].as_i64().unwrap() * 1000,
        meta["step"].as_i64().unwrap() * 1000,
    );
    let all: Json =
        serde_json::from_reader(read_gz("all-series-selector.query_range.json.gz")).unwrap();
    let mut present: BTreeMap<Labels, BTreeSet<i64>> = BTreeMap::new();
    for s in all["data"]["result"].as_array().unwrap() {
        present.insert(
            labels_of(&s["metric"]),
            points(&s["values"]).iter().map(|p| p.t).collect(),
        );
    }
    let mut markers = 0;
    let empty = BTreeSet::new();
    for (labels, samples) in &mut series {
        let here = present.get(labels).unwrap_or(&empty);
        let mut stale: BTreeSet<i64> = BTreeSet::new();
        let mut t = start;
        while t <= end {
            if !here.contains(&t) {
                let i = samples.partition_point(|p| p.t <= t);
                if i > 0 && t - samples[i - 1].t <= LOOKBACK_MS {
                    stale.insert((samples[i - 1].t + SCRAPE_INTERVAL_MS).min(t));
                }
            }
            t += step;
        }
        markers += stale.len();
        samples.extend(stale.iter().map(|&t| Sample { t, v: STALE_NAN }));
        samples.sort_by_key(|p| p.t);
    }
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    let mut n = 0;
    for (labels, samples) in &series {
        for p in samples {
            app.append(0, labels, p.t, p.v).unwrap();
            n += 1;
        }
    }
    app.commit().unwrap();
    (head, n, markers)
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Compares a matrix result with Prometheus's JSON `result` array.
fn compare(got: &Value, want: &Json) -> Result<(), String> {
    let Value::Matrix(got) = got else {
        return Err(format!("expected a matrix, got {}", got.result_type()));
    };
    let want: BTreeMap<Labels, Vec<Sample>> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (labels_of(&s["metric"]), points(&s["values"])))
        .collect();
    let got: BTreeMap<Labels, Vec<Sample>> = got
        .iter()
        .map(|s| (s.labels.clone(), s.samples.clone()))
        .collect();
    let missing: Vec<_> = want.keys().filter(|l| !got.contains_key(*l)).collect();
    let extra: Vec<_> = got.keys().filter(|l| !want.contains_key(*l)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(format!(
            "missing series {missing:?}, extra series {extra:?}"
        ));
    }
    for (labels, w) in &want {
        let g = &got[labels];
        let gt: Vec<i64> = g.iter().map(|p| p.t).collect();
        let wt: Vec<i64> = w.iter().map(|p| p.t).collect();
        if gt != wt {
            return Err(format!(
                "{labels}: timestamps differ: got {gt:?}, want {wt:?}"
            ));
        }
        for (a, b) in g.iter().zip(w) {
            if !close(a.v, b.v) {
                return Err(format!("{labels} @{}: got {}, want {}", a.t, a.v, b.v));
            }
        }
    }
    Ok(())
}

#[test]
fn issue_4_ray_dashboards_match_prometheus_2_42() {
    let (head, samples, markers) = replay();
    let engine = Engine::new(EngineOptions::default());

    // The rebuilt markers reproduce which series Prometheus saw at each step.
    let meta: Json =
        serde_json::from_reader(std::fs::File::open(golden_dir().join("meta.json")).unwrap())
            .unwrap();
    let (start, end) = (
        meta["range_start"].as_i64().unwrap() * 1000,
        meta["range_end"].as_i64().unwrap() * 1000,
    );
    let all: Json =
        serde_json::from_reader(read_gz("all-series-selector.query_range.json.gz")).unwrap();
    let expr = parse_expr(r#"{__name__=~".+"}"#).unwrap();
    let got = engine.range(&head, &expr, start, end, 15_000).unwrap();
    compare(&got, &all["data"]["result"]).unwrap();

    let (mut total, mut with_data, mut failures) = (0, 0, Vec::new());
    for line in read_gz("query_range.jsonl.gz").lines() {
        let case: Json = serde_json::from_str(&line.unwrap()).unwrap();
        let query = case["query"].as_str().unwrap();
        total += 1;
        let want = &case["response"]["data"]["result"];
        if !want.as_array().unwrap().is_empty() {
            with_data += 1;
        }
        let expr = match parse_expr(query) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{query}: parse error {e}"));
                continue;
            }
        };
        let s = case["start"].as_i64().unwrap() * 1000;
        let e = case["end"].as_i64().unwrap() * 1000;
        let step = case["step"].as_i64().unwrap() * 1000;
        match engine.range(&head, &expr, s, e, step) {
            Ok(got) => {
                if let Err(err) = compare(&got, want) {
                    failures.push(format!("{query}: {err}"));
                }
            }
            Err(err) => failures.push(format!("{query}: error {err}")),
        }
    }
    for f in &failures {
        eprintln!("MISMATCH {}", &f[..f.len().min(600)]);
    }
    eprintln!(
        "replayed {samples} samples with {markers} rebuilt staleness markers; {total} dashboard queries ({with_data} with data): {} match, {} differ",
        total - failures.len(),
        failures.len()
    );
    assert_eq!(total, 397);
    assert!(
        failures.is_empty(),
        "{} of {total} dashboard queries differ from Prometheus 2.42",
        failures.len()
    );
}
