//! The scrape HTTP client against loopback servers that answer with raw
//! bytes: headers sent, keep-alive reuse, gzip, the body size limit on the
//! decoded size, timeouts and error texts.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::HttpClientConfig;
use crate::scrape::client::{ACCEPT_HEADER, Client, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does for one request path.
enum Answer {
    /// Writes these bytes, then waits for the next request on the connection.
    Bytes(Vec<u8>),
    /// Sends a head with this Content-Length, then endless `#` lines.
    Endless(usize),
    /// Sends a head, then nothing.
    Stall,
    /// Writes these bytes and closes the connection.
    Close(Vec<u8>),
}

type Answers = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// A loopback server that counts connections and keeps each request head.
struct Server {
    url: String,
    accepts: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn server(answers: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepts = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let answers: Answers = Arc::new(answers);
    let (a, h) = (accepts.clone(), heads.clone());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(connection(sock, answers.clone(), h.clone()));
        }
    });
    Server {
        url,
        accepts,
        heads,
    }
}

async fn connection(mut sock: TcpStream, answers: Answers, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        heads.lock().unwrap().push(head);
        match answers(&path) {
            Answer::Bytes(b) => {
                if sock.write_all(&b).await.is_err() {
                    return;
                }
            }
            Answer::Endless(len) => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                let _ = sock.write_all(head.as_bytes()).await;
                let line = [b"#".repeat(1023), b"\n".to_vec()].concat();
                while sock.write_all(&line).await.is_ok() {}
                return;
            }
            Answer::Close(b) => {
                let _ = sock.write_all(&b).await;
                return;
            }
            Answer::Stall => {
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
        }
    }
}

fn ok(content_type: &str, extra: &str, body: &[u8]) -> Answer {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    Answer::Bytes(out)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

const TEXT: &str = "text/plain; version=0.0.4";

async fn scrape(
    client: &Client,
    url: &str,
    timeout: Duration,
    limit: u64,
) -> (Result<String, Error>, Vec<u8>) {
    let req = client.prepare(url, timeout);
    let mut body = Vec::new();
    let r = client.scrape(&req, limit, &mut body).await;
    (r, body)
}

#[tokio::test]
async fn sends_prometheus_headers_and_reuses_the_connection() {
    let srv = server(|path| match path {
        "/metrics" => ok(TEXT, "", b"a 1\n"),
        _ => ok(TEXT, "Transfer-Encoding: chunked\r\n", b""),
    })
    .await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let req = client.prepare(&format!("{}/metrics", srv.url), Duration::from_millis(2500));
    let mut body = Vec::new();
    for _ in 0..3 {
        let ct = client.scrape(&req, 0, &mut body).await.unwrap();
        assert_eq!(ct, TEXT);
        assert_eq!(body, b"a 1\n");
    }
    // One connection for three scrapes: keep-alive holds.
    assert_eq!(srv.accepts.load(Ordering::SeqCst), 1);

    let heads = srv.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 3);
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /metrics http/1.1\r\n"), "{head}");
    let has = |h: &str| head.contains(&format!("\r\n{}\r\n", h.to_ascii_lowercase()));
    assert!(has(&format!("accept: {ACCEPT_HEADER}")), "{head}");
    assert!(has("accept-encoding: gzip"), "{head}");
    assert!(has("x-prometheus-scrape-timeout-seconds: 2.5"), "{head}");
    assert!(
        has(&format!("user-agent: raymon/{}", env!("CARGO_PKG_VERSION"))),
        "{head}"
    );
    assert!(!head.contains("content-length"), "{head}");
}

#[tokio::test]
async fn chunked_bodies_are_read_whole() {
    let body: Vec<u8> = (0..5000)
        .flat_map(|i| format!("m{{i=\"{i}\"}} 1\n").into_bytes())
        .collect();
    let mut chunked = Vec::new();
    for part in body.chunks(1000) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let resp = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec(),
        chunked,
    ]
    .concat();
    let srv = server(move |_| Answer::Bytes(resp.clone())).await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    // One request for all scrapes, as a target's loop keeps it: the
    // connection is kept with it.
    let req = client.prepare(&format!("{}/metrics", srv.url), Duration::from_secs(5));
    let mut got = Vec::new();
    for _ in 0..2 {
        let r = client.scrape(&req, 0, &mut got).await;
        assert_eq!(r.unwrap(), "text/plain");
        assert_eq!(got, body);
    }
    assert_eq!(srv.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn gzip_is_decoded_and_the_limit_applies_to_the_decoded_size() {
    let plain: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("ray_metric{{worker=\"{}\"}} {i}\n", i % 7).into_bytes())
        .collect();
    let packed = gzip(&plain);
    assert!(packed.len() * 4 < plain.len());
    let srv = server(move |_| ok(TEXT, "Content-Encoding: gzip\r\n", &packed)).await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let url = format!("{}/metrics", srv.url);
    let t = Duration::from_secs(5);

    let (r, got) = scrape(&client, &url, t, 0).await;
    assert_eq!(r.unwrap(), TEXT);
    assert_eq!(got, plain);

    // The compressed body is far below the limit, the decoded one is not.
    let n = plain.len() as u64;
    let (r, got) = scrape(&client, &url, t, n / 2).await;
    assert!(matches!(r, Err(Error::BodySizeLimit)), "{r:?}");
    assert!((got.len() as u64) < n / 2);
    // As Prometheus's LimitReader: a body of exactly the limit is too big.
    let (r, _) = scrape(&client, &url, t, n).await;
    assert_eq!(r.unwrap_err().to_string(), "body size limit exceeded");
    let (r, got) = scrape(&client, &url, t, n + 1).await;
    assert_eq!(r.unwrap(), TEXT);
    assert_eq!(got, plain);
}

#[tokio::test]
async fn a_gzip_bomb_stops_at_the_limit() {
    // 256 MiB of zeros in about 250 KiB.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    let srv = server(move |_| ok(TEXT, "Content-Encoding: gzip\r\n", &bomb)).await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let limit = 4 << 20;
    let (r, got) = scrape(
        &client,
        &format!("{}/m", srv.url),
        Duration::from_secs(20),
        limit,
    )
    .await;
    assert!(matches!(r, Err(Error::BodySizeLimit)), "{r:?}");
    assert!((got.len() as u64) < limit);
    assert!(got.capacity() < 2 * limit as usize, "{}", got.capacity());
}

#[tokio::test]
async fn a_huge_plain_body_stops_at_the_limit() {
    let srv = server(|_| Answer::Endless(1 << 30)).await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let limit = 1 << 20;
    let started = Instant::now();
    let (r, got) = scrape(
        &client,
        &format!("{}/m", srv.url),
        Duration::from_secs(20),
        limit,
    )
    .await;
    assert!(matches!(r, Err(Error::BodySizeLimit)), "{r:?}");
    assert!((got.len() as u64) < limit);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn bad_gzip_is_an_error() {
    let srv = server(|_| ok(TEXT, "Content-Encoding: gzip\r\n", b"not gzip at all")).await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let (r, _) = scrape(
        &client,
        &format!("{}/m", srv.url),
        Duration::from_secs(5),
        0,
    )
    .await;
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("error decoding response body"), "{msg}");
}

#[tokio::test]
async fn a_stalled_body_times_out_with_prometheus_text() {
    let srv = server(|_| Answer::Stall).await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let url = format!("{}/metrics", srv.url);
    let started = Instant::now();
    let (r, _) = scrape(&client, &url, Duration::from_millis(300), 0).await;
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert_eq!(
        r.unwrap_err().to_string(),
        format!("Get \"{url}\": context deadline exceeded")
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn non_200_gives_the_status_line() {
    let srv = server(|path| match path {
        "/fail" => Answer::Bytes(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        _ => Answer::Bytes(b"HTTP/1.1 503 Busy Now\r\nContent-Length: 2\r\n\r\nno".to_vec()),
    })
    .await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let t = Duration::from_secs(5);
    let (r, _) = scrape(&client, &format!("{}/fail", srv.url), t, 0).await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "server returned HTTP status 500 Internal Server Error"
    );
    let (r, _) = scrape(&client, &format!("{}/busy", srv.url), t, 0).await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "server returned HTTP status 503 Busy Now"
    );
}

#[tokio::test]
async fn connection_errors_name_the_cause() {
    // A port that was just free: nothing listens there now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let url = format!("http://{addr}/metrics");
    let (r, _) = scrape(&client, &url, Duration::from_secs(5), 0).await;
    let msg = r.unwrap_err().to_string();
    assert!(msg.starts_with(&format!("Get \"{url}\": ")), "{msg}");
    assert!(msg.to_lowercase().contains("connection refused"), "{msg}");
}

#[tokio::test]
async fn bad_urls_fail_clearly() {
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let t = Duration::from_secs(1);
    let (r, _) = scrape(&client, "ftp://127.0.0.1:1/metrics", t, 0).await;
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("unsupported protocol scheme \"ftp\""), "{msg}");
    let (r, _) = scrape(&client, "http://[::1/metrics", t, 0).await;
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("invalid URL"), "{msg}");
}

/// A client that scrapes through hyper: credentials keep it off the
/// plain-HTTP path.
fn hyper_client() -> Client {
    let cfg = HttpClientConfig {
        basic_auth: Some(crate::config::http_client::BasicAuth {
            username: "u".to_string(),
            password: "p".to_string(),
            password_file: String::new(),
        }),
        ..HttpClientConfig::default()
    };
    Client::new(&cfg).unwrap()
}

fn chunked(body: &[u8], step: usize, trailer: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in body.chunks(step).enumerate() {
        let ext = if i % 2 == 1 { ";a=b" } else { "" };
        out.extend_from_slice(format!("{:X}{ext}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0\r\n{trailer}\r\n").as_bytes());
    out
}

/// The plain-HTTP path and hyper give the same content type, body and
/// error text for the same answers: lengths, chunks with extensions and
/// trailers, gzip either way, close-delimited and HTTP/1.0 bodies,
/// statuses with their reasons, a redirect, the size limit.
#[tokio::test]
async fn issue_22_the_plain_http_path_reads_what_hyper_reads() {
    let plain: Vec<u8> = (0..30_000)
        .flat_map(|i| format!("ray_m{{worker=\"{}\"}} {i}\n", i % 11).into_bytes())
        .collect();
    let packed = gzip(&plain);
    let p = plain.clone();
    let srv = server(move |path| {
        let head = |extra: &str| format!("HTTP/1.1 200 OK\r\nContent-Type: {TEXT}\r\n{extra}\r\n");
        let with = |head: String, body: &[u8]| [head.into_bytes(), body.to_vec()].concat();
        match path {
            "/length" => ok(TEXT, "", &p),
            "/chunked" => Answer::Bytes(with(
                head("Transfer-Encoding: chunked\r\n"),
                &chunked(&p, 7_777, "x-t: 1\r\n"),
            )),
            "/gzip" => ok(TEXT, "Content-Encoding: gzip\r\n", &packed),
            "/gzip-chunked" => Answer::Bytes(with(
                head("Content-Encoding: GZIP\r\nTransfer-Encoding: chunked\r\n"),
                &chunked(&packed, 5_000, ""),
            )),
            "/close" => Answer::Close(with(head(""), &p)),
            "/http10" => Answer::Close(
                [
                    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec(),
                    p.clone(),
                ]
                .concat(),
            ),
            "/connection-close" => Answer::Close(with(
                head(&format!(
                    "Connection: close\r\nContent-Length: {}\r\n",
                    p.len()
                )),
                &p,
            )),
            "/empty" => ok("", "", b""),
            "/404" => Answer::Bytes(b"HTTP/1.1 404 Nope\r\nContent-Length: 0\r\n\r\n".to_vec()),
            "/503" => Answer::Bytes(b"HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n".to_vec()),
            "/redirect" => Answer::Bytes(
                b"HTTP/1.1 302 Found\r\nLocation: /length\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ),
            "/short" => Answer::Close(with(head("Content-Length: 100\r\n"), b"abc")),
            _ => Answer::Bytes(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ),
        }
    })
    .await;
    let direct = Client::new(&HttpClientConfig::default()).unwrap();
    let hyper = hyper_client();
    let t = Duration::from_secs(10);
    let n = plain.len() as u64;
    for path in [
        "/length",
        "/chunked",
        "/gzip",
        "/gzip-chunked",
        "/close",
        "/http10",
        "/connection-close",
        "/empty",
        "/404",
        "/503",
        "/redirect",
        "/short",
        "/500",
    ] {
        let url = format!("{}{path}", srv.url);
        for limit in [0, n, n + 1, 1000] {
            let (a, body_a) = scrape(&direct, &url, t, limit).await;
            let (b, body_b) = scrape(&hyper, &url, t, limit).await;
            let what = format!("{path} with limit {limit}");
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{what}");
                    assert_eq!(body_a, body_b, "{what}");
                }
                // A body cut short: both fail, each in its own words.
                (Err(Error::Request { .. }), Err(Error::Request { .. })) if path == "/short" => {}
                (a, b) => assert_eq!(
                    a.map_err(|e| e.to_string()),
                    b.map_err(|e| e.to_string()),
                    "{what}"
                ),
            }
        }
    }
    // The plain-HTTP path wrote one request a scrape (its Host header
    // first, where hyper adds it last), and a redirect went to hyper.
    let heads = srv.heads.lock().unwrap().clone();
    let direct_heads = heads
        .iter()
        .filter(|h| {
            h.split("\r\n")
                .nth(1)
                .is_some_and(|l| l.starts_with("host: "))
        })
        .count();
    assert_eq!(direct_heads, 13 * 4, "{heads:?}");
}

/// A kept connection that the server closed between scrapes is replaced
/// without failing the scrape; one the server asked to close is not kept.
#[tokio::test]
async fn issue_22_a_closed_kept_connection_is_replaced() {
    let srv = server(|path| match path {
        "/gone" => Answer::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\na 1\n".to_vec()),
        _ => Answer::Close(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\na 1\n".to_vec(),
        ),
    })
    .await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    for (i, path) in ["/gone", "/asked"].into_iter().enumerate() {
        let req = client.prepare(&format!("{}{path}", srv.url), Duration::from_secs(5));
        let mut body = Vec::new();
        for _ in 0..3 {
            client.scrape(&req, 0, &mut body).await.unwrap();
            assert_eq!(body, b"a 1\n");
            // Let the server's close arrive before the next scrape.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(srv.accepts.load(Ordering::SeqCst), 3 * (i + 1), "{path}");
    }
}

/// A target whose answer had to go to hyper (here a redirect to follow)
/// is asked once a scrape from then on, by hyper alone, not once on the
/// plain-HTTP path and again through hyper.
#[tokio::test]
async fn issue_22_a_target_read_by_hyper_is_asked_once_a_scrape() {
    let srv = server(|path| match path {
        "/moved" => Answer::Bytes(
            b"HTTP/1.1 302 Found\r\nLocation: /here\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        _ => ok(TEXT, "", b"a 1\n"),
    })
    .await;
    let client = Client::new(&HttpClientConfig::default()).unwrap();
    let req = client.prepare(&format!("{}/moved", srv.url), Duration::from_secs(5));
    let mut body = Vec::new();
    for _ in 0..3 {
        client.scrape(&req, 0, &mut body).await.unwrap();
        assert_eq!(body, b"a 1\n");
    }
    let heads = srv.heads.lock().unwrap().clone();
    let asked = heads
        .iter()
        .filter(|h| h.starts_with("GET /moved "))
        .count();
    // The first scrape tried the plain-HTTP path before hyper; the other
    // two went to hyper only.
    assert_eq!(asked, 4, "{heads:?}");
}
