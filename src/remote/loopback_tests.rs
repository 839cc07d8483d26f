//! raymon's remote write sender over loopback sockets: against raymon's
//! own receiver and against a real VictoriaMetrics.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::model::STALE_NAN;
use crate::remote::{self, Client, ClientOptions, WriteRequest};
use crate::testing::{KillOnDrop, TempDir, free_port};
use crate::tsdb::{Head, HeadOptions};
use crate::web;
use crate::web::remote_write::tests::{read_back, receiving_state, series};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sends_to_raymon_over_a_socket() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = receiving_state(&head);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(web::server::serve(
        listener,
        web::router(st),
        web::server::ServerOptions::default(),
        stop.clone(),
    ));
    let client = Client::new(ClientOptions::new(format!("http://{addr}/api/v1/write"))).unwrap();
    let req = WriteRequest {
        timeseries: vec![series(
            &[("__name__", "via_socket"), ("instance", "a")],
            &[(1000, 1.0), (2000, STALE_NAN)],
        )],
        metadata: Vec::new(),
    };
    client.send(&req).await.unwrap();
    let got = read_back(&head, "via_socket");
    assert_eq!(got[0].1.len(), 2);
    assert_eq!(got[0].1[1].v.to_bits(), STALE_NAN.to_bits());

    // An error answer comes back with its status and text, not retried.
    let bad = Client::new(ClientOptions::new(format!("http://{addr}/api/v1/nowrite"))).unwrap();
    let err = bad.send(&req).await.unwrap_err();
    assert!(
        matches!(&err, remote::Error::Status { status: 404, body, .. } if body == "404 page not found"),
        "{err}"
    );
    assert!(!err.is_recoverable());
    stop.cancel();
    server.await.unwrap().unwrap();
}

/// VictoriaMetrics 1.79 on a free loopback port, killed when dropped.
struct Victoria {
    addr: String,
    _proc: KillOnDrop,
    _dir: TempDir,
}

impl Victoria {
    fn start() -> Victoria {
        let dir = TempDir::new("vm");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("vm.log")).unwrap();
        let child = std::process::Command::new("victoria-metrics")
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("data").display()
            ))
            .arg(format!("-httpListenAddr={addr}"))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("victoria-metrics is not installed: run scripts/setup-deps");
        let vm = Victoria {
            addr,
            _proc: KillOnDrop(child),
            _dir: dir,
        };
        crate::testing::wait_for(Duration::from_secs(30), "VictoriaMetrics health", || {
            match crate::testing::get(&vm.addr, "/health") {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("status {}", r.status)),
                Err(e) => Err(e.to_string()),
            }
        });
        vm
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victoria_metrics_receives_what_the_client_sends() {
    let vm = tokio::task::spawn_blocking(Victoria::start).await.unwrap();
    let now = crate::web::system_now_ms() / 1000 * 1000;
    let t0 = now - 10 * 60_000;
    let samples: Vec<(i64, f64)> = (0..10).map(|i| (t0 + i * 60_000, i as f64 * 1.5)).collect();
    let req = WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("__name__", "raymon_rw_test"),
                    ("job", "ray"),
                    ("q", "a \"b\", c"),
                ],
                &samples,
            ),
            series(
                &[("__name__", "raymon_rw_other"), ("job", "ray")],
                &[(t0, 7.0)],
            ),
        ],
        metadata: Vec::new(),
    };
    let client = Client::new(ClientOptions::new(format!(
        "http://{}/api/v1/write",
        vm.addr
    )))
    .unwrap();
    client.send(&req).await.unwrap();

    let addr = vm.addr.clone();
    let lines = tokio::task::spawn_blocking(move || {
        crate::testing::wait_for(
            Duration::from_secs(30),
            "samples in VictoriaMetrics",
            || {
                let _ = crate::testing::get(&addr, "/internal/force_flush");
                let path = format!(
                    "/api/v1/export?match[]={}",
                    crate::testing::enc("{job=\"ray\"}")
                );
                let r = crate::testing::get(&addr, &path).map_err(|e| e.to_string())?;
                let lines: Vec<serde_json::Value> = r
                    .body
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                let total: usize = lines
                    .iter()
                    .map(|l| l["values"].as_array().unwrap().len())
                    .sum();
                if total == 11 {
                    Ok(lines)
                } else {
                    Err(format!("{total} samples so far: {}", r.body))
                }
            },
        )
    })
    .await
    .unwrap();
    let main = lines
        .iter()
        .find(|l| l["metric"]["__name__"] == "raymon_rw_test")
        .unwrap();
    assert_eq!(main["metric"]["q"], "a \"b\", c");
    let ts: Vec<i64> = main["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    let vs: Vec<f64> = main["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(ts, samples.iter().map(|s| s.0).collect::<Vec<_>>());
    assert_eq!(vs, samples.iter().map(|s| s.1).collect::<Vec<_>>());
}
