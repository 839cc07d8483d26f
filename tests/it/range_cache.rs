//! Issue 22's range-query cache over HTTP: two servers get the same
//! imports (late samples included) and deletions; one caches range
//! queries, the other does not (`--query.range-cache-size=0`), and every
//! answer must be the same bytes. And the dashboard pages' answers in
//! parts: a panel asked with the token of its previous answer sends only
//! the steps it must, and what the page then holds (joined by the page's
//! own code, run in node) equals the whole answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

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

/// A series point's time and whether it lies in `[lo, hi]` (seconds).
fn within(p: &Value, lo: f64, hi: f64) -> bool {
    p[0].as_f64().is_some_and(|t| t >= lo && t <= hi)
}

/// What the page does with an answer in parts, written again here: the
/// held series' points within `keep`, then the fresh ones, sorted by
/// labels (label maps serialise sorted by name, values by bytes), series
/// without points dropped.
fn join(held: &[Value], fresh: &[Value], keep: (f64, f64)) -> Vec<Value> {
    let key = |s: &Value| -> Vec<(String, String)> {
        s["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out: std::collections::BTreeMap<Vec<(String, String)>, Value> = Default::default();
    for s in held {
        let mut s = s.clone();
        let pts: Vec<Value> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| within(p, keep.0, keep.1))
            .cloned()
            .collect();
        if !pts.is_empty() {
            s["values"] = Value::Array(pts);
            out.insert(key(&s), s);
        }
    }
    for f in fresh {
        match out.get_mut(&key(f)) {
            Some(s) => s["values"]
                .as_array_mut()
                .unwrap()
                .extend(f["values"].as_array().unwrap().iter().cloned()),
            None => {
                out.insert(key(f), f.clone());
            }
        }
    }
    out.into_values().collect()
}

/// Every number as a float: JavaScript writes `1.0` as `1`.
fn floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(floats).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), floats(v))).collect()),
        v => v.clone(),
    }
}

/// `joinSeries` of `ui/src/panel.js` on every case, in node; `None` (and
/// "skipped") without node.
fn join_in_node(dir: &std::path::Path, cases: &[Value]) -> Option<Vec<Value>> {
    if Command::new("node").arg("--version").output().is_err() {
        support::skip("node is not installed: the page's own join was not run");
        return None;
    }
    let input = dir.join("cases.json");
    std::fs::write(&input, Value::Array(cases.to_vec()).to_string()).unwrap();
    let panel = support::manifest_dir().join("ui/src/panel.js");
    let script = format!(
        "import {{ joinSeries }} from {:?};\n\
         import {{ readFileSync }} from 'node:fs';\n\
         const cases = JSON.parse(readFileSync({:?}, 'utf8'));\n\
         process.stdout.write(JSON.stringify(cases.map((c) => joinSeries(c.held, c.fresh, c.keep[0], c.keep[1]))));\n",
        format!("file://{}", panel.display()),
        input.display().to_string()
    );
    let out = Command::new("node")
        .args(["--input-type=module", "-e", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn issue_22_panel_answers_in_parts_equal_whole_ones() {
    let mut rng = Rng::seeded("issue_22_panel_parts", 0x0022_9a27);
    let dir = TempDir::new("panel-parts");
    let dash = dir.path().join("dash");
    std::fs::create_dir_all(&dash).unwrap();
    let exprs = [
        vec!["sum by (node) (rate(ray_req_total[1m]))", "count(ray_temp)"],
        vec!["ray_temp offset 30s"],
        vec!["max_over_time(ray_temp[2m:15s])"],
        vec!["ray_temp offset -20s"],
        // Not reusable: `@` pins the selector to the query's end.
        vec!["ray_temp @ end()"],
    ];
    let panels: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, targets)| {
            let targets: Vec<Value> = targets
                .iter()
                .enumerate()
                .map(|(j, e)| {
                    let ref_id = ["A", "B"][j];
                    json!({"refId": ref_id, "expr": e, "legendFormat": "{{node}} {{late}}"})
                })
                .collect();
            json!({"id": i + 1, "type": "graph", "title": format!("p{i}"), "targets": targets})
        })
        .collect();
    let d = json!({"uid": "parts", "title": "parts", "panels": panels});
    std::fs::write(dash.join("parts.json"), d.to_string()).unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 5s\n").unwrap();
    let addr = format!("127.0.0.1:{}", support::free_port());
    let _child = support::start_raymon(
        &[
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={addr}"),
            format!("--web.dashboards-dir={}", dash.display()),
            "--web.enable-import".into(),
            "--web.enable-admin-api".into(),
        ],
        &dir.path().join("raymon.log"),
    );
    support::wait_for(Duration::from_secs(15), "ready", || {
        support::get(&addr, "/-/ready")
            .map_err(|e| e.to_string())
            .and_then(|r| (r.status == 200).then_some(()).ok_or(r.body))
    });
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let base: i64 = (wall - 7_200_000) / 1000 * 1000;
    let mut now = base + 3_600_000;
    let mut last: std::collections::HashMap<String, i64> = Default::default();
    // Per panel: the token and targets the page holds.
    let mut held: Vec<Option<(String, Vec<Value>)>> = vec![None; exprs.len()];
    let (mut cases, mut wholes) = (Vec::new(), Vec::new());
    let mut kept_steps = 0usize;
    const QUIET: usize = 34;
    for round in 0..40 {
        now += 5_000;
        for _ in 0..6 {
            let node = rng.below(4);
            // The last rounds bring no late samples: then only the newest
            // steps may go out.
            let late = round < QUIET && rng.below(4) == 0;
            let (metric, kind) =
                [("ray_req_total", "counter"), ("ray_temp", "gauge")][rng.below(2)];
            let series = format!("{metric}{{node=\"n{node}\",late=\"{late}\"}}");
            let floor = last.get(&series).copied().unwrap_or(base) + 1;
            let t = if late {
                (now - rng.below(3_600_000) as i64).max(floor)
            } else {
                now.max(floor)
            };
            last.insert(series.clone(), t);
            let family = metric.trim_end_matches("_total");
            let doc = format!(
                "# TYPE {family} {kind}\n{series} {} {}.{:03}\n# EOF\n",
                rng.below(1000),
                t / 1000,
                t % 1000
            );
            let (s, out) = post(
                &addr,
                "/api/v1/import",
                "application/openmetrics-text",
                &doc,
            );
            assert!(s == 204 || s == 200, "import: {out}");
        }
        if round % 13 == 12 && round < QUIET {
            let path = format!(
                "/api/v1/admin/tsdb/delete_series?match[]={}&start={}&end={}",
                support::enc(&format!("ray_temp{{node=\"n{}\"}}", rng.below(4))),
                (now - 1_800_000) / 1000,
                (now - 1_200_000) / 1000
            );
            let (s, out) = post(&addr, &path, "application/json", "");
            assert_eq!(s, 204, "delete: {out}");
        }
        for (i, h) in held.iter_mut().enumerate() {
            let path = format!(
                "/api/dashboards/uid/parts/panels/{}/query?from={}&to={now}&maxDataPoints=240",
                i + 1,
                now - 3_600_000
            );
            let parts = match h {
                Some((token, _)) => {
                    let r = support::get(&addr, &format!("{path}&since={}", support::enc(token)))
                        .unwrap();
                    assert_eq!(r.status, 200, "{}", r.body);
                    Some(r.json())
                }
                None => None,
            };
            let r = support::get(&addr, &path).unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            let whole = r.json();
            let token = whole["data"]["token"].as_str().unwrap().to_string();
            let targets = whole["data"]["targets"].as_array().unwrap().clone();
            if let (Some(parts), Some((_, before))) = (&parts, &h) {
                for (t, w) in parts["data"]["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(&targets)
                {
                    assert_eq!(t["refId"], w["refId"]);
                    let fresh = t["series"].as_array().unwrap();
                    let reusable = !w["expr"].as_str().unwrap().contains('@');
                    if round > QUIET {
                        assert_eq!(t.get("keep").is_some(), reusable, "round {round}: {t}");
                        for f in fresh.iter().filter(|_| reusable) {
                            assert!(f["values"].as_array().unwrap().len() <= 3, "{t}");
                        }
                    }
                    let got = match t.get("keep") {
                        None => fresh.clone(),
                        Some(k) => {
                            assert!(reusable, "{t}");
                            let keep = (k[0].as_f64().unwrap(), k[1].as_f64().unwrap());
                            kept_steps +=
                                ((keep.1 - keep.0) / w["step"].as_f64().unwrap()) as usize;
                            let old = before.iter().find(|b| b["refId"] == t["refId"]).unwrap();
                            let old = old["series"].as_array().unwrap();
                            cases.push(json!({"held": old, "fresh": fresh, "keep": k}));
                            wholes.push(w["series"].clone());
                            join(old, fresh, keep)
                        }
                    };
                    assert_eq!(
                        Value::Array(got),
                        w["series"],
                        "round {round}, panel {}, {}",
                        i + 1,
                        w["expr"]
                    );
                }
            }
            *h = Some((
                parts
                    .and_then(|p| p["data"]["token"].as_str().map(str::to_string))
                    .unwrap_or(token),
                targets,
            ));
        }
    }
    println!("steps kept {kept_steps}; {} joins", cases.len());
    assert!(kept_steps > 10_000, "steps kept: {kept_steps}");
    if let Some(joined) = join_in_node(dir.path(), &cases) {
        for (i, (j, w)) in joined.iter().zip(&wholes).enumerate() {
            assert_eq!(floats(j), floats(w), "case {i}: {}", cases[i]);
        }
        assert_eq!(joined.len(), wholes.len());
    }

    // A token this server never gave is refused with a clear message.
    let r = support::get(
        &addr,
        "/api/dashboards/uid/parts/panels/1/query?from=now-1h&to=now&since=not-a-token",
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("not a token"), "{}", r.body);
}
