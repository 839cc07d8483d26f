//! A `remote_write` section's `queue_config` and `metadata_config`, with
//! Prometheus 2.42's defaults (`config/config.go`: `DefaultQueueConfig`,
//! `DefaultMetadataConfig`) and its printed form. Knows nothing of sending.

use std::time::Duration;

use serde::Deserialize;
use serde_norway::{Mapping, Value};

use super::duration::{format_duration, parse_duration};

/// `queue_config`: how one remote write queue batches, shards and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Samples buffered per shard before reading the WAL waits.
    pub capacity: usize,
    pub max_shards: usize,
    pub min_shards: usize,
    pub max_samples_per_send: usize,
    /// The longest a sample waits in a shard for its batch to fill.
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Whether a 429 answer is retried (honouring `Retry-After`); when
    /// false it drops the batch like any other 4xx, as in Prometheus 2.42.
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            capacity: 2500,
            max_shards: 200,
            min_shards: 1,
            max_samples_per_send: 500,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
        }
    }
}

/// `metadata_config`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataConfig {
    pub send: bool,
    pub send_interval: Duration,
    pub max_samples_per_send: usize,
}

impl Default for MetadataConfig {
    fn default() -> MetadataConfig {
        MetadataConfig {
            send: true,
            send_interval: Duration::from_secs(60),
            max_samples_per_send: 500,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    capacity: Option<i64>,
    max_shards: Option<i64>,
    min_shards: Option<i64>,
    max_samples_per_send: Option<i64>,
    batch_send_deadline: Option<String>,
    min_backoff: Option<String>,
    max_backoff: Option<String>,
    retry_on_http_429: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetadata {
    send: Option<bool>,
    send_interval: Option<String>,
    max_samples_per_send: Option<i64>,
}

/// A count where Go's zero value (or a missing field) means the default.
/// Negative counts are refused: Prometheus would start no shard at all.
fn count(v: Option<i64>, default: usize, field: &str) -> Result<usize, String> {
    match v {
        None | Some(0) => Ok(default),
        Some(n) if n < 0 => Err(format!("queue_config: {field} must be positive, got {n}")),
        Some(n) => Ok(n as usize),
    }
}

fn duration(v: Option<&str>, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) => {
            let d = parse_duration(s).map_err(|e| e.to_string())?;
            Ok(if d.is_zero() { default } else { d })
        }
    }
}

pub(crate) fn queue_from_raw(r: Option<RawQueue>) -> Result<QueueConfig, String> {
    let r = r.unwrap_or_default();
    let d = QueueConfig::default();
    let q = QueueConfig {
        capacity: count(r.capacity, d.capacity, "capacity")?,
        max_shards: count(r.max_shards, d.max_shards, "max_shards")?,
        min_shards: count(r.min_shards, d.min_shards, "min_shards")?,
        max_samples_per_send: count(
            r.max_samples_per_send,
            d.max_samples_per_send,
            "max_samples_per_send",
        )?,
        batch_send_deadline: duration(r.batch_send_deadline.as_deref(), d.batch_send_deadline)?,
        min_backoff: duration(r.min_backoff.as_deref(), d.min_backoff)?,
        max_backoff: duration(r.max_backoff.as_deref(), d.max_backoff)?,
        retry_on_http_429: r.retry_on_http_429.unwrap_or(false),
    };
    if q.min_shards > q.max_shards {
        return Err(format!(
            "queue_config: min_shards ({}) is above max_shards ({})",
            q.min_shards, q.max_shards
        ));
    }
    Ok(q)
}

pub(crate) fn metadata_from_raw(r: Option<RawMetadata>) -> Result<MetadataConfig, String> {
    let Some(r) = r else {
        return Ok(MetadataConfig::default());
    };
    let d = MetadataConfig::default();
    Ok(MetadataConfig {
        // Prometheus unmarshals into its defaults, so a section that says
        // nothing of `send` keeps `send: true` (2.42's `/api/v1/status/config`
        // prints it so).
        send: r.send.unwrap_or(d.send),
        send_interval: duration(r.send_interval.as_deref(), d.send_interval)?,
        max_samples_per_send: count(
            r.max_samples_per_send,
            d.max_samples_per_send,
            "max_samples_per_send",
        )?,
    })
}

/// `queue_config` as `/api/v1/status/config` prints it.
pub(crate) fn queue_to_yaml(q: &QueueConfig) -> Value {
    let mut m = Mapping::new();
    m.insert("capacity".into(), (q.capacity as u64).into());
    m.insert("max_shards".into(), (q.max_shards as u64).into());
    m.insert("min_shards".into(), (q.min_shards as u64).into());
    m.insert(
        "max_samples_per_send".into(),
        (q.max_samples_per_send as u64).into(),
    );
    for (k, d) in [
        ("batch_send_deadline", q.batch_send_deadline),
        ("min_backoff", q.min_backoff),
        ("max_backoff", q.max_backoff),
    ] {
        m.insert(k.into(), Value::String(format_duration(d)));
    }
    if q.retry_on_http_429 {
        m.insert("retry_on_http_429".into(), true.into());
    }
    Value::Mapping(m)
}

/// `metadata_config` as `/api/v1/status/config` prints it.
pub(crate) fn metadata_to_yaml(c: &MetadataConfig) -> Value {
    let mut m = Mapping::new();
    m.insert("send".into(), c.send.into());
    m.insert(
        "send_interval".into(),
        Value::String(format_duration(c.send_interval)),
    );
    m.insert(
        "max_samples_per_send".into(),
        (c.max_samples_per_send as u64).into(),
    );
    Value::Mapping(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_prometheus_2_42s() {
        let q = queue_from_raw(None).unwrap();
        assert_eq!(q, QueueConfig::default());
        assert_eq!(q.capacity, 2500);
        assert_eq!(q.max_samples_per_send, 500);
        assert_eq!(q.min_backoff, Duration::from_millis(30));
        let m = metadata_from_raw(None).unwrap();
        assert!(m.send);
        assert_eq!(m.send_interval, Duration::from_secs(60));
        let raw: RawMetadata = serde_norway::from_str("send_interval: 2m\n").unwrap();
        let m = metadata_from_raw(Some(raw)).unwrap();
        assert!(
            m.send,
            "a section without `send` keeps Prometheus's default"
        );
        assert_eq!(m.send_interval, Duration::from_secs(120));
        let raw: RawMetadata = serde_norway::from_str("send: false\n").unwrap();
        assert!(!metadata_from_raw(Some(raw)).unwrap().send);
    }

    #[test]
    fn bad_values_are_refused() {
        let raw: RawQueue = serde_norway::from_str("min_shards: 5\nmax_shards: 2\n").unwrap();
        assert!(
            queue_from_raw(Some(raw))
                .unwrap_err()
                .contains("min_shards")
        );
        let raw: RawQueue = serde_norway::from_str("capacity: -1\n").unwrap();
        assert!(queue_from_raw(Some(raw)).is_err());
        assert!(serde_norway::from_str::<RawQueue>("capacty: 1\n").is_err());
        let raw: RawQueue = serde_norway::from_str("min_backoff: 10x\n").unwrap();
        assert!(queue_from_raw(Some(raw)).is_err());
    }
}
