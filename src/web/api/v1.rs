//! `/api/v1` handlers: parameter validation, calls into storage and the
//! query engine, and the encodings of Prometheus 2.42's `web/api/v1/api.go`.
//!
//! Knows the wire format, not how queries are evaluated or samples stored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;

use super::answer;
use crate::model::{Labels, Matcher};
use crate::storage::{Queryable, Series};
use crate::web::envelope::{ApiError, ApiResponse, ApiResult};
use crate::web::params::{
    Form, MAX_TIME_MS, MIN_TIME_MS, format_rfc3339_nano, parse_duration, parse_time,
    parse_time_param,
};
use crate::web::selector::parse_match_params;
use crate::web::{
    AppState, HeadStats, QueryEngine, QueryError, Shared, Stat, TsdbStatus, Until, json, offload,
    targets,
};

/// Routes under `/api/v1`; all but `status/walreplay` wait for readiness.
pub fn routes(state: Shared) -> Router<Shared> {
    Router::new()
        .route("/query", get(query).post(query))
        .route("/query_range", get(query_range).post(query_range))
        .route(
            "/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .route("/format_query", get(format_query).post(format_query))
        .route("/labels", get(label_names).post(label_names))
        .route("/label/{name}/values", get(label_values).post(label_values))
        .route("/series", get(series).post(series).delete(drop_series))
        .route("/alertmanagers", get(alertmanagers))
        .route("/alerts", get(alerts))
        .route("/rules", get(rules))
        .route("/status/tsdb", get(status_tsdb))
        .route(
            "/admin/tsdb/{op}",
            post(crate::web::admin::handler).put(crate::web::admin::handler),
        )
        .route("/import", post(crate::web::import_export::import))
        .route(
            "/export",
            get(crate::web::import_export::export).post(crate::web::import_export::export),
        )
        // Agent mode keeps no data to query (Prometheus's `wrapAgent`).
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            super::refuse_in_agent,
        ))
        .route("/targets", get(targets::targets))
        .route("/targets/metadata", get(targets::target_metadata))
        .route("/scrape_pools", get(targets::scrape_pools))
        .route("/metadata", get(targets::metadata))
        .route("/status/config", get(status_config))
        .route("/status/runtimeinfo", get(status_runtimeinfo))
        .route("/status/buildinfo", get(status_buildinfo))
        .route("/status/flags", get(status_flags))
        .route_layer(middleware::from_fn_with_state(state, super::require_ready))
        .route("/status/walreplay", get(status_walreplay))
        .route("/write", post(crate::web::remote_write::handler))
}

const MAX_POINTS: i128 = 11_000;

fn no_engine() -> ApiError {
    ApiError::execution("query engine not available")
}

/// The effective deadline: the `timeout` parameter, capped by the server's.
fn query_deadline(st: &AppState, form: &Form) -> Result<Duration, ApiError> {
    let v = form.value("timeout");
    if v.is_empty() {
        return Ok(st.query_timeout);
    }
    let ns = parse_duration(v).map_err(|e| ApiError::invalid_param("timeout", e))?;
    let d = Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    Ok(d.min(st.query_timeout))
}

/// Runs blocking work on a query thread ([`offload`]), giving up after
/// `deadline`.
async fn blocking<T: Send + 'static>(
    deadline: Duration,
    f: impl FnOnce() -> Result<T, QueryError> + Send + 'static,
) -> Result<T, QueryError> {
    match tokio::time::timeout(deadline, offload::run(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(QueryError::Internal(e.to_string())),
        Err(_) => Err(QueryError::Timeout(
            "query timed out in expression evaluation".to_string(),
        )),
    }
}

/// How long past its deadline an engine that keeps deadlines is waited
/// for before the API answers for it.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Runs a query on `engine`. One that keeps deadlines is first tried right
/// here for [`AppState::inline_budget`] (handing even a small query to
/// another thread and back costs two wake-ups, more than the query), then,
/// if it ran over, run again on a query thread ([`offload`]) with what the
/// first try read. Should this request be dropped (its client went away),
/// the query is told to stop. Any other engine runs as [`blocking`] work.
pub(crate) async fn evaluate<T: Send + 'static>(
    st: &AppState,
    engine: Arc<dyn QueryEngine>,
    timeout: Duration,
    run: impl Fn(&dyn QueryEngine, Until) -> Option<Result<T, QueryError>> + Send + 'static,
) -> Result<T, QueryError> {
    let deadline = Instant::now() + timeout;
    let cancel = Arc::new(AtomicBool::new(false));
    let until = Until {
        deadline,
        budget: None,
        cancel: Some(cancel.clone()),
    };
    let unbudgeted = |r: Option<Result<T, QueryError>>| {
        r.unwrap_or_else(|| {
            Err(QueryError::Internal(
                "query stopped for a budget it was not given".to_string(),
            ))
        })
    };
    if !engine.keeps_deadlines() {
        return blocking(timeout, move || unbudgeted(run(engine.as_ref(), until))).await;
    }
    // While the store may keep a reader waiting (its index growing for a
    // burst of new series), a first try here could wait with it, and every
    // scrape with it: the query goes straight to a query thread.
    if !st.storage.may_block_readers() {
        let first = Until {
            budget: Some(Instant::now() + st.inline_budget),
            ..until.clone()
        };
        if let Some(r) = run(engine.as_ref(), first) {
            return r;
        }
    }
    let handoff = engine.handoff();
    let _cancel = offload::CancelOnDrop(cancel);
    let retry = offload::run(move || {
        handoff();
        unbudgeted(run(engine.as_ref(), until))
    });
    match tokio::time::timeout(timeout + DEADLINE_GRACE, retry).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(QueryError::Internal(e.to_string())),
        Err(_) => Err(QueryError::Timeout(
            "query timed out in expression evaluation".to_string(),
        )),
    }
}

async fn query(
    State(st): State<Shared>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, ApiError> {
    let now = (st.now_ms)();
    let ts =
        parse_time_param(&form, "time", now).map_err(|e| ApiError::invalid_param("time", e))?;
    let deadline = query_deadline(&st, &form)?;
    let engine = st.engine.clone().ok_or_else(no_engine)?;
    let q = form.value("query").to_string();
    match evaluate(&st, engine, deadline, move |e, until| {
        e.instant_until(&q, ts, until)
    })
    .await
    {
        Ok(v) => Ok(answer::respond(v, crate::web::gzip::plain_gzip(&headers))),
        Err(QueryError::BadData(m)) => Err(ApiError::invalid_param("query", m)),
        Err(e) => Err(e.into()),
    }
}

async fn query_range(
    State(st): State<Shared>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, ApiError> {
    let start = parse_time(form.value("start")).map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time(form.value("end")).map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step_ns =
        parse_duration(form.value("step")).map_err(|e| ApiError::invalid_param("step", e))?;
    if step_ns <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // Go's `end.Sub(start)` saturates at the largest Duration before dividing.
    let span_ns = (i128::from(end) - i128::from(start)) * 1_000_000;
    let span_ns = span_ns.min(i128::from(i64::MAX));
    if span_ns / i128::from(step_ns) > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let deadline = query_deadline(&st, &form)?;
    let engine = st.engine.clone().ok_or_else(no_engine)?;
    let q = form.value("query").to_string();
    let step_ms = (step_ns / 1_000_000).max(1);
    let run = move |e: &dyn QueryEngine, until| e.range_until(&q, start, end, step_ms, until);
    match evaluate(&st, engine, deadline, run).await {
        Ok(v) => Ok(answer::respond(v, crate::web::gzip::plain_gzip(&headers))),
        Err(e) => Err(e.into()),
    }
}

async fn query_exemplars(State(st): State<Shared>, form: Form) -> ApiResult {
    let start = parse_time_param(&form, "start", MIN_TIME_MS)
        .map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time_param(&form, "end", MAX_TIME_MS)
        .map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    // Exemplars are not stored, so the answer is always empty; the query is
    // still checked when a parser is plugged in.
    if let Some(f) = &st.formatter {
        f(form.value("query")).map_err(ApiError::bad_data)?;
    }
    Ok(ApiResponse::raw(b"[]".to_vec()))
}

async fn format_query(State(st): State<Shared>, form: Form) -> ApiResult {
    let Some(f) = &st.formatter else {
        return Err(ApiError::invalid_param(
            "query",
            "query formatting is not available",
        ));
    };
    let pretty = f(form.value("query")).map_err(|e| ApiError::invalid_param("query", e))?;
    ApiResponse::json(&pretty)
}

/// Start, end and matcher sets shared by the label and series endpoints.
struct Selection {
    start: i64,
    end: i64,
    sets: Vec<Vec<Matcher>>,
}

fn selection(form: &Form, wrap_match_error: bool) -> Result<Selection, ApiError> {
    let start = parse_time_param(form, "start", MIN_TIME_MS)
        .map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time_param(form, "end", MAX_TIME_MS)
        .map_err(|e| ApiError::invalid_param("end", e))?;
    let sets = parse_match_params(form.values("match[]")).map_err(|e| {
        if wrap_match_error {
            ApiError::invalid_param("match[]", e)
        } else {
            ApiError::bad_data(e)
        }
    })?;
    Ok(Selection { start, end, sets })
}

/// Runs `f` against a querier over the selection's range on a blocking
/// thread; storage errors become `execution` errors as in Prometheus.
pub(crate) async fn with_querier<T: Send + 'static>(
    st: &AppState,
    start: i64,
    end: i64,
    f: impl FnOnce(&dyn crate::storage::Querier) -> Result<T, crate::storage::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let storage: Arc<dyn Queryable> = st.storage.clone();
    let r = blocking(st.query_timeout, move || {
        let q = storage
            .querier(start, end)
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        f(q.as_ref()).map_err(|e| QueryError::Execution(e.to_string()))
    })
    .await;
    r.map_err(ApiError::from)
}

fn string_array(items: &[String]) -> ApiResponse {
    let mut out = Vec::with_capacity(16 + items.iter().map(|s| s.len() + 3).sum::<usize>());
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::push_str(&mut out, s);
    }
    out.push(b']');
    ApiResponse::raw(out)
}

async fn label_names(State(st): State<Shared>, form: Form) -> ApiResult {
    let sel = selection(&form, false)?;
    let names = with_querier(&st, sel.start, sel.end, move |q| {
        if sel.sets.is_empty() {
            return q.label_names(&[]);
        }
        let mut all = BTreeSet::new();
        for set in &sel.sets {
            all.extend(q.label_names(set)?);
        }
        Ok(all.into_iter().collect())
    })
    .await?;
    Ok(string_array(&names))
}

async fn label_values(State(st): State<Shared>, Path(name): Path<String>, form: Form) -> ApiResult {
    if !crate::model::is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!(
            "invalid label name: {}",
            crate::model::gofmt::go_quote(&name)
        )));
    }
    let sel = selection(&form, false)?;
    let values = with_querier(&st, sel.start, sel.end, move |q| {
        if sel.sets.is_empty() {
            let mut v = q.label_values(&name, &[])?;
            v.sort();
            return Ok(v);
        }
        let mut all = BTreeSet::new();
        for set in &sel.sets {
            all.extend(q.label_values(&name, set)?);
        }
        Ok(all.into_iter().collect())
    })
    .await?;
    Ok(string_array(&values))
}

async fn series(State(st): State<Shared>, form: Form) -> ApiResult {
    if let Some(e) = &form.error {
        return Err(ApiError::bad_data(format!(
            "error parsing form values: {e}"
        )));
    }
    if form.values("match[]").next().is_none() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let sel = selection(&form, true)?;
    let labels = with_querier(&st, sel.start, sel.end, move |q| {
        select_labels(q, &sel.sets)
    })
    .await?;
    let mut out = Vec::with_capacity(64 * labels.len() + 2);
    out.push(b'[');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::push_labels(&mut out, l);
    }
    out.push(b']');
    Ok(ApiResponse::raw(out))
}

/// The sorted, deduplicated union of the label sets matching any set.
fn select_labels(
    q: &dyn crate::storage::Querier,
    sets: &[Vec<Matcher>],
) -> Result<Vec<Labels>, crate::storage::Error> {
    let mut all = BTreeSet::new();
    for set in sets {
        all.extend(q.series(set)?);
    }
    Ok(all.into_iter().collect())
}

async fn drop_series() -> ApiResult {
    Err(ApiError::internal("not implemented"))
}

async fn alertmanagers() -> ApiResult {
    Ok(ApiResponse::raw(
        br#"{"activeAlertmanagers":[],"droppedAlertmanagers":[]}"#.to_vec(),
    ))
}

async fn alerts() -> ApiResult {
    Ok(ApiResponse::raw(br#"{"alerts":[]}"#.to_vec()))
}

async fn rules(form: Form) -> ApiResult {
    let typ = form.value("type").to_ascii_lowercase();
    if !typ.is_empty() && typ != "alert" && typ != "record" {
        return Err(ApiError::invalid_param(
            "type",
            format!(
                "not supported value {}",
                crate::model::gofmt::go_quote(&typ)
            ),
        ));
    }
    Ok(ApiResponse::raw(br#"{"groups":[]}"#.to_vec()))
}

#[derive(Serialize)]
struct ConfigYaml<'a> {
    yaml: &'a str,
}

async fn status_config(State(st): State<Shared>) -> ApiResult {
    let yaml = st
        .config_yaml
        .read()
        .map_err(|_| ApiError::internal("configuration lock poisoned"))?;
    ApiResponse::json(&ConfigYaml { yaml: &yaml })
}

async fn status_flags(State(st): State<Shared>) -> ApiResult {
    ApiResponse::json(&st.flags)
}

async fn status_buildinfo(State(st): State<Shared>) -> ApiResult {
    ApiResponse::json(&st.build_info)
}

#[derive(Serialize)]
struct RuntimeInfo {
    #[serde(rename = "startTime")]
    start_time: String,
    #[serde(rename = "CWD")]
    cwd: String,
    #[serde(rename = "reloadConfigSuccess")]
    reload_config_success: bool,
    #[serde(rename = "lastConfigTime")]
    last_config_time: String,
    #[serde(rename = "corruptionCount")]
    corruption_count: i64,
    #[serde(rename = "goroutineCount")]
    goroutine_count: usize,
    #[serde(rename = "GOMAXPROCS")]
    gomaxprocs: usize,
    #[serde(rename = "GOGC")]
    gogc: String,
    #[serde(rename = "GODEBUG")]
    godebug: String,
    #[serde(rename = "storageRetention")]
    storage_retention: String,
}

async fn status_runtimeinfo(State(st): State<Shared>) -> ApiResult {
    let cfg = *st
        .config_status
        .read()
        .map_err(|_| ApiError::internal("configuration lock poisoned"))?;
    // Prometheus reports the config time from a gauge in whole seconds.
    let last = cfg
        .last_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()))
        .ok();
    let (tasks, workers) = match tokio::runtime::Handle::try_current() {
        Ok(h) => (h.metrics().num_alive_tasks(), h.metrics().num_workers()),
        Err(_) => (0, 0),
    };
    let procs = std::thread::available_parallelism().map_or(workers, usize::from);
    ApiResponse::json(&RuntimeInfo {
        start_time: format_rfc3339_nano(Some(st.start_time)),
        cwd: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "<error retrieving current working directory>".to_string()),
        reload_config_success: cfg.success,
        last_config_time: format_rfc3339_nano(last),
        corruption_count: 0,
        goroutine_count: tasks,
        gomaxprocs: procs,
        gogc: String::new(),
        godebug: String::new(),
        storage_retention: st.storage_retention.clone(),
    })
}

async fn status_walreplay() -> ApiResult {
    Ok(ApiResponse::raw(
        br#"{"min":0,"max":0,"current":0}"#.to_vec(),
    ))
}

/// How far back the fallback `status/tsdb` looks: about what Prometheus
/// keeps in its head block.
const HEAD_WINDOW_MS: i64 = 2 * 3600 * 1000;

async fn status_tsdb(State(st): State<Shared>) -> ApiResult {
    if let Some(f) = st.tsdb_stats.clone() {
        // A walk over every series: off the worker that runs the scrapes.
        let s = tokio::task::spawn_blocking(move || f())
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(ApiError::internal)?;
        return ApiResponse::json(&s);
    }
    let now = (st.now_ms)();
    let series = with_querier(&st, now - HEAD_WINDOW_MS, now, |q| {
        let all = Matcher::new(
            crate::model::MatchOp::Regex,
            crate::model::METRIC_NAME,
            ".+",
        )
        .map_err(|e| crate::storage::Error::Other(e.to_string()))?;
        q.select(&[all])
    })
    .await
    .map_err(|e| ApiError::internal(e.message))?;
    ApiResponse::json(&tsdb_status(&series))
}

/// Cardinality statistics over `series`, top 10 of each list, as the
/// head's `Stats("__name__")`.
pub fn tsdb_status(series: &[Series]) -> TsdbStatus {
    let mut by_name: HashMap<&str, u64> = HashMap::new();
    let mut pairs: HashMap<(&str, &str), u64> = HashMap::new();
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    for s in series {
        if let Some(n) = s.labels.metric_name() {
            *by_name.entry(n).or_default() += 1;
        }
        for l in &s.labels {
            *pairs.entry((&l.name, &l.value)).or_default() += 1;
        }
        if let (Some(first), Some(last)) = (s.samples.first(), s.samples.last()) {
            min_t = min_t.min(first.t);
            max_t = max_t.max(last.t);
        }
    }
    let mut values_by_label: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (name, value) in pairs.keys() {
        let e = values_by_label.entry(name).or_default();
        e.0 += 1;
        e.1 += value.len() as u64;
    }
    let top = |items: Vec<(String, u64)>| -> Vec<Stat> {
        let mut items = items;
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        items.truncate(10);
        items
            .into_iter()
            .map(|(name, value)| Stat { name, value })
            .collect()
    };
    if series.is_empty() {
        (min_t, max_t) = (0, 0);
    }
    TsdbStatus {
        head_stats: HeadStats {
            num_series: series.len() as u64,
            num_label_pairs: pairs.len() as u64,
            chunk_count: series.len() as u64,
            min_time: min_t,
            max_time: max_t,
        },
        series_count_by_metric_name: top(by_name
            .iter()
            .map(|(n, c)| (n.to_string(), *c))
            .collect()),
        label_value_count_by_label_name: top(values_by_label
            .iter()
            .map(|(n, (c, _))| (n.to_string(), *c))
            .collect()),
        memory_in_bytes_by_label_name: top(values_by_label
            .iter()
            .map(|(n, (_, b))| (n.to_string(), *b))
            .collect()),
        series_count_by_label_value_pair: top(pairs
            .iter()
            .map(|((n, v), c)| (format!("{n}={v}"), *c))
            .collect()),
    }
}
