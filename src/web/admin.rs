//! `/api/v1/admin/tsdb/{delete_series,clean_tombstones,snapshot}` as
//! Prometheus 2.42's `web/api/v1/api.go` answers them: `unavailable`
//! "admin APIs disabled" without `--web.enable-admin-api`, parameter errors
//! in its words, 204 for a deletion or a clean-up, `{"name": ...}` for a
//! snapshot. What the store does is behind the [`Admin`] trait, which the
//! launcher wires to the store; this file knows the wire format only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::envelope::{ApiError, ApiResponse, ErrorType};
use super::params::{Form, MAX_TIME_MS, MIN_TIME_MS, parse_time_param};
use super::selector::parse_match_params;
use crate::model::Matcher;

/// The store's side of the admin API. Calls block; the handler runs them
/// on a thread of their own.
pub trait Admin: Send + Sync {
    /// Hides the samples in `[mint, maxt]` of the series matching any set.
    fn delete_series(&self, sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Result<(), String>;
    /// Drops what deletions no longer need.
    fn clean_tombstones(&self) -> Result<(), String>;
    /// Writes a snapshot named `name` under `<data dir>/snapshots/`; the
    /// error is the whole message (`create snapshot: ...`).
    fn snapshot(&self, name: &str, skip_head: bool) -> Result<(), String>;
}

/// `POST|PUT /api/v1/admin/tsdb/{op}`.
pub(crate) async fn handler(
    State(st): State<Shared>,
    Path(op): Path<String>,
    form: Form,
) -> Response {
    if !matches!(
        op.as_str(),
        "delete_series" | "clean_tombstones" | "snapshot"
    ) {
        return super::envelope::text(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    let Some(admin) = st.admin.clone() else {
        return ApiError::new(ErrorType::Unavailable, "admin APIs disabled").into_response();
    };
    if let Some(e) = &form.error {
        return ApiError::bad_data(format!("error parsing form values: {e}")).into_response();
    }
    match op.as_str() {
        "delete_series" => {
            if form.values("match[]").next().is_none() {
                return ApiError::bad_data("no match[] parameter provided").into_response();
            }
            let start = match parse_time_param(&form, "start", MIN_TIME_MS) {
                Ok(t) => t,
                Err(e) => return ApiError::invalid_param("start", e).into_response(),
            };
            let end = match parse_time_param(&form, "end", MAX_TIME_MS) {
                Ok(t) => t,
                Err(e) => return ApiError::invalid_param("end", e).into_response(),
            };
            let sets = match parse_match_params(form.values("match[]")) {
                Ok(s) => s,
                Err(e) => return ApiError::invalid_param("match[]", e).into_response(),
            };
            no_content(run(move || admin.delete_series(&sets, start, end)).await)
        }
        "clean_tombstones" => no_content(run(move || admin.clean_tombstones()).await),
        _ => {
            let skip_head = match form.value("skip_head") {
                "" => false,
                v => match parse_go_bool(v) {
                    Some(b) => b,
                    None => {
                        return ApiError::invalid_param(
                            "skip_head",
                            format!("unable to parse boolean: strconv.ParseBool: parsing {v:?}: invalid syntax"),
                        )
                        .into_response();
                    }
                },
            };
            let name = snapshot_name();
            let n = name.clone();
            match run(move || admin.snapshot(&n, skip_head)).await {
                Ok(()) => match ApiResponse::json(&serde_json::json!({ "name": name })) {
                    Ok(r) => r.into_response(),
                    Err(e) => e.into_response(),
                },
                Err(e) => ApiError::internal(e).into_response(),
            }
        }
    }
}

/// Runs an admin call off the async worker.
async fn run(f: impl FnOnce() -> Result<(), String> + Send + 'static) -> Result<(), String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(e.to_string()),
    }
}

fn no_content(r: Result<(), String>) -> Response {
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Prometheus's snapshot name: UTC time `20060102T150405Z` and 16 hex digits.
fn snapshot_name() -> String {
    let now = std::time::SystemTime::now();
    let stamp = super::params::format_rfc3339_nano(Some(
        std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(
                now.duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs(),
            ),
    ));
    let compact: String = stamp.chars().filter(|c| *c != '-' && *c != ':').collect();
    // A random 63-bit number, as Go's `rand.Int63`.
    let mut buf = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .map(|()| u64::from_le_bytes(buf))
        .unwrap_or_else(|_| {
            now.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64
        });
    format!("{compact}-{:016x}", random >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_look_like_prometheus_ones() {
        let n = snapshot_name();
        let (time, hex) = n.split_once('-').unwrap();
        assert_eq!(time.len(), "20060102T150405Z".len(), "{n}");
        assert!(time.ends_with('Z') && time.as_bytes()[8] == b'T', "{n}");
        assert_eq!(hex.len(), 16);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
