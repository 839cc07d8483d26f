//! Remote write 1.0: raymon's receiver (`POST /api/v1/write`, through
//! `web::router(state).oneshot`) read back through the querier, and the
//! write guards of issue 16.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::model::{Labels, Matcher, STALE_NAN, Sample as ModelSample};
use crate::remote::{self, Label, Sample, TimeSeries, WriteRequest};
use crate::scrape::status::{ActiveTarget, DroppedTarget, MetricMetadata, TargetsSource};
use crate::storage::Queryable;
use crate::tsdb::{Head, HeadOptions};
use crate::web::{self, AppState};

/// A targets source with no targets, for states without a scraper.
pub(crate) struct NoTargets;

impl TargetsSource for NoTargets {
    fn active_targets(&self) -> Vec<ActiveTarget> {
        Vec::new()
    }
    fn dropped_targets(&self) -> Vec<DroppedTarget> {
        Vec::new()
    }
    fn metadata(&self) -> Vec<(Labels, Vec<MetricMetadata>)> {
        Vec::new()
    }
}

/// A ready state over `head` that accepts remote writes into it.
pub(crate) fn receiving_state(head: &Arc<Head>) -> AppState {
    let mut st = AppState::new(head.clone(), Arc::new(NoTargets));
    st.remote_write = Some(head.clone());
    // These tests write samples from 1970.
    st.write_limits = web::WriteLimits::none();
    st.ready.store(true, Ordering::Release);
    st
}

pub(crate) fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        exemplars: Vec::new(),
    }
}

async fn post_write(st: &AppState, body: Vec<u8>) -> (StatusCode, String) {
    let req = Request::post("/api/v1/write")
        .header(header::CONTENT_ENCODING, "snappy")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(Body::from(body))
        .unwrap();
    let resp = web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub(crate) fn read_back(head: &Head, name: &str) -> Vec<(Labels, Vec<ModelSample>)> {
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    q.select(&[Matcher::equal("__name__", name)])
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect()
}

#[tokio::test]
async fn written_samples_read_back_bit_exact() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = receiving_state(&head);
    let req = WriteRequest {
        timeseries: vec![
            // Labels out of order, as some senders send them.
            series(
                &[("job", "ray"), ("__name__", "rw_total"), ("a", "x y,\"z\"")],
                &[(1000, 1.0), (2000, 2.5), (3000, STALE_NAN)],
            ),
            // Not -0.0: proto3 omits a double equal to zero, so -0.0 arrives
            // as +0.0 over remote write, with Prometheus's senders too.
            series(
                &[("__name__", "rw_gauge")],
                &[(1000, f64::NAN), (2000, f64::INFINITY), (3000, -0.25)],
            ),
        ],
        metadata: Vec::new(),
    };
    let (status, body) = post_write(&st, remote::encode(&req)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, "");

    let got = read_back(&head, "rw_total");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].0,
        Labels::from_pairs([("__name__", "rw_total"), ("a", "x y,\"z\""), ("job", "ray")])
    );
    let bits: Vec<(i64, u64)> = got[0].1.iter().map(|s| (s.t, s.v.to_bits())).collect();
    assert_eq!(
        bits,
        [
            (1000, 1.0f64.to_bits()),
            (2000, 2.5f64.to_bits()),
            (3000, 0x7ff0_0000_0000_0002)
        ]
    );
    let g = read_back(&head, "rw_gauge");
    let bits: Vec<u64> = g[0].1.iter().map(|s| s.v.to_bits()).collect();
    assert_eq!(
        bits,
        [
            f64::NAN.to_bits(),
            f64::INFINITY.to_bits(),
            (-0.25f64).to_bits()
        ]
    );
}

#[tokio::test]
async fn receiver_errors_match_prometheus() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = receiving_state(&head);

    // Not snappy at all.
    let (status, body) = post_write(&st, b"\xff\xff\xff\xff\xff\xffgarbage".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.starts_with("snappy: "), "{body}");
    assert!(body.ends_with('\n'));

    // Valid snappy around something that is not a WriteRequest.
    let junk = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xff\xff\xff\x0f")
        .unwrap();
    let (status, body) = post_write(&st, junk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A snappy header claiming more than the decode limit is refused
    // before anything is allocated for it.
    let mut bomb = Vec::new();
    let mut n = (super::MAX_DECODED_BYTES + 1) as u64;
    while n >= 0x80 {
        bomb.push((n as u8) | 0x80);
        n >>= 7;
    }
    bomb.push(n as u8);
    let (status, body) = post_write(&st, bomb).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("exceeds the limit"), "{body}");

    // Bodies are bounded like every other request body.
    let mut small = st.clone();
    small.max_body_bytes = 1024;
    let big = WriteRequest {
        timeseries: (0..200u64)
            .map(|i| {
                let v = format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                series(&[("__name__", "big"), ("i", &v)], &[(1, i as f64)])
            })
            .collect(),
        metadata: Vec::new(),
    };
    let body = remote::encode(&big);
    assert!(body.len() > 1024);
    let (status, _) = post_write(&small, body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(read_back(&head, "big").is_empty());

    // Not ready: 503 as every other API endpoint.
    st.ready.store(false, Ordering::Release);
    let (status, _) = post_write(&st, remote::encode(&WriteRequest::default())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    st.ready.store(true, Ordering::Release);

    // GET is not a write.
    let resp = web::router(st.clone())
        .oneshot(Request::get("/api/v1/write").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Disabled receiver: Prometheus's 404 text.
    st.remote_write = None;
    let (status, body) = post_write(&st, remote::encode(&WriteRequest::default())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        "remote write receiver needs to be enabled with --enable-feature=remote-write-receiver\n"
    );
}

#[tokio::test]
async fn out_of_order_samples_reject_the_request() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = receiving_state(&head);
    let first = WriteRequest {
        timeseries: vec![series(&[("__name__", "ooo")], &[(5000, 1.0)])],
        metadata: Vec::new(),
    };
    assert_eq!(
        post_write(&st, remote::encode(&first)).await.0,
        StatusCode::NO_CONTENT
    );
    // Prometheus 2.42 appends a request in one batch: an out-of-order
    // sample fails it with 400 (so the sender drops it rather than retry)
    // and nothing of it is kept.
    let second = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "fresh")], &[(6000, 1.0)]),
            series(&[("__name__", "ooo")], &[(4000, 2.0)]),
        ],
        metadata: Vec::new(),
    };
    let (status, body) = post_write(&st, remote::encode(&second)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "out of order sample\n");
    assert!(read_back(&head, "fresh").is_empty());
    // A duplicate with the same value is no error.
    assert_eq!(
        post_write(&st, remote::encode(&first)).await.0,
        StatusCode::NO_CONTENT
    );
}

// ------------------------------------------------------ issue 16: write guards

/// Prometheus 2.42 refuses `{a="1",a="2"}` in its head with this text and
/// its handler answers 500; raymon kept one of the two.
#[tokio::test]
async fn issue_16_duplicate_and_invalid_label_names_are_refused() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = receiving_state(&head);
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Pairs, StatusCode, &str); 5] = [
        (
            &[("__name__", "dup"), ("a", "1"), ("a", "2")],
            StatusCode::INTERNAL_SERVER_ERROR,
            "label name \"a\" is not unique: invalid sample\n",
        ),
        (
            &[("__name__", "bad"), ("a-b", "1")],
            StatusCode::BAD_REQUEST,
            "invalid label name \"a-b\"\n",
        ),
        (
            &[("__name__", "bad"), ("", "1")],
            StatusCode::BAD_REQUEST,
            "invalid label name \"\"\n",
        ),
        (
            &[("__name__", "bad metric")],
            StatusCode::BAD_REQUEST,
            "invalid metric name \"bad metric\"\n",
        ),
        (
            &[("a", "")],
            StatusCode::INTERNAL_SERVER_ERROR,
            "empty labelset: invalid sample\n",
        ),
    ];
    for (labels, status, want) in cases {
        let req = WriteRequest {
            timeseries: vec![
                series(&[("__name__", "good")], &[(1000, 1.0)]),
                series(labels, &[(1000, 1.0)]),
            ],
            metadata: Vec::new(),
        };
        let (got, body) = post_write(&st, remote::encode(&req)).await;
        assert_eq!((got, body.as_str()), (status, want), "{labels:?}");
    }
    // All or nothing: the good series of those requests has no samples.
    assert!(read_back(&head, "good").is_empty());
}

/// One series with 100k labels took seconds of CPU through remote write.
#[tokio::test]
async fn issue_16_a_series_with_100k_labels_is_refused_clearly() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = receiving_state(&head);
    st.write_limits.labels = web::WriteLimits::default().labels;
    let names: Vec<String> = (0..100_000).rev().map(|i| format!("l{i}")).collect();
    let mut labels: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    labels.push(("__name__", "wide"));
    let req = WriteRequest {
        timeseries: vec![series(&labels, &[(1000, 1.0)])],
        metadata: Vec::new(),
    };
    let (status, body) = post_write(&st, remote::encode(&req)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        "label_limit exceeded (metric: wide, number of labels: 100001, limit: 256)\n"
    );
    assert_eq!(head.stats().num_series, 0);
}

/// A web page may POST `text/plain` anywhere without a preflight.
#[tokio::test]
async fn issue_16_remote_write_refuses_bodies_a_web_page_can_send_unasked() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = receiving_state(&head);
    let req = WriteRequest {
        timeseries: vec![series(&[("__name__", "x")], &[(1000, 1.0)])],
        metadata: Vec::new(),
    };
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let resp = web::router(st.clone())
            .oneshot(
                Request::post("/api/v1/write")
                    .header(header::CONTENT_TYPE, ct)
                    .header(header::ORIGIN, "http://evil.example")
                    .body(Body::from(remote::encode(&req)))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
    }
    assert!(read_back(&head, "x").is_empty());
}

/// Samples from 1970 and from the year 5138 were stored as given.
#[tokio::test]
async fn issue_16_samples_outside_the_time_window_are_refused() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut st = receiving_state(&head);
    st.write_limits = web::WriteLimits::default();
    let now = web::system_now_ms();
    for (t, flag) in [
        (0, "--web.write.max-age"),
        (99_999_999_999_999, "--web.write.max-future"),
    ] {
        let req = WriteRequest {
            timeseries: vec![series(&[("__name__", "when")], &[(now, 1.0), (t, 2.0)])],
            metadata: Vec::new(),
        };
        let (status, body) = post_write(&st, remote::encode(&req)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body.starts_with("out of bounds: ") && body.contains(flag),
            "{body}"
        );
    }
    assert!(read_back(&head, "when").is_empty());
}

/// Values a label may hold but that need escaping, and the special floats:
/// `/federate` must still answer text that parses.
#[tokio::test]
async fn issue_16_federate_output_parses_whatever_was_written() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let st = receiving_state(&head);
    let now = web::system_now_ms();
    let odd = [
        "quo\"te",
        "back\\slash",
        "new\nline",
        "\\n",
        "ünï",
        "}{,=",
        " ",
    ];
    // Not -0.0: proto3 sends it as +0.0.
    let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5, 1e-300];
    let mut timeseries = Vec::new();
    for (i, v) in odd.iter().enumerate() {
        let val = values[i % values.len()];
        timeseries.push(series(
            &[("__name__", "odd"), ("i", &i.to_string()), ("v", v)],
            &[(now, val)],
        ));
    }
    let req = WriteRequest {
        timeseries,
        metadata: Vec::new(),
    };
    let (status, body) = post_write(&st, remote::encode(&req)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Names the format cannot carry, as a store written before pushed
    // names were checked may hold: left out, not written out.
    let mut app = crate::storage::Appendable::appender(&*head);
    for bad in [
        Labels::from_pairs([("__name__", "odd"), ("i", "x"), ("a-b", "1")]),
        Labels::from_pairs([("__name__", "odd{i=\"y\"} 1\nodd"), ("i", "z")]),
    ] {
        app.append(0, &bad, now, 1.0).unwrap();
    }
    app.commit().unwrap();
    let resp = web::router(st.clone())
        .oneshot(
            Request::get(format!(
                "/federate?match[]={}",
                crate::testing::enc("{__name__=~\"odd.*\"}")
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let mut got = Vec::new();
    for e in crate::textparse::Parser::new(&bytes, crate::textparse::Format::PromText) {
        let e = e.unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)));
        if let crate::textparse::Entry::Sample(s) = e {
            let i: usize = s
                .labels()
                .find(|(n, _)| *n == "i")
                .unwrap()
                .1
                .parse()
                .unwrap();
            let v = s.labels().find(|(n, _)| *n == "v").unwrap().1.into_owned();
            got.push((i, v, s.value));
        }
    }
    got.sort_by_key(|g| g.0);
    assert_eq!(got.len(), odd.len());
    for (i, v, value) in got {
        assert_eq!(v, odd[i]);
        let want = values[i % values.len()];
        assert!(
            value.to_bits() == want.to_bits() || (value.is_nan() && want.is_nan()),
            "{i}: {value} != {want}"
        );
    }
}
