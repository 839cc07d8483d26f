//! Opening a connection for the pool: TCP to the target or to the proxy,
//! a `CONNECT` tunnel through the proxy for `https` targets, then TLS.
//! Errors read as Go's (`dial tcp …: connect: connection refused`,
//! `x509: …`). Knows nothing of requests beyond their URL.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The longest proxy answer to `CONNECT` read before giving up.
const MAX_CONNECT_RESPONSE: usize = 16 << 10;

/// A `proxy_url`: where to connect, and what to tell the proxy.
#[derive(Debug, Clone)]
pub(super) struct Proxy {
    /// `http://host:port` of the proxy.
    uri: Uri,
    /// `Proxy-Authorization` from the URL's user info.
    pub auth: Option<HeaderValue>,
    /// `proxy_connect_header`, sent with `CONNECT`.
    connect_headers: Vec<(HeaderName, HeaderValue)>,
}

impl Proxy {
    pub fn parse(
        url: &str,
        connect_headers: &BTreeMap<String, Vec<String>>,
    ) -> Result<Proxy, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("invalid proxy_url {url:?}"))?;
        // Go also dials https and socks5 proxies; raymon says it cannot
        // rather than send the traffic some other way.
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "proxyconnect: raymon supports only http:// proxies, not {scheme:?}"
            ));
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let host = if host.contains(':') && !host.ends_with(']') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let uri: Uri = format!("http://{host}")
            .parse()
            .map_err(|e| format!("invalid proxy_url {url:?}: {e}"))?;
        let auth = userinfo
            .map(|u| {
                let (user, password) = u.split_once(':').unwrap_or((u, ""));
                let v = super::basic_auth(&percent_decode(user), &percent_decode(password));
                HeaderValue::try_from(v).map_err(|e| e.to_string())
            })
            .transpose()?;
        let mut headers = Vec::new();
        for (name, values) in connect_headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| format!("invalid proxy_connect_header {name:?}: {e}"))?;
            for v in values {
                let v = HeaderValue::try_from(v.as_str())
                    .map_err(|e| format!("invalid proxy_connect_header {name}: {e}"))?;
                headers.push((name.clone(), v));
            }
        }
        Ok(Proxy {
            uri,
            auth,
            connect_headers: headers,
        })
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The pool's connector.
#[derive(Clone)]
pub(super) struct Connector {
    tcp: HttpConnector,
    tls: TlsConnector,
    /// `tls_config.server_name`, else the URL's host is used.
    server_name: Option<ServerName<'static>>,
    proxy: Option<Arc<Proxy>>,
}

impl Connector {
    pub fn new(
        tcp: HttpConnector,
        tls: Arc<ClientConfig>,
        server_name: &str,
        proxy: Option<Proxy>,
    ) -> Connector {
        Connector {
            tcp,
            tls: TlsConnector::from(tls),
            server_name: ServerName::try_from(server_name.to_string()).ok(),
            proxy: proxy.map(Arc::new),
        }
    }
}

/// A connector failure, already in Go's words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct ConnectError(String);

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.tcp
            .poll_ready(cx)
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut this = self.clone();
        Box::pin(async move {
            let https = uri.scheme_str() == Some("https");
            let host = uri.host().unwrap_or("").to_string();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let dial_to = this.proxy.as_ref().map_or(uri.clone(), |p| p.uri.clone());
            let dial_addr = format!(
                "{}:{}",
                dial_to.host().unwrap_or(""),
                dial_to.port_u16().unwrap_or(80)
            );
            let tcp = this.tcp.call(dial_to).await.map_err(|e| {
                let msg = dial_error(&dial_addr, &e);
                match this.proxy {
                    Some(_) => ConnectError(format!("proxyconnect tcp: {msg}")),
                    None => ConnectError(msg),
                }
            })?;
            let mut tcp = tcp.into_inner();
            if !https {
                return Ok(Conn {
                    io: TokioIo::new(Stream::Plain(tcp)),
                    proxied: this.proxy.is_some(),
                });
            }
            if let Some(p) = &this.proxy {
                tunnel(&mut tcp, &host, port, p).await?;
            }
            let name = match &this.server_name {
                Some(n) => n.clone(),
                None => {
                    let bare = host.trim_start_matches('[').trim_end_matches(']');
                    ServerName::try_from(bare.to_string())
                        .map_err(|e| ConnectError(format!("invalid server name {host:?}: {e}")))?
                }
            };
            let tls = this
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectError(tls_error(&e)))?;
            Ok(Conn {
                io: TokioIo::new(Stream::Tls(Box::new(tls))),
                proxied: false,
            })
        })
    }
}

/// Asks the proxy for a tunnel to `host:port`.
async fn tunnel(tcp: &mut TcpStream, host: &str, port: u16, p: &Proxy) -> Result<(), ConnectError> {
    let target = format!("{host}:{port}");
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = &p.auth {
        req.push_str("Proxy-Authorization: ");
        req.push_str(a.to_str().unwrap_or(""));
        req.push_str("\r\n");
    }
    for (name, value) in &p.connect_headers {
        req.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
    }
    req.push_str("\r\n");
    let io_err = |e: io::Error| ConnectError(format!("proxyconnect tcp: {e}"));
    tcp.write_all(req.as_bytes()).await.map_err(io_err)?;
    // Read only up to the end of the answer's head: what follows belongs
    // to the TLS handshake.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_CONNECT_RESPONSE {
            return Err(ConnectError(
                "proxyconnect tcp: answer to CONNECT too long".to_string(),
            ));
        }
        let n = tcp.read(&mut byte).await.map_err(io_err)?;
        if n == 0 {
            return Err(ConnectError("proxyconnect tcp: EOF".to_string()));
        }
        head.push(byte[0]);
    }
    let status_line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let code = parts.next().unwrap_or("");
    if code == "200" {
        return Ok(());
    }
    // Go reports the proxy's status text alone, such as "Forbidden".
    let reason = parts.next().unwrap_or("");
    Err(ConnectError(if reason.is_empty() {
        "unknown status code".to_string()
    } else {
        reason.to_string()
    }))
}

/// Go's `dial tcp ADDR: connect: connection refused` for the common cases.
fn dial_error(addr: &str, e: &(dyn std::error::Error + 'static)) -> String {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            let what = match io.kind() {
                io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
                io::ErrorKind::TimedOut => "i/o timeout".to_string(),
                io::ErrorKind::HostUnreachable => "connect: no route to host".to_string(),
                io::ErrorKind::NetworkUnreachable => "connect: network is unreachable".to_string(),
                _ => io.to_string(),
            };
            return format!("dial tcp {addr}: {what}");
        }
        src = s.source();
    }
    format!("dial tcp {addr}: {e}")
}

fn tls_error(e: &io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r) => super::tls::describe(r),
        None => e.to_string(),
    }
}

/// The text of a pool error: the connector's own message when connecting
/// failed (hyper's display is only "client error (Connect)"), else the
/// chain of causes.
pub(super) fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            return c.0.clone();
        }
        // A TLS alert after the handshake (TLS 1.3 servers refuse a
        // client certificate only then) arrives while reading the answer.
        let tls = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<rustls::Error>())
        });
        if let Some(t) = tls {
            return super::tls::describe(t);
        }
        src = s.source();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// A plain or TLS connection.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// What the pool holds: the stream, and whether requests on it go to a
/// proxy (then hyper sends them in absolute form).
pub(super) struct Conn {
    io: TokioIo<Stream>,
    proxied: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_give_address_and_credentials() {
        let p = Proxy::parse("http://u%40x:p%3Aw@proxy.example:3128/", &BTreeMap::new()).unwrap();
        assert_eq!(p.uri.to_string(), "http://proxy.example:3128/");
        assert_eq!(
            p.auth.unwrap(),
            super::super::basic_auth("u@x", "p:w").as_str()
        );
        let p = Proxy::parse("http://proxy", &BTreeMap::new()).unwrap();
        assert_eq!(p.uri.port_u16(), Some(80));
        assert!(p.auth.is_none());
    }
}
