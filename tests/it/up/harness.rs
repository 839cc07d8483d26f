//! Helpers for the tests that run `raymon up`: the `Up` child in its own
//! process group, stand-in directories, leftovers cleanup, and checks of
//! what a running stack serves.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{self, KillOnDrop, TempDir};

pub(super) fn stand_ins() -> PathBuf {
    support::manifest_dir().join("tests/data/stand-ins")
}

/// A `raymon up` child in its own process group, stdout and stderr in files.
pub(crate) struct Up {
    pub(super) child: KillOnDrop,
    pub(super) out: PathBuf,
    pub(super) err: PathBuf,
}

impl Up {
    pub(crate) fn start(args: &[String], env: &[(&str, String)], dir: &Path) -> Up {
        let out = dir.join("up.out");
        let err = dir.join("up.err");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raymon"));
        cmd.arg("up")
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .stdin(Stdio::null())
            .env_remove("JUPYTERHUB_SERVICE_PREFIX")
            .env_remove("SCRATCH")
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Up {
            child: KillOnDrop(cmd.spawn().unwrap()),
            out,
            err,
        }
    }

    pub(super) fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub(crate) fn wait_up(&mut self, timeout: Duration) -> String {
        support::wait_for(timeout, "raymon up to print its URLs", || {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!("raymon up exited ({status}):\n{}", self.stderr());
            }
            let s = self.stdout();
            if s.contains("Stop with") {
                Ok(s)
            } else {
                Err(self.stderr().lines().last().unwrap_or("").to_string())
            }
        })
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        support::wait_for(timeout, "raymon up to exit", || {
            match self.child.0.try_wait() {
                Ok(Some(s)) => Ok(s),
                _ => Err(self.stderr().lines().last().unwrap_or("").to_string()),
            }
        })
    }
}

pub(crate) fn down(data: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args(["down", &format!("--data-dir={}", data.display())])
        .output()
        .unwrap()
}

pub(super) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

pub(super) fn recorded(path: &Path) -> serde_json::Value {
    support::wait_for(Duration::from_secs(20), "the stand-in's record", || {
        std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    })
}

/// A Ray temp dir as Ray leaves it: `session_latest` pointing at a session
/// with generated dashboards.
pub(super) fn fake_ray_temp(dir: &Path) -> PathBuf {
    let temp = dir.join("ray");
    let session = temp.join("session_2026-11-26_00-00-00_000000_1");
    let dashboards = session.join("metrics/grafana/dashboards");
    std::fs::create_dir_all(&dashboards).unwrap();
    let from = support::fixtures_dir().join("ray/session_latest/metrics/grafana/dashboards");
    for name in [
        "default_grafana_dashboard.json",
        "serve_grafana_dashboard.json",
    ] {
        std::fs::copy(from.join(name), dashboards.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(&session, temp.join("session_latest")).unwrap();
    temp
}

/// Kills whatever a failed real-Ray test left behind: every PID `up`
/// recorded, and stragglers naming the temp dir.
pub(crate) struct Leftovers {
    pub(crate) data: PathBuf,
    pub(crate) temp: PathBuf,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let state = std::fs::read_to_string(self.data.join("raymon-up.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<raymon::launcher::supervisor::State>(&s).ok());
        for p in state.iter().flat_map(|s| &s.pids).filter(|p| p.alive()) {
            let _ = Command::new("kill")
                .args(["-KILL", &p.pid.to_string()])
                .status();
        }
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.temp.display().to_string()])
            .status();
    }
}

pub(super) fn processes_naming(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && alive(*pid))
        .filter_map(|pid| {
            let c = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            c.contains(needle).then_some((pid, c))
        })
        .collect()
}

/// Targets raymon scrapes, as `instance` labels.
pub(super) fn target_instances(addr: &str) -> Result<Vec<String>, String> {
    let r = support::get(addr, "/api/v1/targets").map_err(|e| e.to_string())?;
    let v = r.json();
    Ok(v["data"]["activeTargets"]
        .as_array()
        .ok_or("no activeTargets")?
        .iter()
        .map(|t| t["labels"]["instance"].as_str().unwrap_or("").to_string())
        .collect())
}

/// The file the `shifterimg` stand-in reads its pulled images from, holding
/// the default image.
pub(super) fn pulled(dir: &Path) -> String {
    let path = dir.join("pulled-images");
    std::fs::write(&path, "docker:grafana/grafana-oss:9.4.3\n").unwrap();
    path.display().to_string()
}

/// Makes `dir` unwritable even for root (tests may run as root, for whom
/// mode bits do not count): mode 0555, and the immutable attribute when
/// that is not enough. Undone on drop.
pub(super) struct Unwritable(PathBuf);

impl Unwritable {
    pub(super) fn new(dir: &Path) -> Unwritable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let writable = |d: &Path| {
            let p = d.join(".probe");
            let ok = std::fs::write(&p, b"").is_ok();
            let _ = std::fs::remove_file(&p);
            ok
        };
        if writable(dir) {
            let _ = Command::new("chattr").arg("+i").arg(dir).status();
        }
        assert!(!writable(dir), "cannot make {} unwritable", dir.display());
        Unwritable(dir.to_path_buf())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

/// Stand-ins for shifter and shifterimg only (no `grafana` beside them).
pub(super) fn shifter_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for n in ["shifter", "shifterimg"] {
        let _ = std::os::unix::fs::symlink(stand_ins().join(n), bin.join(n));
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `up`'s output once it exited: it failed, said why in one line, and
/// started nothing (no collector, no child, no state file).
pub(super) fn refused_before_start(up: &mut Up, data: &Path) -> String {
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "{}", up.stderr());
    let err = up.stderr();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("Error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(!err.contains("Caused by"), "{err}");
    assert!(!err.contains("collector ready"), "{err}");
    assert!(!data.join("logs").exists(), "{err}");
    assert!(!data.join("raymon-up.json").exists(), "{err}");
    errors[0].to_string()
}

/// `up` with real Ray and a Grafana stand-in run as `mode` says: Ray's own
/// backend finds both Grafana and raymon healthy. Returns what the stand-in
/// recorded.
pub(super) fn real_ray_with_grafana(mode: &str) -> serde_json::Value {
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new(&format!("rg{}", &mode[..1]));
    let data = tmp.path().join("d");
    let temp = tmp.path().join("r");
    let _leftovers = Leftovers {
        data: data.clone(),
        temp: temp.clone(),
    };
    let record = tmp.path().join("record.json");
    let (rport, dport, gport, gcs) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let mut args = vec![
        format!("--grafana={mode}"),
        format!("--grafana-listen-address=127.0.0.1:{gport}"),
        format!("--data-dir={}", data.display()),
        format!("--ray-temp-dir={}", temp.display()),
        format!("--ray-bin={}", support::ray_bin().display()),
        format!("--web.listen-address=127.0.0.1:{rport}"),
        format!("--dashboard-port={dport}"),
        "--ready-timeout=240s".into(),
    ];
    let mut env = vec![
        ("AUTOSCALER_METRIC_PORT", support::free_port().to_string()),
        ("DASHBOARD_METRIC_PORT", support::free_port().to_string()),
        ("RAY_USAGE_STATS_ENABLED", "0".into()),
        ("RAYMON_STANDIN_RECORD", record.display().to_string()),
    ];
    if mode == "shifter" {
        env.push(("PATH", shifter_path(tmp.path())));
        env.push(("RAYMON_STANDIN_SHIFTER_IMAGES", pulled(tmp.path())));
    } else {
        args.push(format!(
            "--grafana-bin={}",
            stand_ins().join("grafana").display()
        ));
    }
    args.extend([
        "--".into(),
        format!("--port={gcs}"),
        "--num-cpus=1".into(),
        "--dashboard-host=127.0.0.1".into(),
        "--disable-usage-stats".into(),
    ]);
    let mut up = Up::start(&args, &env, tmp.path());
    let stdout = up.wait_up(Duration::from_secs(300));
    assert!(
        stdout.contains(&format!("Grafana:        http://127.0.0.1:{gport}\n")),
        "{stdout}"
    );
    let dashboard = format!("127.0.0.1:{dport}");
    let r = support::get(&dashboard, "/api/grafana_health").unwrap();
    assert_eq!(r.json()["result"], true, "{}", r.body);
    // Ray's probe of raymon answers once raymon has been asked `vector(1)`;
    // nothing else needs to have been scraped.
    let r = support::get(&dashboard, "/api/prometheus_health").unwrap();
    assert_eq!(r.json()["result"], true, "{}", r.body);
    let rec = recorded(&record);
    // Why `up`'s default temp dir sits in a closed directory of the user's.
    assert_eq!(mode_of(&temp), 0o777, "Ray opens its temp dir to everyone");
    assert!(down(&data).status.success());
    assert!(up.wait_exit(Duration::from_secs(30)).success());
    assert!(processes_naming(&temp.display().to_string()).is_empty());
    rec
}

/// The status of `GET path` on `addr`, with an `Authorization` header when
/// given (`support::get` sends none).
pub(super) fn status_with(addr: &str, path: &str, authorization: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut head = String::new();
    let _ = s.read_to_string(&mut head);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

pub(super) fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
