//! `up` with real Ray: sessions followed, children stopped by `down` even
//! after `up` was killed, Grafana reported to Ray at its public URL.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{self, KillOnDrop, TempDir};

use super::*;

#[test]
fn issue_6_up_starts_real_ray_and_raymon_and_down_leaves_no_process() {
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("upr");
    let data = tmp.path().join("d");
    let temp = tmp.path().join("r");
    let _leftovers = Leftovers {
        data: data.clone(),
        temp: temp.clone(),
    };
    let (rport, dport, gcs) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let raymon_addr = format!("127.0.0.1:{rport}");
    let mut up = Up::start(
        &[
            "--grafana=none".into(),
            "--auth=none".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            format!("--ray-bin={}", support::ray_bin().display()),
            format!("--web.listen-address={raymon_addr}"),
            format!("--dashboard-port={dport}"),
            "--ready-timeout=240s".into(),
            "--".into(),
            format!("--port={gcs}"),
            "--num-cpus=1".into(),
            "--dashboard-host=127.0.0.1".into(),
            "--disable-usage-stats".into(),
        ],
        &[
            ("AUTOSCALER_METRIC_PORT", support::free_port().to_string()),
            ("DASHBOARD_METRIC_PORT", support::free_port().to_string()),
            ("RAY_USAGE_STATS_ENABLED", "0".into()),
        ],
        tmp.path(),
    );
    let stdout = up.wait_up(Duration::from_secs(300));
    assert!(
        stdout.contains(&format!("Ray dashboard:  http://127.0.0.1:{dport}/")),
        "{stdout}"
    );
    assert!(!stdout.contains("Grafana:"), "{stdout}");

    // Ray's processes are known to `up`, and got the environment.
    let state: raymon::launcher::supervisor::State =
        serde_json::from_str(&std::fs::read_to_string(data.join("raymon-up.json")).unwrap())
            .unwrap();
    let ray_start = state
        .children
        .iter()
        .find(|(n, _)| n == "ray")
        .map(|(_, p)| p.pid)
        .unwrap();
    let environ =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{ray_start}/environ")).unwrap())
            .replace('\0', "\n");
    assert!(environ.contains(&format!("RAY_PROMETHEUS_HOST=http://{raymon_addr}\n")));
    assert!(environ.contains("RAY_PROMETHEUS_NAME=raymon\n"));
    let ray_datasource = std::fs::read_to_string(
        temp.join("session_latest/metrics/grafana/provisioning/datasources/default.yml"),
    )
    .unwrap();
    assert!(ray_datasource.contains(&format!("url: http://{raymon_addr}")));

    // raymon scrapes Ray through the temp dir's discovery file.
    let n = support::wait_for(Duration::from_secs(90), "ray_* series", || {
        let r = support::get(
            &raymon_addr,
            &format!(
                "/federate?match[]={}",
                support::enc(r#"{__name__=~"ray_.+"}"#)
            ),
        )
        .map_err(|e| e.to_string())?;
        let n = r.body.lines().filter(|l| l.starts_with("ray_")).count();
        if n > 20 {
            Ok(n)
        } else {
            Err(format!("{n} ray_ series"))
        }
    });
    eprintln!("{n} ray_* series scraped");

    // Ray's backend asks raymon for `vector(1)` and finds it healthy.
    let engine = support::get(&raymon_addr, "/api/v1/query?query=vector(1)").unwrap();
    assert_eq!(engine.json()["status"], "success", "{}", engine.body);
    let health = support::get(&format!("127.0.0.1:{dport}"), "/api/prometheus_health").unwrap();
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["result"], true, "{}", health.body);
    // And the head node's series answer through PromQL.
    support::wait_for(Duration::from_secs(60), "ray_node_cpu_count", || {
        let q = support::get(
            &raymon_addr,
            &format!(
                "/api/v1/query?query={}",
                support::enc("count(ray_node_cpu_count)")
            ),
        )
        .map_err(|e| e.to_string())?;
        if q.json()["data"]["result"][0]["value"][1] == "1" {
            Ok(())
        } else {
            Err(q.body)
        }
    });

    // Everything `up` started, Ray's workers included, ends with `down`.
    let state: raymon::launcher::supervisor::State =
        serde_json::from_str(&std::fs::read_to_string(data.join("raymon-up.json")).unwrap())
            .unwrap();
    assert!(
        state.pids.len() >= 5,
        "Ray's processes not tracked: {state:?}"
    );
    let stopping = std::time::Instant::now();
    // A user's `tail -f` of a Ray log names the session dir but is not Ray's.
    let session = std::fs::read_link(temp.join("session_latest")).unwrap();
    let mut bystander = KillOnDrop(
        // In its own process group, so the sleep dies with it, and without
        // the test's output pipe, which a leftover would hold open.
        Command::new("sh")
            .args(["-c", "sleep 300", &session.display().to_string()])
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let naming_temp: Vec<_> = processes_naming(&temp.display().to_string())
        .into_iter()
        .filter(|(pid, _)| *pid != bystander.pid())
        .collect();
    assert!(!naming_temp.is_empty());
    let out = down(&data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "raymon down took {:?}; up's log:\n{}",
        stopping.elapsed(),
        up.stderr()
    );
    let left: Vec<_> = state.pids.iter().filter(|p| p.alive()).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    assert!(alive(bystander.pid()), "raymon down stopped a bystander");
    let group = format!("-{}", bystander.pid());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    bystander.terminate(Duration::from_secs(5));
    let left = processes_naming(&temp.display().to_string());
    assert!(left.is_empty(), "Ray processes left behind: {left:?}");
    for (pid, _) in &naming_temp {
        assert!(!alive(*pid), "{pid} survived");
    }
    let status = up.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", up.stderr());
}

/// A notebook that restarts Ray gets a new session: `up --attach` scrapes
/// its targets and hands its dashboards to Grafana.
#[test]
fn issue_6_attach_follows_a_new_ray_session() {
    let tmp = TempDir::new("upa");
    let data = tmp.path().join("data");
    let temp = tmp.path().join("ray");
    let rport = support::free_port();
    let addr = format!("127.0.0.1:{rport}");
    // Ray's writer: the session's file, and the temp dir's link to it.
    let session = |name: &str, target: &str, dashboard: &str| {
        let s = temp.join(name);
        let d = s.join("metrics/grafana/dashboards");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(dashboard), r#"{"panels":[]}"#).unwrap();
        let sd = s.join("prom_metrics_service_discovery.json");
        std::fs::write(
            &sd,
            format!(r#"[{{"labels": {{"job": "ray"}}, "targets": ["{target}"]}}]"#),
        )
        .unwrap();
        for (link, to) in [
            (temp.join("session_latest"), s.clone()),
            (temp.join("prom_metrics_service_discovery.json"), sd),
        ] {
            let tmp_link = link.with_extension("new");
            let _ = std::fs::remove_file(&tmp_link);
            std::os::unix::fs::symlink(&to, &tmp_link).unwrap();
            std::fs::rename(&tmp_link, &link).unwrap();
        }
    };
    session("session_a", &addr, "a.json");
    let mut up = Up::start(
        &[
            "--attach".into(),
            "--grafana=none".into(),
            "--auth=none".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            format!("--web.listen-address={addr}"),
        ],
        &[],
        tmp.path(),
    );
    up.wait_up(Duration::from_secs(60));
    let dashboards = data.join("grafana/dashboards");
    assert!(dashboards.join("a.json").is_file());
    support::wait_for(Duration::from_secs(20), "session a's target", || {
        let t = target_instances(&addr)?;
        if t == [addr.clone()] {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    });

    let other = format!("127.0.0.1:{}", support::free_port());
    session("session_b", &other, "b.json");
    support::wait_for(Duration::from_secs(30), "session b's target", || {
        let t = target_instances(&addr)?;
        if t == [other.clone()] {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    });
    support::wait_for(Duration::from_secs(15), "session b's dashboards", || {
        if dashboards.join("b.json").is_file() {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    assert!(down(&data).status.success());
    assert!(up.wait_exit(Duration::from_secs(10)).success());
}

/// `up` killed hard cannot stop its children; `down` does, from the state file.
#[test]
fn issue_6_down_stops_children_of_an_up_that_was_killed() {
    let tmp = TempDir::new("upk");
    let data = tmp.path().join("data");
    let record = tmp.path().join("record.json");
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--grafana-bin={}", stand_ins().join("grafana").display()),
            format!(
                "--grafana-listen-address=127.0.0.1:{}",
                support::free_port()
            ),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[("RAYMON_STANDIN_RECORD", record.display().to_string())],
        tmp.path(),
    );
    up.wait_up(Duration::from_secs(60));
    let grafana_pid = recorded(&record)["pid"].as_u64().unwrap() as u32;
    let _ = up.child.0.kill();
    let _ = up.child.0.wait();
    assert!(alive(grafana_pid), "Grafana should outlive a SIGKILLed up");
    // A new `up` on the same data dir would lose track of it: refused.
    let again = Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args([
            "up",
            "--attach",
            "--grafana=none",
            &format!("--data-dir={}", data.display()),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("raymon down"));
    let out = down(&data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("raymon up is gone"));
    assert!(!alive(grafana_pid), "Grafana survived raymon down");
    assert!(!data.join("raymon-up.json").exists());
}

/// With Grafana (a stand-in) and behind JupyterHub, Ray's own backend finds
/// Grafana healthy and hands the browser the proxied Grafana URL.
#[test]
fn issue_6_real_ray_reports_grafana_at_the_public_url() {
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("upg");
    let data = tmp.path().join("d");
    let temp = tmp.path().join("r");
    let _leftovers = Leftovers {
        data: data.clone(),
        temp: temp.clone(),
    };
    let (rport, dport, gport, gcs) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let mut up = Up::start(
        &[
            format!(
                "--grafana-bin={}",
                stand_ins().join("grafana-server").display()
            ),
            format!("--grafana-listen-address=127.0.0.1:{gport}"),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            format!("--ray-bin={}", support::ray_bin().display()),
            format!("--web.listen-address=127.0.0.1:{rport}"),
            format!("--dashboard-port={dport}"),
            "--ready-timeout=240s".into(),
            "--".into(),
            format!("--port={gcs}"),
            "--num-cpus=1".into(),
            "--dashboard-host=127.0.0.1".into(),
            "--disable-usage-stats".into(),
        ],
        &[
            ("AUTOSCALER_METRIC_PORT", support::free_port().to_string()),
            ("DASHBOARD_METRIC_PORT", support::free_port().to_string()),
            ("RAY_USAGE_STATS_ENABLED", "0".into()),
            ("JUPYTERHUB_SERVICE_PREFIX", "/user/bob/shared-node/".into()),
        ],
        tmp.path(),
    );
    let stdout = up.wait_up(Duration::from_secs(300));
    let hub = "https://jupyter.nersc.gov/user/bob/shared-node";
    assert!(
        stdout.contains(&format!("Ray dashboard:  {hub}/proxy/{dport}/\n")),
        "{stdout}"
    );
    let r = support::get(&format!("127.0.0.1:{dport}"), "/api/grafana_health").unwrap();
    let v = r.json();
    assert_eq!(v["result"], true, "{}", r.body);
    assert_eq!(
        v["data"]["grafanaHost"],
        format!("{hub}/proxy/{gport}"),
        "{}",
        r.body
    );
    assert_eq!(v["data"]["dashboardDatasource"], "raymon");
    // Grafana got Ray's dashboards of this session.
    assert!(
        data.join("grafana/dashboards/default_grafana_dashboard.json")
            .is_file()
    );
    assert!(down(&data).status.success());
    assert!(up.wait_exit(Duration::from_secs(10)).success());
    assert!(processes_naming(&temp.display().to_string()).is_empty());
}

/// With shifter, the command line `up` builds passes every rule of the
/// strict stand-in (it would have exited otherwise) and of raymon's own
/// check, and every Grafana path is inside the mounted volume.
#[test]
fn issue_17_real_ray_with_shifter_grafana_is_healthy() {
    let rec = real_ray_with_grafana("shifter");
    assert_eq!(rec["name"], "shifter");
    let argv: Vec<String> = serde_json::from_value(rec["argv"].clone()).unwrap();
    let volume = argv
        .iter()
        .find_map(|a| a.strip_prefix("--volume="))
        .unwrap();
    let (from, to) = volume.split_once(':').unwrap();
    assert_eq!(to, "/grafana");
    assert!(
        raymon::launcher::shifter::volume_map_problem(Path::new(from), to).is_none(),
        "{volume}"
    );
    let paths: Vec<&String> = argv
        .iter()
        .filter(|a| a.starts_with("--env=GF_PATHS_"))
        .collect();
    assert_eq!(paths.len(), 5, "{argv:?}");
    for p in paths {
        let value = p.split_once('=').unwrap().1.split_once('=').unwrap().1;
        assert!(value.starts_with("/grafana/"), "{p}");
    }
}

#[test]
fn issue_17_real_ray_with_native_grafana_is_healthy() {
    let rec = real_ray_with_grafana("native");
    assert_eq!(rec["name"], "grafana");
    assert_eq!(rec["argv"][0], "server");
}
