//! Prometheus remote write 1.0: the protobuf messages, their snappy block
//! framing, and a small HTTP client that sends them.
//!
//! The receiving side lives in `web` (`POST /api/v1/write`); this module owns
//! only the wire format and the sender. It knows nothing of storage.

mod client;
mod encode;
mod metadata;
mod metrics;
mod proto;
mod queue;
mod shard;
mod storage;

pub use client::{Client, ClientOptions};
pub use proto::{Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
pub use storage::{StoreAccess, WriteStorage};

use prost::Message as _;

/// The `X-Prometheus-Remote-Write-Version` that 1.0 senders put on requests.
pub const VERSION_HEADER_VALUE: &str = "0.1.0";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("snappy: {0}")]
    Snappy(#[from] snap::Error),
    #[error("decompressed body of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("{0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The request did not get an answer (connection, timeout, TLS).
    #[error("{0}")]
    Request(String),
    #[error("server returned HTTP status {status_text}: {body}")]
    Status {
        status: u16,
        status_text: String,
        body: String,
        /// The answer's `Retry-After`, when it had a usable one.
        retry_after: Option<std::time::Duration>,
        recoverable: bool,
    },
    #[error("{0}")]
    Header(String),
    #[error("remote write: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// Whether sending again may succeed: transport failures, 5xx, and 429
    /// when the queue retries it, as Prometheus's queue manager decides.
    pub fn is_recoverable(&self) -> bool {
        match self {
            Error::Request(_) => true,
            Error::Status { recoverable, .. } => *recoverable,
            _ => false,
        }
    }

    /// How long the receiver asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The request body: `req` as protobuf, then snappy block-compressed.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    let raw = req.encode_to_vec();
    // Compression of a slice into a fresh buffer cannot fail except for
    // inputs over 4 GiB, which a remote write batch never is.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// Decodes a request body, refusing ones that would decompress to more than
/// `limit` bytes before allocating for them.
pub fn decode(body: &[u8], limit: usize) -> Result<WriteRequest, Error> {
    let len = snap::raw::decompress_len(body)?;
    if len > limit {
        return Err(Error::TooLarge { len, limit });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(WriteRequest::decode(raw.as_slice())?)
}

// The sender over loopback sockets; `scripts/test --quick` skips them.
#[cfg(test)]
mod loopback_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// A request survives the wire format: protobuf in a snappy block.
    #[test]
    fn encode_then_decode_gives_the_request_back() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "up")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1_700_000_000_000,
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let body = encode(&req);
        assert_eq!(decode(&body, 1 << 20).unwrap(), req);
    }
}
