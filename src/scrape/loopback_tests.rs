//! The scrape manager against live loopback targets that misbehave (issue 2):
//! each bad target gets a clear error and the good one keeps being scraped.

use std::sync::Arc;
use std::time::Duration;

use crate::discovery::{self, JobDiscovery};
use crate::model::is_stale_nan;
use crate::scrape::status::{Health, TargetsSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::tests::Recorder;

/// Serves `/ok`, `/hang`, `/huge` (100 MB), `/bad` (malformed), `/liar` (a
/// Content-Length of 1 TiB before a short body) and `/fail` (500).
async fn misbehaving_server(listener: TcpListener, cancel: CancellationToken) {
    loop {
        let (mut sock, _) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r { Ok(s) => s, Err(_) => return },
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
            let head = |len: usize| {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                )
            };
            match path.as_str() {
                "/ok" => {
                    let body = "# TYPE good gauge\ngood{a=\"x, y=(z)\"} 1\n";
                    let _ = sock
                        .write_all(format!("{}{body}", head(body.len())).as_bytes())
                        .await;
                }
                "/hang" => tokio::time::sleep(Duration::from_secs(30)).await,
                "/huge" => {
                    let len = 100 << 20;
                    let _ = sock.write_all(head(len).as_bytes()).await;
                    let line = vec![b'#'; 1 << 20];
                    for _ in 0..100 {
                        if sock.write_all(&line).await.is_err() {
                            break;
                        }
                    }
                }
                "/liar" => {
                    let body = "good 1\n";
                    let _ = sock
                        .write_all(format!("{}{body}", head(1 << 40)).as_bytes())
                        .await;
                }
                "/bad" => {
                    let body = "good 1\nbad{a=\"1\" 2\n";
                    let _ = sock
                        .write_all(format!("{}{body}", head(body.len())).as_bytes())
                        .await;
                }
                _ => {
                    let _ = sock.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                }
            }
        });
    }
}

#[test]
fn issue_2_bad_targets_fail_clearly_and_the_good_one_keeps_scraping() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cancel = CancellationToken::new();
        tokio::spawn(misbehaving_server(listener, cancel.clone()));

        let mut yaml = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n");
        for job in ["ok", "hang", "huge", "bad", "fail", "liar"] {
            // The liar's job has no body size limit: only the client's own
            // bound on what a Content-Length reserves keeps it from asking
            // the allocator for a terabyte.
            let limit = if job == "liar" { "" } else { "  body_size_limit: 10MB\n" };
            yaml.push_str(&format!(
                "- job_name: {job}\n  metrics_path: /{job}\n{limit}  static_configs:\n  - targets: ['{addr}']\n"
            ));
        }
        let cfg = crate::config::parse(&yaml, "test.yml").unwrap();
        let rec = Recorder::default();
        let (mut disc, targets_rx) = discovery::Manager::new();
        disc.apply(crate::cli::jobs_from_config(&cfg).unwrap());
        let mut mgr = crate::scrape::Manager::new(Arc::new(rec.clone()), 1).unwrap();
        mgr.apply_configs(cfg.scrape_configs.clone());
        let status = mgr.status();
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let run = tokio::spawn(mgr.run(targets_rx, rx, cancel.clone()));

        tokio::time::sleep(Duration::from_millis(3500)).await;
        let targets = status.active_targets();
        assert_eq!(targets.len(), 6, "{targets:?}");
        for t in &targets {
            let err = &t.last_error;
            match t.scrape_pool.as_str() {
                "ok" => assert_eq!(t.health, Health::Up, "{err}"),
                "hang" => assert!(err.contains("context deadline exceeded"), "{err}"),
                "huge" => assert_eq!(err, "body size limit exceeded"),
                "bad" => assert!(err.contains("line 2") && err.contains("column"), "{err}"),
                "fail" => assert_eq!(err, "server returned HTTP status 500 Internal Server Error"),
                "liar" => assert!(err.starts_with("Get \""), "{err}"),
                other => panic!("unexpected pool {other}"),
            }
            if t.scrape_pool != "ok" {
                assert_eq!(t.health, Health::Down, "{}", t.scrape_pool);
            }
        }
        let samples = rec.take();
        let good: Vec<_> = samples
            .iter()
            .filter(|(l, _, _)| l.metric_name() == Some("good") && l.get("job") == Some("ok"))
            .collect();
        assert!(good.len() >= 2, "the good target was scraped {} times", good.len());
        assert_eq!(good[0].0.get("a"), Some("x, y=(z)"));
        let up_bad: Vec<f64> = samples
            .iter()
            .filter(|(l, _, _)| l.metric_name() == Some("up") && l.get("job") == Some("bad"))
            .map(|s| s.2)
            .collect();
        assert!(!up_bad.is_empty() && up_bad.iter().all(|v| *v == 0.0), "{up_bad:?}");
        // The malformed body's first line never reached the store.
        assert!(!samples.iter().any(|(l, _, _)| l.metric_name() == Some("good") && l.get("job") == Some("bad")));

        // Removing the good target writes staleness markers for its series.
        disc.apply(vec![JobDiscovery { job: "ok".into(), static_groups: vec![], file_sd: vec![], http_sd: vec![] }]);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let after = rec.take();
        let stale: Vec<_> = after
            .iter()
            .filter(|(l, _, v)| l.get("job") == Some("ok") && is_stale_nan(*v))
            .map(|(l, _, _)| l.metric_name().unwrap_or("").to_string())
            .collect();
        assert!(stale.contains(&"good".to_string()), "{stale:?}");
        assert!(stale.contains(&"up".to_string()), "{stale:?}");
        assert!(!status.active_targets().iter().any(|t| t.scrape_pool == "ok"));
        cancel.cancel();
        let _ = run.await;
    });
}
