//! Real Ray: a head node plus a worker node from pip, scraped by `raymon serve`
//! on Ray's own generated `prometheus.yml` (issue 2).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, KillOnDrop, TempDir};

/// A Ray node started with `ray start --block` in its own process group, so
/// that the whole node (raylet, GCS, agents, workers) can be ended at once.
pub struct RayNode {
    child: KillOnDrop,
}

impl RayNode {
    pub fn start(args: &[String], env: &[(&str, String)], log: &Path) -> RayNode {
        let out = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new(support::ray_bin());
        cmd.arg("start")
            .arg("--block")
            .arg("--disable-usage-stats")
            .arg("--num-cpus=1")
            .args(args)
            .env("RAY_USAGE_STATS_ENABLED", "0")
            .env("HOME", support::ray_home())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        RayNode {
            child: KillOnDrop(cmd.spawn().unwrap()),
        }
    }

    pub fn pgid(&self) -> u32 {
        self.child.pid()
    }
}

impl Drop for RayNode {
    fn drop(&mut self) {
        let group = format!("-{}", self.pgid());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

/// A head node on free ports; ends every Ray process under `temp` when dropped.
pub struct RayCluster {
    pub temp: TempDir,
    pub gcs_port: u16,
    pub dashboard_port: u16,
    /// The head's `--metrics-export-port`.
    pub metrics_port: u16,
    pub nodes: Vec<RayNode>,
}

impl RayCluster {
    pub fn start_head(extra_env: &[(&str, String)]) -> RayCluster {
        let temp = TempDir::new("ray");
        let (gcs_port, dashboard_port, metrics_port) = (
            support::free_port(),
            support::free_port(),
            support::free_port(),
        );
        let mut env = vec![
            ("AUTOSCALER_METRIC_PORT", support::free_port().to_string()),
            ("DASHBOARD_METRIC_PORT", support::free_port().to_string()),
        ];
        env.extend(extra_env.iter().cloned());
        let head = RayNode::start(
            &[
                "--head".into(),
                format!("--port={gcs_port}"),
                format!("--metrics-export-port={metrics_port}"),
                format!("--temp-dir={}", temp.path().display()),
                "--dashboard-host=127.0.0.1".into(),
                format!("--dashboard-port={dashboard_port}"),
            ],
            &env,
            &temp.path().join("head.log"),
        );
        RayCluster {
            temp,
            gcs_port,
            dashboard_port,
            metrics_port,
            nodes: vec![head],
        }
    }

    /// Ray's generated Prometheus config, once it exists.
    pub fn prometheus_yml(&self) -> PathBuf {
        let p = self
            .temp
            .path()
            .join("session_latest/metrics/prometheus/prometheus.yml");
        support::wait_for(Duration::from_secs(90), "Ray's prometheus.yml", || {
            if p.exists() {
                Ok(())
            } else {
                Err(self.head_log_tail())
            }
        });
        p
    }

    pub fn head_log_tail(&self) -> String {
        self.log_tail("head.log")
    }

    /// The last lines of a node's log under the temp dir.
    pub fn log_tail(&self, name: &str) -> String {
        let log = std::fs::read_to_string(self.temp.path().join(name)).unwrap_or_default();
        log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
    }

    /// What Ray's service discovery file lists now.
    pub fn discovery_file(&self) -> String {
        let p = self
            .temp
            .path()
            .join("session_latest/prom_metrics_service_discovery.json");
        std::fs::read_to_string(p).unwrap_or_else(|e| e.to_string())
    }

    pub fn add_worker(&mut self, metrics_port: u16) {
        self.add_worker_with_env(metrics_port, &[]);
    }

    pub fn add_worker_with_env(&mut self, metrics_port: u16, env: &[(&str, String)]) {
        let log = self.temp.path().join(format!("worker-{metrics_port}.log"));
        let node = RayNode::start(
            &[
                format!("--address=127.0.0.1:{}", self.gcs_port),
                format!("--metrics-export-port={metrics_port}"),
            ],
            env,
            &log,
        );
        self.nodes.push(node);
    }
}

impl Drop for RayCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        // Stragglers that left the process group still name the temp dir.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.temp.path().display().to_string()])
            .status();
    }
}

/// Targets in `/api/v1/targets` as (scrapeUrl, health, lastError).
fn targets(addr: &str) -> Result<Vec<(String, String, String)>, String> {
    let at = support::text_at;
    Ok(support::active_targets(addr)?
        .iter()
        .map(|t| {
            (
                at(t, "/labels/instance"),
                at(t, "/health"),
                at(t, "/lastError"),
            )
        })
        .collect())
}

/// Series with samples in the last 5 minutes whose latest sample is not a
/// staleness marker, for `selector` (through `/federate`, which skips stale series).
fn live_series(addr: &str, selector: &str) -> Result<Vec<String>, String> {
    let path = format!("/federate?match[]={}", support::enc(selector));
    let r = support::get(addr, &path).map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("federate answered {}: {}", r.status, r.body));
    }
    Ok(r.body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[test]
fn issue_2_and_5_real_ray_cluster_is_scraped_queried_and_a_leaving_node_goes_stale() {
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut ray = RayCluster::start_head(&[("RAY_PROMETHEUS_HOST", format!("http://{addr}"))]);
    let yml = ray.prometheus_yml();

    let data = TempDir::new("data");
    let _raymon = support::start_raymon(
        &[
            format!("--config.file={}", yml.display()),
            format!("--storage.tsdb.path={}", data.path().display()),
            format!("--web.listen-address={addr}"),
        ],
        &data.path().join("raymon.log"),
    );

    let worker_port = support::free_port();
    ray.add_worker(worker_port);
    let worker_instance_suffix = format!(":{worker_port}");

    // Head agent, autoscaler, dashboard and the worker's agent: all up
    // within two scrape intervals (Ray's is 10 s) of appearing.
    let started = Instant::now();
    // A worker node on a loaded 2-core machine can take well over a minute
    // to join; the failure text says whether Ray or raymon was behind.
    let up = support::wait_for(Duration::from_secs(180), "4 targets up", || {
        let t = targets(&addr)?;
        let all_up = t.len() == 4 && t.iter().all(|(_, h, _)| h == "up");
        if all_up {
            Ok(t)
        } else {
            Err(format!(
                "{t:?}; Ray's discovery file: {}; worker log: {}",
                ray.discovery_file(),
                ray.log_tail(&format!("worker-{worker_port}.log"))
            ))
        }
    });
    assert!(
        up.iter()
            .any(|(i, _, _)| i.ends_with(&worker_instance_suffix))
    );
    assert!(
        up.iter()
            .any(|(i, _, _)| i.ends_with(&format!(":{}", ray.metrics_port)))
    );
    eprintln!("all 4 targets up after {:?}", started.elapsed());

    let ray_series = live_series(&addr, r#"{__name__=~"ray_.+"}"#).unwrap();
    assert!(
        ray_series.len() > 50,
        "expected many ray_* series, got {}",
        ray_series.len()
    );
    // Ray names the node by its address: 127.0.0.1 in the test namespace,
    // the host's address elsewhere.
    let worker_instance = up
        .iter()
        .map(|(i, _, _)| i.clone())
        .find(|i| i.ends_with(&worker_instance_suffix))
        .unwrap();
    let worker_sel = format!(r#"{{instance="{worker_instance}"}}"#);
    let worker_live = support::wait_for(Duration::from_secs(30), "worker series", || {
        let s = live_series(&addr, &worker_sel)?;
        if s.len() > 10 {
            Ok(s.len())
        } else {
            Err(format!("{} series", s.len()))
        }
    });
    eprintln!("worker node has {worker_live} live series");

    // Ray's dashboard probes its Prometheus with `query=vector(1)`, unencoded
    // (issue 5), and its data page runs a 1h:1s subquery.
    let health = support::wait_for(Duration::from_secs(30), "Ray's prometheus_health", || {
        let r = support::get(
            &format!("127.0.0.1:{}", ray.dashboard_port),
            "/api/prometheus_health",
        )
        .map_err(|e| e.to_string())?;
        if r.status == 200 {
            Ok(r.json())
        } else {
            Err(format!("{} {}", r.status, r.body))
        }
    });
    assert_eq!(health["result"], serde_json::json!(true), "{health}");
    let session = std::fs::read_link(ray.temp.path().join("session_latest")).unwrap();
    let session = session.file_name().unwrap().to_string_lossy().to_string();
    let q = format!(
        "max_over_time(sum(ray_node_mem_used{{SessionName='{session}'}}) by (instance)[1h:1s])"
    );
    // Ray's reporter exports node memory a few seconds after the node's
    // other series: wait for its first scrape.
    support::wait_for(Duration::from_secs(30), "the 1h:1s subquery", || {
        let r = support::get(&addr, &format!("/api/v1/query?query={}", support::enc(&q)))
            .map_err(|e| e.to_string())?;
        let v = r.json();
        if v["status"] != "success" {
            return Err(format!("{v}"));
        }
        match v["data"]["result"].as_array() {
            Some(a) if !a.is_empty() => Ok(()),
            _ => Err(format!("{v}")),
        }
    });

    // Stop the worker node's raylet, as a node leaving does.
    let stopped = Instant::now();
    let _ = Command::new("pkill")
        .args(["-TERM", "-f", &format!("metrics_export_port={worker_port}")])
        .status();
    support::wait_for(Duration::from_secs(15), "worker series to go stale", || {
        let s = live_series(&addr, &worker_sel)?;
        if s.is_empty() {
            Ok(())
        } else {
            Err(format!("{} live series", s.len()))
        }
    });
    eprintln!(
        "worker series stale {:?} after its raylet stopped",
        stopped.elapsed()
    );
    let t = targets(&addr).unwrap();
    assert!(
        !t.iter()
            .any(|(i, _, _)| i.ends_with(&worker_instance_suffix)),
        "worker target still listed: {t:?}"
    );
    // The head's series are untouched.
    assert!(
        !live_series(&addr, r#"{__name__=~"ray_.+"}"#)
            .unwrap()
            .is_empty()
    );
}

/// Targets as (instance, health, `__meta_url`).
fn sd_targets(addr: &str) -> Result<Vec<(String, String, String)>, String> {
    let at = support::text_at;
    Ok(support::active_targets(addr)?
        .iter()
        .map(|t| {
            (
                at(t, "/labels/instance"),
                at(t, "/health"),
                at(t, "/discoveredLabels/__meta_url"),
            )
        })
        .collect())
}

#[test]
fn issue_19_http_sd_on_rays_dashboard_follows_a_node_that_joins_and_leaves() {
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Ray's token authentication, on: the dashboard then wants
    // `Authorization: Bearer <token>`, which raymon sends from a file.
    let mut rng = support::Rng::seeded("issue_19_http_sd_on_rays_dashboard", 19);
    let token: String = (0..4).map(|_| format!("{:016x}", rng.next())).collect();
    let auth_env = [
        ("RAY_AUTH_MODE", "token".to_string()),
        ("RAY_AUTH_TOKEN", token.clone()),
    ];
    let mut ray = RayCluster::start_head(&auth_env);
    let data = TempDir::new("data-http-sd");
    let sd_url = format!("http://127.0.0.1:{}/api/prometheus/sd", ray.dashboard_port);
    std::fs::write(data.path().join("ray-token"), &token).unwrap();
    // No file from Ray's session directory: only the dashboard's endpoint,
    // as on a node where the head's files are not visible.
    let cfg = data.path().join("raymon.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n  - job_name: ray\n    http_sd_configs:\n      - url: {sd_url}\n        refresh_interval: 2s\n        authorization: {{credentials_file: ray-token}}\n"
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", support::free_port());
    let _raymon = support::start_raymon(
        &[
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", data.path().display()),
            format!("--web.listen-address={addr}"),
        ],
        &data.path().join("raymon.log"),
    );
    let all_up = |ray: &RayCluster, n: usize, what: &str| {
        support::wait_for(Duration::from_secs(180), what, || {
            let t = sd_targets(&addr)?;
            if t.len() == n && t.iter().all(|(_, h, u)| h == "up" && *u == sd_url) {
                Ok(t)
            } else {
                let log =
                    std::fs::read_to_string(data.path().join("raymon.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                let sd = support::get(
                    &format!("127.0.0.1:{}", ray.dashboard_port),
                    "/api/prometheus/sd",
                )
                .map(|r| format!("{} {}", r.status, r.body))
                .unwrap_or_else(|e| e.to_string());
                Err(format!(
                    "{t:?}; raymon log: {tail:?}; Ray's sd answers: {sd}"
                ))
            }
        })
    };
    // The head's node exporter, autoscaler and dashboard.
    let started = Instant::now();
    let head = all_up(&ray, 3, "the head's 3 targets up");
    assert!(
        head.iter()
            .any(|(i, _, _)| i.ends_with(&format!(":{}", ray.metrics_port)))
    );
    eprintln!("head's targets up after {:?}", started.elapsed());

    let worker_port = support::free_port();
    let joined = Instant::now();
    ray.add_worker_with_env(worker_port, &auth_env);
    let with_worker = all_up(&ray, 4, "the joining node's target up");
    assert!(
        with_worker
            .iter()
            .any(|(i, _, _)| i.ends_with(&format!(":{worker_port}")))
    );
    eprintln!(
        "joining node scraped {:?} after ray start",
        joined.elapsed()
    );

    // The node leaves as `ray stop` ends it: its raylet gets SIGTERM.
    let left = Instant::now();
    let _ = Command::new("pkill")
        .args(["-TERM", "-f", &format!("metrics_export_port={worker_port}")])
        .status();
    let after = all_up(&ray, 3, "the leaving node's target gone");
    assert!(
        !after
            .iter()
            .any(|(i, _, _)| i.ends_with(&format!(":{worker_port}")))
    );
    eprintln!(
        "left node dropped {:?} after its raylet stopped",
        left.elapsed()
    );
}
