//! raymon's own data-moving endpoints, shaped like VictoriaMetrics':
//! `POST /api/v1/import` takes OpenMetrics text with timestamps (what
//! `promtool tsdb create-blocks-from openmetrics` reads) and
//! `GET /api/v1/export` streams JSON lines, one per series:
//!
//! ```text
//! {"metric":{"__name__":"up","job":"ray"},"values":[1,0],"timestamps":[1700000000000,1700000015000]}
//! ```
//!
//! Values are JSON numbers with the shortest digits that read back to the
//! same float. JSON has no NaN or infinities: VictoriaMetrics writes bare
//! `NaN`/`+Inf`, which most JSON parsers refuse, and `null` for staleness
//! markers. We keep the file valid JSON and every sample distinguishable:
//! a staleness marker is `null` (as VictoriaMetrics), an ordinary NaN is the
//! string `"NaN"`, and infinities are `"+Inf"` and `"-Inf"` (as Prometheus's
//! query API spells them).
//!
//! Knows the wire formats; parsing and appending are [`crate::backfill`]'s.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::backfill::{self, ImportStats};
use crate::model::{METRIC_NAME, Matcher, is_stale_nan};
use crate::storage::{Appendable, Queryable, Series};
use crate::web::api::refuse_simple_request;
use crate::web::envelope::{ApiError, ApiResponse, ApiResult, ChunkStream, text};
use crate::web::json;
use crate::web::params::{Form, MAX_TIME_MS, MIN_TIME_MS, parse_time_param};
use crate::web::selector::parse_match_params;
use crate::web::{AppState, Shared};

/// Bytes of JSON lines sent to the client at a time.
const EXPORT_CHUNK_BYTES: usize = 64 << 10;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ImportParams {
    /// The line number of the body's first line within a larger file, so
    /// that errors name the file's lines when a client sends it in pieces.
    first_line: Option<usize>,
}

/// `POST /api/v1/import`: backfills OpenMetrics text ending in `# EOF`.
/// Answers with the number of samples and their time range; on bad input,
/// a `bad_data` error naming the line, with the samples before it kept.
/// Off unless `--web.enable-import` (404, as Prometheus's remote write
/// receiver when it is off).
pub(crate) async fn import(
    State(st): State<Shared>,
    Query(params): Query<ImportParams>,
    req: Request,
) -> Response {
    let Some(store) = st.appendable.clone() else {
        return text(
            StatusCode::NOT_FOUND,
            "import needs to be enabled with --web.enable-import\n",
        );
    };
    if let Some(refused) = refuse_simple_request(req.headers(), IMPORT_CONTENT_TYPE) {
        return refused;
    }
    let result = run_import(&st, store, params, req).await;
    match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

/// What `raymon import` sends, and what `promtool` reads.
pub const IMPORT_CONTENT_TYPE: &str = "application/openmetrics-text";

async fn run_import(
    st: &AppState,
    store: Arc<dyn Appendable>,
    params: ImportParams,
    req: Request,
) -> ApiResult {
    let body = axum::body::to_bytes(req.into_body(), st.max_body_bytes)
        .await
        .map_err(|e| ApiError::bad_data(format!("cannot read request body: {e}")))?;
    let (min_time_ms, max_time_ms) = st.write_limits.window((st.now_ms)());
    let opts = backfill::Options {
        first_line: params.first_line.unwrap_or(1).max(1),
        label_limits: st.write_limits.labels,
        min_time_ms,
        max_time_ms,
        ..backfill::Options::default()
    };
    let work = tokio::task::spawn_blocking(move || {
        let mut last = ImportStats::default();
        let r = backfill::import_openmetrics(store.as_ref(), &body[..], &opts, &mut |s| last = *s);
        (r, last)
    });
    let (result, last) = work
        .await
        .map_err(|e| ApiError::internal(format!("import task failed: {e}")))?;
    match result {
        Ok(stats) => ApiResponse::json(&ImportSummary::from(stats)),
        Err(e) => {
            let flag = match e {
                backfill::Error::TooOld { .. } => " (--web.write.max-age)",
                backfill::Error::TooNew { .. } => " (--web.write.max-future)",
                _ => "",
            };
            Err(ApiError::bad_data(format!(
                "{e}{flag} ({} samples before it were imported)",
                last.samples
            )))
        }
    }
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportSummary {
    samples: u64,
    lines: u64,
    min_time: Option<i64>,
    max_time: Option<i64>,
}

impl From<ImportStats> for ImportSummary {
    fn from(s: ImportStats) -> Self {
        ImportSummary {
            samples: s.samples,
            lines: s.lines,
            min_time: s.min_time,
            max_time: s.max_time,
        }
    }
}

/// `GET`/`POST /api/v1/export`: raw samples of every series matching any
/// `match[]`, between `start` and `end` (default: all), as JSON lines.
///
/// Series are read one metric name at a time and written as they are
/// encoded, so the response streams and memory holds one metric's samples
/// in the range, not the whole answer. Lines come sorted by metric name,
/// then labels.
pub(crate) async fn export(State(st): State<Shared>, form: Form) -> Response {
    match start_export(&st, &form) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn start_export(st: &AppState, form: &Form) -> Result<Response, ApiError> {
    if let Some(e) = &form.error {
        return Err(ApiError::bad_data(format!(
            "error parsing form values: {e}"
        )));
    }
    if form.values("match[]").next().is_none() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let sets = parse_match_params(form.values("match[]")).map_err(ApiError::bad_data)?;
    let start = parse_time_param(form, "start", MIN_TIME_MS).map_err(ApiError::bad_data)?;
    let end = parse_time_param(form, "end", MAX_TIME_MS).map_err(ApiError::bad_data)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    // Errors before the first byte become an error status; after it, the
    // stream ends early and the last line says why.
    let storage = st.storage.clone();
    let names = {
        let q = storage.querier(start, end)?;
        let mut names = BTreeSet::new();
        for set in &sets {
            names.extend(q.label_values(METRIC_NAME, set)?);
        }
        names
    };
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096);
        if let Err(e) = write_export(storage.as_ref(), start, end, &sets, &names, &mut out, &tx) {
            out.extend_from_slice(b"{\"error\":");
            json::push_str(&mut out, &e);
            out.extend_from_slice(b"}\n");
        }
        if !out.is_empty() {
            let _ = tx.blocking_send(Bytes::from(out));
        }
    });
    let mut r = Body::from_stream(ChunkStream(rx)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/stream+json; charset=utf-8"),
    );
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}

/// Encodes every matching series, sending full chunks down `tx`. Returns
/// early, quietly, when the client has gone.
fn write_export(
    storage: &dyn Queryable,
    start: i64,
    end: i64,
    sets: &[Vec<Matcher>],
    names: &BTreeSet<String>,
    out: &mut Vec<u8>,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), String> {
    let q = storage.querier(start, end).map_err(|e| e.to_string())?;
    for name in names {
        // FIXME: the storage seam returns a metric's series with all their
        // samples at once; a streaming select would bound memory further.
        let mut series: Vec<Series> = Vec::new();
        let mut seen = BTreeSet::new();
        for set in sets {
            let mut ms = set.clone();
            ms.push(Matcher::equal(METRIC_NAME, name.as_str()));
            for s in q.select(&ms).map_err(|e| e.to_string())? {
                if seen.insert(s.labels.clone()) {
                    series.push(s);
                }
            }
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        for s in &series {
            if s.samples.is_empty() {
                continue;
            }
            write_line(out, s);
            if out.len() >= EXPORT_CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::replace(
                    out,
                    Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096),
                ));
                if tx.blocking_send(chunk).is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// One series as one JSON line.
pub fn write_line(out: &mut Vec<u8>, s: &Series) {
    out.extend_from_slice(b"{\"metric\":");
    json::push_labels(out, &s.labels);
    out.extend_from_slice(b",\"values\":[");
    for (i, p) in s.samples.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_export_value(out, p.v);
    }
    out.extend_from_slice(b"],\"timestamps\":[");
    for (i, p) in s.samples.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "{}", p.t);
    }
    out.extend_from_slice(b"]}\n");
}

/// A value as export writes it: see the module docs for the special values.
fn push_export_value(out: &mut Vec<u8>, v: f64) {
    if is_stale_nan(v) {
        out.extend_from_slice(b"null");
    } else if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"\"+Inf\"" } else { b"\"-Inf\"" });
    } else if v == 0.0 && v.is_sign_negative() {
        // Many parsers read `-0` as the integer zero and lose the sign.
        out.extend_from_slice(b"-0.0");
    } else {
        out.extend_from_slice(json::go_json_float(v).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, STALE_NAN, Sample};

    #[test]
    fn special_values_stay_distinguishable() {
        let s = Series {
            labels: Labels::from_pairs([("__name__", "x"), ("a", "b\"c")]),
            samples: [
                1.0,
                0.1,
                f64::NAN,
                STALE_NAN,
                f64::INFINITY,
                -f64::INFINITY,
                1e-7,
                -0.0,
            ]
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample { t: i as i64, v })
            .collect(),
        };
        let mut out = Vec::new();
        write_line(&mut out, &s);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"metric\":{\"__name__\":\"x\",\"a\":\"b\\\"c\"},\"values\":[1,0.1,\"NaN\",null,\"+Inf\",\"-Inf\",1e-7,-0.0],\"timestamps\":[0,1,2,3,4,5,6,7]}\n"
        );
    }
}
