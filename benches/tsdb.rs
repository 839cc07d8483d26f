//! Benchmarks of the in-memory store: XOR chunk encode/decode per sample, the
//! re-encoding of a chunk for the chunk store and reading it back,
//! head appends with cached references, and index lookups over 1M series.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use raymon::model::{Labels, MatchOp, Matcher};
use raymon::storage::{Appendable, Queryable};
use raymon::tsdb::Head;
use raymon::tsdb::chunkenc::{SampleIter, XorChunk, compact};
use raymon::tsdb::index::Index;

/// Ray-like labels over 64 nodes.
fn ray_labels(i: usize) -> Labels {
    raymon::model::synthetic::ray_like_labels(i, 64, 16)
}

/// Gauge- and counter-like samples at a jittered 15 s interval.
fn samples(n: usize) -> Vec<(i64, f64)> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut t = 1_764_000_000_000i64;
    let mut counter = 1000.0;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += 15_000 + (x % 40) as i64 - 20;
            counter += (x % 7) as f64;
            let v = if i % 2 == 0 {
                counter
            } else {
                (x % 1000) as f64 / 8.0
            };
            (t, v)
        })
        .collect()
}

fn ray_matchers() -> Vec<Matcher> {
    let re = |n: &str, v: &str| Matcher::new(MatchOp::Regex, n, v).unwrap();
    vec![
        Matcher::equal("__name__", "ray_metric_5"),
        re("instance", ".+"),
        re("RayNodeType", "(head|worker)"),
        re("SessionName", "session_2026-11-26_03-35-11_178048_5703"),
        re("ray_io_cluster", ".*"),
    ]
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("tsdb_chunk");
    let data = samples(120);
    let mut chunk = XorChunk::new();
    for &(t, v) in &data {
        chunk.append(t, v).unwrap();
    }
    eprintln!(
        "xor chunk: {} bytes for {} samples ({:.2} B/sample)",
        chunk.bytes().len(),
        data.len(),
        chunk.bytes().len() as f64 / data.len() as f64
    );
    g.throughput(Throughput::Elements(data.len() as u64));
    g.bench_function(BenchmarkId::new("xor_append", "n120"), |b| {
        b.iter(|| {
            let mut c = XorChunk::new();
            for &(t, v) in &data {
                c.append(t, v).unwrap();
            }
            black_box(c.bytes().len())
        })
    });
    g.bench_function(BenchmarkId::new("xor_iter", "n120"), |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for (_, v) in chunk.iter() {
                sum += v;
            }
            black_box(sum)
        })
    });
    // What a move to the chunk store adds per closed chunk: decode, choose a
    // scale, re-encode, keep the smaller form.
    let mut stored = Vec::new();
    let encoding = compact(chunk.bytes(), &mut stored);
    eprintln!(
        "stored as {encoding:?}: {} bytes ({:.2} B/sample)",
        stored.len(),
        stored.len() as f64 / data.len() as f64
    );
    g.bench_function(BenchmarkId::new("compact", "n120"), |b| {
        let mut out = Vec::new();
        b.iter(|| black_box(compact(chunk.bytes(), &mut out)))
    });
    g.bench_function(BenchmarkId::new("stored_iter", "n120"), |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for (_, v) in SampleIter::new(encoding, &stored) {
                sum += v;
            }
            black_box(sum)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("tsdb_head");
    let n = 10_000;
    let sets: Vec<Labels> = (0..n).map(ray_labels).collect();
    let head = Head::default();
    let mut refs = vec![0u64; n];
    let mut app = head.appender();
    for (i, l) in sets.iter().enumerate() {
        refs[i] = app.append(0, l, 0, 0.0).unwrap();
    }
    app.commit().unwrap();
    let mut scrape = 0i64;
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(
        BenchmarkId::new("append_with_hints", "series10k_labels12"),
        |b| {
            b.iter(|| {
                scrape += 1;
                let t = scrape * 15_000;
                let mut app = head.appender();
                for (i, l) in sets.iter().enumerate() {
                    app.append(refs[i], l, t, (scrape as usize * (i % 7)) as f64)
                        .unwrap();
                }
                app.commit().unwrap();
                if scrape % 960 == 0 {
                    // Keep memory flat on long runs: four hours of data at most.
                    head.gc(t - 4 * 3_600_000);
                }
            })
        },
    );
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(
        BenchmarkId::new("append_by_labels", "series10k_labels12"),
        |b| {
            b.iter(|| {
                scrape += 1;
                let t = scrape * 15_000;
                let mut app = head.appender();
                for (i, l) in sets.iter().enumerate() {
                    app.append(0, l, t, (i % 7) as f64).unwrap();
                }
                app.commit().unwrap();
            })
        },
    );
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("select_ray_query", "series10k"), |b| {
        let ms = ray_matchers();
        b.iter(|| {
            let q = head.querier(0, scrape * 15_000).unwrap();
            black_box(q.select(&ms).unwrap().len())
        })
    });
    g.finish();

    // New series by labels into a fresh head, as a cluster's first scrapes
    // (or churn) create them: each is looked up by its label hash first.
    let mut g = c.benchmark_group("tsdb_head_create");
    g.sample_size(10);
    let k = 200_000;
    let fresh: Vec<Labels> = (0..k).map(ray_labels).collect();
    g.throughput(Throughput::Elements(k as u64));
    g.bench_function(BenchmarkId::new("create_by_labels", "series200k"), |b| {
        b.iter_with_large_drop(|| {
            let head = Head::default();
            let mut app = head.appender();
            for l in &fresh {
                app.append(0, l, 0, 0.0).unwrap();
            }
            app.commit().unwrap();
            head
        })
    });
    g.finish();

    // Memory: a fresh head with 100k Ray-like series and 120 samples each.
    let before = rss_bytes();
    let mem_head = Head::default();
    let m = 100_000;
    let mut mem_refs = vec![0u64; m];
    for k in 0..120i64 {
        let mut app = mem_head.appender();
        for (i, r) in mem_refs.iter_mut().enumerate() {
            let l = if k == 0 { ray_labels(i) } else { Labels::new() };
            *r = app
                .append(*r, &l, k * 15_000, (k as usize * (i % 5)) as f64)
                .unwrap();
        }
        app.commit().unwrap();
    }
    if let (Some(a), Some(b)) = (before, rss_bytes()) {
        let st = mem_head.stats();
        eprintln!(
            "head memory, 100k series x 12 labels x 120 samples: RSS {} B/series; estimated {} B/series of which {} B chunks",
            b.saturating_sub(a) / m,
            st.heap_bytes / m,
            st.chunk_bytes / m
        );
    }
    drop(mem_head);

    let mut g = c.benchmark_group("tsdb_index");
    let mut ix = Index::new();
    for i in 0..1_000_000usize {
        // References as the head makes them: dense, shard in the low bits.
        ix.add_series((((i / 16 + 1) << 4) | (i % 16)) as u64, &ray_labels(i));
    }
    let ms = ray_matchers();
    eprintln!(
        "index: ray query selects {} of 1M series",
        ix.postings_for_matchers(&ms).len()
    );
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        BenchmarkId::new("postings_for_matchers", "ray_query_series1m"),
        |b| b.iter(|| black_box(ix.postings_for_matchers(&ms).len())),
    );
    let broad = vec![
        Matcher::new(MatchOp::Regex, "instance", "10.0.1.*").unwrap(),
        Matcher::new(MatchOp::NotEqual, "State", "FINISHED").unwrap(),
        Matcher::new(MatchOp::Regex, "ray_io_cluster", ".*").unwrap(),
    ];
    g.bench_function(
        BenchmarkId::new("postings_for_matchers", "broad_no_name_series1m"),
        |b| b.iter(|| black_box(ix.postings_for_matchers(&broad).len())),
    );
    g.finish();
}
