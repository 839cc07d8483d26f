//! Issue 3's operational surface against a `serve` process on 127.0.0.1:
//! raymon's own `/metrics`, `raymon import` online and offline, and
//! `GET /api/v1/export`. The router tests of import and export are in
//! `src/web/tests/ops.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use raymon::model::{Labels, is_stale_nan};
use raymon::textparse::{Entry, Format, Parser};

use crate::support::{self, Rng, TempDir};

#[path = "../../src/web/tests/export_format.rs"]
mod export_format;
use export_format::*;

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
                    .find_map(|suf| s.name().strip_suffix(suf).filter(|f| types.contains(*f)))
                    .unwrap_or(s.name());
                assert!(
                    helps.contains(family) && types.contains(family),
                    "{}",
                    s.name()
                );
                let labels = s
                    .labels()
                    .map(|(n, v)| (n.to_string(), v.into_owned()))
                    .collect();
                samples
                    .entry(s.name().to_string())
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
