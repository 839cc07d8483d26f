//! The data behind dashboard pages: a dashboard's JSON, its variables with
//! their options and current values, and one panel's series. Each answer
//! runs only the queries the dashboard itself holds, with variable values
//! substituted by Grafana's rules, so these routes can be open to viewers
//! who may not use the query API (see `docs/decisions.md`).
//!
//! Knows the dashboard model and the query seam, not how pages draw.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::dashboards::{self, Dashboards};
use super::templating::{self, Kind, VarQuery, Variable};
use super::timerange::{self, QueryTiming};
use crate::model::Labels;
use crate::web::api::v1::{evaluate, with_querier};
use crate::web::params::Form;
use crate::web::range_cache::Mark;
use crate::web::{AppState, QueryError, QueryValue, Shared};

/// The most points a panel asks for (Prometheus's own limit per series).
const MAX_DATA_POINTS: u32 = 11_000;

/// Why a page's data request is refused; the page shows the message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dashboard(#[from] dashboards::Error),
    #[error(transparent)]
    Time(#[from] timerange::Error),
    #[error(transparent)]
    Variable(#[from] templating::Error),
    #[error("{0}")]
    BadRequest(String),
}

impl IntoResponse for Error {
    /// `{"status":"error","error":…}`: 404 for what does not exist, 400
    /// for what the request got wrong.
    fn into_response(self) -> Response {
        let status = match self {
            Error::Dashboard(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        (
            status,
            axum::Json(json!({"status": "error", "error": self.to_string()})),
        )
            .into_response()
    }
}

fn dashboards_of(st: &AppState) -> Result<&Arc<Dashboards>, Error> {
    st.dashboards
        .as_ref()
        .ok_or(Error::Dashboard(dashboards::Error::NoDirs))
}

fn load(st: &AppState, uid: &str) -> Result<Arc<Value>, Error> {
    Ok(dashboards_of(st)?.get(uid)?)
}

/// `GET /api/dashboards/uid/{uid}`: the dashboard as Grafana's API wraps it.
pub async fn dashboard(
    State(st): State<Shared>,
    Path(uid): Path<String>,
) -> Result<Response, Error> {
    let d = load(&st, &uid)?;
    Ok(axum::Json(json!({
        "dashboard": d.as_ref(),
        "meta": {"canEdit": false, "canSave": false, "provisioned": true}
    }))
    .into_response())
}

/// `GET /api/dashboards`: uid and title of each dashboard.
pub async fn list(State(st): State<Shared>) -> Result<Response, Error> {
    let d = dashboards_of(&st)?;
    Ok(axum::Json(json!({"status": "success", "data": d.list()})).into_response())
}

/// The time range of a request: `from` and `to` as Grafana takes them,
/// the dashboard's saved range when absent.
struct Range {
    from_ms: i64,
    to_ms: i64,
}

fn range(st: &AppState, form: &Form, dashboard: &Value) -> Result<Range, Error> {
    let now = (st.now_ms)();
    let saved = |k: &str, dflt: &str| {
        dashboard
            .pointer(&format!("/time/{k}"))
            .and_then(Value::as_str)
            .unwrap_or(dflt)
            .to_string()
    };
    let pick = |k: &str, dflt: &str| {
        let v = form.value(k);
        if v.is_empty() {
            saved(k, dflt)
        } else {
            v.to_string()
        }
    };
    let from_ms = timerange::parse_time(&pick("from", "now-1h"), now, false)?;
    let to_ms = timerange::parse_time(&pick("to", "now"), now, true)?;
    if to_ms <= from_ms {
        return Err(Error::BadRequest(
            "the time range is empty: from must be before to".to_string(),
        ));
    }
    Ok(Range { from_ms, to_ms })
}

/// The `var-NAME` values of the request.
fn url_values(form: &Form, name: &str) -> Vec<String> {
    let key = format!("var-{name}");
    form.values(&key).map(str::to_string).collect()
}

/// Resolves the dashboard's variables in order: a query variable's query
/// sees the values chosen for the variables before it.
async fn resolve_variables(
    st: &AppState,
    dashboard: &Value,
    form: &Form,
    r: &Range,
    all_options: bool,
) -> Result<Vec<Variable>, templating::Error> {
    let mut done: Vec<Variable> = Vec::new();
    let span = timerange::query_timing(r.from_ms, r.to_ms, 1, st.dashboard_scrape_ms, 0);
    let builtins = builtins(&span);
    for mut v in templating::variables(dashboard) {
        match v.kind {
            Kind::Datasource => {
                let name = st.datasource_name.clone();
                v.options = vec![templating::VarOption {
                    text: name.clone(),
                    value: name,
                }];
            }
            // A panel needs a query variable's options only to expand
            // "All" without an allValue: a value from the URL saves the
            // query on every panel of every refresh.
            Kind::Query
                if !all_options
                    && !url_values(form, &v.name).is_empty()
                    && (v.all_value.is_some()
                        || !url_values(form, &v.name)
                            .iter()
                            .any(|x| x == templating::ALL)) => {}
            Kind::Query => {
                let query = templating::interpolate(&v.query, &done, &builtins)?;
                match run_var_query(st, &query, r).await {
                    Ok(texts) => {
                        v.options = templating::options_from(texts, &v.regex, v.sort, &v.name)?;
                    }
                    Err(e) => v.error = Some(e),
                }
            }
            _ => {}
        }
        // Any datasource a URL names is this one.
        let given = url_values(form, &v.name);
        let given = (v.kind != Kind::Datasource).then_some(given);
        templating::choose_current(&mut v, given.as_deref())?;
        done.push(v);
    }
    Ok(done)
}

/// A query variable's results as texts (before its regex).
async fn run_var_query(st: &AppState, query: &str, r: &Range) -> Result<Vec<String>, String> {
    let (start, end) = (r.from_ms, r.to_ms);
    match templating::parse_var_query(query) {
        VarQuery::LabelValues { selector, label } => {
            let matchers = match &selector {
                Some(s) => crate::web::selector::parse_metric_selector(s)?,
                None => Vec::new(),
            };
            let got = with_querier(st, start, end, move |q| q.label_values(&label, &matchers))
                .await
                .map_err(|e| e.to_string())?;
            let set: BTreeSet<String> = got.into_iter().collect();
            Ok(set.into_iter().collect())
        }
        VarQuery::LabelNames => with_querier(st, start, end, |q| q.label_names(&[]))
            .await
            .map_err(|e| e.to_string()),
        VarQuery::Metrics(re) => {
            let re = templating::js_regex(&format!("/{re}/")).map_err(|e| e.to_string())?;
            let names = with_querier(st, start, end, |q| q.label_values("__name__", &[]))
                .await
                .map_err(|e| e.to_string())?;
            Ok(names.into_iter().filter(|n| re.is_match(n)).collect())
        }
        VarQuery::Series(sel) => {
            let matchers = crate::web::selector::parse_metric_selector(&sel)?;
            let series = with_querier(st, start, end, move |q| {
                q.select(&matchers)
                    .map(|s| s.into_iter().map(|s| s.labels).collect::<Vec<_>>())
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok(series.iter().map(series_text).collect())
        }
        VarQuery::QueryResult(expr) => {
            let engine = st.engine.clone().ok_or("query engine not available")?;
            let v = evaluate(st, engine, st.query_timeout, move |e, until| {
                e.instant_until(&expr, end, until)
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok(match v {
                QueryValue::Vector(v) => v
                    .iter()
                    .map(|(l, t, v)| format!("{} {} {}", series_text(l), number(*v), t))
                    .collect(),
                QueryValue::Scalar(t, v) => vec![format!("{} {t}", number(v))],
                QueryValue::String(t, s) => vec![format!("{s} {t}")],
                QueryValue::Matrix(_) => Vec::new(),
            })
        }
    }
}

/// `name{a="b",c="d"}` as Grafana writes a series for variable queries
/// (label values unescaped).
fn series_text(l: &Labels) -> String {
    let name = l.metric_name().unwrap_or("");
    let parts: Vec<String> = l
        .iter()
        .filter(|p| p.name != "__name__")
        .map(|p| format!("{}=\"{}\"", p.name, p.value))
        .collect();
    format!("{name}{{{}}}", parts.join(","))
}

fn number(v: f64) -> String {
    crate::model::gofmt::format_g(v)
}

fn builtins(t: &QueryTiming) -> Vec<(&'static str, String)> {
    vec![
        ("__interval", t.interval_var.clone()),
        ("__interval_ms", t.interval_ms_var.clone()),
        ("__rate_interval", t.rate_interval.clone()),
        ("__range", t.range.clone()),
        ("__range_s", t.range_s.clone()),
        ("__range_ms", t.range_ms.clone()),
    ]
}

/// `GET /api/dashboards/uid/{uid}/variables`: the variables with their
/// options and current values for this time range and `var-*` values.
pub async fn variables(
    State(st): State<Shared>,
    Path(uid): Path<String>,
    form: Form,
) -> Result<Response, Error> {
    let d = load(&st, &uid)?;
    let r = range(&st, &form, &d)?;
    let vars = resolve_variables(&st, &d, &form, &r, true).await?;
    Ok(axum::Json(json!({"status": "success", "data": vars})).into_response())
}

/// `GET /api/dashboards/uid/{uid}/panels/{id}/query`: the panel's series,
/// each target run as Grafana's Prometheus datasource would run it, with
/// the expression, range and step that were used.
pub async fn panel_query(
    State(st): State<Shared>,
    Path((uid, id)): Path<(String, String)>,
    form: Form,
) -> Result<Response, Error> {
    let d = load(&st, &uid)?;
    let id = id
        .parse::<i64>()
        .map_err(|_| Error::BadRequest(format!("panelId {id:?} is not a number")))?;
    let panel = dashboards::panel(&d, &uid, id)?;
    let r = range(&st, &form, &d)?;
    let points = match form.value("maxDataPoints") {
        "" => 1000,
        v => v
            .parse::<u32>()
            .map_err(|_| {
                Error::BadRequest(format!("maxDataPoints {v:?} is not a positive number"))
            })?
            .clamp(1, MAX_DATA_POINTS),
    };
    let offset = match form.value("utcOffset") {
        "" => 0,
        v => v.parse::<i64>().unwrap_or(0).clamp(-86_400, 86_400),
    };
    let vars = resolve_variables(&st, &d, &form, &r, false).await?;
    let timing =
        timerange::query_timing(r.from_ms, r.to_ms, points, st.dashboard_scrape_ms, offset);
    let builtins = builtins(&timing);
    let targets: Vec<Target> = panel
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("hide").and_then(Value::as_bool) != Some(true))
        .map(|t| Target::new(t, &vars, &builtins))
        .collect();
    let grid = Grid::of(&timing);
    // Taken before any of this answer's reads, for the token.
    let mark = st.engine.as_ref().and_then(|e| e.mark());
    let asked = grid.fingerprint(&targets);
    let held = match form.value("since") {
        "" => None,
        v => Some(Held::parse(v).ok_or_else(|| {
            Error::BadRequest(format!(
                "since {v:?} is not a token from an earlier answer of this panel"
            ))
        })?),
    }
    .filter(|h| h.fingerprint == asked && h.step_ms == grid.step_ms);
    let mut out = Vec::with_capacity(targets.len());
    for t in &targets {
        out.push(run_target(&st, t, &grid, &timing, held.as_ref()).await);
    }
    let token = mark.map(|m| {
        Held {
            mark: m,
            last_ms: grid.end_ms,
            step_ms: grid.step_ms,
            fingerprint: asked,
        }
        .to_string()
    });
    Ok(axum::Json(json!({
        "status": "success",
        "data": {
            "interval": timing.interval,
            "from": r.from_ms,
            "to": r.to_ms,
            "targets": out,
            "token": token,
        }
    }))
    .into_response())
}

/// A panel target as it will run: its expression with variables filled in.
struct Target {
    ref_id: String,
    legend: String,
    instant: bool,
    expr: Result<String, String>,
}

impl Target {
    fn new(target: &Value, vars: &[Variable], builtins: &[(&'static str, String)]) -> Target {
        let text = |k: &str| target.get(k).and_then(Value::as_str).unwrap_or("");
        Target {
            ref_id: match text("refId") {
                "" => "A".to_string(),
                r => r.to_string(),
            },
            legend: text("legendFormat").to_string(),
            instant: target.get("instant").and_then(Value::as_bool) == Some(true)
                && target.get("range").and_then(Value::as_bool) != Some(true),
            expr: templating::interpolate(text("expr"), vars, builtins).map_err(|e| e.to_string()),
        }
    }
}

/// The steps of a panel's range queries (ms).
#[derive(Clone, Copy)]
struct Grid {
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
}

impl Grid {
    fn of(timing: &QueryTiming) -> Grid {
        Grid {
            start_ms: (timing.start_s * 1000.0) as i64,
            end_ms: (timing.end_s * 1000.0) as i64,
            step_ms: ((timing.step_s * 1000.0) as i64).max(1),
        }
    }

    /// What an earlier answer must have asked for its steps to be reused:
    /// the same targets, expressions and legends, on the same grid.
    fn fingerprint(&self, targets: &[Target]) -> u64 {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same within one binary, which is
        // all a token needs (a restart changes the mark's epoch anyway).
        let mut h = std::hash::DefaultHasher::new();
        self.step_ms.hash(&mut h);
        self.start_ms.rem_euclid(self.step_ms).hash(&mut h);
        for t in targets {
            (&t.ref_id, &t.legend, t.instant, &t.expr).hash(&mut h);
        }
        h.finish()
    }
}

/// What a page holds of a panel's earlier answer, as the answer's `token`
/// told it: read after `mark`, every step up to `last_ms`.
#[derive(Debug, PartialEq)]
struct Held {
    mark: Mark,
    last_ms: i64,
    step_ms: i64,
    fingerprint: u64,
}

impl Held {
    fn parse(s: &str) -> Option<Held> {
        let mut it = s.split('.');
        let mut next = || it.next();
        let held = Held {
            mark: Mark {
                epoch: u64::from_str_radix(next()?, 16).ok()?,
                generation: next()?.parse().ok()?,
            },
            last_ms: next()?.parse().ok()?,
            step_ms: next()?.parse().ok()?,
            fingerprint: u64::from_str_radix(next()?, 16).ok()?,
        };
        next().is_none().then_some(held)
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:x}.{}.{}.{}.{:x}",
            self.mark.epoch, self.mark.generation, self.last_ms, self.step_ms, self.fingerprint
        )
    }
}

async fn run_target(
    st: &AppState,
    target: &Target,
    grid: &Grid,
    timing: &QueryTiming,
    held: Option<&Held>,
) -> Value {
    let Grid {
        start_ms,
        end_ms,
        step_ms,
    } = *grid;
    let mut answer = json!({
        "refId": target.ref_id,
        "start": timing.start_s,
        "end": timing.end_s,
        "step": timing.step_s,
        "instant": target.instant,
    });
    let expr = match &target.expr {
        Ok(e) => e.clone(),
        Err(e) => {
            answer["error"] = json!(e);
            return answer;
        }
    };
    answer["expr"] = json!(expr);
    if expr.trim().is_empty() {
        answer["series"] = json!([]);
        return answer;
    }
    let Some(engine) = st.engine.clone() else {
        answer["error"] = json!("query engine not available");
        return answer;
    };
    // The page holds this target's steps up to `keep` that no change has
    // altered since it read them: only the steps after go out.
    let keep = held
        .filter(|h| !target.instant && (h.last_ms - start_ms).rem_euclid(step_ms) == 0)
        .and_then(|h| {
            engine.unchanged_upto(&expr, h.mark, start_ms, step_ms, h.last_ms.min(end_ms))
        });
    let q = expr.clone();
    let result = match keep {
        _ if target.instant => {
            evaluate(st, engine, st.query_timeout, move |e, until| {
                e.instant_until(&q, end_ms, until)
            })
            .await
        }
        Some(keep) => {
            answer["keep"] = json!([start_ms as f64 / 1000.0, keep as f64 / 1000.0]);
            if keep + step_ms > end_ms {
                Ok(QueryValue::Matrix(Vec::new()))
            } else {
                evaluate(st, engine, st.query_timeout, move |e, until| {
                    e.range_tail_until(&q, keep + step_ms, end_ms, step_ms, until)
                })
                .await
            }
        }
        None => {
            evaluate(st, engine, st.query_timeout, move |e, until| {
                e.range_until(&q, start_ms, end_ms, step_ms, until)
            })
            .await
        }
    };
    match result {
        Ok(v) => answer["series"] = Value::Array(series_of(v, &target.legend)),
        Err(e) => {
            if let Some(a) = answer.as_object_mut() {
                a.remove("keep");
            }
            answer["error"] = json!(query_error(&e));
        }
    }
    answer
}

fn query_error(e: &QueryError) -> String {
    match e {
        QueryError::BadData(m) => format!("bad_data: {m}"),
        QueryError::Execution(m) => format!("execution: {m}"),
        QueryError::Timeout(m) => format!("timeout: {m}"),
        QueryError::Canceled(m) => format!("canceled: {m}"),
        QueryError::Internal(m) => format!("internal: {m}"),
    }
}

fn finite(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

fn series_of(v: QueryValue, legend: &str) -> Vec<Value> {
    let one = |l: &Labels, points: Vec<Value>| {
        let labels: serde_json::Map<String, Value> = l
            .iter()
            .map(|p| (p.name.clone(), Value::String(p.value.clone())))
            .collect();
        json!({"name": legend_name(legend, l), "labels": labels, "values": points})
    };
    match v {
        QueryValue::Matrix(m) => m
            .iter()
            .map(|(l, s)| {
                let pts = s
                    .iter()
                    .map(|p| json!([p.t as f64 / 1000.0, finite(p.v)]))
                    .collect();
                one(l, pts)
            })
            .collect(),
        QueryValue::Vector(v) => v
            .iter()
            .map(|(l, t, x)| one(l, vec![json!([*t as f64 / 1000.0, finite(*x)])]))
            .collect(),
        QueryValue::Scalar(t, x) => vec![one(
            &Labels::new(),
            vec![json!([t as f64 / 1000.0, finite(x)])],
        )],
        QueryValue::String(..) => Vec::new(),
    }
}

/// A series' name: `legendFormat` with `{{label}}` filled in (a missing
/// label is empty), else `name{a="b", …}` as Grafana writes it.
pub fn legend_name(format: &str, l: &Labels) -> String {
    if format.is_empty() {
        let name = l.metric_name().unwrap_or("");
        let parts: Vec<String> = l
            .iter()
            .filter(|p| p.name != "__name__")
            .map(|p| format!("{}=\"{}\"", p.name, p.value))
            .collect();
        return format!("{name}{{{}}}", parts.join(", "));
    }
    let mut out = String::with_capacity(format.len() + 16);
    let mut rest = format;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                let name = after[..j].trim();
                out.push_str(l.get(name).unwrap_or(""));
                rest = &after[j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_back_what_they_wrote_and_nothing_else() {
        let h = Held {
            mark: Mark {
                epoch: 0xdead_beef_0123,
                generation: 42,
            },
            last_ms: 1_700_000_015_000,
            step_ms: 15_000,
            fingerprint: u64::MAX,
        };
        assert_eq!(Held::parse(&h.to_string()), Some(h));
        for bad in [
            "",
            "1.2.3.4",
            "1.2.3.4.5.6",
            "x.2.3.4.5",
            "1.-2.3.4.5",
            "1.2.3.4.g",
        ] {
            assert_eq!(Held::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn legends() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "ray"), ("instance", "a:1")]);
        assert_eq!(
            legend_name("{{job}} on {{ instance }}: {{x}}", &l),
            "ray on a:1: "
        );
        assert_eq!(legend_name("", &l), "up{instance=\"a:1\", job=\"ray\"}");
    }
}
