//! Series that stop receiving samples leave memory and stay queryable: the
//! real binary scrapes a loopback target every 100 ms; half of the target's
//! series vanish, go idle and leave the head (`--storage.tsdb.series-idle`),
//! then come back.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{TempDir, enc, free_port, get, start_raymon, wait_for};

const SERIES: usize = 20;

/// Serves `idle_value{i=...}` for all series, or only the first half while
/// `half` is set.
fn serve_target(half: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let scrapes = AtomicU64::new(0);
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let k = scrapes.fetch_add(1, Ordering::Relaxed);
            let n = if half.load(Ordering::Relaxed) {
                SERIES / 2
            } else {
                SERIES
            };
            let mut body = String::new();
            for i in 0..n {
                body.push_str(&format!("idle_value{{i=\"{i}\"}} {}\n", k * 100 + i as u64));
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    port
}

/// Samples of `idle_value` over the last 10 minutes: series `i` to its
/// (time, value) pairs.
fn samples(addr: &str, selector: &str) -> Result<BTreeMap<String, Vec<(String, String)>>, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 1.0;
    let q = enc(&format!("{selector}[10m]"));
    let r = get(addr, &format!("/api/v1/query?query={q}&time={now}")).map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.body));
    }
    let j = r.json();
    let mut out = BTreeMap::new();
    for s in j["data"]["result"].as_array().ok_or("no result")? {
        let i = s["metric"]["i"].as_str().ok_or("no i")?.to_string();
        let points = s["values"]
            .as_array()
            .ok_or("no values")?
            .iter()
            .map(|p| (p[0].to_string(), p[1].as_str().unwrap_or("").to_string()))
            .collect();
        if out.insert(i.clone(), points).is_some() {
            return Err(format!("series i={i} came twice"));
        }
    }
    Ok(out)
}

fn head_series(addr: &str) -> Result<u64, String> {
    let m = get(addr, "/metrics").map_err(|e| e.to_string())?.body;
    m.lines()
        .find_map(|l| l.strip_prefix("prometheus_tsdb_head_series "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no prometheus_tsdb_head_series".to_string())
}

#[test]
fn issue_3_idle_series_leave_memory_stay_queryable_and_come_back() {
    let dir = TempDir::new("idle");
    let half = Arc::new(AtomicBool::new(false));
    let port = serve_target(half.clone());
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\nscrape_configs:\n  - job_name: idle\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={addr}"),
        "--storage.tsdb.checkpoint-interval=1s".to_string(),
        "--storage.tsdb.series-idle=2s".to_string(),
    ];
    let mut child = start_raymon(&args, &dir.path().join("raymon-1.log"));
    // The target's 20 series and the 5 scrape series of the target.
    let all = wait_for(
        Duration::from_secs(30),
        "every series scraped 5 times",
        || {
            samples(&addr, "idle_value").and_then(|s| {
                if s.len() == SERIES && s.values().all(|p| p.len() >= 5) {
                    Ok(s)
                } else {
                    Err(format!("{} series", s.len()))
                }
            })
        },
    );
    assert_eq!(head_series(&addr).unwrap(), SERIES as u64 + 5);

    half.store(true, Ordering::Relaxed);
    // Half of the series stop; idle for 2 s, they leave memory.
    wait_for(
        Duration::from_secs(60),
        "the idle half to leave memory",
        || {
            head_series(&addr).and_then(|n| {
                if n == SERIES as u64 / 2 + 5 {
                    Ok(())
                } else {
                    Err(format!("{n} series in memory"))
                }
            })
        },
    );
    let now = samples(&addr, "idle_value").unwrap();
    assert_eq!(now.len(), SERIES, "queries still find the series on disk");
    for i in SERIES / 2..SERIES {
        let i = i.to_string();
        let (before, after) = (&all[&i], &now[&i]);
        // Everything seen before, then at most the scrapes that came before
        // the switch (the last point is the stale marker, not shown).
        assert!(after.len() >= before.len(), "series {i}");
        assert_eq!(&after[..before.len()], &before[..], "series {i}");
    }
    let r = get(&addr, "/api/v1/label/i/values").unwrap();
    assert_eq!(
        r.json()["data"].as_array().unwrap().len(),
        SERIES,
        "{}",
        r.body
    );
    let r = get(
        &addr,
        &format!("/api/v1/series?match[]={}", enc("idle_value{i=\"15\"}")),
    )
    .unwrap();
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1, "{}", r.body);

    // They come back: one series each, old samples and new ones.
    half.store(false, Ordering::Relaxed);
    let back = wait_for(Duration::from_secs(30), "the half to come back", || {
        let n = head_series(&addr)?;
        let s = samples(&addr, "idle_value{i=\"15\"}")?;
        let old = &now["15"];
        match s.get("15") {
            Some(p) if n == SERIES as u64 + 5 && p.len() > old.len() => Ok(p.clone()),
            _ => Err(format!("{n} series in memory, {s:?}")),
        }
    });
    assert_eq!(&back[..now["15"].len()], &now["15"][..]);

    // After a restart the cold and the revived series read the same.
    let before_restart = samples(&addr, "idle_value{i=~\"1[0-9]\"}").unwrap();
    half.store(true, Ordering::Relaxed);
    child.terminate(Duration::from_secs(10));
    let _child = start_raymon(&args, &dir.path().join("raymon-2.log"));
    let after = wait_for(Duration::from_secs(30), "raymon to answer", || {
        samples(&addr, "idle_value{i=~\"1[0-9]\"}")
    });
    for (i, points) in &before_restart {
        assert_eq!(&after[i][..points.len()], &points[..], "series {i}");
    }
}
