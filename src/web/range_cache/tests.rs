//! The cache's exactness, tried at random: late samples, deletions and
//! scrapes interleaved with dashboard-style sliding range queries, every
//! cached answer compared byte for byte with an uncached evaluation.

use std::sync::Arc;

use super::*;
use crate::model::{Labels, Matcher, STALE_NAN};
use crate::promql::engine::{Engine, EngineOptions};
use crate::promql::parser::parse_expr;
use crate::storage::{Appendable, Queryable};
use crate::tsdb::Head;
use crate::tsdb::changes::Tracked;
use crate::tsdb::tombstones::{Tombstoned, Tombstones};
use crate::web::api::answer::encode_query_value;
use crate::web::promql_engine::PromqlEngine;
use crate::web::{QueryEngine, Until};

/// xorshift64*: the test's only source of randomness, from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }
}

const QUERIES: &[&str] = &[
    "up",
    "sum(rate(req_total[1m])) by (job)",
    "rate(req_total[30s])",
    "avg_over_time(temp[2m])",
    "max by (node) (temp)",
    "sum(increase(req_total[5m]))",
    "temp offset 1m",
    "temp offset -30s",
    "rate(req_total[1m] offset 2m)",
    "max_over_time(rate(req_total[1m])[5m:20s])",
    "sum_over_time(temp[1m:15s] offset 30s)",
    "topk(2, temp)",
    "count(temp > 50)",
    "temp * on(node) group_left up",
    "absent(nothing)",
    "time() - timestamp(temp)",
    "histogram_quantile(0.9, sum by (le) (rate(lat_bucket[1m])))",
    "changes(temp[3m]) + resets(req_total[3m])",
    "temp @ 1000",
    "scalar(sum(up))",
    "label_replace(temp, \"n\", \"$1\", \"node\", \"n(.*)\")",
];

fn series(rng: &mut Rng) -> Labels {
    let node = format!("n{}", rng.below(6));
    match rng.below(4) {
        0 => Labels::from_pairs([("__name__", "up"), ("job", "ray"), ("node", &node)]),
        1 => Labels::from_pairs([
            ("__name__", "req_total"),
            ("job", if rng.below(2) == 0 { "a" } else { "b" }),
            ("node", &node),
        ]),
        2 => Labels::from_pairs([
            ("__name__", "lat_bucket"),
            ("le", ["0.1", "1", "+Inf"][rng.below(3) as usize]),
            ("node", &node),
        ]),
        _ => Labels::from_pairs([("__name__", "temp"), ("node", &node)]),
    }
}

fn value(rng: &mut Rng, l: &Labels) -> f64 {
    if rng.below(40) == 0 {
        return STALE_NAN;
    }
    match l.metric_name() {
        Some("temp") => rng.below(1000) as f64 / 10.0,
        Some("up") => rng.below(2) as f64,
        _ => rng.below(100_000) as f64,
    }
}

#[test]
fn cached_range_queries_equal_uncached_ones_under_late_samples_and_deletes() {
    let seed = std::env::var("RAYMON_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("seed: {seed} (RAYMON_TEST_SEED={seed} repeats this run)");
    let mut rng = Rng(seed);

    let head = Arc::new(Head::default());
    let changes = Arc::new(Changes::new());
    let store = Tracked::new(head.clone(), changes.clone());
    let stones = Arc::new(Tombstones::in_memory());
    let visible: Arc<dyn Queryable> = Arc::new(Tombstoned::new(head.clone(), stones.clone()));
    let opts = EngineOptions::default();
    let windows = Windows {
        lookback_ms: opts.lookback_delta_ms,
        default_subquery_step_ms: opts.default_subquery_step_ms,
    };
    let engine = Engine::new(opts);
    let cache = Arc::new(RangeCache::new(
        changes.clone(),
        windows,
        8 << 20,
        50_000_000,
    ));
    let cached = PromqlEngine::new(engine.clone(), visible.clone()).with_cache(cache.clone());
    let plain = PromqlEngine::new(engine, visible.clone());

    let mut now: i64 = 3_600_000;
    let mut compared = 0;
    for round in 0..1500 {
        now += rng.range(1_000, 12_000);
        match rng.below(10) {
            // A scrape: many series at `now`.
            0..=3 => {
                let mut app = store.appender();
                for _ in 0..rng.range(1, 20) {
                    let l = series(&mut rng);
                    let v = value(&mut rng, &l);
                    let _ = app.append(0, &l, now - rng.range(0, 3_000), v);
                }
                app.commit().unwrap();
            }
            // Late samples: anywhere in the last 70 minutes; what the head
            // refuses as out of order is simply not there.
            4..=6 => {
                let mut app = store.appender();
                for _ in 0..rng.range(1, 6) {
                    let l = series(&mut rng);
                    let v = value(&mut rng, &l);
                    let _ = app.append(0, &l, now - rng.range(0, 4_200_000), v);
                }
                app.commit().unwrap();
            }
            // A deletion, as the admin API does it.
            7 => {
                let mint = now - rng.range(0, 4_000_000);
                let maxt = mint + rng.range(0, 600_000);
                let node = format!("n{}", rng.below(6));
                let _changed = changes.begin(mint, maxt);
                stones
                    .delete(
                        head.as_ref(),
                        &[vec![Matcher::equal("node", &node)]],
                        mint,
                        maxt,
                    )
                    .unwrap();
            }
            _ => {}
        }
        // Two dashboards refreshing: a few queries each round.
        for _ in 0..3 {
            let q = QUERIES[rng.below(QUERIES.len() as u64) as usize];
            let step = [5_000, 15_000, 60_000][rng.below(3) as usize];
            let end = now - rng.range(0, 2) * step;
            let start = (end - 3_600_000).div_euclid(step) * step;
            let want = plain.range(q, start, end, step);
            let got = if rng.below(4) == 0 {
                // A first try within a budget it overruns, then its retry
                // on another thread with what the first try read.
                let until = Until {
                    deadline: std::time::Instant::now() + std::time::Duration::from_secs(60),
                    budget: Some(std::time::Instant::now()),
                    cancel: None,
                };
                match cached.range_until(q, start, end, step, until.clone()) {
                    Some(r) => r,
                    None => {
                        let handoff = cached.handoff();
                        let cached = &cached;
                        std::thread::scope(|s| {
                            s.spawn(move || {
                                handoff();
                                cached
                                    .range_until(
                                        q,
                                        start,
                                        end,
                                        step,
                                        Until {
                                            budget: None,
                                            ..until
                                        },
                                    )
                                    .unwrap()
                            })
                            .join()
                            .unwrap()
                        })
                    }
                }
            } else {
                cached.range(q, start, end, step)
            };
            match (want, got) {
                (Ok(w), Ok(g)) => {
                    let (w, g) = (encode_query_value(&w), encode_query_value(&g));
                    if w != g {
                        let at = w.iter().zip(&g).take_while(|(a, b)| a == b).count();
                        let around = |b: &[u8]| {
                            String::from_utf8_lossy(
                                &b[at.saturating_sub(120)..(at + 80).min(b.len())],
                            )
                            .into_owned()
                        };
                        panic!(
                            "seed {seed}, round {round}: {q} over {start}..{end} step {step} \
                             differs at byte {at}:\n uncached ...{}\n cached   ...{}",
                            around(&w),
                            around(&g)
                        );
                    }
                }
                (w, g) => assert_eq!(
                    format!("{:?}", g.err()),
                    format!("{:?}", w.err()),
                    "seed {seed}, round {round}: {q}"
                ),
            }
            compared += 1;
        }
    }
    let text = cache.metrics_text();
    println!("{compared} answers compared\n{text}");
    let count = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // The comparison means something only if the cache answered.
    assert!(count("raymon_query_range_cache_requests_total{result=\"partial\"}") > 100);
    assert!(count("raymon_query_range_cache_steps_total{source=\"cache\"}") > 10_000);
    assert!(count("raymon_query_range_cache_requests_total{result=\"uncacheable\"}") > 0);
}

#[test]
fn reach_bounds_windows_and_refuses_at() {
    let w = Windows {
        lookback_ms: 300_000,
        default_subquery_step_ms: 60_000,
    };
    let r = |q: &str| reach(&parse_expr(q).unwrap(), w);
    assert_eq!(r("up"), Some((300_000, 0)));
    assert_eq!(r("rate(x[1m] offset 2m)"), Some((180_000, 0)));
    assert_eq!(r("x offset -1m"), Some((240_000, 60_000)));
    assert_eq!(r("max_over_time(x[5m:30s])"), Some((630_000, 0)));
    assert_eq!(r("max_over_time(x[5m:])"), Some((660_000, 0)));
    assert_eq!(r("x @ 100"), None);
    assert_eq!(r("sum(rate(x[1m] @ end()))"), None);
    assert_eq!(r("vector(time())"), Some((0, 0)));
}

#[test]
fn the_cache_stays_within_its_bytes() {
    let head = Arc::new(Head::default());
    let changes = Arc::new(Changes::new());
    let store = Tracked::new(head.clone(), changes.clone());
    let mut app = store.appender();
    for i in 0..50 {
        let l = Labels::from_pairs([("__name__", "x"), ("i", &i.to_string())]);
        for t in 0..200 {
            app.append(0, &l, t * 5_000, t as f64).unwrap();
        }
    }
    app.commit().unwrap();
    let windows = Windows {
        lookback_ms: 300_000,
        default_subquery_step_ms: 60_000,
    };
    let limit = 1_000_000;
    let cache = Arc::new(RangeCache::new(changes, windows, limit, 50_000_000));
    let e = PromqlEngine::new(Engine::default(), head).with_cache(cache.clone());
    for k in 0..20 {
        let q = format!("x + {k}");
        e.range(&q, 0, 1_000_000, 5_000).unwrap();
        let (entries, bytes) = {
            let s = cache.lock();
            (s.entries.len(), s.bytes)
        };
        assert!(bytes <= limit, "{bytes} > {limit}");
        assert!(entries >= 1);
    }
}

#[test]
fn held_steps_hold_until_a_change_reaches_their_windows() {
    let changes = Arc::new(Changes::new());
    let windows = Windows {
        lookback_ms: 300_000,
        default_subquery_step_ms: 60_000,
    };
    let cache = RangeCache::new(changes.clone(), windows, 1 << 20, 50_000_000);
    let held = |q: &str, mark: Mark| {
        cache.unchanged_upto(&parse_expr(q).unwrap(), mark, 0, 15_000, 600_000)
    };
    let mark = cache.mark();
    assert_eq!(held("rate(x[1m])", mark), Some(600_000));
    // A sample at 500 s changes `rate(x[1m])` from the step at 500 s on,
    // and `x offset -1m` from 440 s on; steps on the grid before stay.
    drop(changes.begin(500_000, 500_000));
    assert_eq!(held("rate(x[1m])", mark), Some(495_000));
    assert_eq!(held("x offset -1m", mark), Some(435_000));
    // One before the first step leaves nothing, as does `@` or a mark
    // from another process.
    drop(changes.begin(-10_000, -10_000));
    assert_eq!(held("x", mark), None);
    assert_eq!(held("x @ 100", cache.mark()), None);
    let other = Mark {
        epoch: mark.epoch ^ 1,
        ..cache.mark()
    };
    assert_eq!(held("x", other), None);
    assert_eq!(held("x", cache.mark()), Some(600_000));
}

/// A store of histogram buckets for `n` nodes, every 15 s over an hour,
/// with the cache and the engines that use it and not.
fn buckets(n: usize, max_samples: usize) -> (Tracked, Arc<RangeCache>, PromqlEngine, PromqlEngine) {
    let head = Arc::new(Head::default());
    let changes = Arc::new(Changes::new());
    let store = Tracked::new(head.clone(), changes.clone());
    let mut app = store.appender();
    for node in 0..n {
        for (i, le) in ["0.1", "1", "+Inf"].iter().enumerate() {
            let l = Labels::from_pairs([
                ("__name__", "lat_bucket"),
                ("le", le),
                ("node", &format!("n{node}")),
            ]);
            for t in 0..240 {
                let v = (t * (i + 1) * (node + 1)) as f64;
                app.append(0, &l, t as i64 * 15_000, v).unwrap();
            }
        }
    }
    app.commit().unwrap();
    let opts = EngineOptions {
        max_samples,
        ..EngineOptions::default()
    };
    let windows = Windows {
        lookback_ms: opts.lookback_delta_ms,
        default_subquery_step_ms: opts.default_subquery_step_ms,
    };
    let cache = Arc::new(RangeCache::new(changes, windows, 8 << 20, max_samples));
    let engine = Engine::new(opts);
    let cached = PromqlEngine::new(engine.clone(), head.clone()).with_cache(cache.clone());
    let plain = PromqlEngine::new(engine, head);
    (store, cache, cached, plain)
}

fn counter(cache: &RangeCache, name: &str) -> u64 {
    cache
        .metrics_text()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const HIT: &str = "raymon_query_shared_aggregations_total{result=\"hit\"}";
const EVALUATED: &str = "raymon_query_shared_aggregations_total{result=\"evaluated\"}";

fn same(plain: &PromqlEngine, cached: &PromqlEngine, q: &str, start: i64, end: i64) {
    let want = plain.range(q, start, end, 15_000);
    let got = cached.range(q, start, end, 15_000);
    match (want, got) {
        (Ok(w), Ok(g)) => assert_eq!(
            String::from_utf8(encode_query_value(&g)).unwrap(),
            String::from_utf8(encode_query_value(&w)).unwrap(),
            "{q}"
        ),
        (w, g) => assert_eq!(format!("{:?}", g.err()), format!("{:?}", w.err()), "{q}"),
    }
}

#[test]
fn quantile_panels_share_their_aggregation_until_a_late_sample_reaches_it() {
    let (store, cache, cached, plain) = buckets(4, 50_000_000);
    let panel = |q: f64| format!("histogram_quantile({q}, sum by (le) (rate(lat_bucket[1m])))");
    let (start, end) = (600_000, 3_585_000);
    for q in [0.5, 0.9, 0.99] {
        same(&plain, &cached, &panel(q), start, end);
    }
    assert_eq!(counter(&cache, EVALUATED), 1);
    assert_eq!(counter(&cache, HIT), 2);
    // A late sample inside the window: the shared answer no longer holds,
    // and serving it would differ from the uncached engine.
    let mut app = store.appender();
    let l = Labels::from_pairs([("__name__", "lat_bucket"), ("le", "1"), ("node", "n9")]);
    app.append(0, &l, 2_000_000, 1e6).unwrap();
    app.append(0, &l, 2_010_000, 3e6).unwrap();
    app.commit().unwrap();
    // Panels not asked before find the aggregation's answer stale.
    for q in [0.75, 0.8] {
        same(&plain, &cached, &panel(q), start, end);
    }
    assert_eq!(counter(&cache, EVALUATED), 2);
    assert_eq!(counter(&cache, HIT), 3);
    // Another span is another answer.
    same(&plain, &cached, &panel(0.6), start + 15_000, end);
    assert_eq!(counter(&cache, EVALUATED), 3);
}

#[test]
fn concurrent_panels_evaluate_a_shared_aggregation_once() {
    let (_store, cache, cached, plain) = buckets(40, 50_000_000);
    let q = |i: usize| {
        format!(
            "histogram_quantile(0.{}, sum by (le) (rate(lat_bucket[2m])))",
            i + 1
        )
    };
    let answers: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let cached = &cached;
                let q = q(i);
                s.spawn(move || cached.range(&q, 0, 3_585_000, 15_000).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, got) in answers.iter().enumerate() {
        let want = plain.range(&q(i), 0, 3_585_000, 15_000).unwrap();
        assert_eq!(encode_query_value(got), encode_query_value(&want));
    }
    assert_eq!(counter(&cache, EVALUATED), 1);
    assert_eq!(counter(&cache, HIT), 5);
}

#[test]
fn a_shared_aggregation_fails_max_samples_where_its_evaluation_would() {
    // `a + on(le) a`: the right side is taken from the left's answer while
    // the left's points are held, which an evaluation counts too.
    let a = "sum by (le) (rate(lat_bucket[1m]))";
    let queries = [
        format!("histogram_quantile(0.5, {a})"),
        format!("{a} + on(le) {a}"),
        format!("histogram_quantile(0.9, {a}) * on() group_left count({a})"),
    ];
    for max in (200..4_000).step_by(97) {
        let (_store, _cache, cached, plain) = buckets(2, max);
        for q in &queries {
            same(&plain, &cached, q, 0, 3_585_000);
            same(&plain, &cached, q, 600_000, 1_785_000);
        }
    }
}
