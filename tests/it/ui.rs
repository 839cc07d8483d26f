//! Issue 21: raymon's own dashboard pages for Ray's Metrics tab. Over HTTP:
//! Grafana's `/api/health`, the pages and their data routes, bad input, and
//! auth that opens the pages but never the query API. In headless Chromium
//! (Debian's, driven by playwright-core from npm): every panel of Ray's 8
//! dashboards over a simulated cluster, drawn points equal to
//! `/api/v1/query_range`'s, and Ray's own dashboard embedding them under
//! `raymon up --grafana builtin` with real Ray. Screenshots go to
//! `target/screenshots/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, KillOnDrop, TempDir, enc, get, wait_for};

/// Ray's 8 dashboards as the installed Ray generates them (what `ray start`
/// writes into a session), written into `dir`.
pub(crate) fn ray_dashboards(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let python = support::ray_bin().with_file_name("python");
    let script = format!(
        "import ray.dashboard.modules.metrics.grafana_dashboard_factory as f\n\
         for n in ['default','serve','serve_deployment','serve_llm','serve_llm_sglang','data','data_llm','train']:\n\
         \x20   content, uid = getattr(f, 'generate_%s_grafana_dashboard' % n)()\n\
         \x20   open('{}/%s_grafana_dashboard.json' % n, 'w').write(content)\n",
        dir.display()
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A dashboard of our own: a panel whose query does not parse beside one
/// that works, and a custom variable.
fn own_dashboard(dir: &Path) {
    let d = serde_json::json!({
        "uid": "issue21", "title": "Issue 21",
        "templating": {"list": [
            {"name": "window", "type": "custom", "query": "1m,5m", "current": {"value": "1m"}},
        ]},
        "panels": [
            {"id": 1, "type": "graph", "title": "good", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
             "targets": [{"refId": "A", "expr": "sum(rate(prometheus_http_requests_total[$window]))", "legendFormat": "rate"}]},
            {"id": 2, "type": "graph", "title": "bad", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8},
             "targets": [{"refId": "A", "expr": "sum(up"}]},
            {"id": 3, "type": "news", "title": "unknown type", "gridPos": {"x": 0, "y": 8, "w": 12, "h": 8}},
        ],
    });
    std::fs::write(dir.join("issue21.json"), d.to_string()).unwrap();
}

struct Server {
    _proc: KillOnDrop,
    addr: String,
}

/// raymon serving `dashboards`, scraping `targets` (a file_sd file) every
/// second; `extra` flags appended.
fn serve(tmp: &Path, dashboards: &Path, sd: Option<&Path>, extra: &[String]) -> Server {
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = tmp.join("prometheus.yml");
    let jobs = match sd {
        Some(f) => format!(
            "scrape_configs:\n  - job_name: ray\n    file_sd_configs:\n      - files: ['{}']\n",
            f.display()
        ),
        None => String::new(),
    };
    std::fs::write(&cfg, format!("global:\n  scrape_interval: 1s\n{jobs}")).unwrap();
    let mut args = vec![
        "serve".to_string(),
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", tmp.join("data").display()),
        format!("--web.listen-address={addr}"),
        format!("--web.dashboards-dir={}", dashboards.display()),
    ];
    args.extend_from_slice(extra);
    let proc = support::start_raymon(&args, &tmp.join("raymon.log"));
    // With basic auth on, 401 says the server is up.
    wait_for(Duration::from_secs(30), "raymon to be ready", || {
        get(&addr, "/-/ready")
            .map_err(|e| e.to_string())
            .and_then(|r| [200, 401].contains(&r.status).then_some(()).ok_or(r.body))
    });
    Server { _proc: proc, addr }
}

#[test]
fn issue_21_health_pages_and_clear_errors() {
    let tmp = TempDir::new("ui-http");
    let dash = tmp.path().join("dashboards");
    ray_dashboards(&dash);
    own_dashboard(&dash);
    std::fs::write(dash.join("broken.json"), "{ not json").unwrap();
    let s = serve(tmp.path(), &dash, None, &[]);

    // Ray's backend wants 200, application/json and database "ok".
    let r = get(&s.addr, "/api/health").unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.headers
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        r.headers
    );
    assert_eq!(r.json()["database"], "ok");

    // The page Ray's Metrics tab embeds, with the parameters it sends; all
    // its links are relative to the root it computes.
    let r = get(
        &s.addr,
        "/d/rayDefaultDashboard/?orgId=1&theme=light&kiosk=1&refresh=5s&from=now-5m&to=now&timezone=browser&var-SessionName=s&var-datasource=raymon",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#"<base href="../../">"#), "{}", r.body);
    assert!(r.body.contains(r#"data-uid="rayDefaultDashboard""#));
    let r = get(
        &s.addr,
        "/d-solo/rayDefaultDashboard/default-dashboard?panelId=41",
    )
    .unwrap();
    assert!(r.body.contains(r#"data-mode="solo""#), "{}", r.body);

    // Variables: Grafana's substitution with Ray's allValue, and the
    // datasource variable answers with the name Ray was given.
    let q = "/api/dashboards/uid/rayDefaultDashboard/panels/24/query?from=now-5m&to=now&maxDataPoints=600&var-SessionName=%24__all&var-Cluster=%24__all";
    let j = get(&s.addr, q).unwrap().json();
    assert_eq!(j["status"], "success", "{j}");
    let expr = j["data"]["targets"][0]["expr"].as_str().unwrap();
    assert_eq!(
        expr,
        r#"sum(autoscaler_active_nodes{SessionName=~".+",ray_io_cluster=~".*"}) by (NodeType)"#
    );
    assert_eq!(
        j["data"]["targets"][0]["step"], 1.0,
        "300 s at 600 px, 1 s scrape"
    );
    let r = get(
        &s.addr,
        "/api/dashboards/uid/rayDefaultDashboard/variables?from=now-1h&to=now",
    )
    .unwrap();
    let vars = r.json()["data"].as_array().unwrap().clone();
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "datasource",
            "SessionName",
            "Instance",
            "Cluster",
            "RayNodeType"
        ]
    );
    assert_eq!(vars[4]["options"][0]["value"], "head");

    // Bad input: each a clear message, and the server keeps serving.
    let bad = |path: &str, status: u16, needle: &str| {
        let r = get(&s.addr, path).unwrap();
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{path}: {msg}");
    };
    bad(
        "/api/dashboards/uid/nope/panels/1/query",
        404,
        "dashboard \"nope\" not found",
    );
    bad(
        "/api/dashboards/uid/nope",
        404,
        "broken.json does not parse",
    );
    bad(
        "/api/dashboards/uid/rayDefaultDashboard/panels/999/query",
        404,
        "panel 999 not found",
    );
    bad(
        "/api/dashboards/uid/rayDefaultDashboard/panels/x/query",
        400,
        "panelId \"x\" is not a number",
    );
    bad(
        &format!(
            "/api/dashboards/uid/rayDefaultDashboard/panels/24/query?var-SessionName={}",
            enc("x\"} or vector(1) or {a=\"")
        ),
        400,
        "contains a double quote",
    );
    bad(
        &format!(
            "/api/dashboards/uid/issue21/panels/1/query?var-window={}",
            enc("1m]) or up #")
        ),
        400,
        "is not one of its options (1m, 5m)",
    );
    bad(
        "/api/dashboards/uid/issue21/panels/1/query?from=yesterday",
        400,
        "invalid time \"yesterday\"",
    );
    // A query error stays inside its panel; the next panel answers.
    let j = get(&s.addr, "/api/dashboards/uid/issue21/panels/2/query")
        .unwrap()
        .json();
    let err = j["data"]["targets"][0]["error"].as_str().unwrap();
    assert!(err.starts_with("bad_data: "), "{err}");
    let j = get(
        &s.addr,
        "/api/dashboards/uid/issue21/panels/1/query?var-window=5m",
    )
    .unwrap()
    .json();
    assert_eq!(
        j["data"]["targets"][0]["expr"],
        "sum(rate(prometheus_http_requests_total[5m]))"
    );
    assert!(j["data"]["targets"][0]["error"].is_null(), "{j}");
    assert_eq!(get(&s.addr, "/-/healthy").unwrap().status, 200);
}

#[test]
fn issue_21_auth_opens_the_dashboards_and_never_the_query_api() {
    let tmp = TempDir::new("ui-auth");
    let dash = tmp.path().join("dashboards");
    std::fs::create_dir_all(&dash).unwrap();
    own_dashboard(&dash);
    let hash = bcrypt::hash_with_salt("pw", 4, [7; 16])
        .unwrap()
        .to_string();
    let web = tmp.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  u: '{hash}'\n")).unwrap();
    let open = [
        "/api/health",
        "/d/issue21/x",
        "/d-solo/issue21/x?panelId=1",
        "/api/dashboards/uid/issue21",
        "/api/dashboards/uid/issue21/variables",
        "/api/dashboards/uid/issue21/panels/1/query",
        "/ui/static/dashboard.js",
    ];
    let closed = [
        "/api/v1/query?query=up",
        "/api/v1/query_range?query=up&start=0&end=1&step=1",
        "/api/v1/series?match[]=up",
        "/api/v1/targets",
        "/metrics",
        "/federate?match[]=up",
        "/-/healthy",
    ];
    {
        let s = serve(
            tmp.path(),
            &dash,
            None,
            &[
                format!("--web.config.file={}", web.display()),
                "--web.dashboards.anonymous".into(),
            ],
        );
        for p in open {
            assert_eq!(get(&s.addr, p).unwrap().status, 200, "{p}");
        }
        for p in closed {
            assert_eq!(get(&s.addr, p).unwrap().status, 401, "{p}");
        }
    }
    // Under a route prefix, the same paths below it (and nothing outside).
    {
        let tmp3 = TempDir::new("ui-auth3");
        let s = serve(
            tmp3.path(),
            &dash,
            None,
            &[
                format!("--web.config.file={}", web.display()),
                "--web.dashboards.anonymous".into(),
                "--web.route-prefix=/p".into(),
            ],
        );
        for p in open {
            assert_eq!(
                get(&s.addr, &format!("/p{p}")).unwrap().status,
                200,
                "/p{p}"
            );
            assert_eq!(get(&s.addr, p).unwrap().status, 401, "{p}");
        }
        for p in closed {
            assert_eq!(
                get(&s.addr, &format!("/p{p}")).unwrap().status,
                401,
                "/p{p}"
            );
        }
    }
    // Without the flag, auth covers the pages too.
    let tmp2 = TempDir::new("ui-auth2");
    let s = serve(
        tmp2.path(),
        &dash,
        None,
        &[format!("--web.config.file={}", web.display())],
    );
    for p in open {
        assert_eq!(get(&s.addr, p).unwrap().status, 401, "{p}");
    }
}

/// The node script that drives Chromium, or why it cannot run here.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "{} is missing (scripts/setup-deps installs it)",
            chromium.display()
        ));
    }
    let modules = support::manifest_dir().join("ui/node_modules");
    if !modules.join("playwright-core").is_dir() {
        return Err(
            "ui/node_modules/playwright-core is missing (scripts/setup-deps installs it)".into(),
        );
    }
    Ok((chromium, modules))
}

/// Runs the Chromium script with `args`, returning its JSON.
pub(crate) fn chromium(args: &Value) -> Value {
    let (chromium, modules) = browser().unwrap();
    let script = support::manifest_dir().join("tests/it/browser/check.cjs");
    let out = Command::new("node")
        .arg(script)
        .arg(args.to_string())
        .env("NODE_PATH", modules)
        .env("CHROMIUM", chromium)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Where screenshots are kept (the README names it).
pub(crate) fn screenshot(name: &str) -> String {
    let dir = support::manifest_dir().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).display().to_string()
}

/// A simulated Ray cluster (`raymon bench-targets`), its file_sd file.
fn simulated_cluster(tmp: &Path, nodes: usize) -> (KillOnDrop, PathBuf) {
    let dir = tmp.join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(support::raymon_bin())
        .args([
            "bench-targets",
            &format!("--targets={nodes}"),
            "--series-per-target=400",
            "--interval=1s",
            &format!("--dir={}", dir.display()),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.join("cluster.log")).unwrap())
        .spawn()
        .unwrap();
    let sd = dir.join("prom_metrics_service_discovery.json");
    wait_for(Duration::from_secs(20), "the simulated cluster", || {
        sd.exists()
            .then_some(())
            .ok_or_else(|| "no file_sd yet".to_string())
    });
    (KillOnDrop(child), sd)
}

/// Every `(panel id, stacked)` of graph panels, rows included.
fn graph_panels(d: &Value, out: &mut Vec<(i64, bool)>) {
    for p in d["panels"].as_array().into_iter().flatten() {
        if p["type"] == "graph" {
            out.push((p["id"].as_i64().unwrap(), p["stack"] == true));
        }
        graph_panels(p, out);
    }
}

#[test]
fn issue_21_every_panel_of_rays_dashboards_draws_what_the_api_answers() {
    if let Err(why) = browser() {
        crate::support::skip(&why);
        return;
    }
    let tmp = TempDir::new("ui-all");
    let dash = tmp.path().join("dashboards");
    ray_dashboards(&dash);
    let (mut cluster, sd) = simulated_cluster(tmp.path(), 5);
    let s = serve(tmp.path(), &dash, Some(&sd), &[]);
    // Some seconds of samples, then the cluster stops: nothing arrives
    // between a panel's query and the test's own.
    wait_for(Duration::from_secs(30), "samples", || {
        let r = get(
            &s.addr,
            "/api/v1/query?query=count(ray_node_cpu_utilization)",
        )
        .unwrap();
        (r.json()["data"]["result"][0]["value"][1] == "5")
            .then_some(())
            .ok_or(r.body)
    });
    std::thread::sleep(Duration::from_secs(6));
    cluster.terminate(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(3));

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dash)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 8);
    let mut compared = 0;
    for f in &files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let uid = d["uid"].as_str().unwrap();
        let mut panels = Vec::new();
        graph_panels(&d, &mut panels);
        let candidates: Vec<i64> = panels.iter().filter(|p| !p.1).map(|p| p.0).collect();
        let url = format!(
            "http://{}/d/{uid}/x?orgId=1&theme=dark&from=now-2m&to=now",
            s.addr
        );
        let name = f.file_stem().unwrap().to_str().unwrap();
        let out = chromium(&serde_json::json!({
            "url": url,
            "expandRows": true,
            "screenshot": screenshot(&format!("{name}.png")),
            "drawn": candidates,
        }));
        assert_eq!(out["errors"], serde_json::json!([]), "{uid}: {out}");
        let run = &out["runs"][0];
        assert_eq!(run["pageErrors"], serde_json::json!([]), "{uid}");
        let seen = run["panels"].as_array().unwrap();
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        for p in seen {
            let state = p["state"].as_str().unwrap();
            *states.entry(state.to_string()).or_default() += 1;
            let expected =
                if ["graph", "stat", "gauge", "piechart"].contains(&p["type"].as_str().unwrap()) {
                    ["ok", "nodata"].contains(&state)
                } else {
                    state == "unsupported"
                };
            assert!(
                expected,
                "{uid} panel {} ({}): {state}: {}",
                p["id"], p["title"], p["message"]
            );
        }
        let all = count_panels(&d);
        assert_eq!(
            seen.len(),
            all,
            "{uid}: every panel, rows opened, is on the page"
        );
        println!("{uid}: {} panels {states:?}", seen.len());
        if uid == "rayDefaultDashboard" {
            for p in seen
                .iter()
                .filter(|p| p["state"] == "ok" && p["drawn"].is_object())
            {
                if compared < 5 {
                    compare_with_query_range(&s.addr, &p["drawn"], p["id"].as_i64().unwrap());
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 5, "five panels of the default dashboard compared");
}

#[test]
fn issue_22_refreshed_panels_draw_what_the_api_answers() {
    if let Err(why) = browser() {
        crate::support::skip(&why);
        return;
    }
    let tmp = TempDir::new("ui-refresh");
    let dash = tmp.path().join("dashboards");
    std::fs::create_dir_all(&dash).unwrap();
    let python = support::ray_bin().with_file_name("python");
    let script = format!(
        "import ray.dashboard.modules.metrics.grafana_dashboard_factory as f\n\
         open('{}/default.json', 'w').write(f.generate_default_grafana_dashboard()[0])\n",
        dash.display()
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut cluster, sd) = simulated_cluster(tmp.path(), 3);
    let s = serve(tmp.path(), &dash, Some(&sd), &[]);
    wait_for(Duration::from_secs(30), "samples", || {
        let r = get(
            &s.addr,
            "/api/v1/query?query=count(ray_node_cpu_utilization)",
        )
        .unwrap();
        (r.json()["data"]["result"][0]["value"][1] == "3")
            .then_some(())
            .ok_or(r.body)
    });
    // The page refreshes every second while samples arrive, then keeps
    // refreshing after the cluster stopped: the last refreshes, made of
    // held steps and new ones, must draw what a whole query answers. Only
    // panels on screen refresh; 41 and 54 are unstacked ones with data in
    // the first rows (stacked ones draw sums).
    let addr = s.addr.clone();
    let page = std::thread::spawn(move || {
        chromium(&serde_json::json!({
            "url": format!("http://{addr}/d/rayDefaultDashboard/x?orgId=1&kiosk=1&from=now-2m&to=now&refresh=1s"),
            "drawn": [41, 54],
            "viewport": {"width": 1600, "height": 1200},
            "holdMs": 16000,
            "afterHold": true,
            "timeoutMs": 60000,
        }))
    });
    std::thread::sleep(Duration::from_secs(8));
    cluster.terminate(Duration::from_secs(5));
    let out = page.join().unwrap();
    assert_eq!(out["errors"], serde_json::json!([]), "{out}");
    let mut kept = 0;
    let mut compared = 0;
    for p in out["afterHold"].as_array().unwrap() {
        assert!(
            ["ok", "nodata"].contains(&p["state"].as_str().unwrap()),
            "{p}"
        );
        if p["state"] == "ok" && p["drawn"]["kept"].as_u64().unwrap_or(0) > 0 {
            kept += p["drawn"]["kept"].as_u64().unwrap();
            compare_with_query_range(&s.addr, &p["drawn"], p["id"].as_i64().unwrap());
            compared += 1;
        }
    }
    assert!(
        compared >= 2,
        "refreshed panels compared: {compared}: {out}"
    );
    println!("{compared} refreshed panels equal query_range's; {kept} answers in parts");
}

/// Panels other than rows, inside rows too.
fn count_panels(d: &Value) -> usize {
    d["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| usize::from(p["type"] != "row") + count_panels(p))
        .sum()
}

/// The points uPlot holds for each series equal `/api/v1/query_range`'s for
/// the expression, range and step the panel used.
fn compare_with_query_range(addr: &str, drawn: &Value, id: i64) {
    // Numbers come as JavaScript printed them: Rust's parser reads back the
    // exact doubles (serde_json's own float parsing may be one ulp off).
    let num = |v: &Value| -> Option<f64> { v.as_str().map(|s| s.parse().unwrap()) };
    let x: Vec<f64> = drawn["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| num(v).unwrap())
        .collect();
    let plotted = drawn["plotted"].as_array().unwrap();
    let mut i = 0;
    for t in drawn["targets"].as_array().unwrap() {
        let q = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            enc(t["expr"].as_str().unwrap()),
            t["start"],
            t["end"],
            t["step"]
        );
        let answer = get(addr, &q).unwrap().json();
        let result = answer["data"]["result"].as_array().unwrap();
        assert_eq!(
            result.len(),
            t["series"].as_array().unwrap().len(),
            "panel {id} {}: series",
            t["refId"]
        );
        for (k, series) in result.iter().enumerate() {
            let labels = &t["series"][k]["labels"];
            assert_eq!(&series["metric"], labels, "panel {id}: series {k} in order");
            let ys = plotted[i].as_array().unwrap();
            let mut points = 0;
            for v in series["values"].as_array().unwrap() {
                let ts: f64 = v[0].to_string().parse().unwrap();
                let want: f64 = v[1].as_str().unwrap().parse().unwrap();
                let j = x
                    .iter()
                    .position(|&a| a == ts)
                    .unwrap_or_else(|| panic!("panel {id}: no x {ts}"));
                assert_eq!(num(&ys[j]), Some(want), "panel {id} series {k} at {ts}");
                points += 1;
            }
            let drawn_points = ys.iter().filter(|v| !v.is_null()).count();
            assert_eq!(
                drawn_points, points,
                "panel {id} series {k}: no extra points"
            );
            i += 1;
        }
    }
    println!("panel {id}: {} series equal query_range's", i);
}

/// Console errors and exceptions raised by raymon's own pages.
fn errors_from(out: &Value, origin: &str) -> Vec<Value> {
    out["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["url"].as_str().unwrap_or("").starts_with(origin))
        .cloned()
        .collect()
}

/// Opens a page of Ray's dashboard and checks every panel of the iframes
/// raymon serves it.
fn ray_page(dashboard: &str, raymon: &str, page: &str, min_panels: usize) {
    let out = chromium(&serde_json::json!({
        "url": format!("http://{dashboard}/{page}"),
        "screenshot": screenshot(&format!("ray-{}.png", page.trim_start_matches("#/"))),
        "minPanels": min_panels,
        "settleMs": 3000,
        "timeoutMs": 90000,
    }));
    let origin = format!("http://{raymon}/");
    assert_eq!(
        errors_from(&out, &origin),
        Vec::<Value>::new(),
        "{page}: {out}"
    );
    let others = out["errors"].as_array().unwrap().len();
    let panels = out["runs"][0]["panels"].as_array().unwrap();
    assert!(panels.len() >= min_panels, "{page}: {out}");
    for p in panels {
        assert!(p["frame"].as_str().unwrap().starts_with(&origin), "{p}");
        assert!(
            ["ok", "nodata"].contains(&p["state"].as_str().unwrap()),
            "{page}: panel {} ({}): {} {}",
            p["id"],
            p["title"],
            p["state"],
            p["message"]
        );
    }
    let ok = panels.iter().filter(|p| p["state"] == "ok").count();
    println!(
        "{page}: {} panels ({ok} ok) in {} ms; {others} console errors from Ray's own page",
        panels.len(),
        out["runs"][0]["drawnMs"]
    );
}

#[test]
fn issue_21_real_ray_metrics_tab_with_builtin_dashboards() {
    if let Err(why) = browser() {
        crate::support::skip(&why);
        return;
    }
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("ui-ray");
    let data = tmp.path().join("d");
    let temp = tmp.path().join("r");
    let _leftovers = crate::up::Leftovers {
        data: data.clone(),
        temp: temp.clone(),
    };
    let ray = support::RealRayUp::new();
    let (rport, dport) = (ray.raymon_port, ray.dashboard_port);
    let args = ray.args(
        &data,
        &temp,
        &["--grafana=builtin".into(), "--scrape-interval=2s".into()],
    );
    let env = ray.env(&[]);
    let mut up = crate::up::Up::start(&args, &env, tmp.path());
    let stdout = up.wait_up(Duration::from_secs(300));
    let raymon = format!("127.0.0.1:{rport}");
    assert!(
        stdout.contains(&format!(
            "Ray's dashboards (built in): http://{raymon}/d/rayDefaultDashboard/"
        )),
        "{stdout}"
    );
    let dashboard = format!("127.0.0.1:{dport}");
    let r = get(&dashboard, "/api/grafana_health").unwrap();
    assert_eq!(r.json()["result"], true, "{}", r.body);
    assert_eq!(r.json()["data"]["grafanaHost"], format!("http://{raymon}"));
    // up copies the session's dashboards for raymon to serve, which needs
    // no credentials for them while its API wants some (auth is on).
    wait_for(
        Duration::from_secs(30),
        "raymon to serve Ray's dashboards",
        || {
            let r = get(&raymon, "/api/dashboards/uid/rayDefaultDashboard").unwrap();
            (r.status == 200).then_some(()).ok_or(r.body)
        },
    );
    assert_eq!(get(&raymon, "/api/v1/query?query=up").unwrap().status, 401);
    wait_for(Duration::from_secs(60), "Ray's prometheus health", || {
        let r = get(&dashboard, "/api/prometheus_health").unwrap();
        (r.json()["result"] == true).then_some(()).ok_or(r.body)
    });
    // A few scrapes, so that panels have something to draw.
    std::thread::sleep(Duration::from_secs(6));
    ray_page(&dashboard, &raymon, "#/metrics", 10);
    ray_page(&dashboard, &raymon, "#/overview", 2);
    assert!(crate::up::down(&data).status.success());
    assert!(
        up.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        up.stderr()
    );
}

#[test]
fn issue_21_graph_and_targets_pages_under_a_route_prefix_in_chromium() {
    if let Err(why) = browser() {
        println!("skipped: {why}");
        return;
    }
    let tmp = TempDir::new("ui-prom");
    let port = support::free_port();
    let dead = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    metrics_path: /prom/metrics\n    static_configs:\n      - targets: ['{addr}']\n  - job_name: gone\n    static_configs:\n      - targets: ['127.0.0.1:{dead}']\n"
        ),
    )
    .unwrap();
    let _p = support::start_raymon(
        &[
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", tmp.path().join("data").display()),
            format!("--web.listen-address={addr}"),
            // Every page and link must work under a prefix.
            "--web.route-prefix=/prom".into(),
        ],
        &tmp.path().join("raymon.log"),
    );
    wait_for(Duration::from_secs(30), "a few scrapes", || {
        let r = get(&addr, "/prom/api/v1/query?query=count_over_time(up[1m])")
            .map_err(|e| e.to_string())?;
        let ok = r.status == 200
            && r.json()["data"]["result"].as_array().is_some_and(|a| {
                a.len() == 2 && a.iter().all(|s| s["value"][1].as_str().unwrap() >= "3")
            });
        ok.then_some(()).ok_or(r.body)
    });
    // `/` goes to the graph page under the external URL's path, as in
    // Prometheus (here none: only a route prefix was given).
    let r = get(&addr, "/prom/").unwrap();
    assert_eq!(r.status, 302);
    assert!(
        r.headers.to_ascii_lowercase().contains("location: /graph"),
        "{}",
        r.headers
    );

    let graph = |query: &str, name: &str| {
        chromium(&serde_json::json!({
            "url": format!("http://{addr}/prom/graph?{query}"),
            "read": ".prom-output",
            "screenshot": screenshot(&format!("graph-{name}.png")),
        }))
    };
    let out = graph("g0.expr=up&g0.tab=0&g0.range_input=5m", "range");
    assert_eq!(out["errors"], serde_json::json!([]), "{out}");
    let read = &out["runs"][0]["read"];
    assert_eq!(read["state"], "ok", "{out}");
    assert_eq!(read["drawn"]["series"], 2, "{out}");
    assert!(read["drawn"]["points"].as_u64().unwrap() >= 6, "{out}");
    // The view is in the URL: opening it again restores it.
    assert!(out["url"].as_str().unwrap().contains("g0.expr=up"), "{out}");
    let out = graph("g0.expr=up%7Bjob%3D%22gone%22%7D&g0.tab=1", "table");
    let read = &out["runs"][0]["read"];
    assert_eq!(read["state"], "ok", "{out}");
    assert!(
        read["text"].as_str().unwrap().contains(&format!(
            "up{{instance=\"127.0.0.1:{dead}\", job=\"gone\"}}"
        )),
        "{out}"
    );
    let out = graph("g0.expr=sum(&g0.tab=1", "error");
    let read = &out["runs"][0]["read"];
    assert_eq!(read["state"], "error", "{out}");
    assert!(read["text"].as_str().unwrap().contains("bad_data"), "{out}");

    let out = chromium(&serde_json::json!({
        "url": format!("http://{addr}/prom/targets"),
        "read": ".prom-output",
        "screenshot": screenshot("targets.png"),
    }));
    assert_eq!(out["errors"], serde_json::json!([]), "{out}");
    let text = out["runs"][0]["read"]["text"].as_str().unwrap().to_string();
    assert!(text.contains("gone (0/1 up)"), "{text}");
    assert!(text.contains("self (1/1 up)"), "{text}");
    assert!(
        text.contains(&format!("http://{addr}/prom/metrics")),
        "{text}"
    );
    assert!(text.contains("DOWN"), "{text}");
    assert!(
        text.contains(&format!("http://127.0.0.1:{dead}/metrics")),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
    for page in ["service-discovery", "status", "tsdb-status"] {
        let out = chromium(&serde_json::json!({
            "url": format!("http://{addr}/prom/{page}"),
            "read": ".prom-output",
        }));
        assert_eq!(out["runs"][0]["read"]["state"], "ok", "{page}: {out}");
        assert_eq!(out["errors"], serde_json::json!([]), "{page}: {out}");
    }
}
