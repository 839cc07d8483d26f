//! raymon as a drop-in for Prometheus 2.42 (issue 19): every flag of the
//! installed `prometheus --help-long` is accepted, real Prometheus command
//! lines start raymon, `--web.external-url`/`--web.route-prefix` work with
//! `promtool`, and each config section raymon does not implement is named
//! in exactly one warning.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{self, TempDir, free_port, get, http, start_raymon, wait_for};

/// One flag of `prometheus --help-long`: its name and whether it takes a value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HelpFlag {
    name: String,
    value: Option<String>,
}

/// The flags listed by the installed Prometheus, or `None` when it is absent.
fn prometheus_help_flags() -> Option<Vec<HelpFlag>> {
    let out = Command::new("prometheus")
        .arg("--help-long")
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut flags = Vec::new();
    for line in text.lines() {
        // Flags start within the first columns; deeper lines continue a help text.
        let t = line.trim_start();
        if line.len() - t.len() > 6 {
            continue;
        }
        let t = t.strip_prefix("-h, ").unwrap_or(t);
        let Some(rest) = t.strip_prefix("--") else {
            continue;
        };
        let spec = rest.split("  ").next().unwrap_or(rest).trim_end();
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.trim().to_string())),
            None => (spec.to_string(), None),
        };
        let value = value.map(|v| sample_value(&name, &v));
        flags.push(HelpFlag { name, value });
    }
    assert!(
        flags.len() > 40,
        "prometheus --help-long listed only {} flags: {text}",
        flags.len()
    );
    Some(flags)
}

/// A value Prometheus would take for the flag: its printed default, else
/// one of the kind its placeholder names.
fn sample_value(name: &str, printed: &str) -> String {
    let unquoted = printed.trim_matches('"');
    let placeholder = printed.starts_with('<')
        || printed
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '.' || c == '-')
        || printed.contains("...");
    if !placeholder {
        return unquoted.to_string();
    }
    match name {
        "web.external-url" => "http://h/user/x/proxy/9090/".into(),
        "web.route-prefix" => "/".into(),
        "web.user-assets" => "/nonexistent/assets".into(),
        "storage.tsdb.retention.size" => "1GB".into(),
        "enable-feature" => "promql-at-modifier".into(),
        _ => "1h".into(),
    }
}

/// Upstream 2.42's hidden flags and its `no-lockfile` spellings, which
/// Debian's build does not list.
const UPSTREAM_ONLY: &[(&str, Option<&str>)] = &[
    ("storage.tsdb.min-block-duration", Some("2h")),
    ("storage.tsdb.max-block-duration", Some("36h")),
    ("storage.tsdb.max-block-chunk-segment-size", Some("512MB")),
    ("storage.tsdb.wal-segment-size", Some("128MB")),
    ("storage.tsdb.wal-compression", None),
    ("storage.tsdb.allow-overlapping-blocks", None),
    ("storage.tsdb.no-lockfile", None),
    ("storage.agent.no-lockfile", None),
    ("storage.agent.wal-segment-size", Some("128MB")),
    ("storage.agent.wal-truncate-frequency", Some("2h")),
    ("scrape.adjust-timestamps", None),
    ("scrape.timestamp-tolerance", Some("2ms")),
    ("scrape.discovery-reload-interval", Some("5s")),
];

fn arg(name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("--{name}={v}"),
        None => format!("--{name}"),
    }
}

/// Whether raymon's command line takes `args`: the binary with `args` and
/// then `--version` parses every flag before it and exits 0 (help flags
/// print and exit 0 themselves, as Prometheus's do), or says what it refused.
fn parses(args: &[String]) -> Result<(), String> {
    let out = Command::new(support::raymon_bin())
        .args(args)
        .arg("--version")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The flags `raymon --help-long` lists as accepted without effect (each
/// warned about at start-up).
fn accepted_without_effect() -> Vec<String> {
    let out = Command::new(support::raymon_bin())
        .arg("--help-long")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let (_, section) = help
        .split_once("Prometheus flags accepted without effect")
        .unwrap_or_else(|| panic!("no section of accepted flags in --help-long:\n{help}"));
    let lines: Vec<&str> = section.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[1].trim_start().starts_with("No effect in raymon"))
        .filter_map(|w| w[0].trim_start().strip_prefix("--"))
        .map(|f| f.split([' ', '=']).next().unwrap_or(f).to_string())
        .collect()
}

/// The sections a warning line names (`<section> is not implemented by
/// raymon ...`), in order.
fn unimplemented_sections(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(" is not implemented by raymon"))
        .filter_map(|(before, _)| before.split_whitespace().last())
        .map(str::to_string)
        .collect()
}

/// Rows of the not-implemented table (`src/config/unimplemented.rs`); the
/// unit test `issue_19_the_fixture_has_every_unimplemented_row` checks that
/// `tests/data/config/every-unimplemented.yml` has each of them once.
const UNIMPLEMENTED_ROWS: usize = 9;

#[test]
fn issue_19_every_flag_of_prometheus_help_long_is_accepted() {
    let Some(flags) = prometheus_help_flags() else {
        crate::support::skip("prometheus is not installed, so its --help-long cannot be walked");
        return;
    };
    let mut rejected = Vec::new();
    for f in &flags {
        let a = if f.name == "help" {
            vec![
                "-h".to_string(),
                "--help-long".to_string(),
                "--help-man".to_string(),
            ]
        } else {
            vec![arg(&f.name, f.value.as_deref())]
        };
        for a in a {
            if let Err(e) = parses(std::slice::from_ref(&a)) {
                rejected.push(format!("{a}: {e}"));
            }
        }
    }
    for (name, value) in UPSTREAM_ONLY {
        let a = arg(name, *value);
        if let Err(e) = parses(std::slice::from_ref(&a)) {
            rejected.push(format!("{a}: {e}"));
        }
    }
    println!("walked {} flags of prometheus --help-long", flags.len());
    assert!(rejected.is_empty(), "rejected:\n{}", rejected.join("\n"));
    // Values Prometheus refuses are refused too, not swallowed.
    assert!(parses(&["--rules.alert.resend-delay=soon".into()]).is_err());
    assert!(parses(&["--storage.tsdb.wal-segment-size=lots".into()]).is_err());
    assert!(parses(&["--log.format=xml".into()]).is_err());
}

/// A config raymon can start with, scraping nothing.
fn empty_config(dir: &Path) -> String {
    let p = dir.join("prometheus.yml");
    std::fs::write(&p, "global:\n  scrape_interval: 15s\n").unwrap();
    p.display().to_string()
}

/// Starts raymon with `args` and waits until it is ready; returns it with
/// its log.
fn start_ready(
    args: Vec<String>,
    addr: &str,
    dir: &Path,
    ready_path: &str,
) -> (support::KillOnDrop, String) {
    let log = dir.join("raymon.log");
    let mut child = start_raymon(&args, &log);
    wait_for(Duration::from_secs(30), "raymon ready", || {
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!(
                "exited {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        match get(addr, ready_path) {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("{} {}", r.status, r.body)),
            Err(e) => Err(e.to_string()),
        }
    });
    let text = std::fs::read_to_string(&log).unwrap();
    (child, text)
}

/// The value of response header `name` (lower case, as hyper sends it).
fn header(r: &support::Response, name: &str) -> Option<String> {
    r.headers.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}: "))
            .map(|v| v.trim().to_string())
    })
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn issue_19_starts_with_the_prom_prometheus_image_argv() {
    let dir = TempDir::new("img");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = empty_config(dir.path());
    let data = dir.path().join("prometheus");
    let share = dir.path().join("usr/share/prometheus");
    // The image's CMD, its paths moved under the temp dir; the listen
    // address is added because the image's port may be taken here.
    let argv = vec![
        format!("--config.file={cfg}"),
        format!("--storage.tsdb.path={}", data.display()),
        format!(
            "--web.console.libraries={}/console_libraries",
            share.display()
        ),
        format!("--web.console.templates={}/consoles", share.display()),
        format!("--web.listen-address={addr}"),
    ];
    let (mut child, log) = start_ready(argv, &addr, dir.path(), "/-/ready");
    assert_eq!(
        count(&log, "flag --web.console.libraries is accepted"),
        1,
        "{log}"
    );
    assert_eq!(
        count(&log, "flag --web.console.templates is accepted"),
        1,
        "{log}"
    );
    let r = get(&addr, "/api/v1/query?query=1%2B1").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    child.terminate(Duration::from_secs(20));
}

#[test]
fn issue_19_starts_with_the_notebook_and_ray_prometheus_command_lines() {
    let dir = TempDir::new("nb");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = empty_config(dir.path());
    // The notebook's shifter command ran the image's /bin/prometheus with
    // these flags (`shifter --image=prom/prometheus:v2.42.0 --volume=<data>:/prometheus
    // /bin/prometheus ...`); paths moved under the temp dir.
    let notebook = vec![
        format!("--config.file={cfg}"),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={addr}"),
        "--web.enable-lifecycle".to_string(),
        "--web.enable-admin-api".to_string(),
        "--storage.tsdb.retention=30d".to_string(),
        "--web.console.libraries=/usr/share/prometheus/console_libraries".to_string(),
        "--web.console.templates=/usr/share/prometheus/consoles".to_string(),
    ];
    let (mut child, log) = start_ready(notebook, &addr, dir.path(), "/-/ready");
    assert_eq!(
        count(&log, "storage.tsdb.retention is deprecated"),
        1,
        "{log}"
    );
    let flags = get(&addr, "/api/v1/status/flags").unwrap().json();
    assert_eq!(flags["data"]["storage.tsdb.retention.time"], "30d");
    // `ray metrics shutdown-prometheus` stops it through the lifecycle API.
    let r = http("POST", &addr, "/-/quit", Some("")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(
        Duration::from_secs(20),
        "raymon exits on /-/quit",
        || match child.0.try_wait() {
            Ok(Some(_)) => Ok(()),
            _ => Err("still running".into()),
        },
    );

    // `ray metrics launch-prometheus`: space-separated values.
    let dir2 = TempDir::new("nb2");
    let addr2 = format!("127.0.0.1:{}", free_port());
    let ray = vec![
        "--config.file".to_string(),
        empty_config(dir2.path()),
        "--web.enable-lifecycle".to_string(),
        "--storage.tsdb.path".to_string(),
        dir2.path().join("data").display().to_string(),
        "--web.listen-address".to_string(),
        addr2.clone(),
    ];
    let (mut child, _) = start_ready(ray, &addr2, dir2.path(), "/-/ready");
    child.terminate(Duration::from_secs(20));
}

#[test]
fn issue_19_starts_with_every_2_42_flag_given_once() {
    let Some(flags) = prometheus_help_flags() else {
        crate::support::skip("prometheus is not installed, so its --help-long cannot be walked");
        return;
    };
    let dir = TempDir::new("all");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = empty_config(dir.path());
    let mut argv = Vec::new();
    for f in &flags {
        let value = match f.name.as_str() {
            "help" | "version" => continue,
            "config.file" => Some(cfg.clone()),
            "storage.tsdb.path" => Some(dir.path().join("data").display().to_string()),
            "storage.agent.path" => Some(dir.path().join("agent").display().to_string()),
            "web.listen-address" => Some(addr.clone()),
            "enable-feature" => Some(
                "agent,exemplar-storage,expand-external-labels,memory-snapshot-on-shutdown,\
                 promql-at-modifier,promql-negative-offset,promql-per-step-stats,\
                 remote-write-receiver,extra-scrape-metrics,new-service-discovery-manager,\
                 auto-gomaxprocs,no-default-scrape-port,native-histograms"
                    .to_string(),
            ),
            _ => f.value.clone(),
        };
        argv.push(arg(&f.name, value.as_deref()));
    }
    for (name, value) in UPSTREAM_ONLY {
        argv.push(arg(name, *value));
    }
    // The external URL's path is served at `/` (route prefix `/`).
    let (mut child, log) = start_ready(argv.clone(), &addr, dir.path(), "/-/ready");
    // One warning per accepted-without-effect flag given, no more.
    let accepted = accepted_without_effect();
    assert!(accepted.len() > 10, "{accepted:?}");
    for a in &accepted {
        if argv.iter().any(|x| x.starts_with(&format!("--{a}"))) {
            assert_eq!(
                count(&log, &format!("flag --{a} is accepted")),
                1,
                "{a}: {log}"
            );
        }
    }
    assert_eq!(count(&log, "--enable-feature=agent"), 1, "{log}");
    let r = get(&addr, "/").unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(
        header(&r, "location").as_deref(),
        Some("/user/x/proxy/9090/graph")
    );
    child.terminate(Duration::from_secs(20));
}

/// The lines of `text` that warn about `section`.
fn warnings_for(text: &str, section: &str) -> usize {
    let needle = format!("{section} is not implemented by raymon");
    text.lines().filter(|l| l.contains(&needle)).count()
}

#[test]
fn issue_19_each_unimplemented_section_warns_exactly_once() {
    let dir = TempDir::new("unimpl");
    let cfg = dir.path().join("prometheus.yml");
    // Every row of the not-implemented table, each in a config.
    let every = support::manifest_dir().join("tests/data/config/every-unimplemented.yml");
    std::fs::copy(every, &cfg).unwrap();

    // `raymon check config`: valid, and one WARNING line per row.
    let out = Command::new(support::raymon_bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sections = unimplemented_sections(&stdout);
    assert_eq!(sections.len(), UNIMPLEMENTED_ROWS, "{stdout}");
    for e in &sections {
        assert_eq!(warnings_for(&stdout, e), 1, "{e}: {stdout}");
    }
    assert_eq!(
        stdout.matches("is not implemented by raymon").count(),
        UNIMPLEMENTED_ROWS,
        "{stdout}"
    );
    assert!(stdout.contains("oauth2 is not implemented by raymon (scrape jobs: a, b)"));
    // What raymon does (job c: TLS, basic auth, no redirects) is not warned about.
    assert!(
        !stdout.contains("scrape jobs: c") && !stdout.contains("tls_config"),
        "{stdout}"
    );

    // serve: one warning per row at start, one more per row on reload,
    // and the count in /metrics.
    let addr = format!("127.0.0.1:{}", free_port());
    let args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={addr}"),
        "--web.enable-lifecycle".to_string(),
    ];
    let (mut child, log) = start_ready(args, &addr, dir.path(), "/-/ready");
    for e in &sections {
        assert_eq!(warnings_for(&log, e), 1, "{e}: {log}");
    }
    let metrics = get(&addr, "/metrics").unwrap().body;
    assert!(
        metrics.contains(&format!(
            "raymon_config_unimplemented_sections {UNIMPLEMENTED_ROWS}\n"
        )),
        "{metrics}"
    );
    let r = http("POST", &addr, "/-/reload", Some("")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let log = std::fs::read_to_string(dir.path().join("raymon.log")).unwrap();
    for e in &sections {
        assert_eq!(warnings_for(&log, e), 2, "{e}: {log}");
    }
    // A config without them: no warning, and the count drops to 0.
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
    let r = http("POST", &addr, "/-/reload", Some("")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let metrics = get(&addr, "/metrics").unwrap().body;
    assert!(
        metrics.contains("raymon_config_unimplemented_sections 0\n"),
        "{metrics}"
    );
    child.terminate(Duration::from_secs(20));
}

/// Runs `promtool query instant SERVER EXPR`; `None` when promtool is absent.
fn promtool_query(server: &str, expr: &str) -> Option<(bool, String)> {
    let out = Command::new("promtool")
        .args(["query", "instant", server, expr])
        .output()
        .ok()?;
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// raymon scraping its own `/metrics` under `metrics_path`, started with `flags`.
fn start_self_scraping(
    dir: &Path,
    addr: &str,
    metrics_path: &str,
    flags: &[&str],
) -> support::KillOnDrop {
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: self\n  \
             metrics_path: {metrics_path}\n  static_configs: [{{targets: [\"{addr}\"]}}]\n"
        ),
    )
    .unwrap();
    let mut args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address={addr}"),
    ];
    args.extend(flags.iter().map(|s| s.to_string()));
    start_raymon(&args, &dir.join("raymon.log"))
}

#[test]
fn issue_19_promtool_behind_external_url_with_route_prefix_slash() {
    let dir = TempDir::new("ext");
    let addr = format!("127.0.0.1:{}", free_port());
    // JupyterHub's /proxy/<port>/ strips its path before raymon sees it.
    let _c = start_self_scraping(
        dir.path(),
        &addr,
        "/metrics",
        &[
            "--web.external-url=http://h/user/x/proxy/9090/",
            "--web.route-prefix=/",
        ],
    );
    wait_for(Duration::from_secs(30), "self target up", || {
        let r = get(&addr, "/api/v1/query?query=up").map_err(|e| e.to_string())?;
        if r.body.contains("\"1\"]") {
            Ok(())
        } else {
            Err(r.body)
        }
    });
    let r = get(&addr, "/").unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(
        header(&r, "location").as_deref(),
        Some("/user/x/proxy/9090/graph")
    );
    let Some((ok, out)) = promtool_query(&format!("http://{addr}/"), "up") else {
        crate::support::skip("promtool is not installed");
        return;
    };
    assert!(ok, "{out}");
    assert!(
        out.contains("up{instance=\"") && out.contains("=> 1 @"),
        "{out}"
    );
}

#[test]
fn issue_19_promtool_and_every_route_under_a_real_prefix() {
    let dir = TempDir::new("pfx");
    let addr = format!("127.0.0.1:{}", free_port());
    let prefix = "/user/x/proxy/absolute/9090";
    // JupyterHub's /proxy/absolute/<port>/ keeps the path: the route
    // prefix defaults to the external URL's path.
    let ext = format!("--web.external-url=http://h{prefix}/");
    let _c = start_self_scraping(dir.path(), &addr, &format!("{prefix}/metrics"), &[&ext]);
    wait_for(Duration::from_secs(30), "self target up", || {
        let r =
            get(&addr, &format!("{prefix}/api/v1/query?query=up")).map_err(|e| e.to_string())?;
        if r.body.contains("\"1\"]") {
            Ok(())
        } else {
            Err(r.body)
        }
    });
    for path in [
        "/-/healthy",
        "/-/ready",
        "/metrics",
        "/api/v1/status/buildinfo",
        "/graph",
    ] {
        let r = get(&addr, &format!("{prefix}{path}")).unwrap();
        assert_eq!(r.status, 200, "{prefix}{path}: {}", r.body);
        let r = get(&addr, path).unwrap();
        assert_eq!(r.status, 404, "{path} outside the prefix");
    }
    let r = get(&addr, "/").unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(header(&r, "location").as_deref(), Some(prefix));
    let r = get(&addr, &format!("{prefix}/")).unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(header(&r, "location"), Some(format!("{prefix}/graph")));
    let r = get(&addr, prefix).unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(header(&r, "location"), Some(format!("{prefix}/")));
    let Some((ok, out)) = promtool_query(&format!("http://{addr}{prefix}"), "up") else {
        crate::support::skip("promtool is not installed");
        return;
    };
    assert!(ok, "{out}");
    assert!(out.contains("=> 1 @"), "{out}");
}

fn wait_ready(addr: &str) {
    wait_for(Duration::from_secs(30), "ready", || {
        let r = get(addr, "/-/ready").map_err(|e| e.to_string())?;
        if r.status == 200 { Ok(()) } else { Err(r.body) }
    });
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The raw samples of `up` in `[start, end]` as the API answers them.
fn up_samples(addr: &str, start: f64, end: f64) -> serde_json::Value {
    let r = get(
        addr,
        &format!("/api/v1/query_range?query=up&start={start:.3}&end={end:.3}&step=1"),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"]["result"].clone()
}

#[test]
fn issue_19_admin_api_delete_clean_and_snapshot() {
    let dir = TempDir::new("admin");
    let addr = format!("127.0.0.1:{}", free_port());

    // Without the flag: Prometheus's "admin APIs disabled".
    let mut off = start_self_scraping(dir.path(), &addr, "/metrics", &[]);
    wait_ready(&addr);
    let r = http("POST", &addr, "/api/v1/admin/tsdb/snapshot", Some("")).unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        serde_json::json!({"status":"error","errorType":"unavailable","error":"admin APIs disabled"})
    );
    off.terminate(Duration::from_secs(20));

    let mut on = start_self_scraping(dir.path(), &addr, "/metrics", &["--web.enable-admin-api"]);
    wait_ready(&addr);
    let t0 = now_s();
    wait_for(Duration::from_secs(30), "a few scrapes", || {
        let n = up_samples(&addr, t0 - 600.0, now_s())[0]["values"]
            .as_array()
            .map_or(0, |v| v.len());
        if n >= 3 {
            Ok(())
        } else {
            Err(format!("{n} samples"))
        }
    });
    let r = http("POST", &addr, "/api/v1/admin/tsdb/delete_series", Some("")).unwrap();
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "no match[] parameter provided".into())
    );
    let r = http(
        "POST",
        &addr,
        "/api/v1/admin/tsdb/delete_series",
        Some("match[]=up{"),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"match[]\"")
    );

    let deleted_at = now_s();
    let r = http(
        "POST",
        &addr,
        "/api/v1/admin/tsdb/delete_series",
        Some("match[]=up"),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(
        up_samples(&addr, t0 - 600.0, deleted_at)
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Later samples are not deleted.
    wait_for(
        Duration::from_secs(10),
        "new samples after the deletion",
        || {
            let v = up_samples(&addr, deleted_at, now_s());
            if v.as_array().is_some_and(|a| !a.is_empty()) {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    );
    let series = get(
        &addr,
        &format!("/api/v1/series?match[]=up&end={deleted_at:.3}"),
    )
    .unwrap()
    .json();
    assert_eq!(series["data"], serde_json::json!([]), "{series}");

    let r = http(
        "PUT",
        &addr,
        "/api/v1/admin/tsdb/clean_tombstones",
        Some(""),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(
        up_samples(&addr, t0 - 600.0, deleted_at)
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A snapshot serves what the server served up to its time.
    let r = http(
        "POST",
        &addr,
        "/api/v1/admin/tsdb/snapshot?skip_head=maybe",
        Some(""),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    wait_for(
        Duration::from_secs(10),
        "more samples before the snapshot",
        || {
            let v = up_samples(&addr, deleted_at, now_s() - 1.0);
            let n = v[0]["values"].as_array().map_or(0, |a| a.len());
            if n >= 2 { Ok(()) } else { Err(v.to_string()) }
        },
    );
    // Scrapes that started before this are committed by the time the
    // snapshot reads (a scrape of raymon itself takes milliseconds).
    let snap_at = now_s() - 0.5;
    let r = http("POST", &addr, "/api/v1/admin/tsdb/snapshot", Some("")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let name = r.json()["data"]["name"].as_str().unwrap().to_string();
    let snap_dir = dir.path().join("data/snapshots").join(&name);
    assert!(snap_dir.is_dir(), "{}", snap_dir.display());
    let before = up_samples(&addr, t0 - 600.0, snap_at);
    on.terminate(Duration::from_secs(20));

    // The deletion survives a restart.
    let mut again = start_self_scraping(dir.path(), &addr, "/metrics", &[]);
    wait_ready(&addr);
    assert!(
        up_samples(&addr, t0 - 600.0, deleted_at)
            .as_array()
            .unwrap()
            .is_empty()
    );
    again.terminate(Duration::from_secs(20));

    let sdir = TempDir::new("snap");
    let cfg = empty_config(sdir.path());
    let saddr = format!("127.0.0.1:{}", free_port());
    let args = vec![
        format!("--config.file={cfg}"),
        format!("--storage.tsdb.path={}", snap_dir.display()),
        format!("--web.listen-address={saddr}"),
    ];
    let (mut snap, _) = start_ready(args, &saddr, sdir.path(), "/-/ready");
    let after = up_samples(&saddr, t0 - 600.0, snap_at);
    assert!(before.as_array().is_some_and(|a| !a.is_empty()), "{before}");
    assert_eq!(before, after);
    snap.terminate(Duration::from_secs(20));
}

#[test]
fn issue_19_a_data_dir_serves_one_process_at_a_time() {
    let dir = TempDir::new("lock");
    let cfg = empty_config(dir.path());
    let data = dir.path().join("data");
    let args = |addr: &str, extra: &[&str]| {
        let mut a = vec![
            format!("--config.file={cfg}"),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address={addr}"),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let (mut first, _) = start_ready(args(&addr, &[]), &addr, dir.path(), "/-/ready");
    let out = Command::new(support::raymon_bin())
        .args(args(&format!("127.0.0.1:{}", free_port()), &[]))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("opening storage failed: lock DB directory: resource temporarily unavailable"),
        "{err}"
    );
    first.terminate(Duration::from_secs(20));
    // Once the first has stopped, the directory opens again.
    let addr = format!("127.0.0.1:{}", free_port());
    let sub = TempDir::new("lock2");
    let (mut second, _) = start_ready(args(&addr, &[]), &addr, sub.path(), "/-/ready");
    second.terminate(Duration::from_secs(20));
}

#[test]
fn issue_19_expand_external_labels_feature() {
    let dir = TempDir::new("extl");
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels:\n    node: ${{RAYMON_TEST_NODE}}\n    \
             zone: $RAYMON_TEST_UNSET\nscrape_configs:\n- job_name: self\n  \
             static_configs: [{{targets: [\"{addr}\"]}}]\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("raymon.log");
    let out = std::fs::File::create(&log).unwrap();
    let _c = support::KillOnDrop(
        Command::new(support::raymon_bin())
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=expand-external-labels")
            .arg("--web.enable-lifecycle")
            .env("RAYMON_TEST_NODE", "n1")
            .env_remove("RAYMON_TEST_UNSET")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let fed = wait_for(Duration::from_secs(30), "federated up", || {
        let r = get(&addr, "/federate?match[]=up").map_err(|e| e.to_string())?;
        if r.body.contains("up{") {
            Ok(r.body)
        } else {
            Err(r.body)
        }
    });
    assert!(fed.contains("node=\"n1\""), "{fed}");
    assert!(!fed.contains("zone="), "{fed}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(count(&text, "Empty environment variable"), 1, "{text}");

    // A reload replaces the external labels.
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels:\n    node: n2\n\
             scrape_configs:\n- job_name: self\n  static_configs: [{{targets: [\"{addr}\"]}}]\n"
        ),
    )
    .unwrap();
    let r = http("POST", &addr, "/-/reload", Some("")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let fed = get(&addr, "/federate?match[]=up").unwrap().body;
    assert!(fed.contains("node=\"n2\""), "{fed}");
}
