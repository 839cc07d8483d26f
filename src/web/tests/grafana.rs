//! Grafana replay: the request sequences Grafana 9.4 and the newest Grafana
//! send to a Prometheus datasource (from the project's Grafana research
//! notes: Save & test, datasource init, metric browser, template variables,
//! panel queries), sent to `web::router(state).oneshot` over a head filled
//! from real Ray scrapes and the PromQL engine, with each answer checked
//! the way Grafana's client decodes it.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::model::Labels;
use crate::promql::engine::{Engine, EngineOptions};
use crate::scrape::append::{Settings, TargetState};
use crate::scrape::status::{ActiveTarget, DroppedTarget, MetricMetadata, TargetsSource};
use crate::storage::Appendable;
use crate::tsdb::{Head, HeadOptions};
use crate::web::promql_engine::PromqlEngine;
use crate::web::{self, AppState};
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::testing::{enc, fixtures_dir};

const NOW_MS: i64 = 1_795_664_538_123;

fn now() -> i64 {
    NOW_MS
}

const SESSION: &str = "session_2026-11-26_03-35-11_178048_5703";

/// Metadata seen while loading the scrapes, as the scraper would expose it.
struct Scraped {
    target: Labels,
    metadata: Vec<MetricMetadata>,
}

impl TargetsSource for Scraped {
    fn active_targets(&self) -> Vec<ActiveTarget> {
        Vec::new()
    }
    fn dropped_targets(&self) -> Vec<DroppedTarget> {
        Vec::new()
    }
    fn metadata(&self) -> Vec<(Labels, Vec<MetricMetadata>)> {
        vec![(self.target.clone(), self.metadata.clone())]
    }
}

/// The Ray head node's exporter scraped three times, 15 s apart, ending
/// 15 s before "now".
fn state() -> AppState {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let target = Labels::from_pairs([("instance", "127.0.0.1:8080"), ("job", "ray")]);
    let settings = Settings {
        honor_timestamps: true,
        ..Settings::default()
    };
    let mut ts = TargetState::default();
    for (i, n) in [1, 2, 3].into_iter().enumerate() {
        let body = std::fs::read(
            fixtures_dir().join(format!("ray/scrapes/target-8080-{n}.openmetrics.txt")),
        )
        .unwrap();
        let t = NOW_MS - 45_000 + i as i64 * 15_000;
        let mut app = head.appender();
        ts.append_body(
            app.as_mut(),
            &body,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            t,
            &target,
            &settings,
        )
        .unwrap();
        app.commit().unwrap();
    }
    let metadata = ts.metadata.values().cloned().collect();
    let mut st = AppState::new(head.clone(), Arc::new(Scraped { target, metadata }));
    let engine = Engine::new(EngineOptions::default());
    st.engine = Some(Arc::new(PromqlEngine::new(engine, head)));
    st.formatter = Some(Arc::new(crate::web::promql_engine::format_query));
    st.ready.store(true, Ordering::Release);
    st.now_ms = now;
    st
}

/// One answer after transparent gzip decoding, as Grafana's Go client.
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

async fn send(st: &AppState, mut req: Request<Body>) -> Answer {
    // Grafana's datasource URL holds the route prefix; request paths follow it.
    let prefix = st.location.route_prefix.as_str();
    if prefix != "/" {
        *req.uri_mut() = format!("{prefix}{}", req.uri()).parse().unwrap();
    }
    let resp = web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let gz = resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip");
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let mut bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    if gz {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        bytes = out;
    }
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        content_type,
        body,
    }
}

/// A resource call as Grafana's backend forwards it: GET with the query
/// string as the browser encoded it.
async fn get(st: &AppState, uri: &str) -> Answer {
    let req = Request::get(uri)
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(header::USER_AGENT, "Grafana/9.4.3")
        .body(Body::empty())
        .unwrap();
    send(st, req).await
}

/// A data query as Grafana's backend sends it: POST, form body with keys
/// sorted (Go's `url.Values.Encode`).
async fn post(st: &AppState, path: &str, pairs: &[(&str, &str)]) -> Answer {
    let mut pairs = pairs.to_vec();
    pairs.sort();
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_enc(k), form_enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::from(body))
        .unwrap();
    send(st, req).await
}

/// Go's `url.QueryEscape`: space as `+`.
fn form_enc(s: &str) -> String {
    enc(s).replace("%20", "+")
}

/// client_golang's rules: 2xx is parsed as success; 400 and 422 must carry
/// `status: "error"` with string `errorType` and `error`; anything else is
/// an opaque HTTP error.
fn success_data(a: &Answer, what: &str) -> Value {
    assert_eq!(a.status, 200, "{what}: {}", a.body);
    assert_eq!(a.content_type, "application/json", "{what}");
    assert_eq!(a.body["status"], "success", "{what}: {}", a.body);
    assert!(a.body.get("errorType").is_none(), "{what}");
    a.body["data"].clone()
}

fn assert_string_array(v: &Value, what: &str) -> Vec<String> {
    let items = v
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not an array: {v}"));
    let out: Vec<String> = items
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("{what}: {s}"))
                .to_string()
        })
        .collect();
    let mut sorted = out.clone();
    sorted.sort();
    assert_eq!(out, sorted, "{what}: sorted");
    out
}

/// `/api/v1/series`: an array of flat label objects with string values.
fn assert_series(v: &Value, what: &str) -> Vec<serde_json::Map<String, Value>> {
    let items = v.as_array().unwrap_or_else(|| panic!("{what}: {v}"));
    items
        .iter()
        .map(|s| {
            let m = s
                .as_object()
                .unwrap_or_else(|| panic!("{what}: {s}"))
                .clone();
            assert!(m.values().all(Value::is_string), "{what}: {s}");
            assert!(m.contains_key("__name__"), "{what}: {s}");
            m
        })
        .collect()
}

/// How both Grafana clients decode a query result: a 200 success envelope,
/// the resultType, string values, plain-decimal timestamps. Returns `data`.
fn assert_query_result(a: &Answer, want_type: &str, what: &str) -> Value {
    let data = success_data(a, what);
    assert_eq!(data["resultType"], want_type);
    let check_point = |p: &Value| {
        let p = p.as_array().unwrap();
        assert!(p[0].is_number());
        assert!(!p[0].to_string().contains('e'), "exponent in time {}", p[0]);
        let v = p[1].as_str().unwrap();
        assert!(v.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&v));
    };
    match want_type {
        "scalar" | "string" => check_point(&data["result"]),
        "vector" => data["result"]
            .as_array()
            .unwrap()
            .iter()
            .for_each(|s| check_point(&s["value"])),
        _ => data["result"]
            .as_array()
            .unwrap()
            .iter()
            .for_each(|s| s["values"].as_array().unwrap().iter().for_each(check_point)),
    }
    data
}

fn secs(ms: i64) -> String {
    (ms / 1000).to_string()
}

/// The dashboard range: the last 30 minutes, in the integer seconds the
/// frontend sends (`Math.ceil(ms/1000)`).
fn range() -> (String, String) {
    (secs(NOW_MS - 30 * 60_000 + 999), secs(NOW_MS + 999))
}

#[tokio::test]
async fn grafana_9_4_session() {
    grafana_9_4_session_at(state()).await;
}

/// raymon behind a proxy: `external_url` and `route_prefix` as the flags
/// give them. Requests then go to the datasource URL's path, as Grafana
/// sends them (see [`send`]).
fn behind(mut st: AppState, external_url: &str, route_prefix: Option<&str>) -> AppState {
    st.location =
        web::prefix::Location::new(Some(external_url), route_prefix, "node", 9090).unwrap();
    st
}

/// JupyterHub's `/proxy/<port>/` strips its path: raymon serves at `/`
/// and knows its external URL.
#[tokio::test]
async fn issue_19_grafana_sessions_behind_external_url_with_route_prefix_slash() {
    let ext = "http://h/user/x/proxy/9090/";
    grafana_9_4_session_at(behind(state(), ext, Some("/"))).await;
    newest_grafana_session_at(behind(state(), ext, Some("/"))).await;
}

/// JupyterHub's `/proxy/absolute/<port>/` keeps the path: every request
/// goes under the route prefix, which defaults to the external URL's path.
#[tokio::test]
async fn issue_19_grafana_sessions_under_a_route_prefix() {
    let ext = "http://h/user/x/proxy/absolute/9090/";
    let st = behind(state(), ext, None);
    assert_eq!(st.location.route_prefix, "/user/x/proxy/absolute/9090");
    grafana_9_4_session_at(st.clone()).await;
    newest_grafana_session_at(st).await;
}

async fn grafana_9_4_session_at(st: AppState) {
    let (s, e) = range();

    // Save & test: instant `1+1` through the backend (POST form).
    let time = format!("{}", NOW_MS as f64 / 1000.0);
    let a = post(&st, "/api/v1/query", &[("query", "1+1"), ("time", &time)]).await;
    assert_ne!(
        a.status, 405,
        "a 405 would make client_golang retry with GET"
    );
    let d = assert_query_result(&a, "scalar", "health check 1+1");
    assert_eq!(d["result"], serde_json::json!([1_795_664_538.123, "2"]));
    // Build info: a Prometheus, not Mimir (no `features`), all strings.
    let bi = success_data(&get(&st, "/api/v1/status/buildinfo").await, "buildinfo");
    assert_eq!(bi["version"], "2.42.0");
    assert!(bi.get("features").is_none());
    for k in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(bi[k].is_string(), "buildinfo.{k}");
    }

    // Datasource init: rules and the exemplar probe with millisecond times.
    let rules = success_data(&get(&st, "/api/v1/rules").await, "rules");
    assert_eq!(rules, serde_json::json!({"groups": []}));
    let probe = format!(
        "/api/v1/query_exemplars?query=test&start={}&end={}",
        NOW_MS - 1_800_000,
        NOW_MS
    );
    assert_eq!(
        success_data(&get(&st, &probe).await, "exemplar probe"),
        serde_json::json!([])
    );

    // Editor start: labels, metric names, metadata.
    let labels = assert_string_array(
        &success_data(
            &get(&st, &format!("/api/v1/labels?start={s}&end={e}")).await,
            "labels",
        ),
        "labels",
    );
    for l in ["__name__", "SessionName", "instance", "job"] {
        assert!(labels.contains(&l.to_string()), "{l} in {labels:?}");
    }
    let names = assert_string_array(
        &success_data(
            &get(
                &st,
                &format!("/api/v1/label/__name__/values?start={s}&end={e}"),
            )
            .await,
            "names",
        ),
        "names",
    );
    assert!(names.contains(&"ray_node_cpu_utilization".to_string()));
    let md = success_data(&get(&st, "/api/v1/metadata").await, "metadata");
    let md = md.as_object().unwrap();
    assert!(!md.is_empty());
    for (family, entries) in md {
        for m in entries.as_array().unwrap() {
            for k in ["type", "help", "unit"] {
                assert!(m[k].is_string(), "{family}.{k}: {m}");
            }
        }
    }
    assert_eq!(md["ray_node_cpu_utilization"][0]["type"], "gauge");

    // Template variable `label_values(ray_node_cpu_utilization, SessionName)`:
    // 9.4 without a configured version uses /series and picks the label.
    let uri = format!("/api/v1/series?match%5B%5D=ray_node_cpu_utilization&start={s}&end={e}");
    let series = assert_series(&success_data(&get(&st, &uri).await, "series"), "series");
    assert!(!series.is_empty());
    assert!(series.iter().all(|m| m["SessionName"] == SESSION));
    // `label_values(SessionName)`.
    let v = assert_string_array(
        &success_data(
            &get(
                &st,
                &format!("/api/v1/label/SessionName/values?start={s}&end={e}"),
            )
            .await,
            "SessionName",
        ),
        "SessionName",
    );
    assert_eq!(v, [SESSION]);
    // Metric browser: series of a selector, values of `job` and `instance`.
    let uri = format!(
        "/api/v1/series?start={s}&end={e}&match%5B%5D={}",
        enc(&format!("ray_node_mem_used{{SessionName=\"{SESSION}\"}}"))
    );
    assert_series(
        &success_data(&get(&st, &uri).await, "browser series"),
        "browser series",
    );
    for l in ["job", "instance"] {
        let uri = format!("/api/v1/label/{l}/values?start={s}&end={e}");
        assert_eq!(
            assert_string_array(&success_data(&get(&st, &uri).await, l), l).len(),
            1
        );
    }

    // Panel: range query with `$__rate_interval` substituted as `1m0s`,
    // start/end aligned to the step; then the exemplar call (GET).
    let step = 15_000;
    let (rs, re) = ((NOW_MS - 1_800_000) / step * step, NOW_MS / step * step);
    let q = format!("sum by (State) (rate(ray_tasks{{SessionName=~\"{SESSION}\"}}[1m0s]))");
    let a = post(
        &st,
        "/api/v1/query_range",
        &[
            ("end", &secs(re)),
            ("query", &q),
            ("start", &secs(rs)),
            ("step", "15"),
        ],
    )
    .await;
    assert_ne!(a.status, 405);
    let d = assert_query_result(&a, "matrix", "panel range query");
    let states: Vec<&str> = d["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["State"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"FINISHED"), "{states:?}");
    // Points sit on the step grid: start + k * step.
    for s in d["result"].as_array().unwrap() {
        for p in s["values"].as_array().unwrap() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            assert_eq!((t - rs) % step, 0);
        }
    }
    let uri = format!(
        "/api/v1/query_exemplars?end={}&query={}&start={}",
        secs(re),
        enc(&q),
        secs(rs)
    );
    assert_eq!(
        success_data(&get(&st, &uri).await, "exemplars"),
        serde_json::json!([])
    );
    // Stat panel: instant query at the unaligned end.
    let a = post(
        &st,
        "/api/v1/query",
        &[("query", "sum(ray_node_cpu_count)"), ("time", &time)],
    )
    .await;
    let d = assert_query_result(&a, "vector", "instant panel");
    assert_eq!(d["result"][0]["metric"], serde_json::json!({}));
    assert_eq!(d["result"][0]["value"][1], "2");
    // `query_result(...)` variables go out as GET instant queries.
    let uri = format!(
        "/api/v1/query?query={}&time={e}",
        enc("count by (SessionName)(last_over_time(ray_node_cpu_count{}[1800s]))")
    );
    let d = assert_query_result(&get(&st, &uri).await, "vector", "query_result variable");
    assert_eq!(
        d["result"][0]["metric"],
        serde_json::json!({"SessionName": SESSION})
    );
}

#[tokio::test]
async fn newest_grafana_session() {
    newest_grafana_session_at(state()).await;
}

async fn newest_grafana_session_at(st: AppState) {
    // Label lookups snap to the 1-minute cache interval.
    let s = secs((NOW_MS - 30 * 60_000) / 60_000 * 60_000);
    let e = secs((NOW_MS + 59_999) / 60_000 * 60_000);

    // Health check: `1+1` at time=4 (POST), then buildinfo as GET.
    let a = post(&st, "/api/v1/query", &[("query", "1+1"), ("time", "4")]).await;
    let d = assert_query_result(&a, "scalar", "health check");
    assert_eq!(d["result"], serde_json::json!([4, "2"]));
    success_data(&get(&st, "/api/v1/status/buildinfo").await, "buildinfo");

    // Init is the same as 9.4.
    success_data(&get(&st, "/api/v1/rules").await, "rules");

    // Editor start, with `limit`.
    let names = assert_string_array(
        &success_data(
            &get(
                &st,
                &format!("/api/v1/label/__name__/values?limit=40000&start={s}&end={e}"),
            )
            .await,
            "names",
        ),
        "names",
    );
    assert!(names.len() > 50, "{}", names.len());
    assert_string_array(
        &success_data(
            &get(
                &st,
                &format!("/api/v1/labels?limit=40000&start={s}&end={e}"),
            )
            .await,
            "labels",
        ),
        "labels",
    );
    let md = success_data(&get(&st, "/api/v1/metadata?limit=40000").await, "metadata");
    assert!(md.is_object());

    // Variables via label values with match[] (and `metrics(regex)`).
    let uri = format!(
        "/api/v1/label/SessionName/values?limit=40000&start={s}&end={e}&match%5B%5D={}",
        enc("ray_node_cpu_utilization")
    );
    assert_eq!(
        assert_string_array(&success_data(&get(&st, &uri).await, "variable"), "variable"),
        [SESSION]
    );
    let uri = format!(
        "/api/v1/label/__name__/values?limit=40000&start={s}&end={e}&match%5B%5D={}",
        enc("{__name__=~\"ray_node_mem.*\"}")
    );
    let mem = assert_string_array(
        &success_data(&get(&st, &uri).await, "metrics()"),
        "metrics()",
    );
    assert!(!mem.is_empty());
    assert!(mem.iter().all(|n| n.starts_with("ray_node_mem")), "{mem:?}");
    // A selector matching nothing is an empty list, not an error.
    let uri = format!(
        "/api/v1/label/SessionName/values?limit=40000&start={s}&end={e}&match%5B%5D=nothing_here"
    );
    assert_eq!(
        success_data(&get(&st, &uri).await, "empty"),
        serde_json::json!([])
    );

    // `label_names(<match>)` as POST, and the series endpoint.
    let a = post(
        &st,
        "/api/v1/labels",
        &[
            ("end", &e),
            ("limit", "40000"),
            ("match[]", "{__name__=~\".*cpu.*\"}"),
            ("start", &s),
        ],
    )
    .await;
    let l = assert_string_array(
        &success_data(&a, "label_names(match)"),
        "label_names(match)",
    );
    assert!(l.contains(&"__name__".to_string()));
    let a = post(
        &st,
        "/api/v1/series",
        &[
            ("end", &e),
            ("limit", "40000"),
            ("match[]", "{__name__!=\"\"}"),
            ("start", &s),
        ],
    )
    .await;
    let all = assert_series(&success_data(&a, "all series"), "all series");
    assert!(all.len() > 100, "{}", all.len());

    // Panels: POST range queries (sorted keys, with `timeout` when a query
    // timeout is configured), then Ray's Data page query.
    let a = post(
        &st,
        "/api/v1/query_range",
        &[
            ("end", &e),
            (
                "query",
                "sum(rate(ray_node_network_received[1m0s])) by (instance)",
            ),
            ("start", &s),
            ("step", "15"),
            ("timeout", "30s"),
        ],
    )
    .await;
    let d = assert_query_result(&a, "matrix", "panel");
    assert_eq!(d["result"].as_array().unwrap().len(), 1);
    assert_eq!(
        d["result"][0]["metric"],
        serde_json::json!({"instance": "127.0.0.1:8080"})
    );
    let q = format!(
        "max_over_time(sum(ray_data_output_bytes{{SessionName='{SESSION}'}}) by (dataset)[1h:1s])"
    );
    let a = post(&st, "/api/v1/query", &[("query", &q), ("time", &e)]).await;
    // No Data workload ran in these scrapes: an empty vector, "No data".
    let d = assert_query_result(&a, "vector", "Ray data page");
    assert_eq!(d["result"], serde_json::json!([]));
    // A PromQL syntax error is a 400 envelope Grafana shows as text.
    let a = post(
        &st,
        "/api/v1/query",
        &[("query", "sum(rate(x[1m0s])"), ("time", &e)],
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["errorType"], "bad_data");
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"query\": 1:"),
        "{}",
        a.body
    );

    // Errors Grafana shows as text: a 400 envelope for bad input.
    let a = post(
        &st,
        "/api/v1/query_range",
        &[("end", "x"), ("query", "up"), ("start", &s), ("step", "15")],
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["status"], "error");
    assert_eq!(a.body["errorType"], "bad_data");
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"end\"")
    );
}

/// Status and gzip-decoded body bytes of one request.
async fn raw(st: &AppState, req: Request<Body>) -> (u16, Vec<u8>) {
    let resp = web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let gz = resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    if !gz {
        return (status, bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .unwrap();
    (status, out)
}

/// Panel queries as Grafana's backend sends them (POST form) and as the
/// GET fallback sends them.
fn panel_requests() -> Vec<Request<Body>> {
    let (s, e) = range();
    let exprs = [
        "sum by (SessionName) (ray_node_cpu_utilization)",
        "sum(rate(ray_node_network_received{SessionName=~\".*\"}[1m]))",
        "vector(1)",
        "1+1",
        "nothing_here",
        "sum(",
    ];
    let mut out = Vec::new();
    for q in exprs {
        let body = format!("end={e}&query={}&start={s}&step=15", form_enc(q));
        out.push(
            Request::post("/api/v1/query_range")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::from(body.clone()))
                .unwrap(),
        );
        out.push(
            Request::get(format!("/api/v1/query_range?{body}"))
                .body(Body::empty())
                .unwrap(),
        );
        let body = format!("query={}&time={}", form_enc(q), secs(NOW_MS));
        out.push(
            Request::post("/api/v1/query")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::from(body))
                .unwrap(),
        );
    }
    out
}

/// On a multi-thread runtime queries run on the request's own thread (first
/// with a budget, then again if they ran over it), on a current-thread
/// runtime on a blocking thread: the answers are the same bytes either way.
#[test]
fn queries_answer_alike_on_the_request_thread_and_a_blocking_thread() {
    let st = state();
    let answers = |st: &AppState, rt: tokio::runtime::Runtime| {
        rt.block_on(async {
            let mut out = Vec::new();
            for req in panel_requests() {
                out.push(raw(st, req).await);
            }
            out
        })
    };
    let multi = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let here = answers(&st, multi());
    // No inline budget: every query is stopped and run again.
    let mut rerun = st.clone();
    rerun.inline_budget = std::time::Duration::ZERO;
    assert_eq!(answers(&rerun, multi()), here);
    let off = answers(
        &st,
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    assert_eq!(here.len(), off.len());
    for (i, (a, b)) in here.iter().zip(&off).enumerate() {
        assert_eq!(a.0, b.0, "request {i}");
        assert_eq!(
            String::from_utf8_lossy(&a.1),
            String::from_utf8_lossy(&b.1),
            "request {i}"
        );
    }
    assert!(here.iter().filter(|a| a.0 == 200).count() >= 15);
    assert!(here.iter().any(|a| a.0 == 400));
}

/// The request's `timeout` still holds when the query runs on the
/// request's thread: the engine itself gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_holds_on_the_request_thread() {
    let st = state();
    let (s, e) = range();
    let body = format!(
        "end={e}&query={}&start={s}&step=15&timeout=0.000001",
        form_enc("sum(ray_node_cpu_utilization)")
    );
    let req = Request::post("/api/v1/query_range")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let (status, body) = raw(&st, req).await;
    assert_eq!(status, 503);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#
    );
}
