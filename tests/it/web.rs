//! End-to-end tests of the HTTP API through `web::router(state).oneshot(req)`,
//! checked byte for byte against real Prometheus 2.42 answers where the
//! fixtures allow, with an in-memory store and a fake query engine.

// Test helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use raymon::model::{Labels, Matcher, STALE_NAN, Sample};
use raymon::scrape::status::{ActiveTarget, DroppedTarget, Health, MetricMetadata, TargetsSource};
use raymon::storage::{self, Querier, Queryable, Series};
use raymon::web::{self, AppState, QueryEngine, QueryError, QueryValue};
use serde_json::Value;
use tower::ServiceExt;

// ---------------------------------------------------------------- fixtures

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/prometheus-api-samples")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(&format!("{name}.json"))).unwrap()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The status code and `Content-Type` recorded next to a fixture.
fn fixture_head(name: &str) -> (u16, String) {
    let h = std::fs::read_to_string(fixture_path(&format!("{name}.headers.txt"))).unwrap();
    let status = h.split_whitespace().nth(1).unwrap().parse().unwrap();
    let ct = h
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap()
        .trim()
        .to_string();
    (status, ct)
}

fn labels_of(v: &Value) -> Labels {
    Labels::from_pairs(
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
    )
}

fn ms_of(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 1000.0).round() as i64
}

fn point_of(v: &Value) -> (i64, f64) {
    let a = v.as_array().unwrap();
    (ms_of(&a[0]), a[1].as_str().unwrap().parse().unwrap())
}

/// Rebuilds the engine result behind a query fixture.
fn query_value_of(fixture: &Value) -> QueryValue {
    let data = &fixture["data"];
    let result = &data["result"];
    match data["resultType"].as_str().unwrap() {
        "scalar" => {
            let (t, v) = point_of(result);
            QueryValue::Scalar(t, v)
        }
        "vector" => QueryValue::Vector(
            result
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let (t, v) = point_of(&s["value"]);
                    (labels_of(&s["metric"]), t, v)
                })
                .collect(),
        ),
        "matrix" => QueryValue::Matrix(
            result
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let samples = s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            let (t, v) = point_of(p);
                            Sample { t, v }
                        })
                        .collect();
                    (labels_of(&s["metric"]), samples)
                })
                .collect(),
        ),
        other => panic!("unexpected result type {other}"),
    }
}

/// Same JSON structure: equal keys, same value kinds, arrays compared by
/// their first element.
fn assert_same_shape(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let gk: Vec<_> = g.keys().collect();
            let wk: Vec<_> = w.keys().collect();
            assert_eq!(gk, wk, "keys at {path}");
            for (k, wv) in w {
                assert_same_shape(&g[k], wv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            if let (Some(g0), Some(w0)) = (g.first(), w.first()) {
                assert_same_shape(g0, w0, &format!("{path}[0]"));
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => {}
        _ => panic!("kind differs at {path}: {got} vs {want}"),
    }
}

// ---------------------------------------------------------------- fakes

#[derive(Default)]
struct MemStore {
    series: Vec<Series>,
}

struct MemQuerier<'a> {
    store: &'a MemStore,
    mint: i64,
    maxt: i64,
}

impl Queryable for MemStore {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, storage::Error> {
        Ok(Box::new(MemQuerier {
            store: self,
            mint,
            maxt,
        }))
    }
}

impl MemQuerier<'_> {
    fn matching(&self, matchers: &[Matcher]) -> Vec<Series> {
        let mut out: Vec<Series> = self
            .store
            .series
            .iter()
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
            })
            .map(|s| Series {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|p| p.t >= self.mint && p.t <= self.maxt)
                    .copied()
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

impl Querier for MemQuerier<'_> {
    fn select(&self, matchers: &[Matcher]) -> Result<Vec<Series>, storage::Error> {
        Ok(self.matching(matchers))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, storage::Error> {
        let mut names: Vec<String> = self
            .matching(matchers)
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, storage::Error> {
        let mut values: Vec<String> = self
            .matching(matchers)
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

#[derive(Default)]
struct FakeTargets {
    active: Vec<ActiveTarget>,
    dropped: Vec<DroppedTarget>,
    metadata: Vec<(Labels, Vec<MetricMetadata>)>,
}

impl TargetsSource for FakeTargets {
    fn active_targets(&self) -> Vec<ActiveTarget> {
        self.active.clone()
    }
    fn dropped_targets(&self) -> Vec<DroppedTarget> {
        self.dropped.clone()
    }
    fn metadata(&self) -> Vec<(Labels, Vec<MetricMetadata>)> {
        self.metadata.clone()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Instant(String, i64),
    Range(String, i64, i64, i64),
}

/// Answers every query with `answer` and records the calls.
struct FakeEngine {
    answer: Result<QueryValue, QueryError>,
    calls: Mutex<Vec<Call>>,
}

impl FakeEngine {
    fn new(answer: Result<QueryValue, QueryError>) -> Arc<FakeEngine> {
        Arc::new(FakeEngine {
            answer,
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl QueryEngine for FakeEngine {
    fn instant(&self, query: &str, time_ms: i64) -> Result<QueryValue, QueryError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Instant(query.to_string(), time_ms));
        self.answer.clone()
    }

    fn range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryValue, QueryError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Range(query.to_string(), start_ms, end_ms, step_ms));
        self.answer.clone()
    }
}

const NOW_MS: i64 = 1_795_664_538_374;

fn fixed_now() -> i64 {
    NOW_MS
}

fn state_with(store: MemStore, targets: FakeTargets) -> AppState {
    let mut st = AppState::new(Arc::new(store), Arc::new(targets));
    st.ready.store(true, Ordering::Release);
    st.now_ms = fixed_now;
    st
}

fn state() -> AppState {
    state_with(MemStore::default(), FakeTargets::default())
}

fn with_engine(engine: &Arc<FakeEngine>) -> AppState {
    let mut st = state();
    st.engine = Some(engine.clone());
    st
}

// ---------------------------------------------------------------- requests

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn send(st: &AppState, req: Request<Body>) -> Reply {
    let resp = web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(st: &AppState, uri: &str) -> Reply {
    send(st, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post_form(st: &AppState, uri: &str, form: &str) -> Reply {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap();
    send(st, req).await
}

/// Asserts the reply equals the fixture's body, status and content type.
fn assert_fixture(r: &Reply, name: &str) {
    let (status, ct) = fixture_head(name);
    assert_eq!(r.status.as_u16(), status, "status of {name}");
    assert_eq!(r.content_type, ct, "content type of {name}");
    assert_eq!(r.body, fixture(name), "body of {name}");
}

fn assert_error(r: &Reply, status: u16, error_type: &str, message: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.content_type, "application/json");
    let want = serde_json::json!({"status": "error", "errorType": error_type, "error": message});
    assert_eq!(r.json(), want);
}

// ---------------------------------------------------------------- queries

#[tokio::test]
async fn query_results_match_prometheus_byte_for_byte() {
    for name in [
        "query-vector1",
        "query-scalar",
        "query-tasks-by-state",
        "query-data-dashboard-api-subquery",
    ] {
        let engine = FakeEngine::new(Ok(query_value_of(&fixture_json(name))));
        let st = with_engine(&engine);
        let r = post_form(&st, "/api/v1/query", "query=q&time=1795664538.302").await;
        assert_fixture(&r, name);
        assert_eq!(
            engine.calls(),
            [Call::Instant("q".into(), 1_795_664_538_302)]
        );
    }
    for name in ["query_range-node-cpu", "query_range-histogram-quantile"] {
        let engine = FakeEngine::new(Ok(query_value_of(&fixture_json(name))));
        let st = with_engine(&engine);
        let r = post_form(
            &st,
            "/api/v1/query_range",
            "end=1795664538&query=q&start=1795664418&step=15",
        )
        .await;
        assert_fixture(&r, name);
        assert_eq!(
            engine.calls(),
            [Call::Range(
                "q".into(),
                1_795_664_418_000,
                1_795_664_538_000,
                15_000
            )]
        );
    }
}

#[tokio::test]
async fn query_encodes_special_values_and_strings() {
    let labels = Labels::from_pairs([("__name__", "x"), ("q", "a\"<b>")]);
    let engine = FakeEngine::new(Ok(QueryValue::Vector(vec![
        (labels.clone(), 1_500, f64::NAN),
        (labels.clone(), -1_500, f64::INFINITY),
        (labels.clone(), 1_435_781_451_050, 1e-7),
        (labels.clone(), 0, -2e21),
    ])));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
    assert_eq!(
        r.body,
        concat!(
            r#"{"status":"success","data":{"resultType":"vector","result":["#,
            r#"{"metric":{"__name__":"x","q":"a\"\u003cb\u003e"},"value":[1.500,"NaN"]},"#,
            r#"{"metric":{"__name__":"x","q":"a\"\u003cb\u003e"},"value":[-1.500,"+Inf"]},"#,
            r#"{"metric":{"__name__":"x","q":"a\"\u003cb\u003e"},"value":[1435781451.050,"1e-07"]},"#,
            r#"{"metric":{"__name__":"x","q":"a\"\u003cb\u003e"},"value":[0,"-2e+21"]}]}}"#
        )
    );

    let engine = FakeEngine::new(Ok(QueryValue::Scalar(1_500, 1e-7)));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.0000001"]}}"#
    );

    let engine = FakeEngine::new(Ok(QueryValue::String(4_000, "hi\n".into())));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":{"resultType":"string","result":[4,"hi\n"]}}"#
    );

    let engine = FakeEngine::new(Ok(QueryValue::Matrix(Vec::new())));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x[5m]").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#
    );
}

#[tokio::test]
async fn query_defaults_time_to_now_and_accepts_rfc3339() {
    let engine = FakeEngine::new(Ok(QueryValue::Vector(Vec::new())));
    let st = with_engine(&engine);
    get(&st, "/api/v1/query?query=up").await;
    get(&st, "/api/v1/query?query=up&time=2015-07-01T20:10:51.781Z").await;
    get(&st, "/api/v1/query?query=up&time=4").await;
    assert_eq!(
        engine.calls(),
        [
            Call::Instant("up".into(), NOW_MS),
            Call::Instant("up".into(), 1_435_781_451_781),
            Call::Instant("up".into(), 4_000),
        ]
    );
}

/// Go accepts any byte but controls in a request target. The `http` crate
/// under hyper rejects a raw `"`, `<`, `>` or space in the query before the
/// router runs, so clients must encode those; everything else (Ray's
/// `query=vector(1)`, braces, brackets, quotes `'`) arrives as sent.
#[tokio::test]
async fn unencoded_query_strings_are_accepted() {
    let engine = FakeEngine::new(Ok(QueryValue::Vector(Vec::new())));
    let st = with_engine(&engine);
    for uri in [
        "/api/v1/query?query=vector(1)",
        "/api/v1/query?query=sum(rate(ray_tasks{State=~'RUN.*',job!=`x`}[5m]))",
        "/api/v1/query?query=1+1",
        "/api/v1/query?query=a%20%2B%20b",
    ] {
        let r = get(&st, uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
    }
    assert_eq!(
        engine
            .calls()
            .into_iter()
            .map(|c| match c {
                Call::Instant(q, _) => q,
                Call::Range(q, ..) => q,
            })
            .collect::<Vec<_>>(),
        [
            "vector(1)",
            "sum(rate(ray_tasks{State=~'RUN.*',job!=`x`}[5m]))",
            "1 1",
            "a + b"
        ]
    );
}

#[tokio::test]
async fn post_form_equals_get_and_body_wins_over_url() {
    let value = query_value_of(&fixture_json("query_range-node-cpu"));
    let engine = FakeEngine::new(Ok(value));
    let st = with_engine(&engine);
    let params = "query=rate(x%5B1m%5D)&start=1795664418&end=1795664538&step=15s";
    let by_get = get(&st, &format!("/api/v1/query_range?{params}")).await;
    let by_post = post_form(&st, "/api/v1/query_range", params).await;
    let split = post_form(
        &st,
        "/api/v1/query_range?query=ignored&step=15",
        "query=rate(x%5B1m%5D)&start=1795664418&end=1795664538",
    )
    .await;
    assert_eq!(by_get.status, StatusCode::OK);
    assert_eq!(by_get.body, by_post.body);
    assert_eq!(by_get.body, split.body);
    let calls = engine.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| *c == calls[0]));
    assert_eq!(
        calls[0],
        Call::Range(
            "rate(x[1m])".into(),
            1_795_664_418_000,
            1_795_664_538_000,
            15_000
        )
    );
}

#[tokio::test]
async fn query_parameter_errors() {
    let engine = FakeEngine::new(Ok(QueryValue::Vector(Vec::new())));
    let st = with_engine(&engine);

    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2").await;
    assert_fixture(&r, "query_range-error-missing-step");

    let r = get(
        &st,
        "/api/v1/query_range?query=up&start=0&end=110010&step=10",
    )
    .await;
    assert_fixture(&r, "query_range-too-many-points");
    // Exactly 11,000 intervals (11,001 points) still pass.
    let r = get(
        &st,
        "/api/v1/query_range?query=up&start=0&end=110000&step=10",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = get(&st, "/api/v1/query?query=up&time=x").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "time": Invalid time value for 'time': cannot parse "x" to a valid timestamp"#,
    );
    let r = get(&st, "/api/v1/query_range?query=up&end=2&step=1").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "start": cannot parse "" to a valid timestamp"#,
    );
    let r = get(&st, "/api/v1/query_range?query=up&start=5&end=2&step=1").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "end": end timestamp must not be before start time"#,
    );
    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2&step=0").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
    );
    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2&step=5x").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "step": cannot parse "5x" to a valid duration"#,
    );
    let r = get(&st, "/api/v1/query?query=up&timeout=soon").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "timeout": cannot parse "soon" to a valid duration"#,
    );
    // None of the rejected requests reached the engine.
    assert_eq!(engine.calls().len(), 1);
}

#[tokio::test]
async fn engine_errors_map_to_prometheus_error_types() {
    let parse = "1:15: parse error: unexpected end of input inside braces";
    let engine = FakeEngine::new(Err(QueryError::BadData(parse.into())));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
    assert_fixture(&r, "query-error-parse");
    // Range queries report parse errors without the parameter prefix.
    let r = get(
        &with_engine(&engine),
        "/api/v1/query_range?query=x&start=1&end=2&step=1",
    )
    .await;
    assert_error(&r, 400, "bad_data", parse);

    let want = fixture_json("query-error-many-to-many");
    let msg = want["error"].as_str().unwrap().to_string();
    let engine = FakeEngine::new(Err(QueryError::Execution(msg)));
    let r = post_form(&with_engine(&engine), "/api/v1/query", "query=x").await;
    assert_fixture(&r, "query-error-many-to-many");

    for (err, status, kind) in [
        (QueryError::Timeout("t".into()), 503, "timeout"),
        (QueryError::Canceled("c".into()), 503, "canceled"),
        (QueryError::Internal("i".into()), 500, "internal"),
    ] {
        let message = err.to_string();
        let engine = FakeEngine::new(Err(err));
        let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
        assert_error(&r, status, kind, &message);
    }
}

#[tokio::test]
async fn queries_without_an_engine_fail_cleanly() {
    let st = state();
    let r = get(&st, "/api/v1/query?query=vector(1)").await;
    assert_error(&r, 422, "execution", "query engine not available");
    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2&step=1").await;
    assert_error(&r, 422, "execution", "query engine not available");
    // Parameters are still validated first.
    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2").await;
    assert_fixture(&r, "query_range-error-missing-step");
}

/// An engine that takes longer than the query's `timeout`.
struct SlowEngine;

impl QueryEngine for SlowEngine {
    fn instant(&self, _: &str, _: i64) -> Result<QueryValue, QueryError> {
        std::thread::sleep(Duration::from_millis(300));
        Ok(QueryValue::Scalar(0, 0.0))
    }
    fn range(&self, _: &str, _: i64, _: i64, _: i64) -> Result<QueryValue, QueryError> {
        self.instant("", 0)
    }
}

#[tokio::test]
async fn query_timeout_parameter_is_honoured() {
    let mut st = state();
    st.engine = Some(Arc::new(SlowEngine));
    let r = get(&st, "/api/v1/query?query=x&timeout=10ms").await;
    assert_error(
        &r,
        503,
        "timeout",
        "query timed out in expression evaluation",
    );
    let r = get(&st, "/api/v1/query?query=x&timeout=5s").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn format_query_uses_the_plugged_formatter() {
    let mut st = state();
    let r = get(&st, "/api/v1/format_query?query=up").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    st.formatter = Some(Arc::new(|q: &str| {
        if q.contains('{') && !q.contains('}') {
            Err("1:3: parse error: unexpected end of input inside braces".to_string())
        } else {
            Ok(q.split_whitespace().collect::<Vec<_>>().join(" "))
        }
    }));
    let r = post_form(&st, "/api/v1/format_query", "query=sum(%20up%20)").await;
    assert_eq!(r.body, r#"{"status":"success","data":"sum( up )"}"#);
    let r = get(&st, "/api/v1/format_query?query=up%7B").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "query": 1:3: parse error: unexpected end of input inside braces"#,
    );
}

// ---------------------------------------------------------------- series and labels

fn series_store() -> MemStore {
    let mut series: Vec<Series> = fixture_json("series-ray_node_cpu_count")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| Series {
            labels: labels_of(l),
            samples: vec![Sample {
                t: NOW_MS - 1000,
                v: 2.0,
            }],
        })
        .collect();
    series.push(Series {
        labels: Labels::from_pairs([
            ("__name__", "ray_tasks"),
            ("State", "RUNNING"),
            ("instance", "192.0.2.2:8080"),
            ("job", "ray"),
        ]),
        samples: vec![
            Sample {
                t: NOW_MS - 20_000,
                v: 3.0,
            },
            Sample {
                t: NOW_MS - 10_000,
                v: 4.0,
            },
        ],
    });
    series.push(Series {
        labels: Labels::from_pairs([
            ("__name__", "ray_tasks"),
            ("State", "FINISHED"),
            ("instance", "192.0.2.2:8081"),
            ("job", "ray"),
        ]),
        samples: vec![
            Sample {
                t: NOW_MS - 20_000,
                v: 5.0,
            },
            Sample {
                t: NOW_MS - 10_000,
                v: STALE_NAN,
            },
        ],
    });
    series.push(Series {
        labels: Labels::from_pairs([("__name__", "old_metric"), ("job", "gone")]),
        samples: vec![Sample { t: 1_000, v: 1.0 }],
    });
    MemStore { series }
}

#[tokio::test]
async fn series_matches_prometheus() {
    let st = state_with(series_store(), FakeTargets::default());
    let r = get(
        &st,
        "/api/v1/series?match%5B%5D=ray_node_cpu_count&start=1795664000&end=1795664538",
    )
    .await;
    assert_fixture(&r, "series-ray_node_cpu_count");

    // Several match[] are a deduplicated union, sorted by labels.
    let r = post_form(
        &st,
        "/api/v1/series",
        "match[]=ray_node_cpu_count&match[]={RayNodeType=\"head\"}&match[]={State=~\"RUN.*\"}",
    )
    .await;
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["__name__"], "ray_node_cpu_count");
    assert_eq!(data[2]["State"], "RUNNING");

    // Time range excludes series without samples in it.
    let r = get(
        &st,
        "/api/v1/series?match[]={job=%22gone%22}&start=0&end=10",
    )
    .await;
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1);
    let r = get(&st, "/api/v1/series?match[]={job='gone'}&start=100").await;
    assert_eq!(r.body, r#"{"status":"success","data":[]}"#);
}

#[tokio::test]
async fn series_errors() {
    let st = state_with(series_store(), FakeTargets::default());
    let r = get(&st, "/api/v1/series").await;
    assert_error(&r, 400, "bad_data", "no match[] parameter provided");
    let r = get(&st, "/api/v1/series?match[]={}").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#,
    );
    let r = get(&st, "/api/v1/series?match[]=up%7B").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().starts_with(
        r#"invalid parameter "match[]": 1:4: parse error: unexpected end of input inside braces"#
    ));
    let r = get(&st, "/api/v1/series?match[]=up&start=yesterday").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "start": Invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#,
    );
    let r = send(
        &st,
        Request::delete("/api/v1/series?match[]=up")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_error(&r, 500, "internal", "not implemented");
}

#[tokio::test]
async fn label_values_match_prometheus() {
    let st = state_with(series_store(), FakeTargets::default());
    let r = get(
        &st,
        "/api/v1/label/instance/values?match[]=ray_node_cpu_count",
    )
    .await;
    assert_fixture(&r, "label-instance-values-match");
    let r = get(
        &st,
        "/api/v1/label/SessionName/values?match[]=ray_node_cpu_count&start=1795664000",
    )
    .await;
    assert_fixture(&r, "label-SessionName-values-match");
    let r = get(
        &st,
        "/api/v1/label/ray_io_cluster/values?match[]={__name__=~%22ray_.*%22}",
    )
    .await;
    assert_fixture(&r, "label-ray_io_cluster-values-match");

    let r = get(&st, "/api/v1/label/__name__/values").await;
    assert_eq!(
        r.json()["data"],
        serde_json::json!(["old_metric", "ray_node_cpu_count", "ray_tasks"])
    );
    let r = get(
        &st,
        "/api/v1/label/job/values?match[]=ray_tasks&match[]=old_metric",
    )
    .await;
    assert_eq!(r.json()["data"], serde_json::json!(["gone", "ray"]));

    let r = get(&st, "/api/v1/label/0bad/values").await;
    assert_error(&r, 400, "bad_data", r#"invalid label name: "0bad""#);
    let r = get(&st, "/api/v1/label/job/values?match[]={job=~'.*'}").await;
    assert_error(
        &r,
        400,
        "bad_data",
        "match[] must contain at least one non-empty matcher",
    );
}

#[tokio::test]
async fn label_names_with_and_without_match() {
    let st = state_with(series_store(), FakeTargets::default());
    let r = get(&st, "/api/v1/labels?match[]=ray_tasks").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":["State","__name__","instance","job"]}"#
    );
    let by_post = post_form(&st, "/api/v1/labels", "match[]=ray_tasks").await;
    assert_eq!(by_post.body, r.body);
    let r = get(&st, "/api/v1/labels?start=0&end=10").await;
    assert_eq!(r.body, r#"{"status":"success","data":["__name__","job"]}"#);
    let all = get(&st, "/api/v1/labels").await;
    let (status, ct) = fixture_head("labels");
    assert_eq!(
        (all.status.as_u16(), all.content_type.as_str()),
        (status, ct.as_str())
    );
    assert_same_shape(&all.json(), &fixture_json("labels"), "labels");
    assert!(
        all.json()["data"]
            .as_array()
            .unwrap()
            .contains(&"IsHeadNode".into())
    );
    let r = get(&st, "/api/v1/labels?start=x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- targets and metadata

fn targets_from_fixture() -> FakeTargets {
    let data = &fixture_json("targets")["data"];
    let active = data["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let last = t["lastScrape"].as_str().unwrap();
            // "2026-11-26T03:42:11.133910241Z": seconds from the parser, nanos by hand.
            let (whole, frac) = last.trim_end_matches('Z').split_once('.').unwrap();
            let ms = web::params::parse_rfc3339(&format!("{whole}Z")).unwrap();
            let nanos: u32 = format!("{frac:0<9}").parse().unwrap();
            let dur = t["lastScrapeDuration"].to_string();
            let dur_nanos: u64 = format!("{:0<9}", dur.trim_start_matches("0."))
                .parse()
                .unwrap();
            ActiveTarget {
                discovered_labels: labels_of(&t["discoveredLabels"]),
                labels: labels_of(&t["labels"]),
                scrape_pool: t["scrapePool"].as_str().unwrap().into(),
                scrape_url: t["scrapeUrl"].as_str().unwrap().into(),
                global_url: t["globalUrl"].as_str().unwrap().into(),
                last_error: t["lastError"].as_str().unwrap().into(),
                last_scrape: Some(
                    UNIX_EPOCH
                        + Duration::from_millis(ms as u64)
                        + Duration::from_nanos(nanos.into()),
                ),
                last_scrape_duration: Duration::from_nanos(dur_nanos),
                health: Health::Up,
                scrape_interval: Duration::from_secs(10),
                scrape_timeout: Duration::from_secs(10),
            }
        })
        .collect();
    FakeTargets {
        active,
        ..FakeTargets::default()
    }
}

#[tokio::test]
async fn targets_match_prometheus_byte_for_byte() {
    let st = state_with(MemStore::default(), targets_from_fixture());
    let r = get(&st, "/api/v1/targets").await;
    assert_fixture(&r, "targets");
    let r = get(&st, "/api/v1/targets?state=active&scrapePool=ray").await;
    assert_fixture(&r, "targets");
}

#[tokio::test]
async fn targets_state_and_pool_filters() {
    let mut t = targets_from_fixture();
    let mut other = t.active[0].clone();
    other.scrape_pool = "aaa".into();
    other.health = Health::Unknown;
    other.last_scrape = None;
    other.last_error = "boom".into();
    other.scrape_interval = Duration::from_secs(90);
    t.active.push(other);
    t.dropped.push(DroppedTarget {
        discovered_labels: Labels::from_pairs([("__address__", "x:1"), ("job", "ray")]),
    });
    let st = state_with(MemStore::default(), t);

    let r = get(&st, "/api/v1/targets").await.json();
    let active = r["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 5);
    // Pools in name order.
    assert_eq!(active[0]["scrapePool"], "aaa");
    assert_eq!(active[0]["health"], "unknown");
    assert_eq!(active[0]["lastScrape"], "0001-01-01T00:00:00Z");
    assert_eq!(active[0]["scrapeInterval"], "1m30s");
    assert_eq!(
        r["data"]["droppedTargets"],
        serde_json::json!([{"discoveredLabels": {"__address__": "x:1", "job": "ray"}}])
    );

    let r = get(&st, "/api/v1/targets?state=dropped").await.json();
    assert_eq!(r["data"]["activeTargets"], serde_json::json!([]));
    assert_eq!(r["data"]["droppedTargets"].as_array().unwrap().len(), 1);
    let r = get(&st, "/api/v1/targets?state=Active").await.json();
    assert_eq!(r["data"]["droppedTargets"], serde_json::json!([]));
    let r = get(&st, "/api/v1/targets?scrapePool=aaa").await.json();
    assert_eq!(r["data"]["activeTargets"].as_array().unwrap().len(), 1);
    assert_eq!(r["data"]["droppedTargets"], serde_json::json!([]));

    let r = get(&st, "/api/v1/scrape_pools").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":{"scrapePools":["aaa","ray"]}}"#
    );
}

fn metadata_targets() -> FakeTargets {
    let data = fixture_json("metadata");
    let mut first = Vec::new();
    let mut all = Vec::new();
    for (name, list) in data["data"].as_object().unwrap() {
        for (i, m) in list.as_array().unwrap().iter().enumerate() {
            let md = MetricMetadata {
                metric: name.clone(),
                kind: m["type"].as_str().unwrap().into(),
                help: m["help"].as_str().unwrap().into(),
                unit: m["unit"].as_str().unwrap().into(),
            };
            if i == 0 {
                first.push(md.clone());
            }
            all.push(md);
        }
    }
    let head = Labels::from_pairs([("instance", "192.0.2.2:8080"), ("job", "ray")]);
    let worker = Labels::from_pairs([("instance", "192.0.2.2:8081"), ("job", "ray")]);
    FakeTargets {
        metadata: vec![(head, first), (worker, all)],
        ..FakeTargets::default()
    }
}

#[tokio::test]
async fn metadata_matches_prometheus() {
    let st = state_with(MemStore::default(), metadata_targets());
    // The second target repeats the first's entries: they are deduplicated.
    let r = get(&st, "/api/v1/metadata").await;
    assert_fixture(&r, "metadata");
    let r = get(&st, "/api/v1/metadata?metric=ray_tasks").await;
    assert_fixture(&r, "metadata-ray_tasks");
    let r = get(&st, "/api/v1/metadata?limit=5").await;
    let got = r.json();
    let want = fixture_json("metadata-limit5");
    assert_eq!(got["data"].as_object().unwrap().len(), 5);
    let first = |v: &Value| {
        v["data"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone()
    };
    assert_same_shape(&first(&got), &first(&want), "metadata.data.*");
    let r = get(&st, "/api/v1/metadata?metric=nope").await;
    assert_eq!(r.body, r#"{"status":"success","data":{}}"#);
    let r = get(&st, "/api/v1/metadata?limit=x").await;
    assert_error(&r, 400, "bad_data", "limit must be a number");
}

#[tokio::test]
async fn target_metadata_lists_per_target() {
    let st = state_with(MemStore::default(), metadata_targets());
    let r = get(
        &st,
        "/api/v1/targets/metadata?match_target={instance=%22192.0.2.2:8080%22}&metric=ray_tasks",
    )
    .await;
    assert_eq!(
        r.body,
        concat!(
            r#"{"status":"success","data":[{"target":{"instance":"192.0.2.2:8080","job":"ray"},"#,
            r#""type":"gauge","help":"Current number of tasks currently in a particular state.","unit":""}]}"#
        )
    );
    let r = get(&st, "/api/v1/targets/metadata?limit=1").await.json();
    let items = r["data"].as_array().unwrap();
    assert!(items.len() > 1);
    assert!(
        items
            .iter()
            .all(|i| i["target"]["instance"] == "192.0.2.2:8080")
    );
    assert!(items[0]["metric"].is_string());
}

// ---------------------------------------------------------------- status and others

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
    let mut st = state_with(series_store(), FakeTargets::default());
    st.external_labels = Labels::from_pairs([("cluster", "c1")]);
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
