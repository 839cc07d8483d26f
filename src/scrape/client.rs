//! The HTTP side of a scrape: one GET with Prometheus 2.42's headers, a
//! deadline, gzip, and a limit on the decompressed body size, over a pool's
//! `HttpClient` (TLS, authentication, proxy and redirects from the scrape
//! config). It knows nothing of parsing or storage.
//!
//! It is hyper-util's client rather than reqwest because only hyper-util lets
//! us fix the size of a connection's read buffer: hyper's adaptive buffer
//! grows to a whole body (up to about 400 KiB) and keeps that size between
//! scrapes, which at hundreds of targets cost more memory than the series.

use std::borrow::Cow;
use std::future::poll_fn;
use std::io::{self, Write};
use std::pin::Pin;
use std::time::Duration;

use flate2::write::MultiGzDecoder;
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use tracing::debug;

use crate::config::HttpClientConfig;
use crate::http_client::{self, HttpClient};
use direct::Direct;

mod direct;

/// The `Accept` header of Prometheus 2.42: OpenMetrics first, so Ray answers
/// in OpenMetrics (with `_created` series) exactly as it did for Prometheus.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

const USER_AGENT: &str = concat!("raymon/", env!("CARGO_PKG_VERSION"));

/// Each keep-alive connection holds one read buffer of exactly this size
/// for its whole life; bodies stream through it in pieces.
const READ_BUF_BYTES: usize = 32 << 10;

/// The most a response's Content-Length reserves ahead of its bytes: the
/// size of the largest body buffer kept between scrapes (`buffers`), many
/// times a Ray node's body.
const RESERVE_AT_MOST: u64 = 16 << 20;

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
    /// The scrape config's client settings cannot be used; Prometheus then
    /// creates no pool for the job.
    #[error("error creating HTTP client: {0}")]
    Create(String),
}

/// Shared by a pool's scrape loops: one connection pool.
#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    /// Whether `http` targets are scraped on their own connection
    /// ([`direct`]): only when no proxy or credentials are configured.
    direct: bool,
    follow_redirects: bool,
}

impl Client {
    /// A client for a scrape config's settings. No proxy unless the config
    /// names one, as Prometheus: HPC login nodes often export `http_proxy`
    /// for the outside world.
    pub fn new(cfg: &HttpClientConfig) -> Result<Client, Error> {
        let opts = http_client::Options {
            read_buf_exact_size: Some(READ_BUF_BYTES),
            ..http_client::Options::default()
        };
        let http = HttpClient::new(cfg, opts).map_err(|e| Error::Create(e.to_string()))?;
        let direct = cfg.proxy_url.is_none()
            && cfg.oauth2.is_none()
            && cfg.authorization.is_none()
            && cfg.basic_auth.is_none();
        Ok(Client {
            http,
            direct,
            follow_redirects: cfg.follow_redirects,
        })
    }

    /// Builds the request for scraping `url` with `timeout`, once for all
    /// of a target's scrapes: parsing the URL and building the headers
    /// every time cost more than the rest of sending it.
    pub fn prepare(&self, url: &str, timeout: Duration) -> Prepared {
        let request = request_parts(url, timeout);
        let direct = match &request {
            Ok((uri, headers)) if self.direct => Direct::new(uri, headers),
            _ => None,
        };
        Prepared {
            url: url.to_string(),
            timeout,
            request,
            direct,
        }
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
        let fetch = async {
            if let Some(d) = &req.direct
                && let Some(r) = d.fetch(limit, body, &req.url, self.follow_redirects).await
            {
                return r;
            }
            self.fetch(req, limit, body).await
        };
        match tokio::time::timeout(req.timeout, fetch).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                url: req.url.clone(),
            }),
        }
    }

    async fn fetch(&self, req: &Prepared, limit: u64, body: &mut Vec<u8>) -> Result<String, Error> {
        let url = req.url.as_str();
        let req_err = |msg: String| Error::Request {
            url: url.to_string(),
            msg,
        };
        let (uri, headers) = req.request.as_ref().map_err(|msg| req_err(msg.clone()))?;
        let mut request = Request::new(Bytes::new());
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        let resp = self
            .http
            .send(request)
            .await
            .map_err(|e| req_err(e.to_string()))?;
        let (head, mut incoming) = resp.into_parts();
        if head.status != StatusCode::OK {
            return Err(Error::Status {
                status: http_client::status_text(head.status, &head.extensions),
            });
        }
        let content_type = head
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        // Prometheus's io.LimitReader check: reading `limit` bytes already
        // counts as too many.
        let limit = if limit == 0 { u64::MAX } else { limit };
        let gzip = head
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        if gzip {
            read_gzip(&mut incoming, limit, body, url).await?;
        } else {
            // Room for the whole body at once when the server says its size,
            // so that it is not copied again as the buffer grows (a target's
            // first scrape, or one that grew). A Content-Length is only a
            // claim: beyond the limit and [`RESERVE_AT_MOST`] the buffer
            // grows as bytes really arrive.
            let announced = head
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                .min(limit.saturating_sub(1))
                .min(RESERVE_AT_MOST);
            body.reserve(usize::try_from(announced).unwrap_or(0));
            while let Some(chunk) = next_chunk(&mut incoming).await {
                let chunk = chunk.map_err(|e| req_err(describe(&e)))?;
                if (body.len() + chunk.len()) as u64 >= limit {
                    debug!(url, limit, "body size limit exceeded");
                    return Err(Error::BodySizeLimit);
                }
                body.extend_from_slice(&chunk);
            }
        }
        Ok(content_type)
    }
}

/// A target's request, from [`Client::prepare`].
pub struct Prepared {
    url: String,
    timeout: Duration,
    /// The parsed URL and the headers, or why the URL cannot be scraped.
    request: Result<(Uri, HeaderMap), String>,
    /// The plain-HTTP path and its connection, for an `http` URL.
    direct: Option<Direct>,
}

fn request_parts(url: &str, timeout: Duration) -> Result<(Uri, HeaderMap), String> {
    let uri: Uri = escape_url(url)
        .parse()
        .map_err(|e| format!("invalid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(s) => return Err(format!("unsupported protocol scheme \"{s}\"")),
        None => return Err("unsupported protocol scheme \"\"".to_string()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("http: no Host in request URL".to_string());
    }
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(header::ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
    headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    let secs = HeaderValue::try_from(format!("{}", timeout.as_secs_f64()))
        .map_err(|e| format!("invalid scrape timeout header: {e}"))?;
    headers.insert("x-prometheus-scrape-timeout-seconds", secs);
    Ok((uri, headers))
}

/// Percent-encodes what a URI may not hold (spaces, quotes, braces, bytes
/// past ASCII) in a metrics path, as Go does before sending it.
fn escape_url(url: &str) -> Cow<'_, str> {
    let bad = |b: u8| b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b);
    if !url.bytes().any(bad) {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len() + 16);
    for &b in url.as_bytes() {
        if bad(b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    Cow::Owned(out)
}

/// The next data frame of the body; trailers are skipped.
async fn next_chunk(incoming: &mut Incoming) -> Option<Result<Bytes, hyper::Error>> {
    loop {
        let frame = poll_fn(|cx| Pin::new(&mut *incoming).poll_frame(cx)).await?;
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Gunzips the body into `body` as it arrives, so a small body that
/// inflates past the limit is stopped before it is all in memory.
async fn read_gzip(
    incoming: &mut Incoming,
    limit: u64,
    body: &mut Vec<u8>,
    url: &str,
) -> Result<(), Error> {
    let mut dec = MultiGzDecoder::new(Limited {
        body,
        limit,
        exceeded: false,
    });
    let decode_err = |dec: &MultiGzDecoder<Limited<'_>>, e: io::Error| {
        if dec.get_ref().exceeded {
            debug!(url, limit, "body size limit exceeded");
            Error::BodySizeLimit
        } else {
            Error::Request {
                url: url.to_string(),
                msg: format!("error decoding response body: {e}"),
            }
        }
    };
    while let Some(chunk) = next_chunk(incoming).await {
        let chunk = chunk.map_err(|e| Error::Request {
            url: url.to_string(),
            msg: describe(&e),
        })?;
        if let Err(e) = dec.write_all(&chunk) {
            return Err(decode_err(&dec, e));
        }
    }
    dec.try_finish().map_err(|e| decode_err(&dec, e))
}

/// The decoder's output: the caller's body, refusing to reach the limit.
struct Limited<'a> {
    body: &'a mut Vec<u8>,
    limit: u64,
    exceeded: bool,
}

impl Write for Limited<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if (self.body.len() + buf.len()) as u64 >= self.limit {
            self.exceeded = true;
            return Err(io::Error::other("body size limit exceeded"));
        }
        self.body.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The client's Display hides the cause ("client error (Connect)"); the
/// chain has what a user needs, such as "connection refused".
fn describe(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_as_go_sends_them() {
        assert_eq!(
            escape_url("http://h:1/a b/{x}\u{e9}?q=1"),
            "http://h:1/a%20b/%7Bx%7D%C3%A9?q=1"
        );
        assert!(matches!(escape_url("http://h:1/m?a=b"), Cow::Borrowed(_)));
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        let t = Duration::from_secs(1);
        let err = |u: &str| request_parts(u, t).err().unwrap();
        assert_eq!(err("ftp://h:1/m"), "unsupported protocol scheme \"ftp\"");
        assert!(err("http://[::1/metrics").starts_with("invalid URL: "));
        assert!(err("/metrics").starts_with("unsupported protocol scheme"));
    }

    #[test]
    fn the_timeout_header_is_in_seconds_as_go_formats_it() {
        for (d, want) in [
            (Duration::from_secs(10), "10"),
            (Duration::from_millis(500), "0.5"),
        ] {
            let (_, h) = request_parts("http://h:1/metrics", d).unwrap();
            assert_eq!(h["x-prometheus-scrape-timeout-seconds"], want);
            assert_eq!(h[header::ACCEPT], ACCEPT_HEADER);
            assert_eq!(h[header::ACCEPT_ENCODING], "gzip");
        }
    }

    #[test]
    fn status_text_prefers_the_servers_reason() {
        let mut ext = hyper::http::Extensions::new();
        assert_eq!(
            http_client::status_text(StatusCode::INTERNAL_SERVER_ERROR, &ext),
            "500 Internal Server Error"
        );
        ext.insert(hyper::ext::ReasonPhrase::try_from(&b"Busy"[..]).unwrap());
        assert_eq!(
            http_client::status_text(StatusCode::SERVICE_UNAVAILABLE, &ext),
            "503 Busy"
        );
    }
}

// The client against loopback servers; `scripts/test --quick` skips them.
#[cfg(test)]
mod loopback_tests;
