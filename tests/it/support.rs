//! Helpers shared by the integration tests: temp dirs, free ports, a tiny
//! HTTP client over std, child processes that die with the test.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Real Ray processes are heavy and `ray` commands touch shared state: tests
/// that start Ray take this lock.
pub static RAY_LOCK: Mutex<()> = Mutex::new(());

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The data the tests read: Ray's outputs (scrapes, session files,
/// dashboards, queries) and answers recorded from Prometheus 2.42's API.
pub fn fixtures_dir() -> PathBuf {
    manifest_dir().join("tests/data/fixtures")
}

/// Prometheus's own PromQL test scripts (never copied into this repo):
/// `$RAYMON_PROMQL_TESTS`, else `../shared/promql-tests` beside the checkout.
/// None when neither exists; the caller then calls [`skip`].
pub fn promql_tests_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("RAYMON_PROMQL_TESTS") {
        Some(d) => PathBuf::from(d),
        None => manifest_dir().join("../shared/promql-tests"),
    };
    dir.is_dir().then_some(dir)
}

/// Says why a test did not run, in one `skipped: ...` line that shows even
/// when the test harness captures output (written to the process's stderr
/// directly, not through `eprintln!`), so `scripts/test` can count it apart
/// from the tests that passed.
pub fn skip(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// A fresh directory under the system temp dir, removed when dropped.
/// Kept short: Ray puts unix sockets under it (108-byte path limit).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("rm-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then wait up to `grace` before SIGKILL.
    pub fn terminate(&mut self, grace: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The raymon binary under test: `RAYMON_BIN` if set (a release build,
/// for the timing tests), else the one cargo built with the tests.
pub fn raymon_bin() -> PathBuf {
    std::env::var_os("RAYMON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_raymon")))
}

/// Starts the raymon binary with `args`, its output in `log`.
pub fn start_raymon(args: &[String], log: &Path) -> KillOnDrop {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(raymon_bin())
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

/// A plain HTTP/1.0 response.
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET`/`POST` over a fresh connection; `path` is sent as is (unencoded).
pub fn http(method: &str, addr: &str, path: &str, body: Option<&str>) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(b) = body {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Response {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    })
}

pub fn get(addr: &str, path: &str) -> std::io::Result<Response> {
    http("GET", addr, path, None)
}

/// The active targets of `/api/v1/targets`, each as its JSON object.
pub fn active_targets(addr: &str) -> Result<Vec<serde_json::Value>, String> {
    let r = get(addr, "/api/v1/targets").map_err(|e| e.to_string())?;
    match r.json()["data"]["activeTargets"].take() {
        serde_json::Value::Array(a) => Ok(a),
        _ => Err(format!("no activeTargets in {}", r.body)),
    }
}

/// The string at JSON `pointer` in `v` (`/labels/instance`), `""` when absent.
pub fn text_at(v: &serde_json::Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .to_string()
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `timeout`
/// with `what` and the last state `f` described.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}; last: {last}");
}

/// Percent-encodes a query parameter value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `ray` executable: `RAYMON_RAY_BIN`, else `.venv/bin/ray` in the repo
/// (what `scripts/setup-deps` installs).
pub fn ray_bin() -> PathBuf {
    if let Ok(p) = std::env::var("RAYMON_RAY_BIN") {
        return PathBuf::from(p);
    }
    let p = manifest_dir().join(".venv/bin/ray");
    assert!(
        p.exists(),
        "Ray is not installed: run scripts/setup-deps (or set RAYMON_RAY_BIN)"
    );
    p
}

/// The HOME of every Ray the tests start: Ray (2.52 on) turns on token
/// auth for its dashboard when `~/.ray/auth_token` exists, and a local
/// `ray.init()` makes that file, so the real HOME would let any earlier
/// `ray.init()` on the machine decide. Empty, made once per test process.
pub fn ray_home() -> PathBuf {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("rm-home-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        p
    })
    .clone()
}

/// xorshift64*: deterministic test data without a dependency. Randomised
/// tests take their seed from [`Rng::seeded`], which prints it.
pub struct Rng(pub u64);

impl Rng {
    /// `RAYMON_TEST_SEED` if set, else `default`; printed either way so a
    /// failure can be replayed.
    pub fn seeded(test: &str, default: u64) -> Rng {
        let seed = std::env::var("RAYMON_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        println!("{test}: seed {seed} (set RAYMON_TEST_SEED to replay another)");
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A `raymon up` that starts a real Ray head on loopback: free ports for
/// raymon, Ray's dashboard and Ray's GCS, and the flags and environment
/// every such test passes.
pub struct RealRayUp {
    pub raymon_port: u16,
    pub dashboard_port: u16,
    pub gcs_port: u16,
}

impl RealRayUp {
    pub fn new() -> RealRayUp {
        RealRayUp {
            raymon_port: free_port(),
            dashboard_port: free_port(),
            gcs_port: free_port(),
        }
    }

    /// `raymon up`'s arguments: `flags` (Grafana's, auth, ...), the data
    /// and Ray temp directories, the real `ray`, the ports, then Ray's own
    /// flags after `--` (one CPU, dashboard on loopback, no usage stats).
    pub fn args(&self, data: &Path, temp: &Path, flags: &[String]) -> Vec<String> {
        let mut v = flags.to_vec();
        v.extend([
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            format!("--ray-bin={}", ray_bin().display()),
            format!("--web.listen-address=127.0.0.1:{}", self.raymon_port),
            format!("--dashboard-port={}", self.dashboard_port),
            "--ready-timeout=240s".into(),
            "--".into(),
            format!("--port={}", self.gcs_port),
            "--num-cpus=1".into(),
            "--dashboard-host=127.0.0.1".into(),
            "--disable-usage-stats".into(),
        ]);
        v
    }

    /// Free ports for the metrics exporters Ray would otherwise put on
    /// fixed ones, usage stats off, then `extra`.
    pub fn env(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("AUTOSCALER_METRIC_PORT", free_port().to_string()),
            ("DASHBOARD_METRIC_PORT", free_port().to_string()),
            ("RAY_USAGE_STATS_ENABLED", "0".into()),
        ];
        v.extend_from_slice(extra);
        v
    }
}
