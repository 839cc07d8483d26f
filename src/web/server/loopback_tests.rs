//! The HTTP server on real loopback sockets, in process: `--web.config.file`
//! (basic auth with bcrypt, TLS with a self-signed certificate, client
//! certificates, changes without restart), slow clients, and the header
//! size bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::testing::TempDir;
use crate::testing::tls::{tls_and_auth_config, tls_get, tls_get_as};
use crate::testing::wire::exchange;
use crate::tsdb::{Head, HeadOptions};
use crate::web::remote_write::tests::receiving_state;
use crate::web::server::{ServerOptions, serve};
use crate::web::web_config::WebConfig;
use crate::web::{self};

/// A server on a free loopback port, stopped when dropped.
struct Running {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(opts: ServerOptions) -> Running {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(
        listener,
        web::router(receiving_state(&head)),
        opts,
        stop.clone(),
    ));
    Running { addr, stop }
}

async fn plain_get(
    addr: std::net::SocketAddr,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<(u16, String, String)> {
    exchange(TcpStream::connect(addr).await?, path, auth).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_tls_from_web_config() {
    let dir = TempDir::new("webcfg");
    let (path, ca) = tls_and_auth_config(dir.path());
    let opts = ServerOptions {
        web_config: WebConfig::load(&path).unwrap(),
        ..Default::default()
    };
    let srv = run(opts).await;

    // No credentials, a wrong password, an unknown user: 401 with a
    // challenge, even for the health check, as Prometheus.
    for auth in [
        None,
        Some(("grafana", "wrong")),
        Some(("admin", "s3cret pass")),
    ] {
        let (status, head, body) = tls_get(srv.addr, &ca, "/-/healthy", auth).await.unwrap();
        assert_eq!(status, 401, "{auth:?}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{head}"
        );
        assert_eq!(body, "Unauthorized\n");
    }
    let right = Some(("grafana", "s3cret pass"));
    let (status, _, body) = tls_get(srv.addr, &ca, "/-/healthy", right).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "Prometheus Server is Healthy.\n");
    let (status, _, body) = tls_get(srv.addr, &ca, "/api/v1/labels", right)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"status":"success","data":[]}"#);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = plain_get(srv.addr, "/-/healthy", right).await;
    assert!(!matches!(plain, Ok((200, _, _))), "{plain:?}");
    // A client that does not trust the certificate fails the handshake.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    assert!(
        tls_get(srv.addr, other.cert.der(), "/-/healthy", right)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_verified_against_the_client_ca() {
    let dir = TempDir::new("mtls");
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), server.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        server.signing_key.serialize_pem(),
    )
    .unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut cp = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
    cp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = cp.signed_by(&client_key, &ca).unwrap();
    let client = || {
        Some((
            client_cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der())),
        ))
    };
    let yaml = "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n";
    std::fs::write(dir.path().join("web.yml"), yaml).unwrap();
    let srv = run(ServerOptions {
        web_config: WebConfig::load(&dir.path().join("web.yml")).unwrap(),
        ..Default::default()
    })
    .await;
    let ca_der = server.cert.der().clone();
    let ok = tls_get_as(srv.addr, &ca_der, client(), "/-/healthy", None)
        .await
        .unwrap();
    assert_eq!(ok.0, 200);
    // Without a certificate the server ends the handshake (TLS 1.3 reports
    // it on the first read, so no HTTP answer arrives either way).
    let without = tls_get_as(srv.addr, &ca_der, None, "/-/healthy", None).await;
    assert!(!matches!(without, Ok((200, _, _))), "{without:?}");
    // A certificate from another CA is refused too.
    let stranger = rcgen::generate_simple_self_signed(vec!["client".to_string()]).unwrap();
    let other = Some((
        stranger.cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            stranger.signing_key.serialize_der(),
        )),
    ));
    let r = tls_get_as(srv.addr, &ca_der, other, "/-/healthy", None).await;
    assert!(!matches!(r, Ok((200, _, _))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_config_changes_apply_without_restart() {
    let dir = TempDir::new("webreload");
    let path = dir.path().join("web.yml");
    let write = |pass: &str, bump: u64| {
        let hash = bcrypt::hash_with_salt(pass, 4, [3; 16])
            .unwrap()
            .to_string();
        std::fs::write(&path, format!("basic_auth_users:\n  u: {hash}\n")).unwrap();
        set_mtime(&path, bump);
    };
    write("first", 0);
    let srv = run(ServerOptions {
        web_config: WebConfig::load(&path).unwrap(),
        web_config_file: Some(path.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        plain_get(srv.addr, "/-/healthy", Some(("u", "first")))
            .await
            .unwrap()
            .0,
        200
    );
    write("second", 10);
    assert_eq!(
        plain_get(srv.addr, "/-/healthy", Some(("u", "first")))
            .await
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        plain_get(srv.addr, "/-/healthy", Some(("u", "second")))
            .await
            .unwrap()
            .0,
        200
    );
    // A broken edit keeps the last good config rather than opening up.
    std::fs::write(&path, "basic_auth_users: [oops\n").unwrap();
    set_mtime(&path, 20);
    assert_eq!(
        plain_get(srv.addr, "/-/healthy", None).await.unwrap().0,
        401
    );
    assert_eq!(
        plain_get(srv.addr, "/-/healthy", Some(("u", "second")))
            .await
            .unwrap()
            .0,
        200
    );
}

/// Moves a file's modification time `secs` into the future, so a change
/// is seen even on file systems with coarse timestamps.
fn set_mtime(path: &std::path::Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(secs))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_without_tls_and_extra_headers() {
    let hash = bcrypt::hash_with_salt("pw", 4, [1; 16])
        .unwrap()
        .to_string();
    let yaml = format!(
        "basic_auth_users:\n  u: {hash}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    );
    let opts = ServerOptions {
        web_config: WebConfig::parse(&yaml, std::path::Path::new(".")).unwrap(),
        ..Default::default()
    };
    let srv = run(opts).await;
    let (status, head, _) = plain_get(srv.addr, "/-/ready", Some(("u", "nope")))
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{head}"
    );
    let (status, head, _) = plain_get(srv.addr, "/-/ready", Some(("u", "pw")))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_server() {
    let timeout = Duration::from_secs(2);
    let srv = run(ServerOptions {
        read_header_timeout: timeout,
        max_connections: 4,
        ..Default::default()
    })
    .await;
    let addr = srv.addr;
    // Slowloris: four connections (every slot) that each send their
    // headers one byte every 300 ms and never finish.
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut s = TcpStream::connect(addr).await.unwrap();
            let req = b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for b in req.iter() {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                // The server closing shows up as EOF on a non-blocking read.
                let mut buf = [0u8; 256];
                match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                    Ok(Ok(_)) => return started.elapsed(),
                    Err(_) => {}
                }
            }
            panic!("the slow connection was never closed");
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Other clients are still served: once the slots free up (after the
    // header timeout at the latest), quickly.
    let t0 = Instant::now();
    let (status, _, _) = plain_get(addr, "/-/healthy", None).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        t0.elapsed() < timeout + Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    for h in slow {
        let held = h.await.unwrap();
        assert!(
            held >= timeout - Duration::from_millis(100),
            "closed early: {held:?}"
        );
        assert!(
            held < timeout + Duration::from_secs(2),
            "held too long: {held:?}"
        );
    }
    // With the slots free, requests are immediate again.
    let t0 = Instant::now();
    for _ in 0..5 {
        assert_eq!(plain_get(addr, "/-/healthy", None).await.unwrap().0, 200);
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_query_string_size_is_bounded() {
    let srv = run(ServerOptions::default()).await;
    // A query string up to 64 KiB (the longest URI the `http` crate
    // represents) is served...
    let q = "a".repeat(60 << 10);
    let (status, _, body) = plain_get(srv.addr, &format!("/api/v1/labels?x={q}"), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // ...a longer one is refused before it reaches a handler.
    let q = "a".repeat(100 << 10);
    let (status, _, _) = plain_get(srv.addr, &format!("/api/v1/labels?x={q}"), None)
        .await
        .unwrap();
    assert_eq!(status, 414);
    // Headers are bounded at Go's 1 MB: 2 MB of them get 431 (or a closed
    // connection if the server stops reading first).
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let big = format!(
        "GET /-/healthy HTTP/1.0\r\nX-Big: {}\r\n\r\n",
        "b".repeat(2 << 20)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
    // And the server still answers afterwards.
    assert_eq!(
        plain_get(srv.addr, "/-/healthy", None).await.unwrap().0,
        200
    );
}
