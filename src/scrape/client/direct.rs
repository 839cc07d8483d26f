//! The plain-HTTP path of a scrape: the request written and the response
//! read on the target's own connection, the body read from the socket
//! straight into the scrape's buffer.
//!
//! Through hyper, a body came in 32 KiB frames that hyper's connection task
//! read into its own buffer and handed to the scrape through a channel, and
//! each frame was then copied into the body: the connection task and the
//! copy were about a sixth of raymon's CPU at 100 × 2,000. Here a body with
//! a Content-Length is read into the buffer it is parsed from, as large as
//! the socket has it. Chunked, gzipped and close-delimited bodies pass
//! through a small scratch buffer, as they passed through hyper's.
//!
//! Only what this path reads exactly is read here; everything else goes to
//! hyper (the caller sends the request again through it): a target that
//! needs a proxy or credentials (decided when the client is built), a
//! connection that cannot be opened (so that errors read as they did), a
//! head that does not parse or is unusually large, an informational
//! answer, a redirect to follow, a transfer coding other than `chunked`.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::write::MultiGzDecoder;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use super::{Error, Limited, RESERVE_AT_MOST};
use crate::http_client;

/// The most bytes of a response head read here; a larger head goes to hyper.
const HEAD_BYTES: usize = 8 << 10;

/// The most header lines read here.
const HEADERS: usize = 64;

/// The scratch buffer for bodies that are not read in place.
const SCRATCH_BYTES: usize = 32 << 10;

/// Room made at a time in a body whose end is not known yet.
const GROW_BYTES: usize = 64 << 10;

/// One target's plain-HTTP request and its kept-alive connection.
pub struct Direct {
    host: String,
    port: u16,
    /// The request as it goes out.
    request: Vec<u8>,
    /// The connection between scrapes. A scrape takes it; only a response
    /// read to its end puts it back, so a scrape cut short (a timeout, an
    /// error) never leaves a half-read connection behind.
    conn: Mutex<Option<TcpStream>>,
    /// Set once an answer had to go to hyper: a target that redirects or
    /// answers in a form read only there would otherwise get every request
    /// twice, once here and once through hyper.
    hyper_only: AtomicBool,
}

/// What a response asked of the caller.
enum Step {
    /// The scrape's result, and whether the connection may be reused.
    Done(Result<String, Error>, bool),
    /// A connection that was reused had been closed by the server before it
    /// answered: try again on a new one.
    Stale,
    /// Let hyper send the request and read the answer.
    Hyper,
}

/// What the head of a 200 said about the body.
struct Framing {
    content_type: String,
    length: Option<u64>,
    chunked: bool,
    gzip: bool,
    keep_alive: bool,
}

impl Direct {
    /// The plain-HTTP path for `uri`, with the request's `headers` (from
    /// `request_parts`), when `uri` is `http` with a host.
    pub fn new(uri: &hyper::Uri, headers: &hyper::HeaderMap) -> Option<Direct> {
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let host = uri.host()?;
        let port = uri.port_u16();
        // The Host header as hyper writes it: the port only when it is not
        // the scheme's.
        let host_header = match port {
            Some(p) if p != 80 => format!("{host}:{p}"),
            _ => host.to_string(),
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = format!("GET {path} HTTP/1.1\r\nhost: {host_header}\r\n").into_bytes();
        for (name, value) in headers {
            request.extend_from_slice(name.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        Some(Direct {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: port.unwrap_or(80),
            request,
            conn: Mutex::new(None),
            hyper_only: AtomicBool::new(false),
        })
    }

    /// Fetches into `body` (empty): `None` when hyper is to do it instead.
    pub async fn fetch(
        &self,
        limit: u64,
        body: &mut Vec<u8>,
        url: &str,
        follow_redirects: bool,
    ) -> Option<Result<String, Error>> {
        if self.hyper_only.load(Ordering::Relaxed) {
            return None;
        }
        let kept = self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (mut conn, mut reused) = match kept {
            Some(c) => (c, true),
            None => (self.connect().await?, false),
        };
        loop {
            match self
                .exchange(&mut conn, limit, body, url, follow_redirects)
                .await
            {
                Step::Done(result, keep) => {
                    if keep {
                        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
                    }
                    return Some(result);
                }
                Step::Stale if reused => {
                    body.clear();
                    conn = self.connect().await?;
                    reused = false;
                }
                Step::Stale => {
                    body.clear();
                    return None;
                }
                Step::Hyper => {
                    body.clear();
                    self.hyper_only.store(true, Ordering::Relaxed);
                    return None;
                }
            }
        }
    }

    /// A new connection; `None` (hyper tries, and reports its error) when
    /// it cannot be opened.
    async fn connect(&self) -> Option<TcpStream> {
        let conn = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .ok()?;
        conn.set_nodelay(true).ok()?;
        Some(conn)
    }

    async fn exchange(
        &self,
        conn: &mut TcpStream,
        limit: u64,
        body: &mut Vec<u8>,
        url: &str,
        follow_redirects: bool,
    ) -> Step {
        if conn.write_all(&self.request).await.is_err() {
            return Step::Stale;
        }
        // On the heap: an array here would make every target's loop task
        // that much larger for its whole life.
        let mut head = vec![0u8; HEAD_BYTES];
        let mut filled = 0;
        let (head_len, framing) = loop {
            match conn.read(&mut head[filled..]).await {
                Ok(0) | Err(_) if filled == 0 => return Step::Stale,
                Ok(0) => return Step::Hyper,
                Ok(n) => filled += n,
                Err(_) => return Step::Hyper,
            }
            let mut headers = [httparse::EMPTY_HEADER; HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&head[..filled]) {
                Ok(httparse::Status::Complete(len)) => match read_head(&resp, follow_redirects) {
                    Ok(f) => break (len, f),
                    Err(step) => return step,
                },
                Ok(httparse::Status::Partial) if filled < head.len() => {}
                _ => return Step::Hyper,
            }
        };
        let framing = match framing {
            Answer::Body(f) => f,
            Answer::Status(status) => return Step::Done(Err(Error::Status { status }), false),
        };
        let rest = &head[head_len..filled];
        let limit = if limit == 0 { u64::MAX } else { limit };
        let read = if framing.chunked || framing.gzip || framing.length.is_none() {
            read_through(conn, rest, &framing, limit, body, url).await
        } else {
            read_in_place(conn, rest, framing.length.unwrap_or(0), limit, body, url).await
        };
        match read {
            Ok(clean) => Step::Done(Ok(framing.content_type), clean && framing.keep_alive),
            Err(e) => Step::Done(Err(e), false),
        }
    }
}

/// What a complete head says: a body to read, or a status to report.
enum Answer {
    Body(Framing),
    Status(String),
}

/// Reads a complete head; `Err` when hyper is to read the answer.
fn read_head(resp: &httparse::Response<'_, '_>, follow_redirects: bool) -> Result<Answer, Step> {
    let code = resp.code.ok_or(Step::Hyper)?;
    let status = StatusCode::from_u16(code).map_err(|_| Step::Hyper)?;
    if status.is_informational() || (follow_redirects && status.is_redirection()) {
        return Err(Step::Hyper);
    }
    if status != StatusCode::OK {
        // The reason as hyper keeps it, for the same status text.
        let mut ext = hyper::http::Extensions::new();
        let reason = resp.reason.unwrap_or("");
        if Some(reason) != status.canonical_reason()
            && let Ok(r) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes())
        {
            ext.insert(r);
        }
        return Ok(Answer::Status(http_client::status_text(status, &ext)));
    }
    let mut f = Framing {
        content_type: String::new(),
        length: None,
        chunked: false,
        gzip: false,
        // HTTP/1.1 keeps the connection unless told otherwise; 1.0 is left
        // to close.
        keep_alive: resp.version == Some(1),
    };
    let (mut seen_type, mut seen_encoding) = (false, false);
    for h in resp.headers.iter() {
        let name = h.name;
        let value = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(Step::Hyper)?;
            if f.length.is_some_and(|m| m != n) {
                return Err(Step::Hyper);
            }
            f.length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") || f.chunked {
                return Err(Step::Hyper);
            }
            f.chunked = true;
        } else if name.eq_ignore_ascii_case("content-type") && !seen_type {
            seen_type = true;
            // As `HeaderValue::to_str`: visible ASCII (and tabs) or nothing.
            if value
                .iter()
                .all(|&c| c == b'\t' || (b' '..0x7f).contains(&c))
            {
                f.content_type = String::from_utf8_lossy(value).into_owned();
            }
        } else if name.eq_ignore_ascii_case("content-encoding") && !seen_encoding {
            seen_encoding = true;
            f.gzip = value.eq_ignore_ascii_case(b"gzip");
        } else if name.eq_ignore_ascii_case("connection")
            && value
                .split(|&c| c == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        {
            f.keep_alive = false;
        }
    }
    if f.chunked && f.length.is_some() {
        // A length beside `chunked` is ignored, as RFC 9112 says; the
        // connection is not trusted again.
        f.length = None;
        f.keep_alive = false;
    }
    if f.length.is_none() && !f.chunked {
        // Delimited by the end of the connection.
        f.keep_alive = false;
    }
    Ok(Answer::Body(f))
}

fn read_error(url: &str, e: &io::Error) -> Error {
    Error::Request {
        url: url.to_string(),
        msg: format!("error reading a body from connection: {e}"),
    }
}

fn unexpected_eof(url: &str) -> Error {
    Error::Request {
        url: url.to_string(),
        msg: "unexpected EOF".to_string(),
    }
}

/// A body of `length` bytes, neither chunked nor gzipped, read from the
/// socket into `body` itself. Returns whether the connection ended clean.
async fn read_in_place(
    conn: &mut TcpStream,
    rest: &[u8],
    length: u64,
    limit: u64,
    body: &mut Vec<u8>,
    url: &str,
) -> Result<bool, Error> {
    // Room for the whole body at once, as the hyper path reserves it.
    let announced = length.min(limit.saturating_sub(1)).min(RESERVE_AT_MOST);
    body.reserve(usize::try_from(announced).unwrap_or(0));
    // Never more than the body, and never past the limit: reading `limit`
    // bytes already counts as too many.
    let want = length.min(limit);
    let first = usize::try_from(want).unwrap_or(usize::MAX).min(rest.len());
    body.extend_from_slice(&rest[..first]);
    while (body.len() as u64) < want {
        let left = want - body.len() as u64;
        let room = usize::try_from(left).unwrap_or(usize::MAX).min(GROW_BYTES);
        if body.capacity() - body.len() < room {
            body.reserve(room);
        }
        let mut take = (&mut *conn).take(left);
        match take.read_buf(body).await {
            Ok(0) => return Err(unexpected_eof(url)),
            Ok(_) => {}
            Err(e) => return Err(read_error(url, &e)),
        }
    }
    if body.len() as u64 >= limit {
        body.truncate(usize::try_from(limit - 1).unwrap_or(0));
        debug!(url, limit, "body size limit exceeded");
        return Err(Error::BodySizeLimit);
    }
    // Bytes past the body in the head's read: not a connection to reuse.
    Ok(rest.len() == first)
}

/// Where the bytes of a body go once its transfer coding is undone.
enum Sink<'b> {
    Plain { body: &'b mut Vec<u8>, limit: u64 },
    Gzip(Box<MultiGzDecoder<Limited<'b>>>),
}

impl Sink<'_> {
    fn push(&mut self, data: &[u8], url: &str) -> Result<(), Error> {
        match self {
            Sink::Plain { body, limit } => {
                if (body.len() + data.len()) as u64 >= *limit {
                    debug!(url, limit, "body size limit exceeded");
                    return Err(Error::BodySizeLimit);
                }
                body.extend_from_slice(data);
                Ok(())
            }
            Sink::Gzip(dec) => dec.write_all(data).map_err(|e| gzip_error(dec, e, url)),
        }
    }

    fn finish(self, url: &str) -> Result<(), Error> {
        match self {
            Sink::Plain { .. } => Ok(()),
            Sink::Gzip(mut dec) => dec.try_finish().map_err(|e| gzip_error(&dec, e, url)),
        }
    }
}

fn gzip_error(dec: &MultiGzDecoder<Limited<'_>>, e: io::Error, url: &str) -> Error {
    if dec.get_ref().exceeded {
        debug!(url, "body size limit exceeded");
        Error::BodySizeLimit
    } else {
        Error::Request {
            url: url.to_string(),
            msg: format!("error decoding response body: {e}"),
        }
    }
}

/// A chunked, gzipped or close-delimited body, through a scratch buffer.
/// Returns whether the connection ended clean.
async fn read_through(
    conn: &mut TcpStream,
    rest: &[u8],
    f: &Framing,
    limit: u64,
    body: &mut Vec<u8>,
    url: &str,
) -> Result<bool, Error> {
    if let Some(n) = f.length {
        body.reserve(usize::try_from(n.min(RESERVE_AT_MOST)).unwrap_or(0));
    }
    let mut sink = if f.gzip {
        Sink::Gzip(Box::new(MultiGzDecoder::new(Limited {
            body,
            limit,
            exceeded: false,
        })))
    } else {
        Sink::Plain { body, limit }
    };
    let mut chunks = f.chunked.then(Chunked::default);
    // What is left of a body of known length.
    let mut left = f.length.unwrap_or(u64::MAX);
    let mut scratch = vec![0u8; SCRATCH_BYTES];
    let mut input: &[u8] = rest;
    loop {
        match &mut chunks {
            Some(c) => {
                let mut out = Ok(());
                let used = c
                    .feed(input, &mut |d| {
                        if out.is_ok() {
                            out = sink.push(d, url);
                        }
                    })
                    .map_err(|msg| Error::Request {
                        url: url.to_string(),
                        msg: format!("error reading a body from connection: {msg}"),
                    })?;
                out?;
                if c.done() {
                    sink.finish(url)?;
                    // Bytes past the body: not a connection to reuse.
                    return Ok(used == input.len());
                }
            }
            None => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                sink.push(&input[..n], url)?;
                left -= n as u64;
                if left == 0 {
                    sink.finish(url)?;
                    return Ok(n == input.len());
                }
            }
        }
        let n = match conn.read(&mut scratch).await {
            Ok(n) => n,
            Err(e) => return Err(read_error(url, &e)),
        };
        if n == 0 {
            // The end of a close-delimited body; anything else ended early.
            if f.length.is_none() && chunks.is_none() {
                sink.finish(url)?;
                return Ok(false);
            }
            return Err(unexpected_eof(url));
        }
        input = &scratch[..n];
    }
}

/// The state of a chunked body (RFC 9112 section 7.1) between reads.
#[derive(Default)]
struct Chunked {
    state: ChunkState,
    /// The size being read, or the data left of the current chunk.
    size: u64,
    digits: u32,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    /// After the size: blanks, then an extension or the line's end.
    AfterSize,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty one).
    Trailer,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

impl Chunked {
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, passing chunk data to `out`; returns how many bytes
    /// were used (all of them unless the body ended inside `input`).
    fn feed(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<usize, &'static str> {
        use ChunkState::*;
        let mut i = 0;
        while i < input.len() && self.state != Done {
            let c = input[i];
            match self.state {
                Size => match (c as char).to_digit(16) {
                    Some(d) => {
                        self.digits += 1;
                        if self.digits > 16 {
                            return Err("invalid chunk size: too large");
                        }
                        self.size = self.size << 4 | u64::from(d);
                    }
                    None if self.digits == 0 => return Err("invalid chunk size line"),
                    None => {
                        self.state = AfterSize;
                        continue;
                    }
                },
                AfterSize => match c {
                    b' ' | b'\t' => {}
                    b';' => self.state = Extension,
                    b'\r' => self.state = SizeLf,
                    _ => return Err("invalid chunk size line"),
                },
                Extension => {
                    if c == b'\r' {
                        self.state = SizeLf;
                    } else if c == b'\n' {
                        return Err("invalid chunk extension");
                    }
                }
                SizeLf => {
                    if c != b'\n' {
                        return Err("invalid chunk size line");
                    }
                    self.digits = 0;
                    self.state = if self.size == 0 { Trailer } else { Data };
                }
                Data => {
                    let n = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out(&input[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr => {
                    if c != b'\r' {
                        return Err("invalid chunk data end");
                    }
                    self.state = DataLf;
                }
                DataLf => {
                    if c != b'\n' {
                        return Err("invalid chunk data end");
                    }
                    self.state = Size;
                }
                Trailer => {
                    self.state = if c == b'\r' { EndLf } else { TrailerLine };
                }
                TrailerLine => {
                    if c == b'\r' {
                        self.state = TrailerLf;
                    }
                }
                TrailerLf => {
                    if c != b'\n' {
                        return Err("invalid trailer line");
                    }
                    self.state = Trailer;
                }
                EndLf => {
                    if c != b'\n' {
                        return Err("invalid chunked body end");
                    }
                    self.state = Done;
                }
                Done => {}
            }
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `raw` fed in pieces of `step` bytes.
    fn dechunk(raw: &[u8], step: usize) -> Result<(Vec<u8>, usize), &'static str> {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in raw.chunks(step) {
            let n = c.feed(piece, &mut |d| out.extend_from_slice(d))?;
            used += n;
            if c.done() {
                break;
            }
        }
        assert!(c.done(), "not done");
        Ok((out, used))
    }

    #[test]
    fn chunked_bodies_decode_in_any_pieces() {
        let raw = b"5\r\nhello\r\nA;name=v\r\n0123456789\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        for step in 1..=raw.len() {
            let (out, used) = dechunk(raw, step).unwrap();
            assert_eq!(out, b"hello0123456789", "step {step}");
            assert_eq!(&raw[used.min(raw.len())..], b"NEXT", "step {step}");
        }
        let (out, _) = dechunk(b"0\r\n\r\n", 1).unwrap();
        assert!(out.is_empty());
        assert_eq!(dechunk(b"3 \r\nabc\r\n0\r\n\r\n", 3).unwrap().0, b"abc");
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"3\nabc",
            b"3\r\nabcd\r\n",
            b"11111111111111111\r\n",
            b"3;ext\n",
            b"0\r\n\rx",
        ] {
            let mut c = Chunked::default();
            assert!(c.feed(bad, &mut |_| {}).is_err(), "{bad:?}");
        }
    }
}
