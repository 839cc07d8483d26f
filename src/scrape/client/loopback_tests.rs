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
    let url = format!("{}/metrics", srv.url);
    for _ in 0..2 {
        let (r, got) = scrape(&client, &url, Duration::from_secs(5), 0).await;
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
