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
    crate::testing::golden::real_ray_samples()
        .into_iter()
        .map(|(pairs, values)| (Labels::from_pairs(pairs), values))
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
