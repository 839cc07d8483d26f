//! `raymon bench` (issue 7): a tiny end-to-end run of the built binary
//! produces a plausible report. That the simulated cluster's bodies parse in
//! both formats and have the requested shape is tested in
//! `src/bench/exposition.rs`.

use std::process::Command;

use crate::support::TempDir;

#[test]
fn tiny_end_to_end_run_reports_every_figure() {
    let dir = TempDir::new("bench");
    let out = dir.path().join("x.json");
    let run = Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args([
            "bench",
            "--targets",
            "3",
            "--series-per-target",
            "50",
            "--interval",
            "1s",
            "--duration",
            "5s",
            "--out",
        ])
        .arg(&out)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench failed: {stderr}");
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(table.contains("| samples/s"), "{table}");
    assert!(stderr.contains("[raymon]"), "no progress: {stderr}");

    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(r["config"]["targets"], 3);
    assert_eq!(r["machine"]["cpus"].as_u64().map(|n| n > 0), Some(true));
    let c = &r["collectors"][0];
    assert_eq!(c["name"], "raymon");
    let f = |p: &str| c.pointer(p).and_then(|v| v.as_f64()).unwrap_or(-1.0);
    // 3 targets x 50 series once a second.
    let sps = f("/samples_per_second");
    assert!((100.0..=200.0).contains(&sps), "samples/s {sps}");
    assert!(f("/cpu_seconds") >= 0.0);
    assert!(f("/peak_rss_bytes") > 1e6);
    assert!(f("/steady_rss_bytes") > 1e6);
    assert!(f("/active_series") >= 150.0);
    assert!(f("/rss_bytes_per_series") > 0.0);
    assert!(f("/restart_ready_seconds") > 0.0);
    assert!(f("/kill_restart_ready_seconds") > 0.0);
    // Every scrape is recorded by the targets, about once a second each.
    let count = f("/scrapes/count");
    let expected = f("/scrapes/expected");
    assert!(
        expected >= 12.0 && count >= expected,
        "{count} of {expected}"
    );
    assert!(f("/scrapes/min_per_target") >= 4.0);
    let p50 = f("/scrapes/interval_p50_seconds");
    assert!((0.9..=1.1).contains(&p50), "p50 {p50}");
    assert!(f("/scrapes/within_1pct") > 0.5);
    let qs = c["queries"]["status"].as_str().unwrap();
    assert!(qs == "ok" || qs.starts_with("n/a"), "{qs}");
    assert!(c["queries"]["count"].as_u64().unwrap() > 0);
}

/// Runs `raymon bench` with `args` and the report written to JSON; returns
/// the report and the printed table.
fn bench_vs_prometheus(dir: &TempDir, args: &[&str]) -> (serde_json::Value, String) {
    assert!(
        std::path::Path::new("/usr/bin/prometheus").exists(),
        "prometheus is not installed: run scripts/setup-deps"
    );
    let out = dir.path().join("report.json");
    let run = Command::new(env!("CARGO_BIN_EXE_raymon"))
        .arg("bench")
        .args(args)
        .args(["--vs", "prometheus", "--out"])
        .arg(&out)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench failed: {stderr}");
    let r = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    (r, String::from_utf8_lossy(&run.stdout).into_owned())
}

#[test]
fn issue_22_same_data_mode_loads_both_stores_and_compares_every_answer() {
    let dir = TempDir::new("bench-same");
    let (r, table) = bench_vs_prometheus(
        &dir,
        &[
            "--same-data",
            "--targets",
            "2",
            "--window",
            "5m",
            "--repeats",
            "2",
            "--max-queries",
            "40",
        ],
    );
    let names: Vec<&str> = r["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["raymon", "prometheus"]);
    // 2 nodes of the 2,407-series template, a sample every 10 s over 5 min.
    assert_eq!(r["series"], 2 * 2407);
    assert_eq!(r["samples"], 2 * 2407 * 31);
    // Both stores hold exactly what was sent.
    let checks = r["checks"].as_array().unwrap();
    assert!(checks.len() >= 4, "{checks:?}");
    for c in checks {
        let want = c["expected"].as_f64().unwrap();
        assert!(want > 0.0, "{c}");
        for a in c["answers"].as_array().unwrap() {
            assert_eq!(a.as_f64(), Some(want), "{c}");
        }
    }
    // Every query ran on both, and both answered the same.
    let queries = r["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 40);
    let mut selected = 0;
    for q in queries {
        assert_eq!(q["status"], serde_json::json!([200, 200]), "{q}");
        assert!(
            q["seconds"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s.as_f64().is_some_and(|s| s > 0.0)),
            "{q}"
        );
        assert_eq!(q["verdicts"], serde_json::json!(["same"]), "{q}");
        let series = q["series"].as_array().unwrap();
        assert_eq!(series[0], series[1], "{q}");
        if series[0].as_u64() > Some(0) {
            selected += 1;
        }
    }
    assert!(selected >= 5, "only {selected} queries selected data");
    for s in r["stores"].as_array().unwrap() {
        assert!(s["rss_after_load_bytes"].as_u64() > Some(1 << 20), "{s}");
        assert!(s["total_seconds"].as_f64() > Some(0.0), "{s}");
        assert_eq!(s["failed_queries"], 0, "{s}");
    }
    assert!(
        r["ratios"]["prometheus"]["query p99 (ms)"]
            .as_f64()
            .is_some()
    );
    assert!(table.contains("40 of 40 queries agree"), "{table}");
    assert!(table.contains("| raymon/prometheus |"), "{table}");
}

#[test]
fn issue_22_vs_prometheus_reports_every_query_and_memory_while_querying() {
    let dir = TempDir::new("bench-vs");
    let (r, table) = bench_vs_prometheus(
        &dir,
        &[
            "--targets",
            "2",
            "--series-per-target",
            "100",
            "--interval",
            "1s",
            "--duration",
            "4s",
            "--no-restart",
            "--queries",
            "ray",
            "--max-queries",
            "8",
        ],
    );
    let collectors = r["collectors"].as_array().unwrap();
    assert_eq!(collectors.len(), 2);
    let per_query = |c: &serde_json::Value| -> Vec<(String, Option<f64>)> {
        c["queries"]["per_query"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                (
                    q["query"].as_str().unwrap().to_string(),
                    q["seconds"].as_f64(),
                )
            })
            .collect()
    };
    let (a, b) = (per_query(&collectors[0]), per_query(&collectors[1]));
    assert_eq!(a.len(), 8);
    // The same queries, in the same order, each answered by both.
    assert_eq!(
        a.iter().map(|q| &q.0).collect::<Vec<_>>(),
        b.iter().map(|q| &q.0).collect::<Vec<_>>()
    );
    assert!(
        a.iter().chain(&b).all(|q| q.1.is_some_and(|s| s > 0.0)),
        "{a:?} {b:?}"
    );
    for c in collectors {
        let q = &c["queries"];
        assert!(q["rss_before_bytes"].as_u64() > Some(1 << 20), "{q}");
        assert!(q["peak_rss_bytes"].as_u64() > Some(1 << 20), "{q}");
    }
    assert!(
        table.contains("| # | raymon ms | prometheus ms | raymon/prometheus | query |"),
        "{table}"
    );
    assert!(table.contains("queries both answered"), "{table}");
}
