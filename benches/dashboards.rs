//! Ray's 397 dashboard queries over a simulated cluster (issue 4).
//!
//! Every node of the simulated cluster carries the series Ray's head agent
//! really exposed (labels from `golden-prom-2.42/raw-samples.json.gz`), with
//! `instance` and `NodeAddress` rewritten per node, sampled every 10 s over
//! the window: counters grow at the rate they grew on the real node, gauges
//! cycle through their real values. Each query runs as a range query over
//! the window at a 15 s step, and the table gives p50/p99 per query and totals.
//! The resident set size is sampled while the queries run: its peak above
//! the size before the first query is what answering costs, bounded by
//! `--query.max-samples` (the engine counts the samples it holds at once).
//! Last, a heavy aggregation (`--heavy`; by default a rate summed over the
//! largest counter family of the simulated cluster, 343 bucket series a
//! node) is timed with its own RSS peak.
//!
//! `cargo bench --bench dashboards -- --nodes 1000 --window 1h` for the full
//! run; without `--bench` (as `cargo test` runs it) a small smoke run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use raymon::model::Labels;
use raymon::promql::engine::{Engine, EngineOptions, Value};
use raymon::promql::parser::parse_expr;
use raymon::storage::Appendable;
use raymon::tsdb::{Head, HeadOptions};

// The allocator and settings of the `raymon` binary (`src/main.rs`), so
// that the queries cost here what they cost the server: under glibc's
// malloc, freeing and splitting blocks was a quarter of the queries' CPU.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[allow(non_upper_case_globals, unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] =
    b"narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

// The generator `raymon bench --same-data` loads into Prometheus beside
// raymon, included by path because `raymon::bench` is not public.
#[allow(dead_code)]
#[path = "../src/bench/ray_nodes.rs"]
mod ray_nodes;

/// Fills a head with `nodes` copies of the template over `window_ms`.
fn simulate(nodes: usize, window_ms: i64, end_ms: i64) -> (Head, usize, usize) {
    let template = ray_nodes::node_template().expect("Ray capture");
    let head = Head::new(HeadOptions::default());
    let steps = (window_ms / ray_nodes::SAMPLE_INTERVAL_MS) as usize + 1;
    let mut samples = 0;
    for n in 0..nodes {
        let mut app = head.appender();
        for s in &template {
            let labels = Labels::from_pairs(s.labels_for_node(n));
            let mut r = 0;
            for i in 0..steps {
                let t = end_ms - window_ms + i as i64 * ray_nodes::SAMPLE_INTERVAL_MS;
                r = app.append(r, &labels, t, s.value(i)).expect("append");
                samples += 1;
            }
        }
        app.commit().expect("commit");
    }
    (head, template.len() * nodes, samples)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The resident set size now, in bytes (Linux's `/proc/self/statm`).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// CPU seconds this process has used (user and system, every thread's,
/// from `/proc/self/stat` in Linux's fixed 100 ticks a second): on a
/// machine shared with other work, wall time counts the waits for a core.
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which may hold spaces.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// Samples the RSS every 5 ms on a thread and keeps the peak.
struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssPeak {
    fn start() -> RssPeak {
        let peak = Arc::new(AtomicU64::new(rss()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssPeak { peak, stop }
    }

    /// Starts a new peak from the RSS now.
    fn reset(&self) {
        self.peak.store(rss(), Ordering::Relaxed);
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).max(rss())
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let arg = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let nodes: usize = arg("--nodes", if full { "1000" } else { "3" })
        .parse()
        .expect("--nodes");
    let window_ms = raymon::model::duration::parse_duration_ms(&arg(
        "--window",
        if full { "1h" } else { "10m" },
    ))
    .expect("--window");
    let repeats: usize = arg("--repeats", if full { "3" } else { "1" })
        .parse()
        .expect("--repeats");
    let end_ms = 1_795_664_595_000;

    let t0 = Instant::now();
    let (head, series, samples) = simulate(nodes, window_ms, end_ms);
    eprintln!(
        "simulated {nodes} nodes: {series} series, {samples} samples in {:.1?}",
        t0.elapsed()
    );
    let queries: Vec<String> = ray_nodes::dashboard_queries()
        .into_iter()
        .map(str::to_string)
        .collect();
    let queries = if full {
        queries
    } else {
        queries.into_iter().take(25).collect()
    };
    let max_samples: usize = arg("--query.max-samples", "50000000")
        .parse()
        .expect("--query.max-samples");
    let engine = Engine::new(EngineOptions {
        default_subquery_step_ms: 10_000,
        max_samples,
        ..EngineOptions::default()
    });
    let steady = rss();
    let sampler = RssPeak::start();
    let mut per_query: Vec<(Duration, Duration, usize, String)> = Vec::new();
    let mut all: Vec<Duration> = Vec::new();
    let mut cpu_per_query: Vec<f64> = Vec::new();
    let total = Instant::now();
    let cpu_total = cpu_s();
    for q in &queries {
        let expr = parse_expr(q).expect("dashboard query parses");
        let mut times = Vec::new();
        let mut n = 0;
        let cpu = cpu_s();
        for _ in 0..repeats {
            let t = Instant::now();
            let v = engine
                .range(&head, &expr, end_ms - window_ms, end_ms, 15_000)
                .expect("query");
            times.push(t.elapsed());
            n = match v {
                Value::Matrix(m) => m.len(),
                _ => 0,
            };
        }
        cpu_per_query.push((cpu_s() - cpu) / repeats as f64);
        times.sort();
        all.extend(&times);
        per_query.push((
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            n,
            q.clone(),
        ));
    }
    let wall = total.elapsed();
    let cpu_all = cpu_s() - cpu_total;
    let peak = sampler.peak();
    all.sort();
    per_query.sort_by_key(|q| std::cmp::Reverse(q.0));
    println!("slowest queries (p50, p99, series, query):");
    for (p50, p99, n, q) in per_query.iter().take(if full { 15 } else { 5 }) {
        println!(
            "{:>10.1?} {:>10.1?} {:>6}  {}",
            p50,
            p99,
            n,
            &q[..q.len().min(110)]
        );
    }
    let p50s: BTreeMap<String, Duration> = per_query
        .iter()
        .map(|(p, _, _, q)| (q.clone(), *p))
        .collect();
    let sum_p50: Duration = p50s.values().sum();
    println!(
        "{} queries × {repeats} over {} nodes ({series} series), window {}s step 15s: all runs p50 {:.1?}, p99 {:.1?}; sum of per-query p50 {:.2?}; wall {:.2?}",
        queries.len(),
        nodes,
        window_ms / 1000,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        sum_p50,
        wall
    );
    cpu_per_query.sort_by(f64::total_cmp);
    println!(
        "CPU (process, 10 ms ticks, the RSS sampler included): all runs {cpu_all:.2}s; per query (mean of repeats) p99 {:.2}s, slowest {:.2}s",
        cpu_per_query
            .get(((cpu_per_query.len().max(1) - 1) as f64 * 0.99).round() as usize)
            .copied()
            .unwrap_or(0.0),
        cpu_per_query.last().copied().unwrap_or(0.0)
    );
    println!(
        "RSS before the queries {:.0} MB, peak while they ran {:.0} MB (+{:.0} MB), --query.max-samples {max_samples}",
        mb(steady),
        mb(peak),
        mb(peak.saturating_sub(steady))
    );
    let heavy_q = arg(
        "--heavy",
        "sum by (le) (rate(ray_grpc_server_req_process_time_ms_bucket[1m]))",
    );
    let heavy = parse_expr(&heavy_q).expect("--heavy parses");
    let before = rss();
    sampler.reset();
    let t = Instant::now();
    let cpu = cpu_s();
    let v = engine
        .range(&head, &heavy, end_ms - window_ms, end_ms, 15_000)
        .expect("heavy aggregation");
    let took = t.elapsed();
    let heavy_cpu = cpu_s() - cpu;
    let n = match v {
        Value::Matrix(m) => m.len(),
        _ => 0,
    };
    let peak = sampler.peak();
    println!(
        "heavy aggregation {heavy_q} over the window: {took:.1?} ({heavy_cpu:.2} CPU s), {n} series; RSS {:.0} MB -> peak {:.0} MB (+{:.1}%)",
        mb(before),
        mb(peak),
        100.0 * peak.saturating_sub(before) as f64 / before.max(1) as f64
    );
    // The Ray data page's subquery.
    let session = "session_2026-11-26_03-35-11_178048_5703";
    let sub = format!(
        "max_over_time(sum(ray_node_mem_used{{SessionName='{session}'}}) by (instance)[1h:1s])"
    );
    let expr = parse_expr(&sub).expect("subquery parses");
    let t = Instant::now();
    engine.instant(&head, &expr, end_ms).expect("subquery");
    println!("data API subquery {sub}: {:.1?}", t.elapsed());
}
