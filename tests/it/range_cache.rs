//! Issue 22's range-query cache over HTTP: two servers get the same
//! imports (late samples included) and deletions; one caches range
//! queries, the other does not (`--query.range-cache-size=0`), and every
//! answer must be the same bytes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{self, Rng, TempDir};

/// A POST with a body type that `/api/v1/import` takes.
fn post(addr: &str, path: &str, ctype: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap_or(0);
    (status, out)
}

fn body(addr: &str, path: &str) -> String {
    let r = support::get(addr, path).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

#[test]
fn issue_22_cached_range_queries_equal_uncached_ones_over_http() {
    let mut rng = Rng::seeded("issue_22_range_cache_http", 0x005e_ed22);
    let dir = TempDir::new("range-cache");
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 5s\n").unwrap();
    let mut servers = Vec::new();
    for (name, size) in [("cached", "64MB"), ("plain", "0")] {
        let addr = format!("127.0.0.1:{}", support::free_port());
        let child = support::start_raymon(
            &[
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", dir.path().join(name).display()),
                format!("--web.listen-address={addr}"),
                "--web.enable-import".into(),
                "--web.enable-admin-api".into(),
                format!("--query.range-cache-size={size}"),
            ],
            &dir.path().join(format!("{name}.log")),
        );
        support::wait_for(Duration::from_secs(15), "ready", || {
            support::get(&addr, "/-/ready")
                .map_err(|e| e.to_string())
                .and_then(|r| (r.status == 200).then_some(()).ok_or(r.body))
        });
        servers.push((addr, child));
    }
    let queries = [
        "sum by (node) (rate(ray_req_total[1m]))",
        "ray_temp offset 30s",
        "max_over_time(ray_temp[2m:15s])",
        "ray_temp offset -20s",
    ];
    // Two hours ago: imports refuse samples older than --web.write.max-age.
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let base: i64 = (wall - 7_200_000) / 1000 * 1000;
    let mut now = base + 3_600_000;
    let mut last: std::collections::HashMap<String, i64> = Default::default();
    for round in 0..60 {
        now += 5_000;
        // Samples at now, and late ones up to an hour back for series that
        // have none after them (as a backfill or remote write brings).
        let mut docs = Vec::new();
        for _ in 0..8 {
            let node = rng.below(4);
            let late = rng.below(3) == 0;
            let (metric, series) = if rng.below(2) == 0 {
                (
                    "ray_req",
                    format!("ray_req_total{{node=\"n{node}\",late=\"{late}\"}}"),
                )
            } else {
                (
                    "ray_temp",
                    format!("ray_temp{{node=\"n{node}\",late=\"{late}\"}}"),
                )
            };
            let floor = last.get(&series).copied().unwrap_or(base) + 1;
            let t = if late {
                (now - rng.below(3_600_000) as i64).max(floor)
            } else {
                now.max(floor)
            };
            last.insert(series.clone(), t);
            let kind = if metric == "ray_req" {
                "counter"
            } else {
                "gauge"
            };
            docs.push(format!(
                "# TYPE {metric} {kind}\n{series} {} {}.{:03}\n# EOF\n",
                rng.below(1000),
                t / 1000,
                t % 1000
            ));
        }
        for (addr, _) in &servers {
            for doc in &docs {
                let (s, out) = post(addr, "/api/v1/import", "application/openmetrics-text", doc);
                assert!(s == 204 || s == 200, "import: {out}");
            }
        }
        if round % 17 == 16 {
            let (start, end) = (now - 1_800_000, now - 1_200_000);
            let path = format!(
                "/api/v1/admin/tsdb/delete_series?match[]={}&start={}&end={}",
                support::enc(&format!("ray_temp{{node=\"n{}\"}}", rng.below(4))),
                start / 1000,
                end / 1000
            );
            for (addr, _) in &servers {
                let (s, out) = post(addr, &path, "application/json", "");
                assert_eq!(s, 204, "delete: {out}");
            }
        }
        for q in queries {
            let step = 15_000;
            let start = (now - 3_600_000) / step * step;
            let path = format!(
                "/api/v1/query_range?query={}&start={}&end={}&step=15",
                support::enc(q),
                start / 1000,
                now as f64 / 1000.0
            );
            let cached = body(&servers[0].0, &path);
            let plain = body(&servers[1].0, &path);
            assert_eq!(cached, plain, "round {round}: {q}");
        }
    }
    let metrics = body(&servers[0].0, "/metrics");
    let reused: f64 = metrics
        .lines()
        .find(|l| l.starts_with("raymon_query_range_cache_steps_total{source=\"cache\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(
        reused > 1000.0,
        "the cache reused {reused} steps:\n{metrics}"
    );
    assert!(!body(&servers[1].0, "/metrics").contains("raymon_query_range_cache_bytes"));
}
