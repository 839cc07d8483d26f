//! Serving the router on a socket: HTTP/1.1 via hyper with a header read
//! timeout (slow clients cannot hold a connection), a bound on header size
//! and on open connections, optional TLS, basic auth and extra headers from
//! `--web.config.file`, and graceful shutdown.
//!
//! Knows sockets and connections, not routes: it wraps whatever
//! [`axum::Router`] it is given.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::envelope::text;
use super::web_config::{Users, Watched, WebConfig};

/// Connection-level limits and the web config.
#[derive(Clone)]
pub struct ServerOptions {
    /// A connection that has not sent a full request head (or the TLS
    /// handshake) within this time is closed; idle keep-alive connections too.
    pub read_header_timeout: Duration,
    /// Most connections open at once (`--web.max-connections`); further
    /// clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Largest request head (Go's `DefaultMaxHeaderBytes`); larger ones get
    /// `431`. URIs are further bounded at 64 KiB by the `http` crate (`414`).
    pub max_header_bytes: usize,
    pub web_config: WebConfig,
    /// The file `web_config` came from: followed for changes if set.
    pub web_config_file: Option<std::path::PathBuf>,
    /// Paths served without credentials even when basic auth is on
    /// (`--web.dashboards.anonymous`: the dashboard pages, as Grafana's
    /// anonymous viewers see them for Ray's iframes).
    pub anonymous: Option<Anonymous>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            read_header_timeout: Duration::from_secs(120),
            max_connections: 512,
            max_header_bytes: (1 << 20) + 4096,
            web_config: WebConfig::default(),
            web_config_file: None,
            anonymous: None,
        }
    }
}

/// Puts basic auth (if any users are configured) and the configured extra
/// headers in front of `app`, as the exporter toolkit's handler.
pub fn protect(app: Router, cfg: &WebConfig) -> Router {
    if cfg.users.is_none() && cfg.headers.is_empty() {
        return app;
    }
    protect_watched(app, Arc::new(Watched::fixed(cfg.clone())), None)
}

/// Which paths (as the client sent them, route prefix included) need no
/// credentials ([`ServerOptions::anonymous`]).
pub type Anonymous = Arc<dyn Fn(&str) -> bool + Send + Sync>;

fn protect_watched(app: Router, cfg: Arc<Watched>, anonymous: Option<Anonymous>) -> Router {
    app.layer(middleware::from_fn_with_state((cfg, anonymous), check_auth))
}

async fn check_auth(
    State((watched, anonymous)): State<(Arc<Watched>, Option<Anonymous>)>,
    req: Request,
    next: Next,
) -> Response {
    let cfg = watched.get();
    let open = anonymous.as_ref().is_some_and(|f| f(req.uri().path()));
    let mut resp = match &cfg.users {
        None => next.run(req).await,
        Some(_) if open => next.run(req).await,
        Some(users) => {
            let creds = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_basic);
            if authorized(users, creds).await {
                next.run(req).await
            } else {
                let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
                r
            }
        }
    };
    for (n, v) in &cfg.headers {
        resp.headers_mut().insert(n.clone(), v.clone());
    }
    resp
}

async fn authorized(users: &Arc<Users>, creds: Option<(String, String)>) -> bool {
    let Some((user, pass)) = creds else {
        return false;
    };
    let users = users.clone();
    tokio::task::spawn_blocking(move || users.verify(&user, &pass))
        .await
        .unwrap_or(false)
}

/// `Basic <base64(user:pass)>` → `(user, pass)`, as Go's `r.BasicAuth`.
fn parse_basic(v: &str) -> Option<(String, String)> {
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64_decode(rest.trim())?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Standard base64 with padding, as Go's `base64.StdEncoding`.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, chunk) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: ServerOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let watched = Arc::new(match &opts.web_config_file {
        Some(p) => Watched::follow(p.clone(), opts.web_config.clone()),
        None => Watched::fixed(opts.web_config.clone()),
    });
    let app = if opts.web_config_file.is_some() || opts.anonymous.is_some() {
        protect_watched(app, watched.clone(), opts.anonymous.clone())
    } else {
        protect(app, &opts.web_config)
    };
    // Whether to speak TLS is decided at startup, as in the exporter
    // toolkit; certificates follow the file.
    let tls_on = opts.web_config.tls.is_some();
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let tls = if tls_on {
            watched
                .get()
                .tls
                .clone()
                .or_else(|| opts.web_config.tls.clone())
                .map(tokio_rustls::TlsAcceptor::from)
        } else {
            None
        };
        let (app, opts2, shutdown) = (app.clone(), opts.clone(), shutdown.clone());
        tracker.spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(tcp, app, &opts2, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(opts2.read_header_timeout, acceptor.accept(tcp))
                        .await
                    {
                        Ok(Ok(stream)) => connection(stream, app, &opts2, shutdown).await,
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn connection<I>(io: I, app: Router, opts: &ServerOptions, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(opts.read_header_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192));
    let conn = b.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials() {
        assert_eq!(
            parse_basic("Basic YWxpY2U6czNjcjN0"),
            Some(("alice".to_string(), "s3cr3t".to_string()))
        );
        assert_eq!(
            parse_basic("basic YTo="),
            Some(("a".to_string(), String::new()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!!"), None);
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("YQ==YQ=="), None);
    }
}

// The server on loopback sockets; `scripts/test --quick` skips them.
#[cfg(test)]
mod loopback_tests;
