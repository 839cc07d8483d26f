//! The notebook recipes of README.md ("From a notebook at NERSC") run as
//! Python scripts with real Ray, as a notebook would run their cells: the
//! cells are read from the README here, so the README and this test cannot
//! drift. Also a driver of Ray Data against a running stack, whose datasets
//! Ray's dashboard shows with raymon's samples.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{self, KillOnDrop, TempDir};
use crate::up::{Leftovers, authorization, credentials, down, host_port, stand_ins, status_json};

/// The ```python blocks of README.md's notebook section, in order.
fn readme_cells() -> Vec<String> {
    let readme = std::fs::read_to_string(support::manifest_dir().join("README.md")).unwrap();
    let start = readme
        .find("\n## From a notebook at NERSC\n")
        .expect("README.md has a section \"From a notebook at NERSC\"");
    let section = &readme[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
    let mut cells = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```python\n") {
        let body = &rest[open + "```python\n".len()..];
        let close = body.find("```").expect("an unclosed ```python block");
        cells.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    cells
}

/// What the test adds after the README's cells: what the notebook's Ray
/// sees, as one line, then a wait until the test closes standard input
/// (a notebook's kernel keeps its Ray while it runs).
const PROBE: &str = r#"
import json as _json, sys as _sys
@ray.remote
def _one():
    return 1
_info = {
    "gcs": ray.get_runtime_context().gcs_address,
    "task": ray.get(_one.remote()),
    "nodes": len([n for n in ray.nodes() if n["Alive"]]),
    "session": ray._private.worker._global_node.session_name,
    "dashboard": ray._private.worker.get_dashboard_url(),
    "env": {k: os.environ.get(k) for k in ("RAY_ADDRESS", "RAY_TMPDIR", "RAY_PROMETHEUS_HOST")},
}
print("PROBE " + _json.dumps(_info), flush=True)
_sys.stdin.read()
"#;

/// A Python process running some of the README's cells and the probe.
struct Notebook {
    child: KillOnDrop,
    lines: mpsc::Receiver<String>,
    dir: PathBuf,
}

impl Notebook {
    fn start(cells: &[String], dir: &Path, env: &[(&str, String)]) -> Notebook {
        let script = dir.join("notebook.py");
        std::fs::write(&script, format!("{}\n{PROBE}", cells.join("\n"))).unwrap();
        let python = support::ray_bin().with_file_name("python");
        let mut cmd = Command::new(python);
        cmd.arg("-u")
            .arg(&script)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("notebook.err")).unwrap());
        for k in [
            "JUPYTERHUB_SERVICE_PREFIX",
            "RAYMON_DATA_DIR",
            "RAY_ADDRESS",
            "RAY_TMPDIR",
            "TMPDIR",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Notebook {
            child: KillOnDrop(child),
            lines,
            dir: dir.to_path_buf(),
        }
    }

    fn failure(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "notebook stderr:\n{}\nraymon-up.log:\n{}",
            read("notebook.err"),
            read("raymon-up.log")
        )
    }

    /// The probe's line, once the cells have run.
    fn probe(&mut self, timeout: Duration) -> serde_json::Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.lines.recv_timeout(Duration::from_millis(500)) {
                Ok(line) => {
                    if let Some(json) = line.strip_prefix("PROBE ") {
                        return serde_json::from_str(json).unwrap();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the notebook stopped:\n{}", self.failure())
                }
            }
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!("the notebook exited ({status}):\n{}", self.failure());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no probe after {timeout:?}:\n{}",
                self.failure()
            );
        }
    }

    /// Closes standard input: the script ends, and with it a Ray that
    /// `ray.init()` started.
    fn finish(mut self) {
        drop(self.child.0.stdin.take());
        let status = support::wait_for(Duration::from_secs(60), "the notebook to exit", || {
            self.child.0.try_wait().unwrap().ok_or_else(String::new)
        });
        assert!(status.success(), "{}", self.failure());
    }
}

/// `GET path` on `addr` with an `Authorization` header (none when empty):
/// status and body.
fn get_with(addr: &str, path: &str, authorization: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = match authorization {
        "" => String::new(),
        a => format!("Authorization: {a}\r\n"),
    };
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

/// Waits until raymon (as `status` names it, with the data dir's
/// credentials) holds samples of Ray's own metrics from `session`.
fn wait_scraped(status: &serde_json::Value, data: &Path, session: &str) {
    let authorization = authorization(&credentials(data), "raymon");
    let raymon = host_port(&status["raymon_url"]);
    let query = support::enc(&format!(
        "count({{__name__=~\"ray_.+\",SessionName=\"{session}\"}})"
    ));
    support::wait_for(Duration::from_secs(90), "raymon to scrape Ray", || {
        let (code, body) = get_with(
            &raymon,
            &format!("/api/v1/query?query={query}"),
            &authorization,
        );
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{code} {e}"))?;
        let n = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0);
        if code == 200 && n > 0.0 {
            Ok(())
        } else {
            Err(format!("{code}: {body}"))
        }
    });
}

/// Ray's own checks of raymon and Grafana, as its dashboard answers them.
/// A dashboard that wants Ray's token (`ray.init()` turns token auth on for
/// the clusters it starts) gets the one in `home`.
fn assert_healthy(dashboard: &str, home: &Path) {
    let token = std::fs::read_to_string(home.join(".ray/auth_token"))
        .map_or(String::new(), |t| format!("Bearer {}", t.trim()));
    for probe in ["/api/prometheus_health", "/api/grafana_health"] {
        let (code, body) = get_with(dashboard, probe, &token);
        assert_eq!(code, 200, "{probe}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["result"], true, "{probe}: {body}");
    }
}

/// Both recipes of the README, one after the other on one node (as one
/// user): `raymon up` from a cell and `ray.init(address="auto")`; then
/// `raymon env`, the notebook's own `ray.init()` and `raymon up --attach`.
/// Each time the notebook's Ray is the one raymon watches, Ray's dashboard
/// finds raymon and Grafana healthy, and raymon holds Ray's samples.
#[test]
fn issue_17_readme_notebook_recipes_run_with_real_ray() {
    let cells = readme_cells();
    assert_eq!(cells.len(), 4, "two recipes of two cells: {cells:#?}");
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("nb");
    // The per-user temp dir is under /tmp: a user of this test's own.
    let user = format!("rmnb{}", std::process::id());
    let private = PathBuf::from(format!("/tmp/raymon-{user}"));
    let temp = private.join("ray");
    let data = tmp.path().join("raymon");
    // Dropped in reverse: what runs is killed before its files go.
    let _private = TempDir(private.clone());
    let _leftovers = Leftovers {
        data: data.clone(),
        temp: temp.clone(),
    };
    // `raymon`, and a Grafana for `--grafana auto` to find, on PATH.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_raymon"), bin.join("raymon")).unwrap();
    std::os::unix::fs::symlink(stand_ins().join("grafana"), bin.join("grafana")).unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        support::ray_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // A HOME of its own: the notebook's `ray.init()` writes Ray's token there.
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = [
        ("PATH", path),
        ("HOME", home.display().to_string()),
        ("SCRATCH", tmp.path().display().to_string()),
        ("USER", user.clone()),
        ("RAY_USAGE_STATS_ENABLED", "0".to_string()),
    ];

    // Recipe 1: `raymon up` from a cell, then `ray.init(address="auto")`.
    let dir = tmp.path().join("one");
    std::fs::create_dir_all(&dir).unwrap();
    let mut nb = Notebook::start(&cells[..2], &dir, &env);
    let probe = nb.probe(Duration::from_secs(300));
    let (status, running) = status_json(&data);
    assert!(running, "{status}");
    assert_eq!(probe["nodes"], 1, "{probe}");
    assert_eq!(probe["task"], 1, "{probe}");
    // The Ray `up` started, found through `raymon env`.
    let address = status["ray_address"].as_str().unwrap();
    assert_eq!(probe["gcs"], address, "{probe}\n{status}");
    assert_eq!(probe["env"]["RAY_ADDRESS"], address);
    assert_eq!(probe["env"]["RAY_PROMETHEUS_HOST"], status["raymon_url"]);
    assert_eq!(probe["env"]["RAY_TMPDIR"], private.display().to_string());
    assert_eq!(status["ray_temp_dir"], temp.display().to_string());
    assert_healthy(&host_port(&status["ray_dashboard_url"]), &home);
    wait_scraped(&status, &data, probe["session"].as_str().unwrap());
    assert!(down(&data).status.success());
    nb.finish();
    assert!(
        !temp.join("ray_current_cluster").exists(),
        "the address of a stopped Ray stays for the next ray.init()"
    );

    // Recipe 2: `raymon env`, the notebook's own `ray.init()`, then
    // `raymon up --attach`, which takes the ports `env` gave.
    let dir = tmp.path().join("two");
    std::fs::create_dir_all(&dir).unwrap();
    let mut nb = Notebook::start(&cells[2..], &dir, &env);
    let probe = nb.probe(Duration::from_secs(300));
    let (status, running) = status_json(&data);
    assert!(running, "{status}");
    assert_eq!(probe["nodes"], 1, "{probe}");
    assert!(probe["env"]["RAY_ADDRESS"].is_null(), "{probe}");
    assert_eq!(probe["env"]["RAY_PROMETHEUS_HOST"], status["raymon_url"]);
    assert!(status["ray_address"].is_null(), "{status}");
    // The notebook's Ray put its session where `up --attach` looks.
    let session = probe["session"].as_str().unwrap();
    assert!(temp.join(session).is_dir(), "{probe}");
    assert_healthy(probe["dashboard"].as_str().unwrap(), &home);
    wait_scraped(&status, &data, session);
    assert!(down(&data).status.success());
    nb.finish();
}

/// Runs a Ray Data pipeline as a driver of the Ray that the `up` with this
/// data dir runs (connected through `raymon env`); returns its job id.
pub(crate) fn run_ray_data_job(data: &Path, dir: &Path) -> String {
    let env = Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args([
            "env",
            "--format=json",
            &format!("--data-dir={}", data.display()),
        ])
        .output()
        .unwrap();
    assert!(
        env.status.success(),
        "{}",
        String::from_utf8_lossy(&env.stderr)
    );
    let vars: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&env.stdout).unwrap();
    assert!(vars.contains_key("RAY_ADDRESS"), "{vars:?}");
    let script = dir.join("data_job.py");
    std::fs::write(
        &script,
        "import ray\nray.init(address=\"auto\")\n\
         ray.data.range(1000).map_batches(lambda b: b).materialize()\n\
         print(ray.get_runtime_context().get_job_id())\n",
    )
    .unwrap();
    let out = Command::new(support::ray_bin().with_file_name("python"))
        .arg(&script)
        .envs(vars)
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .env("HOME", support::ray_home())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().unwrap().trim().to_string()
}
