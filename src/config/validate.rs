//! From the YAML's raw shapes to a [`Config`]: inheriting the globals,
//! filling in defaults and checking each value with Prometheus's rules and
//! error wording.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::raw::{
    self, RawConfig, RawFileSd, RawHttpSd, RawRelabel, RawRemoteWrite, RawScrape, RawStatic,
};
use super::*;
use crate::model::Labels;
use crate::model::gofmt::go_quote as q;

fn dur(field: Option<&str>, default: Duration) -> Result<Duration, String> {
    match field {
        None => Ok(default),
        Some(s) => {
            let d = parse_duration(s).map_err(|e| e.to_string())?;
            Ok(if d.is_zero() { default } else { d })
        }
    }
}

pub(super) fn from_raw(raw: RawConfig) -> Result<Config, String> {
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
