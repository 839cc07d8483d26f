//! The YAML layer: serde structs that mirror the file as written, and the
//! translation of serde errors into Prometheus's `yaml: unmarshal errors` text.
//!
//! Fields are optional here so that defaults and validation happen in one place
//! (`config.rs`), after the whole document is read. Knows nothing of defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::sections::{RawAlerting, RawRemoteReads, RawStorage, RawTracing, checked};

/// Declares a section that embeds Prometheus's `HTTPClientConfig` inline:
/// the section's own fields, then the HTTP client's, and `take_http`, which
/// moves the latter out as a [`RawHttp`]. This is the one list of those
/// fields: serde's `flatten` would do it, but it cannot be combined with
/// `deny_unknown_fields`, which gives yaml.v2's unknown-field errors.
macro_rules! with_http_client {
    (
        @struct
        $(#[$meta:meta])*
        pub(crate) struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        pub(crate) struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            pub basic_auth: Option<RawBasicAuth>,
            pub authorization: Option<RawAuthorization>,
            pub oauth2: Option<RawOAuth2>,
            pub bearer_token: Option<String>,
            pub bearer_token_file: Option<String>,
            pub proxy_url: Option<String>,
            pub proxy_connect_header: Option<BTreeMap<String, Vec<String>>>,
            pub tls_config: Option<RawTls>,
            #[serde(default, deserialize_with = "yaml11_bool")]
            pub follow_redirects: Option<bool>,
            #[serde(default, deserialize_with = "yaml11_bool")]
            pub enable_http2: Option<bool>,
        }
    };
    (
        @take
        $(#[$meta:meta])*
        pub(crate) struct $name:ident { $($body:tt)* }
    ) => {
        impl $name {
            /// Moves the HTTP client fields out. Every field of [`RawHttp`]
            /// must be named, so the compiler keeps this and the list above
            /// in step.
            pub fn take_http(&mut self) -> RawHttp {
                RawHttp {
                    basic_auth: self.basic_auth.take(),
                    authorization: self.authorization.take(),
                    oauth2: self.oauth2.take(),
                    bearer_token: self.bearer_token.take(),
                    bearer_token_file: self.bearer_token_file.take(),
                    proxy_url: self.proxy_url.take(),
                    proxy_connect_header: self.proxy_connect_header.take(),
                    tls_config: self.tls_config.take(),
                    follow_redirects: self.follow_redirects.take(),
                    enable_http2: self.enable_http2.take(),
                }
            }
        }
    };
    ($($section:tt)*) => {
        with_http_client!(@struct $($section)*);
        with_http_client!(@take $($section)*);
    };
}

with_http_client! {
@struct
/// The HTTP client fields as written, moved out of whichever section holds
/// them.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct RawHttp {}
}

/// A string field where an explicit YAML `null` means "empty", as in Go,
/// while a missing field stays `None` so the default applies.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    Ok(Some(v.unwrap_or_default()))
}

/// A boolean in YAML 1.1's spellings (`yes`, `on`, `False`, ...), which
/// Prometheus's yaml.v2 accepts; anything else is a type error.
fn yaml11_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Self::Value, E> {
            Ok(Some(b))
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            match s {
                "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True"
                | "TRUE" => Ok(Some(true)),
                "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False"
                | "FALSE" => Ok(Some(false)),
                _ => Err(E::invalid_type(serde::de::Unexpected::Str(s), &self)),
            }
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Some(false))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Some(false))
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_option(V)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub global: Option<RawGlobal>,
    #[serde(default, deserialize_with = "checked::<_, RawAlerting>")]
    pub alerting: Option<serde_norway::Value>,
    pub rule_files: Option<Vec<String>>,
    pub scrape_configs: Option<Vec<Option<RawScrape>>>,
    #[serde(default, deserialize_with = "checked::<_, RawStorage>")]
    pub storage: Option<serde_norway::Value>,
    #[serde(default, deserialize_with = "checked::<_, RawTracing>")]
    pub tracing: Option<serde_norway::Value>,
    pub remote_write: Option<Vec<Option<RawRemoteWrite>>>,
    #[serde(default, deserialize_with = "checked::<_, RawRemoteReads>")]
    pub remote_read: Option<serde_norway::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGlobal {
    pub scrape_interval: Option<String>,
    pub scrape_timeout: Option<String>,
    pub evaluation_interval: Option<String>,
    pub query_log_file: Option<String>,
    pub external_labels: Option<BTreeMap<String, String>>,
}

with_http_client! {
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScrape {
    pub job_name: Option<String>,
    #[serde(default, deserialize_with = "yaml11_bool")]
    pub honor_labels: Option<bool>,
    #[serde(default, deserialize_with = "yaml11_bool")]
    pub honor_timestamps: Option<bool>,
    pub params: Option<BTreeMap<String, Vec<String>>>,
    pub scrape_interval: Option<String>,
    pub scrape_timeout: Option<String>,
    pub metrics_path: Option<String>,
    pub scheme: Option<String>,
    pub body_size_limit: Option<String>,
    pub sample_limit: Option<u64>,
    pub target_limit: Option<u64>,
    pub label_limit: Option<u64>,
    pub label_name_length_limit: Option<u64>,
    pub label_value_length_limit: Option<u64>,
    pub relabel_configs: Option<Vec<Option<RawRelabel>>>,
    pub metric_relabel_configs: Option<Vec<Option<RawRelabel>>>,

    pub static_configs: Option<Vec<Option<RawStatic>>>,
    pub file_sd_configs: Option<Vec<Option<RawFileSd>>>,
    pub http_sd_configs: Option<Vec<Option<RawHttpSd>>>,
}
}

with_http_client! {
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRemoteWrite {
    pub url: Option<String>,
    pub remote_timeout: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub write_relabel_configs: Option<Vec<Option<RawRelabel>>>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "yaml11_bool")]
    pub send_exemplars: Option<bool>,
    #[serde(default, deserialize_with = "yaml11_bool")]
    pub send_native_histograms: Option<bool>,
    pub sigv4: Option<serde_norway::Value>,
    pub queue_config: Option<super::remote_write::RawQueue>,
    pub metadata_config: Option<super::remote_write::RawMetadata>,
}
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBasicAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    #[serde(default, deserialize_with = "yaml11_bool")]
    pub insecure_skip_verify: Option<bool>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOAuth2 {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub token_url: Option<String>,
    pub endpoint_params: Option<BTreeMap<String, String>>,
    pub proxy_url: Option<String>,
    pub tls_config: Option<RawTls>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelabel {
    pub source_labels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub separator: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub target_label: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub replacement: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub action: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatic {
    pub targets: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileSd {
    pub files: Option<Vec<String>>,
    pub refresh_interval: Option<String>,
}

with_http_client! {
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpSd {
    pub url: Option<String>,
    pub refresh_interval: Option<String>,
}
}

/// A serde error rendered the way Prometheus's yaml.v2 reports it.
pub(crate) struct YamlError {
    pub message: String,
    pub line: Option<usize>,
    pub field: Option<String>,
}

/// Translates a serde_norway error into yaml.v2's wording: syntax errors as
/// `yaml: line N: ...`, unknown and duplicate fields and type mismatches as
/// `yaml: unmarshal errors:\n  line N: ...` naming the Go type of the section.
pub(crate) fn translate(err: &serde_norway::Error) -> YamlError {
    let line = err.location().map(|l| l.line());
    let mut text = err.to_string();
    if let Some(l) = err.location() {
        let suffix = format!(" at line {} column {}", l.line(), l.column());
        if let Some(pos) = text.find(&suffix) {
            text.replace_range(pos..pos + suffix.len(), "");
        }
    }
    let (path, msg) = split_path(&text);
    let line_prefix = line.map(|l| format!("line {l}: ")).unwrap_or_default();
    if let Some(field) = backticked_after(msg, "unknown field `") {
        let go_type = go_type_for(path);
        // Prometheus knows more discovery mechanisms than raymon; say so
        // rather than suggest a typo.
        let note = if go_type == "config.ScrapeConfig" && field.ends_with("_sd_configs") {
            " (raymon supports only static_configs, file_sd_configs and http_sd_configs)"
        } else {
            ""
        };
        return YamlError {
            message: format!(
                "yaml: unmarshal errors:\n  {line_prefix}field {field} not found in type {go_type}{note}"
            ),
            line,
            field: Some(field.to_string()),
        };
    }
    if let Some(field) = backticked_after(msg, "duplicate field `") {
        return YamlError {
            message: format!(
                "yaml: unmarshal errors:\n  {line_prefix}key {field:?} already set in map"
            ),
            line,
            field: Some(field.to_string()),
        };
    }
    let is_type_error = msg.starts_with("invalid type")
        || msg.starts_with("invalid value")
        || msg.starts_with("invalid length")
        || msg.starts_with("missing field");
    if is_type_error {
        let field = path
            .rsplit(['.', '['])
            .next()
            .filter(|f| !f.is_empty() && !f.ends_with(']'))
            .map(str::to_string);
        let detail = go_type_error(path, msg).unwrap_or_else(|| msg.to_string());
        return YamlError {
            message: format!("yaml: unmarshal errors:\n  {line_prefix}{detail}"),
            line,
            field,
        };
    }
    // Syntax errors: yaml.v2 prints libyaml's problem without its context.
    let problem = msg.split(", ").next().unwrap_or(msg);
    YamlError {
        message: format!("yaml: {line_prefix}{problem}"),
        line,
        field: None,
    }
}

/// Rewrites serde's `invalid type: string "x", expected u64` as yaml.v2's
/// ``cannot unmarshal !!str `x` into uint``.
fn go_type_error(path: &str, msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("invalid type: ")?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    let tagged = |tag: &str, v: &str| {
        let v = v.trim_matches(|c| c == '`' || c == '"');
        format!("!!{tag} `{v}`")
    };
    let found = if let Some(v) = found.strip_prefix("string ") {
        tagged("str", v)
    } else if let Some(v) = found.strip_prefix("integer ") {
        tagged("int", v)
    } else if let Some(v) = found.strip_prefix("floating point ") {
        tagged("float", v)
    } else if let Some(v) = found.strip_prefix("boolean ") {
        tagged("bool", v)
    } else {
        match found {
            "sequence" => "!!seq".to_string(),
            "map" => "!!map".to_string(),
            "unit value" => "!!null".to_string(),
            other => other.to_string(),
        }
    };
    let into = match expected {
        "u64" | "u32" | "usize" => "uint",
        "a boolean" => "bool",
        "a string" => "string",
        "a sequence" => "[]string",
        "a map" => "map[string]string",
        e if e.starts_with("struct ") || e == "option" => go_type_for(path),
        other => other,
    };
    Some(format!("cannot unmarshal {found} into {into}"))
}

/// Splits serde_norway's `path: message` form; the root path is not printed.
fn split_path(text: &str) -> (&str, &str) {
    match text.split_once(": ") {
        Some((p, m)) if !p.contains(' ') && !p.is_empty() => (p, m),
        _ => (".", text),
    }
}

fn backticked_after<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?;
    let end = rest
        .find("`, expected")
        .or_else(|| rest.find("`, there are no fields"))
        .or_else(|| rest.rfind('`'))?;
    Some(&rest[..end])
}

/// The Go type yaml.v2 names for the section at a serde path.
fn go_type_for(path: &str) -> &'static str {
    let last = path
        .rsplit('.')
        .next()
        .unwrap_or(path)
        .split('[')
        .next()
        .unwrap_or("");
    match last {
        "" | "." | "global" | "remote_write" | "tls_config" => "config.plain",
        "scrape_configs" => "config.ScrapeConfig",
        "relabel_configs" | "metric_relabel_configs" | "write_relabel_configs" => "relabel.plain",
        "file_sd_configs" => "file.plain",
        "http_sd_configs" => "http.plain",
        "oauth2" => "config.OAuth2",
        "static_configs" => {
            r#"struct { Targets []string "yaml:\"targets\""; Labels model.LabelSet "yaml:\"labels\"" }"#
        }
        "basic_auth" => "config.BasicAuth",
        "queue_config" => "config.QueueConfig",
        "metadata_config" => "config.MetadataConfig",
        "storage" => "config.StorageConfig",
        "authorization" => "config.Authorization",
        _ => "config.plain",
    }
}
