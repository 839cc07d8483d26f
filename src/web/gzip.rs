//! Gzip for answers that are already whole in memory (every `/api/v1` JSON
//! answer): small ones by our own [`deflate`], which needs no clearing
//! between answers, larger ones by one miniz state per thread that is reset,
//! not rebuilt.
//!
//! `tower_http`'s compression layer still sits outside and handles every
//! other case (streamed bodies, unusual `Accept-Encoding` headers); it leaves
//! answers that already carry a `Content-Encoding` alone. Building a fresh
//! deflate state (its tables page-faulted in on every request) costs more
//! than a small query itself (docs/decisions.md).
//!
//! Knows HTTP headers and bodies, not routes or endpoints.

mod deflate;

use std::cell::RefCell;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use hyper::body::{Body as _, Frame};

/// `tower_http`'s default threshold: smaller bodies go out as they are.
const MIN_SIZE: u64 = 32;

/// Bodies up to this size use [`deflate`], larger ones miniz: resetting
/// miniz costs about 7 µs, which our encoder beats only up to a few KiB
/// (docs/decisions.md, "Small-answer gzip").
const SMALL: usize = 4 * 1024;

/// The gzip member header: magic, deflate, no flags, no time, no extra
/// flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

thread_local! {
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
}

/// Compresses whole answers when the client plainly accepts gzip; passes
/// everything else through for the outer layer to decide.
pub(crate) async fn buffered(req: Request, next: Next) -> Response {
    let wants = plain_gzip(req.headers());
    let resp = next.run(req).await;
    if !wants || !compressible(&resp) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // The size is exact, so the body is already whole and collects at once.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return Response::from_parts(parts, Body::new(ErrorBody(Some(e)))),
    };
    let Some(gz) = gzip(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let h = &mut parts.headers;
    h.remove(header::ACCEPT_RANGES);
    h.remove(header::CONTENT_LENGTH);
    h.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    Response::from_parts(parts, Body::from(gz))
}

/// True when every `Accept-Encoding` element is a bare coding (no q-values,
/// no `*`) and one is gzip: then `tower_http` would pick gzip too.
pub(crate) fn plain_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = false;
    for v in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = v.to_str() else {
            return false;
        };
        for coding in v.split(',') {
            let coding = coding.trim();
            if coding.contains(';') || coding == "*" {
                return false;
            }
            gzip |= coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip");
        }
    }
    gzip
}

/// A whole body of at least [`MIN_SIZE`] bytes, of a type `tower_http`
/// compresses, not already encoded and not a range.
fn compressible(resp: &Response) -> bool {
    let h = resp.headers();
    if h.contains_key(header::CONTENT_ENCODING) || h.contains_key(header::CONTENT_RANGE) {
        return false;
    }
    let typed = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/plain"));
    typed
        && resp
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n >= MIN_SIZE)
}

/// `data` as one gzip member; `None` if deflate fails, which it should not.
fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(GZIP_HEADER.len() + data.len() / 2 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    if data.len() <= SMALL {
        deflate::deflate(data, &mut out);
    } else {
        deflate_large(data, &mut out)?;
    }
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    Some(out)
}

/// Appends `data` deflated by the thread's reused miniz state.
fn deflate_large(data: &[u8], out: &mut Vec<u8>) -> Option<()> {
    DEFLATE.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = c.total_in();
            let status = c.compress_vec(input, out, FlushCompress::Finish).ok()?;
            // `total_in` grows by at most `input.len()`, so the cast is exact.
            let used = (c.total_in() - before) as usize;
            input = &input[used..];
            if status == Status::StreamEnd {
                return Some(());
            }
        }
    })
}

/// A body that fails once with the error the inner body gave.
struct ErrorBody(Option<axum::Error>);

impl hyper::body::Body for ErrorBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        std::task::Poll::Ready(self.0.take().map(Err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_plain_gzip_headers_take_the_fast_path() {
        assert!(plain_gzip(&headers(&["gzip"])));
        assert!(plain_gzip(&headers(&["gzip, deflate, br"])));
        assert!(plain_gzip(&headers(&["br", "X-GZIP"])));
        assert!(!plain_gzip(&headers(&[])));
        assert!(!plain_gzip(&headers(&["deflate, br"])));
        assert!(!plain_gzip(&headers(&["gzip;q=0"])));
        assert!(!plain_gzip(&headers(&["gzip, identity;q=0"])));
        assert!(!plain_gzip(&headers(&["*"])));
    }

    #[test]
    fn gzip_round_trips_and_reuses_the_state() {
        for n in [0usize, 1, 100, SMALL, SMALL + 1, 70_000, 300_000] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect();
            let gz = gzip(&data).unwrap();
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{n} bytes");
        }
    }
}
