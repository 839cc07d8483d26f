//! The forwarding figures of a run with `--remote-write-url`: what the
//! receiver (a VictoriaMetrics, `vm_rows_inserted_total` on its `/metrics`)
//! took, and how far behind the collector was when the window closed.
//!
//! The backlog is counted the same way for every collector, from outside:
//! the samples the targets served since the collector started, plus the five
//! report series (`up`, `scrape_duration_seconds`, ...) every scrape adds in
//! Prometheus, raymon and vmagent alike, minus the rows the receiver took
//! since the collector started. Whatever is still in a WAL, a queue or a
//! buffer is in it, wherever the collector keeps it.

use std::time::Duration;

use super::cluster::Stats;
use super::fetch;

/// Series every scrape adds besides the target's own.
const REPORT_SERIES: u64 = 5;

/// Rows a VictoriaMetrics receiver has inserted so far, summed over its
/// ingestion protocols; `None` when it cannot be read.
pub async fn receiver_rows(http: &reqwest::Client, write_url: &str) -> Option<u64> {
    let rest = write_url.strip_prefix("http://")?;
    let host = rest.split('/').next()?;
    let body = fetch::text(
        http.get(format!("http://{host}/metrics")),
        Duration::from_secs(10),
    )
    .await
    .ok()?;
    Some(rows_inserted(&body))
}

fn rows_inserted(metrics: &str) -> u64 {
    let mut sum = 0.0;
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("vm_rows_inserted_total")
            && let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
        {
            sum += v;
        }
    }
    sum as u64
}

/// Samples the collector should have forwarded by now: everything the
/// targets served it since it started, with the report series.
pub fn expected(stats: &Stats) -> u64 {
    stats
        .targets
        .iter()
        .map(|t| t.samples + REPORT_SERIES * t.arrivals_us.len() as u64)
        .sum()
}

/// Samples scraped and not yet at the receiver (never below zero: a
/// receiver also counts rows that were sent twice after a retry).
pub fn backlog(expected: u64, rows_at_start: u64, rows_now: u64) -> u64 {
    expected.saturating_sub(rows_now.saturating_sub(rows_at_start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::cluster::TargetStats;

    #[test]
    fn rows_are_summed_over_protocols() {
        let m = "# HELP x\nvm_rows_inserted_total{type=\"promremotewrite\"} 1500\n\
                 vm_rows_inserted_total{type=\"influx\"} 0\nvm_rows_inserted_total{type=\"native\"} 2.5e3\n\
                 vm_rows_added_to_storage_total 9\n";
        assert_eq!(rows_inserted(m), 4000);
    }

    #[test]
    fn backlog_counts_report_series_and_rows_since_the_start() {
        let stats = Stats {
            start_unix_ms: 0,
            targets: vec![
                TargetStats {
                    arrivals_us: vec![1, 2],
                    samples: 100,
                    series: 50,
                },
                TargetStats {
                    arrivals_us: vec![3],
                    samples: 50,
                    series: 50,
                },
            ],
        };
        let want = expected(&stats);
        assert_eq!(want, 150 + 3 * REPORT_SERIES);
        assert_eq!(backlog(want, 1000, 1000 + 100), want - 100);
        assert_eq!(backlog(want, 1000, 1000 + want + 7), 0);
    }
}
