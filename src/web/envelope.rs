//! The `{"status": …}` envelope around every `/api/v1` answer, and
//! [`ApiError`], which becomes the Prometheus error envelope with the status
//! code of its `errorType`; and [`ChunkStream`], the body of an answer
//! sent in chunks as they are encoded (an export, a large query answer).
//!
//! Knows nothing of which endpoint produced the data.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;

use super::QueryError;
use super::json;
use crate::model::gofmt::go_quote;

/// Prometheus's `errorType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
        }
    }

    /// The HTTP status Prometheus 2.42 sends with this error type.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal | ErrorType::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An API failure; renders as `{"status":"error","errorType":…,"error":…}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::BadData, message)
    }

    pub fn execution(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::Execution, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::Internal, message)
    }

    /// `invalid parameter "<name>": <message>`, as `invalidParamError`.
    pub fn invalid_param(name: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::bad_data(format!("invalid parameter {}: {message}", go_quote(name)))
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        match e {
            QueryError::BadData(m) => ApiError::new(ErrorType::BadData, m),
            QueryError::Execution(m) => ApiError::new(ErrorType::Execution, m),
            QueryError::Timeout(m) => ApiError::new(ErrorType::Timeout, m),
            QueryError::Canceled(m) => ApiError::new(ErrorType::Canceled, m),
            QueryError::Internal(m) => ApiError::new(ErrorType::Internal, m),
        }
    }
}

impl From<crate::storage::Error> for ApiError {
    fn from(e: crate::storage::Error) -> ApiError {
        ApiError::execution(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(64 + self.message.len());
        body.extend_from_slice(br#"{"status":"error","errorType":"#);
        json::push_str(&mut body, self.kind.as_str());
        body.extend_from_slice(br#","error":"#);
        json::push_str(&mut body, &self.message);
        body.push(b'}');
        json_response(self.kind.status(), body)
    }
}

/// The opening of a successful answer, up to its `data` member's value.
pub const OPENING: &[u8] = br#"{"status":"success","data":"#;

/// A successful answer: the `data` member, already encoded, and warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub data: Vec<u8>,
    pub warnings: Vec<String>,
    /// Whether `data` already begins with [`OPENING`], so that a large
    /// answer is sent from the buffer it was encoded into, not copied.
    opened: bool,
}

impl ApiResponse {
    /// Wraps `data`, which must be one encoded JSON value.
    pub fn raw(data: Vec<u8>) -> ApiResponse {
        ApiResponse {
            data,
            warnings: Vec::new(),
            opened: false,
        }
    }

    /// Wraps `body`: [`OPENING`] followed by one encoded JSON value.
    pub fn opened(body: Vec<u8>) -> ApiResponse {
        debug_assert!(body.starts_with(OPENING));
        ApiResponse {
            data: body,
            warnings: Vec::new(),
            opened: true,
        }
    }

    /// Encodes `data` with Go's JSON conventions.
    pub fn json<T: Serialize + ?Sized>(data: &T) -> Result<ApiResponse, ApiError> {
        json::to_vec(data)
            .map(ApiResponse::raw)
            .map_err(|e| ApiError::internal(format!("error marshaling json response: {e}")))
    }
}

impl IntoResponse for ApiResponse {
    fn into_response(self) -> Response {
        let mut body = if self.opened {
            self.data
        } else {
            let mut body = Vec::with_capacity(32 + self.data.len());
            body.extend_from_slice(OPENING);
            body.extend_from_slice(&self.data);
            body
        };
        if !self.warnings.is_empty() {
            body.extend_from_slice(br#","warnings":["#);
            for (i, w) in self.warnings.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                json::push_str(&mut body, w);
            }
            body.push(b']');
        }
        body.push(b'}');
        json_response(StatusCode::OK, body)
    }
}

/// The result every API handler returns.
pub type ApiResult = Result<ApiResponse, ApiError>;

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A plain-text answer with Go's sniffed content type.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A response body streamed from its encoding thread or task: each chunk
/// goes out as it arrives on the channel, so the whole answer is never held
/// at once.
pub(super) struct ChunkStream(pub(super) mpsc::Receiver<Bytes>);

impl futures_core::Stream for ChunkStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}
