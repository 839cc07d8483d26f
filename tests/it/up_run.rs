//! `raymon up` and `down` end to end (issue 6): stand-in `grafana` and
//! `shifter` executables, real Ray, failures that stop `up` with the log
//! that explains them.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use crate::support::{self, KillOnDrop, TempDir};
use crate::up::*;

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
    let ray = support::RealRayUp::new();
    let dport = ray.dashboard_port;
    let raymon_addr = format!("127.0.0.1:{}", ray.raymon_port);
    let mut up = Up::start(
        &ray.args(
            &data,
            &temp,
            &["--grafana=none".into(), "--auth=none".into()],
        ),
        &ray.env(&[]),
        tmp.path(),
    );
    let stdout = up.wait_up(Duration::from_secs(300));
    assert!(
        stdout.contains(&format!("Ray dashboard:  http://127.0.0.1:{dport}/")),
        "{stdout}"
    );
    assert!(!stdout.contains("Grafana:"), "{stdout}");

    // Ray's processes are known to `up`, and got the environment.
    let state = up_state(&data).unwrap();
    let ray_start = child_pid(&state, "ray").unwrap();
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
    let state = up_state(&data).unwrap();
    assert!(
        recorded_pids(&state).len() >= 5,
        "Ray's processes not tracked: {state}"
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
    let left: Vec<_> = recorded_pids(&state)
        .into_iter()
        .filter(still_running)
        .collect();
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

/// Targets raymon scrapes, as `instance` labels.
fn target_instances(addr: &str) -> Result<Vec<String>, String> {
    Ok(support::active_targets(addr)?
        .iter()
        .map(|t| support::text_at(t, "/labels/instance"))
        .collect())
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
    let ray = support::RealRayUp::new();
    let (dport, gport) = (ray.dashboard_port, support::free_port());
    let mut up = Up::start(
        &ray.args(
            &data,
            &temp,
            &[
                format!(
                    "--grafana-bin={}",
                    stand_ins().join("grafana-server").display()
                ),
                format!("--grafana-listen-address=127.0.0.1:{gport}"),
            ],
        ),
        &ray.env(&[("JUPYTERHUB_SERVICE_PREFIX", "/user/bob/shared-node/".into())]),
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
