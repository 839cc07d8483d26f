//! The HTTP side of a scrape: one GET with Prometheus 2.42's headers, a
//! deadline, gzip, and a limit on the decompressed body size.

use std::time::Duration;

use tracing::debug;

/// The `Accept` header of Prometheus 2.42: OpenMetrics first, so Ray answers
/// in OpenMetrics (with `_created` series) exactly as it did for Prometheus.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

const USER_AGENT: &str = concat!("raymon/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Get \"{url}\": context deadline exceeded")]
    Timeout { url: String },
    #[error("Get \"{url}\": {msg}")]
    Request { url: String, msg: String },
    #[error("server returned HTTP status {status}")]
    Status { status: String },
    #[error("body size limit exceeded")]
    BodySizeLimit,
}

/// Shared by all scrape loops: one connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    pub fn new() -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            // Prometheus uses a proxy only when a scrape config names one;
            // HPC login nodes often export http_proxy for the outside world.
            .no_proxy()
            .build()
            .map_err(|e| Error::Request {
                url: String::new(),
                msg: e.to_string(),
            })?;
        Ok(Client { http })
    }

    /// Builds the request for scraping `url` with `timeout`, once for all
    /// of a target's scrapes: parsing the URL and building the headers
    /// every time cost more than the rest of sending it.
    pub fn prepare(&self, url: &str, timeout: Duration) -> Prepared {
        Prepared {
            url: url.to_string(),
            timeout,
            request: self.request(url, timeout).build().ok(),
        }
    }

    fn request(&self, url: &str, timeout: Duration) -> reqwest::RequestBuilder {
        self.http
            .get(url)
            .header(reqwest::header::ACCEPT, ACCEPT_HEADER)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            )
    }

    /// Fetches the target of `req` into `body` (cleared first) within its
    /// timeout, and returns the response's Content-Type. `limit` of 0 means
    /// no limit.
    pub async fn scrape(
        &self,
        req: &Prepared,
        limit: u64,
        body: &mut Vec<u8>,
    ) -> Result<String, Error> {
        body.clear();
        match tokio::time::timeout(req.timeout, self.fetch(req, limit, body)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                url: req.url.clone(),
            }),
        }
    }

    async fn fetch(&self, req: &Prepared, limit: u64, body: &mut Vec<u8>) -> Result<String, Error> {
        let url = req.url.as_str();
        let req_err = |e: reqwest::Error| Error::Request {
            url: url.to_string(),
            msg: describe(&e),
        };
        // A URL that did not build fails here, with reqwest's own message.
        let sent = match req.request.as_ref().and_then(reqwest::Request::try_clone) {
            Some(r) => self.http.execute(r).await,
            None => self.request(url, req.timeout).send().await,
        };
        let mut resp = sent.map_err(req_err)?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Err(Error::Status {
                status: format!(
                    "{} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                ),
            });
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        while let Some(chunk) = resp.chunk().await.map_err(req_err)? {
            if limit > 0 && (body.len() + chunk.len()) as u64 > limit {
                debug!(url, limit, "body size limit exceeded");
                return Err(Error::BodySizeLimit);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(content_type)
    }
}

/// A target's request, from [`Client::prepare`].
pub struct Prepared {
    url: String,
    timeout: Duration,
    request: Option<reqwest::Request>,
}

/// reqwest's Display hides the cause ("error sending request"); the chain
/// has what a user needs, such as "connection refused".
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
