//! `/api/v1/targets`, `/api/v1/targets/metadata`, `/api/v1/scrape_pools` and
//! `/api/v1/metadata`: the scraper's view, encoded as Prometheus 2.42 does.
//!
//! Reads only [`TargetsSource`](crate::scrape::status::TargetsSource); knows
//! nothing of how scraping works.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::model::Labels;
use crate::model::duration::format_duration;
use crate::web::Shared;
use crate::web::envelope::{ApiError, ApiResponse, ApiResult};
use crate::web::params::{Form, format_rfc3339_nano};
use crate::web::selector::parse_metric_selector;

/// Serializes a label set as a JSON object.
struct LabelMap<'a>(&'a Labels);

impl Serialize for LabelMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for l in self.0 {
            m.serialize_entry(&l.name, &l.value)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Target<'a> {
    discovered_labels: LabelMap<'a>,
    labels: LabelMap<'a>,
    scrape_pool: &'a str,
    scrape_url: &'a str,
    global_url: String,
    last_error: &'a str,
    last_scrape: String,
    last_scrape_duration: f64,
    health: &'static str,
    scrape_interval: String,
    scrape_timeout: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DroppedTarget<'a> {
    discovered_labels: LabelMap<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetDiscovery<'a> {
    active_targets: Vec<Target<'a>>,
    dropped_targets: Vec<DroppedTarget<'a>>,
}

pub async fn targets(State(st): State<Shared>, form: Form) -> ApiResult {
    let state = form.value("state").to_ascii_lowercase();
    let show_active = matches!(state.as_str(), "" | "any" | "active");
    let show_dropped = matches!(state.as_str(), "" | "any" | "dropped");
    let pool = form.value("scrapePool");

    let mut active = if show_active {
        st.targets.active_targets()
    } else {
        Vec::new()
    };
    if !pool.is_empty() {
        active.retain(|t| t.scrape_pool == pool);
    }
    // Prometheus lists pools in name order; targets keep their order within.
    active.sort_by(|a, b| a.scrape_pool.cmp(&b.scrape_pool));
    let mut dropped = if show_dropped {
        st.targets.dropped_targets()
    } else {
        Vec::new()
    };
    if !pool.is_empty() {
        dropped.retain(|t| t.discovered_labels.get("job") == Some(pool));
    }

    let body = TargetDiscovery {
        active_targets: active
            .iter()
            .map(|t| Target {
                discovered_labels: LabelMap(&t.discovered_labels),
                labels: LabelMap(&t.labels),
                scrape_pool: &t.scrape_pool,
                scrape_url: &t.scrape_url,
                global_url: st.location.global_url(&t.global_url),
                last_error: &t.last_error,
                last_scrape: format_rfc3339_nano(t.last_scrape),
                last_scrape_duration: t.last_scrape_duration.as_secs_f64(),
                health: t.health.as_str(),
                scrape_interval: format_duration(t.scrape_interval),
                scrape_timeout: format_duration(t.scrape_timeout),
            })
            .collect(),
        dropped_targets: dropped
            .iter()
            .map(|t| DroppedTarget {
                discovered_labels: LabelMap(&t.discovered_labels),
            })
            .collect(),
    };
    ApiResponse::json(&body)
}

pub async fn scrape_pools(State(st): State<Shared>) -> ApiResult {
    let pools: BTreeSet<String> = st
        .targets
        .active_targets()
        .into_iter()
        .map(|t| t.scrape_pool)
        .collect();
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Pools {
        scrape_pools: BTreeSet<String>,
    }
    ApiResponse::json(&Pools {
        scrape_pools: pools,
    })
}

fn limit_param(form: &Form, name: &str) -> Result<Option<usize>, ApiError> {
    let v = form.value(name);
    if v.is_empty() {
        return Ok(None);
    }
    let n: i64 = v
        .parse()
        .map_err(|_| ApiError::bad_data(format!("{name} must be a number")))?;
    // A negative limit means no limit.
    Ok(usize::try_from(n).ok())
}

#[derive(Serialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Metadata<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    help: &'a str,
    unit: &'a str,
}

pub async fn metadata(State(st): State<Shared>, form: Form) -> ApiResult {
    let limit = limit_param(&form, "limit")?;
    let per_metric = limit_param(&form, "limit_per_metric")?;
    let metric = form.value("metric");
    let all = st.targets.metadata();
    // Deduplicated by (type, help, unit) per family, first seen first.
    let mut families: BTreeMap<&str, Vec<Metadata<'_>>> = BTreeMap::new();
    for (_, list) in &all {
        for m in list {
            if !metric.is_empty() && m.metric != metric {
                continue;
            }
            let md = Metadata {
                kind: &m.kind,
                help: &m.help,
                unit: &m.unit,
            };
            let entry = families.entry(&m.metric).or_default();
            if !entry.contains(&md) {
                entry.push(md);
            }
        }
    }
    if let Some(n) = limit {
        while families.len() > n {
            families.pop_last();
        }
    }
    if let Some(n) = per_metric {
        for v in families.values_mut() {
            v.truncate(n);
        }
    }
    ApiResponse::json(&families)
}

#[derive(Serialize)]
struct TargetMetadata<'a> {
    target: LabelMap<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    metric: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    help: &'a str,
    unit: &'a str,
}

pub async fn target_metadata(State(st): State<Shared>, form: Form) -> ApiResult {
    let limit = limit_param(&form, "limit")?;
    let match_target = form.value("match_target");
    let matchers = if match_target.is_empty() {
        Vec::new()
    } else {
        parse_metric_selector(match_target)
            .map_err(|e| ApiError::invalid_param("match_target", e))?
    };
    let metric = form.value("metric");
    let all = st.targets.metadata();
    let mut out = Vec::new();
    for (target, list) in &all {
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
        if !matchers.iter().all(|m| m.matches_labels(target)) {
            continue;
        }
        for m in list {
            if !metric.is_empty() && m.metric != metric {
                continue;
            }
            out.push(TargetMetadata {
                target: LabelMap(target),
                metric: if metric.is_empty() { &m.metric } else { "" },
                kind: &m.kind,
                help: &m.help,
                unit: &m.unit,
            });
        }
    }
    ApiResponse::json(&out)
}
