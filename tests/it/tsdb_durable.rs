//! Crash and restart of the real binary: scrape a loopback target every
//! 100 ms, `kill -9` at a random moment, restart on the same data directory,
//! and find every sample that a query showed before the kill, bit-exact
//! (values compare as the API's shortest round-trip strings).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{KillOnDrop, TempDir, enc, free_port, get, start_raymon, wait_for};

const SERIES: usize = 1000;

/// Serves `crash_value{i=...}` with values that change on every scrape and
/// use every bit of the mantissa.
fn serve_target(stop: Arc<AtomicBool>) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let scrapes = Arc::new(AtomicU64::new(0));
    let h = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let k = scrapes.fetch_add(1, Ordering::Relaxed);
            let mut body = String::with_capacity(SERIES * 40);
            for i in 0..SERIES {
                let v = (k as f64 + 1.0) / (i as f64 + 3.0) + 1e-9 * i as f64;
                body.push_str(&format!("crash_value{{i=\"{i}\"}} {v:e}\n"));
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (port, h)
}

type Seen = BTreeMap<(String, String), String>;

/// Every raw sample of `crash_value` in the last 10 minutes, keyed by
/// (series, time).
fn samples(addr: &str) -> Result<Seen, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 1.0;
    let q = enc("crash_value[10m]");
    let r = get(addr, &format!("/api/v1/query?query={q}&time={now}")).map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.body));
    }
    let j: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
    let mut out = Seen::new();
    for s in j["data"]["result"].as_array().ok_or("no result")? {
        let i = s["metric"]["i"].as_str().ok_or("no i")?.to_string();
        for p in s["values"].as_array().ok_or("no values")? {
            out.insert(
                (i.clone(), p[0].to_string()),
                p[1].as_str().ok_or("value")?.to_string(),
            );
        }
    }
    Ok(out)
}

fn start(dir: &TempDir, cfg: &std::path::Path, addr: &str, round: usize) -> KillOnDrop {
    start_checkpointing(dir, cfg, addr, round, "1s")
}

/// [`start`] with checkpoints every `every` instead of every second.
fn start_checkpointing(
    dir: &TempDir,
    cfg: &std::path::Path,
    addr: &str,
    round: usize,
    every: &str,
) -> KillOnDrop {
    let args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={addr}"),
        "--log.level=info".to_string(),
        // Chunks close every 0.8 s and move to the chunk store every second
        // or so, so that kills land before, during and after such moves.
        format!("--storage.tsdb.checkpoint-interval={every}"),
        "--storage.tsdb.samples-per-chunk=8".to_string(),
    ];
    start_raymon(&args, &dir.path().join(format!("raymon-{round}.log")))
}

#[test]
fn issue_3_kill_9_loses_no_acknowledged_sample() {
    let dir = TempDir::new("crash");
    let stop = Arc::new(AtomicBool::new(false));
    let (target_port, target) = serve_target(stop.clone());
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\nscrape_configs:\n  - job_name: crash\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut acked = Seen::new();
    let seed = crate::support::Rng::seeded(
        "kill -9 rounds (ingest time per round)",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64,
    )
    .0;
    let rounds = 5;
    for round in 0..rounds {
        let mut child = start(&dir, &cfg, &addr, round);
        // Everything acknowledged before earlier kills is back.
        let back = wait_for(Duration::from_secs(30), "raymon to answer", || {
            samples(&addr).and_then(|s| {
                if acked.is_empty() || !s.is_empty() {
                    Ok(s)
                } else {
                    Err("empty".into())
                }
            })
        });
        let missing: Vec<_> = acked
            .iter()
            .filter(|(k, v)| back.get(*k) != Some(*v))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged samples missing or changed, e.g. {missing:?}",
            acked
                .iter()
                .filter(|(k, v)| back.get(*k) != Some(*v))
                .count(),
            acked.len()
        );
        // Ingest for a random while, reading what the store acknowledged.
        let ms = 1000 + (seed.wrapping_mul(round as u64 + 7) % 1500);
        let until = Instant::now() + Duration::from_millis(ms);
        let mut last = Seen::new();
        let persisted = || {
            let m = get(&addr, "/metrics").unwrap().body;
            let n: f64 = m
                .lines()
                .find_map(|l| l.strip_prefix("raymon_tsdb_persisted_chunks_total "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0);
            (n, m)
        };
        // Round 1 also runs until a checkpoint has moved chunks (its first
        // is due a second after start, seen at the background thread's next
        // one-second tick), so that later kills land after such moves.
        let moved_by = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(s) = samples(&addr) {
                last = s;
            }
            let now = Instant::now();
            if now >= until && (round != 1 || now >= moved_by || persisted().0 > 0.0) {
                break;
            }
        }
        if round == 1 {
            let (n, m) = persisted();
            assert!(n > 0.0, "no chunk reached the chunk store:\n{m}");
        }
        let _ = child.0.kill();
        let _ = child.0.wait();
        let before = acked.len();
        acked.extend(last);
        assert!(
            acked.len() > before,
            "round {round}: no new samples were scraped"
        );
    }
    // A clean shutdown writes a checkpoint; the data survives that too.
    let mut child = start(&dir, &cfg, &addr, rounds);
    wait_for(Duration::from_secs(30), "raymon to answer", || {
        samples(&addr).map(|_| ())
    });
    child.terminate(Duration::from_secs(20));
    let log = std::fs::read_to_string(dir.path().join(format!("raymon-{rounds}.log"))).unwrap();
    assert!(log.contains("storage flushed and closed"), "{log}");
    let _child = start(&dir, &cfg, &addr, rounds + 1);
    let back = wait_for(Duration::from_secs(30), "raymon to answer", || {
        samples(&addr)
    });
    let lost = acked
        .iter()
        .filter(|(k, v)| back.get(*k) != Some(*v))
        .count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} samples lost after a clean restart",
        acked.len()
    );
    eprintln!(
        "crash test: {rounds} kill -9 rounds, {} acknowledged samples all back",
        acked.len()
    );
    stop.store(true, Ordering::Relaxed);
    target.join().unwrap();
}

/// Unmounts on drop.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A real full disk (a 2 MiB tmpfs, where the test may mount one) or, where
/// it may not, a WAL that fails its writes the same way: commits are refused
/// with an error, nothing of them is visible or replayed, queries keep
/// answering, and ingestion resumes once space is back.
#[test]
fn issue_3_a_full_disk_refuses_commits_and_ingestion_resumes() {
    use raymon::model::{Labels, Matcher};
    use raymon::storage::{Appendable, Queryable};
    use raymon::tsdb::{Db, DbOptions};

    let dir = TempDir::new("full");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _unmount = mounted.then(|| Mount(mnt.clone()));
    let data = mnt.join("data");
    let opts = DbOptions {
        retention_ms: 0,
        ..DbOptions::default()
    };
    let (db, _) = Db::open(&data, opts.clone()).unwrap();
    let series =
        |i: usize| Labels::from_pairs([("__name__", "full"), ("i", i.to_string().as_str())]);
    let commit = |db: &Db, k: i64| {
        let mut app = db.head().appender();
        for i in 0..100 {
            app.append(0, &series(i), k * 1000, k as f64 + 0.5).unwrap();
        }
        app.commit()
    };
    for k in 0..10 {
        commit(&db, k).unwrap();
    }
    let filler = mnt.join("filler");
    if mounted {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0u8; 1]);
    } else {
        db.wal().set_fail_writes(true);
    }
    // The last page of the segment may still take a batch or two.
    let mut acked = 10;
    let mut k = 10;
    let err = loop {
        match commit(&db, k) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        k += 1;
        assert!(k < 100, "the disk never filled");
    };
    if mounted {
        assert!(err.to_string().contains("space"), "{err}");
    }
    let mut refused = 1;
    for k in k + 1..k + 10 {
        assert!(commit(&db, k).is_err());
        refused += 1;
    }
    assert_eq!(db.stats().wal_write_failures, refused);
    let k = k + 10;
    let count = |db: &Db| -> usize {
        db.head()
            .querier(i64::MIN, i64::MAX)
            .unwrap()
            .select(&[Matcher::equal("__name__", "full")])
            .unwrap()
            .iter()
            .map(|s| s.samples.len())
            .sum()
    };
    assert_eq!(
        count(&db),
        100 * acked,
        "queries answer; refused batches are invisible"
    );
    if mounted {
        std::fs::remove_file(&filler).unwrap();
    } else {
        db.wal().set_fail_writes(false);
    }
    for k in k..k + 5 {
        commit(&db, k).unwrap();
    }
    assert_eq!(count(&db), 100 * (acked + 5));
    drop(db);
    let (db, st) = Db::open(&data, opts).unwrap();
    assert!(st.replay.corruption.is_none());
    assert_eq!(
        count(&db),
        100 * (acked + 5),
        "every acknowledged sample, nothing refused"
    );
    eprintln!("full disk test: real tmpfs = {mounted}, {refused} commits refused");
}

/// Scrapes for `ms` milliseconds and returns what a query saw last.
fn ingest_for(addr: &str, ms: u64) -> Seen {
    let until = Instant::now() + Duration::from_millis(ms);
    let mut last = Seen::new();
    while Instant::now() < until {
        if let Ok(s) = samples(addr) {
            last = s;
        }
    }
    last
}

/// `text` without its terminal colour codes (`ESC [ ... m`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut it = text.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until `acked` is back, every sample bit-exact.
fn all_back(addr: &str, acked: &Seen, what: &str) {
    let back = wait_for(Duration::from_secs(30), "raymon to answer", || {
        samples(addr).and_then(|s| {
            if s.is_empty() {
                Err("empty".into())
            } else {
                Ok(s)
            }
        })
    });
    let lost = acked
        .iter()
        .filter(|(k, v)| back.get(*k) != Some(*v))
        .count();
    assert_eq!(lost, 0, "{what}: {lost} of {} samples lost", acked.len());
}

#[test]
fn issue_22_a_clean_stop_restarts_from_the_head_image_and_a_damaged_one_is_refused() {
    let dir = TempDir::new("image");
    let stop = Arc::new(AtomicBool::new(false));
    let (target_port, target) = serve_target(stop.clone());
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\nscrape_configs:\n  - job_name: image\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let image = dir.path().join("data").join("head.image");
    let log = |round: usize| {
        plain(&std::fs::read_to_string(dir.path().join(format!("raymon-{round}.log"))).unwrap())
    };
    let mut acked = Seen::new();

    // A first life scrapes (past a checkpoint) and stops cleanly: it
    // leaves an image.
    let mut child = start(&dir, &cfg, &addr, 0);
    acked.extend(ingest_for(&addr, 2500));
    assert!(!acked.is_empty(), "nothing was scraped");
    child.terminate(Duration::from_secs(20));
    assert!(log(0).contains("storage flushed and closed"), "{}", log(0));
    assert!(image.exists(), "a clean stop leaves no head image");

    // The second life starts from it, removes it, has every sample.
    let mut child = start(&dir, &cfg, &addr, 1);
    all_back(&addr, &acked, "restart from the image");
    assert!(log(1).contains("from_image=true"), "{}", log(1));
    // The open removed the clean stop's image; what is there now (if a
    // checkpoint is not rewriting it) is a checkpoint's (kind 1).
    if let Ok(b) = std::fs::read(&image) {
        assert_eq!(
            b.get(20..24),
            Some(&1u32.to_le_bytes()[..]),
            "the clean stop's image outlived the open that read it"
        );
    }
    acked.extend(ingest_for(&addr, 1500));
    child.terminate(Duration::from_secs(20));
    assert!(image.exists());

    // A damaged image: the third life says so, reads the chunk store and
    // loses nothing.
    let mut bytes = std::fs::read(&image).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&image, bytes).unwrap();
    let mut child = start(&dir, &cfg, &addr, 2);
    all_back(&addr, &acked, "restart past a damaged image");
    let l = log(2);
    assert!(l.contains("not using the head image"), "{l}");
    assert!(l.contains("from_image=false"), "{l}");
    acked.extend(ingest_for(&addr, 1000));

    let _ = child.0.kill();
    let _ = child.0.wait();

    // After a kill -9 the next life starts from the image of the last
    // checkpoint and the WAL after it. Checkpoints 6 s apart here, so that
    // the kill lands after one image is written and before the next
    // checkpoint removes it; scrapes go on in between, into the WAL only.
    let mut child = start_checkpointing(&dir, &cfg, &addr, 3, "6s");
    all_back(&addr, &acked, "restart after kill -9");
    // A fresh image: the kill then comes well before the next checkpoint,
    // which removes the image while it runs.
    let written = || log(3).matches("head image written").count();
    let before = written();
    wait_for(Duration::from_secs(30), "a checkpoint's image", || {
        if written() > before {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    });
    acked.extend(ingest_for(&addr, 1000));
    let _ = child.0.kill();
    let _ = child.0.wait();
    assert!(
        image.exists(),
        "kill -9 after a checkpoint left no image: {}",
        log(3)
    );
    let _child = start(&dir, &cfg, &addr, 4);
    all_back(
        &addr,
        &acked,
        "restart after kill -9 from a checkpoint's image",
    );
    let l = log(4);
    assert!(l.contains("from_image=true"), "{l}");
    assert!(!l.contains("not using the head image"), "{l}");
    eprintln!(
        "image test: {} samples back after a clean stop, a damaged image and two kill -9",
        acked.len()
    );
    stop.store(true, Ordering::Relaxed);
    target.join().unwrap();
}
