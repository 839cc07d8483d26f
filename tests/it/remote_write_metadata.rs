//! Issue 20: metric metadata through `remote_write` (`metadata_config`), as
//! Prometheus 2.42 sends it: every `send_interval`, every scraped metric
//! family's type, help and unit once per round, in requests of at most
//! `max_samples_per_send` entries, counted in
//! `prometheus_remote_storage_metadata_total`. The receiver here decodes
//! the requests with the `prompb` field numbers itself.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::remote_write_queue::{
    Targets, metric, raymon_args, raymon_config, read_request, wait_ready,
};
use crate::support::{self, TempDir, free_port, start_raymon};

/// `prometheus.WriteRequest` with only what this test reads.
#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(bytes = "vec", repeated, tag = "1")]
    timeseries: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "3")]
    metadata: Vec<MetricMetadata>,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
struct MetricMetadata {
    #[prost(int32, tag = "1")]
    r#type: i32,
    #[prost(string, tag = "2")]
    metric_family_name: String,
    #[prost(string, tag = "4")]
    help: String,
    #[prost(string, tag = "5")]
    unit: String,
}

/// A metadata-carrying request as received.
struct Got {
    at: Instant,
    samples: usize,
    entries: Vec<MetricMetadata>,
}

/// Accepts every request with 204 and keeps what each carried.
fn receiver() -> (String, Arc<Mutex<Vec<Got>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let g = g.clone();
            std::thread::spawn(move || {
                while let Some(body) = read_request(&mut s) {
                    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                    let req = WriteRequest::decode(raw.as_slice()).unwrap();
                    g.lock().unwrap().push(Got {
                        at: Instant::now(),
                        samples: req.timeseries.len(),
                        entries: req.metadata,
                    });
                    if s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, got)
}

/// Prometheus's type names as `prompb.MetricMetadata_MetricType`.
fn type_number(kind: &str) -> i32 {
    [
        "unknown",
        "counter",
        "gauge",
        "histogram",
        "gaugehistogram",
        "summary",
        "info",
        "stateset",
    ]
    .iter()
    .position(|k| *k == kind)
    .unwrap_or(0) as i32
}

#[test]
fn issue_20_metadata_is_sent_every_send_interval_in_bounded_requests() {
    let dir = TempDir::new("rw-metadata");
    let targets = Targets::start(2, 40);
    let (recv, got) = receiver();
    let cfg = dir.path().join("raymon.yml");
    let extra = "    metadata_config:\n      send: true\n      send_interval: 2s\n      max_samples_per_send: 7\n";
    let url = format!("http://{recv}/api/v1/write");
    std::fs::write(&cfg, raymon_config(&targets.sd_file(), "m", &[url], extra)).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let _raymon = start_raymon(
        &raymon_args(dir.path(), &cfg, &addr, &[]),
        &dir.path().join("raymon.log"),
    );
    wait_ready(&addr, "raymon");
    std::thread::sleep(Duration::from_secs(9));

    // What the targets exposed, by raymon's own metadata API.
    let body = support::get(&addr, "/api/v1/metadata").unwrap().body;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut want = BTreeSet::new();
    for (name, list) in v["data"].as_object().unwrap() {
        for m in list.as_array().unwrap() {
            want.insert((
                name.clone(),
                type_number(m["type"].as_str().unwrap()),
                m["help"].as_str().unwrap().to_string(),
                m["unit"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    assert!(want.len() > 7, "the targets expose {} families", want.len());

    let got = got.lock().unwrap();
    let md: Vec<&Got> = got.iter().filter(|g| !g.entries.is_empty()).collect();
    assert!(
        got.iter().any(|g| g.samples > 0),
        "samples were forwarded too"
    );
    assert!(
        md.iter().all(|g| g.samples == 0),
        "metadata goes in requests of its own"
    );
    assert!(
        md.iter().all(|g| g.entries.len() <= 7),
        "a request holds at most max_samples_per_send entries"
    );
    // Rounds: requests closer than a second belong to one round.
    let mut rounds: Vec<Vec<&MetricMetadata>> = Vec::new();
    let mut last: Option<Instant> = None;
    for g in &md {
        if last.is_none_or(|l| g.at - l > Duration::from_secs(1)) {
            rounds.push(Vec::new());
        }
        last = Some(g.at);
        rounds.last_mut().unwrap().extend(g.entries.iter());
    }
    assert!(
        rounds.len() >= 2,
        "{} rounds in 9 s with send_interval 2s",
        rounds.len()
    );
    // Every whole round (not the last, which may still be on its way)
    // carries each family once.
    for r in &rounds[..rounds.len() - 1] {
        let keys: Vec<_> = r
            .iter()
            .map(|m| {
                (
                    m.metric_family_name.clone(),
                    m.r#type,
                    m.help.clone(),
                    m.unit.clone(),
                )
            })
            .collect();
        let set: BTreeSet<_> = keys.iter().cloned().collect();
        assert_eq!(set.len(), keys.len(), "an entry sent twice in one round");
        assert_eq!(set, want, "a round's entries against /api/v1/metadata");
    }
    let sent: usize = md.iter().map(|g| g.entries.len()).sum();
    let counted = metric(&addr, "prometheus_remote_storage_metadata_total{");
    assert!(
        counted >= (sent - md.last().map_or(0, |g| g.entries.len())) as f64,
        "metadata_total {counted} against {sent} received"
    );
    eprintln!("{} metadata requests in {} rounds", md.len(), rounds.len());
}
