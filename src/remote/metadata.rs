//! Metric metadata for a queue whose `metadata_config` says `send: true`
//! (Prometheus 2.42's default): every `send_interval` the metadata of every
//! active target is collected, each (name, type, help, unit) once, and sent
//! in requests of at most `metadata_config.max_samples_per_send` entries,
//! one after the other, as `MetadataWatcher.collect` and
//! `QueueManager.AppendMetadata` do. Each request is retried as a sample
//! batch is (backoff from `min_backoff` to `max_backoff`, or `Retry-After`);
//! a non-recoverable answer counts the entries as failed. Nothing is kept
//! between rounds: the next round sends everything again.
//!
//! Until the scraper exists (it starts after the queues) a round sends
//! nothing, as Prometheus's watcher waits for a ready scrape manager.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::metrics::QueueMetrics;
use super::{Client, MetricMetadata, WriteRequest};
use crate::config::{MetadataConfig, QueueConfig};
use crate::scrape::status::TargetsSource;

/// Where metadata comes from once the scraper runs.
pub type Source = Arc<OnceLock<Arc<dyn TargetsSource>>>;

/// What one queue's metadata task needs.
pub struct Settings {
    pub metadata: MetadataConfig,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Settings {
    pub fn new(metadata: &MetadataConfig, queue: &QueueConfig) -> Settings {
        Settings {
            metadata: metadata.clone(),
            min_backoff: queue.min_backoff,
            max_backoff: queue.max_backoff,
        }
    }
}

/// Sends a round every `send_interval` (the first one interval after the
/// start) until `stop`; an unfinished request is abandoned then.
pub async fn run(
    settings: Settings,
    client: Client,
    metrics: Arc<QueueMetrics>,
    source: Source,
    stop: CancellationToken,
) {
    let every = settings
        .metadata
        .send_interval
        .max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(src) = source.get() else { continue };
        let entries = collect(src.as_ref());
        let per = settings.metadata.max_samples_per_send.max(1);
        for chunk in entries.chunks(per) {
            let sent = tokio::select! {
                _ = stop.cancelled() => return,
                r = send(&settings, &client, &metrics, chunk, &stop) => r,
            };
            if !sent {
                return;
            }
        }
    }
}

/// Every active target's metadata, each distinct entry once, in the order
/// first seen.
pub fn collect(src: &dyn TargetsSource) -> Vec<MetricMetadata> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (_, list) in src.metadata() {
        for m in list {
            let entry = MetricMetadata {
                r#type: type_number(&m.kind),
                metric_family_name: m.metric,
                help: m.help,
                unit: m.unit,
            };
            let key = (
                entry.r#type,
                entry.metric_family_name.clone(),
                entry.help.clone(),
                entry.unit.clone(),
            );
            if seen.insert(key) {
                out.push(entry);
            }
        }
    }
    out
}

/// `prompb.MetricMetadata_MetricType` of a type name; unknown for anything
/// else, as `metricTypeToMetricTypeProto`.
fn type_number(kind: &str) -> i32 {
    match kind {
        "counter" => 1,
        "gauge" => 2,
        "histogram" => 3,
        "gaugehistogram" => 4,
        "summary" => 5,
        "info" => 6,
        "stateset" => 7,
        _ => 0,
    }
}

/// Sends one request until it is accepted or refused for good; false when
/// stopped first.
async fn send(
    settings: &Settings,
    client: &Client,
    m: &QueueMetrics,
    entries: &[MetricMetadata],
    stop: &CancellationToken,
) -> bool {
    let req = WriteRequest {
        timeseries: Vec::new(),
        metadata: entries.to_vec(),
    };
    let raw = req.encode_to_vec();
    // Compressing a slice into a fresh buffer fails only past 4 GiB.
    let body = hyper::body::Bytes::from(
        snap::raw::Encoder::new()
            .compress_vec(&raw)
            .unwrap_or_default(),
    );
    let n = entries.len() as u64;
    let mut backoff = settings.min_backoff;
    loop {
        let began = Instant::now();
        let res = client.send_encoded(body.clone()).await;
        m.observe_batch(began.elapsed());
        match res {
            Ok(()) => {
                m.metadata.fetch_add(n, Ordering::Relaxed);
                m.metadata_bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                return true;
            }
            Err(e) if e.is_recoverable() => {
                let sleep = match e.retry_after() {
                    Some(d) => {
                        info!(remote_name = %m.remote_name, duration = ?d, "Retrying after duration specified by Retry-After header");
                        d
                    }
                    None => backoff,
                };
                warn!(remote_name = %m.remote_name, url = %m.url, error = %e, "Failed to send metadata, retrying");
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(sleep) => {}
                }
                m.metadata_retried.fetch_add(n, Ordering::Relaxed);
                backoff = (sleep * 2).min(settings.max_backoff);
            }
            Err(e) => {
                error!(remote_name = %m.remote_name, url = %m.url, count = n, error = %e, "non-recoverable error while sending metadata");
                m.metadata_failed.fetch_add(n, Ordering::Relaxed);
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::scrape::status::{ActiveTarget, DroppedTarget, MetricMetadata as Scraped};

    struct Two;

    fn md(metric: &str, kind: &str, help: &str) -> Scraped {
        Scraped {
            metric: metric.into(),
            kind: kind.into(),
            help: help.into(),
            unit: String::new(),
        }
    }

    impl TargetsSource for Two {
        fn active_targets(&self) -> Vec<ActiveTarget> {
            Vec::new()
        }
        fn dropped_targets(&self) -> Vec<DroppedTarget> {
            Vec::new()
        }
        fn metadata(&self) -> Vec<(Labels, Vec<Scraped>)> {
            vec![
                (
                    Labels::from_pairs([("instance", "a")]),
                    vec![md("up_a", "gauge", "x"), md("req", "counter", "Requests.")],
                ),
                (
                    Labels::from_pairs([("instance", "b")]),
                    vec![
                        md("req", "counter", "Requests."),
                        md("req", "counter", "Other help."),
                        md("lat", "histogram", ""),
                        md("odd", "untyped", ""),
                    ],
                ),
            ]
        }
    }

    #[test]
    fn entries_are_deduplicated_and_typed_as_prompb() {
        let got = collect(&Two);
        let names: Vec<(&str, i32, &str)> = got
            .iter()
            .map(|m| (m.metric_family_name.as_str(), m.r#type, m.help.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("up_a", 2, "x"),
                ("req", 1, "Requests."),
                ("req", 1, "Other help."),
                ("lat", 3, ""),
                ("odd", 0, ""),
            ]
        );
    }
}
