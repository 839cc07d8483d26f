//! The remote write self-metrics under Prometheus 2.42's names
//! (`storage/remote/queue_manager.go`, `write.go`, `tsdb/wlog/watcher.go`),
//! so that dashboards and "remote write is behind" alerts written for
//! Prometheus work unchanged. Counters are atomics bumped per batch or per
//! record, never per sample.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::selfmetrics::text::Writer;

/// `prometheus.DefBuckets` plus 25, 60, 120 and 300 s, as
/// `sent_batch_duration_seconds`.
const BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0,
];

/// One queue's counters and gauges.
#[derive(Debug)]
pub struct QueueMetrics {
    pub remote_name: String,
    pub url: String,
    pub samples: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub dropped: AtomicU64,
    pub enqueue_retries: AtomicU64,
    pub bytes: AtomicU64,
    pub pending: AtomicI64,
    pub shards: AtomicU64,
    pub shards_min: AtomicU64,
    pub shards_max: AtomicU64,
    /// `f64` bits.
    pub shards_desired: AtomicU64,
    pub capacity: AtomicU64,
    pub max_samples_per_send: AtomicU64,
    /// Milliseconds; 0 before the first send.
    pub highest_sent_ms: AtomicI64,
    /// WAL watcher: records read by type, the segment being read, and
    /// segments skipped because they were gone before they were sent.
    pub records_series: AtomicU64,
    pub records_samples: AtomicU64,
    pub current_segment: AtomicU64,
    pub segments_skipped: AtomicU64,
    /// Metric metadata entries sent, refused for good, retried, and the
    /// bytes of their requests.
    pub metadata: AtomicU64,
    pub metadata_failed: AtomicU64,
    pub metadata_retried: AtomicU64,
    pub metadata_bytes: AtomicU64,
    batch: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl QueueMetrics {
    pub fn new(remote_name: &str, url: &str) -> QueueMetrics {
        QueueMetrics {
            remote_name: remote_name.to_string(),
            url: url.to_string(),
            samples: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            enqueue_retries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            pending: AtomicI64::new(0),
            shards: AtomicU64::new(0),
            shards_min: AtomicU64::new(0),
            shards_max: AtomicU64::new(0),
            shards_desired: AtomicU64::new(0),
            capacity: AtomicU64::new(0),
            max_samples_per_send: AtomicU64::new(0),
            highest_sent_ms: AtomicI64::new(0),
            records_series: AtomicU64::new(0),
            records_samples: AtomicU64::new(0),
            current_segment: AtomicU64::new(0),
            segments_skipped: AtomicU64::new(0),
            metadata: AtomicU64::new(0),
            metadata_failed: AtomicU64::new(0),
            metadata_retried: AtomicU64::new(0),
            metadata_bytes: AtomicU64::new(0),
            batch: Mutex::new(Histogram::default()),
        }
    }

    pub fn observe_batch(&self, d: Duration) {
        let s = d.as_secs_f64();
        let mut h = self
            .batch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }
}

fn load(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}

/// Renders every queue's families, plus the storage-wide ones.
pub fn render(
    w: &mut Writer,
    queues: &[std::sync::Arc<QueueMetrics>],
    highest_in_ms: i64,
    samples_in: u64,
) {
    w.family(
        "prometheus_remote_storage_highest_timestamp_in_seconds",
        "Highest timestamp that has come into the remote storage via the Appender interface, in seconds since epoch.",
        "gauge",
    );
    w.sample(
        "prometheus_remote_storage_highest_timestamp_in_seconds",
        &[],
        (highest_in_ms.max(0) / 1000) as f64,
    );
    w.family(
        "prometheus_remote_storage_samples_in_total",
        "Samples in to remote storage, compare to samples out for queue managers.",
        "counter",
    );
    w.sample(
        "prometheus_remote_storage_samples_in_total",
        &[],
        samples_in as f64,
    );
    type Get = fn(&QueueMetrics) -> f64;
    let families: [(&str, &str, &str, Get); 19] = [
        (
            "samples_total",
            "Total number of samples sent to remote storage.",
            "counter",
            |m| load(&m.samples),
        ),
        (
            "samples_failed_total",
            "Total number of samples which failed on send to remote storage, non-recoverable errors.",
            "counter",
            |m| load(&m.failed),
        ),
        (
            "samples_retried_total",
            "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.",
            "counter",
            |m| load(&m.retried),
        ),
        (
            "samples_dropped_total",
            "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling or unintentionally because of an unknown reference ID.",
            "counter",
            |m| load(&m.dropped),
        ),
        (
            "enqueue_retries_total",
            "Total number of times enqueue has failed because a shards queue was full.",
            "counter",
            |m| load(&m.enqueue_retries),
        ),
        (
            "bytes_total",
            "The total number of bytes of data (not metadata) sent by the queue after compression.",
            "counter",
            |m| load(&m.bytes),
        ),
        (
            "samples_pending",
            "The number of samples pending in the queues shards to be sent to the remote storage.",
            "gauge",
            |m| m.pending.load(Ordering::Relaxed).max(0) as f64,
        ),
        (
            "queue_highest_sent_timestamp_seconds",
            "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.",
            "gauge",
            |m| (m.highest_sent_ms.load(Ordering::Relaxed) / 1000) as f64,
        ),
        (
            "shards",
            "The number of shards used for parallel sending to the remote storage.",
            "gauge",
            |m| load(&m.shards),
        ),
        (
            "shards_min",
            "The minimum number of shards that the queue is allowed to run.",
            "gauge",
            |m| load(&m.shards_min),
        ),
        (
            "shards_max",
            "The maximum number of shards that the queue is allowed to run.",
            "gauge",
            |m| load(&m.shards_max),
        ),
        (
            "shards_desired",
            "The number of shards that the queues shard calculation wants to run based on the rate of samples in vs. samples out.",
            "gauge",
            |m| f64::from_bits(m.shards_desired.load(Ordering::Relaxed)),
        ),
        (
            "shard_capacity",
            "The capacity of each shard of the queue used for parallel sending to the remote storage.",
            "gauge",
            |m| load(&m.capacity),
        ),
        (
            "max_samples_per_send",
            "The maximum number of samples to be sent, in a single request, to the remote storage.",
            "gauge",
            |m| load(&m.max_samples_per_send),
        ),
        (
            "metadata_total",
            "Total number of metadata entries sent to remote storage.",
            "counter",
            |m| load(&m.metadata),
        ),
        (
            "metadata_failed_total",
            "Total number of metadata entries which failed on send to remote storage, non-recoverable errors.",
            "counter",
            |m| load(&m.metadata_failed),
        ),
        (
            "metadata_retried_total",
            "Total number of metadata entries which failed on send to remote storage but were retried because the send error was recoverable.",
            "counter",
            |m| load(&m.metadata_retried),
        ),
        (
            "metadata_bytes_total",
            "The total number of bytes of metadata sent by the queue after compression.",
            "counter",
            |m| load(&m.metadata_bytes),
        ),
        (
            "wal_segments_skipped_total",
            "WAL segments deleted or unreadable before this queue sent them (raymon).",
            "counter",
            |m| load(&m.segments_skipped),
        ),
    ];
    for (suffix, help, kind, get) in families {
        let name = format!("prometheus_remote_storage_{suffix}");
        let name = if suffix == "wal_segments_skipped_total" {
            "raymon_remote_storage_wal_segments_skipped_total".to_string()
        } else {
            name
        };
        w.family(&name, help, kind);
        for q in queues {
            w.sample(
                &name,
                &[("remote_name", &q.remote_name), ("url", &q.url)],
                get(q),
            );
        }
    }
    let name = "prometheus_remote_storage_sent_batch_duration_seconds";
    w.family(
        name,
        "Duration of send calls to the remote storage.",
        "histogram",
    );
    for q in queues {
        let h = q
            .batch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = format!("{name}_bucket");
        for (i, b) in BUCKETS.iter().enumerate() {
            let le = crate::model::gofmt::format_g(*b);
            w.sample(
                &bucket,
                &[
                    ("remote_name", &q.remote_name),
                    ("url", &q.url),
                    ("le", &le),
                ],
                h.counts[i] as f64,
            );
        }
        w.sample(
            &bucket,
            &[
                ("remote_name", &q.remote_name),
                ("url", &q.url),
                ("le", "+Inf"),
            ],
            h.count as f64,
        );
        w.sample(
            &format!("{name}_sum"),
            &[("remote_name", &q.remote_name), ("url", &q.url)],
            h.sum,
        );
        w.sample(
            &format!("{name}_count"),
            &[("remote_name", &q.remote_name), ("url", &q.url)],
            h.count as f64,
        );
    }
    w.family(
        "prometheus_wal_watcher_records_read_total",
        "Number of records read by the WAL watcher from the WAL.",
        "counter",
    );
    for q in queues {
        for (typ, a) in [
            ("samples", &q.records_samples),
            ("series", &q.records_series),
        ] {
            w.sample(
                "prometheus_wal_watcher_records_read_total",
                &[("consumer", &q.remote_name), ("type", typ)],
                load(a),
            );
        }
    }
    w.family(
        "prometheus_wal_watcher_current_segment",
        "Current segment the WAL watcher is reading records from.",
        "gauge",
    );
    for q in queues {
        w.sample(
            "prometheus_wal_watcher_current_segment",
            &[("consumer", &q.remote_name)],
            load(&q.current_segment),
        );
    }
}
