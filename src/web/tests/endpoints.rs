//! The other endpoints: static ones, runtime info, TSDB status, readiness,
//! unknown paths, CORS, gzip, federation, `/metrics`, lifecycle and body
//! limits.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::Labels;
use crate::web::{self, AppState, QueryValue};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;

#[tokio::test]
async fn static_endpoints_match_prometheus() {
    let mut st = state();
    st.build_info = serde_json::from_value::<BTreeMap<String, String>>(
        fixture_json("buildinfo")["data"].clone(),
    )
    .map(|m| web::BuildInfo {
        version: m["version"].clone(),
        revision: m["revision"].clone(),
        branch: m["branch"].clone(),
        build_user: m["buildUser"].clone(),
        build_date: m["buildDate"].clone(),
        go_version: m["goVersion"].clone(),
    })
    .unwrap();
    *st.config_yaml.write().unwrap() = fixture_json("status-config")["data"]["yaml"]
        .as_str()
        .unwrap()
        .to_string();
    st.flags = serde_json::from_value(fixture_json("status-flags")["data"].clone()).unwrap();

    assert_fixture(&get(&st, "/api/v1/status/buildinfo").await, "buildinfo");
    assert_fixture(&get(&st, "/api/v1/status/config").await, "status-config");
    assert_fixture(&get(&st, "/api/v1/status/flags").await, "status-flags");
    assert_fixture(&get(&st, "/api/v1/rules").await, "rules");
    assert_fixture(&get(&st, "/api/v1/alerts").await, "alerts");
    // Grafana's exemplar probe sends milliseconds as seconds.
    assert_fixture(
        &get(
            &st,
            "/api/v1/query_exemplars?query=test&start=1699998200000&end=1700000000000",
        )
        .await,
        "query_exemplars",
    );
    assert_fixture(&get(&st, "/-/healthy").await, "healthy");
    assert_fixture(&get(&st, "/-/ready").await, "ready");

    let r = get(&st, "/api/v1/rules?type=bogus").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "type": not supported value "bogus""#,
    );
    let r = get(&st, "/version").await;
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        fixture_json("buildinfo")["data"]
    );
}

#[tokio::test]
async fn runtimeinfo_has_prometheus_shape() {
    let mut st = state();
    st.start_time = UNIX_EPOCH + Duration::new(1_795_664_264, 318_607_465);
    let r = get(&st, "/api/v1/status/runtimeinfo").await;
    let (status, ct) = fixture_head("status-runtimeinfo");
    assert_eq!(
        (r.status.as_u16(), r.content_type.as_str()),
        (status, ct.as_str())
    );
    assert_same_shape(
        &r.json(),
        &fixture_json("status-runtimeinfo"),
        "runtimeinfo",
    );
    assert_eq!(
        r.json()["data"]["startTime"],
        "2026-11-26T03:37:44.318607465Z"
    );
    assert_eq!(r.json()["data"]["storageRetention"], "15d");
}

#[tokio::test]
async fn tsdb_status_is_computed_from_storage() {
    let st = state_with(series_store(), FakeTargets::default());
    let r = get(&st, "/api/v1/status/tsdb").await;
    let (status, ct) = fixture_head("status-tsdb");
    assert_eq!(
        (r.status.as_u16(), r.content_type.as_str()),
        (status, ct.as_str())
    );
    let v = r.json();
    assert_same_shape(&v, &fixture_json("status-tsdb"), "tsdb");
    let d = &v["data"];
    // The old series is outside the head window.
    assert_eq!(d["headStats"]["numSeries"], 4);
    assert_eq!(d["headStats"]["minTime"], NOW_MS - 20_000);
    assert_eq!(d["headStats"]["maxTime"], NOW_MS - 1000);
    assert_eq!(
        d["seriesCountByMetricName"],
        serde_json::json!([{"name": "ray_node_cpu_count", "value": 2}, {"name": "ray_tasks", "value": 2}])
    );
    assert_eq!(
        d["seriesCountByLabelValuePair"][0],
        serde_json::json!({"name": "job=ray", "value": 4})
    );
    assert_eq!(
        d["labelValueCountByLabelName"][0],
        serde_json::json!({"name": "IsHeadNode", "value": 2})
    );
}

#[tokio::test]
async fn readiness_gates_the_api() {
    let st = state();
    st.ready.store(false, Ordering::Release);
    for uri in [
        "/api/v1/query?query=up",
        "/api/v1/labels",
        "/-/ready",
        "/federate",
    ] {
        let r = get(&st, uri).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(r.body, "Service Unavailable");
        assert_eq!(r.content_type, "text/plain; charset=utf-8");
    }
    assert_fixture(&get(&st, "/-/healthy").await, "healthy");
    assert_eq!(
        get(&st, "/api/v1/status/walreplay").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let st = state();
    let r = get(&st, "/api/v1/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body, "404 page not found\n");
    let r = get(&st, "/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post_form(&st, "/api/v1/targets", "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body, "Method Not Allowed\n");
}

#[tokio::test]
async fn cors_and_options() {
    let st = state();
    let r = send(
        &st,
        Request::options("/api/v1/query")
            .header(header::ORIGIN, "http://grafana:3000")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(
        r.headers["access-control-allow-methods"],
        "GET, POST, OPTIONS"
    );
    let r = get(&st, "/api/v1/rules").await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn gzip_when_asked() {
    let st = state_with(MemStore::default(), metadata_targets());
    let req = Request::get("/api/v1/metadata")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let resp = web::router(st.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, fixture("metadata"));
    // Without the header, no compression.
    let r = get(&st, "/api/v1/metadata").await;
    assert!(!r.headers.contains_key(header::CONTENT_ENCODING));
}

#[tokio::test]
async fn federate_renders_latest_samples() {
    let st = state_with(series_store(), FakeTargets::default());
    *st.external_labels.write().unwrap() = Labels::from_pairs([("cluster", "c1")]);
    let r = get(
        &st,
        "/federate?match[]=ray_tasks&match[]={job=%22ray%22,State=%22RUNNING%22}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    // The FINISHED series ends in a stale marker and is skipped.
    assert_eq!(
        r.body,
        format!(
            "# TYPE ray_tasks untyped\nray_tasks{{State=\"RUNNING\",instance=\"192.0.2.2:8080\",job=\"ray\",cluster=\"c1\"}} 4 {}\n",
            NOW_MS - 10_000
        )
    );
    let r = get(&st, "/federate?match[]=ray_node_cpu_count").await;
    assert_eq!(r.body.matches("# TYPE").count(), 1);
    assert_eq!(r.body.lines().count(), 3);
    assert!(r.body.contains(",cluster=\"c1\"} 2 "));
    let r = get(&st, "/federate").await;
    assert_eq!(r.body, "");
    let r = get(&st, "/federate?match[]=up%7B").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn metrics_hook() {
    let mut st = state();
    st.self_metrics = Some(Arc::new(|| "raymon_up 1\n".to_string()));
    let r = get(&st, "/metrics").await;
    assert_eq!(r.body, "raymon_up 1\n");
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
}

#[tokio::test]
async fn lifecycle_endpoints() {
    let st = state();
    let r = post_form(&st, "/-/reload", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.")
    );
    let r = get(&st, "/-/quit").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "Only POST or PUT requests allowed"
        )
    );

    let mut st = state();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<web::ReloadRequest>(1);
    let answers = Arc::new(Mutex::new(vec![Err("bad yaml".to_string()), Ok(())]));
    let a = answers.clone();
    tokio::spawn(async move {
        while let Some(done) = rx.recv().await {
            let next = a.lock().unwrap().pop().unwrap();
            let _ = done.send(next);
        }
    });
    st.reload = Some(tx);
    let token = tokio_util::sync::CancellationToken::new();
    st.quit = Some(token.clone());

    let r = post_form(&st, "/-/reload", "").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, ""));
    let r = send(&st, Request::put("/-/reload").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body, "failed to reload config: bad yaml\n");
    let info = get(&st, "/api/v1/status/runtimeinfo").await.json();
    assert_eq!(info["data"]["reloadConfigSuccess"], false);

    assert!(!token.is_cancelled());
    let r = post_form(&st, "/-/quit", "").await;
    assert_eq!(r.body, "Requesting termination... Goodbye!");
    assert!(token.is_cancelled());
    let r = post_form(&st, "/-/quit", "").await;
    assert_eq!(r.body, "Termination already in progress.");
}

#[tokio::test]
async fn now_reflects_system_clock_by_default() {
    let st = AppState::new(
        Arc::new(MemStore::default()),
        Arc::new(FakeTargets::default()),
    );
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let now = (st.now_ms)();
    assert!(now >= before && now - before < 5_000);
}

#[tokio::test]
async fn request_bodies_are_limited() {
    let engine = FakeEngine::new(Ok(QueryValue::Scalar(0, 1.0)));
    let mut st = with_engine(&engine);
    st.max_body_bytes = 64;
    let big = format!("query={}", "x".repeat(200));
    let r = post_form(&st, "/api/v1/query", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A body without a known length hits the same limit while reading.
    let unsized_body =
        http_body_util::Full::new(axum::body::Bytes::from(big.clone())).map_frame(|f| f);
    assert!(
        axum::body::HttpBody::size_hint(&unsized_body)
            .exact()
            .is_none()
    );
    let req = Request::post("/api/v1/query")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::new(unsized_body))
        .unwrap();
    let r = send(&st, req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(engine.calls().is_empty());
    let r = post_form(&st, "/api/v1/query", "query=small").await;
    assert_eq!(r.status, StatusCode::OK);
}

/// `--web.cors.origin`: `*` for the default `.*`; the request's origin when
/// the regex (fully anchored) matches it; no allow-origin otherwise.
#[tokio::test]
async fn issue_19_cors_origin_and_page_title() {
    let allow = |st: AppState, origin: &'static str| async move {
        let req = Request::get("/api/v1/labels")
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap();
        let resp = web::router(st).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["vary"], "Origin");
        resp.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(
        allow(state(), "https://a.example").await.as_deref(),
        Some("*")
    );
    let mut st = state();
    st.cors_origin = Some(regex::Regex::new(r"^(?:https?://(a|b)\.example)$").unwrap());
    assert_eq!(
        allow(st.clone(), "https://b.example").await.as_deref(),
        Some("https://b.example")
    );
    assert_eq!(allow(st.clone(), "https://b.example.evil").await, None);
    assert_eq!(allow(st, "https://c.example").await, None);

    let mut st = state();
    st.page_title = "Ray <metrics>".to_string();
    let resp = web::router(st)
        .oneshot(Request::get("/graph").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("<title>Ray &lt;metrics&gt;</title>"),
        "{body}"
    );
}
