//! Helpers of the end-to-end tests of `raymon up`, `down` and `env`
//! (`up_run`, `up_shared_node`, `notebook`): a `raymon up` child, the
//! stand-ins, what a failed test leaves behind, the credentials a client
//! uses. The plans themselves (URLs, provisioning, command lines) are unit
//! tests in `src/launcher/tests.rs`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{self, KillOnDrop};
pub(crate) use crate::wire::{basic_auth, ini_value};

pub(crate) fn stand_ins() -> PathBuf {
    support::manifest_dir().join("tests/data/stand-ins")
}

/// A `raymon up` child in its own process group, stdout and stderr in files.
pub(crate) struct Up {
    pub(crate) child: KillOnDrop,
    out: PathBuf,
    err: PathBuf,
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
            .env("HOME", support::ray_home())
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

    pub(crate) fn stdout(&self) -> String {
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

pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

pub(crate) fn recorded(path: &Path) -> serde_json::Value {
    support::wait_for(Duration::from_secs(20), "the stand-in's record", || {
        std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    })
}

/// A Ray temp dir as Ray leaves it: `session_latest` pointing at a session
/// with generated dashboards.
pub(crate) fn fake_ray_temp(dir: &Path) -> PathBuf {
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
        let state = up_state(&self.data).unwrap_or_default();
        for (pid, _) in recorded_pids(&state).into_iter().filter(still_running) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.temp.display().to_string()])
            .status();
    }
}

pub(crate) fn processes_naming(needle: &str) -> Vec<(u32, String)> {
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

/// The file the `shifterimg` stand-in reads its pulled images from, holding
/// the default image.
pub(crate) fn pulled(dir: &Path) -> String {
    let path = dir.join("pulled-images");
    std::fs::write(&path, "docker:grafana/grafana-oss:9.4.3\n").unwrap();
    path.display().to_string()
}

/// Makes `dir` unwritable even for root (tests may run as root, for whom
/// mode bits do not count): mode 0555, and the immutable attribute when
/// that is not enough. Undone on drop.
pub(crate) struct Unwritable(PathBuf);

impl Unwritable {
    pub(crate) fn new(dir: &Path) -> Unwritable {
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
pub(crate) fn shifter_path(dir: &Path) -> String {
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
pub(crate) fn refused_before_start(up: &mut Up, data: &Path) -> String {
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

/// The status of `GET path` on `addr`, with an `Authorization` header when
/// given (`support::get` sends none).
pub(crate) fn status_with(addr: &str, path: &str, authorization: Option<&str>) -> u16 {
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

pub(crate) fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `raymon status --format json` for a data dir, and whether it exited 0.
pub(crate) fn status_json(data: &Path) -> (serde_json::Value, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args([
            "status",
            "--format=json",
            &format!("--data-dir={}", data.display()),
        ])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (v, out.status.success())
}

/// `host:port` of an `http://host:port[/]` URL.
pub(crate) fn host_port(url: &serde_json::Value) -> String {
    let u = url.as_str().unwrap();
    u.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// `raymon-up.json`, the state `up` records for `down` and `status`.
pub(crate) fn up_state(data: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(data.join("raymon-up.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Every process the state names: `(pid, start time in clock ticks)`.
pub(crate) fn recorded_pids(state: &serde_json::Value) -> Vec<(u32, u64)> {
    let as_id = |p: &serde_json::Value| Some((p["pid"].as_u64()? as u32, p["start"].as_u64()?));
    state["pids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(as_id)
        .collect()
}

/// The PID of the child `up` recorded under `name` (`"ray"`, `"grafana"`).
pub(crate) fn child_pid(state: &serde_json::Value, name: &str) -> Option<u32> {
    state["children"]
        .as_array()?
        .iter()
        .find(|c| c[0] == name)
        .and_then(|c| c[1]["pid"].as_u64())
        .map(|p| p as u32)
}

/// Whether a recorded `(pid, start)` is still that process, not a later
/// one with the same PID, and not a zombie.
pub(crate) fn still_running(&(pid, start): &(u32, u64)) -> bool {
    started_at(pid) == Some(start) && alive(pid)
}

/// When process `pid` started (`/proc/<pid>/stat` field 22).
fn started_at(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The credentials `up` keeps in the data dir (`credentials.json`), as a
/// user reads them: `{"raymon": {"user", "password"}, "grafana_admin": ...}`.
pub(crate) fn credentials(data: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(data.join("credentials.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `(user, password)` of one login in [`credentials`] (`"raymon"`,
/// `"grafana_admin"`).
pub(crate) fn login(creds: &serde_json::Value, who: &str) -> (String, String) {
    let field = |k: &str| creds[who][k].as_str().unwrap().to_string();
    (field("user"), field("password"))
}

/// The `Authorization` header raymon's API takes for `login` of the data
/// dir's credentials (basic auth, as Grafana and Ray send it).
pub(crate) fn authorization(creds: &serde_json::Value, who: &str) -> String {
    let (user, password) = login(creds, who);
    basic_auth(&user, &password)
}
