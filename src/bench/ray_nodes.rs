//! Ray's real series for a simulated cluster of any size: every node carries
//! the series Ray's head agent exposed in the golden capture
//! (`tests/data/fixtures/ray/golden-prom-2.42/raw-samples.json.gz`, embedded
//! in the binary), with `instance` and `NodeAddress` rewritten per node,
//! sampled every 10 s as Ray's Prometheus scraped it: counters grow at the
//! rate they grew on the real node, gauges cycle through their real values.
//! Also Ray's 397 substituted dashboard queries, which select these series.
//!
//! Shared by `raymon bench --same-data` and `benches/dashboards.rs`, which
//! includes this file by path; so it uses only std, `serde_json` and
//! `flate2`, nothing of the crate. Pure: no IO beyond the embedded bytes.

use std::io::Read as _;

/// The interval between a simulated series' samples (Ray's scrape interval
/// in the capture).
pub const SAMPLE_INTERVAL_MS: i64 = 10_000;

/// The capture: `/api/v1/query` of `{__name__=~".+"}[1h]` on Prometheus 2.42.
const RAW_SAMPLES: &[u8] =
    include_bytes!("../../tests/data/fixtures/ray/golden-prom-2.42/raw-samples.json.gz");

/// Ray's dashboard queries with Grafana's variables substituted, one a line.
const DASHBOARD_QUERIES: &str =
    include_str!("../../tests/data/fixtures/ray/dashboard-queries-substituted.txt");

/// The head agent's exporter in the capture; its series make a node.
const TEMPLATE_INSTANCE: &str = "192.0.2.2:8080";

/// Ray's dashboard queries, in the fixture's order.
pub fn dashboard_queries() -> Vec<&'static str> {
    DASHBOARD_QUERIES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// One series of the node template.
#[derive(Debug, Clone)]
pub struct SeriesTemplate {
    /// Label pairs sorted by name, `__name__` among them.
    pub labels: Vec<(String, String)>,
    values: Vec<f64>,
    counter: bool,
}

fn is_counter(name: &str) -> bool {
    name.ends_with("_total")
        || name.ends_with("_count")
        || name.ends_with("_sum")
        || name.ends_with("_bucket")
}

/// The address of simulated node `n` (distinct for 16 M nodes).
pub fn node_address(n: usize) -> String {
    format!("10.{}.{}.{}", n / 65536, (n / 256) % 256, n % 256)
}

impl SeriesTemplate {
    /// The metric name.
    pub fn name(&self) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == "__name__")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The labels this series has on node `n`.
    pub fn labels_for_node(&self, n: usize) -> Vec<(String, String)> {
        let addr = node_address(n);
        self.labels
            .iter()
            .map(|(k, v)| match k.as_str() {
                "instance" => (k.clone(), format!("{addr}:8080")),
                "NodeAddress" => (k.clone(), addr.clone()),
                _ => (k.clone(), v.clone()),
            })
            .collect()
    }

    /// The value at sample `i` of the window (the same on every node).
    pub fn value(&self, i: usize) -> f64 {
        let vals = &self.values;
        if self.counter {
            let first = vals[0];
            let per_step = if vals.len() > 1 {
                (vals[vals.len() - 1] - first).max(0.0) / (vals.len() - 1) as f64
            } else {
                0.0
            };
            first + per_step * i as f64
        } else {
            vals[i % vals.len()]
        }
    }
}

/// The head agent's series that were alive at the end of the capture.
pub fn node_template() -> Result<Vec<SeriesTemplate>, String> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(RAW_SAMPLES)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot decompress the Ray capture: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("cannot read the Ray capture: {e}"))?;
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    let end = result
        .iter()
        .filter_map(|s| s["values"].as_array()?.last()?[0].as_f64())
        .fold(0.0f64, f64::max);
    let mut out = Vec::new();
    for s in &result {
        let m = &s["metric"];
        if m["instance"] != TEMPLATE_INSTANCE {
            continue;
        }
        let vals: Vec<(f64, f64)> = s["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p[0].as_f64()?, p[1].as_str()?.parse::<f64>().ok()?)))
            .collect();
        if vals.last().is_none_or(|(t, _)| end - t > 30.0) {
            continue;
        }
        let mut labels: Vec<(String, String)> = m
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        labels.sort();
        let counter = labels.iter().any(|(k, v)| k == "__name__" && is_counter(v));
        out.push(SeriesTemplate {
            labels,
            values: vals.into_iter().map(|(_, v)| v).collect(),
            counter,
        });
    }
    if out.is_empty() {
        return Err("the Ray capture holds no series of the head agent".into());
    }
    Ok(out)
}
