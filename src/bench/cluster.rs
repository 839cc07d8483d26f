//! The simulated Ray cluster: N loopback HTTP listeners in one process, each
//! answering like a Ray metrics exporter with the bodies of
//! [`super::exposition`], plus a control listener that reports when every
//! request arrived (to measure scrape intervals on the target side) and how
//! many samples were served.
//!
//! It writes Ray's file_sd JSON (one group, `{"job": "ray"}`) into its work
//! directory, then the control address, so the parent knows it is up. The
//! HTTP handling is a minimal HTTP/1.1 responder: GET only, keep-alive, no
//! gzip. It knows nothing of collectors or measurements.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::Error;
use super::exposition::{BodyFormat, Shape, TargetExposition};

/// The file_sd file the targets write, in the work directory.
pub const SD_FILE: &str = "prom_metrics_service_discovery.json";
/// Holds `host:port` of the control listener once all listeners are up.
pub const CONTROL_FILE: &str = "control.addr";

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    pub targets: usize,
    pub shape: Shape,
    /// Values change once per interval.
    pub interval: Duration,
    pub dir: PathBuf,
}

/// What the control listener reports at `GET /stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Unix time of the process's start, in milliseconds.
    pub start_unix_ms: u64,
    pub targets: Vec<TargetStats>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetStats {
    /// When each request arrived, in microseconds since the start.
    pub arrivals_us: Vec<u64>,
    /// Sample lines served in all bodies.
    pub samples: u64,
    /// Series in the latest body.
    pub series: usize,
}

struct Target {
    expo: TargetExposition,
    arrivals_us: Vec<u64>,
    samples: u64,
}

struct Shared {
    targets: Vec<Mutex<Target>>,
    start: Instant,
    start_unix_ms: u64,
    interval: Duration,
}

/// Serves the cluster until `cancel`.
pub async fn serve(opts: Options, cancel: CancellationToken) -> Result<(), Error> {
    let start = Instant::now();
    let start_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut listeners = Vec::with_capacity(opts.targets);
    let mut addrs = Vec::with_capacity(opts.targets);
    for _ in 0..opts.targets {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| Error::io("bind a target listener", source))?;
        addrs.push(
            l.local_addr()
                .map_err(|source| Error::io("read a listener address", source))?
                .to_string(),
        );
        listeners.push(l);
    }
    let control = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| Error::io("bind the control listener", source))?;
    let control_addr = control
        .local_addr()
        .map_err(|source| Error::io("read a listener address", source))?;

    let shared = Arc::new(Shared {
        targets: (0..opts.targets)
            .map(|i| {
                Mutex::new(Target {
                    expo: TargetExposition::new(opts.shape, i),
                    arrivals_us: Vec::new(),
                    samples: 0,
                })
            })
            .collect(),
        start,
        start_unix_ms,
        interval: opts.interval.max(Duration::from_millis(1)),
    });

    // Made if missing, as Prometheus makes its storage path.
    std::fs::create_dir_all(&opts.dir).map_err(|e| {
        Error::Setup(format!(
            "cannot create directory {}: {e}",
            opts.dir.display()
        ))
    })?;
    write_sd_file(&opts.dir, &addrs)?;
    write_atomic(
        &opts.dir.join(CONTROL_FILE),
        control_addr.to_string().as_bytes(),
    )?;

    for (i, l) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = cancel.cancelled() => return,
                    c = l.accept() => c,
                };
                if let Ok((stream, _)) = conn {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_target(stream, i, shared.clone()));
                }
            }
        });
    }
    loop {
        let conn = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            c = control.accept() => c,
        };
        if let Ok((stream, _)) = conn {
            tokio::spawn(serve_control(stream, shared.clone()));
        }
    }
}

/// Ray's file_sd content: `json.dumps` with default separators and no
/// trailing newline, replaced atomically.
pub fn write_sd_file(dir: &Path, addrs: &[String]) -> Result<(), Error> {
    let targets: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    let body = format!(
        "[{{\"labels\": {{\"job\": \"ray\"}}, \"targets\": [{}]}}]",
        targets.join(", ")
    );
    write_atomic(&dir.join(SD_FILE), body.as_bytes())
}

fn write_atomic(path: &Path, body: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)
        .map_err(|e| Error::Setup(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        Error::Setup(format!(
            "cannot rename {} to {}: {e}",
            tmp.display(),
            path.display()
        ))
    })
}

/// Reads one request head; returns the `Accept` value and the path, or
/// `None` at the end of the connection.
async fn read_request(r: &mut BufReader<TcpStream>, line: &mut String) -> Option<(String, String)> {
    line.clear();
    if r.read_line(line).await.ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut accept = String::new();
    loop {
        line.clear();
        if r.read_line(line).await.ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.trim().eq_ignore_ascii_case("accept")
        {
            accept = v.trim().to_string();
        }
    }
    Some((accept, path))
}

async fn serve_target(stream: TcpStream, i: usize, shared: Arc<Shared>) {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    let mut head = Vec::new();
    while let Some((accept, _path)) = read_request(&mut r, &mut line).await {
        let now = shared.start.elapsed();
        let format = BodyFormat::from_accept(&accept);
        let period = (now.as_nanos() / shared.interval.as_nanos()) as u64;
        if let Ok(mut t) = shared.targets[i].lock() {
            t.arrivals_us.push(now.as_micros() as u64);
            t.expo.advance_to(period);
            t.expo.render(format, &mut body);
            t.samples += t.expo.series() as u64;
        }
        head.clear();
        head.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: ");
        head.extend_from_slice(format.content_type().as_bytes());
        head.extend_from_slice(b"\r\nContent-Length: ");
        head.extend_from_slice(body.len().to_string().as_bytes());
        head.extend_from_slice(b"\r\n\r\n");
        let w = r.get_mut();
        if w.write_all(&head).await.is_err() || w.write_all(&body).await.is_err() {
            return;
        }
    }
}

async fn serve_control(stream: TcpStream, shared: Arc<Shared>) {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    if read_request(&mut r, &mut line).await.is_none() {
        return;
    }
    let stats = Stats {
        start_unix_ms: shared.start_unix_ms,
        targets: shared
            .targets
            .iter()
            .map(|t| match t.lock() {
                Ok(t) => TargetStats {
                    arrivals_us: t.arrivals_us.clone(),
                    samples: t.samples,
                    series: t.expo.series(),
                },
                Err(_) => TargetStats::default(),
            })
            .collect(),
    };
    let body = serde_json::to_vec(&stats).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let w = r.get_mut();
    let _ = w.write_all(head.as_bytes()).await;
    let _ = w.write_all(&body).await;
    let _ = w.shutdown().await;
}
