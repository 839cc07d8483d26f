//! The validated configuration: [`Config`] and its sections, with
//! Prometheus 2.42's defaults, so users of these types never see a missing
//! value.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{HttpClientConfig, MetadataConfig, QueueConfig, RelabelConfig, marshal, unimplemented};
use crate::model::Labels;

pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_FILE_SD_REFRESH: Duration = Duration::from_secs(300);
pub const DEFAULT_HTTP_SD_REFRESH: Duration = Duration::from_secs(60);
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole configuration file, defaults filled in.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub global: GlobalConfig,
    /// Kept as written; raymon evaluates no rules (warned about through
    /// `unimplemented`).
    pub rule_files: Vec<String>,
    pub scrape_configs: Vec<ScrapeConfig>,
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Checked and kept as written, like `storage`, `tracing` and
    /// `remote_read`; raymon does not act on them (warned about through
    /// `unimplemented`).
    pub alerting: Option<serde_norway::Value>,
    pub storage: Option<serde_norway::Value>,
    pub tracing: Option<serde_norway::Value>,
    pub remote_read: Option<serde_norway::Value>,
    /// The file's text, byte for byte.
    pub original_yaml: String,
    /// What the file holds that raymon does not act on
    /// ([`unimplemented::NOT_IMPLEMENTED`]).
    pub unimplemented: Vec<unimplemented::Unimplemented>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalConfig {
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub evaluation_interval: Duration,
    pub query_log_file: String,
    pub external_labels: Labels,
}

impl Default for GlobalConfig {
    fn default() -> GlobalConfig {
        GlobalConfig {
            scrape_interval: DEFAULT_SCRAPE_INTERVAL,
            scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
            evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
            query_log_file: String::new(),
            external_labels: Labels::new(),
        }
    }
}

/// One `scrape_configs` entry, with globals inherited.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub params: BTreeMap<String, Vec<String>>,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    /// Bytes; 0 means no limit.
    pub body_size_limit: u64,
    /// 0 means no limit, for this and the other limits.
    pub sample_limit: u64,
    pub target_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub http_client: HttpClientConfig,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub http_sd_configs: Vec<HttpSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// Prometheus's defaults for a job, before any global is inherited; handy
/// for building jobs in code and tests.
impl Default for ScrapeConfig {
    fn default() -> ScrapeConfig {
        ScrapeConfig {
            job_name: String::new(),
            honor_labels: false,
            honor_timestamps: true,
            params: BTreeMap::new(),
            scrape_interval: DEFAULT_SCRAPE_INTERVAL,
            scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
            metrics_path: "/metrics".to_string(),
            scheme: "http".to_string(),
            body_size_limit: 0,
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            http_client: HttpClientConfig::default(),
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            http_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
        }
    }
}

/// A `static_configs` entry: targets sharing a label set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: Labels,
}

/// A `file_sd_configs` entry. Relative paths are resolved against the
/// configuration file's directory by [`load_file`](super::load_file).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    pub refresh_interval: Duration,
}

impl Default for FileSdConfig {
    fn default() -> FileSdConfig {
        FileSdConfig {
            files: Vec::new(),
            refresh_interval: DEFAULT_FILE_SD_REFRESH,
        }
    }
}

/// An `http_sd_configs` entry: targets fetched from `url` as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSdConfig {
    pub url: String,
    pub refresh_interval: Duration,
    pub http_client: HttpClientConfig,
}

/// A `remote_write` entry, with its queue's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    pub url: String,
    pub name: String,
    pub remote_timeout: Duration,
    pub headers: BTreeMap<String, String>,
    pub write_relabel_configs: Vec<RelabelConfig>,
    pub send_exemplars: bool,
    pub send_native_histograms: bool,
    pub http_client: HttpClientConfig,
    pub queue_config: QueueConfig,
    pub metadata_config: MetadataConfig,
    pub sigv4: Option<serde_norway::Value>,
}

impl Config {
    /// Joins relative file paths with `dir`, as Prometheus's `SetDirectory`.
    pub fn set_directory(&mut self, dir: &Path) {
        let join = |p: &mut String| {
            if !p.is_empty() && !Path::new(p.as_str()).is_absolute() {
                *p = dir.join(p.as_str()).display().to_string();
            }
        };
        join(&mut self.global.query_log_file);
        self.rule_files.iter_mut().for_each(join);
        for sc in &mut self.scrape_configs {
            for f in &mut sc.file_sd_configs {
                f.files.iter_mut().for_each(join);
            }
            sc.http_client.set_directory(&join);
            for h in &mut sc.http_sd_configs {
                h.http_client.set_directory(&join);
            }
        }
        for rw in &mut self.remote_write {
            rw.http_client.set_directory(&join);
        }
    }

    /// The configuration as Prometheus's `/api/v1/status/config` prints it:
    /// defaults filled in, fields in Prometheus's order, secrets hidden.
    pub fn to_yaml(&self) -> String {
        marshal::to_yaml(self)
    }

    pub fn scrape_config(&self, job_name: &str) -> Option<&ScrapeConfig> {
        self.scrape_configs.iter().find(|s| s.job_name == job_name)
    }
}
