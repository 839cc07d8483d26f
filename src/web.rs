//! The HTTP API: Prometheus 2.42's `/api/v1/*`, `/federate`, `/metrics` and
//! the `/-/` lifecycle endpoints, served by axum.
//!
//! This module owns the wire formats (envelopes, number and time encodings,
//! parameter parsing) and the [`AppState`] that the launcher fills in. It does
//! not know how samples are stored or how PromQL is evaluated: storage comes in
//! through [`crate::storage::Queryable`], targets through
//! [`crate::scrape::status::TargetsSource`], and queries through the
//! [`QueryEngine`] trait defined here. `serve` (`cli/serve.rs`) hands
//! [`router`]`(state)` to the server in [`server`].

pub mod admin;
mod api;
mod envelope;
mod federate;
mod gzip;
mod import_export;
mod json;
pub mod offload;
pub mod params;
pub mod prefix;
pub mod promql_engine;
pub mod range_cache;
pub(crate) mod remote_write;
pub mod selector;
pub mod server;
mod targets;
pub mod ui;
pub mod web_config;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::model::{LabelLimits, Labels, Sample};
use crate::scrape::status::TargetsSource;
use crate::storage::{Appendable, Queryable};

pub use api::router;

/// The result of evaluating a PromQL expression, as the API encodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// `(t_ms, v)`.
    Scalar(i64, f64),
    /// `(t_ms, s)`.
    String(i64, String),
    /// One sample per series: `(labels, t_ms, v)`.
    Vector(Vec<(Labels, i64, f64)>),
    /// Samples per series, ascending by time.
    Matrix(Vec<(Labels, Vec<Sample>)>),
}

impl QueryValue {
    /// The `resultType` Prometheus reports for this value.
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryValue::Scalar(..) => "scalar",
            QueryValue::String(..) => "string",
            QueryValue::Vector(_) => "vector",
            QueryValue::Matrix(_) => "matrix",
        }
    }
}

/// Why a query failed; each kind maps to a Prometheus `errorType` and status.
///
/// A [`QueryError::BadData`] from [`QueryEngine::instant`] is reported as
/// `invalid parameter "query": <message>`; from [`QueryEngine::range`] it is
/// reported bare, as Prometheus 2.42 does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The expression does not parse or type-check (400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (422).
    #[error("{0}")]
    Execution(String),
    /// The query ran out of time (503).
    #[error("{0}")]
    Timeout(String),
    /// The query was canceled (503). The engine's cancellations reach the
    /// API as timeouts today; the variant keeps Prometheus's error type.
    #[allow(dead_code)]
    #[error("{0}")]
    Canceled(String),
    /// Storage or another internal failure (500).
    #[error("{0}")]
    Internal(String),
}

/// Evaluates PromQL. Implementations hold their own storage handle.
///
/// Calls may block for a long time. An engine that says it
/// [keeps deadlines](QueryEngine::keeps_deadlines) is first tried on the
/// request's own thread with a short budget, then, if it ran over, run
/// again on a query thread of its own (see [`offload`]) with what the
/// first try left ([`QueryEngine::handoff`]); it must stop with
/// [`QueryError::Timeout`] once the deadline passes, and soon after
/// [`Until::cancel`] is set. Any other engine runs on a query thread that
/// the API stops waiting for at the deadline.
pub trait QueryEngine: Send + Sync {
    fn instant(&self, query: &str, time_ms: i64) -> Result<QueryValue, QueryError>;
    fn range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryValue, QueryError>;

    /// Whether the `*_until` calls stop at their limits on their own.
    fn keeps_deadlines(&self) -> bool {
        false
    }

    /// Takes what a first try that ran over its budget left on this thread;
    /// the retry calls the result on its own thread before it starts.
    fn handoff(&self) -> Box<dyn FnOnce() + Send> {
        Box::new(|| {})
    }

    /// [`QueryEngine::instant`] within `until`; `None` if it ran over the
    /// budget (then nothing was answered and the query can run again).
    fn instant_until(
        &self,
        query: &str,
        time_ms: i64,
        until: Until,
    ) -> Option<Result<QueryValue, QueryError>> {
        if until.budget.is_some() {
            return None;
        }
        Some(self.instant(query, time_ms))
    }

    /// [`QueryEngine::range`] within `until`, as
    /// [`QueryEngine::instant_until`].
    fn range_until(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        until: Until,
    ) -> Option<Result<QueryValue, QueryError>> {
        if until.budget.is_some() {
            return None;
        }
        Some(self.range(query, start_ms, end_ms, step_ms))
    }

    /// For answers given in parts (a dashboard page keeps the steps it
    /// holds and asks for the rest): where the store's changes stand, taken
    /// before the answer's reads; `None` when this engine cannot tell what
    /// changed since.
    fn mark(&self) -> Option<range_cache::Mark> {
        None
    }

    /// Of the steps `start + k·step` up to `held_last` of `query`'s range
    /// answer read after `mark`, the last that no change since can have
    /// altered; `None` when none.
    fn unchanged_upto(
        &self,
        _query: &str,
        _mark: range_cache::Mark,
        _start_ms: i64,
        _step_ms: i64,
        _held_last_ms: i64,
    ) -> Option<i64> {
        None
    }

    /// [`QueryEngine::range_until`] for the newest steps of an answer
    /// whose earlier steps the asker holds: not through the range cache,
    /// which keeps whole answers for whole asks.
    fn range_tail_until(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        until: Until,
    ) -> Option<Result<QueryValue, QueryError>> {
        self.range_until(query, start_ms, end_ms, step_ms, until)
    }
}

/// When a query given to [`QueryEngine`] stops.
#[derive(Debug, Clone)]
pub struct Until {
    /// Fail with [`QueryError::Timeout`] from here on.
    pub deadline: Instant,
    /// Give up (answer `None`) from here on, without waiting for anything;
    /// engines that cannot stop early give up at once.
    pub budget: Option<Instant>,
    /// Set when nobody waits for the answer any more (the client went
    /// away): stop as soon as possible.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Build facts for `/api/v1/status/buildinfo` and `/version`.
///
/// Field names and order are Prometheus's; `version` should look like a
/// Prometheus version so that clients enable the right features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

impl Default for BuildInfo {
    fn default() -> BuildInfo {
        BuildInfo {
            version: "2.42.0".to_string(),
            revision: format!("raymon-{}", env!("CARGO_PKG_VERSION")),
            branch: String::new(),
            build_user: String::new(),
            build_date: String::new(),
            go_version: String::new(),
        }
    }
}

/// Counts for `/api/v1/status/tsdb`, when the store can give them cheaply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TsdbStatus {
    pub head_stats: HeadStats,
    pub series_count_by_metric_name: Vec<Stat>,
    pub label_value_count_by_label_name: Vec<Stat>,
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    pub series_count_by_label_value_pair: Vec<Stat>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// One `{name, value}` entry of a top-10 list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stat {
    pub name: String,
    pub value: u64,
}

/// The outcome of the last configuration load, for `runtimeinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigStatus {
    pub success: bool,
    pub last_time: SystemTime,
}

/// What the write endpoints (`POST /api/v1/import`, `POST /api/v1/write`)
/// accept: bounds on each series' labels and on sample times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    pub labels: LabelLimits,
    /// Samples older than this (before now) are refused; `None` takes any.
    pub max_age: Option<Duration>,
    /// Samples further than this in the future are refused; `None` takes any.
    pub max_future: Option<Duration>,
}

/// `--web.write.label-limit`: Ray's series have about 15 labels.
pub const DEFAULT_WRITE_LABEL_LIMIT: usize = 256;
/// `--web.write.label-name-length-limit`, in bytes.
pub const DEFAULT_WRITE_LABEL_NAME_LENGTH_LIMIT: usize = 1024;
/// `--web.write.label-value-length-limit`, in bytes.
pub const DEFAULT_WRITE_LABEL_VALUE_LENGTH_LIMIT: usize = 16 << 10;
/// `--web.write.max-future`: clocks of senders run a little ahead; Prometheus
/// 2.42's head takes samples up to its chunk range (hours) ahead.
pub const DEFAULT_WRITE_MAX_FUTURE: Duration = Duration::from_secs(10 * 60);

impl Default for WriteLimits {
    /// Limits for a server keeping Prometheus's default 15 days.
    fn default() -> WriteLimits {
        WriteLimits {
            labels: LabelLimits {
                max_labels: DEFAULT_WRITE_LABEL_LIMIT,
                max_name_len: DEFAULT_WRITE_LABEL_NAME_LENGTH_LIMIT,
                max_value_len: DEFAULT_WRITE_LABEL_VALUE_LENGTH_LIMIT,
            },
            max_age: Some(Duration::from_secs(15 * 24 * 3600)),
            max_future: Some(DEFAULT_WRITE_MAX_FUTURE),
        }
    }
}

impl WriteLimits {
    /// No bounds at all (tests write samples from 1970).
    #[cfg(test)]
    pub fn none() -> WriteLimits {
        WriteLimits {
            labels: LabelLimits::default(),
            max_age: None,
            max_future: None,
        }
    }

    /// The oldest and newest sample times accepted at `now_ms`, inclusive.
    pub fn window(&self, now_ms: i64) -> (i64, i64) {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        (
            self.max_age
                .map_or(i64::MIN, |d| now_ms.saturating_sub(ms(d))),
            self.max_future
                .map_or(i64::MAX, |d| now_ms.saturating_add(ms(d))),
        )
    }
}

/// Formats a query expression (`/api/v1/format_query`); `Err` is a parse error.
pub type QueryFormatter = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;
/// Renders the process's own metrics in the text exposition format.
pub type SelfMetrics = Arc<dyn Fn() -> String + Send + Sync>;
/// Computes `/api/v1/status/tsdb` data directly from the store.
pub type TsdbStatsSource = Arc<dyn Fn() -> Result<TsdbStatus, String> + Send + Sync>;
/// A reload request: the receiver answers on the enclosed channel.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// The state as the router holds it: handlers and middleware take it once
/// per request, so it must be a pointer copy, not a deep clone of the flags
/// and labels.
pub(crate) type Shared = Arc<AppState>;

/// Everything the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<dyn Queryable>,
    /// Where `POST /api/v1/import` writes; `None` answers 404, as without
    /// `--web.enable-import`.
    pub appendable: Option<Arc<dyn Appendable>>,
    pub targets: Arc<dyn TargetsSource>,
    /// `None` until the PromQL engine is wired in; queries then fail.
    pub engine: Option<Arc<dyn QueryEngine>>,
    /// Where `POST /api/v1/write` appends; `None` answers 404 as Prometheus
    /// without `--web.enable-remote-write-receiver`.
    pub remote_write: Option<Arc<dyn Appendable>>,
    /// Agent mode: the endpoints that read stored data answer
    /// "unavailable with Prometheus Agent".
    pub agent: bool,
    /// The loaded configuration as YAML, for `/api/v1/status/config`.
    pub config_yaml: Arc<RwLock<String>>,
    pub config_status: Arc<RwLock<ConfigStatus>>,
    /// Command-line flags as Prometheus names them, for `/api/v1/status/flags`.
    pub flags: BTreeMap<String, String>,
    /// Until set, the API, `/federate` and `/-/ready` answer 503.
    pub ready: Arc<AtomicBool>,
    /// `None` disables `/-/reload` (403), as without `--web.enable-lifecycle`.
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    /// Cancelled by `/-/quit`; `None` disables it (403).
    pub quit: Option<CancellationToken>,
    pub start_time: SystemTime,
    pub build_info: BuildInfo,
    pub formatter: Option<QueryFormatter>,
    pub self_metrics: Option<SelfMetrics>,
    pub tsdb_stats: Option<TsdbStatsSource>,
    /// Added to federated series that lack them (`global.external_labels`);
    /// replaced at every config reload.
    pub external_labels: Arc<RwLock<Labels>>,
    /// `--query.lookback-delta`, used by `/federate`.
    pub lookback_delta: Duration,
    /// `--query.timeout`: the longest a query may run.
    pub query_timeout: Duration,
    /// `--storage.tsdb.retention.time` as shown in `runtimeinfo`.
    pub storage_retention: String,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// What import and remote write accept.
    pub write_limits: WriteLimits,
    /// Whole-request deadline.
    pub request_timeout: Duration,
    /// How long a query may first run on the request's own thread before
    /// it is stopped and run again with the thread handed over (for engines
    /// that [keep deadlines](QueryEngine::keeps_deadlines)). Handing a small
    /// query to another thread and back costs more than the query.
    pub inline_budget: Duration,
    /// The clock, in Unix milliseconds; replaceable for tests.
    pub now_ms: fn() -> i64,
    /// `--web.external-url` and `--web.route-prefix`.
    pub location: prefix::Location,
    /// `--web.page-title`.
    pub page_title: String,
    /// `--web.cors.origin`, fully anchored; `None` for `.*` (any origin,
    /// answered with `*`).
    pub cors_origin: Option<regex::Regex>,
    /// The admin API's store side; `None` answers `admin APIs disabled`,
    /// as without `--web.enable-admin-api`.
    pub admin: Option<Arc<dyn admin::Admin>>,
    /// Grafana dashboards served at `/d/` (`--web.dashboards-dir`).
    pub dashboards: Option<Arc<ui::Dashboards>>,
    /// The scrape interval dashboards take as their datasource's
    /// (`timeInterval`): the lower limit of `$__interval`.
    pub dashboard_scrape_ms: i64,
    /// The datasource name a dashboard's `datasource` variable shows.
    pub datasource_name: String,
}

impl AppState {
    /// A state with Prometheus's defaults, not ready, without engine or
    /// lifecycle endpoints.
    pub fn new(storage: Arc<dyn Queryable>, targets: Arc<dyn TargetsSource>) -> AppState {
        let now = SystemTime::now();
        AppState {
            storage,
            appendable: None,
            targets,
            engine: None,
            remote_write: None,
            agent: false,
            config_yaml: Arc::new(RwLock::new(String::new())),
            config_status: Arc::new(RwLock::new(ConfigStatus {
                success: true,
                last_time: now,
            })),
            flags: BTreeMap::new(),
            ready: Arc::new(AtomicBool::new(false)),
            reload: None,
            quit: None,
            start_time: now,
            build_info: BuildInfo::default(),
            formatter: None,
            self_metrics: None,
            tsdb_stats: None,
            external_labels: Arc::new(RwLock::new(Labels::new())),
            lookback_delta: Duration::from_secs(5 * 60),
            query_timeout: Duration::from_secs(2 * 60),
            storage_retention: "15d".to_string(),
            max_body_bytes: 10 << 20,
            write_limits: WriteLimits::default(),
            request_timeout: Duration::from_secs(5 * 60),
            inline_budget: Duration::from_millis(1),
            now_ms: system_now_ms,
            location: prefix::Location::default(),
            page_title: "Prometheus Time Series Collection and Processing Server".to_string(),
            cors_origin: None,
            admin: None,
            dashboards: None,
            dashboard_scrape_ms: 15_000,
            datasource_name: "Prometheus".to_string(),
        }
    }
}

/// The system clock in Unix milliseconds.
pub fn system_now_ms() -> i64 {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests;
