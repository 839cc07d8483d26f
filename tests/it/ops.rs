//! Issue 3's operational surface: raymon's own `/metrics`, backfilling with
//! `POST /api/v1/import` and `raymon import`, and `GET /api/v1/export`.
//! Router tests use `oneshot` on a real head; the self-scrape and CLI tests
//! run a `serve` process on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use raymon::model::{Labels, STALE_NAN, is_stale_nan};
use raymon::scrape::ScrapeStatus;
use raymon::storage::Appendable;
use raymon::textparse::{Entry, Format, Parser};
use raymon::tsdb::{Head, HeadOptions};
use raymon::web::{self, AppState};
use tower::ServiceExt;

use crate::support::{self, Rng, TempDir};

/// Import on (`--web.enable-import`), with no bounds on sample times: these
/// tests backfill samples from 1970 and 2023.
fn state(head: &Arc<Head>) -> AppState {
    let mut st = AppState::new(head.clone(), Arc::new(ScrapeStatus::default()));
    st.appendable = Some(head.clone());
    st.write_limits = web::WriteLimits::none();
    st.ready.store(true, Ordering::Release);
    st
}

/// A request with the content type `raymon import` sends.
async fn call(st: &AppState, method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(
            "content-type",
            "application/openmetrics-text; version=1.0.0",
        )
        .body(Body::from(body))
        .unwrap();
    let resp = web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// A value as exported: see `web/import_export.rs`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Exported {
    Bits(u64),
    NaN,
    Stale,
}

fn exported_of(v: f64) -> Exported {
    if is_stale_nan(v) {
        Exported::Stale
    } else if v.is_nan() {
        Exported::NaN
    } else {
        Exported::Bits(v.to_bits())
    }
}

type Dump = BTreeMap<Labels, Vec<(i64, Exported)>>;

/// Parses export output. Values are read from the raw text with Rust's
/// correctly rounded parser, not through a JSON library's float reader.
fn parse_export(body: &str) -> Dump {
    let mut out: Dump = BTreeMap::new();
    for line in body.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line ({e}): {line}"));
        let labels = Labels::from_pairs(
            v["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
        );
        let ts: Vec<i64> = v["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        let raw = line
            .split_once("\"values\":[")
            .unwrap()
            .1
            .split_once("],\"timestamps\"")
            .unwrap()
            .0;
        let vals: Vec<Exported> = raw
            .split(',')
            .map(|tok| match tok {
                "null" => Exported::Stale,
                "\"NaN\"" => Exported::NaN,
                "\"+Inf\"" => Exported::Bits(f64::INFINITY.to_bits()),
                "\"-Inf\"" => Exported::Bits(f64::NEG_INFINITY.to_bits()),
                t => Exported::Bits(t.parse::<f64>().unwrap().to_bits()),
            })
            .collect();
        assert_eq!(ts.len(), vals.len(), "{line}");
        out.entry(labels)
            .or_default()
            .extend(ts.into_iter().zip(vals));
    }
    out
}

fn om_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v:?}")
    }
}

/// An OpenMetrics file with awkward values, escaped label values, and both
/// series-by-series and scrape-by-scrape order, plus what it holds.
fn generate(series_per_family: usize, points: usize, seed: u64) -> (String, Dump) {
    let mut rng = Rng::seeded(
        &format!("generated OpenMetrics, {series_per_family} series per family × {points} points"),
        seed,
    );
    let mut text = String::new();
    let mut want: Dump = BTreeMap::new();
    let specials = [
        0.0,
        -0.0,
        1.0,
        0.1,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        1e21,
        -123456.789,
    ];
    let value = |rng: &mut Rng| -> f64 {
        let r = rng.next();
        match r % 4 {
            0 => specials[(r >> 8) as usize % specials.len()],
            1 => (r >> 20) as f64,
            _ => {
                let v = f64::from_bits(rng.next());
                if v.is_nan() { 0.5 } else { v }
            }
        }
    };
    let base_ms: i64 = 1_700_000_000_000;
    // Family 1: series after series.
    text.push_str("# HELP ray_tasks Tasks by state.\n# TYPE ray_tasks gauge\n");
    for s in 0..series_per_family {
        let state = format!("st\\\"a\\\\te{s}");
        let labels = Labels::from_pairs([
            ("__name__", "ray_tasks".to_string()),
            ("State", format!("st\"a\\te{s}")),
            ("node", "10.0.0.1".to_string()),
        ]);
        for p in 0..points {
            let t = base_ms + (p as i64) * 15_000 + (s as i64 % 1000);
            let v = value(&mut rng);
            text.push_str(&format!(
                "ray_tasks{{State=\"{state}\",node=\"10.0.0.1\"}} {} {}.{:03}\n",
                om_value(v),
                t / 1000,
                t % 1000
            ));
            want.entry(labels.clone())
                .or_default()
                .push((t, exported_of(v)));
        }
    }
    // Family 2: scrape after scrape, a counter with `_total`.
    text.push_str("# TYPE ray_bytes counter\n");
    for p in 0..points {
        for s in 0..series_per_family {
            let t = base_ms + (p as i64) * 10_000 + 7;
            let v = value(&mut rng);
            text.push_str(&format!(
                "ray_bytes_total{{instance=\"n{s}\"}} {} {}.{:03}\n",
                om_value(v),
                t / 1000,
                t % 1000
            ));
            let labels = Labels::from_pairs([
                ("__name__", "ray_bytes_total".to_string()),
                ("instance", format!("n{s}")),
            ]);
            want.entry(labels).or_default().push((t, exported_of(v)));
        }
    }
    text.push_str("# EOF\n");
    (text, want)
}

#[tokio::test]
async fn issue_3_import_then_export_round_trips_bit_exact() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = state(&head);
    let (text, want) = generate(8, 300, 0x9e37_79b9_7f4a_7c15);
    let (status, body) = call(&st, "POST", "/api/v1/import", text.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let total: usize = want.values().map(Vec::len).sum();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["samples"].as_u64().unwrap() as usize, total);

    let (status, body) = call(
        &st,
        "GET",
        &format!(
            "/api/v1/export?match[]={}",
            support::enc("{__name__=~\"ray_.+\"}")
        ),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let got = parse_export(&body);
    assert_eq!(got.len(), want.len());
    for (labels, samples) in &want {
        assert_eq!(got.get(labels), Some(samples), "{labels:?}");
    }
    // One line per series.
    assert_eq!(body.lines().count(), want.len());
}

#[tokio::test]
async fn issue_3_export_keeps_stale_markers_apart_from_nan() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let l = Labels::from_pairs([("__name__", "up"), ("job", "ray")]);
    let mut app = head.appender();
    for (t, v) in [(1000, 1.0), (2000, f64::NAN), (3000, STALE_NAN)] {
        app.append(0, &l, t, v).unwrap();
    }
    app.commit().unwrap();
    let st = state(&head);
    let (status, body) = call(&st, "GET", "/api/v1/export?match[]=up", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "{\"metric\":{\"__name__\":\"up\",\"job\":\"ray\"},\"values\":[1,\"NaN\",null],\"timestamps\":[1000,2000,3000]}\n"
    );
    // `start` and `end` are inclusive bounds in seconds, as elsewhere in the API.
    let (_, body) = call(
        &st,
        "GET",
        "/api/v1/export?match[]=up&start=2&end=2",
        Vec::new(),
    )
    .await;
    assert!(body.contains("\"timestamps\":[2000]}"), "{body}");
    let (status, body) = call(&st, "GET", "/api/v1/export", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("no match[] parameter provided"), "{body}");
}

#[tokio::test]
async fn issue_3_export_streams_large_answers_in_chunks() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut app = head.appender();
    for s in 0..200 {
        let l = Labels::from_pairs([("__name__", "m".to_string()), ("i", s.to_string())]);
        for t in 0..500 {
            app.append(0, &l, t * 1000, f64::from(s * t as i32))
                .unwrap();
        }
    }
    app.commit().unwrap();
    let req = Request::builder()
        .uri("/api/v1/export?match[]=m")
        .body(Body::empty())
        .unwrap();
    let resp = web::router(state(&head)).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut frames = 0;
    let mut bytes = Vec::new();
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            frames += 1;
            bytes.extend_from_slice(&d);
        }
    }
    assert!(frames > 3, "{frames} frames for {} bytes", bytes.len());
    let got = parse_export(std::str::from_utf8(&bytes).unwrap());
    assert_eq!(got.len(), 200);
    assert!(got.values().all(|s| s.len() == 500));
}

async fn import_error(text: &str, query: &str) -> (StatusCode, String, Arc<Head>) {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = state(&head);
    let uri = format!("/api/v1/import{query}");
    let (status, body) = call(&st, "POST", &uri, text.as_bytes().to_vec()).await;
    (status, body, head)
}

#[tokio::test]
async fn issue_3_bad_import_input_names_the_line() {
    // Input, query, error text, samples stored (those before the bad line).
    let cases: [(&str, &str, &str, usize); 7] = [
        (
            "a 1 1\na 2 2\na 3\n# EOF\n",
            "",
            "line 3: sample has no timestamp",
            2,
        ),
        (
            "a 1 10\na 2 20\nb 1 5\na 3 15\n# EOF\n",
            "",
            "line 4: out of order sample for",
            3,
        ),
        ("a 1 10\na{x=\"1} 2 20\n# EOF\n", "", "line 2, column", 1),
        (
            "a 1 10\na 2 20\n",
            "",
            "line 3: input does not end with \\\"# EOF\\\"",
            2,
        ),
        (
            "a 1 10\n# EOF\na 2 20\n",
            "",
            "line 3: unexpected data after",
            1,
        ),
        (
            "a 1 10\na 2\n# EOF\n",
            "?first_line=1001",
            "line 1002: sample has no timestamp",
            1,
        ),
        (
            "a 1 10\na 2 10\n# EOF\n",
            "",
            "line 2: sample for a at 10000 ms repeats a timestamp",
            1,
        ),
    ];
    for (text, query, want, kept) in cases {
        let (status, body, head) = import_error(text, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert!(body.contains("\"errorType\":\"bad_data\""), "{body}");
        assert!(body.contains(want), "{text:?}: want {want:?} in {body}");
        let q = raymon::storage::Queryable::querier(&*head, i64::MIN, i64::MAX).unwrap();
        let all =
            raymon::model::Matcher::new(raymon::model::MatchOp::Regex, "__name__", ".+").unwrap();
        let stored: usize = q
            .select(&[all])
            .unwrap()
            .iter()
            .map(|s| s.samples.len())
            .sum();
        assert_eq!(stored, kept, "{text:?}: {body}");
        assert!(
            body.contains(&format!("({kept} samples before it were imported)")),
            "{body}"
        );
    }
}

/// Import used to write for anyone who could reach the server.
#[tokio::test]
async fn issue_16_import_is_off_without_its_flag() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = state(&head);
    st.appendable = None;
    let (status, body) = call(&st, "POST", "/api/v1/import", b"a 1 1\n# EOF\n".to_vec()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body,
        "import needs to be enabled with --web.enable-import\n"
    );
    assert_eq!(head.stats().num_series, 0);
}

// ------------------------------------------------------------ serve process

/// Starts `serve` with `config`, in which `ADDR` is its own listen address
/// and `DIR` its temporary directory, after writing `files` there.
fn serve(
    tag: &str,
    config: &str,
    files: &[(&str, &str)],
    flags: &[&str],
) -> (support::KillOnDrop, String, TempDir) {
    let dir = TempDir::new(tag);
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let yml = dir.path().join("prometheus.yml");
    let config = config
        .replace("ADDR", &addr)
        .replace("DIR", &dir.path().display().to_string());
    std::fs::write(&yml, config).unwrap();
    let mut args = vec![
        format!("--config.file={}", yml.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={addr}"),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    let child = support::start_raymon(&args, &dir.path().join("raymon.log"));
    support::wait_for(
        Duration::from_secs(30),
        "raymon ready",
        || match support::get(&addr, "/-/ready") {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("status {}", r.status)),
            Err(e) => Err(e.to_string()),
        },
    );
    (child, addr, dir)
}

fn export(addr: &str, selector: &str) -> Result<Dump, String> {
    let r = support::get(
        addr,
        &format!("/api/v1/export?match[]={}", support::enc(selector)),
    )
    .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("export answered {}: {}", r.status, r.body));
    }
    Ok(parse_export(&r.body))
}

/// Samples by name: each with its label pairs in order and its value.
type Exposition = BTreeMap<String, Vec<(Vec<(String, String)>, f64)>>;

/// Every family has HELP and TYPE before its samples, and every line parses.
fn parse_exposition(body: &str) -> Exposition {
    let mut helps = std::collections::BTreeSet::new();
    let mut types = std::collections::BTreeSet::new();
    let mut samples = Exposition::new();
    for e in Parser::new(body.as_bytes(), Format::PromText) {
        match e.unwrap_or_else(|e| panic!("{e}\n{body}")) {
            Entry::Help { metric, .. } => {
                helps.insert(metric.to_string());
            }
            Entry::Type { metric, .. } => {
                types.insert(metric.to_string());
            }
            Entry::Sample(s) => {
                let family = ["_sum", "_count"]
                    .iter()
                    .find_map(|suf| s.name.strip_suffix(suf).filter(|f| types.contains(*f)))
                    .unwrap_or(s.name);
                assert!(
                    helps.contains(family) && types.contains(family),
                    "{}",
                    s.name
                );
                let labels = s
                    .labels()
                    .map(|(n, v)| (n.to_string(), v.into_owned()))
                    .collect();
                samples
                    .entry(s.name.to_string())
                    .or_default()
                    .push((labels, s.value));
            }
            Entry::Unit { .. } => {}
        }
    }
    samples
}

#[test]
fn issue_3_serve_scrapes_itself_and_stores_its_own_metrics() {
    // As people run Prometheus: a job scraping the server itself. Two more
    // jobs make the failure counters move: one whose discovery file is
    // broken, one whose sample limit every scrape of raymon exceeds.
    let config = "global:
  scrape_interval: 1s
scrape_configs:
  - job_name: raymon
    static_configs:
      - targets: ['ADDR']
  - job_name: limited
    sample_limit: 5
    static_configs:
      - targets: ['ADDR']
    relabel_configs:
      - target_label: instance
        replacement: limited
  - job_name: files
    file_sd_configs:
      - files: ['DIR/targets.json']
";
    let (_child, addr, _dir) = serve("self", config, &[("targets.json", "[{\"targets\": [")], &[]);

    let stored = support::wait_for(Duration::from_secs(30), "own series stored", || {
        let up = export(&addr, "up{job=\"raymon\"}")?;
        let series = export(&addr, "prometheus_tsdb_head_series{job=\"raymon\"}")?;
        let last_up = up.values().next().and_then(|s| s.last()).map(|p| p.1);
        let last_series = series.values().next().and_then(|s| s.last()).map(|p| p.1);
        match (last_up, last_series) {
            (Some(Exported::Bits(u)), Some(Exported::Bits(n)))
                if f64::from_bits(u) == 1.0 && f64::from_bits(n) > 0.0 =>
            {
                Ok(f64::from_bits(n))
            }
            other => Err(format!("{other:?}")),
        }
    });
    assert!(stored >= 5.0, "head series {stored}");

    // Once a target has been scraped twice, the interval summary has data;
    // and once the process has used a clock tick (10 ms) of CPU, which an
    // optimised build may not have in its first seconds, its CPU counter.
    let r = support::wait_for(Duration::from_secs(30), "a second scrape", || {
        let r = support::get(&addr, "/metrics").map_err(|e| e.to_string())?;
        let counted = r.body.lines().any(|l| {
            l.starts_with("prometheus_target_interval_length_seconds_count{") && !l.ends_with(" 0")
        });
        let cpu = r
            .body
            .lines()
            .any(|l| l.starts_with("process_cpu_seconds_total ") && !l.ends_with(" 0"));
        if counted && cpu {
            Ok(r)
        } else {
            Err(format!("interval observed: {counted}, CPU counted: {cpu}"))
        }
    });
    assert_eq!(r.status, 200);
    assert!(
        r.headers.contains("text/plain; version=0.0.4"),
        "{}",
        r.headers
    );
    let m = parse_exposition(&r.body);
    let one = |name: &str| -> f64 {
        let s = m
            .get(name)
            .unwrap_or_else(|| panic!("no {name}\n{}", r.body));
        assert_eq!(s.len(), 1, "{name}");
        s[0].1
    };
    assert!(one("prometheus_tsdb_head_series") >= stored);
    assert!(one("prometheus_tsdb_head_chunks") >= 1.0);
    assert!(one("prometheus_tsdb_head_samples_appended_total") > stored);
    assert_eq!(one("prometheus_tsdb_out_of_order_samples_total"), 0.0);
    // The durable store: scrapes went to the WAL, nothing failed.
    assert!(one("raymon_tsdb_wal_bytes_written_total") > 0.0);
    assert_eq!(one("prometheus_tsdb_wal_writes_failed_total"), 0.0);
    assert!(one("raymon_tsdb_wal_segments_created_total") >= 1.0);
    assert!(one("raymon_tsdb_storage_bytes") > 0.0);
    assert_eq!(
        one("prometheus_tsdb_checkpoint_creations_failed_total"),
        0.0
    );
    assert_eq!(one("prometheus_target_scrape_pools_total"), 3.0);
    assert!(one("prometheus_target_scrapes_exceeded_sample_limit_total") >= 1.0);
    // The broken file was read at least once, and failed every time.
    assert!(one("prometheus_sd_file_read_errors_total") >= 1.0);
    assert_eq!(one("prometheus_config_last_reload_successful"), 1.0);
    assert!(one("prometheus_config_last_reload_success_timestamp_seconds") > 1.7e9);
    assert_eq!(one("prometheus_ready"), 1.0);
    assert_eq!(one("prometheus_build_info"), 1.0);
    assert!(one("process_cpu_seconds_total") > 0.0);
    assert!(one("process_resident_memory_bytes") > 1e6);
    assert!(one("process_virtual_memory_bytes") > 1e6);
    assert!(one("process_open_fds") >= 3.0);
    assert!(one("process_start_time_seconds") > 1.7e9);
    let by_job = |name: &str, label: &str| -> Vec<(String, f64)> {
        m[name]
            .iter()
            .map(|(l, v)| {
                let job = l.iter().find(|(n, _)| n == label).unwrap();
                (job.1.clone(), *v)
            })
            .collect()
    };
    let want = |v: [(&str, f64); 3]| -> Vec<(String, f64)> {
        v.iter().map(|(j, n)| (j.to_string(), *n)).collect()
    };
    assert_eq!(
        by_job("prometheus_target_scrape_pool_targets", "scrape_job"),
        want([("files", 0.0), ("limited", 1.0), ("raymon", 1.0)])
    );
    assert_eq!(
        by_job("prometheus_sd_discovered_targets", "config"),
        want([("files", 0.0), ("limited", 1.0), ("raymon", 1.0)])
    );
    let intervals = &m["prometheus_target_interval_length_seconds"];
    let quantiles: Vec<&str> = intervals
        .iter()
        .map(|(l, _)| {
            assert_eq!(l[0], ("interval".to_string(), "1s".to_string()));
            l[1].1.as_str()
        })
        .collect();
    assert_eq!(quantiles, ["0.01", "0.05", "0.5", "0.9", "0.99"]);
    let median = intervals[2].1;
    assert!((0.5..2.5).contains(&median), "median interval {median}");
    assert!(m["prometheus_target_interval_length_seconds_count"][0].1 >= 1.0);
}

/// `raymon import --url http://{addr} file`.
fn import_cli(addr: &str, file: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args(["import", "--url", &format!("http://{addr}")])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn issue_3_raymon_import_cli_backfills_a_running_server_in_pieces() {
    // The samples are from 2023, older than the retention time.
    let (_child, addr, dir) = serve(
        "import",
        "scrape_configs: []\n",
        &[],
        &["--web.enable-import", "--web.write.max-age=0"],
    );
    // Over 4 MiB, so the CLI sends it in more than one request.
    let (text, want) = generate(40, 1400, 42);
    assert!(text.len() > 5 << 20, "{} bytes", text.len());
    let file = dir.path().join("backfill.om");
    std::fs::write(&file, &text).unwrap();
    let out = import_cli(&addr, &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.path().join("raymon.log")).unwrap_or_default();
    assert!(out.status.success(), "{stderr}\nserver log:\n{log}");
    let total: usize = want.values().map(Vec::len).sum();
    assert!(
        stderr.contains(&format!("done: {total} samples")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .filter(|l| l.starts_with("imported "))
            .count()
            >= 2,
        "{stderr}"
    );
    let got = export(&addr, "{__name__=~\"ray_.+\"}").unwrap();
    assert_eq!(got, want);

    // A bad line in the second piece is reported with its line in the file.
    // New metric names, so that the good samples before it are new too.
    let renamed = text.replace("ray_", "bad_");
    let mut lines: Vec<&str> = renamed.lines().collect();
    let bad = lines.len() - 10;
    lines[bad] = "bad_bytes_total{instance=\"x\"} 1";
    let bad_file = dir.path().join("bad.om");
    std::fs::write(&bad_file, lines.join("\n") + "\n").unwrap();
    let out = import_cli(&addr, &bad_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("line {}: sample has no timestamp", bad + 1)),
        "{stderr}"
    );
    let kept: usize = export(&addr, "{__name__=~\"bad_.+\"}")
        .unwrap()
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(
        kept,
        bad - 3,
        "samples before the bad line, less 3 comment lines"
    );
}

/// Import is off by default; the client says which flag turns it on.
#[test]
fn issue_16_raymon_import_names_the_flag_a_server_needs() {
    let (_child, addr, dir) = serve("import-off", "scrape_configs: []\n", &[], &[]);
    let file = dir.path().join("one.om");
    std::fs::write(&file, "a 1 1\n# EOF\n").unwrap();
    let out = import_cli(&addr, &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("start that raymon with --web.enable-import"),
        "{stderr}"
    );
}

#[test]
fn issue_3_offline_import_into_a_data_directory_then_serve_exports_it() {
    let dir = TempDir::new("offline-import");
    let (text, want) = generate(6, 400, 0x2545_f491_4f6c_dd1d);
    let file = dir.path().join("backfill.om");
    std::fs::write(&file, &text).unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args(["import", "--storage.tsdb.path"])
        .arg(&data)
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let total: usize = want.values().map(Vec::len).sum();
    assert!(
        stderr.contains(&format!("imported {total} samples")),
        "{stderr}"
    );

    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "scrape_configs: []\n").unwrap();
    let addr = format!("127.0.0.1:{}", support::free_port());
    let _child = support::start_raymon(
        &[
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address={addr}"),
            "--storage.tsdb.retention.time=100y".to_string(),
        ],
        &dir.path().join("serve.log"),
    );
    let q = support::enc("{__name__=~\"ray_.+\"}");
    let body = support::wait_for(Duration::from_secs(20), "export", || {
        support::get(&addr, &format!("/api/v1/export?match[]={q}"))
            .map_err(|e| e.to_string())
            .and_then(|r| {
                if r.status == 200 && !r.body.is_empty() {
                    Ok(r.body)
                } else {
                    Err(format!("{} {}", r.status, r.body))
                }
            })
    });
    let got = parse_export(&body);
    assert_eq!(got.len(), want.len());
    for (labels, samples) in &want {
        assert_eq!(got.get(labels), Some(samples), "{labels:?}");
    }
    // Imported history is idle: every series left memory when the import
    // closed, so all of the export above was read back from the chunk store.
    let m = support::get(&addr, "/metrics").unwrap().body;
    let head = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(head("prometheus_tsdb_head_series "), "0", "{m}");
    assert_eq!(head("prometheus_tsdb_head_chunks "), "0", "{m}");
}

#[test]
fn issue_3_offline_import_of_a_bad_file_names_the_line_and_keeps_what_came_before() {
    let dir = TempDir::new("offline-import-bad");
    let file = dir.path().join("bad.om");
    std::fs::write(
        &file,
        "# TYPE m gauge\nm{a=\"1\"} 1 1700000000\nm{a=\"1\"} 2 1700000015\nm{a=\"1\" 3 1700000030\n# EOF\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args(["import", "--storage.tsdb.path"])
        .arg(dir.path().join("data"))
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(
        stderr.contains("2 samples before it were imported"),
        "{stderr}"
    );
}

// ------------------------------------------------------ issue 16: write guards

async fn send(st: &AppState, req: Request<Body>) -> axum::response::Response {
    web::router(st.clone()).oneshot(req).await.unwrap()
}

async fn text_of(resp: axum::response::Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Any page a user opens may POST these types to any address, loopback
/// included, without asking the server first (a CORS "simple request").
#[tokio::test]
async fn issue_16_import_refuses_bodies_a_web_page_can_send_unasked() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = state(&head);
    for ct in [
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("Multipart/Form-Data; boundary=x"),
        None,
    ] {
        let mut req = Request::post("/api/v1/import").header("origin", "http://evil.example");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = send(&st, req.body(Body::from("a 1 1\n# EOF\n")).unwrap()).await;
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        let body = text_of(resp).await;
        assert!(
            body.contains("CORS preflight; send Content-Type: application/openmetrics-text"),
            "{body}"
        );
    }
    assert_eq!(head.stats().num_series, 0);
    // What `raymon import` sends is taken.
    let (status, body) = call(&st, "POST", "/api/v1/import", b"a 1 1\n# EOF\n".to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The API answered every origin with `Access-Control-Allow-Origin: *`,
/// writes included, so a page could also read what a write answered.
#[tokio::test]
async fn issue_16_write_endpoints_send_no_cors_headers() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = state(&head);
    st.remote_write = Some(head.clone());
    let writes = [
        ("POST", "/api/v1/import", "application/openmetrics-text"),
        ("POST", "/api/v1/write", "application/x-protobuf"),
        ("POST", "/api/v1/admin/tsdb/snapshot", "application/json"),
        ("DELETE", "/api/v1/series?match[]=a", "application/json"),
    ];
    for (method, uri, ct) in writes {
        for m in [method, "OPTIONS"] {
            // A preflight names the method it asks for.
            let req = Request::builder()
                .method(m)
                .uri(uri)
                .header("origin", "http://evil.example")
                .header("access-control-request-method", method)
                .header("content-type", ct)
                .body(Body::from("a 1 1\n# EOF\n"))
                .unwrap();
            let resp = send(&st, req).await;
            for h in [
                "access-control-allow-origin",
                "access-control-allow-methods",
                "access-control-allow-headers",
            ] {
                assert!(!resp.headers().contains_key(h), "{m} {uri}: {h}");
            }
        }
    }
    // Reads keep Prometheus's CORS answer.
    let req = Request::get("/api/v1/labels")
        .header("origin", "http://grafana.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&st, req).await.headers()["access-control-allow-origin"],
        "*"
    );
}

/// Samples from 1970 or from the year 5138 were stored as given.
#[tokio::test]
async fn issue_16_import_refuses_samples_outside_the_time_window() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = state(&head);
    // What serve has by default: the retention time back, 10 minutes ahead.
    st.write_limits = web::WriteLimits::default();
    let cases = [
        ("a 1 1\n# EOF\n", "is too old", "--web.write.max-age"),
        (
            "a 1 99999999999\n# EOF\n",
            "is too far in the future",
            "--web.write.max-future",
        ),
    ];
    for (text, want, flag) in cases {
        let (status, body) = call(&st, "POST", "/api/v1/import", text.as_bytes().to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains(want) && body.contains(flag), "{body}");
    }
    assert_eq!(head.stats().num_series, 0);
    let now = web::system_now_ms();
    let text = format!("a 1 {}.{:03}\n# EOF\n", now / 1000, now % 1000);
    let (status, body) = call(&st, "POST", "/api/v1/import", text.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// One series with 100k labels took seconds of CPU to import; it is now
/// refused by the label limit at once (and would be linear without it).
#[tokio::test]
async fn issue_16_import_of_a_series_with_100k_labels_is_refused_clearly() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = state(&head);
    st.write_limits.labels = web::WriteLimits::default().labels;
    let pairs: Vec<String> = (0..100_000).map(|i| format!("l{i}=\"v\"")).collect();
    let text = format!("wide{{{}}} 1 1\n# EOF\n", pairs.join(","));
    let (status, body) = call(&st, "POST", "/api/v1/import", text.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains(
            "line 1: label_limit exceeded (metric: wide, number of labels: 100001, limit: 256)"
        ),
        "{body}"
    );
    assert_eq!(head.stats().num_series, 0);
}
