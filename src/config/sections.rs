//! The shapes of the 2.42 top-level sections raymon reads but does not act
//! on (`alerting`, `remote_read`, `storage`, `tracing`): checked field by
//! field as Prometheus checks them, so a typo is an error rather than a
//! section silently kept. The value itself is kept as written (for
//! `/api/v1/status/config`); what raymon does not do with it is warned about
//! by [`super::unimplemented`]. Knows shapes, not behaviour.

// The fields are read by serde alone, which is how the shape is checked.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use super::raw::{RawAuthorization, RawBasicAuth, RawRelabel, RawTls};

/// Keeps a section as a YAML value after checking it against `T`.
pub(crate) fn checked<'de, D, T>(d: D) -> Result<Option<serde_norway::Value>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v: Option<serde_norway::Value> = Option::deserialize(d)?;
    if let Some(v) = &v {
        T::deserialize(v.clone()).map_err(|e| D::Error::custom(e.to_string()))?;
    }
    Ok(v)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub tsdb: Option<RawTsdb>,
    pub exemplars: Option<RawExemplars>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTsdb {
    pub out_of_order_time_window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExemplars {
    pub max_exemplars: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracing {
    pub client_type: Option<String>,
    pub endpoint: Option<String>,
    pub sampling_fraction: Option<f64>,
    pub insecure: Option<bool>,
    pub tls_config: Option<RawTls>,
    pub headers: Option<BTreeMap<String, String>>,
    pub compression: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerting {
    pub alert_relabel_configs: Option<Vec<Option<RawRelabel>>>,
    /// Each holds discovery sections of any kind; only its list shape is
    /// checked here.
    pub alertmanagers: Option<Vec<Option<serde_norway::Value>>>,
}

/// One `remote_read` entry, with the HTTP client fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRemoteRead {
    pub url: Option<String>,
    pub remote_timeout: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub read_recent: Option<bool>,
    pub name: Option<String>,
    pub required_matchers: Option<BTreeMap<String, String>>,
    pub filter_external_labels: Option<bool>,

    pub basic_auth: Option<RawBasicAuth>,
    pub authorization: Option<RawAuthorization>,
    pub oauth2: Option<serde_norway::Value>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub proxy_url: Option<String>,
    pub proxy_connect_header: Option<BTreeMap<String, Vec<String>>>,
    pub tls_config: Option<RawTls>,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
}

/// `remote_read` is a list of entries.
pub(crate) type RawRemoteReads = Vec<Option<RawRemoteRead>>;
