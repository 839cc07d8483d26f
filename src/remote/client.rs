//! Sends [`WriteRequest`]s to a remote write receiver with the headers of
//! Prometheus's `storage/remote/client.go`. One request per call: batching,
//! sharding and retries belong to the caller.

use std::time::Duration;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, USER_AGENT};

use super::{Error, VERSION_HEADER_VALUE, WriteRequest, encode};

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The receiver, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    pub timeout: Duration,
    pub user_agent: String,
    pub basic_auth: Option<(String, String)>,
}

impl ClientOptions {
    /// Prometheus's defaults (`remote_timeout: 30s`) for `url`.
    pub fn new(url: impl Into<String>) -> ClientOptions {
        ClientOptions {
            url: url.into(),
            timeout: Duration::from_secs(30),
            user_agent: format!("raymon/{}", env!("CARGO_PKG_VERSION")),
            basic_auth: None,
        }
    }
}

/// A remote write sender. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    opts: ClientOptions,
}

/// How much of an error answer is kept for the message, as Prometheus.
const MAX_ERR_MSG_LEN: usize = 1024;

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        let http = reqwest::Client::builder().timeout(opts.timeout).build()?;
        Ok(Client { http, opts })
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
        let resp = rb.send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        let cut = bytes.len().min(MAX_ERR_MSG_LEN);
        Err(Error::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes[..cut])
                .trim_end()
                .to_string(),
        })
    }
}
