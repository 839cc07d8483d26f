//! Cardinality statistics read off the postings, as Prometheus's
//! `MemPostings.Stats` computes them for `/api/v1/status/tsdb`: one pass over
//! the label pairs, never over series or samples, so that the page costs the
//! same at a million series as at a thousand.

use super::Index;

/// The top entries of each list, largest first (ties by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cardinality {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub series_by_metric_name: Vec<(String, u64)>,
    pub values_by_label_name: Vec<(String, u64)>,
    /// The bytes of a label's distinct values, each counted once (2.42's
    /// definition; later versions multiply by the series count).
    pub bytes_by_label_name: Vec<(String, u64)>,
    pub series_by_label_pair: Vec<(String, u64)>,
}

/// Keeps the `k` largest counts; a name is built only for an entry that
/// makes it in, so that a million label pairs cost no allocation each.
struct TopK {
    k: usize,
    items: Vec<(String, u64)>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    fn push(&mut self, count: u64, name: impl FnOnce() -> String) {
        if self.k == 0 {
            return;
        }
        if self.items.len() == self.k
            && let Some((_, worst)) = self.items.last()
            && count < *worst
        {
            return;
        }
        let name = name();
        let at = self
            .items
            .partition_point(|(n, c)| *c > count || (*c == count && *n < name));
        if at < self.k {
            self.items.insert(at, (name, count));
            self.items.truncate(self.k);
        }
    }
}

impl Index {
    /// Counts per metric name (the values of `metric_label`), values and
    /// value bytes per label name, and series per label pair; `limit`
    /// entries of each.
    pub fn cardinality(&self, metric_label: &str, limit: usize) -> Cardinality {
        let mut metrics = TopK::new(limit);
        let mut values = TopK::new(limit);
        let mut bytes = TopK::new(limit);
        let mut pairs = TopK::new(limit);
        let mut num_label_pairs = 0;
        for (&n, by_value) in &self.postings {
            let name = self.symbols.get(n);
            num_label_pairs += by_value.len() as u64;
            values.push(by_value.len() as u64, || name.to_string());
            let mut size = 0;
            for (&v, list) in by_value {
                let value = self.symbols.get(v);
                let count = list.len() as u64;
                if name == metric_label {
                    metrics.push(count, || value.to_string());
                }
                pairs.push(count, || format!("{name}={value}"));
                size += value.len() as u64;
            }
            bytes.push(size, || name.to_string());
        }
        Cardinality {
            num_series: self.num_series() as u64,
            num_label_pairs,
            series_by_metric_name: metrics.items,
            values_by_label_name: values.items,
            bytes_by_label_name: bytes.items,
            series_by_label_pair: pairs.items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn index(series: &[&[(&str, &str)]]) -> Index {
        let mut ix = Index::new();
        for (i, s) in series.iter().enumerate() {
            ix.add_series(i as u64 + 1, &Labels::from_pairs(s.iter().copied()));
        }
        ix
    }

    #[test]
    fn counts_come_from_the_postings() {
        let ix = index(&[
            &[
                ("__name__", "ray_tasks"),
                ("State", "RUNNING"),
                ("job", "ray"),
            ],
            &[
                ("__name__", "ray_tasks"),
                ("State", "FINISHED"),
                ("job", "ray"),
            ],
            &[
                ("__name__", "ray_actors"),
                ("State", "ALIVE"),
                ("job", "ray"),
            ],
        ]);
        let c = ix.cardinality("__name__", 10);
        assert_eq!(c.num_series, 3);
        // ray_tasks, ray_actors, RUNNING, FINISHED, ALIVE, ray.
        assert_eq!(c.num_label_pairs, 6);
        assert_eq!(
            c.series_by_metric_name,
            vec![("ray_tasks".to_string(), 2), ("ray_actors".to_string(), 1)]
        );
        assert_eq!(
            c.values_by_label_name,
            vec![
                ("State".to_string(), 3),
                ("__name__".to_string(), 2),
                ("job".to_string(), 1)
            ]
        );
        // Distinct values once each: RUNNING + FINISHED + ALIVE = 20,
        // ray_tasks + ray_actors = 19.
        assert_eq!(
            c.bytes_by_label_name[..2],
            [("State".to_string(), 20), ("__name__".to_string(), 19)]
        );
        assert_eq!(c.series_by_label_pair[0], ("job=ray".to_string(), 3));
        assert_eq!(
            c.series_by_label_pair[1],
            ("__name__=ray_tasks".to_string(), 2)
        );
    }

    #[test]
    fn only_the_limit_is_kept_largest_first() {
        let series: Vec<Vec<(String, String)>> = (0..50)
            .map(|i| {
                vec![
                    ("__name__".to_string(), format!("m{}", i % 13)),
                    ("i".to_string(), i.to_string()),
                ]
            })
            .collect();
        let mut ix = Index::new();
        for (i, s) in series.iter().enumerate() {
            ix.add_series(
                i as u64 + 1,
                &Labels::from_pairs(s.iter().map(|(a, b)| (a.as_str(), b.as_str()))),
            );
        }
        let c = ix.cardinality("__name__", 3);
        // 50 = 13 * 3 + 11: m0..m10 have 4 series, m11 and m12 have 3.
        assert_eq!(
            c.series_by_metric_name,
            vec![
                ("m0".to_string(), 4),
                ("m1".to_string(), 4),
                ("m10".to_string(), 4)
            ]
        );
        assert_eq!(c.values_by_label_name[0], ("i".to_string(), 50));
        assert_eq!(c.series_by_label_pair.len(), 3);
        assert!(
            ix.cardinality("__name__", 0)
                .series_by_metric_name
                .is_empty()
        );
    }
}
