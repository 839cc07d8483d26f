//! Issue 20: raymon forwarding what it scrapes through `remote_write`, to
//! real receivers (VictoriaMetrics and Prometheus 2.42 with
//! `--web.enable-remote-write-receiver`) and to a receiver in this file that
//! misbehaves on purpose. What raymon stored is compared series by series
//! with what each receiver holds (raymon's raw range selector against
//! VictoriaMetrics' `/api/v1/export` and Prometheus's raw range selector).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::prompb::now_ms;
use crate::support::{self, KillOnDrop, TempDir, enc, free_port, start_raymon, wait_for};

/// Samples by series (sorted `name=value` pairs, comma-joined): time in ms
/// and value.
type Samples = BTreeMap<String, Vec<(i64, f64)>>;

/// The simulated Ray cluster (`raymon bench-targets`), stable series.
pub struct Targets {
    pub dir: TempDir,
    _proc: KillOnDrop,
}

impl Targets {
    pub fn start(targets: usize, series: usize) -> Targets {
        let dir = TempDir::new("rwq-targets");
        let child = std::process::Command::new(support::raymon_bin())
            .args(["bench-targets", "--targets", &targets.to_string()])
            .args(["--series-per-target", &series.to_string()])
            .args(["--interval", "1s", "--churn", "0"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = Targets {
            _proc: KillOnDrop(child),
            dir,
        };
        wait_for(Duration::from_secs(30), "simulated targets", || {
            if t.dir.path().join("control.addr").exists() {
                Ok(())
            } else {
                Err("no control.addr yet".into())
            }
        });
        t
    }

    pub fn sd_file(&self) -> PathBuf {
        self.dir.path().join("prom_metrics_service_discovery.json")
    }
}

/// A raymon config scraping `targets` every second and writing to each URL
/// with `extra` added to every remote_write section.
pub fn raymon_config(sd_file: &Path, replica: &str, urls: &[String], extra: &str) -> String {
    let mut s = format!(
        "global:\n  scrape_interval: 1s\n  external_labels:\n    sender: {replica}\n\
         scrape_configs:\n  - job_name: ray\n    file_sd_configs:\n      - files: ['{}']\n",
        sd_file.display()
    );
    if !urls.is_empty() {
        s.push_str("remote_write:\n");
        for u in urls {
            s.push_str(&format!(
                "  - url: {u}\n    queue_config:\n      batch_send_deadline: 1s\n      max_backoff: 2s\n{extra}"
            ));
        }
    }
    s
}

pub fn raymon_args(dir: &Path, cfg: &Path, addr: &str, more: &[&str]) -> Vec<String> {
    let mut v = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address={addr}"),
    ];
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

pub fn wait_ready(addr: &str, what: &str) {
    wait_for(Duration::from_secs(60), what, || {
        match support::get(addr, "/-/ready") {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("status {}", r.status)),
            Err(e) => Err(e.to_string()),
        }
    });
}

/// The value of a self-metric line that starts with `prefix` (name and
/// labels up to where the value starts), summed over matching lines.
pub fn metric(addr: &str, prefix: &str) -> f64 {
    let body = support::get(addr, "/metrics")
        .map(|r| r.body)
        .unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn key(metric: &serde_json::Map<String, serde_json::Value>, drop: &str) -> String {
    let mut pairs: Vec<(String, String)> = metric
        .iter()
        .filter(|(k, _)| k.as_str() != drop)
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn ms(t: &serde_json::Value) -> i64 {
    (t.as_f64().unwrap() * 1000.0).round() as i64
}

/// A raw range selector `{sel}[range]` at `at_ms`, from a Prometheus API.
pub fn range_selector(addr: &str, sel: &str, at_ms: i64, range_s: i64, drop: &str) -> Samples {
    let q = format!("{sel}[{range_s}s]");
    let path = format!(
        "/api/v1/query?query={}&time={}.{:03}",
        enc(&q),
        at_ms / 1000,
        at_ms % 1000
    );
    let r = support::get(addr, &path).unwrap();
    let j = r.json();
    assert_eq!(j["status"], "success", "{q}: {}", r.body);
    let mut out = Samples::new();
    for s in j["data"]["result"].as_array().unwrap() {
        let k = key(s["metric"].as_object().unwrap(), drop);
        let v = out.entry(k).or_default();
        for p in s["values"].as_array().unwrap() {
            v.push((ms(&p[0]), p[1].as_str().unwrap().parse().unwrap()));
        }
    }
    out
}

/// VictoriaMetrics' `/api/v1/export` of `sel` in `(from_ms, to_ms]`,
/// without staleness markers (a raw range selector has none either).
pub fn vm_export(addr: &str, sel: &str, from_ms: i64, to_ms: i64, drop: &str) -> Samples {
    let _ = support::get(addr, "/internal/force_flush");
    let path = format!(
        "/api/v1/export?match[]={}&start={}&end={}",
        enc(sel),
        from_ms / 1000 - 1,
        to_ms / 1000 + 1
    );
    let r = support::get(addr, &path).unwrap();
    let mut out = Samples::new();
    for line in r.body.lines().filter(|l| !l.trim().is_empty()) {
        let j: serde_json::Value = serde_json::from_str(line).unwrap();
        let k = key(j["metric"].as_object().unwrap(), drop);
        let v = out.entry(k).or_default();
        let ts = j["timestamps"].as_array().unwrap();
        let vs = j["values"].as_array().unwrap();
        for (t, x) in ts.iter().zip(vs) {
            let t = t.as_i64().unwrap();
            let x = match x {
                serde_json::Value::Number(n) => n.as_f64().unwrap(),
                other => other.as_str().unwrap_or("NaN").parse().unwrap_or(f64::NAN),
            };
            if t > from_ms && t <= to_ms && !x.is_nan() {
                v.push((t, x));
            }
        }
    }
    out.retain(|_, v| !v.is_empty());
    out
}

/// Sorts and removes exact repeats (a sample sent twice, before and after
/// a restart, is the same sample).
fn normalise(mut s: Samples) -> Samples {
    for v in s.values_mut() {
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        v.dedup_by(|a, b| a.0 == b.0 && a.1.to_bits() == b.1.to_bits());
    }
    s
}

/// What `want` has that `got` lacks or holds differently (values within
/// 1e-12 relative: VictoriaMetrics stores decimals), and what `got` has
/// beyond `want`; empty when they agree.
pub fn differences(want: &Samples, got: &Samples) -> Vec<String> {
    let (want, got) = (normalise(want.clone()), normalise(got.clone()));
    let mut out = Vec::new();
    for (k, w) in &want {
        let Some(g) = got.get(k) else {
            out.push(format!("missing series {k} ({} samples)", w.len()));
            continue;
        };
        let gm: BTreeMap<i64, f64> = g.iter().copied().collect();
        for &(t, v) in w {
            match gm.get(&t) {
                None => out.push(format!("{k}: missing sample at {t}")),
                Some(&x) if (x - v).abs() > 1e-12 * v.abs().max(1.0) => {
                    out.push(format!("{k}: at {t} {x} instead of {v}"))
                }
                _ => {}
            }
        }
        if g.iter()
            .map(|s| s.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            != g.len()
        {
            out.push(format!("{k}: two values for one timestamp"));
        }
        let wt: std::collections::BTreeSet<i64> = w.iter().map(|s| s.0).collect();
        for &(t, _) in g {
            if !wt.contains(&t) {
                out.push(format!("{k}: extra sample at {t}"));
            }
        }
    }
    for k in got.keys() {
        if !want.contains_key(k) {
            out.push(format!("extra series {k}"));
        }
    }
    out
}

fn total(s: &Samples) -> usize {
    s.values().map(Vec::len).sum()
}

/// A receiver that can be stopped and started again on the same port and
/// data directory.
pub struct Receiver {
    pub kind: &'static str,
    pub addr: String,
    dir: PathBuf,
    proc: Option<KillOnDrop>,
}

impl Receiver {
    pub fn new(kind: &'static str, dir: &Path) -> Receiver {
        let dir = dir.join(kind);
        std::fs::create_dir_all(&dir).unwrap();
        Receiver {
            kind,
            addr: format!("127.0.0.1:{}", free_port()),
            dir,
            proc: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let mut cmd = if self.kind == "victoria-metrics" {
            let mut c = std::process::Command::new("victoria-metrics");
            c.arg(format!(
                "-storageDataPath={}",
                self.dir.join("data").display()
            ))
            .arg(format!("-httpListenAddr={}", self.addr))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s");
            c
        } else {
            let cfg = self.dir.join("prometheus.yml");
            std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
            let mut c = std::process::Command::new("prometheus");
            c.arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    self.dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={}", self.addr))
                .arg("--web.enable-remote-write-receiver");
            c
        };
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} is not installed (scripts/setup-deps): {e}", self.kind));
        self.proc = Some(KillOnDrop(child));
        let path = if self.kind == "victoria-metrics" {
            "/health"
        } else {
            "/-/ready"
        };
        let addr = self.addr.clone();
        wait_for(Duration::from_secs(60), self.kind, || {
            match support::get(&addr, path) {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("status {}", r.status)),
                Err(e) => Err(e.to_string()),
            }
        });
    }

    /// Stops it the way an operator would (SIGTERM), so that what it
    /// acknowledged is on its disk.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(Duration::from_secs(30));
        }
    }

    /// What it holds of `replica`'s series in `(to - range, to]`.
    pub fn samples(&self, replica: &str, to_ms: i64, range_s: i64) -> Samples {
        let sel = format!("{{job=\"ray\",sender=\"{replica}\"}}");
        if self.kind == "victoria-metrics" {
            vm_export(&self.addr, &sel, to_ms - range_s * 1000, to_ms, "sender")
        } else {
            range_selector(&self.addr, &sel, to_ms, range_s, "sender")
        }
    }
}

/// Waits until every receiver holds exactly what the raymon at `addr`
/// stored in the window, or fails with the differences.
fn assert_receivers_match(
    raymon: &str,
    replica: &str,
    receivers: &[&Receiver],
    to_ms: i64,
    range_s: i64,
) {
    let want = range_selector(raymon, "{job=\"ray\"}", to_ms, range_s, "");
    assert!(
        total(&want) > 1000,
        "too few samples to compare: {}",
        total(&want)
    );
    for r in receivers {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got = r.samples(replica, to_ms, range_s);
            let diff = differences(&want, &got);
            if diff.is_empty() {
                eprintln!(
                    "{} holds all {} samples of {} series that raymon {replica} stored",
                    r.kind,
                    total(&want),
                    want.len()
                );
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} differs from raymon {replica} ({} differences, {} samples wanted, {} held): {:?}",
                    r.kind,
                    diff.len(),
                    total(&want),
                    total(&got),
                    &diff[..diff.len().min(20)]
                );
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

/// Both receivers go away for 60 s while two raymons scrape the same
/// cluster: `a` runs throughout, `b` is killed with SIGKILL 20 s into the
/// outage and started again 10 s later. Once the receivers are back and
/// the queues caught up, each receiver holds every sample each raymon
/// stored, compared series by series.
#[test]
fn issue_20_receiver_outage_and_kill_9_lose_no_sample() {
    let dir = TempDir::new("rwq-outage");
    let targets = Targets::start(4, 40);
    let mut vm = Receiver::new("victoria-metrics", dir.path());
    let mut prom = Receiver::new("prometheus", dir.path());
    vm.start();
    prom.start();
    let urls = [vm.url(), prom.url()];
    let mut raymons = Vec::new();
    for replica in ["a", "b"] {
        let rdir = dir.path().join(replica);
        std::fs::create_dir_all(&rdir).unwrap();
        let cfg = rdir.join("raymon.yml");
        std::fs::write(&cfg, raymon_config(&targets.sd_file(), replica, &urls, "")).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let args = raymon_args(&rdir, &cfg, &addr, &[]);
        let p = start_raymon(&args, &rdir.join("raymon.log"));
        wait_ready(&addr, "raymon");
        raymons.push((replica, addr, args, rdir, p));
    }
    let began = now_ms();
    std::thread::sleep(Duration::from_secs(10));
    let sent_before = metric(&raymons[0].1, "prometheus_remote_storage_samples_total{");
    assert!(sent_before > 0.0, "nothing was sent before the outage");

    vm.stop();
    prom.stop();
    let outage = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    // SIGKILL: no flush, no final position, no checkpoint.
    let (_, _, args_b, dir_b, mut proc_b) = raymons.pop().unwrap();
    proc_b.0.kill().unwrap();
    proc_b.0.wait().unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let addr_b = args_b[2]
        .trim_start_matches("--web.listen-address=")
        .to_string();
    let proc_b = start_raymon(&args_b, &dir_b.join("raymon-2.log"));
    wait_ready(&addr_b, "raymon b after kill -9");
    std::thread::sleep(Duration::from_secs(60).saturating_sub(outage.elapsed()));
    vm.start();
    prom.start();
    let back = now_ms();

    let retried = metric(
        &raymons[0].1,
        "prometheus_remote_storage_samples_retried_total{",
    );
    assert!(retried > 0.0, "the outage should have made raymon retry");
    // Ten more seconds of normal running, then the comparison covers
    // everything from the first scrape to then.
    std::thread::sleep(Duration::from_secs(10));
    let to = now_ms();
    let range_s = (to - began) / 1000 + 30;
    assert!(to - back > 5_000);
    let (_, addr_a, ..) = &raymons[0];
    assert_receivers_match(addr_a, "a", &[&vm, &prom], to, range_s);
    assert_receivers_match(&addr_b, "b", &[&vm, &prom], to, range_s);
    // Nothing was refused for good, nothing dropped.
    for addr in [addr_a.as_str(), addr_b.as_str()] {
        assert_eq!(
            metric(addr, "prometheus_remote_storage_samples_failed_total{"),
            0.0
        );
        assert_eq!(
            metric(addr, "prometheus_remote_storage_samples_dropped_total{"),
            0.0
        );
    }
    drop(proc_b);
}

// ------------------------------------------------ a receiver that misbehaves

/// How the fake receiver answers.
const OK: u8 = 0;
const E500: u8 = 1;
const E429: u8 = 2;
const E400: u8 = 3;
const GARBAGE: u8 = 4;
const HANG: u8 = 5;

/// One request the fake receiver saw.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    mode: u8,
    /// (series key, t, value bits) of every sample.
    samples: Vec<(String, i64, u64)>,
}

struct Fake {
    addr: String,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// One HTTP/1.1 request's body from a keep-alive connection (by its
/// `Content-Length`), or `None` once the client closes it.
pub(crate) fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())?;
    while buf.len() < head_end + len {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Some(buf[head_end..head_end + len].to_vec())
}

impl Fake {
    fn start() -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let mode = Arc::new(AtomicU8::new(OK));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (m, sn) = (mode.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let (m, sn) = (m.clone(), sn.clone());
                std::thread::spawn(move || {
                    while let Some(body) = read_request(&mut s) {
                        let mode = m.load(Ordering::SeqCst);
                        let req = crate::prompb::decode(&body);
                        let samples = req
                            .timeseries
                            .iter()
                            .flat_map(|ts| {
                                let mut ls: Vec<String> = ts
                                    .labels
                                    .iter()
                                    .filter(|l| l.name != "sender")
                                    .map(|l| format!("{}={}", l.name, l.value))
                                    .collect();
                                ls.sort();
                                let k = ls.join(",");
                                ts.samples
                                    .iter()
                                    .map(move |x| (k.clone(), x.timestamp, x.value.to_bits()))
                            })
                            .collect();
                        // Metadata-only requests (`metadata_config`) are
                        // answered but not kept: only batches of samples are
                        // retried and compared here.
                        if !req.timeseries.is_empty() {
                            sn.lock().unwrap().push(Seen {
                                at: Instant::now(),
                                mode,
                                samples,
                            });
                        }
                        let answer: &[u8] = match mode {
                            OK => b"HTTP/1.1 204 No Content\r\n\r\n",
                            E500 => b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nboom\n",
                            E429 => b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 5\r\n\r\nslow\n",
                            E400 => b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nbad\n",
                            GARBAGE => b"\x00\x01garbage that is no HTTP\r\n\r\n",
                            _ => {
                                // Hang: never answer, keep the connection.
                                std::thread::sleep(Duration::from_secs(120));
                                return;
                            }
                        };
                        if s.write_all(answer).is_err() || mode == GARBAGE {
                            return;
                        }
                    }
                });
            }
        });
        Fake { addr, mode, seen }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A receiver that answers 500, 429 with `Retry-After`, 400, bytes that are
/// no HTTP, or nothing at all: 500, garbage and hanging (cut at
/// `remote_timeout`) are retried with backoff, 429 waits `Retry-After`,
/// 400 drops the batch for good; each is counted in Prometheus's
/// self-metrics, and scraping goes on at its interval throughout.
#[test]
fn issue_20_misbehaving_receiver_is_retried_throttled_dropped_and_timed_out() {
    let dir = TempDir::new("rwq-faults");
    let targets = Targets::start(2, 20);
    let fake = Fake::start();
    let cfg = dir.path().join("raymon.yml");
    let extra = "      max_shards: 1\n      retry_on_http_429: true\n      min_backoff: 100ms\n    remote_timeout: 2s\n";
    let url = format!("http://{}/api/v1/write", fake.addr);
    std::fs::write(&cfg, raymon_config(&targets.sd_file(), "f", &[url], extra)).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let _raymon = start_raymon(
        &raymon_args(dir.path(), &cfg, &addr, &[]),
        &dir.path().join("raymon.log"),
    );
    wait_ready(&addr, "raymon");
    let began = now_ms();
    let m = |name: &str| metric(&addr, &format!("prometheus_remote_storage_{name}{{"));
    std::thread::sleep(Duration::from_secs(4));
    assert!(m("samples_total") > 0.0);

    let mode_window = |mode: u8, secs: u64| {
        let from = Instant::now();
        fake.set(mode);
        std::thread::sleep(Duration::from_secs(secs));
        (from, Instant::now())
    };
    let retried0 = m("samples_retried_total");
    let w500 = mode_window(E500, 4);
    let retried500 = m("samples_retried_total");
    assert!(retried500 > retried0, "500 must be retried");
    let w429 = mode_window(E429, 7);
    let retried429 = m("samples_retried_total");
    assert!(
        retried429 > retried500,
        "429 must be retried when retry_on_http_429 is set"
    );
    let failed0 = m("samples_failed_total");
    let w400 = mode_window(E400, 4);
    let failed400 = m("samples_failed_total");
    assert!(failed400 > failed0, "400 must count failed samples");
    let wgarbage = mode_window(GARBAGE, 4);
    let retried_g = m("samples_retried_total");
    assert!(retried_g > retried429, "a garbage answer must be retried");
    let whang = mode_window(HANG, 7);
    let retried_h = m("samples_retried_total");
    assert!(
        retried_h > retried_g,
        "a hanging receiver must be timed out and retried"
    );
    fake.set(OK);
    std::thread::sleep(Duration::from_secs(8));

    let seen = fake.seen();
    let within = |w: (Instant, Instant), mode: u8| -> Vec<Seen> {
        seen.iter()
            .filter(|s| s.mode == mode && s.at >= w.0 && s.at <= w.1)
            .cloned()
            .collect()
    };
    // 500: several attempts of the same batch, with backoff between them.
    let r500 = within(w500, E500);
    assert!(r500.len() >= 3, "500 attempts: {}", r500.len());
    assert_eq!(
        r500[0].samples, r500[1].samples,
        "a retry sends the same batch"
    );
    // 429: the same batch again no sooner than Retry-After.
    let r429 = within(w429, E429);
    assert!(r429.len() >= 2, "429 attempts: {}", r429.len());
    for p in r429.windows(2) {
        let gap = p[1].at - p[0].at;
        assert!(
            gap >= Duration::from_millis(2900),
            "429 retried after {gap:?}, Retry-After was 3 s"
        );
        assert_eq!(p[0].samples, p[1].samples);
    }
    // 400: batches are not sent again, each request carries new samples.
    let r400 = within(w400, E400);
    assert!(r400.len() >= 2, "400 requests: {}", r400.len());
    for p in r400.windows(2) {
        assert_ne!(
            p[0].samples, p[1].samples,
            "a refused batch must not be retried"
        );
    }
    // Counted as failed: every refused batch but perhaps the last, whose
    // answer may have come after the counter was read.
    let refused_n: usize = r400[..r400.len() - 1].iter().map(|s| s.samples.len()).sum();
    assert!(
        failed400 - failed0 >= refused_n as f64,
        "failed {} < refused {refused_n}",
        failed400 - failed0
    );
    // Garbage and hanging: retried, the hanging one only after the 2 s
    // remote_timeout.
    assert!(within(wgarbage, GARBAGE).len() >= 2);
    let rh = within(whang, HANG);
    assert!(rh.len() >= 2, "hanging attempts: {}", rh.len());
    for p in rh.windows(2) {
        assert!(
            p[1].at - p[0].at >= Duration::from_millis(1900),
            "a hanging request was cut before remote_timeout"
        );
    }

    // Every sample raymon stored reached the receiver in an accepted
    // request, except the ones refused with 400.
    let to = now_ms() - 6_000;
    let range_s = (to - began) / 1000 + 10;
    let want = range_selector(&addr, "{job=\"ray\"}", to, range_s, "");
    let mut accepted: Samples = Samples::new();
    let mut refused = std::collections::HashSet::new();
    for s in &seen {
        for (k, t, v) in &s.samples {
            if s.mode == OK {
                accepted
                    .entry(k.clone())
                    .or_default()
                    .push((*t, f64::from_bits(*v)));
            } else if s.mode == E400 {
                refused.insert((k.clone(), *t));
            }
        }
    }
    let mut missing = Vec::new();
    for (k, w) in &want {
        let got: std::collections::HashSet<i64> = accepted
            .get(k)
            .map(|v| v.iter().map(|s| s.0).collect())
            .unwrap_or_default();
        for (t, _) in w {
            if !got.contains(t) && !refused.contains(&(k.clone(), *t)) {
                let modes: Vec<u8> = seen
                    .iter()
                    .filter(|s| s.samples.iter().any(|x| &x.0 == k && x.1 == *t))
                    .map(|s| s.mode)
                    .collect();
                missing.push(format!("{k} at {t} (seen in modes {modes:?})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} samples neither delivered nor refused with 400 (from {began} to {to}): {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    // Scraping went on at its interval through all of it: no gap in `up`.
    let up = range_selector(&addr, "up", to, range_s, "");
    assert_eq!(up.len(), 2);
    for (k, v) in &up {
        assert!(
            v.len() as i64 >= range_s - 15,
            "{k}: only {} scrapes",
            v.len()
        );
        for p in v.windows(2) {
            assert!(
                p[1].0 - p[0].0 <= 2_500,
                "{k}: a scrape gap of {} ms",
                p[1].0 - p[0].0
            );
        }
        assert!(v.iter().all(|s| s.1 == 1.0));
    }
    eprintln!(
        "retried {retried_h}, failed {failed400}, requests seen {}",
        seen.len()
    );
}

/// Agent mode (`--enable-feature=agent`): every scrape reaches
/// VictoriaMetrics whole (every series of a target at each `up` sample's
/// time), the WAL is truncated as the queue sends it, and the API refuses
/// queries as Prometheus's agent does while status and targets answer.
#[test]
fn issue_20_agent_mode_forwards_every_scrape_and_truncates_its_wal() {
    let dir = TempDir::new("rwq-agent");
    let targets = Targets::start(3, 30);
    let mut vm = Receiver::new("victoria-metrics", dir.path());
    vm.start();
    let cfg = dir.path().join("agent.yml");
    std::fs::write(
        &cfg,
        raymon_config(&targets.sd_file(), "agent", &[vm.url()], ""),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let agent_dir = dir.path().join("agent-data");
    let args = vec![
        format!("--config.file={}", cfg.display()),
        "--enable-feature=agent".to_string(),
        format!("--storage.agent.path={}", agent_dir.display()),
        "--storage.agent.wal-truncate-frequency=3s".to_string(),
        format!("--web.listen-address={addr}"),
    ];
    let mut agent = start_raymon(&args, &dir.path().join("agent.log"));
    wait_ready(&addr, "raymon agent");
    let began = now_ms();

    let r = support::get(&addr, &format!("/api/v1/query?query={}", enc("up"))).unwrap();
    assert_eq!(r.status, 422, "{}", r.body);
    let j = r.json();
    assert_eq!(j["errorType"], "execution");
    assert_eq!(j["error"], "unavailable with Prometheus Agent");
    assert_eq!(
        support::get(&addr, "/api/v1/series?match[]=up")
            .unwrap()
            .status,
        422
    );
    assert_eq!(
        support::get(&addr, "/api/v1/status/buildinfo")
            .unwrap()
            .status,
        200
    );
    assert_eq!(support::get(&addr, "/api/v1/targets").unwrap().status, 200);

    std::thread::sleep(Duration::from_secs(15));
    let active = metric(&addr, "prometheus_agent_active_series");
    assert!(active >= 90.0, "active series: {active}");
    let segs = std::fs::read_dir(agent_dir.join("wal")).unwrap().count();
    assert!(
        segs <= 3,
        "{segs} WAL segments after 15 s of 3 s truncations"
    );
    agent.terminate(Duration::from_secs(30));
    let to = now_ms();

    // Every scrape whole: each target's series at every time `up` has.
    let all = vm_export(&vm.addr, "{job=\"ray\"}", began - 10_000, to, "sender");
    let ups: Vec<(&String, &Vec<(i64, f64)>)> = all
        .iter()
        .filter(|(k, _)| k.contains("__name__=up,"))
        .collect();
    assert_eq!(
        ups.len(),
        3,
        "up series: {:?}",
        all.keys()
            .filter(|k| k.contains("__name__=up"))
            .collect::<Vec<_>>()
    );
    let mut checked = 0;
    for (uk, uv) in ups {
        let inst = uk.split(',').find(|p| p.starts_with("instance=")).unwrap();
        assert!(uv.len() >= 12, "{uk}: {} scrapes", uv.len());
        let series: Vec<&Vec<(i64, f64)>> = all
            .iter()
            .filter(|(k, _)| k.split(',').any(|p| p == inst))
            .map(|(_, v)| v)
            .collect();
        assert!(series.len() > 30);
        for (t, _) in uv {
            for s in &series {
                assert!(
                    s.iter().any(|x| x.0 == *t),
                    "{inst}: a series lacks the scrape at {t}"
                );
                checked += 1;
            }
        }
    }
    eprintln!("agent: {checked} samples checked in VictoriaMetrics");
}

/// Two raymon shards split one simulated cluster with `hashmod`
/// relabeling and write to one VictoriaMetrics: every target's series are
/// there, each from exactly one shard, none twice.
#[test]
fn issue_20_two_shards_write_each_target_once() {
    let dir = TempDir::new("rwq-shards");
    // Random ports: all twelve in one bucket has odds of 1 in 2048.
    let n_targets = 12;
    let targets = Targets::start(n_targets, 20);
    let mut vm = Receiver::new("victoria-metrics", dir.path());
    vm.start();
    let mut shards = Vec::new();
    for i in 0..2 {
        let cfg = dir.path().join(format!("shard{i}.yml"));
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  external_labels:\n    sender: shard{i}\n\
                 scrape_configs:\n  - job_name: ray\n    file_sd_configs:\n      - files: ['{}']\n\
                 \x20   relabel_configs:\n\
                 \x20     - {{source_labels: [__address__], modulus: 2, target_label: __tmp_shard, action: hashmod}}\n\
                 \x20     - {{source_labels: [__tmp_shard], regex: '{i}', action: keep}}\n\
                 remote_write:\n  - url: {}\n    queue_config:\n      batch_send_deadline: 1s\n",
                targets.sd_file().display(),
                vm.url()
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let sdir = dir.path().join(format!("shard{i}"));
        std::fs::create_dir_all(&sdir).unwrap();
        let p = start_raymon(
            &raymon_args(&sdir, &cfg, &addr, &[]),
            &sdir.join("raymon.log"),
        );
        wait_ready(&addr, "shard");
        shards.push((addr, p));
    }
    std::thread::sleep(Duration::from_secs(8));
    let to = now_ms();
    let got = vm_export(&vm.addr, "{job=\"ray\"}", to - 60_000, to, "");
    // instance -> (senders, series)
    let mut by_instance: BTreeMap<String, (std::collections::BTreeSet<String>, usize)> =
        BTreeMap::new();
    for k in got.keys() {
        let part = |name: &str| {
            k.split(',')
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .unwrap_or("")
                .to_string()
        };
        let e = by_instance.entry(part("instance")).or_default();
        e.0.insert(part("sender"));
        e.1 += 1;
    }
    assert_eq!(
        by_instance.len(),
        n_targets,
        "targets in VictoriaMetrics: {:?}",
        by_instance.keys()
    );
    for (inst, (senders, series)) in &by_instance {
        assert_eq!(senders.len(), 1, "{inst} came from {senders:?}");
        assert!(*series > 20, "{inst}: {series} series");
    }
    // Each shard scraped some, and what each stored is what it sent.
    for (i, (addr, _)) in shards.iter().enumerate() {
        let n = by_instance
            .values()
            .filter(|(s, _)| s.contains(&format!("shard{i}")))
            .count();
        assert!(n > 0 && n < n_targets, "shard{i} has {n} targets");
        let local = range_selector(addr, "up", to, 60, "");
        assert_eq!(
            local.len(),
            n,
            "shard{i} scrapes {} targets locally",
            local.len()
        );
    }
}
