//! TLS test helpers: a self-signed certificate with a `--web.config.file`
//! that uses it, and a `GET` over TLS trusting only that certificate.
//! Shared like `wire.rs` (which it reaches as `super::wire`, the same path
//! in the library's tests and in `tests/it`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use super::wire::exchange;

/// A self-signed certificate for localhost and a web config using it (with
/// paths relative to the config file) plus one bcrypt user.
pub(crate) fn tls_and_auth_config(dir: &Path) -> (PathBuf, CertificateDer<'static>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let hash = bcrypt::hash_with_salt("s3cret pass", 4, [9; 16])
        .unwrap()
        .to_string();
    let yaml = format!(
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  grafana: {hash}\n"
    );
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).unwrap();
    (path, ck.cert.der().clone())
}

/// `GET` over TLS trusting only `ca`; returns (status, head, body).
pub(crate) async fn tls_get(
    addr: std::net::SocketAddr,
    ca: &CertificateDer<'static>,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<(u16, String, String)> {
    tls_get_as(addr, ca, None, path, auth).await
}

/// Like `tls_get`, presenting a client certificate if given.
pub(crate) async fn tls_get_as(
    addr: std::net::SocketAddr,
    ca: &CertificateDer<'static>,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<(u16, String, String)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match client {
        Some((cert, key)) => b.with_client_auth_cert(vec![cert], key).unwrap(),
        None => b.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(addr).await?;
    let s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    exchange(s, path, auth).await
}
