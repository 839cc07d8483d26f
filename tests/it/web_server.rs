//! The serving process on real loopback sockets: `--web.config.file`
//! (basic auth with bcrypt, TLS with a self-signed certificate) and the
//! loopback-only default listen address. The server's own behaviour (client
//! certificates, reloads, slow clients, size bounds) is tested in process in
//! `src/web/server/loopback_tests.rs`.

use std::time::Duration;

use crate::support::{self, TempDir, free_port, start_raymon, wait_for};
use crate::tls::{tls_and_auth_config, tls_get};

#[test]
fn serve_process_uses_the_web_config_file() {
    let dir = TempDir::new("webproc");
    let (web, ca) = tls_and_auth_config(dir.path());
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global:\n  scrape_interval: 15s\n",
    )
    .unwrap();
    let port = free_port();
    let args: Vec<String> = vec![
        "serve".into(),
        format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--web.config.file={}", web.display()),
    ];
    let _raymon = start_raymon(&args, &dir.path().join("raymon.log"));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ok = wait_for(Duration::from_secs(30), "raymon over TLS", || {
        rt.block_on(tls_get(
            addr,
            &ca,
            "/-/ready",
            Some(("grafana", "s3cret pass")),
        ))
        .map_err(|e| e.to_string())
    });
    assert_eq!(ok.0, 200, "{}", ok.2);
    let denied = rt
        .block_on(tls_get(addr, &ca, "/-/ready", Some(("grafana", "x"))))
        .unwrap();
    assert_eq!(denied.0, 401);

    // A broken web config stops the process at startup with a message.
    std::fs::write(
        dir.path().join("bad.yml"),
        "tls_server_config:\n  cert_file: c.pem\n",
    )
    .unwrap();
    let mut bad_args = args.clone();
    bad_args[3] = format!("--web.listen-address=127.0.0.1:{}", free_port());
    bad_args[4] = format!("--web.config.file={}", dir.path().join("bad.yml").display());
    let mut bad = start_raymon(&bad_args, &dir.path().join("bad.log"));
    let status = wait_for(Duration::from_secs(20), "raymon to exit", || {
        bad.0
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_string())
    });
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("bad.log")).unwrap();
    assert!(log.contains("missing key_file"), "{log}");
}

/// Listening sockets on `port` from `/proc/net/tcp{,6}`: local addresses
/// in the kernel's hex notation.
fn listeners_on(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // State 0A is LISTEN.
            if cols.len() > 3 && cols[3] == "0A" && cols[1].ends_with(&format!(":{port:04X}")) {
                out.push(cols[1].to_string());
            }
        }
    }
    out
}

#[test]
fn default_listen_address_is_loopback_only() {
    let dir = TempDir::new("deflisten");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global:\n  scrape_interval: 15s\n",
    )
    .unwrap();
    let log = dir.path().join("raymon.log");
    let out = std::fs::File::create(&log).unwrap();
    // No listen flag at all: whatever raymon binds is its default.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_raymon"))
        .current_dir(dir.path())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let _raymon = support::KillOnDrop(child);
    let text = wait_for(Duration::from_secs(30), "raymon to bind", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.contains("serving the Prometheus API") || t.contains("cannot listen on") {
            Ok(t)
        } else {
            Err(t)
        }
    });
    // Either it serves on 127.0.0.1:9090, or (another server holds that
    // port on this machine) it tried exactly that: both show the default.
    assert!(text.contains("127.0.0.1:9090"), "{text}");
    if text.contains("serving the Prometheus API") {
        let ls = listeners_on(9090);
        assert!(!ls.is_empty());
        // 0100007F is 127.0.0.1; nothing on 0.0.0.0 or any other address.
        assert!(ls.iter().all(|a| a == "0100007F:2382"), "{ls:?}");
        let r = support::get("127.0.0.1:9090", "/-/healthy").unwrap();
        assert_eq!(r.status, 200);
    }
}
