//! `/api/v1/series`, labels, label values, targets and metadata against
//! Prometheus's answers.

use std::time::{Duration, UNIX_EPOCH};

use crate::model::{Labels, STALE_NAN, Sample};
use crate::scrape::status::{ActiveTarget, DroppedTarget, Health, MetricMetadata};
use crate::storage::Series;
use crate::web::{self};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use super::*;

pub(super) fn series_store() -> MemStore {
    let mut series: Vec<Series> = fixture_json("series-ray_node_cpu_count")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| Series {
            labels: labels_of(l),
            samples: vec![Sample {
                t: NOW_MS - 1000,
                v: 2.0,
            }],
        })
        .collect();
    series.push(Series {
        labels: Labels::from_pairs([
            ("__name__", "ray_tasks"),
            ("State", "RUNNING"),
            ("instance", "192.0.2.2:8080"),
            ("job", "ray"),
        ]),
        samples: vec![
            Sample {
                t: NOW_MS - 20_000,
                v: 3.0,
            },
            Sample {
                t: NOW_MS - 10_000,
                v: 4.0,
            },
        ],
    });
    series.push(Series {
        labels: Labels::from_pairs([
            ("__name__", "ray_tasks"),
            ("State", "FINISHED"),
            ("instance", "192.0.2.2:8081"),
            ("job", "ray"),
        ]),
        samples: vec![
            Sample {
                t: NOW_MS - 20_000,
                v: 5.0,
            },
            Sample {
                t: NOW_MS - 10_000,
                v: STALE_NAN,
            },
        ],
    });
    series.push(Series {
        labels: Labels::from_pairs([("__name__", "old_metric"), ("job", "gone")]),
        samples: vec![Sample { t: 1_000, v: 1.0 }],
    });
    MemStore { series }
}

#[tokio::test]
async fn series_matches_prometheus() {
    let st = state_with(series_store(), FakeTargets::default());
    let r = get(
        &st,
        "/api/v1/series?match%5B%5D=ray_node_cpu_count&start=1795664000&end=1795664538",
    )
    .await;
    assert_fixture(&r, "series-ray_node_cpu_count");

    // Several match[] are a deduplicated union, sorted by labels.
    let r = post_form(
        &st,
        "/api/v1/series",
        "match[]=ray_node_cpu_count&match[]={RayNodeType=\"head\"}&match[]={State=~\"RUN.*\"}",
    )
    .await;
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["__name__"], "ray_node_cpu_count");
    assert_eq!(data[2]["State"], "RUNNING");

    // Time range excludes series without samples in it.
    let r = get(
        &st,
        "/api/v1/series?match[]={job=%22gone%22}&start=0&end=10",
    )
    .await;
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1);
    let r = get(&st, "/api/v1/series?match[]={job='gone'}&start=100").await;
    assert_eq!(r.body, r#"{"status":"success","data":[]}"#);
}

#[tokio::test]
async fn series_errors() {
    let st = state_with(series_store(), FakeTargets::default());
    let r = get(&st, "/api/v1/series").await;
    assert_error(&r, 400, "bad_data", "no match[] parameter provided");
    let r = get(&st, "/api/v1/series?match[]={}").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#,
    );
    let r = get(&st, "/api/v1/series?match[]=up%7B").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().starts_with(
        r#"invalid parameter "match[]": 1:4: parse error: unexpected end of input inside braces"#
    ));
    let r = get(&st, "/api/v1/series?match[]=up&start=yesterday").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "start": Invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#,
    );
    let r = send(
        &st,
        Request::delete("/api/v1/series?match[]=up")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_error(&r, 500, "internal", "not implemented");
}

#[tokio::test]
async fn label_values_match_prometheus() {
    let st = state_with(series_store(), FakeTargets::default());
    let r = get(
        &st,
        "/api/v1/label/instance/values?match[]=ray_node_cpu_count",
    )
    .await;
    assert_fixture(&r, "label-instance-values-match");
    let r = get(
        &st,
        "/api/v1/label/SessionName/values?match[]=ray_node_cpu_count&start=1795664000",
    )
    .await;
    assert_fixture(&r, "label-SessionName-values-match");
    let r = get(
        &st,
        "/api/v1/label/ray_io_cluster/values?match[]={__name__=~%22ray_.*%22}",
    )
    .await;
    assert_fixture(&r, "label-ray_io_cluster-values-match");

    let r = get(&st, "/api/v1/label/__name__/values").await;
    assert_eq!(
        r.json()["data"],
        serde_json::json!(["old_metric", "ray_node_cpu_count", "ray_tasks"])
    );
    let r = get(
        &st,
        "/api/v1/label/job/values?match[]=ray_tasks&match[]=old_metric",
    )
    .await;
    assert_eq!(r.json()["data"], serde_json::json!(["gone", "ray"]));

    let r = get(&st, "/api/v1/label/0bad/values").await;
    assert_error(&r, 400, "bad_data", r#"invalid label name: "0bad""#);
    let r = get(&st, "/api/v1/label/job/values?match[]={job=~'.*'}").await;
    assert_error(
        &r,
        400,
        "bad_data",
        "match[] must contain at least one non-empty matcher",
    );
}

#[tokio::test]
async fn label_names_with_and_without_match() {
    let st = state_with(series_store(), FakeTargets::default());
    let r = get(&st, "/api/v1/labels?match[]=ray_tasks").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":["State","__name__","instance","job"]}"#
    );
    let by_post = post_form(&st, "/api/v1/labels", "match[]=ray_tasks").await;
    assert_eq!(by_post.body, r.body);
    let r = get(&st, "/api/v1/labels?start=0&end=10").await;
    assert_eq!(r.body, r#"{"status":"success","data":["__name__","job"]}"#);
    let all = get(&st, "/api/v1/labels").await;
    let (status, ct) = fixture_head("labels");
    assert_eq!(
        (all.status.as_u16(), all.content_type.as_str()),
        (status, ct.as_str())
    );
    assert_same_shape(&all.json(), &fixture_json("labels"), "labels");
    assert!(
        all.json()["data"]
            .as_array()
            .unwrap()
            .contains(&"IsHeadNode".into())
    );
    let r = get(&st, "/api/v1/labels?start=x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- targets and metadata

fn targets_from_fixture() -> FakeTargets {
    let data = &fixture_json("targets")["data"];
    let active = data["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let last = t["lastScrape"].as_str().unwrap();
            // "2026-11-26T03:42:11.133910241Z": seconds from the parser, nanos by hand.
            let (whole, frac) = last.trim_end_matches('Z').split_once('.').unwrap();
            let ms = web::params::parse_rfc3339(&format!("{whole}Z")).unwrap();
            let nanos: u32 = format!("{frac:0<9}").parse().unwrap();
            let dur = t["lastScrapeDuration"].to_string();
            let dur_nanos: u64 = format!("{:0<9}", dur.trim_start_matches("0."))
                .parse()
                .unwrap();
            ActiveTarget {
                discovered_labels: labels_of(&t["discoveredLabels"]),
                labels: labels_of(&t["labels"]),
                scrape_pool: t["scrapePool"].as_str().unwrap().into(),
                scrape_url: t["scrapeUrl"].as_str().unwrap().into(),
                global_url: t["globalUrl"].as_str().unwrap().into(),
                last_error: t["lastError"].as_str().unwrap().into(),
                last_scrape: Some(
                    UNIX_EPOCH
                        + Duration::from_millis(ms as u64)
                        + Duration::from_nanos(nanos.into()),
                ),
                last_scrape_duration: Duration::from_nanos(dur_nanos),
                health: Health::Up,
                scrape_interval: Duration::from_secs(10),
                scrape_timeout: Duration::from_secs(10),
            }
        })
        .collect();
    FakeTargets {
        active,
        ..FakeTargets::default()
    }
}

#[tokio::test]
async fn targets_match_prometheus_byte_for_byte() {
    let st = state_with(MemStore::default(), targets_from_fixture());
    let r = get(&st, "/api/v1/targets").await;
    assert_fixture(&r, "targets");
    let r = get(&st, "/api/v1/targets?state=active&scrapePool=ray").await;
    assert_fixture(&r, "targets");
}

#[tokio::test]
async fn targets_state_and_pool_filters() {
    let mut t = targets_from_fixture();
    let mut other = t.active[0].clone();
    other.scrape_pool = "aaa".into();
    other.health = Health::Unknown;
    other.last_scrape = None;
    other.last_error = "boom".into();
    other.scrape_interval = Duration::from_secs(90);
    t.active.push(other);
    t.dropped.push(DroppedTarget {
        discovered_labels: Labels::from_pairs([("__address__", "x:1"), ("job", "ray")]),
    });
    let st = state_with(MemStore::default(), t);

    let r = get(&st, "/api/v1/targets").await.json();
    let active = r["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 5);
    // Pools in name order.
    assert_eq!(active[0]["scrapePool"], "aaa");
    assert_eq!(active[0]["health"], "unknown");
    assert_eq!(active[0]["lastScrape"], "0001-01-01T00:00:00Z");
    assert_eq!(active[0]["scrapeInterval"], "1m30s");
    assert_eq!(
        r["data"]["droppedTargets"],
        serde_json::json!([{"discoveredLabels": {"__address__": "x:1", "job": "ray"}}])
    );

    let r = get(&st, "/api/v1/targets?state=dropped").await.json();
    assert_eq!(r["data"]["activeTargets"], serde_json::json!([]));
    assert_eq!(r["data"]["droppedTargets"].as_array().unwrap().len(), 1);
    let r = get(&st, "/api/v1/targets?state=Active").await.json();
    assert_eq!(r["data"]["droppedTargets"], serde_json::json!([]));
    let r = get(&st, "/api/v1/targets?scrapePool=aaa").await.json();
    assert_eq!(r["data"]["activeTargets"].as_array().unwrap().len(), 1);
    assert_eq!(r["data"]["droppedTargets"], serde_json::json!([]));

    let r = get(&st, "/api/v1/scrape_pools").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":{"scrapePools":["aaa","ray"]}}"#
    );
}

pub(super) fn metadata_targets() -> FakeTargets {
    let data = fixture_json("metadata");
    let mut first = Vec::new();
    let mut all = Vec::new();
    for (name, list) in data["data"].as_object().unwrap() {
        for (i, m) in list.as_array().unwrap().iter().enumerate() {
            let md = MetricMetadata {
                metric: name.clone(),
                kind: m["type"].as_str().unwrap().into(),
                help: m["help"].as_str().unwrap().into(),
                unit: m["unit"].as_str().unwrap().into(),
            };
            if i == 0 {
                first.push(md.clone());
            }
            all.push(md);
        }
    }
    let head = Labels::from_pairs([("instance", "192.0.2.2:8080"), ("job", "ray")]);
    let worker = Labels::from_pairs([("instance", "192.0.2.2:8081"), ("job", "ray")]);
    FakeTargets {
        metadata: vec![(head, first), (worker, all)],
        ..FakeTargets::default()
    }
}

#[tokio::test]
async fn metadata_matches_prometheus() {
    let st = state_with(MemStore::default(), metadata_targets());
    // The second target repeats the first's entries: they are deduplicated.
    let r = get(&st, "/api/v1/metadata").await;
    assert_fixture(&r, "metadata");
    let r = get(&st, "/api/v1/metadata?metric=ray_tasks").await;
    assert_fixture(&r, "metadata-ray_tasks");
    let r = get(&st, "/api/v1/metadata?limit=5").await;
    let got = r.json();
    let want = fixture_json("metadata-limit5");
    assert_eq!(got["data"].as_object().unwrap().len(), 5);
    let first = |v: &Value| {
        v["data"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone()
    };
    assert_same_shape(&first(&got), &first(&want), "metadata.data.*");
    let r = get(&st, "/api/v1/metadata?metric=nope").await;
    assert_eq!(r.body, r#"{"status":"success","data":{}}"#);
    let r = get(&st, "/api/v1/metadata?limit=x").await;
    assert_error(&r, 400, "bad_data", "limit must be a number");
}

#[tokio::test]
async fn target_metadata_lists_per_target() {
    let st = state_with(MemStore::default(), metadata_targets());
    let r = get(
        &st,
        "/api/v1/targets/metadata?match_target={instance=%22192.0.2.2:8080%22}&metric=ray_tasks",
    )
    .await;
    assert_eq!(
        r.body,
        concat!(
            r#"{"status":"success","data":[{"target":{"instance":"192.0.2.2:8080","job":"ray"},"#,
            r#""type":"gauge","help":"Current number of tasks currently in a particular state.","unit":""}]}"#
        )
    );
    let r = get(&st, "/api/v1/targets/metadata?limit=1").await.json();
    let items = r["data"].as_array().unwrap();
    assert!(items.len() > 1);
    assert!(
        items
            .iter()
            .all(|i| i["target"]["instance"] == "192.0.2.2:8080")
    );
    assert!(items[0]["metric"].is_string());
}

// ---------------------------------------------------------------- status and others
