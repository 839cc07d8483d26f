//! From discovered labels to a scrape target, as Prometheus's
//! `PopulateLabels`: defaults, `relabel_configs`, `instance`, the URL.

use std::time::Duration;

use crate::config::ScrapeConfig;
use crate::config::{format_duration, parse_duration, process as relabel_process};
use crate::discovery::ADDRESS_LABEL;
use crate::model::{Labels, LabelsBuilder};

pub const SCHEME_LABEL: &str = "__scheme__";
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub const PARAM_PREFIX: &str = "__param_";
pub const META_PREFIX: &str = "__meta_";
pub const INSTANCE_LABEL: &str = "instance";
pub const JOB_LABEL: &str = "job";

/// A target ready to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Labels before relabeling.
    pub discovered: Labels,
    /// Labels after relabeling, `__meta_*` removed; `__`-prefixed ones kept.
    pub labels: Labels,
    /// The labels every sample gets: `labels` without `__`-prefixed ones.
    pub public: Labels,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// Identity of the target within its pool: same labels and URL, same target.
    pub fn hash(&self) -> u64 {
        self.labels.stable_hash() ^ fnv(self.url.as_bytes())
    }
}

/// What became of one discovered target.
#[derive(Debug)]
pub enum Outcome {
    Active(Target),
    /// Relabeling dropped it; carries the discovered labels.
    Dropped(Labels),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no address")]
    NoAddress,
    #[error("invalid {label} label: {msg}")]
    Invalid { label: &'static str, msg: String },
    #[error("scrape timeout cannot be greater than scrape interval ({timeout:?} > {interval:?})")]
    TimeoutOverInterval { timeout: String, interval: String },
}

/// Applies defaults and `relabel_configs` to one discovered target.
pub fn populate(group: &Labels, target: &Labels, cfg: &ScrapeConfig) -> Result<Outcome, Error> {
    let mut b = LabelsBuilder::with_capacity(target.len() + group.len() + 6);
    for l in target {
        b.set(l.name.clone(), l.value.clone());
    }
    for l in group {
        if b.get(&l.name).is_none() {
            b.set(l.name.clone(), l.value.clone());
        }
    }
    let defaults = [
        (JOB_LABEL, cfg.job_name.clone()),
        (SCRAPE_INTERVAL_LABEL, format_duration(cfg.scrape_interval)),
        (SCRAPE_TIMEOUT_LABEL, format_duration(cfg.scrape_timeout)),
        (METRICS_PATH_LABEL, cfg.metrics_path.clone()),
        (SCHEME_LABEL, cfg.scheme.clone()),
    ];
    for (name, value) in defaults {
        if b.get(name).is_none() {
            b.set(name.to_string(), value);
        }
    }
    for (name, values) in &cfg.params {
        let key = format!("{PARAM_PREFIX}{name}");
        if let Some(first) = values.first()
            && b.get(&key).is_none()
        {
            b.set(key, first.clone());
        }
    }
    let discovered = b.build();
    let Some(relabeled) = relabel_process(&discovered, &cfg.relabel_configs) else {
        return Ok(Outcome::Dropped(discovered));
    };
    let mut b = relabeled.builder();
    let addr = match b.get(ADDRESS_LABEL) {
        Some(a) if !a.is_empty() => a.to_string(),
        _ => return Err(Error::NoAddress),
    };
    let scheme = b.get(SCHEME_LABEL).unwrap_or("http").to_string();
    let addr = add_port(&addr, &scheme);
    b.set(ADDRESS_LABEL.to_string(), addr.clone());
    let interval = label_duration(&b, SCRAPE_INTERVAL_LABEL, cfg.scrape_interval)?;
    let timeout = label_duration(&b, SCRAPE_TIMEOUT_LABEL, cfg.scrape_timeout)?;
    if timeout > interval {
        return Err(Error::TimeoutOverInterval {
            timeout: format_duration(timeout),
            interval: format_duration(interval),
        });
    }
    b.retain(|l| !l.name.starts_with(META_PREFIX));
    if b.get(INSTANCE_LABEL).is_none() {
        b.set(INSTANCE_LABEL.to_string(), addr.clone());
    }
    let labels = b.build();
    let public = Labels::from_sorted(
        labels
            .iter()
            .filter(|l| !l.name.starts_with("__"))
            .cloned()
            .collect(),
    );
    let url = build_url(&labels, &scheme, &addr, cfg);
    Ok(Outcome::Active(Target {
        discovered,
        labels,
        public,
        url,
        interval,
        timeout,
    }))
}

fn label_duration(
    b: &LabelsBuilder,
    label: &'static str,
    default: Duration,
) -> Result<Duration, Error> {
    match b.get(label) {
        None => Ok(default),
        Some(v) => parse_duration(v).map_err(|e| Error::Invalid {
            label,
            msg: e.to_string(),
        }),
    }
}

/// Prometheus 2.x infers a missing port from the scheme.
fn add_port(addr: &str, scheme: &str) -> String {
    let has_port = if let Some(rest) = addr.strip_prefix('[') {
        rest.contains("]:")
    } else {
        addr.contains(':')
    };
    if has_port {
        return addr.to_string();
    }
    match scheme {
        "https" => format!("{addr}:443"),
        _ => format!("{addr}:80"),
    }
}

fn build_url(labels: &Labels, scheme: &str, addr: &str, cfg: &ScrapeConfig) -> String {
    let path = labels.get(METRICS_PATH_LABEL).unwrap_or("/metrics");
    let mut url = format!("{scheme}://{addr}{path}");
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, values) in &cfg.params {
        let key = format!("{PARAM_PREFIX}{name}");
        match labels.get(&key) {
            Some(v) => params.push((name.clone(), v.to_string())),
            None => params.extend(values.iter().map(|v| (name.clone(), v.clone()))),
        }
    }
    for l in labels {
        if let Some(name) = l.name.strip_prefix(PARAM_PREFIX)
            && !cfg.params.contains_key(name)
        {
            params.push((name.to_string(), l.value.clone()));
        }
    }
    for (i, (k, v)) in params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&query_escape(k));
        url.push('=');
        url.push_str(&query_escape(v));
    }
    url
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
