//! raymon's own metrics, under the names Prometheus 2.42 gives them, for
//! `GET /metrics` in the text format 0.0.4.
//!
//! The counters are lock-free atomics handed out as `Arc`s to the stages
//! that count (scrape loops, file discovery, the storage wrapper in
//! [`counting`]); they are bumped once per scrape, file read or commit, never
//! per sample. Values that already live elsewhere (head series, targets per
//! pool, readiness, the last reload) are read only when `/metrics` is
//! rendered, through [`Gathered`], which the launcher fills in. This module
//! knows nothing of HTTP, of the web state, or of how the head is built.

pub mod counting;
mod process;
pub(crate) mod text;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use text::Writer;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts kept by the storage wrapper, once per commit.
#[derive(Debug, Default)]
pub struct TsdbMetrics {
    /// Samples that went into committed batches.
    pub samples_appended: Counter,
    /// Samples refused because the series already had a later one.
    pub out_of_order: Counter,
    /// Samples refused because they were older than the store keeps.
    pub out_of_bounds: Counter,
    /// Samples refused for repeating a timestamp with a different value.
    pub duplicate: Counter,
    /// Commits that the store refused as a whole (read-only, full disk, IO).
    pub commit_failures: Counter,
    /// The highest timestamp among committed samples, in milliseconds
    /// (`prometheus_remote_storage_highest_timestamp_in_seconds`).
    pub highest_timestamp_ms: std::sync::atomic::AtomicI64,
}

/// How many observations of scrape intervals each summary keeps for its
/// quantiles. Prometheus keeps ten minutes; at the default 15 s interval
/// and a thousand targets that is about 40k, so this is a recent sample.
const INTERVAL_WINDOW: usize = 4096;

/// The quantiles Prometheus reports for `prometheus_target_interval_length_seconds`.
pub const INTERVAL_QUANTILES: [f64; 5] = [0.01, 0.05, 0.5, 0.9, 0.99];

/// A summary over the most recent observations: exact quantiles of the
/// window, and a sum and count over all time.
#[derive(Debug, Default)]
struct Window {
    recent: Vec<f64>,
    next: usize,
    sum: f64,
    count: u64,
}

impl Window {
    fn observe(&mut self, v: f64) {
        if self.recent.len() < INTERVAL_WINDOW {
            self.recent.push(v);
        } else {
            self.recent[self.next] = v;
        }
        self.next = (self.next + 1) % INTERVAL_WINDOW;
        self.sum += v;
        self.count += 1;
    }

    fn quantiles(&self) -> [f64; INTERVAL_QUANTILES.len()] {
        let mut sorted = self.recent.clone();
        sorted.sort_by(f64::total_cmp);
        INTERVAL_QUANTILES.map(|q| quantile(&sorted, q))
    }
}

/// The `q` quantile of ascending `sorted` by nearest rank; NaN when empty,
/// as an empty Prometheus summary reports.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Counts kept by the scrape manager and its loops, once per scrape.
#[derive(Debug, Default)]
pub struct ScrapeMetrics {
    /// Pools created, on start and on every reload that changed a job.
    pub pools_created: Counter,
    /// Scrapes that failed for exceeding `sample_limit`.
    pub exceeded_sample_limit: Counter,
    /// Pools not created because their HTTP client could not be built.
    pub pools_failed: Counter,
    /// Syncs of a pool that found more targets than `target_limit`.
    pub exceeded_target_limit: Counter,
    /// Scrapes that failed for a series over a label limit.
    pub exceeded_label_limits: Counter,
    /// Actual time between two scrapes of a target, by configured interval.
    intervals: Mutex<BTreeMap<Duration, Window>>,
}

impl ScrapeMetrics {
    /// Records that a loop configured for `configured` scraped `actual`
    /// after its previous scrape.
    pub fn observe_interval(&self, configured: Duration, actual: Duration) {
        let mut m = self.intervals.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(configured)
            .or_default()
            .observe(actual.as_secs_f64());
    }
}

/// Counts kept by service discovery.
#[derive(Debug, Default)]
pub struct SdMetrics {
    /// `file_sd` files that could not be read or parsed.
    pub file_read_errors: Counter,
    /// `http_sd_configs` refreshes that failed.
    pub http_failures: Counter,
}

/// Every counter raymon keeps about itself. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub tsdb: Arc<TsdbMetrics>,
    pub scrape: Arc<ScrapeMetrics>,
    pub sd: Arc<SdMetrics>,
    /// Sections of the loaded config raymon does not act on
    /// (`config::unimplemented`), set at every load.
    pub config_unimplemented_sections: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Head gauges read at render time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadGauges {
    pub series: u64,
    pub chunks: u64,
    /// Oldest and newest sample in milliseconds, if any.
    pub time_bounds: Option<(i64, i64)>,
}

/// What the durable store reports (`tsdb::DbStats`), when there is one.
#[derive(Debug, Clone, Copy, Default)]
pub struct StorageGauges {
    pub wal_bytes_written: u64,
    pub wal_write_failures: u64,
    pub wal_segments_created: u64,
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    pub retention_removed_chunks: u64,
    pub persisted_chunks: u64,
    pub compactions: u64,
    pub merged_chunks: u64,
    pub disk_bytes: u64,
}

/// Everything the launcher reads for one render besides the counters.
#[derive(Debug, Clone)]
pub struct Gathered {
    pub head: HeadGauges,
    pub storage: Option<StorageGauges>,
    /// Active targets per scrape job.
    pub pool_targets: BTreeMap<String, u64>,
    /// Targets discovery found per scrape job, before relabeling.
    pub discovered_targets: BTreeMap<String, u64>,
    pub config_reload_success: bool,
    pub config_reload_time: SystemTime,
    pub ready: bool,
    /// Queries running or waiting for a slot (`prometheus_engine_queries`).
    pub engine_queries: u64,
    /// `version`, `revision`, `branch` and `goversion` for `prometheus_build_info`.
    pub version: String,
    pub revision: String,
}

impl Default for Gathered {
    fn default() -> Self {
        Gathered {
            head: HeadGauges::default(),
            storage: None,
            pool_targets: BTreeMap::new(),
            discovered_targets: BTreeMap::new(),
            config_reload_success: true,
            config_reload_time: SystemTime::UNIX_EPOCH,
            ready: false,
            engine_queries: 0,
            version: String::new(),
            revision: String::new(),
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            tsdb: Arc::default(),
            scrape: Arc::default(),
            sd: Arc::default(),
            config_unimplemented_sections: Arc::default(),
        }
    }

    /// The whole exposition, families in Prometheus's (alphabetical) order.
    pub fn render(&self, g: &Gathered) -> String {
        let mut w = Writer::with_capacity(8 << 10);
        process::write(&mut w);

        w.family(
            "prometheus_build_info",
            "A metric with a constant '1' value labeled by version, revision, branch, and goversion from which prometheus was built.",
            "gauge",
        );
        w.sample(
            "prometheus_build_info",
            &[
                ("branch", ""),
                ("goversion", ""),
                ("revision", &g.revision),
                ("version", &g.version),
            ],
            1.0,
        );

        w.family(
            "prometheus_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            "gauge",
        );
        w.sample(
            "prometheus_config_last_reload_success_timestamp_seconds",
            &[],
            unix_seconds(g.config_reload_time).floor(),
        );
        w.family(
            "prometheus_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
            "gauge",
        );
        w.sample(
            "prometheus_config_last_reload_successful",
            &[],
            f64::from(u8::from(g.config_reload_success)),
        );

        w.family(
            "prometheus_engine_queries",
            "The current number of queries being executed or waiting.",
            "gauge",
        );
        w.sample("prometheus_engine_queries", &[], g.engine_queries as f64);

        w.family(
            "prometheus_ready",
            "Whether Prometheus startup was fully completed and the server is ready for normal operation.",
            "gauge",
        );
        w.sample("prometheus_ready", &[], f64::from(u8::from(g.ready)));

        w.family(
            "prometheus_sd_discovered_targets",
            "Current number of discovered targets.",
            "gauge",
        );
        for (job, n) in &g.discovered_targets {
            w.sample(
                "prometheus_sd_discovered_targets",
                &[("config", job), ("name", "scrape")],
                *n as f64,
            );
        }
        w.family(
            "prometheus_sd_file_read_errors_total",
            "The number of File-SD read errors.",
            "counter",
        );
        w.sample(
            "prometheus_sd_file_read_errors_total",
            &[],
            self.sd.file_read_errors.get() as f64,
        );
        w.family(
            "prometheus_sd_http_failures_total",
            "Number of HTTP service discovery refresh failures.",
            "counter",
        );
        w.sample(
            "prometheus_sd_http_failures_total",
            &[],
            self.sd.http_failures.get() as f64,
        );

        self.render_scrape(&mut w, g);
        self.render_tsdb(&mut w, g);

        w.family(
            "raymon_config_unimplemented_sections",
            "Sections of the loaded configuration that raymon reads but does not implement (each named in a warning at load).",
            "gauge",
        );
        w.sample(
            "raymon_config_unimplemented_sections",
            &[],
            self.config_unimplemented_sections
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        w.finish()
    }

    fn render_scrape(&self, w: &mut Writer, g: &Gathered) {
        let s = &self.scrape;
        w.family(
            "prometheus_target_interval_length_seconds",
            "Actual intervals between scrapes.",
            "summary",
        );
        {
            let m = s.intervals.lock().unwrap_or_else(|e| e.into_inner());
            for (iv, win) in m.iter() {
                let iv = go_duration(*iv);
                for (q, v) in INTERVAL_QUANTILES.iter().zip(win.quantiles()) {
                    let q = q.to_string();
                    w.sample(
                        "prometheus_target_interval_length_seconds",
                        &[("interval", &iv), ("quantile", &q)],
                        v,
                    );
                }
                w.sample(
                    "prometheus_target_interval_length_seconds_sum",
                    &[("interval", &iv)],
                    win.sum,
                );
                w.sample(
                    "prometheus_target_interval_length_seconds_count",
                    &[("interval", &iv)],
                    win.count as f64,
                );
            }
        }
        for (name, help, c) in [
            (
                "prometheus_target_scrape_pool_exceeded_label_limits_total",
                "Total number of times scrape pools hit the label limits, during sync or config reload.",
                &s.exceeded_label_limits,
            ),
            (
                "prometheus_target_scrape_pool_exceeded_target_limit_total",
                "Total number of times scrape pools hit the target limit, during sync or config reload.",
                &s.exceeded_target_limit,
            ),
        ] {
            w.family(name, help, "counter");
            w.sample(name, &[], c.get() as f64);
        }
        w.family(
            "prometheus_target_scrape_pool_targets",
            "Current number of targets in this scrape pool.",
            "gauge",
        );
        for (job, n) in &g.pool_targets {
            w.sample(
                "prometheus_target_scrape_pool_targets",
                &[("scrape_job", job)],
                *n as f64,
            );
        }
        w.family(
            "prometheus_target_scrape_pools_total",
            "Total number of scrape pool creation attempts.",
            "counter",
        );
        w.sample(
            "prometheus_target_scrape_pools_total",
            &[],
            s.pools_created.get() as f64,
        );
        w.family(
            "prometheus_target_scrape_pools_failed_total",
            "Total number of scrape pool creations that failed.",
            "counter",
        );
        w.sample(
            "prometheus_target_scrape_pools_failed_total",
            &[],
            s.pools_failed.get() as f64,
        );
        w.family(
            "prometheus_target_scrapes_exceeded_sample_limit_total",
            "Total number of scrapes that hit the sample limit and were rejected.",
            "counter",
        );
        w.sample(
            "prometheus_target_scrapes_exceeded_sample_limit_total",
            &[],
            s.exceeded_sample_limit.get() as f64,
        );
        w.family(
            "prometheus_target_scrapes_sample_duplicate_timestamp_total",
            "Total number of samples rejected due to duplicate timestamps but different values.",
            "counter",
        );
        w.sample(
            "prometheus_target_scrapes_sample_duplicate_timestamp_total",
            &[],
            self.tsdb.duplicate.get() as f64,
        );
    }

    fn render_tsdb(&self, w: &mut Writer, g: &Gathered) {
        if let Some(st) = &g.storage {
            render_storage(w, st);
        }
        let t = &self.tsdb;
        w.family(
            "prometheus_tsdb_head_chunks",
            "Total number of chunks in the head block.",
            "gauge",
        );
        w.sample("prometheus_tsdb_head_chunks", &[], g.head.chunks as f64);
        let (min_t, max_t) = g.head.time_bounds.unwrap_or((i64::MAX, i64::MIN));
        w.family(
            "prometheus_tsdb_head_max_time",
            "Maximum timestamp of the head block. The unit is decided by the library consumer.",
            "gauge",
        );
        w.sample("prometheus_tsdb_head_max_time", &[], max_t as f64);
        w.family(
            "prometheus_tsdb_head_min_time",
            "Minimum time bound of the head block. The unit is decided by the library consumer.",
            "gauge",
        );
        w.sample("prometheus_tsdb_head_min_time", &[], min_t as f64);
        w.family(
            "prometheus_tsdb_head_samples_appended_total",
            "Total number of appended samples.",
            "counter",
        );
        w.sample(
            "prometheus_tsdb_head_samples_appended_total",
            &[("type", "float")],
            t.samples_appended.get() as f64,
        );
        w.family(
            "prometheus_tsdb_head_series",
            "Total number of series in the head block.",
            "gauge",
        );
        w.sample("prometheus_tsdb_head_series", &[], g.head.series as f64);
        w.family(
            "prometheus_tsdb_out_of_bound_samples_total",
            "Total number of out of bound samples ingestion failed attempts with out of order support disabled.",
            "counter",
        );
        w.sample(
            "prometheus_tsdb_out_of_bound_samples_total",
            &[("type", "float")],
            t.out_of_bounds.get() as f64,
        );
        w.family(
            "prometheus_tsdb_out_of_order_samples_total",
            "Total number of out of order samples ingestion failed attempts due to out of order being disabled.",
            "counter",
        );
        w.sample(
            "prometheus_tsdb_out_of_order_samples_total",
            &[("type", "float")],
            t.out_of_order.get() as f64,
        );
        w.family(
            "raymon_tsdb_commit_failures_total",
            "Appender commits the store refused as a whole (read-only, full disk, IO errors).",
            "counter",
        );
        w.sample(
            "raymon_tsdb_commit_failures_total",
            &[],
            t.commit_failures.get() as f64,
        );
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Go's `time.Duration.String()` for whole milliseconds and up, which is what
/// Prometheus puts in the `interval` label: `15s`, `1m0s`, `1.5s`, `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = ms / 60_000 % 60;
    let s_ms = ms % 60_000;
    let secs = if s_ms.is_multiple_of(1000) {
        format!("{}s", s_ms / 1000)
    } else {
        let frac = format!("{:03}", s_ms % 1000);
        format!("{}.{}s", s_ms / 1000, frac.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// The durable store's figures: Prometheus's names where Prometheus has the
/// same figure, `raymon_` ones where ours differs (the checkpoint-and-WAL store
/// has no blocks).
fn render_storage(w: &mut Writer, st: &StorageGauges) {
    let families: [(&str, &str, &str, u64); 10] = [
        (
            "prometheus_tsdb_checkpoint_creations_failed_total",
            "Total number of checkpoint creations that failed.",
            "counter",
            st.checkpoint_failures,
        ),
        (
            "prometheus_tsdb_checkpoint_creations_total",
            "Total number of checkpoint creations attempted.",
            "counter",
            st.checkpoints + st.checkpoint_failures,
        ),
        (
            "prometheus_tsdb_compactions_total",
            "Total number of compactions that were executed for the partition: windows whose chunks were merged.",
            "counter",
            st.compactions,
        ),
        (
            "prometheus_tsdb_wal_writes_failed_total",
            "Total number of WAL writes that failed.",
            "counter",
            st.wal_write_failures,
        ),
        (
            "raymon_tsdb_merged_chunks_total",
            "Persisted chunks that merging a past window into fewer chunks took away.",
            "counter",
            st.merged_chunks,
        ),
        (
            "raymon_tsdb_persisted_chunks_total",
            "Closed chunks moved from memory to the chunk store.",
            "counter",
            st.persisted_chunks,
        ),
        (
            "raymon_tsdb_retention_removed_chunks_total",
            "Chunks deleted by time or size retention.",
            "counter",
            st.retention_removed_chunks,
        ),
        (
            "raymon_tsdb_storage_bytes",
            "Bytes of the data directory: checkpoints, WAL and chunk store.",
            "gauge",
            st.disk_bytes,
        ),
        (
            "raymon_tsdb_wal_bytes_written_total",
            "Bytes written to WAL segments.",
            "counter",
            st.wal_bytes_written,
        ),
        (
            "raymon_tsdb_wal_segments_created_total",
            "WAL segment files created.",
            "counter",
            st.wal_segments_created,
        ),
    ];
    for (name, help, kind, v) in families {
        w.family(name, help, kind);
        w.sample(name, &[], v as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One counter bumped shows in the rendered text.
    #[test]
    fn a_bumped_counter_is_rendered() {
        let m = Metrics::new();
        m.tsdb.samples_appended.add(3);
        let text = m.render(&Gathered::default());
        assert!(text.contains("prometheus_tsdb_head_samples_appended_total{type=\"float\"} 3\n"));
    }

    #[test]
    fn go_duration_matches_go() {
        let f = |ms| go_duration(Duration::from_millis(ms));
        assert_eq!(f(15_000), "15s");
        assert_eq!(f(60_000), "1m0s");
        assert_eq!(f(1_500), "1.5s");
        assert_eq!(f(3_600_000), "1h0m0s");
        assert_eq!(f(90_250), "1m30.25s");
        assert_eq!(f(500), "500ms");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut w = Window::default();
        for i in 1..=100 {
            w.observe(f64::from(i));
        }
        assert_eq!(w.quantiles(), [1.0, 5.0, 50.0, 90.0, 99.0]);
        assert_eq!(w.count, 100);
        assert_eq!(w.sum, 5050.0);
    }

    #[test]
    fn window_forgets_old_observations_but_not_the_sum() {
        let mut w = Window::default();
        for _ in 0..INTERVAL_WINDOW {
            w.observe(100.0);
        }
        for _ in 0..INTERVAL_WINDOW {
            w.observe(1.0);
        }
        assert_eq!(w.quantiles()[4], 1.0);
        assert_eq!(w.count, 2 * INTERVAL_WINDOW as u64);
    }
}
