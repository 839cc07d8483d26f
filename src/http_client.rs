//! An HTTP client built from a [`HttpClientConfig`], as prometheus/common's
//! `NewClientFromConfig` builds one (v0.39, the version Prometheus 2.42
//! uses): TLS with a CA file, client certificate, server name, minimum and
//! maximum version or no verification; basic auth or an `Authorization`
//! header whose password or credentials file is read at every request (so
//! rotated secrets are used at once); an HTTP proxy (absolute-form requests
//! for `http` targets, a `CONNECT` tunnel for `https` ones); and up to 10
//! redirects unless `follow_redirects: false`. When a TLS file's content
//! changes, the next request builds a new TLS setup and connection pool, as
//! common's `tlsRoundTripper` does.
//!
//! Scraping, `http_sd_configs` and remote write each build their clients
//! here. It knows nothing of what they send: requests go out as given, with
//! only the authentication headers added. HTTP/1.1 only (`enable_http2` has
//! no effect: raymon's server side and Ray's exporters speak HTTP/1.1).

mod connect;
mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{HttpClientConfig, UNSUPPORTED_OAUTH2};
use connect::{Connector, Proxy};

/// Why a client could not be built or a request not sent. The texts are
/// Go's and prometheus/common's, without the `Get "url": ` prefix that the
/// caller adds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting cannot be used (a CA file that cannot be read, say).
    #[error("{0}")]
    Config(String),
    /// The request could not be sent or its answer not read.
    #[error("{0}")]
    Request(String),
}

/// How many redirects are followed, as Go's `http.Client`.
const MAX_REDIRECTS: usize = 10;

/// How long an idle connection stays in the pool unless told otherwise:
/// longer than any usual scrape interval, so a target keeps its connection.
const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// TCP keep-alive probes, as Go's dialer.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Transport settings of the caller, beyond the config file's.
#[derive(Debug, Clone)]
pub struct Options {
    /// Fixes each connection's read buffer at this size (hyper's adaptive
    /// buffer otherwise grows to a whole body and keeps that size).
    pub read_buf_exact_size: Option<usize>,
    pub pool_idle_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            read_buf_exact_size: None,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
        }
    }
}

type Hyper = hyper_util::client::legacy::Client<Connector, Full<Bytes>>;

/// A client for one scrape pool, discovery endpoint or remote-write
/// queue. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
}

struct Shared {
    cfg: HttpClientConfig,
    opts: Options,
    proxy: Result<Option<Proxy>, String>,
    /// The pool and the hash of the TLS files it was built from.
    built: Mutex<(Hyper, u128)>,
}

impl HttpClient {
    /// Builds the client; TLS files are read now, so a missing CA file is
    /// an error here as in Prometheus (`error creating HTTP client`).
    pub fn new(cfg: &HttpClientConfig, opts: Options) -> Result<HttpClient, Error> {
        // A proxy raymon cannot use fails each request, so that the error
        // shows on the targets it concerns.
        let proxy = cfg
            .proxy_url
            .as_deref()
            .map(|p| Proxy::parse(p, &cfg.proxy_connect_header))
            .transpose();
        let files = tls::TlsFiles::read(&cfg.tls_config).map_err(Error::Config)?;
        let hyper = build(
            cfg,
            &opts,
            proxy.as_ref().ok().and_then(Option::as_ref),
            &files,
        )?;
        Ok(HttpClient {
            shared: Arc::new(Shared {
                cfg: cfg.clone(),
                opts,
                proxy,
                built: Mutex::new((hyper, files.hash)),
            }),
        })
    }

    /// The connection pool to use now: rebuilt first when a TLS file has
    /// changed since the last request.
    fn current(&self) -> Result<Hyper, Error> {
        let s = &self.shared;
        if !s.cfg.tls_config.has_files() {
            let built = s.built.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(built.0.clone());
        }
        let files = tls::TlsFiles::read(&s.cfg.tls_config).map_err(Error::Request)?;
        let mut built = s.built.lock().unwrap_or_else(|e| e.into_inner());
        if built.1 != files.hash {
            let proxy = s.proxy.as_ref().ok().and_then(Option::as_ref);
            let hyper =
                build(&s.cfg, &s.opts, proxy, &files).map_err(|e| Error::Request(e.to_string()))?;
            *built = (hyper, files.hash);
            tracing::info!("TLS files changed, new connections use them");
        }
        Ok(built.0.clone())
    }

    /// Sends `req` with the configured authentication, following redirects
    /// when the config says so. The body is resent on a 307 or 308.
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<Incoming>, Error> {
        let cfg = &self.shared.cfg;
        if cfg.oauth2.is_some() {
            return Err(Error::Request(UNSUPPORTED_OAUTH2.to_string()));
        }
        if let Err(e) = &self.shared.proxy {
            return Err(Error::Request(e.clone()));
        }
        let hyper = self.current()?;
        let (mut parts, mut body) = req.into_parts();
        for _ in 0..=MAX_REDIRECTS {
            let mut headers = parts.headers.clone();
            self.authorize(&mut headers, &parts.uri)?;
            let mut out = Request::new(Full::new(body.clone()));
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = parts.uri.clone();
            *out.headers_mut() = headers;
            let resp = hyper
                .request(out)
                .await
                .map_err(|e| Error::Request(connect::describe(&e)))?;
            let Some(next) = self.redirect(&parts.uri, &resp) else {
                return Ok(resp);
            };
            // Go turns a redirected POST into a GET without a body, except
            // for 307 and 308.
            let status = resp.status();
            if !matches!(
                status,
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
            ) && parts.method != Method::HEAD
            {
                parts.method = Method::GET;
                body = Bytes::new();
                parts.headers.remove(header::CONTENT_TYPE);
                parts.headers.remove(header::CONTENT_ENCODING);
                parts.headers.remove(header::CONTENT_LENGTH);
            }
            parts.uri = next;
        }
        Err(Error::Request(format!(
            "stopped after {MAX_REDIRECTS} redirects"
        )))
    }

    /// The URL a redirect answer points to, when it is to be followed.
    fn redirect(&self, from: &Uri, resp: &Response<Incoming>) -> Option<Uri> {
        if !self.shared.cfg.follow_redirects {
            return None;
        }
        let redirect = matches!(
            resp.status(),
            StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::SEE_OTHER
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT
        );
        if !redirect {
            return None;
        }
        let location = resp.headers().get(header::LOCATION)?.to_str().ok()?;
        resolve(from, location)
    }

    /// Adds the configured credentials unless the request has its own
    /// `Authorization`, and the proxy's for a plain-HTTP request through
    /// it. Secret files are read here, at every request.
    fn authorize(&self, headers: &mut HeaderMap, uri: &Uri) -> Result<(), Error> {
        let cfg = &self.shared.cfg;
        if !headers.contains_key(header::AUTHORIZATION) {
            let value = if let Some(a) = &cfg.authorization {
                let creds = if a.credentials_file.is_empty() {
                    a.credentials.clone()
                } else {
                    read_secret(&a.credentials_file).map_err(|e| {
                        Error::Request(format!(
                            "unable to read authorization credentials file {}: {e}",
                            a.credentials_file
                        ))
                    })?
                };
                Some(format!("{} {creds}", a.kind))
            } else if let Some(b) = &cfg.basic_auth {
                let password = if b.password_file.is_empty() {
                    b.password.trim().to_string()
                } else {
                    read_secret(&b.password_file).map_err(|e| {
                        Error::Request(format!(
                            "unable to read basic auth password file {}: {e}",
                            b.password_file
                        ))
                    })?
                };
                Some(basic_auth(&b.username, &password))
            } else {
                None
            };
            if let Some(v) = value {
                let v = HeaderValue::try_from(v).map_err(|_| {
                    Error::Request(
                        "net/http: invalid header field value for \"Authorization\"".to_string(),
                    )
                })?;
                headers.insert(header::AUTHORIZATION, v);
            }
        }
        if uri.scheme_str() == Some("http")
            && let Some(auth) = self
                .shared
                .proxy
                .as_ref()
                .ok()
                .and_then(Option::as_ref)
                .and_then(|p| p.auth.clone())
        {
            headers.insert(header::PROXY_AUTHORIZATION, auth);
        }
        Ok(())
    }
}

fn build(
    cfg: &HttpClientConfig,
    opts: &Options,
    proxy: Option<&Proxy>,
    files: &tls::TlsFiles,
) -> Result<Hyper, Error> {
    let tls = tls::client_config(&cfg.tls_config, files).map_err(Error::Config)?;
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_keepalive(Some(TCP_KEEPALIVE));
    tcp.enforce_http(false);
    let connector = Connector::new(tcp, tls, &cfg.tls_config.server_name, proxy.cloned());
    let mut b = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    b.pool_timer(TokioTimer::new())
        .pool_idle_timeout(opts.pool_idle_timeout);
    if let Some(n) = opts.read_buf_exact_size {
        b.http1_read_buf_exact_size(n);
    }
    Ok(b.build(connector))
}

/// "500 Internal Server Error", with the reason the server sent as Go's
/// `resp.Status` has it.
pub fn status_text(status: StatusCode, ext: &hyper::http::Extensions) -> String {
    let reason = match ext.get::<hyper::ext::ReasonPhrase>() {
        Some(r) => String::from_utf8_lossy(r.as_bytes()).into_owned(),
        None => status.canonical_reason().unwrap_or("").to_string(),
    };
    if reason.is_empty() {
        status.as_u16().to_string()
    } else {
        format!("{} {reason}", status.as_u16())
    }
}

/// A secret file's content without surrounding white space, as Go's
/// `strings.TrimSpace(os.ReadFile(f))`.
fn read_secret(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| go_open_error(path, &e))
}

/// Go's `*fs.PathError` text for a failed open.
pub(crate) fn go_open_error(path: &str, e: &std::io::Error) -> String {
    format!("open {path}: {}", crate::config::io_reason(e))
}

/// `Basic base64(user:password)`, as Go's `Request.SetBasicAuth`.
fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::with_capacity(6 + input.len() * 4 / 3 + 4);
    out.push_str("Basic ");
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Resolves a `Location` header against the URL that answered it.
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    if location.contains("://") {
        return location.parse().ok();
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}").parse().ok();
    }
    let path = base.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    format!("{scheme}://{authority}{dir}{location}")
        .parse()
        .ok()
}

impl crate::config::TlsConfig {
    fn has_files(&self) -> bool {
        !self.ca_file.is_empty() || !self.cert_file.is_empty() || !self.key_file.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_base64_as_go() {
        assert_eq!(basic_auth("a", ""), "Basic YTo=");
        assert_eq!(basic_auth("user", "pass"), "Basic dXNlcjpwYXNz");
        assert_eq!(basic_auth("ab", "c"), "Basic YWI6Yw==");
    }

    #[test]
    fn redirects_resolve_against_the_answering_url() {
        let base: Uri = "http://h:1/a/b?x=1".parse().unwrap();
        let r = |l: &str| resolve(&base, l).unwrap().to_string();
        assert_eq!(r("/m"), "http://h:1/m");
        assert_eq!(r("m?y=2"), "http://h:1/a/m?y=2");
        assert_eq!(r("https://o:2/z"), "https://o:2/z");
        assert_eq!(r("//o:3/z"), "http://o:3/z");
    }
}
