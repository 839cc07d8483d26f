//! The scrape client's HTTP settings against real servers (issue 19): a
//! Prometheus 2.42 (`--web.config.file`) and a VictoriaMetrics (`-tls`,
//! `-httpAuth.*`) serving their own metrics over TLS with basic auth,
//! vmauth asking for a bearer token, and tinyproxy as `proxy_url`; then
//! rotated password and CA files, and `http_sd_configs` against a server
//! whose answers the test changes.
//!
//! VictoriaMetrics 1.79 leaves its own `/metrics` outside `-httpAuth.*`
//! (any password gets a 200), so its basic-auth jobs scrape its
//! `/federate` of the series it scraped from itself (`-selfScrapeInterval`),
//! which the auth does cover.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{self, KillOnDrop, TempDir, free_port};

const USER: &str = "scraper";
const PASSWORD: &str = "s3cret pass";

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost,
/// written as `ca.pem`, `server.pem`, `server-key.pem`; plus `other-ca.pem`,
/// a CA that signed nothing here.
fn certificates(dir: &Path) {
    let ca = |name: &str| {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap()
    };
    let issuer = ca("raymon test CA");
    std::fs::write(dir.join("ca.pem"), issuer.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), ca("someone else").pem()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["raymon".to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("client.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("client-key.pem"), key.serialize_pem()).unwrap();
}

fn spawn(program: &str, args: &[String], log: &Path) -> KillOnDrop {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} ({e}): run scripts/setup-deps"));
    KillOnDrop(child)
}

fn wait_listening(addr: &str, what: &str) {
    support::wait_for(Duration::from_secs(60), what, || {
        TcpStream::connect(addr)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

/// Prometheus 2.42 serving its own `/metrics` over TLS with basic auth.
fn start_prometheus(dir: &Path) -> (String, KillOnDrop) {
    start_prometheus_with(dir, "prom", "")
}

/// Prometheus 2.42 over TLS with basic auth, `tls_extra` added to its
/// `tls_server_config`; its files are named after `name`.
fn start_prometheus_with(dir: &Path, name: &str, tls_extra: &str) -> (String, KillOnDrop) {
    let hash = bcrypt::hash_with_salt(PASSWORD, 4, [7; 16])
        .unwrap()
        .to_string();
    let web = dir.join(format!("{name}-web.yml"));
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{tls_extra}basic_auth_users:\n  {USER}: {hash}\n",
            dir.join("server.pem").display(),
            dir.join("server-key.pem").display()
        ),
    )
    .unwrap();
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = spawn(
        "prometheus",
        &[
            format!("--config.file={}", cfg.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.join(format!("{name}-data")).display()
            ),
            format!("--web.listen-address={addr}"),
            format!("--web.config.file={}", web.display()),
        ],
        &dir.join(format!("{name}.log")),
    );
    wait_listening(&addr, "Prometheus listening");
    (addr, child)
}

/// VictoriaMetrics serving its own `/metrics` over TLS with basic auth.
fn start_victoria(dir: &Path) -> (String, KillOnDrop) {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = spawn(
        "victoria-metrics",
        &[
            format!("-storageDataPath={}", dir.join("vm-data").display()),
            format!("-httpListenAddr={addr}"),
            "-tls".into(),
            format!("-tlsCertFile={}", dir.join("server.pem").display()),
            format!("-tlsKeyFile={}", dir.join("server-key.pem").display()),
            format!("-httpAuth.username={USER}"),
            format!("-httpAuth.password={PASSWORD}"),
            "-selfScrapeInterval=1s".into(),
        ],
        &dir.join("vm.log"),
    );
    wait_listening(&addr, "VictoriaMetrics listening");
    (addr, child)
}

/// vmauth in front of `upstream`, letting in only `Bearer <token>`.
fn start_vmauth(dir: &Path, token: &str, upstream: &str) -> (String, KillOnDrop) {
    let cfg = dir.join("vmauth.yml");
    std::fs::write(
        &cfg,
        format!("users:\n  - bearer_token: \"{token}\"\n    url_prefix: \"http://{upstream}\"\n"),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = spawn(
        "vmauth",
        &[
            format!("-auth.config={}", cfg.display()),
            format!("-httpListenAddr={addr}"),
        ],
        &dir.join("vmauth.log"),
    );
    wait_listening(&addr, "vmauth listening");
    (addr, child)
}

/// tinyproxy on a free port, in the foreground, logging every request.
fn start_tinyproxy(dir: &Path) -> (String, PathBuf, KillOnDrop) {
    let port = free_port();
    let log = dir.join("tinyproxy.log");
    let cfg = dir.join("tinyproxy.conf");
    // No ConnectPort line: CONNECT is allowed to any port.
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nLogLevel Info\nLogFile \"{}\"\nMaxClients 20\n",
            log.display()
        ),
    )
    .unwrap();
    let child = spawn(
        "tinyproxy",
        &["-d".into(), "-c".into(), cfg.display().to_string()],
        &dir.join("tinyproxy.out"),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_listening(&addr, "tinyproxy listening");
    (addr, log, child)
}

/// Active targets as (job, health, lastError).
fn targets(addr: &str) -> Result<Vec<(String, String, String)>, String> {
    let at = support::text_at;
    Ok(support::active_targets(addr)?
        .iter()
        .map(|t| (at(t, "/scrapePool"), at(t, "/health"), at(t, "/lastError")))
        .collect())
}

/// Waits until `job`'s one target has `health` and an error for which
/// `error_ok` holds; returns the error.
fn wait_target(addr: &str, job: &str, health: &str, error_ok: impl Fn(&str) -> bool) -> String {
    support::wait_for(Duration::from_secs(60), &format!("{job} {health}"), || {
        let t = targets(addr)?;
        match t.iter().find(|(j, _, _)| j == job) {
            Some((_, h, e)) if h == health && error_ok(e) => Ok(e.clone()),
            other => Err(format!("{other:?}")),
        }
    })
}

/// The value of `up` for `job`, from the store (not the `up` series that
/// the federating jobs copy, which carry `exported_job`).
fn up_value(addr: &str, job: &str) -> Option<String> {
    let q = support::enc(&format!("up{{job=\"{job}\", exported_job=\"\"}}"));
    let r = support::get(addr, &format!("/api/v1/query?query={q}")).ok()?;
    let v = r.json();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map(str::to_string)
}

fn start_raymon(dir: &Path, config: &str) -> (String, KillOnDrop) {
    let cfg = dir.join("raymon.yml");
    std::fs::write(&cfg, config).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = support::start_raymon(
        &[
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", dir.join("raymon-data").display()),
            format!("--web.listen-address={addr}"),
        ],
        &dir.join("raymon.log"),
    );
    wait_listening(&addr, "raymon listening");
    (addr, child)
}

#[test]
fn issue_19_tls_basic_auth_bearer_and_proxy_targets_against_real_servers() {
    let dir = TempDir::new("scrape-auth");
    let d = dir.path();
    certificates(d);
    let (prom, _prom) = start_prometheus(d);
    let (vm, _vm) = start_victoria(d);
    let token = "t0ken-for-vmauth";
    std::fs::write(d.join("token"), format!("{token}\n")).unwrap();
    std::fs::write(d.join("password"), format!("{PASSWORD}\n")).unwrap();
    let (proxy, proxy_log, _proxy) = start_tinyproxy(d);
    // raymon's own port, known before it starts, so vmauth can front it.
    let raymon_port = free_port();
    let raymon_addr = format!("127.0.0.1:{raymon_port}");
    let (vmauth, _vmauth) = start_vmauth(d, token, &raymon_addr);
    let ca = d.join("ca.pem").display().to_string();
    let tls = format!("    tls_config:\n      ca_file: {ca}\n");
    let config = format!(
        "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:
  - job_name: prometheus-tls
    scheme: https
{tls}    basic_auth:\n      username: {USER}\n      password: {PASSWORD:?}
    static_configs: [{{targets: ['{prom}']}}]
  - job_name: victoria-tls
    scheme: https
{tls}    static_configs: [{{targets: ['{vm}']}}]
  - job_name: victoria-federate
    scheme: https
    metrics_path: /federate
    params: {{'match[]': ['vm_app_version']}}
    honor_labels: true
{tls}    basic_auth:\n      username: {USER}\n      password_file: password
    static_configs: [{{targets: ['{vm}']}}]
  - job_name: prometheus-wrong-password
    scheme: https
{tls}    basic_auth:\n      username: {USER}\n      password: wrong
    static_configs: [{{targets: ['{prom}']}}]
  - job_name: victoria-wrong-password
    scheme: https
    metrics_path: /federate
    params: {{'match[]': ['vm_app_version']}}
{tls}    basic_auth:\n      username: {USER}\n      password: wrong
    static_configs: [{{targets: ['{vm}']}}]
  - job_name: bearer
    metrics_path: /federate
    params: {{'match[]': ['up']}}
    bearer_token_file: token
    static_configs: [{{targets: ['{vmauth}']}}]
  - job_name: bearer-missing
    metrics_path: /federate
    params: {{'match[]': ['up']}}
    static_configs: [{{targets: ['{vmauth}']}}]
  - job_name: proxied-tls
    scheme: https
    proxy_url: http://{proxy}
{tls}    basic_auth:\n      username: {USER}\n      password: {PASSWORD:?}
    static_configs: [{{targets: ['{vm}']}}]
  - job_name: proxied-http
    proxy_url: http://{proxy}
    metrics_path: /federate
    params: {{'match[]': ['up']}}
    authorization:\n      credentials_file: token
    static_configs: [{{targets: ['{vmauth}']}}]
"
    );
    let cfg = d.join("raymon.yml");
    std::fs::write(&cfg, &config).unwrap();
    let _raymon = support::start_raymon(
        &[
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", d.join("raymon-data").display()),
            format!("--web.listen-address={raymon_addr}"),
        ],
        &d.join("raymon.log"),
    );
    wait_listening(&raymon_addr, "raymon listening");
    let a = raymon_addr.as_str();

    for job in [
        "prometheus-tls",
        "victoria-tls",
        "victoria-federate",
        "bearer",
        "proxied-tls",
        "proxied-http",
    ] {
        wait_target(a, job, "up", str::is_empty);
        support::wait_for(Duration::from_secs(10), "up 1", || {
            match up_value(a, job).as_deref() {
                Some("1") => Ok(()),
                other => Err(format!("{job}: {other:?}")),
            }
        });
    }
    let unauthorized = "server returned HTTP status 401 Unauthorized";
    for job in [
        "prometheus-wrong-password",
        "victoria-wrong-password",
        "bearer-missing",
    ] {
        let e = wait_target(a, job, "down", |e| !e.is_empty());
        assert_eq!(e, unauthorized, "{job}");
        assert_eq!(up_value(a, job).as_deref(), Some("0"), "{job}");
    }
    // The real servers' own series came in.
    let q = support::enc("count(prometheus_build_info{job=\"prometheus-tls\"})");
    let r = support::get(a, &format!("/api/v1/query?query={q}")).unwrap();
    assert_eq!(r.json()["data"]["result"][0]["value"][1], "1", "{}", r.body);
    let q = support::enc("count(vm_app_version{job=\"victoria-tls\"})");
    let r = support::get(a, &format!("/api/v1/query?query={q}")).unwrap();
    assert_eq!(r.json()["data"]["result"][0]["value"][1], "1", "{}", r.body);
    // Through basic auth: VictoriaMetrics' own series, once it has scraped
    // itself (`honor_labels` keeps its `job`).
    support::wait_for(Duration::from_secs(30), "vm_app_version federated", || {
        let q = support::enc("count(vm_app_version{job=\"victoria-metrics\"})");
        let r = support::get(a, &format!("/api/v1/query?query={q}")).map_err(|e| e.to_string())?;
        match r.json()["data"]["result"][0]["value"][1].as_str() {
            Some("1") => Ok(()),
            _ => Err(r.body),
        }
    });

    // tinyproxy carried the proxied jobs: a tunnel to VictoriaMetrics and
    // plain requests for vmauth.
    let log = std::fs::read_to_string(&proxy_log).unwrap();
    assert!(log.contains(&format!("CONNECT {vm}")), "{log}");
    assert!(
        log.contains(&format!("GET http://{vmauth}/federate")),
        "{log}"
    );

    // A rotated password file is read at the next scrape, without a reload.
    std::fs::write(d.join("password"), "rotated-wrong\n").unwrap();
    let e = wait_target(a, "victoria-federate", "down", |e| !e.is_empty());
    assert_eq!(e, unauthorized);
    std::fs::write(d.join("password"), PASSWORD).unwrap();
    wait_target(a, "victoria-federate", "up", str::is_empty);
}

#[test]
fn issue_19_tls_errors_a_rotated_ca_file_and_a_dead_proxy() {
    let dir = TempDir::new("scrape-tls");
    let d = dir.path();
    certificates(d);
    let (prom, _prom) = start_prometheus(d);
    let mtls = format!(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
        d.join("ca.pem").display()
    );
    let (mprom, _mprom) = start_prometheus_with(d, "mtls", &mtls);
    std::fs::copy(d.join("other-ca.pem"), d.join("rotating-ca.pem")).unwrap();
    let dead_proxy = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:
  - job_name: rotating-ca
    scheme: https
    tls_config: {{ca_file: rotating-ca.pem}}
    basic_auth: {{username: {USER}, password: {PASSWORD:?}}}
    static_configs: [{{targets: ['{prom}']}}]
  - job_name: wrong-name
    scheme: https
    tls_config: {{ca_file: ca.pem, server_name: prometheus.example}}
    basic_auth: {{username: {USER}, password: {PASSWORD:?}}}
    static_configs: [{{targets: ['{prom}']}}]
  - job_name: skip-verify
    scheme: https
    tls_config: {{insecure_skip_verify: true, min_version: TLS12}}
    basic_auth: {{username: {USER}, password: {PASSWORD:?}}}
    static_configs: [{{targets: ['{prom}']}}]
  - job_name: plain-http-to-tls
    basic_auth: {{username: {USER}, password: {PASSWORD:?}}}
    static_configs: [{{targets: ['{prom}']}}]
  - job_name: dead-proxy
    proxy_url: http://{dead_proxy}
    static_configs: [{{targets: ['{prom}']}}]
  - job_name: missing-password-file
    scheme: https
    tls_config: {{ca_file: ca.pem}}
    basic_auth: {{username: {USER}, password_file: nowhere}}
    static_configs: [{{targets: ['{prom}']}}]
  - job_name: client-cert
    scheme: https
    tls_config: {{ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}}
    basic_auth: {{username: {USER}, password: {PASSWORD:?}}}
    static_configs: [{{targets: ['{mprom}']}}]
  - job_name: no-client-cert
    scheme: https
    tls_config: {{ca_file: ca.pem}}
    basic_auth: {{username: {USER}, password: {PASSWORD:?}}}
    static_configs: [{{targets: ['{mprom}']}}]
  - job_name: missing-ca-file
    scheme: https
    tls_config: {{ca_file: no-such-ca.pem}}
    static_configs: [{{targets: ['{prom}']}}]
"
    );
    let (addr, _raymon) = start_raymon(d, &config);
    let a = addr.as_str();
    let url = |scheme: &str| format!("{scheme}://{prom}/metrics");
    let e = wait_target(a, "rotating-ca", "down", |e| !e.is_empty());
    assert_eq!(
        e,
        format!(
            "Get \"{}\": x509: certificate signed by unknown authority",
            url("https")
        )
    );
    let e = wait_target(a, "wrong-name", "down", |e| !e.is_empty());
    assert!(
        e.starts_with(&format!(
            "Get \"{}\": x509: certificate is valid for",
            url("https")
        )) && e.ends_with("not prometheus.example"),
        "{e}"
    );
    wait_target(a, "skip-verify", "up", str::is_empty);
    // Prometheus answers a plain request on its TLS port with a 400.
    let e = wait_target(a, "plain-http-to-tls", "down", |e| !e.is_empty());
    assert_eq!(e, "server returned HTTP status 400 Bad Request");
    let e = wait_target(a, "dead-proxy", "down", |e| !e.is_empty());
    assert_eq!(
        e,
        format!(
            "Get \"{}\": proxyconnect tcp: dial tcp {dead_proxy}: connect: connection refused",
            url("http")
        )
    );
    let e = wait_target(a, "missing-password-file", "down", |e| !e.is_empty());
    let nowhere = d.join("nowhere").display().to_string();
    assert_eq!(
        e,
        format!(
            "Get \"{}\": unable to read basic auth password file {nowhere}: open {nowhere}: no such file or directory",
            url("https")
        )
    );
    // Mutual TLS: Prometheus asks for a client certificate signed by the CA.
    wait_target(a, "client-cert", "up", str::is_empty);
    let e = wait_target(a, "no-client-cert", "down", |e| !e.is_empty());
    assert_eq!(
        e,
        format!("Get \"https://{mprom}/metrics\": remote error: tls: bad certificate")
    );
    eprintln!("without a client certificate: {e}");
    // A CA file that cannot be read: as Prometheus, the job gets no pool
    // (no targets), the error is logged and counted.
    let t = targets(a).unwrap();
    assert!(!t.iter().any(|(j, _, _)| j == "missing-ca-file"), "{t:?}");
    let r = support::get(a, "/metrics").unwrap();
    assert!(
        r.body
            .contains("prometheus_target_scrape_pools_failed_total 1\n"),
        "{}",
        r.body
    );
    let log = std::fs::read_to_string(d.join("raymon.log")).unwrap();
    assert!(
        log.contains("error creating HTTP client: unable to load specified CA cert")
            && log.contains("no-such-ca.pem: no such file or directory"),
        "{log}"
    );
    // The CA file is re-read: once it holds the right CA, scrapes succeed.
    std::fs::copy(d.join("ca.pem"), d.join("rotating-ca.pem")).unwrap();
    wait_target(a, "rotating-ca", "up", str::is_empty);
}

/// A loopback server whose answer to every request the test sets.
struct SdServer {
    addr: String,
    answer: Arc<Mutex<(u16, String, String)>>,
}

impl SdServer {
    fn start() -> SdServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let answer = Arc::new(Mutex::new((
            200,
            "application/json".to_string(),
            "[]".to_string(),
        )));
        let a = answer.clone();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, ct, body) = a.lock().unwrap().clone();
                let reason = match status {
                    200 => "OK",
                    302 => "Found",
                    _ => "Internal Server Error",
                };
                // A `Location:` content type is a redirect's header line.
                let header = match ct.strip_prefix("Location:") {
                    Some(to) => format!("Location:{to}"),
                    None => format!("Content-Type: {ct}"),
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} {reason}\r\n{header}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        SdServer { addr, answer }
    }

    fn set(&self, status: u16, content_type: &str, body: &str) {
        *self.answer.lock().unwrap() = (status, content_type.to_string(), body.to_string());
    }
}

/// Discovered targets of `job` as (address, `__meta_url`, group label `g`).
fn discovered(addr: &str, job: &str) -> Result<Vec<(String, String, String)>, String> {
    let at = support::text_at;
    let mut out: Vec<_> = support::active_targets(addr)?
        .iter()
        .filter(|t| t["scrapePool"] == job)
        .map(|t| {
            (
                at(t, "/discoveredLabels/__address__"),
                at(t, "/discoveredLabels/__meta_url"),
                at(t, "/discoveredLabels/g"),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

#[test]
fn issue_19_http_sd_follows_changes_and_keeps_the_last_good_targets() {
    let dir = TempDir::new("http-sd");
    let sd = SdServer::start();
    let (a1, a2) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    sd.set(
        200,
        "application/json; charset=utf-8",
        &format!(r#"[{{"targets": ["{a1}"], "labels": {{"g": "one"}}}}]"#),
    );
    let sd_url = format!("http://{}/sd", sd.addr);
    let config = format!(
        "scrape_configs:
  - job_name: sd
    scrape_interval: 1h
    http_sd_configs:
      - url: {sd_url}
        refresh_interval: 500ms
"
    );
    let (addr, _raymon) = start_raymon(dir.path(), &config);
    let a = addr.as_str();
    let want = |list: &[(&str, &str)]| {
        let mut w: Vec<_> = list
            .iter()
            .map(|(t, g)| (t.to_string(), sd_url.clone(), g.to_string()))
            .collect();
        w.sort();
        w
    };
    let expect = |list: Vec<(String, String, String)>| {
        support::wait_for(Duration::from_secs(20), "discovered targets", || {
            let d = discovered(a, "sd")?;
            if d == list {
                Ok(())
            } else {
                Err(format!("{d:?}"))
            }
        })
    };
    expect(want(&[(&a1, "one")]));
    sd.set(
        200,
        "application/json",
        &format!(r#"[{{"targets": ["{a1}"], "labels": {{"g": "one"}}}}, {{"targets": ["{a2}"], "labels": {{"g": "two"}}}}]"#),
    );
    expect(want(&[(&a1, "one"), (&a2, "two")]));
    // Failures keep the last good targets: an error status, a wrong
    // content type, invalid JSON, a null group.
    let metrics = || {
        let r = support::get(a, "/metrics").unwrap();
        r.body
            .lines()
            .find_map(|l| l.strip_prefix("prometheus_sd_http_failures_total "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    let before = metrics();
    for (status, ct, body) in [
        (500, "application/json", "[]"),
        (200, "text/plain", "[]"),
        (200, "application/json", "[{\"targets\": "),
        (200, "application/json", "[null]"),
    ] {
        sd.set(status, ct, body);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            discovered(a, "sd").unwrap(),
            want(&[(&a1, "one"), (&a2, "two")]),
            "after {status} {ct} {body}"
        );
    }
    assert!(metrics() >= before + 4.0, "{before} {}", metrics());
    sd.set(200, "application/json", "[]");
    expect(Vec::new());
}

#[test]
fn issue_19_redirects_target_limit_and_label_limits() {
    let dir = TempDir::new("scrape-limits");
    let port = free_port();
    let me = format!("127.0.0.1:{port}");
    let redirect = SdServer::start();
    redirect.set(302, &format!("Location: http://{me}/metrics"), "");
    let r = &redirect.addr;
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:
  - job_name: redirected
    static_configs: [{{targets: ['{r}']}}]
  - job_name: not-redirected
    follow_redirects: false
    static_configs: [{{targets: ['{r}']}}]
  - job_name: target-limit
    target_limit: 1
    static_configs: [{{targets: ['{me}', 'localhost:{port}']}}]
  - job_name: label-limit
    label_limit: 2
    static_configs: [{{targets: ['{me}']}}]
  - job_name: label-value-length-limit
    label_value_length_limit: 3
    static_configs: [{{targets: ['{me}']}}]
  - job_name: label-name-length-limit
    label_name_length_limit: 3
    static_configs: [{{targets: ['{me}']}}]
"
    );
    let cfg = dir.path().join("raymon.yml");
    std::fs::write(&cfg, config).unwrap();
    let _raymon = support::start_raymon(
        &[
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={me}"),
        ],
        &dir.path().join("raymon.log"),
    );
    wait_listening(&me, "raymon listening");
    let a = me.as_str();
    wait_target(a, "redirected", "up", str::is_empty);
    let e = wait_target(a, "not-redirected", "down", |e| !e.is_empty());
    assert_eq!(e, "server returned HTTP status 302 Found");
    let both_down = support::wait_for(Duration::from_secs(30), "target-limit", || {
        let t = targets(a)?;
        let errs: Vec<_> = t
            .iter()
            .filter(|(j, h, _)| j == "target-limit" && h == "down")
            .map(|(_, _, e)| e.clone())
            .collect();
        if errs.len() == 2 {
            Ok(errs)
        } else {
            Err(format!("{t:?}"))
        }
    });
    for e in both_down {
        assert_eq!(e, "target_limit exceeded (number of targets: 2, limit: 1)");
    }
    let e = wait_target(a, "label-limit", "down", |e| !e.is_empty());
    assert!(
        e.starts_with("label_limit exceeded (metric: ") && e.ends_with(", limit: 2)"),
        "{e}"
    );
    let e = wait_target(a, "label-value-length-limit", "down", |e| !e.is_empty());
    assert!(
        e.starts_with("label_value_length_limit exceeded (metric: ") && e.ends_with(", limit: 3)"),
        "{e}"
    );
    let e = wait_target(a, "label-name-length-limit", "down", |e| !e.is_empty());
    assert!(
        e.starts_with("label_name_length_limit exceeded (metric: ") && e.ends_with(", limit: 3)"),
        "{e}"
    );
    let r = support::get(a, "/metrics").unwrap();
    for name in [
        "prometheus_target_scrape_pool_exceeded_target_limit_total",
        "prometheus_target_scrape_pool_exceeded_label_limits_total",
    ] {
        let v: f64 = r
            .body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(v >= 1.0, "{name} {v}");
    }
}
