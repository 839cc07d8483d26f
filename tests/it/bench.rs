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
