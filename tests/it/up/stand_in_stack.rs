//! `up` and `down` end to end with stand-in `grafana` and `shifter`
//! executables: attaching, signals, failing or silent Grafana, busy ports.

use std::process::Command;
use std::time::Duration;

use crate::support::{self, TempDir};

use super::*;

#[test]
fn issue_6_up_attach_with_native_grafana_behind_jupyterhub_then_down() {
    let tmp = TempDir::new("upn");
    let data = tmp.path().join("data");
    let temp = fake_ray_temp(tmp.path());
    let record = tmp.path().join("record.json");
    let (gport, rport, dport) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            "--grafana=native".into(),
            "--auth=none".into(),
            format!("--grafana-bin={}", stand_ins().join("grafana").display()),
            "--grafana-home=/opt/grafana-home".into(),
            format!("--grafana-listen-address=127.0.0.1:{gport}"),
            format!("--web.listen-address=127.0.0.1:{rport}"),
            format!("--dashboard-port={dport}"),
        ],
        &[
            ("RAYMON_STANDIN_RECORD", record.display().to_string()),
            (
                "JUPYTERHUB_SERVICE_PREFIX",
                "/user/alice/perlmutter/".into(),
            ),
        ],
        tmp.path(),
    );
    let stdout = up.wait_up(Duration::from_secs(60));
    let hub = "https://jupyter.nersc.gov/user/alice/perlmutter";
    assert!(
        stdout.contains(&format!("Grafana:        {hub}/proxy/{gport}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Ray dashboard:  {hub}/proxy/{dport}/\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "os.environ[\"RAY_GRAFANA_IFRAME_HOST\"] = \"{hub}/proxy/{gport}\""
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("None"));

    let rec = recorded(&record);
    let g = data.join("grafana");
    assert_eq!(rec["name"], "grafana");
    assert_eq!(
        rec["argv"],
        serde_json::json!([
            "server",
            "--homepath=/opt/grafana-home",
            format!("--config={}", g.join("grafana.ini").display())
        ])
    );
    for (k, sub) in [
        ("GF_PATHS_CONFIG", "grafana.ini"),
        ("GF_PATHS_DATA", "data"),
        ("GF_PATHS_PLUGINS", "plugins"),
        ("GF_PATHS_PROVISIONING", "provisioning"),
        ("GF_PATHS_LOGS", "logs"),
    ] {
        assert_eq!(rec["env"][k], g.join(sub).display().to_string(), "{k}");
    }
    let ini = std::fs::read_to_string(g.join("grafana.ini")).unwrap();
    assert_eq!(
        ini_value(&ini, "server", "root_url").unwrap(),
        format!("{hub}/proxy/{gport}/")
    );
    assert_eq!(
        ini_value(&ini, "server", "http_port").unwrap(),
        gport.to_string()
    );
    let ds = std::fs::read_to_string(g.join("provisioning/datasources/raymon.yml")).unwrap();
    assert!(
        ds.contains(&format!("url: \"http://127.0.0.1:{rport}\"")),
        "{ds}"
    );
    // Ray's dashboards were copied for Grafana.
    assert!(
        g.join("dashboards/default_grafana_dashboard.json")
            .is_file()
    );
    assert!(g.join("dashboards/serve_grafana_dashboard.json").is_file());
    // raymon's own config follows the temp dir's discovery file.
    let prom = std::fs::read_to_string(data.join("prometheus.yml")).unwrap();
    assert!(
        prom.contains(
            &temp
                .join("prom_metrics_service_discovery.json")
                .display()
                .to_string()
        )
    );
    // Grafana answers as Ray's backend wants, and raymon is ready.
    let h = support::get(&format!("127.0.0.1:{gport}"), "/api/health").unwrap();
    assert_eq!(h.json()["database"], "ok");
    assert_eq!(
        support::get(&format!("127.0.0.1:{rport}"), "/-/ready")
            .unwrap()
            .status,
        200
    );
    // Grafana's output goes to its log.
    let log = std::fs::read_to_string(data.join("logs/grafana.log")).unwrap();
    assert!(log.contains("stand-in grafana started"), "{log}");

    let grafana_pid = rec["pid"].as_u64().unwrap() as u32;
    let up_pid = up.child.pid();
    assert!(alive(grafana_pid));
    let out = down(&data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!alive(grafana_pid), "Grafana survived raymon down");
    let status = up.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", up.stderr());
    assert!(!alive(up_pid));
    assert!(!data.join("raymon-up.json").exists());
    // A second `down` finds nothing to do.
    assert!(down(&data).status.success());
}

#[test]
fn issue_6_up_with_shifter_runs_the_image_start_script_and_stops_on_sigterm() {
    let tmp = TempDir::new("ups");
    let data = tmp.path().join("data");
    let temp = tmp.path().join("ray");
    let record = tmp.path().join("record.json");
    let (gport, rport) = (support::free_port(), support::free_port());
    let path = format!(
        "{}:{}",
        stand_ins().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            "--grafana=shifter".into(),
            format!("--grafana-listen-address=127.0.0.1:{gport}"),
            format!("--web.listen-address=127.0.0.1:{rport}"),
            "--public-url=https://example.org/proxy/{port}".into(),
        ],
        &[
            ("RAYMON_STANDIN_RECORD", record.display().to_string()),
            ("RAYMON_STANDIN_SHIFTER_IMAGES", pulled(tmp.path())),
            ("PATH", path),
        ],
        tmp.path(),
    );
    let stdout = up.wait_up(Duration::from_secs(60));
    assert!(stdout.contains(&format!(
        "Grafana:        https://example.org/proxy/{gport}\n"
    )));
    let rec = recorded(&record);
    assert_eq!(rec["name"], "shifter");
    let g = data.join("grafana").display().to_string();
    assert_eq!(
        rec["argv"],
        serde_json::json!([
            "--image=grafana/grafana-oss:9.4.3",
            format!("--volume={g}:/grafana"),
            "--env=GF_PATHS_CONFIG=/grafana/grafana.ini",
            "--env=GF_PATHS_DATA=/grafana/data",
            "--env=GF_PATHS_LOGS=/grafana/logs",
            "--env=GF_PATHS_PLUGINS=/grafana/plugins",
            "--env=GF_PATHS_PROVISIONING=/grafana/provisioning",
            "/run.sh"
        ])
    );
    let prov =
        std::fs::read_to_string(data.join("grafana/provisioning/dashboards/ray.yml")).unwrap();
    assert!(prov.contains("path: \"/grafana/dashboards\""), "{prov}");
    let h = support::get(&format!("127.0.0.1:{gport}"), "/api/health").unwrap();
    assert!(
        h.headers
            .to_lowercase()
            .contains("content-type: application/json")
    );

    // Ctrl-C's path: SIGTERM to `up` alone stops its children too.
    let pid = rec["pid"].as_u64().unwrap() as u32;
    Command::new("kill")
        .arg(up.child.pid().to_string())
        .status()
        .unwrap();
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}: {}", up.stderr());
    assert!(!alive(pid), "shifter stand-in survived");
    assert!(up.stderr().contains("stopping the collector"));
}

#[test]
fn issue_6_grafana_that_fails_stops_up_with_its_log() {
    let tmp = TempDir::new("upf");
    let data = tmp.path().join("data");
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!(
                "--grafana-bin={}",
                stand_ins().join("grafana-server").display()
            ),
            format!(
                "--grafana-listen-address=127.0.0.1:{}",
                support::free_port()
            ),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[("RAYMON_STANDIN_FAIL", "1".into())],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    let err = up.stderr();
    assert!(err.contains("grafana exited"), "{err}");
    assert!(err.contains("stand-in failing on purpose"), "{err}");
    assert!(!up.stdout().contains("raymon is up"));
    assert!(!data.join("raymon-up.json").exists());
}

#[test]
fn issue_6_no_grafana_binary_is_a_clear_error_before_anything_starts() {
    let tmp = TempDir::new("upb");
    let data = tmp.path().join("data");
    let mut up = Up::start(
        &[
            "--attach".into(),
            "--grafana=native".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[("PATH", "/nonexistent".into())],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(up.stderr().contains("--grafana-bin"), "{}", up.stderr());
}

/// Another user's Grafana on the port would pass the health check: refuse.
#[test]
fn issue_6_a_busy_grafana_port_is_refused() {
    let tmp = TempDir::new("upp");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", tmp.path().join("data").display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--grafana-bin={}", stand_ins().join("grafana").display()),
            format!("--grafana-listen-address=127.0.0.1:{port}"),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(
        up.stderr().contains("--grafana-listen-address"),
        "{}",
        up.stderr()
    );
}

/// A Grafana that never becomes healthy stops `up` after the ready timeout,
/// with the end of its log, and is not left running.
#[test]
fn issue_6_grafana_that_never_answers_times_out_with_its_log() {
    let tmp = TempDir::new("uph");
    let data = tmp.path().join("data");
    let record = tmp.path().join("record.json");
    let mut up = Up::start(
        &[
            "--attach".into(),
            "--ready-timeout=3s".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--grafana-bin={}", stand_ins().join("grafana").display()),
            format!(
                "--grafana-listen-address=127.0.0.1:{}",
                support::free_port()
            ),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[
            ("RAYMON_STANDIN_HANG", "1".into()),
            ("RAYMON_STANDIN_RECORD", record.display().to_string()),
        ],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    let err = up.stderr();
    assert!(err.contains("Grafana not ready after 3s"), "{err}");
    assert!(err.contains("stand-in hanging before it listens"), "{err}");
    let pid = recorded(&record)["pid"].as_u64().unwrap() as u32;
    assert!(!alive(pid), "Grafana left running");
}

/// The collector cannot listen: `up` stops and says why.
#[test]
fn issue_6_collector_that_cannot_listen_stops_up() {
    let tmp = TempDir::new("upl");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut up = Up::start(
        &[
            "--attach".into(),
            "--grafana=none".into(),
            format!("--data-dir={}", tmp.path().join("data").display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--web.listen-address={}", busy.local_addr().unwrap()),
        ],
        &[],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    let err = up.stderr();
    assert!(err.contains("the collector stopped"), "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
}
