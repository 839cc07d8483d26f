//! [`Config`] back to YAML, in the shape Prometheus's `/api/v1/status/config`
//! returns: defaults filled in, Go's field order and `omitempty` rules, and
//! secrets shown as `<secret>`.

use serde_norway::{Mapping, Value};

use super::{
    Config, HttpClientConfig, RelabelConfig, ScrapeConfig, TlsConfig, format_duration, format_size,
};
use crate::model::Labels;

const SECRET: &str = "<secret>";

pub(super) fn to_yaml(c: &Config) -> String {
    let mut top = Mapping::new();
    let mut g = Mapping::new();
    put(
        &mut g,
        "scrape_interval",
        format_duration(c.global.scrape_interval),
    );
    put(
        &mut g,
        "scrape_timeout",
        format_duration(c.global.scrape_timeout),
    );
    put(
        &mut g,
        "evaluation_interval",
        format_duration(c.global.evaluation_interval),
    );
    put_str(&mut g, "query_log_file", &c.global.query_log_file);
    if !c.global.external_labels.is_empty() {
        g.insert("external_labels".into(), labels(&c.global.external_labels));
    }
    top.insert("global".into(), Value::Mapping(g));
    if let Some(a) = &c.alerting {
        top.insert("alerting".into(), a.clone());
    }
    if !c.rule_files.is_empty() {
        top.insert("rule_files".into(), strings(&c.rule_files));
    }
    if !c.scrape_configs.is_empty() {
        let list = c.scrape_configs.iter().map(scrape).collect();
        top.insert("scrape_configs".into(), Value::Sequence(list));
    }
    for (key, v) in [("storage", &c.storage), ("tracing", &c.tracing)] {
        if let Some(v) = v {
            top.insert(key.into(), v.clone());
        }
    }
    if !c.remote_write.is_empty() {
        let list = c
            .remote_write
            .iter()
            .map(|rw| {
                let mut m = Mapping::new();
                put(&mut m, "url", rw.url.clone());
                put(&mut m, "remote_timeout", format_duration(rw.remote_timeout));
                if !rw.headers.is_empty() {
                    let h = rw
                        .headers
                        .iter()
                        .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                        .collect();
                    m.insert("headers".into(), Value::Mapping(h));
                }
                put_str(&mut m, "name", &rw.name);
                if !rw.write_relabel_configs.is_empty() {
                    m.insert(
                        "write_relabel_configs".into(),
                        relabels(&rw.write_relabel_configs),
                    );
                }
                m.insert("send_exemplars".into(), rw.send_exemplars.into());
                m.insert(
                    "send_native_histograms".into(),
                    rw.send_native_histograms.into(),
                );
                http(&mut m, &rw.http_client);
                m.insert(
                    "queue_config".into(),
                    super::remote_write::queue_to_yaml(&rw.queue_config),
                );
                m.insert(
                    "metadata_config".into(),
                    super::remote_write::metadata_to_yaml(&rw.metadata_config),
                );
                if let Some(v) = &rw.sigv4 {
                    m.insert("sigv4".into(), v.clone());
                }
                Value::Mapping(m)
            })
            .collect();
        top.insert("remote_write".into(), Value::Sequence(list));
    }
    if let Some(v) = &c.remote_read {
        top.insert("remote_read".into(), v.clone());
    }
    let text = serde_norway::to_string(&Value::Mapping(top)).unwrap_or_default();
    restore_flow_lists(&text)
}

/// Marks a list Prometheus prints in flow style (`[a, b]`); label names have
/// no `-`, so joining with it is unambiguous and stays a plain YAML scalar.
const FLOW_MARK: &str = "raymon-flow-";

fn flow_list(names: &[String]) -> Value {
    Value::String(format!("{FLOW_MARK}{}", names.join("-")))
}

/// Replaces flow markers with `[a, b]`, quoting names YAML would read as
/// something other than a string.
fn restore_flow_lists(text: &str) -> String {
    let needle = format!("source_labels: {FLOW_MARK}");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let Some(pos) = line.find(&needle) else {
            out.push_str(line);
            continue;
        };
        let body = line[pos + needle.len()..].trim_end_matches('\n');
        let names: Vec<String> = body
            .split('-')
            .map(|n| {
                let special = matches!(
                    n.to_ascii_lowercase().as_str(),
                    "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
                );
                if special {
                    format!("\"{n}\"")
                } else {
                    n.to_string()
                }
            })
            .collect();
        out.push_str(&line[..pos]);
        out.push_str("source_labels: [");
        out.push_str(&names.join(", "));
        out.push_str("]\n");
    }
    out
}

fn put(m: &mut Mapping, key: &str, v: String) {
    m.insert(key.into(), Value::String(v));
}

/// Go's `omitempty` for strings.
fn put_str(m: &mut Mapping, key: &str, v: &str) {
    if !v.is_empty() {
        m.insert(key.into(), Value::from(v));
    }
}

fn put_u64(m: &mut Mapping, key: &str, v: u64) {
    if v != 0 {
        m.insert(key.into(), v.into());
    }
}

fn strings(v: &[String]) -> Value {
    Value::Sequence(v.iter().map(|s| Value::from(s.as_str())).collect())
}

fn labels(l: &Labels) -> Value {
    Value::Mapping(
        l.iter()
            .map(|l| (Value::from(l.name.as_str()), Value::from(l.value.as_str())))
            .collect(),
    )
}

fn scrape(s: &ScrapeConfig) -> Value {
    let mut m = Mapping::new();
    put(&mut m, "job_name", s.job_name.clone());
    if s.honor_labels {
        m.insert("honor_labels".into(), true.into());
    }
    m.insert("honor_timestamps".into(), s.honor_timestamps.into());
    if !s.params.is_empty() {
        let p = s
            .params
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), strings(v)))
            .collect();
        m.insert("params".into(), Value::Mapping(p));
    }
    put(
        &mut m,
        "scrape_interval",
        format_duration(s.scrape_interval),
    );
    put(&mut m, "scrape_timeout", format_duration(s.scrape_timeout));
    put_str(&mut m, "metrics_path", &s.metrics_path);
    put_str(&mut m, "scheme", &s.scheme);
    if s.body_size_limit != 0 {
        put(&mut m, "body_size_limit", format_size(s.body_size_limit));
    }
    put_u64(&mut m, "sample_limit", s.sample_limit);
    put_u64(&mut m, "target_limit", s.target_limit);
    put_u64(&mut m, "label_limit", s.label_limit);
    put_u64(&mut m, "label_name_length_limit", s.label_name_length_limit);
    put_u64(
        &mut m,
        "label_value_length_limit",
        s.label_value_length_limit,
    );
    http(&mut m, &s.http_client);
    if !s.relabel_configs.is_empty() {
        m.insert("relabel_configs".into(), relabels(&s.relabel_configs));
    }
    if !s.metric_relabel_configs.is_empty() {
        m.insert(
            "metric_relabel_configs".into(),
            relabels(&s.metric_relabel_configs),
        );
    }
    // Discovery sections come last: Prometheus appends them after the
    // struct's own fields when it marshals.
    if !s.static_configs.is_empty() {
        let list = s
            .static_configs
            .iter()
            .map(|sc| {
                let mut g = Mapping::new();
                g.insert("targets".into(), strings(&sc.targets));
                if !sc.labels.is_empty() {
                    g.insert("labels".into(), labels(&sc.labels));
                }
                Value::Mapping(g)
            })
            .collect();
        m.insert("static_configs".into(), Value::Sequence(list));
    }
    if !s.file_sd_configs.is_empty() {
        let list = s
            .file_sd_configs
            .iter()
            .map(|f| {
                let mut g = Mapping::new();
                g.insert("files".into(), strings(&f.files));
                put(
                    &mut g,
                    "refresh_interval",
                    format_duration(f.refresh_interval),
                );
                Value::Mapping(g)
            })
            .collect();
        m.insert("file_sd_configs".into(), Value::Sequence(list));
    }
    if !s.http_sd_configs.is_empty() {
        let list = s
            .http_sd_configs
            .iter()
            .map(|h| {
                let mut g = Mapping::new();
                http(&mut g, &h.http_client);
                put(
                    &mut g,
                    "refresh_interval",
                    format_duration(h.refresh_interval),
                );
                put(&mut g, "url", h.url.clone());
                Value::Mapping(g)
            })
            .collect();
        m.insert("http_sd_configs".into(), Value::Sequence(list));
    }
    Value::Mapping(m)
}

fn http(m: &mut Mapping, h: &HttpClientConfig) {
    if let Some(b) = &h.basic_auth {
        let mut v = Mapping::new();
        put_str(&mut v, "username", &b.username);
        if !b.password.is_empty() {
            put(&mut v, "password", SECRET.into());
        }
        put_str(&mut v, "password_file", &b.password_file);
        m.insert("basic_auth".into(), Value::Mapping(v));
    }
    if let Some(a) = &h.authorization {
        let mut v = Mapping::new();
        put_str(&mut v, "type", &a.kind);
        if !a.credentials.is_empty() {
            put(&mut v, "credentials", SECRET.into());
        }
        put_str(&mut v, "credentials_file", &a.credentials_file);
        m.insert("authorization".into(), Value::Mapping(v));
    }
    if let Some(o) = &h.oauth2 {
        let mut v = Mapping::new();
        put(&mut v, "client_id", o.client_id.clone());
        if !o.client_secret.is_empty() {
            put(&mut v, "client_secret", SECRET.into());
        }
        put_str(&mut v, "client_secret_file", &o.client_secret_file);
        if !o.scopes.is_empty() {
            v.insert("scopes".into(), strings(&o.scopes));
        }
        put(&mut v, "token_url", o.token_url.clone());
        if !o.endpoint_params.is_empty() {
            let p = o
                .endpoint_params
                .iter()
                .map(|(k, val)| (Value::from(k.as_str()), Value::from(val.as_str())))
                .collect();
            v.insert("endpoint_params".into(), Value::Mapping(p));
        }
        if let Some(p) = &o.proxy_url {
            put(&mut v, "proxy_url", redact_url(p));
        }
        v.insert("tls_config".into(), Value::Mapping(tls(&o.tls_config)));
        m.insert("oauth2".into(), Value::Mapping(v));
    }
    if let Some(p) = &h.proxy_url {
        put(m, "proxy_url", redact_url(p));
    }
    if !h.proxy_connect_header.is_empty() {
        let hs = h
            .proxy_connect_header
            .iter()
            .map(|(k, vals)| {
                let secrets = vals.iter().map(|_| Value::from(SECRET)).collect();
                (Value::from(k.as_str()), Value::Sequence(secrets))
            })
            .collect();
        m.insert("proxy_connect_header".into(), Value::Mapping(hs));
    }
    let v = tls(&h.tls_config);
    if !v.is_empty() {
        m.insert("tls_config".into(), Value::Mapping(v));
    }
    m.insert("follow_redirects".into(), h.follow_redirects.into());
    m.insert("enable_http2".into(), h.enable_http2.into());
}

fn tls(t: &TlsConfig) -> Mapping {
    let mut v = Mapping::new();
    put_str(&mut v, "ca_file", &t.ca_file);
    put_str(&mut v, "cert_file", &t.cert_file);
    put_str(&mut v, "key_file", &t.key_file);
    put_str(&mut v, "server_name", &t.server_name);
    if !v.is_empty() || t.insecure_skip_verify {
        v.insert("insecure_skip_verify".into(), t.insecure_skip_verify.into());
    }
    if let Some(min) = t.min_version {
        put(&mut v, "min_version", min.as_str().to_string());
    }
    if let Some(max) = t.max_version {
        put(&mut v, "max_version", max.as_str().to_string());
    }
    v
}

/// Go's `URL.Redacted`: a password in the URL shown as `xxxxx`.
fn redact_url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:xxxxx@{host}{}", &rest[end..])
        }
        _ => u.to_string(),
    }
}

fn relabels(list: &[RelabelConfig]) -> Value {
    Value::Sequence(list.iter().map(relabel).collect())
}

fn relabel(r: &RelabelConfig) -> Value {
    let mut m = Mapping::new();
    if !r.source_labels.is_empty() {
        m.insert("source_labels".into(), flow_list(&r.source_labels));
    }
    put_str(&mut m, "separator", &r.separator);
    put_str(&mut m, "regex", r.regex.as_str());
    put_u64(&mut m, "modulus", r.modulus);
    put_str(&mut m, "target_label", &r.target_label);
    put_str(&mut m, "replacement", &r.replacement);
    put(&mut m, "action", r.action.as_str().to_string());
    Value::Mapping(m)
}
