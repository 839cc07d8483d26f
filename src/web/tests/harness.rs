//! Helpers for the API tests: Prometheus's recorded answers (fixtures), an
//! in-memory store, fake targets and query engines, and requests sent
//! through the router without sockets.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::model::{Labels, Matcher, Sample};
use crate::scrape::status::{ActiveTarget, DroppedTarget, MetricMetadata, TargetsSource};
use crate::storage::{self, Querier, Queryable, Series};
use crate::web::{self, AppState, QueryEngine, QueryError, QueryValue};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub(super) fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fixtures/prometheus-api-samples")
        .join(name)
}

pub(super) fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(&format!("{name}.json"))).unwrap()
}

pub(super) fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The status code and `Content-Type` recorded next to a fixture.
pub(super) fn fixture_head(name: &str) -> (u16, String) {
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

pub(super) fn labels_of(v: &Value) -> Labels {
    Labels::from_pairs(
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
    )
}

pub(super) fn ms_of(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 1000.0).round() as i64
}

pub(super) fn point_of(v: &Value) -> (i64, f64) {
    let a = v.as_array().unwrap();
    (ms_of(&a[0]), a[1].as_str().unwrap().parse().unwrap())
}

/// Rebuilds the engine result behind a query fixture.
pub(super) fn query_value_of(fixture: &Value) -> QueryValue {
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
pub(super) fn assert_same_shape(got: &Value, want: &Value, path: &str) {
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
pub(super) struct MemStore {
    pub(super) series: Vec<Series>,
}

pub(super) struct MemQuerier<'a> {
    pub(super) store: &'a MemStore,
    pub(super) mint: i64,
    pub(super) maxt: i64,
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
pub(super) struct FakeTargets {
    pub(super) active: Vec<ActiveTarget>,
    pub(super) dropped: Vec<DroppedTarget>,
    pub(super) metadata: Vec<(Labels, Vec<MetricMetadata>)>,
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
pub(super) enum Call {
    Instant(String, i64),
    Range(String, i64, i64, i64),
}

/// Answers every query with `answer` and records the calls.
pub(super) struct FakeEngine {
    pub(super) answer: Result<QueryValue, QueryError>,
    pub(super) calls: Mutex<Vec<Call>>,
}

impl FakeEngine {
    pub(super) fn new(answer: Result<QueryValue, QueryError>) -> Arc<FakeEngine> {
        Arc::new(FakeEngine {
            answer,
            calls: Mutex::new(Vec::new()),
        })
    }

    pub(super) fn calls(&self) -> Vec<Call> {
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

pub(super) const NOW_MS: i64 = 1_795_664_538_374;

pub(super) fn fixed_now() -> i64 {
    NOW_MS
}

pub(super) fn state_with(store: MemStore, targets: FakeTargets) -> AppState {
    let mut st = AppState::new(Arc::new(store), Arc::new(targets));
    st.ready.store(true, Ordering::Release);
    st.now_ms = fixed_now;
    st
}

pub(super) fn state() -> AppState {
    state_with(MemStore::default(), FakeTargets::default())
}

pub(super) fn with_engine(engine: &Arc<FakeEngine>) -> AppState {
    let mut st = state();
    st.engine = Some(engine.clone());
    st
}

// ---------------------------------------------------------------- requests

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) content_type: String,
    pub(super) headers: axum::http::HeaderMap,
    pub(super) body: String,
}

impl Reply {
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

pub(super) async fn send(st: &AppState, req: Request<Body>) -> Reply {
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

pub(super) async fn get(st: &AppState, uri: &str) -> Reply {
    send(st, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub(super) async fn post_form(st: &AppState, uri: &str, form: &str) -> Reply {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap();
    send(st, req).await
}

/// Asserts the reply equals the fixture's body, status and content type.
pub(super) fn assert_fixture(r: &Reply, name: &str) {
    let (status, ct) = fixture_head(name);
    assert_eq!(r.status.as_u16(), status, "status of {name}");
    assert_eq!(r.content_type, ct, "content type of {name}");
    assert_eq!(r.body, fixture(name), "body of {name}");
}

pub(super) fn assert_error(r: &Reply, status: u16, error_type: &str, message: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.content_type, "application/json");
    let want = serde_json::json!({"status": "error", "errorType": error_type, "error": message});
    assert_eq!(r.json(), want);
}
