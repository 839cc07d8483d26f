//! Prometheus's configuration file: YAML text → validated [`Config`].
//!
//! Follows Prometheus 2.42's `config/config.go`: the same defaults (filled in
//! here, so users of [`Config`] never see a missing value), the same
//! validation and the same error wording, including yaml.v2's
//! `line N: field X not found in type T` for unknown fields. Relabeling rules
//! and the duration format live in submodules because scraping, PromQL and
//! the HTTP API reuse them. This module reads the file but knows nothing of
//! discovery, scraping or storage.

mod duration;
mod env_expand;
pub(crate) mod glob;
pub mod http_client;
mod marshal;
mod raw;
mod relabel;
mod remote_write;
mod sections;
pub mod unimplemented;
mod units;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

pub use duration::{DurationError, format_duration, parse_duration};
pub use env_expand::os_expand;
pub use http_client::{
    Authorization, BasicAuth, HttpClientConfig, OAuth2, TlsConfig, TlsVersion, UNSUPPORTED_OAUTH2,
};
pub use relabel::{
    Action, DEFAULT_REGEX, DEFAULT_REPLACEMENT, DEFAULT_SEPARATOR, Regexp, RelabelConfig,
    RelabelError, hashmod, is_valid_label_name, process, process_builder, process_cow,
};
pub use remote_write::{MetadataConfig, QueueConfig};
pub use units::{SizeError, format_size, parse_size};

use crate::model::Labels;
use crate::model::gofmt::go_quote as q;
use raw::{RawConfig, RawFileSd, RawHttpSd, RawRelabel, RawRemoteWrite, RawScrape, RawStatic};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read; worded like Go's `os.ReadFile` error.
    #[error("open {path}: {reason}")]
    Read {
        path: String,
        reason: String,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid configuration.
    #[error("parsing YAML file {file}: {message}")]
    Invalid {
        file: String,
        message: String,
        /// The 1-based line of a YAML-level error, when known.
        line: Option<usize>,
        /// The offending field name of an unknown-field or type error.
        field: Option<String>,
    },
}

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
/// configuration file's directory by [`load_file`].
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

/// Reads and validates a configuration file, resolving relative paths in it
/// against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: shown.clone(),
        reason: io_reason(&source),
        source,
    })?;
    let mut cfg = parse(&text, &shown)?;
    if let Some(dir) = path.parent() {
        cfg.set_directory(dir);
    }
    Ok(cfg)
}

/// Go's wording for the common read failures.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => e.to_string(),
    }
}

/// Parses and validates configuration text; `source` names it in errors.
pub fn parse(text: &str, source: &str) -> Result<Config, Error> {
    let invalid = |message: String| Error::Invalid {
        file: source.to_string(),
        message,
        line: None,
        field: None,
    };
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        match serde_norway::from_str::<Option<RawConfig>>(text) {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                let t = raw::translate(&e);
                return Err(Error::Invalid {
                    file: source.to_string(),
                    message: t.message,
                    line: t.line,
                    field: t.field,
                });
            }
        }
    };
    let mut cfg = from_raw(raw).map_err(invalid)?;
    cfg.original_yaml = text.to_string();
    // The text parsed above, so it parses as a plain document too.
    if let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(text) {
        cfg.unimplemented = unimplemented::find(&doc);
    }
    Ok(cfg)
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

/// What `raymon check config` prints, in promtool's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutput {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// Checks configuration files as `promtool check config` does: syntax and
/// validation, plus a warning for `file_sd_configs` files that do not exist
/// and one for each section raymon does not implement.
pub fn check(paths: &[&Path]) -> CheckOutput {
    let mut out = CheckOutput {
        stdout: String::new(),
        stderr: String::new(),
        success: true,
    };
    for path in paths {
        let shown = path.display().to_string();
        out.stdout.push_str(&format!("Checking {shown}\n"));
        match load_file(path) {
            Ok(cfg) => {
                for sc in &cfg.scrape_configs {
                    for f in sc.file_sd_configs.iter().flat_map(|f| &f.files) {
                        if !glob::has_match(f) {
                            out.stdout.push_str(&format!(
                                "  WARNING: file {f:?} for file_sd in scrape job {:?} does not exist\n",
                                sc.job_name
                            ));
                        }
                    }
                }
                for u in &cfg.unimplemented {
                    out.stdout.push_str(&format!("  WARNING: {u}\n"));
                }
                if !cfg.rule_files.is_empty() {
                    out.stdout.push_str(&format!(
                        "  SUCCESS: {} rule files found\n",
                        cfg.rule_files.len()
                    ));
                }
                out.stdout.push_str(&format!(
                    " SUCCESS: {shown} is valid prometheus config file syntax\n"
                ));
            }
            Err(e) => {
                out.stderr.push_str(&format!("  FAILED: {e}\n"));
                out.success = false;
            }
        }
        out.stdout.push('\n');
    }
    out
}

fn dur(field: Option<&str>, default: Duration) -> Result<Duration, String> {
    match field {
        None => Ok(default),
        Some(s) => {
            let d = parse_duration(s).map_err(|e| e.to_string())?;
            Ok(if d.is_zero() { default } else { d })
        }
    }
}

fn from_raw(raw: RawConfig) -> Result<Config, String> {
    let mut cfg = Config {
        global: global_from_raw(raw.global.unwrap_or_default())?,
        alerting: raw.alerting,
        storage: raw.storage,
        tracing: raw.tracing,
        remote_read: raw.remote_read,
        ..Config::default()
    };
    for rf in raw.rule_files.unwrap_or_default() {
        if !valid_rule_path(&rf) {
            return Err(format!("invalid rule file path {}", q(&rf)));
        }
        cfg.rule_files.push(rf);
    }
    let mut jobs = HashSet::new();
    for sc in raw.scrape_configs.unwrap_or_default() {
        let sc = sc.ok_or("empty or null scrape config section")?;
        let sc = scrape_from_raw(sc, &cfg.global)?;
        if !jobs.insert(sc.job_name.clone()) {
            return Err(format!(
                "found multiple scrape configs with job name {}",
                q(&sc.job_name)
            ));
        }
        cfg.scrape_configs.push(sc);
    }
    let mut names = HashSet::new();
    for rw in raw.remote_write.unwrap_or_default() {
        let rw = rw.ok_or("empty or null remote write config section")?;
        let rw = remote_write_from_raw(rw)?;
        if !rw.name.is_empty() && !names.insert(rw.name.clone()) {
            return Err(format!(
                "found multiple remote write configs with job name {}",
                q(&rw.name)
            ));
        }
        cfg.remote_write.push(rw);
    }
    Ok(cfg)
}

/// `^[^*]*(\*[^/]*)?$`: at most one `*`, and only in the last path element.
fn valid_rule_path(p: &str) -> bool {
    match p.split_once('*') {
        None => true,
        Some((_, after)) => !after.contains('*') && !after.contains('/'),
    }
}

fn global_from_raw(g: raw::RawGlobal) -> Result<GlobalConfig, String> {
    let external_labels = labels_from_map(g.external_labels.unwrap_or_default())?;
    let scrape_interval = dur(g.scrape_interval.as_deref(), DEFAULT_SCRAPE_INTERVAL)?;
    let timeout = dur(g.scrape_timeout.as_deref(), Duration::ZERO)?;
    if timeout > scrape_interval {
        return Err("global scrape timeout greater than scrape interval".to_string());
    }
    let scrape_timeout = if timeout.is_zero() {
        DEFAULT_SCRAPE_TIMEOUT.min(scrape_interval)
    } else {
        timeout
    };
    Ok(GlobalConfig {
        scrape_interval,
        scrape_timeout,
        evaluation_interval: dur(
            g.evaluation_interval.as_deref(),
            DEFAULT_EVALUATION_INTERVAL,
        )?,
        query_log_file: g.query_log_file.unwrap_or_default(),
        external_labels,
    })
}

/// A YAML label map, with Prometheus's name and value checks.
fn labels_from_map(m: BTreeMap<String, String>) -> Result<Labels, String> {
    for name in m.keys() {
        if !is_valid_label_name(name) {
            return Err(format!("{} is not a valid label name", q(name)));
        }
    }
    Ok(Labels::from_pairs(m))
}

fn relabels_from_raw(
    list: Option<Vec<Option<RawRelabel>>>,
    null_msg: &str,
) -> Result<Vec<RelabelConfig>, String> {
    list.unwrap_or_default()
        .into_iter()
        .map(|r| {
            let r = r.ok_or_else(|| null_msg.to_string())?;
            relabel_from_raw(r).map_err(|e| e.to_string())
        })
        .collect()
}

fn relabel_from_raw(r: RawRelabel) -> Result<RelabelConfig, RelabelError> {
    for name in r.source_labels.iter().flatten() {
        if !is_valid_label_name(name) {
            return Err(RelabelError::InvalidLabelName(name.clone()));
        }
    }
    let regex = match &r.regex {
        None => Regexp::new(DEFAULT_REGEX)?,
        Some(s) => Regexp::new(s)?,
    };
    let action = match &r.action {
        None => Action::Replace,
        Some(a) => Action::parse(a)?,
    };
    let cfg = RelabelConfig {
        source_labels: r.source_labels.unwrap_or_default(),
        separator: r.separator.unwrap_or_else(|| DEFAULT_SEPARATOR.to_string()),
        regex,
        modulus: r.modulus.unwrap_or(0),
        target_label: r.target_label.unwrap_or_default(),
        replacement: r
            .replacement
            .unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string()),
        action,
    };
    cfg.validate()?;
    Ok(cfg)
}

fn scrape_from_raw(mut r: RawScrape, global: &GlobalConfig) -> Result<ScrapeConfig, String> {
    let http = r.take_http();
    let interval = dur(r.scrape_interval.as_deref(), Duration::ZERO)?;
    let timeout = dur(r.scrape_timeout.as_deref(), Duration::ZERO)?;
    let body_size_limit = match r.body_size_limit.as_deref() {
        None | Some("") => 0,
        Some(s) => parse_size(s).map_err(|e| e.to_string())?,
    };
    let relabel_configs = relabels_from_raw(
        r.relabel_configs.take(),
        "empty or null target relabeling rule in scrape config",
    )?;
    let metric_relabel_configs = relabels_from_raw(
        r.metric_relabel_configs.take(),
        "empty or null metric relabeling rule in scrape config",
    )?;
    let static_configs = r
        .static_configs
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|s| static_from_raw(s.unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()?;
    let file_sd_configs = r
        .file_sd_configs
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|f| file_sd_from_raw(f.unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()?;
    let http_sd_configs = r
        .http_sd_configs
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|h| http_sd_from_raw(h.unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()?;

    let job_name = r.job_name.unwrap_or_default();
    if job_name.is_empty() {
        return Err("job_name is empty".to_string());
    }
    let http_client = http_client::from_raw(http)?;
    if relabel_configs.is_empty() {
        for t in static_configs.iter().flat_map(|s| &s.targets) {
            if t.contains('/') {
                return Err(format!("{} is not a valid hostname", q(t)));
            }
        }
    }
    let scrape_interval = if interval.is_zero() {
        global.scrape_interval
    } else {
        interval
    };
    if timeout > scrape_interval {
        return Err(format!(
            "scrape timeout greater than scrape interval for scrape config with job name {}",
            q(&job_name)
        ));
    }
    let scrape_timeout = if timeout.is_zero() {
        global.scrape_timeout.min(scrape_interval)
    } else {
        timeout
    };
    Ok(ScrapeConfig {
        job_name,
        honor_labels: r.honor_labels.unwrap_or(false),
        honor_timestamps: r.honor_timestamps.unwrap_or(true),
        params: r.params.unwrap_or_default(),
        scrape_interval,
        scrape_timeout,
        metrics_path: r
            .metrics_path
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/metrics".to_string()),
        scheme: r
            .scheme
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "http".to_string()),
        body_size_limit,
        sample_limit: r.sample_limit.unwrap_or(0),
        target_limit: r.target_limit.unwrap_or(0),
        label_limit: r.label_limit.unwrap_or(0),
        label_name_length_limit: r.label_name_length_limit.unwrap_or(0),
        label_value_length_limit: r.label_value_length_limit.unwrap_or(0),
        http_client,
        static_configs,
        file_sd_configs,
        http_sd_configs,
        relabel_configs,
        metric_relabel_configs,
    })
}

fn static_from_raw(s: RawStatic) -> Result<StaticConfig, String> {
    Ok(StaticConfig {
        targets: s.targets.unwrap_or_default(),
        labels: labels_from_map(s.labels.unwrap_or_default())?,
    })
}

fn file_sd_from_raw(f: RawFileSd) -> Result<FileSdConfig, String> {
    let files = f.files.unwrap_or_default();
    if files.is_empty() {
        return Err(
            "file service discovery config must contain at least one path name".to_string(),
        );
    }
    for name in &files {
        if !valid_file_sd_name(name) {
            return Err(format!(
                "path name {} is not valid for file discovery",
                q(name)
            ));
        }
    }
    Ok(FileSdConfig {
        files,
        refresh_interval: dur(f.refresh_interval.as_deref(), DEFAULT_FILE_SD_REFRESH)?,
    })
}

/// Prometheus 2.42's `http.SDConfig` checks, in its order.
fn http_sd_from_raw(mut h: RawHttpSd) -> Result<HttpSdConfig, String> {
    let http = h.take_http();
    let refresh_interval = dur(h.refresh_interval.as_deref(), DEFAULT_HTTP_SD_REFRESH)?;
    let url = h.url.unwrap_or_default();
    if url.is_empty() {
        return Err("URL is missing".to_string());
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "URL scheme must be 'http' or 'https'".to_string())?;
    if scheme != "http" && scheme != "https" {
        return Err("URL scheme must be 'http' or 'https'".to_string());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .is_empty()
    {
        return Err("host is missing in URL".to_string());
    }
    Ok(HttpSdConfig {
        url,
        refresh_interval,
        http_client: http_client::from_raw_unvalidated(http)?,
    })
}

/// `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`.
fn valid_file_sd_name(name: &str) -> bool {
    let ext_ok = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"]
        .iter()
        .any(|e| name.ends_with(e));
    ext_ok && valid_rule_path(name)
}

/// Headers Prometheus will not let users override on remote write.
const RESERVED_HEADERS: [&str; 13] = [
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
];

fn remote_write_from_raw(mut r: RawRemoteWrite) -> Result<RemoteWriteConfig, String> {
    let http = r.take_http();
    let remote_timeout = dur(r.remote_timeout.as_deref(), DEFAULT_REMOTE_TIMEOUT)?;
    let write_relabel_configs = relabels_from_raw(
        r.write_relabel_configs.take(),
        "empty or null relabeling rule in remote write config",
    )?;
    let url = r.url.unwrap_or_default();
    if url.is_empty() {
        return Err("url for remote_write is empty".to_string());
    }
    let headers = r.headers.unwrap_or_default();
    for h in headers.keys() {
        let lower = h.to_ascii_lowercase();
        if lower == "authorization" {
            return Err("authorization header must be changed via the basic_auth, authorization, oauth2, or sigv4 parameter".to_string());
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!("{h} is a reserved header. It must not be changed"));
        }
    }
    Ok(RemoteWriteConfig {
        url,
        name: r.name.unwrap_or_default(),
        remote_timeout,
        headers,
        write_relabel_configs,
        send_exemplars: r.send_exemplars.unwrap_or(false),
        send_native_histograms: r.send_native_histograms.unwrap_or(false),
        http_client: http_client::from_raw(http)?,
        queue_config: remote_write::queue_from_raw(r.queue_config.take())?,
        metadata_config: remote_write::metadata_from_raw(r.metadata_config.take())?,
        sigv4: r.sigv4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gets_defaults() {
        let c = parse("", "empty.yml").unwrap();
        assert_eq!(c.global, GlobalConfig::default());
        assert!(c.scrape_configs.is_empty());
        let c = parse("global:\n", "g.yml").unwrap();
        assert_eq!(c.global.scrape_interval, Duration::from_secs(60));
    }

    #[test]
    fn parsed_minimal_job_equals_default() {
        let c = parse("scrape_configs:\n- job_name: j\n", "j.yml").unwrap();
        let want = ScrapeConfig {
            job_name: "j".into(),
            ..ScrapeConfig::default()
        };
        assert_eq!(c.scrape_configs[0], want);
    }

    #[test]
    fn short_interval_caps_default_timeout() {
        let c = parse("global:\n  scrape_interval: 5s\n", "g.yml").unwrap();
        assert_eq!(c.global.scrape_timeout, Duration::from_secs(5));
    }

    #[test]
    fn rule_and_file_sd_paths() {
        assert!(valid_rule_path("rules/*.yml"));
        assert!(!valid_rule_path("rules/*/x.yml"));
        assert!(!valid_rule_path("a*b*c"));
        assert!(valid_file_sd_name("/tmp/x.json"));
        assert!(valid_file_sd_name("sd/*.yaml"));
        assert!(!valid_file_sd_name("/tmp/x.txt"));
    }
}
