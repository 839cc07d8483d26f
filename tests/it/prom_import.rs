//! `raymon import --from-prometheus` against a real Prometheus 2.42: it
//! scrapes simulated Ray targets (`raymon bench-targets`) with 20-second
//! blocks until several blocks were cut and the WAL was checkpointed, is
//! stopped (SIGTERM, and in a second instance `kill -9`), and the import of
//! its directory must give every series exactly the samples Prometheus
//! answered for a raw range selector over the whole span. A copy with two
//! damaged blocks must import everything but those blocks, and a running
//! Prometheus's directory is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, KillOnDrop, TempDir, enc, free_port, start_raymon, wait_for};

/// Every series' raw samples: metric JSON (keys sorted) to (time in ms,
/// value bits). Values are compared as the floats they denote, not as
/// text: the store is under test here, not float formatting.
type Answer = BTreeMap<String, Vec<(i64, u64)>>;

const QUERY: &str = "{__name__=~\".+\"}[1h]";

fn start_prometheus(
    dir: &Path,
    name: &str,
    sd_file: &Path,
    lockfile: bool,
) -> (KillOnDrop, String) {
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ray\n    file_sd_configs:\n      - files: ['{}']\n",
            sd_file.display()
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join(name).display()))
        .arg(format!("--web.listen-address={addr}"))
        // Hidden flags: a block every 20 s instead of every 2 h.
        .arg("--storage.tsdb.min-block-duration=20s")
        .arg("--storage.tsdb.max-block-duration=1m")
        // delete_series, to leave tombstones in blocks and the WAL.
        .arg("--web.enable-admin-api");
    if lockfile {
        // Upstream's default; Debian's build needs the flag.
        cmd.arg("--storage.tsdb.use-lockfile");
    }
    let child = cmd
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("prometheus is not installed: run scripts/setup-deps");
    (KillOnDrop(child), addr)
}

/// Block directories with (min time, max time), oldest first.
fn blocks(data: &Path) -> Vec<(PathBuf, i64, i64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(data) else {
        return out;
    };
    for e in rd.filter_map(Result::ok) {
        let meta = e.path().join("meta.json");
        if let Ok(text) = std::fs::read_to_string(&meta) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            out.push((
                e.path(),
                v["minTime"].as_i64().unwrap(),
                v["maxTime"].as_i64().unwrap(),
            ));
        }
    }
    out.sort_by_key(|b| b.1);
    out
}

fn has_checkpoint(data: &Path) -> bool {
    std::fs::read_dir(data.join("wal")).is_ok_and(|rd| {
        rd.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint."))
    })
}

fn raw_all(addr: &str, t_ms: i64) -> Answer {
    let path = format!(
        "/api/v1/query?query={}&time={}.{:03}",
        enc(QUERY),
        t_ms / 1000,
        t_ms % 1000
    );
    let r = support::get(addr, &path).unwrap();
    assert_eq!(r.status, 200, "{addr}: {}", r.body);
    let v = r.json();
    let mut out = Answer::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let key = serde_json::to_string(&s["metric"]).unwrap();
        let samples = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                let v: f64 = p[1].as_str().unwrap().parse().unwrap();
                (t, v.to_bits())
            })
            .collect();
        out.insert(key, samples);
    }
    out
}

fn count(a: &Answer) -> usize {
    a.values().map(Vec::len).sum()
}

/// Runs the import; returns whether it succeeded and its output.
fn import(from: &Path, to: &Path) -> (bool, String) {
    let out = Command::new(support::raymon_bin())
        .args(["import", "--from-prometheus"])
        .arg(from)
        .arg("--storage.tsdb.path")
        .arg(to)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), text)
}

/// Serves the imported store and asks it the same question.
fn raymon_answer(dir: &Path, store: &Path, t_ms: i64) -> Answer {
    let cfg = dir.join("empty.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let name = store.file_name().unwrap().to_string_lossy().into_owned();
    let _p = start_raymon(
        &[
            "serve".into(),
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", store.display()),
            format!("--web.listen-address={addr}"),
        ],
        &dir.join(format!("{name}-serve.log")),
    );
    wait_for(
        Duration::from_secs(60),
        "raymon ready",
        || match support::get(&addr, "/-/ready") {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("status {}", r.status)),
            Err(e) => Err(e.to_string()),
        },
    );
    raw_all(&addr, t_ms)
}

/// Panics with the first differences, if any.
fn assert_same(what: &str, want: &Answer, got: &Answer) {
    let mut problems = Vec::new();
    for (k, w) in want {
        match got.get(k) {
            None => problems.push(format!("missing series {k}")),
            Some(g) if g != w => {
                let extra: Vec<_> = g.iter().filter(|s| !w.contains(s)).take(3).collect();
                let lost: Vec<_> = w.iter().filter(|s| !g.contains(s)).take(3).collect();
                problems.push(format!(
                    "{k}: {} samples, want {}; extra {extra:?}, missing {lost:?}",
                    g.len(),
                    w.len()
                ));
            }
            Some(_) => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        problems.push(format!("unexpected series {k}"));
    }
    assert!(
        problems.is_empty(),
        "{what}: {} of {} series differ; first: {:#?}",
        problems.len(),
        want.len(),
        &problems[..problems.len().min(5)]
    );
}

fn samples_done(out: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("done: "))
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    line["done: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn issue_19_import_from_prometheus_matches_its_answers() {
    let tmp = TempDir::new("promimp");
    let dir = tmp.path();
    let tg = dir.join("tg");
    std::fs::create_dir_all(&tg).unwrap();
    let _targets = start_raymon(
        &[
            "bench-targets".into(),
            "--targets=4".into(),
            "--series-per-target=150".into(),
            "--interval=1s".into(),
            format!("--dir={}", tg.display()),
        ],
        &dir.join("targets.log"),
    );
    let sd = tg.join("prom_metrics_service_discovery.json");
    wait_for(Duration::from_secs(30), "the simulated targets", || {
        if tg.join("control.addr").exists() {
            Ok(())
        } else {
            Err("no control address yet".into())
        }
    });
    let (mut term, term_addr) = start_prometheus(dir, "term", &sd, true);
    let (mut killed, killed_addr) = start_prometheus(dir, "killed", &sd, false);
    let (term_data, killed_data) = (dir.join("term"), dir.join("killed"));

    // Three blocks and a checkpoint: the head was compacted and the WAL
    // truncated several times (each truncation starts a new segment).
    let started = Instant::now();
    wait_for(
        Duration::from_secs(300),
        "blocks and a WAL checkpoint",
        || {
            let st: Vec<(usize, bool)> = [&term_data, &killed_data]
                .iter()
                .map(|d| (blocks(d).len(), has_checkpoint(d)))
                .collect();
            if st.iter().all(|&(b, c)| b >= 3 && c) {
                Ok(())
            } else {
                Err(format!("(blocks, checkpoint) so far: {st:?}"))
            }
        },
    );
    eprintln!(
        "blocks and checkpoints after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // A running Prometheus's directory is refused, whether it holds its
    // lock file or (Debian's default) has none.
    for data in [&term_data, &killed_data] {
        let to = dir.join("refused");
        let (ok, out) = import(data, &to);
        assert!(
            !ok,
            "import of a running Prometheus's directory succeeded:\n{out}"
        );
        assert!(out.contains("is in use by a running Prometheus"), "{out}");
        assert!(!to.exists(), "the refused import created its store");
    }

    // Tombstones: one metric deleted over a span that covers a block's
    // end and the head, another over everything until 2 s ago. (A span
    // reaching into the future would also hide later samples after a
    // restart but not before it, when Prometheus re-creates the series.)
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bl = blocks(&term_data);
    let deleted_until = (now_s as i64 - 2) * 1000;
    for (m, start) in [
        ("scrape_duration_seconds", bl[1].1 / 1000 + 5),
        ("scrape_samples_scraped", 0),
    ] {
        let path = format!(
            "/api/v1/admin/tsdb/delete_series?match[]={m}&start={start}&end={}",
            now_s - 2
        );
        let r = support::http("POST", &term_addr, &path, None).unwrap();
        assert_eq!(r.status, 204, "delete_series: {}", r.body);
    }
    let t_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let term_want = raw_all(&term_addr, t_ms);
    let killed_want = raw_all(&killed_addr, t_ms);
    term.terminate(Duration::from_secs(30));
    let _ = killed.0.kill();
    let _ = killed.0.wait();
    let kept_before = |name: &str, t: i64| {
        term_want
            .iter()
            .filter(|(k, _)| k.contains(name))
            .flat_map(|(_, v)| v.iter())
            .any(|s| s.0 <= t)
    };
    assert!(!kept_before("scrape_samples_scraped", deleted_until));
    assert!(kept_before("scrape_duration_seconds", deleted_until));
    for (name, want) in [("term", &term_want), ("killed", &killed_want)] {
        eprintln!(
            "{name}: Prometheus answered {} series, {} samples",
            want.len(),
            count(want)
        );
        assert!(
            want.len() > 600 && count(want) > 30_000,
            "{name}: too little data"
        );
    }
    assert!(killed_data.join("wal").read_dir().unwrap().next().is_some());

    for (name, data, want) in [
        ("term", &term_data, &term_want),
        ("killed", &killed_data, &killed_want),
    ] {
        let n_blocks = blocks(data).len();
        assert!(n_blocks >= 3, "{name}: {n_blocks} blocks");
        let store = dir.join(format!("{name}-raymon"));
        let (ok, out) = import(data, &store);
        eprintln!("{name} import:\n{out}");
        assert!(ok, "{name}: import failed:\n{out}");
        assert!(!out.contains("skipped"), "{name}: {out}");
        assert!(
            out.contains(&format!("from {n_blocks} blocks")),
            "{name}: {out}"
        );
        assert!(samples_done(&out) >= count(want) as u64);
        let got = raymon_answer(dir, &store, t_ms);
        assert_same(name, want, &got);
    }

    // Two damaged blocks: a chunk file cut short, and one with a flipped
    // byte. Both are reported and skipped; everything else is imported.
    let damaged = dir.join("damaged");
    copy_dir(&term_data, &damaged);
    let bl = blocks(&damaged);
    let cut = bl[0].0.join("chunks/000001");
    let len = std::fs::metadata(&cut).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&cut).unwrap();
    f.set_len(len - 20).unwrap();
    let flip = bl[1].0.join("chunks/000001");
    let mut bytes = std::fs::read(&flip).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&flip, &bytes).unwrap();
    let store = dir.join("damaged-raymon");
    let (ok, out) = import(&damaged, &store);
    eprintln!("damaged import:\n{out}");
    assert!(ok, "import with damaged blocks failed:\n{out}");
    for b in &bl[..2] {
        let ulid = b.0.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            out.contains(&format!("skipped block {ulid}: ")),
            "{ulid} not reported:\n{out}"
        );
    }
    assert!(
        out.contains(&format!("from {} blocks", bl.len() - 2)),
        "{out}"
    );
    let gone = |t: i64| bl[..2].iter().any(|b| b.1 <= t && t < b.2);
    let mut want = Answer::new();
    for (k, v) in &term_want {
        let kept: Vec<_> = v.iter().filter(|s| !gone(s.0)).cloned().collect();
        if !kept.is_empty() {
            want.insert(k.clone(), kept);
        }
    }
    assert!(count(&want) < count(&term_want));
    let got = raymon_answer(dir, &store, t_ms);
    assert_same("damaged", &want, &got);
}
