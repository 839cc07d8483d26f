//! Issue 3's import and export through `web::router(state).oneshot` on a
//! real head: bit-exact round trips, stale markers, chunked answers, errors
//! that name the line; and issue 16's write guards. (raymon's own `/metrics`
//! and `raymon import` against a serve process are `tests/it/ops.rs`.)

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::model::{Labels, STALE_NAN, is_stale_nan};
use crate::scrape::ScrapeStatus;
use crate::storage::Appendable;
use crate::testing::Rng;
use crate::tsdb::{Head, HeadOptions};
use crate::web::{self, AppState};

#[path = "export_format.rs"]
mod export_format;
use export_format::*;

/// Import on (`--web.enable-import`), with no bounds on sample times: these
/// tests backfill samples from 1970 and 2023.
fn state(head: &Arc<Head>) -> AppState {
    let mut st = AppState::new(head.clone(), Arc::new(ScrapeStatus::default()));
    st.appendable = Some(head.clone());
    st.write_limits = web::WriteLimits::none();
    st.ready.store(true, Ordering::Release);
    st
}

/// A request with the content type `raymon import` sends.
async fn call(st: &AppState, method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(
            "content-type",
            "application/openmetrics-text; version=1.0.0",
        )
        .body(Body::from(body))
        .unwrap();
    let resp = web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn issue_3_import_then_export_round_trips_bit_exact() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = state(&head);
    let (text, want) = generate(8, 300, 0x9e37_79b9_7f4a_7c15);
    let (status, body) = call(&st, "POST", "/api/v1/import", text.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let total: usize = want.values().map(Vec::len).sum();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["samples"].as_u64().unwrap() as usize, total);

    let (status, body) = call(
        &st,
        "GET",
        &format!(
            "/api/v1/export?match[]={}",
            crate::testing::enc("{__name__=~\"ray_.+\"}")
        ),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let got = parse_export(&body);
    assert_eq!(got.len(), want.len());
    for (labels, samples) in &want {
        assert_eq!(got.get(labels), Some(samples), "{labels:?}");
    }
    // One line per series.
    assert_eq!(body.lines().count(), want.len());
}

#[tokio::test]
async fn issue_3_export_keeps_stale_markers_apart_from_nan() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let l = Labels::from_pairs([("__name__", "up"), ("job", "ray")]);
    let mut app = head.appender();
    for (t, v) in [(1000, 1.0), (2000, f64::NAN), (3000, STALE_NAN)] {
        app.append(0, &l, t, v).unwrap();
    }
    app.commit().unwrap();
    let st = state(&head);
    let (status, body) = call(&st, "GET", "/api/v1/export?match[]=up", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "{\"metric\":{\"__name__\":\"up\",\"job\":\"ray\"},\"values\":[1,\"NaN\",null],\"timestamps\":[1000,2000,3000]}\n"
    );
    // `start` and `end` are inclusive bounds in seconds, as elsewhere in the API.
    let (_, body) = call(
        &st,
        "GET",
        "/api/v1/export?match[]=up&start=2&end=2",
        Vec::new(),
    )
    .await;
    assert!(body.contains("\"timestamps\":[2000]}"), "{body}");
    let (status, body) = call(&st, "GET", "/api/v1/export", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("no match[] parameter provided"), "{body}");
}

#[tokio::test]
async fn issue_3_export_streams_large_answers_in_chunks() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut app = head.appender();
    for s in 0..200 {
        let l = Labels::from_pairs([("__name__", "m".to_string()), ("i", s.to_string())]);
        for t in 0..500 {
            app.append(0, &l, t * 1000, f64::from(s * t as i32))
                .unwrap();
        }
    }
    app.commit().unwrap();
    let req = Request::builder()
        .uri("/api/v1/export?match[]=m")
        .body(Body::empty())
        .unwrap();
    let resp = web::router(state(&head)).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut frames = 0;
    let mut bytes = Vec::new();
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            frames += 1;
            bytes.extend_from_slice(&d);
        }
    }
    assert!(frames > 3, "{frames} frames for {} bytes", bytes.len());
    let got = parse_export(std::str::from_utf8(&bytes).unwrap());
    assert_eq!(got.len(), 200);
    assert!(got.values().all(|s| s.len() == 500));
}

async fn import_error(text: &str, query: &str) -> (StatusCode, String, Arc<Head>) {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = state(&head);
    let uri = format!("/api/v1/import{query}");
    let (status, body) = call(&st, "POST", &uri, text.as_bytes().to_vec()).await;
    (status, body, head)
}

#[tokio::test]
async fn issue_3_bad_import_input_names_the_line() {
    // Input, query, error text, samples stored (those before the bad line).
    let cases: [(&str, &str, &str, usize); 7] = [
        (
            "a 1 1\na 2 2\na 3\n# EOF\n",
            "",
            "line 3: sample has no timestamp",
            2,
        ),
        (
            "a 1 10\na 2 20\nb 1 5\na 3 15\n# EOF\n",
            "",
            "line 4: out of order sample for",
            3,
        ),
        ("a 1 10\na{x=\"1} 2 20\n# EOF\n", "", "line 2, column", 1),
        (
            "a 1 10\na 2 20\n",
            "",
            "line 3: input does not end with \\\"# EOF\\\"",
            2,
        ),
        (
            "a 1 10\n# EOF\na 2 20\n",
            "",
            "line 3: unexpected data after",
            1,
        ),
        (
            "a 1 10\na 2\n# EOF\n",
            "?first_line=1001",
            "line 1002: sample has no timestamp",
            1,
        ),
        (
            "a 1 10\na 2 10\n# EOF\n",
            "",
            "line 2: sample for a at 10000 ms repeats a timestamp",
            1,
        ),
    ];
    for (text, query, want, kept) in cases {
        let (status, body, head) = import_error(text, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert!(body.contains("\"errorType\":\"bad_data\""), "{body}");
        assert!(body.contains(want), "{text:?}: want {want:?} in {body}");
        let q = crate::storage::Queryable::querier(&*head, i64::MIN, i64::MAX).unwrap();
        let all =
            crate::model::Matcher::new(crate::model::MatchOp::Regex, "__name__", ".+").unwrap();
        let stored: usize = q
            .select(&[all])
            .unwrap()
            .iter()
            .map(|s| s.samples.len())
            .sum();
        assert_eq!(stored, kept, "{text:?}: {body}");
        assert!(
            body.contains(&format!("({kept} samples before it were imported)")),
            "{body}"
        );
    }
}

/// Import used to write for anyone who could reach the server.
#[tokio::test]
async fn issue_16_import_is_off_without_its_flag() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = state(&head);
    st.appendable = None;
    let (status, body) = call(&st, "POST", "/api/v1/import", b"a 1 1\n# EOF\n".to_vec()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body,
        "import needs to be enabled with --web.enable-import\n"
    );
    assert_eq!(head.stats().num_series, 0);
}

// ------------------------------------------------------ issue 16: write guards

async fn send(st: &AppState, req: Request<Body>) -> axum::response::Response {
    web::router(st.clone()).oneshot(req).await.unwrap()
}

async fn text_of(resp: axum::response::Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Any page a user opens may POST these types to any address, loopback
/// included, without asking the server first (a CORS "simple request").
#[tokio::test]
async fn issue_16_import_refuses_bodies_a_web_page_can_send_unasked() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = state(&head);
    for ct in [
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("Multipart/Form-Data; boundary=x"),
        None,
    ] {
        let mut req = Request::post("/api/v1/import").header("origin", "http://evil.example");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = send(&st, req.body(Body::from("a 1 1\n# EOF\n")).unwrap()).await;
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        let body = text_of(resp).await;
        assert!(
            body.contains("CORS preflight; send Content-Type: application/openmetrics-text"),
            "{body}"
        );
    }
    assert_eq!(head.stats().num_series, 0);
    // What `raymon import` sends is taken.
    let (status, body) = call(&st, "POST", "/api/v1/import", b"a 1 1\n# EOF\n".to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The API answered every origin with `Access-Control-Allow-Origin: *`,
/// writes included, so a page could also read what a write answered.
#[tokio::test]
async fn issue_16_write_endpoints_send_no_cors_headers() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = state(&head);
    st.remote_write = Some(head.clone());
    let writes = [
        ("POST", "/api/v1/import", "application/openmetrics-text"),
        ("POST", "/api/v1/write", "application/x-protobuf"),
        ("POST", "/api/v1/admin/tsdb/snapshot", "application/json"),
        ("DELETE", "/api/v1/series?match[]=a", "application/json"),
    ];
    for (method, uri, ct) in writes {
        for m in [method, "OPTIONS"] {
            // A preflight names the method it asks for.
            let req = Request::builder()
                .method(m)
                .uri(uri)
                .header("origin", "http://evil.example")
                .header("access-control-request-method", method)
                .header("content-type", ct)
                .body(Body::from("a 1 1\n# EOF\n"))
                .unwrap();
            let resp = send(&st, req).await;
            for h in [
                "access-control-allow-origin",
                "access-control-allow-methods",
                "access-control-allow-headers",
            ] {
                assert!(!resp.headers().contains_key(h), "{m} {uri}: {h}");
            }
        }
    }
    // Reads keep Prometheus's CORS answer.
    let req = Request::get("/api/v1/labels")
        .header("origin", "http://grafana.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&st, req).await.headers()["access-control-allow-origin"],
        "*"
    );
}

/// Samples from 1970 or from the year 5138 were stored as given.
#[tokio::test]
async fn issue_16_import_refuses_samples_outside_the_time_window() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = state(&head);
    // What serve has by default: the retention time back, 10 minutes ahead.
    st.write_limits = web::WriteLimits::default();
    let cases = [
        ("a 1 1\n# EOF\n", "is too old", "--web.write.max-age"),
        (
            "a 1 99999999999\n# EOF\n",
            "is too far in the future",
            "--web.write.max-future",
        ),
    ];
    for (text, want, flag) in cases {
        let (status, body) = call(&st, "POST", "/api/v1/import", text.as_bytes().to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains(want) && body.contains(flag), "{body}");
    }
    assert_eq!(head.stats().num_series, 0);
    let now = web::system_now_ms();
    let text = format!("a 1 {}.{:03}\n# EOF\n", now / 1000, now % 1000);
    let (status, body) = call(&st, "POST", "/api/v1/import", text.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// One series with 100k labels took seconds of CPU to import; it is now
/// refused by the label limit at once (and would be linear without it).
#[tokio::test]
async fn issue_16_import_of_a_series_with_100k_labels_is_refused_clearly() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = state(&head);
    st.write_limits.labels = web::WriteLimits::default().labels;
    let pairs: Vec<String> = (0..100_000).map(|i| format!("l{i}=\"v\"")).collect();
    let text = format!("wide{{{}}} 1 1\n# EOF\n", pairs.join(","));
    let (status, body) = call(&st, "POST", "/api/v1/import", text.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains(
            "line 1: label_limit exceeded (metric: wide, number of labels: 100001, limit: 256)"
        ),
        "{body}"
    );
    assert_eq!(head.stats().num_series, 0);
}
