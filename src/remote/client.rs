//! Sends encoded write requests to a remote write receiver with the headers
//! of Prometheus 2.42's `storage/remote/client.go`, and classifies answers
//! as it does: transport errors and 5xx are recoverable, 429 too when
//! `retry_on_http_429` is set (with its `Retry-After`), anything else is
//! not. One request per call: batching, sharding and retries belong to the
//! caller.

use std::time::Duration;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};

use super::{Error, VERSION_HEADER_VALUE, WriteRequest, encode};

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The receiver, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    pub timeout: Duration,
    pub user_agent: String,
    pub basic_auth: Option<(String, String)>,
    /// `Authorization: <type> <credentials>`.
    pub authorization: Option<(String, String)>,
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
            basic_auth: None,
            authorization: None,
            headers: Vec::new(),
            retry_on_http_429: false,
        }
    }
}

/// A remote write sender. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    opts: ClientOptions,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// How much of an error answer is kept for the message, as Prometheus.
const MAX_ERR_MSG_LEN: usize = 1024;

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .build()?;
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

    pub fn url(&self) -> &str {
        &self.opts.url
    }

    /// Encodes and sends `req`; `Ok` when the receiver answered 2xx.
    pub async fn send(&self, req: &WriteRequest) -> Result<(), Error> {
        self.send_encoded(encode(req)).await
    }

    /// Sends a body that is already protobuf + snappy.
    pub async fn send_encoded(&self, body: Vec<u8>) -> Result<(), Error> {
        let mut rb = self
            .http
            .post(&self.opts.url)
            .header(CONTENT_ENCODING, HeaderValue::from_static("snappy"))
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )
            .header(USER_AGENT, self.opts.user_agent.as_str())
            .header(
                "X-Prometheus-Remote-Write-Version",
                HeaderValue::from_static(VERSION_HEADER_VALUE),
            )
            .body(body);
        if let Some((user, pass)) = &self.opts.basic_auth {
            rb = rb.basic_auth(user, Some(pass));
        }
        if let Some((typ, cred)) = &self.opts.authorization {
            rb = rb.header(reqwest::header::AUTHORIZATION, format!("{typ} {cred}"));
        }
        for (k, v) in &self.headers {
            rb = rb.header(k.clone(), v.clone());
        }
        let resp = rb.send().await?;
        let status = resp.status();
        if status.is_success() {
            // The body is drained so the connection can be reused.
            let _ = resp.bytes().await;
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = resp.bytes().await.unwrap_or_default();
        let cut = bytes.len().min(MAX_ERR_MSG_LEN);
        let text = String::from_utf8_lossy(&bytes[..cut]);
        let line = text.lines().next().unwrap_or("").to_string();
        let code = status.as_u16();
        let status_text = match status.canonical_reason() {
            Some(r) => format!("{code} {r}"),
            None => code.to_string(),
        };
        Err(Error::Status {
            status: code,
            status_text,
            body: line,
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
