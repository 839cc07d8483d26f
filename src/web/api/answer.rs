//! The answer of `/api/v1/query` and `/api/v1/query_range`: the envelope
//! and `{"resultType":…,"result":…}` exactly as Prometheus writes them.
//!
//! A small answer is encoded at once. A large one (Ray's
//! `sum by (deployment, replica) (rate(…))` gives 83 k series of 61 points
//! at 500 nodes, 130 MB of JSON) is encoded on a thread of its own in
//! chunks that go out as they are made (gzipped, when asked, by a second
//! thread as they come), each series dropped once written:
//! the process then holds the values and a few chunks, not the values, the
//! whole text and its gzip besides (the memory bar of issue 22), and the
//! server's thread, which scrapes share, does not spend a second encoding.
//!
//! Knows the engine's answer and JSON, not routes.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::sync::mpsc;

use crate::model::Labels;
use crate::model::gofmt::format_f;
use crate::web::envelope::{ApiResponse, ChunkStream, OPENING};
use crate::web::{QueryValue, json, offload};

/// Answers estimated larger than this are streamed.
const STREAM_OVER: usize = 1 << 20;

/// The size of a streamed chunk.
const CHUNK: usize = 256 * 1024;

/// Chunks encoded ahead of the client.
const CHUNKS_AHEAD: usize = 4;

/// The response for `v`: whole when small, streamed when large, then
/// gzipped here (at the level the whole answers get) when `gzip` (the
/// client plainly accepts it, [`crate::web::gzip::plain_gzip`]).
pub fn respond(v: QueryValue, gzip: bool) -> Response {
    let estimate = estimated_len(&v);
    if estimate <= STREAM_OVER {
        let mut out = Vec::with_capacity(OPENING.len() + 2 + estimate);
        out.extend_from_slice(OPENING);
        write_value(&mut out, v, &mut |_| true);
        return ApiResponse::opened(out).into_response();
    }
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_AHEAD);
    // With gzip a second thread compresses what this one encodes: deflate
    // takes about as long as the JSON, so on two cores the answer takes the
    // longer of the two instead of their sum.
    let started = if gzip {
        let (plain_tx, plain_rx) = std::sync::mpsc::sync_channel::<Option<Vec<u8>>>(CHUNKS_AHEAD);
        offload::spawn("raymon-gzip", move || gzip_chunks(&plain_rx, &tx)).and_then(|()| {
            offload::spawn("raymon-answer", move || {
                encode_chunks(v, &mut |chunk| plain_tx.send(chunk).is_ok());
            })
        })
    } else {
        offload::spawn("raymon-answer", move || {
            encode_chunks(v, &mut |chunk| match chunk {
                Some(c) => tx.blocking_send(Bytes::from(c)).is_ok(),
                None => true,
            });
        })
    };
    if let Err(e) = started {
        return crate::web::envelope::ApiError::internal(e.to_string()).into_response();
    }
    let mut r = Body::from_stream(ChunkStream(rx)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if gzip {
        r.headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    *r.status_mut() = StatusCode::OK;
    r
}

/// Encodes `v` after [`OPENING`] in chunks of about [`CHUNK`] bytes,
/// handing each to `send`, then `None` once the answer is whole; stops when
/// `send` returns false (the client has gone).
fn encode_chunks(v: QueryValue, send: &mut dyn FnMut(Option<Vec<u8>>) -> bool) {
    let mut out = Vec::with_capacity(CHUNK + 4096);
    out.extend_from_slice(OPENING);
    let whole = write_value(&mut out, v, &mut |out| {
        out.len() < CHUNK
            || send(Some(std::mem::replace(
                out,
                Vec::with_capacity(CHUNK + 4096),
            )))
    });
    if whole {
        out.push(b'}');
        if send(Some(out)) {
            send(None);
        }
    }
}

/// Gzips the chunks `plain` brings and sends them on in chunks of about
/// [`CHUNK`] bytes, ending the member only on `None`: an encoder that
/// stopped early leaves the stream truncated, never a well-formed part.
fn gzip_chunks(plain: &std::sync::mpsc::Receiver<Option<Vec<u8>>>, tx: &mpsc::Sender<Bytes>) {
    let mut z = GzEncoder::new(Vec::with_capacity(CHUNK), Compression::fast());
    while let Ok(chunk) = plain.recv() {
        let last = chunk.is_none();
        let wrote = match chunk {
            Some(c) => z.write_all(&c),
            None => z.try_finish(),
        };
        if wrote.is_err() {
            return;
        }
        if !last && z.get_ref().len() < CHUNK {
            continue;
        }
        let full = std::mem::replace(z.get_mut(), Vec::with_capacity(CHUNK));
        if tx.blocking_send(Bytes::from(full)).is_err() || last {
            return;
        }
    }
}

/// `{"resultType":…,"result":…}` exactly as Prometheus writes it.
#[cfg(test)]
pub fn encode_query_value(v: &QueryValue) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, v.clone(), &mut |_| true);
    out
}

/// About the bytes `v` encodes to, rather over than under: pages reserved
/// and never written are not resident.
fn estimated_len(v: &QueryValue) -> usize {
    let labels = |l: &Labels| {
        l.iter()
            .map(|l| l.name.len() + l.value.len() + 6)
            .sum::<usize>()
    };
    64 + match v {
        QueryValue::Scalar(..) => 64,
        QueryValue::String(_, s) => 2 * s.len() + 32,
        QueryValue::Vector(samples) => samples.iter().map(|(l, ..)| labels(l) + 72).sum(),
        QueryValue::Matrix(series) => series
            .iter()
            .map(|(l, s)| labels(l) + 32 + 36 * s.len())
            .sum(),
    }
}

/// Appends `v` to `out`, dropping each series once written and handing
/// `out` to `flush` after it; stops, returning false, when `flush` does.
fn write_value(
    out: &mut Vec<u8>,
    v: QueryValue,
    flush: &mut dyn FnMut(&mut Vec<u8>) -> bool,
) -> bool {
    out.extend_from_slice(br#"{"resultType":"#);
    json::push_str(out, v.result_type());
    out.extend_from_slice(br#","result":"#);
    match v {
        QueryValue::Scalar(t, v) => {
            out.push(b'[');
            json::push_scalar_time(out, t);
            out.push(b',');
            json::push_str(out, &format_f(v));
            out.push(b']');
        }
        QueryValue::String(t, s) => {
            out.push(b'[');
            json::push_scalar_time(out, t);
            out.push(b',');
            json::push_str(out, &s);
            out.push(b']');
        }
        QueryValue::Vector(samples) => {
            out.push(b'[');
            for (i, (labels, t, v)) in samples.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(br#"{"metric":"#);
                json::push_labels(out, &labels);
                out.extend_from_slice(br#","value":["#);
                json::push_timestamp(out, t);
                out.push(b',');
                json::push_value(out, v);
                out.extend_from_slice(b"]}");
                if !flush(out) {
                    return false;
                }
            }
            out.push(b']');
        }
        QueryValue::Matrix(series) => {
            out.push(b'[');
            let mut stamps = Stamps::default();
            for (i, (labels, samples)) in series.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(br#"{"metric":"#);
                json::push_labels(out, &labels);
                out.extend_from_slice(br#","values":["#);
                // The last value's bits and where its text is in `out`:
                // a gauge or a bucket often holds its value from step to
                // step, and a copy costs less than formatting it again.
                let mut last: Option<(u64, std::ops::Range<usize>)> = None;
                for (j, s) in samples.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    stamps.push(out, j, s.t);
                    out.push(b',');
                    let bits = s.v.to_bits();
                    match &last {
                        Some((b, text)) if *b == bits => out.extend_from_within(text.clone()),
                        _ => {
                            let from = out.len();
                            json::push_value(out, s.v);
                            last = Some((bits, from..out.len()));
                        }
                    }
                    out.push(b']');
                }
                out.extend_from_slice(b"]}");
                drop((labels, samples));
                if !flush(out) {
                    return false;
                }
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    true
}

/// The encodings of the timestamps written so far, in time order, so that
/// most of a large answer's timestamps are copied, not formatted again: a
/// range query's series share its steps, though not where they start (a
/// rate has no point before its window holds two samples, so series begin
/// at different steps; keyed by position in the series, a third of the
/// Serve panel's series missed).
#[derive(Default)]
struct Stamps {
    /// Timestamps and their encodings, ascending by time.
    held: Vec<(i64, u8, [u8; STAMP_MAX])>,
    /// Where in `held` the series being written would find its first
    /// timestamp: its `j`th is looked for at `base + j` first.
    base: usize,
}

/// The longest timestamp [`json::push_timestamp`] writes: a sign, 16 digits
/// of seconds, a point and 3 digits.
const STAMP_MAX: usize = 21;

/// At most this many encodings are held (a range query's steps, up to
/// Prometheus's 11,000 points a series, fit).
const STAMPS_HELD: usize = 16 * 1024;

/// At most this many encodings are moved to hold a new one (16 KiB): a
/// step grid's series that start before every held step still add theirs.
const STAMPS_MOVED: usize = 512;

impl Stamps {
    /// Appends `t`, the `j`th timestamp of its series, to `out`.
    fn push(&mut self, out: &mut Vec<u8>, j: usize, t: i64) {
        if let Some((held, len, enc)) = self.held.get(self.base.wrapping_add(j))
            && *held == t
        {
            out.extend_from_slice(&enc[..usize::from(*len)]);
            return;
        }
        let k = self.held.partition_point(|e| e.0 < t);
        // Where the series would start if its points so far were held
        // one after another; the next point is looked for after `k`.
        self.base = k.wrapping_sub(j);
        if let Some((held, len, enc)) = self.held.get(k)
            && *held == t
        {
            out.extend_from_slice(&enc[..usize::from(*len)]);
            return;
        }
        let at = out.len();
        json::push_timestamp(out, t);
        // An insert moves every encoding after `k`: times that share no
        // grid (raw samples of many targets, each scraped at its own
        // offset) would move most of the list for each new one, which
        // costs far more than formatting it.
        if self.held.len() >= STAMPS_HELD || self.held.len() - k > STAMPS_MOVED {
            return;
        }
        let written = &out[at..];
        // Invariant: at most STAMP_MAX bytes, so the length fits a u8.
        debug_assert!(written.len() <= STAMP_MAX);
        let mut enc = [0; STAMP_MAX];
        enc[..written.len()].copy_from_slice(written);
        self.held.insert(k, (t, written.len() as u8, enc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;

    fn matrix(series: usize, points: usize) -> QueryValue {
        QueryValue::Matrix(
            (0..series)
                .map(|i| {
                    let l = Labels::from_pairs([("a", i.to_string().as_str()), ("b", "x\"y")]);
                    let s = (0..points)
                        .map(|k| Sample {
                            t: 1_700_000_000_000 + k as i64 * 5_000,
                            v: (i * k) as f64 / 7.0,
                        })
                        .collect();
                    (l, s)
                })
                .collect(),
        )
    }

    #[test]
    fn chunks_join_to_the_whole_answer_and_a_gone_client_stops_the_encoding() {
        let v = matrix(3_000, 61);
        let whole = encode_query_value(&v);
        assert!(estimated_len(&v) >= whole.len());
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut out = Vec::new();
        assert!(write_value(&mut out, v.clone(), &mut |o| {
            if o.len() >= 4096 {
                chunks.push(std::mem::take(o));
            }
            true
        }));
        chunks.push(out);
        assert!(chunks.len() > 10);
        assert_eq!(chunks.concat(), whole);
        let mut calls = 0;
        assert!(!write_value(&mut Vec::new(), v, &mut |_| {
            calls += 1;
            calls < 5
        }));
        assert_eq!(calls, 5);
    }

    #[test]
    fn timestamps_and_values_copied_from_those_written_before_are_the_ones_formatted() {
        // Values held for two points at a time, so that some repeat the
        // one before, among them those whose bits matter (signed zeros,
        // NaN, infinities).
        let values = [
            0.0,
            -0.0,
            f64::NAN,
            1.5,
            f64::NEG_INFINITY,
            1e-7,
            12_479_713_569.0,
            -3.0,
            f64::INFINITY,
        ];
        // Series with gaps, shifted steps and irregular times, so that the
        // timestamps at one position differ from the series before.
        let irregular: Vec<(Labels, Vec<Sample>)> = (0..50_i64)
            .map(|i| {
                let l = Labels::from_pairs([("a", i.to_string().as_str())]);
                let s = (0..20_i64)
                    .filter(|k| (k + i) % 7 != 0)
                    .map(|k| Sample {
                        t: -3_000 + (i % 3) * 1_001 + k * 5_000 + (k * i) % 2,
                        v: values[(k / 2 + i) as usize % values.len()],
                    })
                    .collect();
                (l, s)
            })
            .collect();
        // Series on one step grid starting and ending at different steps,
        // and one with more distinct timestamps than are held.
        let mut grid: Vec<(Labels, Vec<Sample>)> = (0..40_i64)
            .map(|i| {
                let l = Labels::from_pairs([("a", i.to_string().as_str())]);
                let s = ((i * 7) % 13..61 - i % 5)
                    .map(|k| Sample {
                        t: 1_796_626_045_000 + k * 5_000,
                        v: k as f64,
                    })
                    .collect();
                (l, s)
            })
            .collect();
        grid.push((
            Labels::from_pairs([("a", "many")]),
            (0..STAMPS_HELD as i64 + 100)
                .map(|k| Sample {
                    t: 1_796_626_045_000 + k * 1_001,
                    v: 1.0,
                })
                .collect(),
        ));
        grid.extend_from_within(..3);
        for series in [irregular, grid] {
            timestamps_as_formatted(series);
        }
    }

    fn timestamps_as_formatted(series: Vec<(Labels, Vec<Sample>)>) {
        let mut want = br#"{"resultType":"matrix","result":["#.to_vec();
        for (i, (l, samples)) in series.iter().enumerate() {
            if i > 0 {
                want.push(b',');
            }
            want.extend_from_slice(br#"{"metric":"#);
            json::push_labels(&mut want, l);
            want.extend_from_slice(br#","values":["#);
            for (j, s) in samples.iter().enumerate() {
                if j > 0 {
                    want.push(b',');
                }
                want.push(b'[');
                json::push_timestamp(&mut want, s.t);
                want.push(b',');
                json::push_value(&mut want, s.v);
                want.push(b']');
            }
            want.extend_from_slice(b"]}");
        }
        want.extend_from_slice(b"]}");
        let got = encode_query_value(&QueryValue::Matrix(series));
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    #[tokio::test]
    async fn a_large_answer_streams_the_same_bytes_as_a_small_one_is_sent() {
        for (series, streamed) in [(10, false), (20_000, true)] {
            let v = matrix(series, 61);
            assert_eq!(estimated_len(&v) > STREAM_OVER, streamed);
            let mut want = OPENING.to_vec();
            want.extend_from_slice(&encode_query_value(&v));
            want.push(b'}');
            for gzip in [false, true] {
                let r = respond(v.clone(), gzip);
                assert_eq!(r.status(), StatusCode::OK);
                assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
                let exact = hyper::body::Body::size_hint(r.body()).exact();
                assert_eq!(exact.is_none(), streamed);
                // Small answers are left to the server's gzip layer.
                let zipped = r.headers().contains_key(header::CONTENT_ENCODING);
                assert_eq!(zipped, gzip && streamed);
                let got = axum::body::to_bytes(r.into_body(), usize::MAX)
                    .await
                    .unwrap();
                let got = if zipped {
                    let mut plain = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&got[..]),
                        &mut plain,
                    )
                    .unwrap();
                    plain
                } else {
                    got.to_vec()
                };
                assert!(got == want, "{series} series, gzip {gzip}");
            }
        }
    }
}
