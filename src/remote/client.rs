//! Sends encoded write requests to a remote write receiver with the headers
//! of Prometheus 2.42's `storage/remote/client.go`, and classifies answers
//! as it does: transport errors and 5xx are recoverable, 429 too when
//! `retry_on_http_429` is set (with its `Retry-After`), anything else is
//! not. One request per call: batching, sharding and retries belong to the
//! caller.

use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use hyper::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT,
};

use super::{Error, VERSION_HEADER_VALUE};
use crate::config::HttpClientConfig;
use crate::http_client::{self, HttpClient};

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The receiver, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    pub timeout: Duration,
    pub user_agent: String,
    /// TLS, authentication, proxy and redirects, as a scrape job's.
    pub http_client: HttpClientConfig,
    /// Extra headers (`headers` of the config section), set on every request.
    pub headers: Vec<(String, String)>,
    /// Whether a 429 answer may be retried.
    pub retry_on_http_429: bool,
}

impl ClientOptions {
    /// Prometheus's defaults (`remote_timeout: 30s`) for `url`.
    pub fn new(url: impl Into<String>) -> ClientOptions {
        ClientOptions {
            url: url.into(),
            timeout: Duration::from_secs(30),
            user_agent: format!("raymon/{}", env!("CARGO_PKG_VERSION")),
            http_client: HttpClientConfig::default(),
            headers: Vec::new(),
            retry_on_http_429: false,
        }
    }
}

/// A remote write sender. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    opts: ClientOptions,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// How much of an error answer is kept for the message, as Prometheus.
const MAX_ERR_MSG_LEN: usize = 1024;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.opts.url)
            .finish()
    }
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        let http = HttpClient::new(&opts.http_client, http_client::Options::default())
            .map_err(|e| Error::Request(e.to_string()))?;
        let mut headers = Vec::new();
        for (k, v) in &opts.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Error::Header(format!("invalid header name {k:?}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| Error::Header(format!("invalid value for header {k:?}")))?;
            headers.push((name, value));
        }
        Ok(Client {
            http,
            opts,
            headers,
        })
    }

    /// Encodes and sends `req`; `Ok` when the receiver answered 2xx. The
    /// queues send bodies they encoded once (`send_encoded`).
    #[cfg(test)]
    pub async fn send(&self, req: &super::WriteRequest) -> Result<(), Error> {
        self.send_encoded(super::encode(req)).await
    }

    /// Sends a body that is already protobuf + snappy, within the timeout
    /// (the whole exchange, answer included, as Go's context deadline).
    pub async fn send_encoded(&self, body: impl Into<Bytes>) -> Result<(), Error> {
        match tokio::time::timeout(self.opts.timeout, self.exchange(body.into())).await {
            Ok(r) => r,
            Err(_) => Err(Error::Request(format!(
                "Post \"{}\": context deadline exceeded",
                self.opts.url
            ))),
        }
    }

    async fn exchange(&self, body: Bytes) -> Result<(), Error> {
        let mut rb = hyper::Request::post(self.opts.url.as_str())
            .header(CONTENT_ENCODING, HeaderValue::from_static("snappy"))
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )
            .header(USER_AGENT, self.opts.user_agent.as_str())
            .header(
                "X-Prometheus-Remote-Write-Version",
                HeaderValue::from_static(VERSION_HEADER_VALUE),
            );
        for (k, v) in &self.headers {
            rb = rb.header(k.clone(), v.clone());
        }
        let req = rb
            .body(body)
            .map_err(|e| Error::Request(format!("invalid request: {e}")))?;
        let resp = self
            .http
            .send(req)
            .await
            .map_err(|e| Error::Request(format!("Post \"{}\": {e}", self.opts.url)))?;
        let status = resp.status();
        let status_text = http_client::status_text(status, resp.extensions());
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // At most the first KiB of the answer is read (the message), the
        // rest is left with the connection.
        let mut body = resp.into_body();
        let mut text = Vec::new();
        while text.len() < MAX_ERR_MSG_LEN {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Some(d) = f.data_ref() {
                        text.extend_from_slice(d);
                    }
                }
                Some(Err(e)) if status.is_success() => {
                    return Err(Error::Request(format!("reading the answer: {e}")));
                }
                _ => break,
            }
        }
        if status.is_success() {
            return Ok(());
        }
        text.truncate(MAX_ERR_MSG_LEN);
        let text = String::from_utf8_lossy(&text);
        let code = status.as_u16();
        Err(Error::Status {
            status: code,
            status_text,
            body: text.lines().next().unwrap_or("").to_string(),
            retry_after,
            recoverable: code / 100 == 5 || (code == 429 && self.opts.retry_on_http_429),
        })
    }
}

/// `Retry-After` as seconds or an HTTP date; `None` when absent, unparsable
/// or in the past, which means the usual backoff.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return (secs > 0).then(|| Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    when.duration_since(std::time::SystemTime::now()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0"), None);
        assert_eq!(parse_retry_after("soon"), None);
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30));
        let past = std::time::SystemTime::now() - Duration::from_secs(30);
        assert_eq!(parse_retry_after(&httpdate::fmt_http_date(past)), None);
    }
}
