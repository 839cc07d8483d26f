//! `raymon bench-tsdb` (hidden): measures the durable store by hand on
//! Ray-like data, for the figures that criterion cannot take (process RSS,
//! restart of a million series, bytes on disk).
//!
//! It drives `tsdb::Db` through the storage seam only, one thread, and prints
//! one line per figure. It knows nothing of scraping or HTTP.

use std::time::Instant;

use anyhow::Context;

use super::exposition::{Shape, TargetExposition};
use crate::cli::flags::{BenchTsdbArgs, BenchValues};
use crate::model::Labels;
use crate::procfs::{self, Stat};
use crate::storage::{Appendable, Queryable};
use crate::tsdb::{Db, DbOptions};

/// Ray-like labels over 1,000 nodes.
fn ray_labels(i: usize) -> Labels {
    crate::model::synthetic::ray_like_labels(i, 1000, 250)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The next value of series `i`, with the mix a Ray scrape shows: 58% of
/// samples repeat the previous value (measured on the Prometheus 2.42 golden
/// data), the rest are counter steps, integer gauges or one-decimal gauges.
fn next_value(i: usize, prev: f64, rng: &mut Rng) -> f64 {
    let x = rng.next();
    if x % 100 < 58 {
        return prev;
    }
    match i % 3 {
        0 => prev + (x >> 8) as f64 % 50.0,
        1 => ((x >> 8) % 4_000_000_000) as f64,
        _ => ((x >> 8) % 1000) as f64 / 10.0,
    }
}

/// Sample values for every series, scrape after scrape.
enum Values {
    Random(Rng),
    /// One simulated Ray node per batch of series; series `i` is line
    /// `i % batch` of node `i / batch`.
    Ray {
        nodes: Vec<TargetExposition>,
        batch: usize,
        scratch: Vec<f64>,
    },
}

impl Values {
    fn new(kind: BenchValues, series: usize, batch: usize) -> Values {
        match kind {
            BenchValues::Random => Values::Random(Rng(0x2545_f491_4f6c_dd1d)),
            BenchValues::Ray => {
                let batch = batch.max(1);
                let shape = Shape {
                    series: batch,
                    histogram_fraction: 0.5,
                    // The figures are about active series.
                    churn: 0.0,
                    seed: 1,
                };
                let nodes = (0..series.div_ceil(batch))
                    .map(|n| TargetExposition::new(shape, n))
                    .collect();
                Values::Ray {
                    nodes,
                    batch,
                    scratch: Vec::new(),
                }
            }
        }
    }

    /// Sets every series' value in `vals` to its value at scrape `k`.
    fn fill(&mut self, k: usize, vals: &mut [f64]) {
        match self {
            Values::Random(rng) => {
                for (i, v) in vals.iter_mut().enumerate() {
                    *v = next_value(i, *v, rng);
                }
            }
            Values::Ray {
                nodes,
                batch,
                scratch,
            } => {
                for (node, vals) in nodes.iter_mut().zip(vals.chunks_mut(*batch)) {
                    node.advance_to(k as u64);
                    node.values(scratch);
                    for (v, s) in vals.iter_mut().zip(scratch.iter()) {
                        *v = *s;
                    }
                }
            }
        }
    }
}

/// CPU seconds the process has used (user + system), from procfs: wall time
/// on a shared machine says more about the neighbours.
fn cpu_secs() -> f64 {
    Stat::read("/proc/self/stat").map_or(0.0, |s| s.cpu_seconds())
}

/// CPU seconds of the calling thread: the appends, without fjall's workers.
fn thread_cpu_secs() -> f64 {
    Stat::read("/proc/thread-self/stat").map_or(0.0, |s| s.cpu_seconds())
}

fn rss_bytes() -> u64 {
    procfs::read_status_bytes("/proc/self/status", "VmRSS:").unwrap_or(0)
}

pub fn run(args: &BenchTsdbArgs) -> anyhow::Result<()> {
    let opts = DbOptions {
        retention_ms: 0,
        // Its timestamps are a fixed day in the past: every series would be
        // idle, and the figures are about active series.
        series_idle_ms: 0,
        ..DbOptions::default()
    };
    if args.open_only {
        let (t0, c0) = (Instant::now(), cpu_secs());
        let (db, st) = Db::open(&args.dir, opts).context("cannot open")?;
        println!(
            "open: {:.2} s wall, {:.2} s CPU, {} series from the {}, {} from the checkpoint, {} WAL samples (chunk store open {:?}, phases {:?})",
            t0.elapsed().as_secs_f64(),
            cpu_secs() - c0,
            st.stored_series,
            if st.from_image {
                "head image"
            } else {
                "chunk store"
            },
            st.checkpoint_series,
            st.replay.samples,
            st.kv_open,
            st.phases
        );
        for round in ["first", "second"] {
            let q0 = Instant::now();
            let got = db
                .head()
                .querier(i64::MIN, i64::MAX)?
                .select(&[crate::model::Matcher::equal("__name__", "ray_metric_5")])?;
            let samples: usize = got.iter().map(|s| s.samples.len()).sum();
            println!(
                "{round} query: {} series, {samples} samples in {:.3} s",
                got.len(),
                q0.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    let merge_per_tick = opts.merge_series_per_tick;
    let rss0 = rss_bytes();
    let (db, _) = Db::open(&args.dir, opts.clone()).context("cannot open")?;
    let labels: Vec<Labels> = (0..args.series).map(ray_labels).collect();
    // The simulated nodes hold their series' text: made before the RSS
    // baseline, like the labels.
    let mut values = Values::new(args.values, args.series, args.batch);
    let rss_labels = rss_bytes();
    let mut refs = vec![0u64; args.series];
    let no_labels = Labels::default();
    let mut vals = vec![0f64; args.series];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let base = 1_764_000_000_000i64;
    let mut t_scrape = base;
    let mut steady = std::time::Duration::ZERO;
    let started = Instant::now();
    let cpu_started = cpu_secs();
    let mut cpu_first = 0.0;
    let mut checkpoints = Vec::new();
    let mut append_cpu = 0.0;
    for k in 0..args.scrapes {
        // Values are made before this scrape's clocks start.
        values.fill(k, &mut vals);
        let s0 = Instant::now();
        let c0 = thread_cpu_secs();
        // Real scrape timestamps mostly keep their interval exactly; 15% are
        // a few milliseconds off (golden data).
        t_scrape += 15_000;
        for lo in (0..args.series).step_by(args.batch.max(1)) {
            let hi = (lo + args.batch).min(args.series);
            let jitter = match rng.next() % 100 {
                0..85 => 0,
                x => (x % 11) as i64 - 5,
            };
            let t = t_scrape + jitter;
            let mut app = db.head().appender();
            for i in lo..hi {
                // As a scrape loop does: labels the first time, then the
                // reference alone.
                let l = if refs[i] == 0 { &labels[i] } else { &no_labels };
                refs[i] = app.append(refs[i], l, t, vals[i])?;
            }
            app.commit()?;
        }
        if k > 0 {
            steady += s0.elapsed();
            append_cpu += thread_cpu_secs() - c0;
        } else {
            cpu_first = cpu_secs();
        }
        // What the background thread does in serve: closed chunks go to the
        // chunk store every 30 s, and a checkpoint retires the WAL.
        if args.checkpoint_every > 0 && (k + 1) % 2 == 0 {
            db.flush_closed_chunks().context("flush")?;
            // And merges past windows at its pace: 30 s of ticks.
            db.merge_some(30 * merge_per_tick)?;
        }
        if args.checkpoint_every > 0 && (k + 1) % args.checkpoint_every == 0 {
            let c0 = Instant::now();
            db.checkpoint().context("checkpoint")?;
            checkpoints.push(c0.elapsed().as_secs_f64());
        }
    }
    let total = started.elapsed();
    let cpu_steady = cpu_secs() - cpu_first;
    let _ = cpu_started;
    let samples = (args.series * args.scrapes) as f64;
    let rss1 = rss_bytes();
    let st = db.head().stats();
    println!(
        "series {} scrapes {} samples {samples}",
        args.series, args.scrapes
    );
    println!(
        "append with WAL: {:.2} M samples/s overall (incl. series creation), {:.2} M samples/s after the first scrape",
        samples / total.as_secs_f64() / 1e6,
        (samples - args.series as f64) / steady.as_secs_f64().max(1e-9) / 1e6
    );
    println!(
        "append with WAL per CPU second: {:.2} M samples/s after the first scrape (appending thread only; whole process incl. checkpoints: {:.2})",
        (samples - args.series as f64) / append_cpu.max(1e-9) / 1e6,
        (samples - args.series as f64) / cpu_steady.max(1e-9) / 1e6
    );
    println!(
        "RSS per active series: {} B (process RSS growth without the bench's own label vector); head estimate {} B",
        rss1.saturating_sub(rss_labels) / args.series.max(1) as u64,
        st.heap_bytes / args.series.max(1)
    );
    let _ = rss0;
    println!(
        "checkpoints during the run (chunks to the chunk store): {} taking {:?} s",
        checkpoints.len(),
        checkpoints
            .iter()
            .map(|s| (s * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    if args.close_only {
        let (t0, c0) = (Instant::now(), cpu_secs());
        db.close().context("cannot close")?;
        println!(
            "clean close: {:.2} s wall, {:.2} s CPU",
            t0.elapsed().as_secs_f64(),
            cpu_secs() - c0
        );
        return Ok(());
    }
    if args.crash_only {
        // As kill -9 would: no close, no checkpoint, buffers dropped.
        db.wal().sync().context("sync")?;
        std::process::exit(0);
    }
    let disk_bytes = db.disk_bytes();
    println!(
        "disk bytes per sample (WAL, checkpoint, chunk store): {:.2}",
        disk_bytes as f64 / samples
    );
    // A crash: no close, the next open replays the WAL.
    drop(db);
    let (t0, c0) = (Instant::now(), cpu_secs());
    let (db, st) = Db::open(&args.dir, opts.clone()).context("cannot reopen")?;
    println!(
        "restart after a crash (WAL replay of {} samples): {:.2} s wall, {:.2} s CPU (chunk store open {:?}, phases {:?})",
        st.replay.samples,
        t0.elapsed().as_secs_f64(),
        cpu_secs() - c0,
        st.kv_open,
        st.phases
    );
    let q0 = Instant::now();
    let n = db
        .head()
        .querier(i64::MIN, i64::MAX)?
        .select(&[crate::model::Matcher::equal("__name__", "ray_metric_5")])?
        .len();
    println!(
        "first query after restart: {n} series in {:.3} s",
        q0.elapsed().as_secs_f64()
    );
    let (t0, c0) = (Instant::now(), cpu_secs());
    db.close().context("cannot close")?;
    let disk = db.disk_bytes();
    println!(
        "clean close (checkpoint) {:.2} s wall, {:.2} s CPU; on-disk bytes per sample: {:.3} ({disk} bytes)",
        t0.elapsed().as_secs_f64(),
        cpu_secs() - c0,
        disk as f64 / samples
    );
    let open = db.head().stats().open_samples as f64;
    let kv = db.chunk_store_bytes();
    println!(
        "chunk store: {kv} bytes for {} persisted samples (all but the open chunks): {:.3} bytes per sample, labels included",
        samples - open,
        kv as f64 / (samples - open).max(1.0)
    );
    // Labels are paid once per series and chunks per sample: over a longer
    // retention the figure per sample tends to the chunks' alone.
    let report = |db: &Db, when: &str| {
        let tables = db.chunk_store_tables();
        let table = |name: &str| {
            tables
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, b)| *b)
        };
        println!(
            "chunk store tables {when}: chunks {:.3} bytes per persisted sample; series (labels) {:.0} bytes per series; all tables {:.3} bytes per sample (the rest is fjall's journal); {tables:?}",
            table("chunks") as f64 / (samples - open).max(1.0),
            table("series") as f64 / args.series.max(1) as f64,
            tables.iter().map(|(_, b)| b).sum::<u64>() as f64 / (samples - open).max(1.0),
        );
    };
    // What the background thread of serve did along the way (fjall then
    // compacts in its own time), and what it would do later: each complete
    // window's chunks of a series become one.
    report(&db, "with windows merged along the way, as serve does");
    let (t0, c0) = (Instant::now(), cpu_secs());
    let merged = db.merge_windows().context("cannot merge windows")?;
    let merge_secs = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
    println!(
        "merged complete windows: {} series, {} chunks into {} ({} refused) in {:.2} s wall, {:.2} s CPU",
        merged.series,
        merged.chunks_read,
        merged.chunks_left,
        merged.refused,
        merge_secs.0,
        merge_secs.1
    );
    report(
        &db,
        "after merging (before fjall compacts the replaced chunks away)",
    );
    // A major compaction leaves out the tables fjall's own compaction is
    // rewriting at that moment: again until the size stops falling.
    let mut size = u64::MAX;
    for _ in 0..4 {
        db.compact_chunk_store().context("cannot compact")?;
        let now = db.chunk_store_tables().iter().map(|(_, b)| b).sum::<u64>();
        if now >= size {
            break;
        }
        size = now;
        report(&db, "after merging and a major compaction");
    }
    // As a clean shutdown would leave it.
    db.close().context("cannot close")?;
    drop(db);
    let (t0, c0) = (Instant::now(), cpu_secs());
    let (db, st) = Db::open(&args.dir, opts).context("cannot reopen")?;
    println!(
        "restart after a clean close (checkpoint of {} series): {:.2} s wall, {:.2} s CPU (chunk store open {:?}, phases {:?})",
        st.checkpoint_series,
        t0.elapsed().as_secs_f64(),
        cpu_secs() - c0,
        st.kv_open,
        st.phases
    );
    // fjall keeps its active journal, already written out, until later
    // writes rotate it: up to 64 MiB whatever the store's size.
    let disk = db.disk_bytes();
    let journal = db
        .chunk_store_bytes()
        .saturating_sub(db.chunk_store_tables().iter().map(|(_, b)| b).sum::<u64>());
    println!(
        "data directory after reopening: {disk} bytes, {:.3} bytes per sample (chunk store, checkpoint of the open chunks, WAL; labels included); without fjall's journal ({journal} bytes) {:.3}",
        disk as f64 / samples,
        disk.saturating_sub(journal) as f64 / samples
    );
    drop(db);
    Ok(())
}
