//! HTTP service discovery (`http_sd_configs`), as Prometheus 2.42's
//! `discovery/http`: GET the URL every `refresh_interval` (first at once),
//! with `Accept: application/json` and `X-Prometheus-Refresh-Interval-Seconds`;
//! the answer must be 200 with a JSON content type and a list of target
//! groups, each of which gets `__meta_url`. A failed refresh is logged and
//! counted (`prometheus_sd_http_failures_total`) and the last good targets
//! stay. Ray's dashboard serves such a list at `/api/prometheus/sd`, so
//! raymon can run where Ray's file_sd file is not visible.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Error, TargetGroup};
use crate::config::HttpSdConfig;
use crate::http_client::{self, HttpClient};
use crate::model::{LabelsBuilder, is_valid_label_name};
use crate::selfmetrics::SdMetrics;

/// The label every group gets: the URL it came from.
pub const URL_LABEL: &str = "__meta_url";

/// The largest answer read; Ray's list for a thousand nodes is ~50 KiB.
const MAX_BODY_BYTES: usize = 16 << 20;

const USER_AGENT: &str = concat!("raymon/", env!("CARGO_PKG_VERSION"));

/// One `http_sd_configs` entry.
pub struct HttpSd {
    url: String,
    uri: Uri,
    refresh: Duration,
    client: HttpClient,
    /// Refreshes that failed so far.
    pub failures: u64,
    metrics: Option<Arc<SdMetrics>>,
}

impl HttpSd {
    /// Builds the provider; fails when the client cannot be built (a CA
    /// file that cannot be read), as Prometheus's `NewDiscovery`.
    pub fn new(cfg: &HttpSdConfig) -> Result<HttpSd, Error> {
        let uri: Uri = cfg.url.parse().map_err(|e| Error::Http {
            url: cfg.url.clone(),
            msg: format!("invalid URL: {e}"),
        })?;
        let client =
            HttpClient::new(&cfg.http_client, http_client::Options::default()).map_err(|e| {
                Error::Http {
                    url: cfg.url.clone(),
                    msg: e.to_string(),
                }
            })?;
        Ok(HttpSd {
            url: cfg.url.clone(),
            uri,
            refresh: cfg.refresh_interval,
            client,
            failures: 0,
            metrics: None,
        })
    }

    /// Counts failures into `metrics` as well.
    pub fn set_metrics(&mut self, metrics: Arc<SdMetrics>) {
        self.metrics = Some(metrics);
    }

    /// Fetches the current groups, within the refresh interval (Prometheus
    /// sets the client's timeout to it).
    pub async fn refresh(&mut self) -> Result<Vec<TargetGroup>, Error> {
        let r = match tokio::time::timeout(self.refresh, self.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                self.url
            )),
        };
        r.map_err(|msg| {
            self.failures += 1;
            if let Some(m) = &self.metrics {
                m.http_failures.inc();
            }
            Error::Http {
                url: self.url.clone(),
                msg,
            }
        })
    }

    async fn fetch(&self) -> Result<Vec<TargetGroup>, String> {
        let mut req = Request::new(Bytes::new());
        *req.uri_mut() = self.uri.clone();
        let h = req.headers_mut();
        h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let secs = crate::model::gofmt::format_f(self.refresh.as_secs_f64());
        if let Ok(v) = HeaderValue::try_from(secs) {
            h.insert("x-prometheus-refresh-interval-seconds", v);
        }
        let resp = self
            .client
            .send(req)
            .await
            .map_err(|e| format!("Get {:?}: {e}", self.url))?;
        let (head, body) = resp.into_parts();
        if head.status != StatusCode::OK {
            return Err(format!(
                "server returned HTTP status {}",
                http_client::status_text(head.status, &head.extensions)
            ));
        }
        let content_type = head
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !is_json(&content_type) {
            return Err(format!("unsupported content type {content_type:?}"));
        }
        let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| format!("cannot read the answer of {}: {e}", self.url))?
            .to_bytes();
        parse(&self.url, &bytes)
    }

    /// Runs until `cancel`, sending the full group list whenever it changes.
    pub async fn run(
        mut self,
        tx: mpsc::UnboundedSender<Vec<TargetGroup>>,
        cancel: CancellationToken,
    ) {
        let mut last: Option<Vec<TargetGroup>> = None;
        loop {
            let r = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.refresh() => r,
            };
            match r {
                Ok(groups) => {
                    if last.as_ref() != Some(&groups) {
                        debug!(url = %self.url, groups = groups.len(), "http_sd targets changed");
                        if tx.send(groups.clone()).is_err() {
                            return;
                        }
                        last = Some(groups);
                    }
                }
                Err(error) => {
                    warn!(%error, "unable to refresh target groups, keeping the last good ones");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.refresh) => {}
            }
        }
    }
}

/// `^(?i:application/json(;\s*charset=("utf-8"|utf-8))?)$` on the trimmed
/// header, Prometheus's check.
fn is_json(content_type: &str) -> bool {
    let ct = content_type.trim().to_ascii_lowercase();
    let Some(rest) = ct.strip_prefix("application/json") else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix(';') else {
        return false;
    };
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\r', '\x0c', '\x0b']);
    matches!(rest, "charset=utf-8" | "charset=\"utf-8\"")
}

/// A group as Go's `targetgroup.Group` reads JSON: unknown fields are
/// ignored, `null` lists are empty.
#[derive(Deserialize)]
struct JsonGroup {
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

/// The answer's groups, each with `__meta_url` and the source `url:i`.
fn parse(url: &str, body: &[u8]) -> Result<Vec<TargetGroup>, String> {
    let groups: Vec<Option<JsonGroup>> = serde_json::from_slice(body).map_err(|e| {
        if e.is_eof() {
            "unexpected end of JSON input".to_string()
        } else {
            e.to_string()
        }
    })?;
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.into_iter().enumerate() {
        let g = g.ok_or("nil target group item found")?;
        let labels = g.labels.unwrap_or_default();
        let mut b = LabelsBuilder::with_capacity(labels.len() + 1);
        for (name, value) in labels {
            if !is_valid_label_name(&name) {
                return Err(format!("{name:?} is not a valid label name"));
            }
            b.set(name, value);
        }
        b.set(URL_LABEL.to_string(), url.to_string());
        out.push(TargetGroup::new(
            &g.targets.unwrap_or_default(),
            b.build(),
            format!("{url}:{i}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::ADDRESS_LABEL;

    #[test]
    fn content_types_as_prometheus() {
        for ok in [
            "application/json",
            " Application/JSON ",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/json; charset=latin1",
            "application/jsonx",
            "application/json; foo=bar",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn groups_get_the_url_and_a_source() {
        let body = br#"[{"labels": {"job": "ray"}, "targets": ["a:1", "b:2"], "extra": 1},
                        {"targets": null}]"#;
        let g = parse("http://h/sd", body).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].targets[1].get(ADDRESS_LABEL), Some("b:2"));
        assert_eq!(g[0].labels.get(URL_LABEL), Some("http://h/sd"));
        assert_eq!(g[0].labels.get("job"), Some("ray"));
        assert_eq!(g[1].source, "http://h/sd:1");
        assert!(g[1].targets.is_empty());
    }

    #[test]
    fn invalid_answers_say_why() {
        let err = |b: &[u8]| parse("u", b).unwrap_err();
        assert_eq!(err(b"[null]"), "nil target group item found");
        assert_eq!(
            err(b"[{\"targets\": [\"a:1\"]"),
            "unexpected end of JSON input"
        );
        assert_eq!(
            err(br#"[{"labels": {"0bad": "x"}}]"#),
            "\"0bad\" is not a valid label name"
        );
        assert!(err(br#"{"targets": []}"#).contains("invalid type"));
    }
}
