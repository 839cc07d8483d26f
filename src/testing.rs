//! Helpers for the unit tests inside `src` (compiled only for `cargo test`):
//! the repo's fixtures, a scratch directory, a child process killed on
//! drop, a plain HTTP client, polling, percent-encoding for query strings
//! and a seeded RNG.
//! They mirror `tests/it/support.rs`, which the integration tests use and
//! which the library cannot import.

pub(crate) mod golden;
pub(crate) mod tls;
pub(crate) mod wire;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// The repo's root.
pub(crate) fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Captured Ray and Prometheus data the tests compare against.
pub(crate) fn fixtures_dir() -> PathBuf {
    manifest_dir().join("tests/data/fixtures")
}

/// A fresh directory under the system temp dir, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("rmu-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when dropped.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.0 response.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// `GET` over a fresh connection; `path` is sent as is (unencoded).
pub(crate) fn get(addr: &str, path: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
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
        body: body.to_string(),
    })
}

/// Polls `f` every 200 ms until it returns `Ok`, or panics after `timeout`
/// with `what` and the last state `f` described.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
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
pub(crate) fn enc(s: &str) -> String {
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

/// xorshift64*: deterministic test data without a dependency. Randomised
/// tests take their seed from [`Rng::seeded`], which prints it.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// `RAYMON_TEST_SEED` if set, else `default`; printed either way so a
    /// failure can be replayed.
    pub(crate) fn seeded(test: &str, default: u64) -> Rng {
        let seed = std::env::var("RAYMON_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        println!("{test}: seed {seed} (set RAYMON_TEST_SEED to replay another)");
        Rng(seed.max(1))
    }

    /// [`Rng::seeded`] with the clock as the default, for tests that try
    /// new data on every run.
    pub(crate) fn seeded_by_clock(test: &str) -> Rng {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng::seeded(test, now)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
