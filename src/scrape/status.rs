//! What the scraper reports about its targets, for `/api/v1/targets` and
//! `/api/v1/metadata`. Plain data: no IO, no locks.

use std::time::{Duration, SystemTime};

use crate::model::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
    Unknown,
}

impl Health {
    /// The string Prometheus puts in `health`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

/// A target that is being scraped.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    /// Labels before relabeling (with `__address__`, `__meta_*`, ...).
    pub discovered_labels: Labels,
    /// Labels after relabeling, without `__`-prefixed ones.
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    /// The URL with the target's hostname, as Prometheus's `globalUrl`.
    pub global_url: String,
    pub last_error: String,
    /// `None` before the first scrape.
    pub last_scrape: Option<SystemTime>,
    pub last_scrape_duration: Duration,
    pub health: Health,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
}

/// A target that relabeling dropped.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub discovered_labels: Labels,
}

/// HELP/TYPE/UNIT seen for one metric family on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricMetadata {
    pub metric: String,
    /// Prometheus's type names: counter, gauge, histogram, gaugehistogram,
    /// summary, info, stateset, unknown.
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Read access to the scraper's state.
pub trait TargetsSource: Send + Sync {
    fn active_targets(&self) -> Vec<ActiveTarget>;
    fn dropped_targets(&self) -> Vec<DroppedTarget>;
    /// Metadata per active target: the target's labels and what it exposed.
    fn metadata(&self) -> Vec<(Labels, Vec<MetricMetadata>)>;
}
