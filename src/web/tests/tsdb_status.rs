//! `/api/v1/status/tsdb`'s walk over every series agrees with the head's
//! cardinality from its index, on Ray's real series.

use crate::model::{Labels, MatchOp, Matcher};
use crate::storage::{Appendable, Queryable, Series};
use crate::tsdb::Head;

fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
    Matcher::new(op, n, v).unwrap()
}

fn all(head: &Head, ms: &[Matcher]) -> Vec<Series> {
    head.querier(i64::MIN, i64::MAX)
        .unwrap()
        .select(ms)
        .unwrap()
}

/// Every raw sample Prometheus 2.42 stored from a real Ray cluster.
fn real_ray_series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    use std::io::Read;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fixtures/ray/golden-prom-2.42/raw-samples.json.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = Labels::from_pairs(
                s["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
            );
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                    let v = match p[1].as_str().unwrap() {
                        "+Inf" => f64::INFINITY,
                        "-Inf" => f64::NEG_INFINITY,
                        "NaN" => f64::NAN,
                        x => x.parse().unwrap(),
                    };
                    (t, v)
                })
                .collect();
            (labels, values)
        })
        .collect()
}

#[test]
fn cardinality_from_the_index_matches_a_walk_over_every_series() {
    let data = real_ray_series();
    let head = Head::default();
    let mut app = head.appender();
    for (labels, vs) in &data {
        let &(t, v) = vs.last().unwrap();
        app.append(0, labels, t, v).unwrap();
    }
    app.commit().unwrap();
    let walked =
        crate::web::api::v1::tsdb_status(&all(&head, &[m(MatchOp::Regex, "__name__", ".+")]));
    let c = head.cardinality(10);
    let pairs = |v: &[crate::web::Stat]| -> Vec<(String, u64)> {
        v.iter().map(|s| (s.name.clone(), s.value)).collect()
    };
    assert_eq!(c.num_series, walked.head_stats.num_series);
    assert_eq!(c.num_label_pairs, walked.head_stats.num_label_pairs);
    assert_eq!(
        c.series_by_metric_name,
        pairs(&walked.series_count_by_metric_name)
    );
    assert_eq!(
        c.values_by_label_name,
        pairs(&walked.label_value_count_by_label_name)
    );
    assert_eq!(
        c.bytes_by_label_name,
        pairs(&walked.memory_in_bytes_by_label_name)
    );
    assert_eq!(
        c.series_by_label_pair,
        pairs(&walked.series_count_by_label_value_pair)
    );
    assert_eq!(
        c.series_by_label_pair[0].1,
        data.len() as u64,
        "job=ray is on every series"
    );
    assert_eq!(head.num_chunks(), data.len());
}
