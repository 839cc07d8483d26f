//! `POST /api/v1/write`: the remote write 1.0 receiver of Prometheus 2.42's
//! `storage/remote/write_handler.go`, appending through
//! [`crate::storage::Appendable`].
//!
//! Knows the status codes and texts of the receiver; the wire format is
//! [`crate::remote`]'s, the storage behind the seam is unknown here.

use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::{error, warn};

use crate::model::{Label, LabelLimits, Labels, LabelsError};
use crate::remote::{self, WriteRequest};
use crate::storage::{self, Appendable};
use crate::web::Shared;
use crate::web::api::refuse_simple_request;
use crate::web::envelope::text;

/// The most a request may decompress to; a guard against snappy bombs.
pub const MAX_DECODED_BYTES: usize = 64 << 20;

/// Why a remote write request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A repeated label name or no labels: 2.42's head wraps these in
    /// `ErrInvalidSample`, and its handler answers them with 500.
    #[error("{0}: invalid sample")]
    InvalidSample(LabelsError),
    /// A malformed label name, or a series over the label limits.
    #[error("{0}")]
    Labels(LabelsError),
    #[error(
        "out of bounds: sample for {series} at {t_ms} ms is older than {min_ms} ms, the oldest accepted (--web.write.max-age)"
    )]
    TooOld {
        series: String,
        t_ms: i64,
        min_ms: i64,
    },
    #[error(
        "out of bounds: sample for {series} at {t_ms} ms is newer than {max_ms} ms, the newest accepted (--web.write.max-future)"
    )]
    TooNew {
        series: String,
        t_ms: i64,
        max_ms: i64,
    },
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

impl Error {
    /// Whether the sender should drop the request rather than retry it.
    fn is_bad_request(&self) -> bool {
        match self {
            Error::InvalidSample(_) => false,
            Error::Labels(_) | Error::TooOld { .. } | Error::TooNew { .. } => true,
            Error::Storage(e) => e.is_sample_error(),
        }
    }
}

/// What a request must keep to: label bounds and the accepted sample times.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    pub labels: LabelLimits,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
}

impl Default for Checks {
    /// No bounds.
    fn default() -> Checks {
        Checks {
            labels: LabelLimits::default(),
            min_time_ms: i64::MIN,
            max_time_ms: i64::MAX,
        }
    }
}

pub async fn handler(State(st): State<Shared>, req: Request) -> Response {
    let Some(app) = st.remote_write.clone() else {
        return text(
            StatusCode::NOT_FOUND,
            "remote write receiver needs to be enabled with --enable-feature=remote-write-receiver\n",
        );
    };
    if let Some(refused) = refuse_simple_request(req.headers(), "application/x-protobuf") {
        return refused;
    }
    if !st.ready.load(Ordering::Acquire) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    }
    let body = match axum::body::to_bytes(req.into_body(), st.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            warn!(error = %e, "error reading remote write request");
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "http: request body too large\n",
            );
        }
    };
    let decoded = match remote::decode(&body, MAX_DECODED_BYTES) {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "error decoding remote write request");
            return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
        }
    };
    let (min_time_ms, max_time_ms) = st.write_limits.window((st.now_ms)());
    let checks = Checks {
        labels: st.write_limits.labels,
        min_time_ms,
        max_time_ms,
    };
    let done = tokio::task::spawn_blocking(move || write(app.as_ref(), decoded, &checks)).await;
    match done {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        // A refused sample or series is the sender's fault: 400 so that it
        // does not retry.
        Ok(Err(e)) if e.is_bad_request() => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Ok(Err(e)) => {
            error!(error = %e, "error appending remote write");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// Appends every sample of `req` in one batch: all or nothing, as
/// Prometheus's `writeHandler.write`.
pub fn write(app: &dyn Appendable, req: WriteRequest, checks: &Checks) -> Result<(), Error> {
    let mut a = app.appender();
    for ts in req.timeseries {
        // Prometheus sorts the labels it is given and keeps them otherwise.
        let pairs = ts
            .labels
            .into_iter()
            .map(|l| Label {
                name: l.name,
                value: l.value,
            })
            .collect();
        let labels =
            match Labels::from_unsorted(pairs).and_then(|l| checks.labels.check(&l).map(|()| l)) {
                Ok(l) => l,
                Err(e) => {
                    a.rollback();
                    return Err(match e {
                        LabelsError::Duplicate(_) | LabelsError::Empty => Error::InvalidSample(e),
                        other => Error::Labels(other),
                    });
                }
            };
        let mut r = 0;
        for s in &ts.samples {
            let refused = if s.timestamp < checks.min_time_ms {
                Some(Error::TooOld {
                    series: labels.to_string(),
                    t_ms: s.timestamp,
                    min_ms: checks.min_time_ms,
                })
            } else if s.timestamp > checks.max_time_ms {
                Some(Error::TooNew {
                    series: labels.to_string(),
                    t_ms: s.timestamp,
                    max_ms: checks.max_time_ms,
                })
            } else {
                None
            };
            if let Some(e) = refused {
                a.rollback();
                return Err(e);
            }
            match a.append(r, &labels, s.timestamp, s.value) {
                Ok(got) => r = got,
                Err(e) => {
                    if e.is_sample_error() {
                        error!(error = %e, series = %labels, timestamp = s.timestamp,
                            "out of order sample from remote write");
                    }
                    a.rollback();
                    return Err(e.into());
                }
            }
        }
    }
    a.commit().map(|_| ()).map_err(Error::from)
}

#[cfg(test)]
pub(crate) mod tests;
