//! One benchmark run: for every collector a fresh simulated cluster, the
//! collector started, measured through `/proc` and its HTTP API while it
//! scrapes, restarted, queried and stopped; the numbers become a [`Report`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::process::{Child, Command};

use super::args::{BenchArgs, TargetsArgs};
use super::collector::{
    Running, Spec, collector_argv, free_port, spawn_logged, specs, stop, write_config,
};
use super::report::{self, Collector, Queries, Report, Scrapes};
use super::{Error, cluster, fetch, measure, queries, ray_nodes};

/// A few of Ray's dashboard queries, used when `--queries` is not given.
const BUILTIN_QUERIES: &[&str] = &[
    // The aggregation Ray's dashboards run most, over every task series: a
    // range function summed by state, as Ray's "All Tasks by State" panel does
    // (over 14 days there). Ray's task family is the gauge `ray_tasks`; there
    // is no `ray_tasks_total` to take a rate of.
    r#"sum(max_over_time(ray_tasks[1m])) by (State)"#,
    r#"sum(ray_tasks{SessionName=~".*",State=~"RUNNING"}) by (Name)"#,
    r#"sum(rate(ray_grpc_server_req_finished_total{SessionName=~".*"}[1m])) by (Method)"#,
    r#"sum(ray_actors{SessionName=~".*"}) by (State)"#,
    r#"histogram_quantile(0.99, sum(rate(ray_grpc_server_req_process_time_ms_bucket{SessionName=~".*"}[5m])) by (le, Component))"#,
    r#"sum(ray_node_cpu_utilization{SessionName=~".*"}) by (ip) / on(ip) sum(ray_node_cpu_count{SessionName=~".*"}) by (ip)"#,
    r#"sum(ray_object_store_memory{SessionName=~".*"}) by (Location)"#,
    r#"sum(ray_node_mem_used{SessionName=~".*"}) by (ip)"#,
    r#"sum(rate(ray_serve_deployment_request_counter_total{SessionName=~".*"}[5m])) by (deployment)"#,
];

/// Runs the simulated cluster of `bench-targets` until `cancel`.
pub async fn serve_targets(
    args: TargetsArgs,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    let opts = cluster::Options {
        targets: args.cluster.targets,
        shape: args.cluster.shape(),
        interval: args.cluster.interval,
        dir: args.dir,
    };
    cluster::serve(opts, cancel).await
}

/// Runs the whole benchmark: every collector in turn, each against a fresh
/// cluster. Progress goes to stderr.
pub async fn run(args: BenchArgs, command_line: String) -> Result<Report, Error> {
    let (memory_bytes, cpus) = measure::machine();
    let load_ns = measure::memory_load_ns();
    progress(
        "raymon",
        &format!("a load from memory takes {load_ns:.0} ns on this machine now"),
    );
    let mut report = Report {
        command: command_line,
        machine: report::Machine {
            cpus,
            memory_bytes,
            memory_load_ns: Some(load_ns),
        },
        config: report::Config {
            targets: args.cluster.targets,
            series_per_target: args.cluster.series_per_target,
            interval_seconds: args.cluster.interval.as_secs_f64(),
            duration_seconds: args.duration.as_secs_f64(),
            warmup_seconds: args.warmup.as_secs_f64(),
            churn: args.cluster.churn,
            histogram_fraction: args.cluster.histogram_fraction,
            seed: args.cluster.seed,
        },
        ..Default::default()
    };
    let (work, temporary) = work_dir(&args)?;
    let queries = load_queries(&args)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| Error::Setup(format!("cannot build an HTTP client: {e}")))?;
    let ctx = Ctx {
        args: &args,
        http,
        queries,
    };
    let mut result = Ok(());
    for spec in specs(&args) {
        match ctx.measure(&spec, &work.join(&spec.name)).await {
            Ok(c) => report.collectors.push(c),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    result?;
    report.compute_ratios();
    Ok(report)
}

/// The work directory, and whether it is a temporary one to remove.
pub(super) fn work_dir(args: &BenchArgs) -> Result<(PathBuf, bool), Error> {
    let (work, temporary) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => {
            let d = std::env::temp_dir().join(format!("raymon-bench-{}", std::process::id()));
            (d, true)
        }
    };
    std::fs::create_dir_all(&work).map_err(|e| Error::io("create the work directory", e))?;
    Ok((work, temporary))
}

pub(super) fn load_queries(args: &BenchArgs) -> Result<Vec<String>, Error> {
    let ray = || {
        ray_nodes::dashboard_queries()
            .into_iter()
            .map(str::to_string)
    };
    let builtin = || BUILTIN_QUERIES.iter().map(|s| s.to_string());
    let mut q: Vec<String> = Vec::new();
    for p in &args.queries {
        match p.to_str() {
            Some("ray") => q.extend(ray()),
            Some("builtin") => q.extend(builtin()),
            _ => q.extend(
                std::fs::read_to_string(p)
                    .map_err(|e| Error::io("read the queries file", e))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            ),
        }
    }
    if args.queries.is_empty() {
        if args.same_data.same_data {
            q.extend(ray());
        } else {
            q.extend(builtin());
        }
    }
    Ok(spread(q, args.max_queries))
}

/// Keeps `n` of `v` (all when `n` is 0), evenly spaced, in order.
fn spread<T>(v: Vec<T>, n: usize) -> Vec<T> {
    if n == 0 || n >= v.len() {
        return v;
    }
    let len = v.len();
    v.into_iter()
        .enumerate()
        .filter(|(i, _)| (i * n) % len < n)
        .map(|(_, x)| x)
        .collect()
}

pub(super) struct Ctx<'a> {
    pub(super) args: &'a BenchArgs,
    pub(super) http: reqwest::Client,
    pub(super) queries: Vec<String>,
}

/// One progress line on stderr: redrawn in place on a terminal, else
/// printed for phases and every tenth tick.
pub(super) fn progress(name: &str, msg: &str) {
    use std::io::IsTerminal as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TICKS: AtomicU64 = AtomicU64::new(0);
    let mut e = std::io::stderr().lock();
    if e.is_terminal() {
        let _ = write!(e, "\r\x1b[2K[{name}] {msg}");
    } else {
        let tick = msg.starts_with(' ') || msg.starts_with("dashboard queries");
        if !tick || TICKS.fetch_add(1, Ordering::Relaxed).is_multiple_of(10) {
            let _ = writeln!(e, "[{name}] {}", msg.trim());
        }
    }
    let _ = e.flush();
}

pub(super) fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Ctx<'_> {
    async fn measure(&self, spec: &Spec, dir: &Path) -> Result<Collector, Error> {
        let args = self.args;
        let interval = args.cluster.interval;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create a collector directory", e))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("resolve a directory", e))?;
        let data = dir.join("data");

        progress(&spec.name, "starting the simulated cluster");
        let mut targets = self.start_targets(&dir).await?;
        let control = read_control(&dir, &mut targets).await?;

        let config = dir.join("prometheus.yml");
        write_config(&config, &dir, interval, args.remote_write_url.as_deref())?;
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let argv = collector_argv(spec, &config, &data, port, args.agent)?;
        let log = dir.join("collector.log");

        let rows_at_start = self.receiver_rows().await;
        progress(&spec.name, "starting the collector");
        let mut coll = spawn_logged(&argv, &log)?;
        let ready_in = self.wait_ready(&base, &mut coll, false).await?;
        tracing::debug!(collector = %spec.name, seconds = ready_in, "ready");

        // Measure the steady state: Prometheus applies discovered targets
        // only every 5 s, and first scrapes create the series.
        progress(&spec.name, "waiting until every target was scraped twice");
        let warm = Instant::now();
        let warm_limit = Duration::from_secs(120) + interval * 3;
        loop {
            let st = self.target_stats(&control).await?;
            if st.targets.iter().all(|t| t.arrivals_us.len() >= 2) {
                break;
            }
            if warm.elapsed() > warm_limit {
                return Err(Error::Setup(format!(
                    "{} did not scrape every target twice in {:?}; see {}",
                    spec.name,
                    warm_limit,
                    log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let warm = Instant::now();
        while warm.elapsed() < args.warmup {
            tokio::time::sleep(Duration::from_secs(1).min(args.warmup)).await;
            progress(
                &spec.name,
                &format!(
                    " warm-up {:>4.0}s/{:.0}s",
                    warm.elapsed().as_secs_f64(),
                    args.warmup.as_secs_f64()
                ),
            );
        }

        // The measured window.
        let s0 = measure::sample(coll.pid).unwrap_or_default();
        let f0 = self.receiver_rows().await;
        let c0 = self.samples_counter(&base).await;
        let t0 = self.target_stats(&control).await?;
        let targets_s0 = targets.id().and_then(measure::sample);
        let w0 = unix_us();
        let start = Instant::now();
        let mut peak = s0.peak_rss_bytes;
        let mut last = s0;
        // Scraping alone moves RSS by a fifth at 500 × 2,000 (chunks fill,
        // scrape bodies come and go): the queries' rise is also compared
        // with its highest point over the window's last minute, sampled as
        // often as during the queries.
        let mut scrape_high: Option<queries::RssWatch> = None;
        while start.elapsed() < args.duration {
            if scrape_high.is_none()
                && start.elapsed() + queries::SCRAPE_HIGH_WINDOW >= args.duration
            {
                scrape_high = Some(queries::RssWatch::start(coll.pid));
            }
            tokio::time::sleep(Duration::from_secs(1).min(args.duration)).await;
            if let Some(s) = measure::sample(coll.pid) {
                peak = peak.max(s.peak_rss_bytes);
                last = s;
            } else {
                return Err(Error::Setup(format!(
                    "{} exited during the run; see {}",
                    spec.name,
                    log.display()
                )));
            }
            progress(
                &spec.name,
                &format!(
                    "{:>4.0}s/{:.0}s  cpu {:.1}s  rss {:.1} MiB",
                    start.elapsed().as_secs_f64(),
                    args.duration.as_secs_f64(),
                    last.cpu_seconds - s0.cpu_seconds,
                    last.rss_bytes as f64 / 1048576.0
                ),
            );
        }
        let window = start.elapsed().as_secs_f64();
        let scrape_high_rss = scrape_high.map(|w| w.peak());
        let w1 = unix_us();
        let f1 = self.receiver_rows().await;
        let c1 = self.samples_counter(&base).await;
        let t1 = self.target_stats(&control).await?;

        let served: u64 = t1.targets.iter().map(|t| t.samples).sum::<u64>()
            - t0.targets.iter().map(|t| t.samples).sum::<u64>();
        let scrapes = scrape_stats(&t1, w0, w1, interval);
        // One definition for every collector: the sample lines the targets
        // served, a fetch of the same target within half an interval of the
        // previous one not counted again. The collector's own counter (which
        // adds its report series) is kept beside it as a cross-check.
        let samples = scrapes.distinct_samples;
        let collector_samples = match (c0, c1) {
            (Some((a, name)), Some((b, _))) if b >= a => Some((b - a, name)),
            _ => None,
        };
        let cpu = last.cpu_seconds - s0.cpu_seconds;
        let (active_series, active_series_source) = match self.head_series(&base).await {
            Some(n) => (n, "/api/v1/status/tsdb headStats.numSeries".to_string()),
            None => (
                t1.targets.iter().map(|t| t.series as u64 + 5).sum(),
                "targets' series plus 5 report series each".to_string(),
            ),
        };
        let disk = measure::disk_usage(&data);
        let targets_cpu_seconds = match (targets_s0, targets.id().and_then(measure::sample)) {
            (Some(a), Some(b)) => Some(b.cpu_seconds - a.cpu_seconds),
            _ => None,
        };

        let queries = if args.agent {
            Queries::default()
        } else {
            let plan = queries::Plan {
                name: &spec.name,
                base: &base,
                pid: coll.pid,
                window: args.duration,
                step: interval,
                timeout: args.query_timeout,
                budget: args.query_budget,
                scrape_high_rss_bytes: scrape_high_rss,
            };
            queries::run(&self.http, &plan, &self.queries).await
        };
        let forwarded = match (f0, f1) {
            (Some(a), Some(b)) if b >= a => Some(b - a),
            _ => None,
        };
        let forward_backlog = match (rows_at_start, f1) {
            (Some(a), Some(b)) => {
                Some(super::forward::backlog(super::forward::expected(&t1), a, b))
            }
            _ => None,
        };

        let mut series_after_restart = None;
        let mut series_after_kill_restart = None;
        let mut kill_restart_ready_seconds = None;
        let restart_ready_seconds = if args.no_restart || args.agent {
            None
        } else {
            progress(&spec.name, "restarting");
            stop(&mut coll).await;
            coll = spawn_logged(&argv, &log)?;
            let ready = self.wait_ready(&base, &mut coll, true).await?;
            series_after_restart = self.head_series(&base).await;
            // Then a crash: no clean stop, so the store replays its log.
            progress(&spec.name, "kill -9, restarting");
            let _ = coll.child.kill().await;
            coll = spawn_logged(&argv, &log)?;
            kill_restart_ready_seconds = Some(self.wait_ready(&base, &mut coll, true).await?);
            series_after_kill_restart = self.head_series(&base).await;
            Some(ready)
        };
        stop(&mut coll).await;
        let _ = targets.kill().await;
        progress(&spec.name, "done\n");

        let per_million = (samples > 0).then(|| cpu / (samples as f64 / 1e6));
        Ok(Collector {
            name: spec.name.clone(),
            command: argv.join(" "),
            samples_ingested: samples,
            samples_served: served,
            collector_samples_appended: collector_samples.map(|c| c.0),
            collector_samples_metric: collector_samples.map(|c| c.1.to_string()),
            targets_cpu_seconds,
            samples_per_second: samples as f64 / window,
            cpu_seconds: cpu,
            cpu_seconds_per_million_samples: per_million,
            peak_rss_bytes: peak,
            steady_rss_bytes: last.rss_bytes,
            active_series,
            active_series_source,
            rss_bytes_per_series: (active_series > 0)
                .then(|| last.rss_bytes as f64 / active_series as f64),
            disk_bytes: disk,
            disk_bytes_per_sample: (samples > 0 && disk > 0).then(|| disk as f64 / samples as f64),
            scrapes,
            restart_ready_seconds,
            series_after_restart,
            kill_restart_ready_seconds,
            series_after_kill_restart,
            queries,
            samples_forwarded: forwarded,
            cpu_seconds_per_million_forwarded: forwarded
                .filter(|&n| n > 0)
                .map(|n| cpu / (n as f64 / 1e6)),
            forward_backlog_samples: forward_backlog,
        })
    }

    /// Rows the remote write receiver has inserted so far.
    async fn receiver_rows(&self) -> Option<u64> {
        let url = self.args.remote_write_url.as_deref()?;
        super::forward::receiver_rows(&self.http, url).await
    }

    async fn start_targets(&self, dir: &Path) -> Result<Child, Error> {
        let exe = std::env::current_exe().map_err(|e| Error::io("find the raymon binary", e))?;
        let log = std::fs::File::create(dir.join("targets.log"))
            .map_err(|e| Error::io("create the targets log", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io("create the targets log", e))?;
        Command::new(exe)
            .arg("bench-targets")
            .args(self.args.cluster.to_flags())
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io("start the simulated cluster", e))
    }

    async fn target_stats(&self, control: &str) -> Result<cluster::Stats, Error> {
        let url = format!("http://{control}/stats");
        fetch::json(self.http.get(&url), Duration::from_secs(30))
            .await
            .map_err(|e| Error::Setup(format!("cannot read target stats: {e}")))
    }

    /// Waits for `/-/ready`, and with `query`, for a query to answer too.
    pub(super) async fn wait_ready(
        &self,
        base: &str,
        coll: &mut Running,
        query: bool,
    ) -> Result<f64, Error> {
        let start = Instant::now();
        let deadline = Duration::from_secs(300);
        let mut ready = false;
        let port = base.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        loop {
            if start.elapsed() > deadline {
                return Err(Error::Setup(format!("collector not ready at {base}")));
            }
            if let Ok(Some(status)) = coll.child.try_wait() {
                return Err(Error::Setup(format!(
                    "collector exited before it was ready: {status}"
                )));
            }
            if !ready {
                // Only the child's own answer counts: its port was free when
                // chosen, and a restart leaves it free while the store opens,
                // so another process on the machine may have taken it (a
                // restart once measured such a process in 0.03 s).
                ready = self.status(&format!("{base}/-/ready")).await == Some(200)
                    && port.is_none_or(|p| crate::procfs::listens_on(coll.pid, p));
            }
            if ready && (!query || self.query_answers(base).await) {
                return Ok(start.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn status(&self, url: &str) -> Option<u16> {
        let r = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    }

    /// Whether `up` answers; without an engine, whether a series lookup does.
    async fn query_answers(&self, base: &str) -> bool {
        match self.status(&format!("{base}/api/v1/query?query=up")).await {
            Some(200) => true,
            Some(422) => {
                self.status(&format!("{base}/api/v1/series?match[]=up"))
                    .await
                    == Some(200)
            }
            _ => false,
        }
    }

    /// The collector's own count of appended samples, from its `/metrics`.
    async fn samples_counter(&self, base: &str) -> Option<(u64, &'static str)> {
        const NAMES: &[&str] = &[
            "prometheus_tsdb_head_samples_appended_total",
            "raymon_tsdb_head_samples_appended_total",
        ];
        let body = fetch::text(
            self.http.get(format!("{base}/metrics")),
            Duration::from_secs(10),
        )
        .await
        .ok()?;
        for name in NAMES {
            let mut sum = 0.0;
            let mut found = false;
            for line in body.lines() {
                let Some(rest) = line.strip_prefix(name) else {
                    continue;
                };
                if !(rest.starts_with(' ') || rest.starts_with('{')) {
                    continue;
                }
                if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                    sum += v;
                    found = true;
                }
            }
            if found {
                return Some((sum as u64, name));
            }
        }
        None
    }

    async fn head_series(&self, base: &str) -> Option<u64> {
        let url = format!("{base}/api/v1/status/tsdb");
        let v: serde_json::Value = fetch::json(self.http.get(url), Duration::from_secs(60))
            .await
            .ok()?;
        v.pointer("/data/headStats/numSeries")?.as_u64()
    }
}

/// Reads the control address the cluster writes once it listens.
async fn read_control(dir: &Path, targets: &mut Child) -> Result<String, Error> {
    let path = dir.join(cluster::CONTROL_FILE);
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(&path) {
            return Ok(s.trim().to_string());
        }
        if let Ok(Some(status)) = targets.try_wait() {
            return Err(Error::Setup(format!(
                "the simulated cluster exited: {status}; see {}",
                dir.join("targets.log").display()
            )));
        }
        if start.elapsed() > Duration::from_secs(300) {
            return Err(Error::Setup("the simulated cluster did not start".into()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Intervals between consecutive requests to each target, within the
/// window `[w0, w1]` (Unix microseconds).
fn scrape_stats(stats: &cluster::Stats, w0: u64, w1: u64, interval: Duration) -> Scrapes {
    let base = stats.start_unix_ms * 1000;
    let iv = interval.as_secs_f64();
    let mut deltas = Vec::new();
    let mut count = 0u64;
    let mut duplicates = 0u64;
    let mut distinct_samples = 0u64;
    let mut min_per_target = u64::MAX;
    let half = (interval.as_micros() / 2) as u64;
    for t in &stats.targets {
        let mut n = 0u64;
        let mut dup = 0u64;
        let mut prev: Option<u64> = None;
        let mut before: Option<u64> = None;
        for &a in &t.arrivals_us {
            let at = base + a;
            if at < w0 {
                before = Some(at);
                continue;
            }
            if at > w1 {
                break;
            }
            n += 1;
            if let Some(p) = prev.or(before)
                && at - p < half
            {
                dup += 1;
            }
            if let Some(p) = prev {
                deltas.push((at - p) as f64 / 1e6);
            }
            prev = Some(at);
        }
        count += n;
        duplicates += dup;
        distinct_samples += (n - dup) * t.series as u64;
        min_per_target = min_per_target.min(n);
    }
    let within = deltas
        .iter()
        .filter(|d| (**d - iv).abs() <= iv * 0.01)
        .count();
    let expected =
        ((w1.saturating_sub(w0)) as f64 / 1e6 / iv).floor() as u64 * stats.targets.len() as u64;
    Scrapes {
        count,
        duplicates,
        distinct_samples,
        expected,
        min_per_target: if stats.targets.is_empty() {
            0
        } else {
            min_per_target
        },
        within_1pct: (!deltas.is_empty()).then(|| within as f64 / deltas.len() as f64),
        interval_p50_seconds: measure::quantile(&mut deltas, 0.5),
        interval_p99_seconds: measure::quantile(&mut deltas, 0.99),
    }
}

/// Writes the report as JSON to `path`.
pub fn write_json(report: &impl serde::Serialize, path: &Path) -> Result<(), Error> {
    let body = serde_json::to_vec_pretty(report)
        .map_err(|e| Error::Setup(format!("cannot encode the report: {e}")))?;
    std::fs::write(path, body).map_err(|e| Error::io("write the report", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::exposition;
    use crate::model::Labels;
    use crate::promql::parser::{Expr, VectorSelector, parse_expr};
    use crate::textparse::{Entry, Format, Parser};

    #[test]
    fn spread_keeps_evenly_spaced_items() {
        let v: Vec<usize> = (0..10).collect();
        assert_eq!(spread(v.clone(), 0), v);
        assert_eq!(spread(v.clone(), 5), [0, 2, 4, 6, 8]);
        assert_eq!(spread(v.clone(), 3).len(), 3);
        assert_eq!(spread(v, 20).len(), 10);
    }

    #[test]
    fn intervals_are_measured_within_the_window() {
        let stats = cluster::Stats {
            start_unix_ms: 1000,
            targets: vec![cluster::TargetStats {
                arrivals_us: vec![0, 1_000_000, 2_005_000, 3_000_000, 9_000_000],
                samples: 0,
                series: 0,
            }],
        };
        let s = scrape_stats(
            &stats,
            1_000_000,
            1_000_000 + 3_500_000,
            Duration::from_secs(1),
        );
        assert_eq!(s.count, 4);
        assert_eq!(s.expected, 3);
        assert_eq!(s.within_1pct, Some(1.0));
        assert_eq!(s.interval_p99_seconds, Some(1.005));
        assert_eq!(s.duplicates, 0);
    }

    #[test]
    fn a_second_fetch_within_half_an_interval_is_a_duplicate() {
        let stats = cluster::Stats {
            start_unix_ms: 0,
            targets: vec![cluster::TargetStats {
                arrivals_us: vec![0, 1_000_000, 1_004_000, 2_000_000, 2_003_000],
                samples: 0,
                series: 10,
            }],
        };
        let s = scrape_stats(&stats, 500_000, 2_500_000, Duration::from_secs(1));
        assert_eq!((s.count, s.duplicates, s.distinct_samples), (4, 2, 20));
    }

    /// Collects the selectors of `e` into `out`.
    fn selectors<'e>(e: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
        match e {
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
            Expr::VectorSelector(vs) => out.push(vs),
            Expr::MatrixSelector(m) => out.push(&m.vs),
            Expr::Subquery(q) => selectors(&q.expr, out),
            Expr::Call(c) => c.args.iter().for_each(|a| selectors(a, out)),
            Expr::Aggregate(a) => selectors(&a.expr, out),
            Expr::Binary(b) => {
                selectors(&b.lhs, out);
                selectors(&b.rhs, out);
            }
            Expr::Unary { expr, .. } | Expr::Paren(expr) => selectors(expr, out),
        }
    }

    /// A built-in query that selects nothing on the simulated cluster would
    /// time an HTTP round trip, not a query: every selector of every one must
    /// match series a simulated node serves.
    #[test]
    fn builtin_queries_select_the_simulated_clusters_series() {
        let shape = exposition::Shape {
            series: 2000,
            histogram_fraction: 0.5,
            churn: 0.0,
            seed: 1,
        };
        let mut body = Vec::new();
        exposition::TargetExposition::new(shape, 0).render(exposition::BodyFormat::Text, &mut body);
        let mut series = Vec::new();
        for e in Parser::new(&body, Format::PromText) {
            if let Entry::Sample(s) = e.unwrap() {
                let mut pairs: Vec<(String, String)> = s
                    .labels()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                pairs.push(("__name__".into(), s.name().into()));
                series.push(Labels::from_pairs(pairs));
            }
        }
        for q in BUILTIN_QUERIES {
            let e = parse_expr(q).unwrap_or_else(|e| panic!("{q}: {}", e.msg));
            let mut vs = Vec::new();
            selectors(&e, &mut vs);
            assert!(!vs.is_empty(), "{q}");
            for v in vs {
                let n = series
                    .iter()
                    .filter(|l| v.matchers.iter().all(|m| m.matches_labels(l)))
                    .count();
                assert!(n > 0, "{q}: {v} selects nothing on a simulated node");
            }
        }
    }
}
