//! `raymon bench --same-data`: the same data and the same queries on every
//! collector. One simulated window of Ray's real series (`bench/ray_nodes.rs`, a
//! sample every 10 s on every node) is sent by remote write to raymon and
//! to each `--vs` collector, each series' samples in time order in one
//! `TimeSeries` (no sample is out of order, and the oldest is no more than
//! the window behind the newest, which Prometheus's head accepts up to
//! 1 h). Series and sample counts are then checked with `count` and
//! `count_over_time` on every collector against what was sent, and the
//! dashboard queries run as range queries over the window, query by query
//! on each collector in turn (who goes first alternates), `--repeats`
//! times, the other collectors stopped while one answers; a query's time is
//! the median of its runs. The first run's answers
//! are compared with raymon's (`bench/answers.rs`).
//!
//! The collectors are processes with a Prometheus HTTP API; the data is
//! generated afresh (deterministically) for each, so its generation is
//! counted in the load time of each alike.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use rustix::process::{Pid, Signal, kill_process};
use serde::{Deserialize, Serialize};

use super::answers::{self, Verdict};
use super::args::{BenchArgs, PROMETHEUS_COMMAND, parse_duration};
use super::collector::{Running, Spec, collector_argv, free_port, spawn_logged, specs, stop};
use super::queries::{self, RssWatch};
use super::report::{Machine, ratios_to_raymon, short};
use super::run::{Ctx, load_queries, progress, unix_us, work_dir};
use super::{Error, fetch, measure, ray_nodes};
use crate::remote::{Label, Sample, TimeSeries, WriteRequest};

/// Series per remote write request: about 2 MB of protobuf for an hour.
const BATCH_SERIES: usize = 250;

/// Flags of the `--same-data` mode.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Same data, same queries")]
pub struct SameDataArgs {
    /// Instead of scraping a live cluster: load one simulated window of
    /// Ray's real series (--targets nodes, a sample every 10 s) into raymon
    /// and every --vs collector by remote write (`prometheus` is started
    /// with --web.enable-remote-write-receiver; another command must accept
    /// `POST /api/v1/write`), check that they hold the same series and
    /// samples, then run the dashboard queries (all of Ray's 397 unless
    /// --queries) as range queries over the window on each in turn.
    #[arg(long)]
    pub same_data: bool,
    /// The simulated window, ending now; at most 1h for Prometheus, whose
    /// head refuses samples older than its newest by more.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub window: Duration,
    /// The range queries' step (what Grafana asks for a 1 h panel).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub step: Duration,
    /// Runs of every query on every collector; a query's time is the median.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Before the queries, wait up to this long until every store is quiet
    /// (under 5% of a core for 3 s in a row): the work a store leaves
    /// behind a fast load (raymon's chunk moves) then no longer runs beside
    /// the queries. Each store's CPU from the end of its load to the first
    /// query is reported either way. Without it the queries start right
    /// after the data checks.
    #[arg(long, value_parser = parse_duration)]
    pub settle: Option<Duration>,
    /// Leave the other stores running while one answers a query. By default
    /// they are stopped (SIGSTOP) for the query and continued after it, so
    /// that one store's background work (Go's garbage collection after a
    /// large query, compactions, checkpoints) does not take the cores from
    /// another's query on a small machine: each store's times are then its
    /// own work, as if it ran alone.
    #[arg(long)]
    pub no_pause_others: bool,
}

/// The outcome of a `--same-data` run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SameDataReport {
    pub command: String,
    pub machine: Machine,
    pub nodes: usize,
    pub series: u64,
    pub samples: u64,
    pub window_seconds: f64,
    pub step_seconds: f64,
    pub sample_interval_seconds: f64,
    pub repeats: usize,
    pub stores: Vec<Store>,
    /// Counts asked of every store after the load.
    pub checks: Vec<Check>,
    pub queries: Vec<QueryRow>,
    /// For each other store, raymon's figure divided by the other's.
    pub ratios: BTreeMap<String, BTreeMap<String, f64>>,
}

/// One collector's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Store {
    pub name: String,
    pub command: String,
    pub load_seconds: f64,
    pub load_samples_per_second: f64,
    pub rss_after_load_bytes: u64,
    /// CPU from the end of the store's load to the first query (the data
    /// checks, the work the load left behind, and any --settle wait).
    #[serde(default)]
    pub cpu_after_load_seconds: f64,
    /// How long --settle waited for the stores to be quiet (`None`: it was
    /// not asked for), and whether this store was quiet by then.
    #[serde(default)]
    pub settle_seconds: Option<f64>,
    #[serde(default)]
    pub settled: Option<bool>,
    pub peak_rss_during_queries_bytes: u64,
    /// CPU of the collector over all the query runs.
    pub query_cpu_seconds: f64,
    /// Over the per-query medians of the queries this store answered.
    pub p50_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
    /// Sum of the per-query medians over the queries every store answered.
    pub total_seconds: f64,
    pub failed_queries: usize,
}

/// A count asked of every store, and what was sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Check {
    pub query: String,
    pub expected: f64,
    /// One per store, in the order of `stores`.
    pub answers: Vec<Option<f64>>,
}

/// One query on every store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueryRow {
    pub query: String,
    /// Median seconds per store (`None`: it failed on every run).
    pub seconds: Vec<Option<f64>>,
    /// HTTP status of the first run, per store.
    pub status: Vec<u16>,
    /// Series in the first run's answer, per store.
    pub series: Vec<Option<usize>>,
    /// Per other store: `same`, `both failed`, or the first difference.
    pub verdicts: Vec<String>,
}

impl QueryRow {
    fn agrees(&self) -> bool {
        self.verdicts
            .iter()
            .all(|v| v == "same" || v == "both failed")
    }
}

/// A started store.
struct Started {
    name: String,
    argv: Vec<String>,
    base: String,
    proc: Running,
}

/// Runs the `--same-data` benchmark. Progress goes to stderr.
pub async fn run(args: &BenchArgs, command_line: String) -> Result<SameDataReport, Error> {
    let sd = &args.same_data;
    if sd.repeats == 0 {
        return Err(Error::Setup("--repeats must be at least 1".into()));
    }
    let template = ray_nodes::node_template().map_err(Error::Setup)?;
    let nodes = args.cluster.targets;
    let interval = ray_nodes::SAMPLE_INTERVAL_MS;
    let steps = (sd.window.as_millis() as i64 / interval) as usize + 1;
    let now_ms = (unix_us() / 1000) as i64;
    let end_ms = now_ms - now_ms % interval;
    let start_ms = end_ms - (steps as i64 - 1) * interval;
    let (memory_bytes, cpus) = measure::machine();
    let mut report = SameDataReport {
        command: command_line,
        machine: Machine {
            cpus,
            memory_bytes,
            memory_load_ns: Some(measure::memory_load_ns()),
        },
        nodes,
        series: (template.len() * nodes) as u64,
        samples: (template.len() * nodes * steps) as u64,
        window_seconds: ((end_ms - start_ms) / 1000) as f64,
        step_seconds: sd.step.as_secs_f64(),
        sample_interval_seconds: interval as f64 / 1000.0,
        repeats: sd.repeats,
        ..Default::default()
    };
    let (work, temporary) = work_dir(args)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| Error::Setup(format!("cannot build an HTTP client: {e}")))?;
    let ctx = Ctx {
        args,
        http,
        queries: load_queries(args)?,
    };
    let data = Data {
        template: Arc::new(template),
        nodes,
        steps,
        start_ms,
    };
    let mut started = Vec::new();
    let result = run_stores(&ctx, &data, &work, &mut report, &mut started).await;
    for s in &mut started {
        stop(&mut s.proc).await;
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    result?;
    report.compute_ratios();
    Ok(report)
}

/// What is loaded: every node's copy of the template over the window.
struct Data {
    template: Arc<Vec<ray_nodes::SeriesTemplate>>,
    nodes: usize,
    steps: usize,
    start_ms: i64,
}

async fn run_stores(
    ctx: &Ctx<'_>,
    data: &Data,
    work: &Path,
    report: &mut SameDataReport,
    started: &mut Vec<Started>,
) -> Result<(), Error> {
    for spec in specs(ctx.args) {
        let s = start(ctx, &spec, &work.join(&spec.name)).await?;
        let name = s.name.clone();
        let command = s.argv.join(" ");
        started.push(s);
        let s = started.last().map(|s| (s.base.clone(), s.proc.pid));
        let Some((base, pid)) = s else { continue };
        let t = Instant::now();
        load(ctx, &name, &base, data).await?;
        let load_seconds = t.elapsed().as_secs_f64();
        let after = measure::sample(pid);
        report.stores.push(Store {
            name,
            command,
            load_seconds,
            load_samples_per_second: report.samples as f64 / load_seconds,
            rss_after_load_bytes: after.map_or(0, |s| s.rss_bytes),
            // The CPU at the end of the load until the queries take it.
            cpu_after_load_seconds: after.map_or(0.0, |s| s.cpu_seconds),
            ..Default::default()
        });
    }
    let end = data.start_ms as f64 / 1e3 + report.window_seconds;
    progress(
        "same-data",
        "checking series and sample counts on every store",
    );
    report.checks = checks(ctx, data, started, end).await;
    if let Some(max) = ctx.args.same_data.settle {
        settle(started, report, max).await;
    }
    for (s, store) in started.iter().zip(report.stores.iter_mut()) {
        let now = measure::sample(s.proc.pid).map_or(0.0, |p| p.cpu_seconds);
        store.cpu_after_load_seconds = now - store.cpu_after_load_seconds;
    }
    run_queries(ctx, started, report, end).await;
    Ok(())
}

/// A store is quiet when it used less than this share of a core...
const QUIET_SHARE: f64 = 0.05;
/// ...over this long.
const QUIET_FOR: Duration = Duration::from_secs(3);

/// Waits up to `max` until every store has been quiet at once, looking
/// every half second; records the wait and which stores got there.
async fn settle(started: &[Started], report: &mut SameDataReport, max: Duration) {
    progress(
        "same-data",
        &format!("waiting up to {max:?} for every store to be quiet"),
    );
    let t = Instant::now();
    let every = Duration::from_millis(500);
    let looks = (QUIET_FOR.as_millis() / every.as_millis()) as usize;
    // Each store's CPU at every look, newest last.
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); started.len()];
    let quiet = |c: &Vec<f64>| is_quiet(c, looks, QUIET_SHARE * QUIET_FOR.as_secs_f64());
    loop {
        for (s, c) in started.iter().zip(cpu.iter_mut()) {
            // A store that is gone is as quiet as it gets; its queries fail.
            let now = measure::sample(s.proc.pid)
                .map_or(c.last().copied().unwrap_or(0.0), |p| p.cpu_seconds);
            c.push(now);
        }
        if cpu.iter().all(quiet) || t.elapsed() >= max {
            break;
        }
        tokio::time::sleep(every).await;
    }
    let waited = t.elapsed().as_secs_f64();
    for (store, c) in report.stores.iter_mut().zip(&cpu) {
        store.settle_seconds = Some(waited);
        store.settled = Some(quiet(c));
    }
    progress("same-data", &format!("waited {waited:.1}s"));
}

/// Whether the CPU seconds `cpu` (one look each, newest last) rose by less
/// than `most` over the last `looks` intervals.
fn is_quiet(cpu: &[f64], looks: usize, most: f64) -> bool {
    cpu.len() > looks && cpu[cpu.len() - 1] - cpu[cpu.len() - 1 - looks] < most
}

/// Starts a store with an empty scrape config and remote write on.
async fn start(ctx: &Ctx<'_>, spec: &Spec, dir: &Path) -> Result<Started, Error> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create a collector directory", e))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("resolve a directory", e))?;
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 10s\n")
        .map_err(|e| Error::io("write prometheus.yml", e))?;
    let port = free_port()?;
    let mut argv = collector_argv(spec, &config, &dir.join("data"), port, false)?;
    match spec.template.as_deref() {
        None => argv.push("--web.enable-remote-write-receiver".into()),
        Some(PROMETHEUS_COMMAND) => {
            if let Some(last) = argv.last_mut() {
                last.push_str(" --web.enable-remote-write-receiver");
            }
        }
        Some(_) => {}
    }
    progress(&spec.name, "starting the collector");
    let mut proc = spawn_logged(&argv, &dir.join("collector.log"))?;
    let base = format!("http://127.0.0.1:{port}");
    ctx.wait_ready(&base, &mut proc, false).await?;
    Ok(Started {
        name: spec.name.clone(),
        argv,
        base,
        proc,
    })
}

/// One remote write request's body, and the samples in it.
type Body = (Vec<u8>, u64);

/// Builds the requests on a thread of its own, in order: node by node, a
/// batch of series at a time, each series with all its samples.
fn generate(data: &Data, tx: tokio::sync::mpsc::Sender<Body>) {
    let template = data.template.clone();
    let (nodes, steps, start_ms) = (data.nodes, data.steps, data.start_ms);
    std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(BATCH_SERIES);
        let mut samples = 0u64;
        for n in 0..nodes {
            for s in template.iter() {
                batch.push(TimeSeries {
                    labels: s
                        .labels_for_node(n)
                        .into_iter()
                        .map(|(k, v)| Label::new(k, v))
                        .collect(),
                    samples: (0..steps)
                        .map(|i| Sample {
                            value: s.value(i),
                            timestamp: start_ms + i as i64 * ray_nodes::SAMPLE_INTERVAL_MS,
                        })
                        .collect(),
                    exemplars: Vec::new(),
                });
                samples += steps as u64;
                if batch.len() == BATCH_SERIES {
                    let req = WriteRequest {
                        timeseries: std::mem::take(&mut batch),
                        metadata: Vec::new(),
                    };
                    if tx
                        .blocking_send((crate::remote::encode(&req), samples))
                        .is_err()
                    {
                        return;
                    }
                    samples = 0;
                }
            }
        }
        if !batch.is_empty() {
            let req = WriteRequest {
                timeseries: batch,
                metadata: Vec::new(),
            };
            let _ = tx.blocking_send((crate::remote::encode(&req), samples));
        }
    });
}

/// Sends the whole window to `base`, two requests at a time.
async fn load(ctx: &Ctx<'_>, name: &str, base: &str, data: &Data) -> Result<(), Error> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Body>(4);
    generate(data, tx);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let sent = Arc::new(AtomicU64::new(0));
    let url = format!("{base}/api/v1/write");
    let mut senders = Vec::new();
    for _ in 0..2 {
        let (rx, sent, url, http) = (rx.clone(), sent.clone(), url.clone(), ctx.http.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some((body, n)) = next else {
                    return Ok(());
                };
                let r = http
                    .post(&url)
                    .header("content-encoding", "snappy")
                    .header("content-type", "application/x-protobuf")
                    .header("x-prometheus-remote-write-version", "0.1.0")
                    .body(body)
                    .timeout(Duration::from_secs(300))
                    .send()
                    .await
                    .map_err(|e| format!("remote write failed: {e}"))?;
                let status = r.status();
                if !status.is_success() {
                    let text = r.text().await.unwrap_or_default();
                    return Err(format!(
                        "remote write answered {status}: {}",
                        short(&text, 300)
                    ));
                }
                sent.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    let total = (data.template.len() * data.nodes * data.steps) as u64;
    let t = Instant::now();
    let watch = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let n = sent.load(Ordering::Relaxed);
            progress(
                name,
                &format!(
                    "  loading {:.1}M/{:.1}M samples, {:.2}M/s",
                    n as f64 / 1e6,
                    total as f64 / 1e6,
                    n as f64 / 1e6 / t.elapsed().as_secs_f64()
                ),
            );
        }
    };
    let wait = async {
        let mut result = Ok(());
        for s in senders {
            let r = s
                .await
                .unwrap_or_else(|e| Err(format!("remote write task failed: {e}")));
            if result.is_ok() {
                result = r;
            }
            // A failed sender leaves the queue; make the other stop too.
            if result.is_err() {
                rx.lock().await.close();
            }
        }
        result
    };
    let result = tokio::select! {
        r = wait => r,
        _ = watch => Ok(()),
    };
    result.map_err(|e| Error::Setup(format!("{name}: {e}")))?;
    let n = sent.load(Ordering::Relaxed);
    if n != total {
        return Err(Error::Setup(format!("{name}: sent {n} samples of {total}")));
    }
    progress(
        name,
        &format!(
            "loaded {:.1}M samples in {:.1}s",
            n as f64 / 1e6,
            t.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

/// The single value of an instant query's answer.
async fn instant(ctx: &Ctx<'_>, base: &str, expr: &str, time: f64) -> Option<f64> {
    let req = ctx
        .http
        .post(format!("{base}/api/v1/query"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "query={}&time={time:.3}",
            queries::form_encode(expr)
        ));
    let v: serde_json::Value = fetch::json(req, ctx.args.query_timeout).await.ok()?;
    v.pointer("/data/result/0/value/1")?.as_str()?.parse().ok()
}

/// Series and sample counts, in all and for a gauge, a counter and a
/// histogram bucket of the template, on every store.
async fn checks(ctx: &Ctx<'_>, data: &Data, started: &[Started], end: f64) -> Vec<Check> {
    let nodes = data.nodes as f64;
    let steps = data.steps as f64;
    let per_node = |name: &str| data.template.iter().filter(|s| s.name() == name).count() as f64;
    let mut wanted = vec![(
        r#"count({__name__=~".+"})"#.to_string(),
        data.template.len() as f64 * nodes,
    )];
    let pick = |f: &dyn Fn(&str) -> bool| {
        data.template
            .iter()
            .map(|s| s.name())
            .find(|n| f(n))
            .map(str::to_string)
    };
    let range = format!("{}s", (data.steps as i64 - 1) * 10 + 60);
    let names = [
        pick(&|n: &str| n.ends_with("_bucket")),
        pick(&|n: &str| n.ends_with("_total")),
        pick(&|n: &str| !n.ends_with("_total") && !n.ends_with("_bucket")),
    ];
    for name in names.into_iter().flatten() {
        let k = per_node(&name);
        wanted.push((
            format!(r#"count(count_over_time({{__name__="{name}"}}[{range}]))"#),
            k * nodes,
        ));
        wanted.push((
            format!(r#"sum(count_over_time({{__name__="{name}"}}[{range}]))"#),
            k * nodes * steps,
        ));
    }
    let mut out = Vec::new();
    for (query, expected) in wanted {
        let mut answers = Vec::new();
        for s in started {
            answers.push(instant(ctx, &s.base, &query, end).await);
        }
        out.push(Check {
            query,
            expected,
            answers,
        });
    }
    out
}

fn median(v: &mut [f64]) -> Option<f64> {
    measure::quantile(v, 0.5)
}

/// Every query on every store, `repeats` times, alternating who goes first.
async fn run_queries(ctx: &Ctx<'_>, started: &[Started], report: &mut SameDataReport, end: f64) {
    let range = (end - report.window_seconds, end, report.step_seconds);
    let timeout = ctx.args.query_timeout;
    let n = started.len();
    let watches: Vec<RssWatch> = started
        .iter()
        .map(|s| RssWatch::start(s.proc.pid))
        .collect();
    let cpu0: Vec<f64> = started
        .iter()
        .map(|s| measure::sample(s.proc.pid).map_or(0.0, |p| p.cpu_seconds))
        .collect();
    let mut runs: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); n]; ctx.queries.len()];
    let mut rows: Vec<QueryRow> = Vec::new();
    for pass in 0..report.repeats {
        for (i, q) in ctx.queries.iter().enumerate() {
            progress(
                "same-data",
                &format!(
                    "  pass {}/{} query {}/{}",
                    pass + 1,
                    report.repeats,
                    i + 1,
                    ctx.queries.len()
                ),
            );
            let mut order: Vec<usize> = (0..n).collect();
            if (pass + i) % 2 == 1 {
                order.reverse();
            }
            let mut bodies = vec![String::new(); n];
            let mut status = vec![0u16; n];
            for s in order {
                let _paused = (!ctx.args.same_data.no_pause_others).then(|| {
                    Paused::new(
                        started
                            .iter()
                            .enumerate()
                            .filter(|&(o, _)| o != s)
                            .map(|(_, o)| o.proc.pid),
                    )
                });
                let a = queries::query_range(&ctx.http, &started[s].base, q, range, timeout).await;
                if a.status == 200 {
                    runs[i][s].push(a.seconds);
                }
                status[s] = a.status;
                bodies[s] = a.body;
            }
            if pass == 0 {
                let verdicts = (1..n)
                    .map(|s| {
                        match answers::compare(
                            &started[0].name,
                            &bodies[0],
                            &started[s].name,
                            &bodies[s],
                        ) {
                            Verdict::Same => "same".to_string(),
                            Verdict::BothFailed => "both failed".to_string(),
                            Verdict::Differ(d) => d,
                        }
                    })
                    .collect();
                rows.push(QueryRow {
                    query: q.clone(),
                    seconds: Vec::new(),
                    status,
                    series: bodies.iter().map(|b| answers::series_count(b)).collect(),
                    verdicts,
                });
            }
        }
    }
    for (row, r) in rows.iter_mut().zip(runs.iter_mut()) {
        row.seconds = r.iter_mut().map(|v| median(v)).collect();
    }
    for (s, store) in report.stores.iter_mut().enumerate() {
        let mut mine: Vec<f64> = rows.iter().filter_map(|r| r.seconds[s]).collect();
        store.failed_queries = rows.iter().filter(|r| r.seconds[s].is_none()).count();
        store.max_seconds = mine.iter().copied().reduce(f64::max);
        store.p50_seconds = measure::quantile(&mut mine, 0.5);
        store.p99_seconds = measure::quantile(&mut mine, 0.99);
        store.total_seconds = rows
            .iter()
            .filter(|r| r.seconds.iter().all(Option::is_some))
            .filter_map(|r| r.seconds[s])
            .sum();
        store.peak_rss_during_queries_bytes = watches[s].peak();
        store.query_cpu_seconds =
            measure::sample(started[s].proc.pid).map_or(0.0, |p| p.cpu_seconds - cpu0[s]);
    }
    report.queries = rows;
    progress("same-data", "done\n");
}

/// Processes stopped (SIGSTOP) until this is dropped, which continues them
/// (SIGCONT), on every path out of a query, an error or a panic included.
struct Paused(Vec<u32>);

impl Paused {
    fn new(pids: impl Iterator<Item = u32>) -> Self {
        let pids: Vec<u32> = pids.filter(|&p| signal(p, Signal::STOP)).collect();
        Paused(pids)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        for &p in &self.0 {
            signal(p, Signal::CONT);
        }
    }
}

/// Sends `sig` to process `pid`; whether it was delivered (a store that
/// has exited is neither stopped nor continued).
fn signal(pid: u32, sig: Signal) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|p| kill_process(p, sig).is_ok())
}

/// Every figure of a store, by name, with its unit (`ms`, `B`, or none).
fn figures(s: &Store) -> Vec<(&'static str, Option<f64>, &'static str)> {
    let ms = |v: Option<f64>| v.map(|s| s * 1e3);
    vec![
        ("load time (s)", Some(s.load_seconds), ""),
        ("load samples/s", Some(s.load_samples_per_second), ""),
        ("RSS after load", Some(s.rss_after_load_bytes as f64), "B"),
        (
            "CPU s after load, before queries",
            Some(s.cpu_after_load_seconds),
            "",
        ),
        ("settle wait (s)", s.settle_seconds, ""),
        (
            "quiet before queries",
            s.settled.map(|q| if q { 1.0 } else { 0.0 }),
            "",
        ),
        (
            "RSS peak during queries",
            Some(s.peak_rss_during_queries_bytes as f64),
            "B",
        ),
        ("query CPU s (all runs)", Some(s.query_cpu_seconds), ""),
        ("query p50 (ms)", ms(s.p50_seconds), ""),
        ("query p99 (ms)", ms(s.p99_seconds), ""),
        ("slowest query (ms)", ms(s.max_seconds), ""),
        ("total, queries all answered (s)", Some(s.total_seconds), ""),
        ("failed queries", Some(s.failed_queries as f64), ""),
    ]
}

fn show(v: Option<f64>, unit: &str) -> String {
    match (v, unit) {
        (None, _) => "n/a".into(),
        (Some(b), "B") => format!("{:.1} MiB", b / 1048576.0),
        (Some(x), _) if x.fract() == 0.0 => format!("{x:.0}"),
        (Some(x), _) => format!("{x:.3}"),
    }
}

impl SameDataReport {
    /// Fills `ratios`: raymon's figure over each other store's.
    pub fn compute_ratios(&mut self) {
        self.ratios = ratios_to_raymon(&self.stores, |s| &s.name, figures);
    }

    /// The summary, the checks, the disagreements and every query's time,
    /// as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "same data: {} nodes, {} series, {} samples ({:.0} s window, a sample every {:.0} s); {} queries at a {:.0} s step, {} runs each\n",
            self.nodes,
            self.series,
            self.samples,
            self.window_seconds,
            self.sample_interval_seconds,
            self.queries.len(),
            self.step_seconds,
            self.repeats
        );
        let others: Vec<&String> = self.ratios.keys().collect();
        let _ = write!(out, "| figure |");
        for s in &self.stores {
            let _ = write!(out, " {} |", s.name);
        }
        for o in &others {
            let _ = write!(out, " raymon/{o} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(self.stores.len() + others.len()));
        out.push('\n');
        let per: Vec<_> = self.stores.iter().map(figures).collect();
        for i in 0..per.first().map_or(0, Vec::len) {
            let name = per[0][i].0;
            let _ = write!(out, "| {name} |");
            for f in &per {
                let _ = write!(out, " {} |", show(f[i].1, f[i].2));
            }
            for o in &others {
                let r = self.ratios[*o].get(name);
                let _ = write!(out, " {} |", r.map_or("n/a".into(), |r| format!("{r:.3}")));
            }
            out.push('\n');
        }
        let _ = write!(out, "\n| data check | sent |");
        for s in &self.stores {
            let _ = write!(out, " {} |", s.name);
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(self.stores.len()));
        out.push('\n');
        for c in &self.checks {
            let _ = write!(out, "| `{}` | {} |", c.query, c.expected);
            for a in &c.answers {
                let _ = write!(
                    out,
                    " {} |",
                    a.map_or("no answer".into(), |v| v.to_string())
                );
            }
            out.push('\n');
        }
        let bad = self
            .checks
            .iter()
            .filter(|c| c.answers.iter().any(|a| *a != Some(c.expected)))
            .count();
        let agree = self.queries.iter().filter(|r| r.agrees()).count();
        let _ = writeln!(
            out,
            "\n- data checks: {} of {} match what was sent on every store",
            self.checks.len() - bad,
            self.checks.len()
        );
        if let Some(ns) = self.machine.memory_load_ns {
            let _ = writeln!(
                out,
                "- machine: a load from memory took {ns:.0} ns before the run"
            );
        }
        let _ = writeln!(
            out,
            "- answers: {agree} of {} queries agree with raymon's",
            self.queries.len()
        );
        for (i, r) in self.queries.iter().enumerate().filter(|(_, r)| !r.agrees()) {
            for v in r
                .verdicts
                .iter()
                .filter(|v| *v != "same" && *v != "both failed")
            {
                let _ = writeln!(
                    out,
                    "  - #{} `{}`: {}",
                    i + 1,
                    short(&r.query, 80),
                    short(v, 200)
                );
            }
        }
        let _ = write!(out, "\n| # |");
        for s in &self.stores {
            let _ = write!(out, " {} ms |", s.name);
        }
        for o in &others {
            let _ = write!(out, " raymon/{o} |");
        }
        out.push_str(" series | agree | query |\n|---|");
        out.push_str(&"---|".repeat(self.stores.len() + others.len() + 3));
        out.push('\n');
        let raymon = self.stores.iter().position(|s| s.name == "raymon");
        for (i, r) in self.queries.iter().enumerate() {
            let _ = write!(out, "| {} |", i + 1);
            for t in &r.seconds {
                let _ = write!(
                    out,
                    " {} |",
                    t.map_or("failed".into(), |t| format!("{:.1}", t * 1e3))
                );
            }
            for o in &others {
                let j = self.stores.iter().position(|s| &s.name == *o);
                let ratio = match (
                    raymon.and_then(|k| r.seconds[k]),
                    j.and_then(|j| r.seconds[j]),
                ) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                    _ => "n/a".into(),
                };
                let _ = write!(out, " {ratio} |");
            }
            let series = r
                .series
                .iter()
                .map(|s| s.map_or("-".into(), |n| n.to_string()))
                .collect::<Vec<_>>()
                .join("/");
            let _ = writeln!(
                out,
                " {series} | {} | `{}` |",
                if r.agrees() { "yes" } else { "NO" },
                short(&r.query, 100)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::ray_nodes::{dashboard_queries, node_template};
    use super::{Paused, is_quiet};

    /// Whether process `pid` is stopped (`T` in `/proc/<pid>/stat`) within
    /// a second, waiting for `want` as the signal takes effect.
    fn stopped(pid: u32, want: bool) -> bool {
        let state = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
            let after = stat.rsplit_once(") ").expect("comm").1.to_string();
            after.starts_with('T')
        };
        for _ in 0..100 {
            if state() == want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        state()
    }

    #[test]
    fn the_other_stores_are_stopped_for_a_query_and_continued_after_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        {
            // A pid that is gone is skipped, not an error.
            let paused = Paused::new([pid, u32::MAX].into_iter());
            assert_eq!(paused.0, vec![pid]);
            assert!(stopped(pid, true));
        }
        assert!(!stopped(pid, false));
        child.kill().expect("kill");
        child.wait().expect("wait");
    }

    #[test]
    fn a_store_is_quiet_after_enough_looks_of_little_cpu() {
        // Too few looks yet to tell.
        assert!(!is_quiet(&[1.0, 1.0], 2, 0.15));
        // Busy until the third look, then idle over the last two intervals.
        assert!(is_quiet(&[0.0, 0.9, 1.8, 1.85, 1.9], 2, 0.15));
        // Busy within the last two intervals.
        assert!(!is_quiet(&[0.0, 0.9, 1.8, 1.85, 2.5], 2, 0.15));
    }

    // Here rather than in `ray_nodes.rs`, which `benches/dashboards.rs`
    // includes without a test harness.
    #[test]
    fn the_template_is_the_head_agents_live_series() {
        let t = node_template().unwrap();
        assert_eq!(t.len(), 2407);
        assert!(
            t.iter()
                .all(|s| s.labels.windows(2).all(|w| w[0].0 < w[1].0))
        );
        let s = t.iter().find(|s| s.name().ends_with("_total")).unwrap();
        assert!(s.value(10) >= s.value(0));
        let l = s.labels_for_node(258);
        assert!(l.contains(&("instance".into(), "10.0.1.2:8080".into())));
        assert_eq!(dashboard_queries().len(), 397);
    }
}
