//! `/federate`: the newest sample of every series matching `match[]`, within
//! the lookback window, in the text exposition format (`web/federate.go`).
//!
//! Reads through the storage seam only; knows nothing of PromQL.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::model::gofmt::format_g;
use crate::model::{Labels, METRIC_NAME, is_stale_nan, is_valid_label_name, is_valid_metric_name};
use crate::storage::Queryable;
use crate::web::Shared;
use crate::web::envelope::text;
use crate::web::params::Form;
use crate::web::selector::parse_metric_selector;

pub async fn handler(State(st): State<Shared>, form: Form) -> Response {
    if let Some(e) = &form.error {
        return text(
            StatusCode::BAD_REQUEST,
            format!("error parsing form values: {e}\n"),
        );
    }
    let mut sets = Vec::new();
    for s in form.values("match[]") {
        match parse_metric_selector(s) {
            Ok(ms) => sets.push(ms),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }
    let maxt = (st.now_ms)();
    let lookback = i64::try_from(st.lookback_delta.as_millis()).unwrap_or(i64::MAX);
    let mint = maxt.saturating_sub(lookback);
    let storage: Arc<dyn Queryable> = st.storage.clone();
    let external = st
        .external_labels
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let work = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let q = storage.querier(mint, maxt).map_err(|e| e.to_string())?;
        let mut latest: Vec<(Labels, i64, f64)> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for set in &sets {
            for s in q.select(set).map_err(|e| e.to_string())? {
                if !seen.insert(s.labels.clone()) {
                    continue;
                }
                let Some(last) = s.samples.iter().rev().find(|p| p.t <= maxt) else {
                    continue;
                };
                // The exposition formats cannot carry stale markers.
                if is_stale_nan(last.v) {
                    continue;
                }
                latest.push((s.labels, last.t, last.v));
            }
        }
        latest.sort_by(|a, b| a.0.cmp(&b.0));
        latest.sort_by(|a, b| a.0.metric_name().cmp(&b.0.metric_name()));
        Ok(render(&latest, &external))
    });
    match work.await {
        Ok(Ok(body)) => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// Renders samples sorted by metric name as `untyped` families, appending
/// external labels (and an empty `instance`) that a series lacks.
pub fn render(samples: &[(Labels, i64, f64)], external: &Labels) -> String {
    let mut ext: Vec<(&str, &str)> = external
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    if !external.has("instance") {
        ext.push(("instance", ""));
        ext.sort_unstable();
    }
    let mut out = String::new();
    let mut family: Option<&str> = None;
    for (labels, t, v) in samples {
        let Some(name) = labels.metric_name().filter(|n| !n.is_empty()) else {
            continue;
        };
        // Pushed series are checked on the way in; one stored before that
        // with a name the format cannot carry is left out rather than
        // making the whole answer unparsable.
        if !is_valid_metric_name(name) || !labels.iter().all(|l| is_valid_label_name(&l.name)) {
            continue;
        }
        if family != Some(name) {
            let _ = writeln!(out, "# TYPE {name} untyped");
            family = Some(name);
        }
        out.push_str(name);
        let mut first = true;
        let mut pair = |out: &mut String, n: &str, v: &str| {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(n);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        };
        for l in labels.iter() {
            if l.name == METRIC_NAME || l.value.is_empty() {
                continue;
            }
            pair(&mut out, &l.name, &l.value);
        }
        for (n, val) in &ext {
            if !labels.has(n) {
                pair(&mut out, n, val);
            }
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        out.push_str(&expfmt_float(*v));
        let _ = writeln!(out, " {t}");
    }
    out
}

/// `expfmt`'s `writeFloat`.
fn expfmt_float(v: f64) -> String {
    if v == 1.0 {
        "1".to_string()
    } else if v == 0.0 {
        "0".to_string()
    } else if v == -1.0 {
        "-1".to_string()
    } else {
        format_g(v)
    }
}
