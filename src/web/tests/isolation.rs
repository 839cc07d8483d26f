//! Issue 16 through the router: `query.max-samples` answers 422 for range
//! answers and subqueries, and random and mutated requests to every route
//! answer without panics, hangs or unbounded memory. (The scrape isolation
//! of a live raymon is `tests/it/isolation.rs`.)

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::testing::enc;

/// Reports no targets.
struct NoTargets;

impl crate::scrape::status::TargetsSource for NoTargets {
    fn active_targets(&self) -> Vec<crate::scrape::status::ActiveTarget> {
        Vec::new()
    }
    fn dropped_targets(&self) -> Vec<crate::scrape::status::DroppedTarget> {
        Vec::new()
    }
    fn metadata(
        &self,
    ) -> Vec<(
        crate::model::Labels,
        Vec<crate::scrape::status::MetricMetadata>,
    )> {
        Vec::new()
    }
}

const NOW_MS: i64 = 1_795_664_538_123;

/// An API over a head of 100 series `m{i}` with a sample every 15 s for
/// the hour before `NOW_MS`, and an engine with `max_samples`; writes go
/// to the same head.
fn api_state(max_samples: usize) -> crate::web::AppState {
    use crate::storage::Appendable;
    let head = Arc::new(crate::tsdb::Head::new(crate::tsdb::HeadOptions::default()));
    let mut app = head.appender();
    for i in 0..100 {
        let l = crate::model::Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
        for k in 0..240 {
            app.append(0, &l, NOW_MS - 3_600_000 + k * 15_000, k as f64)
                .unwrap();
        }
    }
    app.commit().unwrap();
    let mut st = crate::web::AppState::new(head.clone(), Arc::new(NoTargets));
    let engine = crate::promql::engine::Engine::new(crate::promql::engine::EngineOptions {
        max_samples,
        timeout: Duration::from_secs(5),
        ..Default::default()
    });
    st.engine = Some(Arc::new(crate::web::promql_engine::PromqlEngine::new(
        engine,
        head.clone(),
    )));
    st.formatter = Some(Arc::new(crate::web::promql_engine::format_query));
    st.appendable = Some(head.clone());
    st.remote_write = Some(head);
    st.query_timeout = Duration::from_secs(5);
    st.ready.store(true, Ordering::Release);
    st.now_ms = || NOW_MS;
    st
}

/// Sends one request through the router; status and body.
async fn call(
    st: &crate::web::AppState,
    req: axum::http::Request<axum::body::Body>,
) -> (u16, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = crate::web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, body)
}

fn get_req(uri: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn issue_16_max_samples_answers_422_for_range_answers_and_subqueries() {
    let st = api_state(100_000);
    let (start, end) = ((NOW_MS - 3_600_000) / 1000, NOW_MS / 1000);
    let too_many = r#"{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}"#;
    // 100 series x 3,601 steps of 1 s: 360,100 points in the answer.
    let uri = format!("/api/v1/query_range?query=m&start={start}&end={end}&step=1");
    let (status, body) = call(&st, get_req(&uri)).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (422, too_many)
    );
    // A subquery of 100 series x 3,601 points.
    let uri = format!("/api/v1/query?query={}", enc("max_over_time(m[1h:1s])"));
    let (status, body) = call(&st, get_req(&uri)).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (422, too_many)
    );
    // The same at a coarser step fits.
    let uri = format!("/api/v1/query_range?query=m&start={start}&end={end}&step=60");
    assert_eq!(call(&st, get_req(&uri)).await.0, 200);
    let uri = format!("/api/v1/query?query={}", enc("max_over_time(m[1h:1m])"));
    assert_eq!(call(&st, get_req(&uri)).await.0, 200);
}

/// Every route, with valid and hostile parameters.
const ROUTES: &[&str] = &[
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/query_exemplars",
    "/api/v1/format_query",
    "/api/v1/labels",
    "/api/v1/label/__name__/values",
    "/api/v1/label/i/values",
    "/api/v1/series",
    "/api/v1/targets",
    "/api/v1/targets/metadata",
    "/api/v1/scrape_pools",
    "/api/v1/metadata",
    "/api/v1/alertmanagers",
    "/api/v1/alerts",
    "/api/v1/rules",
    "/api/v1/status/config",
    "/api/v1/status/runtimeinfo",
    "/api/v1/status/buildinfo",
    "/api/v1/status/flags",
    "/api/v1/status/tsdb",
    "/api/v1/status/walreplay",
    "/api/v1/admin/tsdb/delete_series",
    "/api/v1/import",
    "/api/v1/export",
    "/api/v1/write",
    "/federate",
    "/metrics",
    "/-/ready",
    "/-/healthy",
    "/-/reload",
    "/-/quit",
    "/version",
    "/nope",
];

const QUERIES: &[&str] = &[
    "m",
    "sum by (i) (rate(m[5m]))",
    "max_over_time(m[30d:1ms])",
    "max_over_time(vector(1)[30d:1ms])",
    "histogram_quantile(0.9, sum by (le) (rate(m[1m])))",
    "count_values(\"v\", m)",
    "topk(5, m) or on() vector(time())",
    "label_replace(m, \"x\", \"$1\", \"i\", \"(.*)\")",
    "{__name__=~\".+\"}",
    "m[1h]",
    "absent(nope)",
    "1 / 0",
];

const VALUES: &[&str] = &[
    "",
    "0",
    "-1",
    "1e308",
    "NaN",
    "+Inf",
    "9223372036854775807",
    "-9223372036854775808",
    "2020-01-01T00:00:00Z",
    "1ms",
    "1y",
    "5m",
    "abc",
    "%ZZ",
    "{",
    "m{i=~\"(((((((a+)+)+)+)+)+)+\"}",
    "\u{0}",
];

/// One random request: a route, a method, and parameters drawn from valid
/// values, hostile values and random bytes, sometimes mutated.
fn random_request(
    rng: &mut crate::testing::Rng,
) -> (String, axum::http::Request<axum::body::Body>) {
    // Half go to the query routes, where the expensive work is.
    let among = if rng.below(2) == 0 { 2 } else { ROUTES.len() };
    let route = ROUTES[rng.below(among)];
    let names = [
        "query",
        "time",
        "start",
        "end",
        "step",
        "timeout",
        "match[]",
        "limit",
        "dedup",
        "first_line",
    ];
    let mut params = Vec::new();
    for _ in 0..rng.below(6) {
        let name = names[rng.below(names.len())];
        let mut v = match rng.below(4) {
            0 => QUERIES[rng.below(QUERIES.len())].to_string(),
            1 => VALUES[rng.below(VALUES.len())].to_string(),
            2 => ((NOW_MS / 1000) - rng.below(7200) as i64).to_string(),
            _ => (0..rng.below(40))
                .map(|_| char::from(32 + rng.below(95) as u8))
                .collect(),
        };
        if rng.below(4) == 0 && !v.is_empty() {
            // Mutate: cut, double or flip a byte.
            let mut b = v.into_bytes();
            let i = rng.below(b.len());
            match rng.below(3) {
                0 => b.truncate(i),
                1 => b.extend_from_within(..),
                _ => b[i] = b[i].wrapping_add(1 + rng.below(200) as u8),
            }
            v = String::from_utf8_lossy(&b).to_string();
        }
        params.push(format!("{}={}", enc(name), enc(&v)));
    }
    let query = params.join("&");
    let post = rng.below(3) == 0;
    let uri = format!("{route}?{query}");
    let req = if post {
        let body: Vec<u8> = match rng.below(3) {
            0 => query.clone().into_bytes(),
            1 => (0..rng.below(4096)).map(|_| rng.next() as u8).collect(),
            _ => format!("m{{i=\"{}\"}} 1 {}\n# EOF\n", rng.below(10), NOW_MS / 1000).into_bytes(),
        };
        let ctype = [
            "application/x-www-form-urlencoded",
            "text/plain",
            "application/x-protobuf",
            "application/openmetrics-text",
            "",
        ][rng.below(5)];
        let mut b = axum::http::Request::post(&uri);
        if !ctype.is_empty() {
            b = b.header("content-type", ctype);
        }
        if rng.below(2) == 0 {
            b = b.header("content-encoding", "snappy");
        }
        b.body(axum::body::Body::from(body)).unwrap()
    } else {
        get_req(&uri)
    };
    (format!("{} {uri}", if post { "POST" } else { "GET" }), req)
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_random_and_mutated_requests_to_every_route() {
    let st = api_state(1_000_000);
    let mut rng = crate::testing::Rng::seeded("API fuzz", 0x5EED_0016);
    let started = Instant::now();
    let rss_before = rss_bytes();
    let mut statuses = std::collections::BTreeMap::new();
    let mut n = 0;
    // Bounded in count and in time.
    while n < 1500 && started.elapsed() < Duration::from_secs(90) {
        let (what, req) = random_request(&mut rng);
        let t = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(10), call(&st, req)).await;
        let (status, body) = answer.unwrap_or_else(|_| panic!("no answer in 10 s: {what}"));
        // The engine's deadline is 5 s; nothing may hang past it by much.
        assert!(
            t.elapsed() < Duration::from_secs(7),
            "{what} took {:?}",
            t.elapsed()
        );
        assert!((200..600).contains(&status), "{what}: {status}");
        // A 500 is Prometheus's answer for some errors ("admin APIs
        // disabled"), always in its envelope, never a bare failure.
        if status == 500 && what.contains("/api/") {
            let body = String::from_utf8_lossy(&body);
            assert!(body.starts_with(r#"{"status":"error""#), "{what}: {body}");
        }
        *statuses.entry(status).or_insert(0) += 1;
        n += 1;
    }
    let grown = rss_bytes().saturating_sub(rss_before);
    println!(
        "{n} requests in {:?}, statuses {statuses:?}, RSS grew {} MiB",
        started.elapsed(),
        grown >> 20
    );
    assert!(n >= 200, "only {n} requests");
    assert!(grown < 2 << 30, "RSS grew {} MiB", grown >> 20);
    // Still serving.
    let (status, _) = call(&st, get_req("/api/v1/query?query=up")).await;
    assert_eq!(status, 200);
}
