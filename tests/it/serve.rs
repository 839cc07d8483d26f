//! `raymon serve` as a process (issue 2): file_sd following atomic rewrites,
//! an invalid discovery file keeping the last good targets, reload on SIGHUP
//! and `POST /-/reload` (a broken config is refused and the old one keeps
//! running), with no data lost across reloads.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use crate::support::{self, TempDir};

/// Serves `value{n="<i>"} <counter>` on every request, counting up.
fn counter_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut n = 0u64;
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 2048];
            let _ = c.read(&mut buf);
            n += 1;
            let body = format!("# TYPE ticks counter\nticks_total{{src=\"test\"}} {n}\n");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = c.write_all(resp.as_bytes());
        }
    });
    addr
}

/// Writes `text` to `path` the way Ray does: a temporary file renamed over it.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        "tmp_{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config(sd: &Path, extra_job: Option<&str>) -> String {
    let mut c = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n- job_name: ray\n  file_sd_configs:\n  - files: ['{}']\n",
        sd.display()
    );
    if let Some(t) = extra_job {
        c.push_str(&format!(
            "- job_name: extra\n  static_configs:\n  - targets: ['{t}']\n"
        ));
    }
    c
}

fn instances(addr: &str, job: &str) -> Result<Vec<String>, String> {
    Ok(support::active_targets(addr)?
        .iter()
        .filter(|t| t["scrapePool"] == job && t["health"] == "up")
        .map(|t| support::text_at(t, "/labels/instance"))
        .collect())
}

fn query(addr: &str, q: &str) -> serde_json::Value {
    support::get(addr, &format!("/api/v1/query?query={}", support::enc(q)))
        .unwrap()
        .json()
}

#[test]
fn issue_2_serve_follows_discovery_and_reloads_without_losing_data() {
    let dir = TempDir::new("serve");
    let sd = dir.path().join("sd.json");
    let (t1, t2, t3) = (counter_target(), counter_target(), counter_target());
    write_atomically(
        &sd,
        &format!(r#"[{{"labels": {{"job": "ray"}}, "targets": ["{t1}"]}}]"#),
    );
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, config(&sd, None)).unwrap();
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut raymon = support::start_raymon(
        &[
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={addr}"),
            "--web.enable-lifecycle".into(),
        ],
        &dir.path().join("raymon.log"),
    );
    support::wait_for(Duration::from_secs(15), "first target up", || {
        let i = instances(&addr, "ray")?;
        if i == vec![t1.clone()] {
            Ok(())
        } else {
            Err(format!("{i:?}"))
        }
    });

    // A node joins: Ray rewrites the file atomically; scraping starts within 5 s.
    write_atomically(
        &sd,
        &format!(r#"[{{"labels": {{"job": "ray"}}, "targets": ["{t2}", "{t1}"]}}]"#),
    );
    support::wait_for(Duration::from_secs(5), "second target up", || {
        let i = instances(&addr, "ray")?;
        if i.len() == 2 {
            Ok(())
        } else {
            Err(format!("{i:?}"))
        }
    });

    // A half-written file keeps the last good targets.
    std::fs::write(&sd, r#"[{"labels": {"job": "ray"}, "targ"#).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(instances(&addr, "ray").unwrap().len(), 2);

    // A broken config is refused on SIGHUP and on /-/reload; the old one runs on.
    std::fs::write(&cfg, "global:\n  scrape_intervall: 1s\n").unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &raymon.pid().to_string()])
        .status();
    let r = support::http("POST", &addr, "/-/reload", Some("")).unwrap();
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains("scrape_intervall"), "{}", r.body);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(instances(&addr, "ray").unwrap().len(), 2);
    let before = query(&addr, &format!(r#"ticks_total{{instance="{t1}"}}"#));
    let before = before["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    assert!(before >= 2.0);

    // A good config adds a job; data scraped before the reload stays queryable.
    write_atomically(
        &sd,
        &format!(r#"[{{"labels": {{"job": "ray"}}, "targets": ["{t2}", "{t1}"]}}]"#),
    );
    std::fs::write(&cfg, config(&sd, Some(&t3))).unwrap();
    let r = support::http("POST", &addr, "/-/reload", Some("")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    support::wait_for(Duration::from_secs(5), "extra job up", || {
        let i = instances(&addr, "extra")?;
        if i == vec![t3.clone()] {
            Ok(())
        } else {
            Err(format!("{i:?}"))
        }
    });
    let v = query(
        &addr,
        &format!(r#"count_over_time(ticks_total{{instance="{t1}"}}[1h])"#),
    );
    let n = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    assert!(
        n >= before,
        "samples before the reload were lost: {n} < {before}"
    );
    let log = std::fs::read_to_string(dir.path().join("raymon.log")).unwrap();
    assert!(log.contains("keeping the last good targets"), "{log}");
    raymon.terminate(Duration::from_secs(10));
}

#[test]
fn issue_2_check_config_reports_file_line_and_field() {
    let dir = TempDir::new("check");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "global:\n  scrape_interval: 10s\nscrape_configs:\n- job_name: ray\n  scrape_intervall: 5s\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FAILED"), "{stderr}");
    assert!(stderr.contains("line 5"), "{stderr}");
    assert!(stderr.contains("scrape_intervall"), "{stderr}");
    let ray = support::fixtures_dir().join("ray/session_latest/metrics/prometheus/prometheus.yml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args(["check", "config"])
        .arg(&ray)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));

    // serve refuses to start on an invalid config, saying why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raymon"))
        .arg(format!("--config.file={}", bad.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("scrape_intervall"));
}
