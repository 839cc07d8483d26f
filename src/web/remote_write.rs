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

use crate::model::Labels;
use crate::remote::{self, WriteRequest};
use crate::storage::{self, Appendable};
use crate::web::Shared;
use crate::web::envelope::text;

/// The most a request may decompress to; a guard against snappy bombs.
pub const MAX_DECODED_BYTES: usize = 64 << 20;

pub async fn handler(State(st): State<Shared>, req: Request) -> Response {
    let Some(app) = st.remote_write.clone() else {
        return text(
            StatusCode::NOT_FOUND,
            "remote write receiver needs to be enabled with --enable-feature=remote-write-receiver\n",
        );
    };
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
    let done = tokio::task::spawn_blocking(move || write(app.as_ref(), &decoded)).await;
    match done {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        // A rejected sample is the sender's fault: 400 so it does not retry.
        Ok(Err(e)) if e.is_sample_error() => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Ok(Err(e)) => {
            error!(error = %e, "error appending remote write");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// Appends every sample of `req` in one batch: all or nothing, as
/// Prometheus's `writeHandler.write`.
pub fn write(app: &dyn Appendable, req: &WriteRequest) -> Result<(), storage::Error> {
    let mut a = app.appender();
    for ts in &req.timeseries {
        // Prometheus sorts the labels it is given and keeps them otherwise.
        let labels = Labels::from_pairs(
            ts.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        );
        let mut r = 0;
        for s in &ts.samples {
            match a.append(r, &labels, s.timestamp, s.value) {
                Ok(got) => r = got,
                Err(e) => {
                    if e.is_sample_error() {
                        error!(error = %e, series = %labels, timestamp = s.timestamp,
                            "out of order sample from remote write");
                    }
                    a.rollback();
                    return Err(e);
                }
            }
        }
    }
    a.commit().map(|_| ())
}
