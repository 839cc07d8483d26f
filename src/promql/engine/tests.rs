//! The engine's limits (samples, deadlines, cancellation, slots, budgets)
//! and step semantics (`@`, offsets, subqueries).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::model::{Labels, Matcher};
use crate::promql::parser::parse_expr;
use crate::storage::Appendable;
use crate::storage::{Queryable, SelectHints};
use crate::tsdb::{Head, HeadOptions};

fn head() -> Head {
    let h = Head::new(HeadOptions::default());
    let mut app = h.appender();
    for i in 0..100 {
        let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
        for t in 0..10 {
            app.append(0, &l, t * 15_000, t as f64).unwrap();
        }
    }
    app.commit().unwrap();
    h
}

#[test]
fn max_samples_gives_prometheus_error() {
    let h = head();
    let e = Engine::new(EngineOptions {
        max_samples: 50,
        ..EngineOptions::default()
    });
    let err = e
        .instant(&h, &parse_expr("m").unwrap(), 60_000)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
}

#[test]
fn issue_16_max_samples_counts_what_is_held_at_once() {
    let h = head();
    let limited = |max_samples| {
        Engine::new(EngineOptions {
            max_samples,
            ..EngineOptions::default()
        })
    };
    // A range query's answer is held whole: 100 series x 5 steps.
    let m = parse_expr("m").unwrap();
    assert!(limited(500).range(&h, &m, 0, 60_000, 15_000).is_ok());
    assert_eq!(
        limited(499).range(&h, &m, 0, 60_000, 15_000),
        Err(Error::TooManySamples("query execution"))
    );
    // A subquery's points are held: 100 series x 61 steps of 1 s.
    let sq = parse_expr("max_over_time(m[1m:1s])").unwrap();
    assert!(limited(6_300).instant(&h, &sq, 60_000).is_ok());
    assert_eq!(
        limited(6_000).instant(&h, &sq, 60_000),
        Err(Error::TooManySamples("query execution"))
    );
    // What a node consumed is freed: each sum's 500 input points are
    // gone before the other sum runs, so 500 and change suffice.
    let two = parse_expr("sum(m) + sum(m)").unwrap();
    assert!(limited(520).range(&h, &two, 0, 60_000, 15_000).is_ok());
    // A value per step is refused before it is allocated.
    let huge = parse_expr("max_over_time(vector(1)[30d:1ms])").unwrap();
    assert_eq!(
        limited(1_000_000).instant(&h, &huge, 60_000),
        Err(Error::TooManySamples("query execution"))
    );
}

#[test]
fn issue_16_a_subquery_of_billions_of_steps_stops_at_its_deadline() {
    let h = head();
    let e = Engine::default();
    let expr = parse_expr("max_over_time(m[30d:1ms])").unwrap();
    let started = Instant::now();
    let limits = Limits {
        deadline: Some(started + Duration::from_millis(200)),
        ..Limits::default()
    };
    assert_eq!(
        e.instant_until(&h, &expr, 60_000, limits),
        Err(Error::Timeout("expression evaluation"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // A budget stops it as soon.
    let started = Instant::now();
    let limits = Limits {
        budget: Some(started + Duration::from_millis(1)),
        ..Limits::default()
    };
    assert_eq!(
        e.instant_until(&h, &expr, 60_000, limits),
        Err(Error::OverBudget)
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(e.active_queries(), 0);
}

/// A budgeted first try whose selection is too large for what is left of
/// its budget is told so by storage before the series are taken (the
/// dashboards' large selections took tens of milliseconds on a first try
/// that then started again on a query thread), and answers as over budget,
/// not as a storage error; without a budget the same query answers.
#[test]
fn issue_22_a_budgeted_try_gives_up_a_large_selection_before_taking_it() {
    let h = Head::new(HeadOptions::default());
    let mut app = h.appender();
    for i in 0..3_000 {
        let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
        for t in 0..10 {
            app.append(0, &l, t * 15_000, t as f64).unwrap();
        }
    }
    app.commit().unwrap();
    let e = Engine::default();
    // A range function (one series at a time) and a vector selector (the
    // latest value at each step) both select through storage's walk.
    for q in ["sum(rate(m[1m]))", "sum(m)", "sum(m{i=~\"1.*\"})"] {
        let expr = parse_expr(q).unwrap();
        let limits = Limits {
            budget: Some(Instant::now() + Duration::from_millis(1)),
            ..Limits::default()
        };
        assert_eq!(
            e.range_until(&h, &expr, 60_000, 135_000, 15_000, limits),
            Err(Error::OverBudget),
            "{q}"
        );
        let Value::Matrix(m) = e
            .range_until(&h, &expr, 60_000, 135_000, 15_000, Limits::default())
            .unwrap()
        else {
            panic!("{q}: not a matrix");
        };
        assert_eq!(m.len(), 1, "{q}");
    }
    // Storage gives the selection up before handing over a series; one
    // that fits in what is left is taken as before.
    let q = h.querier(0, 200_000).unwrap();
    let mut handed = 0;
    let mut select = |m: Matcher, left: Duration| {
        let hints = SelectHints {
            budget: Some(Instant::now() + left),
            ..SelectHints::default()
        };
        q.select_prepared(&[m], &hints, &|_| 0, &mut |_, _| {
            handed += 1;
            std::ops::ControlFlow::Continue(())
        })
    };
    let all = Matcher::equal("__name__", "m");
    assert!(matches!(
        select(all, Duration::from_millis(1)),
        Err(crate::storage::Error::OverBudget)
    ));
    assert!(select(Matcher::equal("i", "7"), Duration::from_secs(60)).is_ok());
    assert_eq!(handed, 1);
    assert_eq!(e.active_queries(), 0);
}

#[test]
fn issue_16_a_cancelled_query_stops() {
    let h = head();
    let e = Engine::default();
    let expr = parse_expr("max_over_time(m[30d:1ms])").unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let started = Instant::now();
    std::thread::scope(|s| {
        let run = s.spawn(|| {
            e.instant_until(
                &h,
                &expr,
                60_000,
                Limits {
                    cancel: Some(flag),
                    ..Limits::default()
                },
            )
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(e.active_queries(), 1);
        cancel.store(true, Ordering::Relaxed);
        assert_eq!(
            run.join().unwrap(),
            Err(Error::Canceled("expression evaluation"))
        );
    });
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(e.active_queries(), 0);
}

#[test]
fn queries_wait_for_a_slot_and_time_out_in_the_queue() {
    let h = head();
    let e = Engine::new(EngineOptions {
        max_concurrency: 1,
        timeout: Duration::from_millis(50),
        ..EngineOptions::default()
    });
    let held = e
        .slot(Instant::now() + Duration::from_secs(1), None)
        .unwrap();
    let err = e
        .instant(&h, &parse_expr("m").unwrap(), 60_000)
        .unwrap_err();
    assert_eq!(err.to_string(), "query timed out in query queue");
    drop(held);
    assert!(e.instant(&h, &parse_expr("m").unwrap(), 60_000).is_ok());
}

#[test]
fn a_spent_budget_stops_the_query_and_never_waits_for_a_slot() {
    let h = head();
    let e = Engine::new(EngineOptions {
        max_concurrency: 1,
        ..EngineOptions::default()
    });
    let expr = parse_expr("sum(m)").unwrap();
    let spent = Limits {
        deadline: None,
        budget: Some(Instant::now()),
        cancel: None,
    };
    std::thread::sleep(Duration::from_millis(1));
    assert_eq!(
        e.range_until(&h, &expr, 0, 60_000, 15_000, spent.clone()),
        Err(Error::OverBudget)
    );
    let ample = Limits {
        deadline: None,
        budget: Some(Instant::now() + Duration::from_secs(60)),
        cancel: None,
    };
    assert_eq!(
        e.range_until(&h, &expr, 0, 60_000, 15_000, ample.clone()),
        e.range(&h, &expr, 0, 60_000, 15_000)
    );
    let held = e
        .slot(Instant::now() + Duration::from_secs(1), None)
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        e.instant_until(&h, &expr, 60_000, ample),
        Err(Error::OverBudget)
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    drop(held);
}

/// Counts storage reads.
struct Counting<'a>(&'a Head, std::sync::atomic::AtomicUsize);

impl Queryable for Counting<'_> {
    fn querier(
        &self,
        mint: i64,
        maxt: i64,
    ) -> Result<Box<dyn crate::storage::Querier + '_>, crate::storage::Error> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.querier(mint, maxt)
    }
}

#[test]
fn a_retry_takes_the_read_that_ran_over_the_budget() {
    let h = head();
    let c = Counting(&h, Default::default());
    let reads = || c.1.load(std::sync::atomic::Ordering::Relaxed);
    let e = Engine::default();
    // A range vector is read whole before it is answered.
    let expr = parse_expr("m[1m]").unwrap();
    let want = e.instant(&h, &expr, 60_000);
    // The budget passes during the read (it is already past when the
    // read returns), so the read is stashed and the try stops.
    let soon = || Limits {
        deadline: None,
        budget: Some(Instant::now() + Duration::from_millis(20)),
        cancel: None,
    };
    let slow = Slow(&c);
    assert_eq!(
        e.instant_until(&slow, &expr, 60_000, soon()),
        Err(Error::OverBudget)
    );
    assert_eq!(reads(), 1);
    assert_eq!(e.instant_until(&c, &expr, 60_000, Limits::default()), want);
    assert_eq!(reads(), 1, "the retry read nothing");
    // Nothing is left behind: the next query reads again.
    assert_eq!(e.instant(&c, &expr, 60_000), want);
    assert_eq!(reads(), 2);
    // A streamed selection stops within its budget and keeps nothing:
    // the retry reads again, and answers the same.
    let summed = parse_expr("sum(m)").unwrap();
    let want = e.range(&h, &summed, 0, 60_000, 15_000);
    assert_eq!(
        e.range_until(&slow, &summed, 0, 60_000, 15_000, soon()),
        Err(Error::OverBudget)
    );
    assert_eq!(reads(), 3);
    assert_eq!(e.range(&c, &summed, 0, 60_000, 15_000), want);
    assert_eq!(reads(), 4);
}

/// A store whose reads take 30 ms.
struct Slow<'a>(&'a Counting<'a>);

impl Queryable for Slow<'_> {
    fn querier(
        &self,
        mint: i64,
        maxt: i64,
    ) -> Result<Box<dyn crate::storage::Querier + '_>, crate::storage::Error> {
        std::thread::sleep(Duration::from_millis(30));
        self.0.querier(mint, maxt)
    }
}

#[test]
fn range_queries_reject_range_vectors() {
    let h = head();
    let e = Engine::default();
    let err = e
        .range(&h, &parse_expr("m[5m]").unwrap(), 0, 60_000, 15_000)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
}

/// `a{x="1"}` with value `k` at `k * 10s` for `k` in `0..=10`.
fn ten_second_head() -> Head {
    let h = Head::new(HeadOptions::default());
    let mut app = h.appender();
    let l = Labels::from_pairs([("__name__", "a"), ("x", "1")]);
    for k in 0..=10 {
        app.append(0, &l, k * 10_000, k as f64).unwrap();
    }
    app.commit().unwrap();
    h
}

/// Each result series as its labels and `(t, v)` points.
fn points(v: Value) -> Vec<(String, Vec<(i64, f64)>)> {
    match v {
        Value::Matrix(m) => m
            .into_iter()
            .map(|s| {
                let pts = s.samples.iter().map(|p| (p.t, p.v)).collect();
                (s.labels.to_string(), pts)
            })
            .collect(),
        Value::Vector(vec) => vec
            .into_iter()
            .map(|s| (s.labels.to_string(), vec![(s.t, s.v)]))
            .collect(),
        Value::Scalar { t, v } => vec![(String::new(), vec![(t, v)])],
        other => panic!("unexpected {other:?}"),
    }
}

fn range(h: &Head, q: &str, start: i64, end: i64, step: i64) -> Vec<(String, Vec<(i64, f64)>)> {
    let e = Engine::default();
    points(
        e.range(h, &parse_expr(q).unwrap(), start, end, step)
            .unwrap(),
    )
}

fn instant(h: &Head, q: &str, t: i64) -> Vec<(String, Vec<(i64, f64)>)> {
    let e = Engine::default();
    points(e.instant(h, &parse_expr(q).unwrap(), t).unwrap())
}

fn series(labels: &str, pts: &[(i64, f64)]) -> Vec<(String, Vec<(i64, f64)>)> {
    vec![(labels.to_string(), pts.to_vec())]
}

#[test]
fn at_start_and_end_pin_to_the_range_query_bounds() {
    let h = ten_second_head();
    let a = r#"a{x="1"}"#;
    // The query runs 30s..90s; `start()` is 30s (value 3) and `end()`
    // 90s (value 9) at every step, stamped with the step's own time.
    assert_eq!(
        range(&h, "a @ start()", 30_000, 90_000, 30_000),
        series(a, &[(30_000, 3.0), (60_000, 3.0), (90_000, 3.0)])
    );
    assert_eq!(
        range(&h, "a @ end()", 30_000, 90_000, 30_000),
        series(a, &[(30_000, 9.0), (60_000, 9.0), (90_000, 9.0)])
    );
    // The window [10s, 30s] holds 1, 2 and 3.
    assert_eq!(
        range(
            &h,
            "sum_over_time(a[20s] @ start())",
            30_000,
            90_000,
            30_000
        ),
        series(r#"{x="1"}"#, &[(30_000, 6.0), (60_000, 6.0), (90_000, 6.0)])
    );
    // Inside a subquery, `end()` still means the outer query's end: the
    // window [70s, 90s] holds 7, 8 and 9.
    assert_eq!(
        range(
            &h,
            "max_over_time(sum_over_time(a[20s] @ end())[30s:10s])",
            30_000,
            90_000,
            30_000
        ),
        series(
            r#"{x="1"}"#,
            &[(30_000, 24.0), (60_000, 24.0), (90_000, 24.0)]
        )
    );
}

#[test]
fn subquery_with_at_is_evaluated_at_the_pinned_time() {
    let h = ten_second_head();
    let l = r#"{x="1"}"#;
    // Inner steps 20s, 30s, 40s and 50s (both window ends included).
    assert_eq!(
        instant(&h, "sum_over_time(a[30s:10s] @ 50)", 1_000_000),
        series(l, &[(1_000_000, 14.0)])
    );
    assert_eq!(
        range(&h, "sum_over_time(a[30s:10s] @ 50)", 0, 600_000, 300_000),
        series(l, &[(0, 14.0), (300_000, 14.0), (600_000, 14.0)])
    );
    // The offset applies after `@`: the window is [0s, 30s], 0+1+2+3.
    assert_eq!(
        instant(&h, "sum_over_time(a[30s:10s] @ 50 offset 20s)", 5_000),
        series(l, &[(5_000, 6.0)])
    );
    // Inner steps are aligned to multiples of 15s inside [20s, 50s]:
    // 30s (value 3) and 45s (latest sample 40s, value 4).
    assert_eq!(
        range(&h, "sum_over_time(a[30s:15s] @ 50)", 0, 60_000, 60_000),
        series(l, &[(0, 7.0), (60_000, 7.0)])
    );
    // A selector's own `@` wins over the subquery's steps: 10 steps of 5.
    assert_eq!(
        instant(&h, "sum_over_time((a @ 55)[90s:10s] @ 100)", 0),
        series(r#"{x="1"}"#, &[(0, 50.0)])
    );
}

#[test]
fn negative_offsets_look_ahead() {
    let h = ten_second_head();
    let a = r#"a{x="1"}"#;
    assert_eq!(
        instant(&h, "a offset -20s", 30_000),
        series(a, &[(30_000, 5.0)])
    );
    // At 60s the reference time 120s is past the last sample (100s,
    // value 10), which is still within the lookback.
    assert_eq!(
        range(&h, "a offset -1m", 0, 60_000, 30_000),
        series(a, &[(0, 6.0), (30_000, 9.0), (60_000, 10.0)])
    );
    // The window [30s, 50s] holds 3, 4 and 5.
    assert_eq!(
        instant(&h, "sum_over_time(a[20s] offset -20s)", 30_000),
        series(r#"{x="1"}"#, &[(30_000, 12.0)])
    );
    // `@` first, then the negative offset: reference time 40s.
    assert_eq!(
        range(&h, "a @ 10 offset -30s", 0, 100_000, 100_000),
        series(a, &[(0, 4.0), (100_000, 4.0)])
    );
}

#[test]
fn timestamp_of_a_pinned_selector_is_the_sample_time() {
    let h = ten_second_head();
    let l = r#"{x="1"}"#;
    // The latest sample at or before 55s is the one at 50s.
    assert_eq!(
        instant(&h, "timestamp(a @ 55)", 600_000),
        series(l, &[(600_000, 50.0)])
    );
    assert_eq!(
        range(&h, "timestamp(a @ 55)", 0, 400_000, 200_000),
        series(l, &[(0, 50.0), (200_000, 50.0), (400_000, 50.0)])
    );
    // With both `@` and an offset, Prometheus 2.42 looks up at the `@`
    // time within the window storage was asked for, `[T - o - 5m, T - o]`,
    // and keeps the lookback from `T`. Here the latest sample at or
    // before 45s is the one at 40s.
    assert_eq!(
        instant(&h, "timestamp(a @ 55 offset 10s)", 0),
        series(l, &[(0, 40.0)])
    );
    // A negative offset does not move the lookup past 55s.
    assert_eq!(
        range(&h, "timestamp(a @ 55 offset -20s)", 0, 60_000, 60_000),
        series(l, &[(0, 50.0), (60_000, 50.0)])
    );
    // The latest sample at or before 95s (90s) is older than 395s - 5m.
    assert_eq!(instant(&h, "timestamp(a @ 395 offset 5m)", 0), Vec::new());
    // The latest at or before 100s is exactly 400s - 5m old: still in.
    assert_eq!(
        instant(&h, "timestamp(a @ 400 offset 5m)", 0),
        series(l, &[(0, 100.0)])
    );
    // Reference time 30s + 15s = 45s.
    assert_eq!(
        instant(&h, "timestamp(a offset -15s)", 30_000),
        series(l, &[(30_000, 40.0)])
    );
    // The outer timestamp() sees the inner result stamped with the
    // evaluation time, as in Prometheus.
    assert_eq!(
        instant(&h, "timestamp(timestamp(a @ 55))", 600_000),
        series(l, &[(600_000, 600.0)])
    );
}

/// A range function over a selection large enough for storage to prepare
/// it on two threads gives each series the points that selecting that
/// series alone (prepared on the caller's thread) gives, bit for bit, with
/// counter resets, NaN, stale markers and gaps; an error made on either
/// thread fails the query as it does on one.
#[test]
fn range_functions_over_large_selections_equal_one_series_at_a_time() {
    use crate::model::STALE_NAN;
    let mut rng = crate::testing::Rng::seeded_by_clock(
        "range_functions_over_large_selections_equal_one_series_at_a_time",
    );
    let seed = rng.0;
    let h = Head::new(HeadOptions::default());
    let mut app = h.appender();
    let n = 600;
    for i in 0..n {
        let l = Labels::from_pairs([("__name__", "big"), ("i", &format!("{i:03}"))]);
        let mut v = 0.0;
        let mut t = (rng.next() % 20_000) as i64;
        while t < 900_000 {
            v = match rng.next() % 60 {
                // Counter resets in some series only.
                0 if i % 3 == 0 => 0.0,
                1 => f64::NAN,
                2 => STALE_NAN,
                _ => v + (rng.next() % 100) as f64 / 8.0,
            };
            app.append(0, &l, t, v).unwrap();
            t += if rng.next().is_multiple_of(50) {
                300_000
            } else {
                1_000 + (rng.next() % 15_000) as i64
            };
        }
    }
    app.commit().unwrap();
    let e = Engine::default();
    let bits = |v: Value| -> Vec<(String, Vec<(i64, u64)>)> {
        let Value::Matrix(m) = v else {
            panic!("not a matrix: {v:?}");
        };
        m.into_iter()
            .map(|s| {
                let p = s.samples.iter().map(|p| (p.t, p.v.to_bits())).collect();
                (s.labels.to_string(), p)
            })
            .collect()
    };
    let mut compared = 0;
    for f in [
        "rate(big[1m])",
        "increase(big[2m])",
        "delta(big[1m])",
        "max_over_time(big[3m])",
        "avg_over_time(big[1m] offset 30s)",
        "holt_winters(big[2m], 0.5, 0.5)",
        "quantile_over_time(0.9, big[1m])",
    ] {
        let whole = bits(
            e.range(&h, &parse_expr(f).unwrap(), 0, 900_000, 15_000)
                .unwrap(),
        );
        let mut alone = Vec::new();
        for i in 0..n {
            let one = f.replace("big[", &format!("big{{i=\"{i:03}\"}}["));
            let v = e.range(&h, &parse_expr(&one).unwrap(), 0, 900_000, 15_000);
            alone.extend(bits(v.unwrap()));
        }
        alone.sort();
        compared += alone.len();
        assert_eq!(whole, alone, "seed {seed}: {f}");
    }
    assert!(compared > n * 5, "only {compared} series compared");
    let err = e.range(
        &h,
        &parse_expr("sum(holt_winters(big[2m], 2, 0.5))").unwrap(),
        0,
        900_000,
        15_000,
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "invalid smoothing factor. Expected: 0 < sf < 1, got: 2.000000"
    );
}

/// Result series as labels and `(t, v)` points.
type Points = Vec<(String, Vec<(i64, f64)>)>;

fn run(e: &Engine, h: &Head, q: &str) -> Result<Points, Error> {
    e.range(h, &parse_expr(q).unwrap(), 0, 60_000, 15_000)
        .map(points)
}

#[test]
fn issue_22_an_empty_side_matches_nothing_before_duplicates_are_looked_for() {
    let h = head();
    let e = Engine::default();
    // 2.42's `VectorBinop` returns nothing for an empty side before it
    // looks for duplicates on the "one" side.
    assert_eq!(run(&e, &h, "nothing * on() group_left m"), Ok(Vec::new()));
    assert_eq!(run(&e, &h, "m * on() group_left nothing"), Ok(Vec::new()));
    let both = run(&e, &h, "m * on() group_left m").unwrap_err();
    assert!(
        both.to_string()
            .contains("found duplicate series for the match group"),
        "{both}"
    );
}

#[test]
fn issue_22_an_empty_left_side_skips_a_right_side_that_cannot_fail() {
    let h = head();
    {
        // `n{i="0"}` is `m{i="0"}` without the metric name.
        let mut app = h.appender();
        let l = Labels::from_pairs([("__name__", "n"), ("i", "0")]);
        app.append(0, &l, 0, 1.0).unwrap();
        app.commit().unwrap();
    }
    // The right-hand sides below hold 100 series x 5 steps: evaluated,
    // they would run over this limit.
    let small = Engine::new(EngineOptions {
        max_samples: 200,
        ..EngineOptions::default()
    });
    let too_many = Err(Error::TooManySamples("query execution"));
    for q in [
        "nothing * on(i) group_left max by (i) (m * 0 + 1)",
        "nothing / on(i) (-(sum by (i) (m)))",
        "nothing and m > 1",
        "nothing unless (m == bool 1)",
    ] {
        assert_eq!(run(&small, &h, q), Ok(Vec::new()), "{q}");
        assert_eq!(run(&small, &h, &q.replace("nothing", "m")), too_many, "{q}");
    }
    // `or` answers with its right-hand side.
    assert_eq!(run(&small, &h, "nothing or m"), too_many);
    // A right-hand side that may fail is evaluated, and its error stands.
    let e = Engine::default();
    for (q, error) in [
        (
            "nothing * on(i) (m * on() group_left m)",
            "found duplicate series for the match group",
        ),
        (
            r#"nothing * on(i) ({__name__=~"m|n"} * 2)"#,
            "vector cannot contain metrics with the same labelset",
        ),
        (
            r#"nothing * on(i) (-{__name__=~"m|n"})"#,
            "vector cannot contain metrics with the same labelset",
        ),
        (
            "nothing * on(i) topk(scalar(nothing), m)",
            "Scalar value NaN overflows int64",
        ),
    ] {
        let err = run(&e, &h, q).unwrap_err();
        assert!(err.to_string().contains(error), "{q}: {err}");
    }
}

/// A store that reads every sample in the range whatever a select's hints
/// say (the trait's default), to compare hinted selects against.
struct Unhinted<'a>(&'a Head);

struct UnhintedQuerier<'a>(Box<dyn crate::storage::Querier + 'a>);

impl Queryable for Unhinted<'_> {
    fn querier(
        &self,
        mint: i64,
        maxt: i64,
    ) -> Result<Box<dyn crate::storage::Querier + '_>, crate::storage::Error> {
        Ok(Box::new(UnhintedQuerier(self.0.querier(mint, maxt)?)))
    }
}

impl crate::storage::Querier for UnhintedQuerier<'_> {
    fn select(
        &self,
        matchers: &[crate::model::Matcher],
    ) -> Result<Vec<crate::storage::Series>, crate::storage::Error> {
        self.0.select(matchers)
    }

    fn label_names(
        &self,
        matchers: &[crate::model::Matcher],
    ) -> Result<Vec<String>, crate::storage::Error> {
        self.0.label_names(matchers)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[crate::model::Matcher],
    ) -> Result<Vec<String>, crate::storage::Error> {
        self.0.label_values(name, matchers)
    }
}

/// Latest-value selections hint the store that only the latest sample at
/// or before their first step is needed of the earlier ones; with the
/// head leaving out its older chunks, every answer stays what reading
/// everything gives: offsets either way, `@`, `timestamp`, subqueries,
/// gaps longer than the lookback and stale markers.
#[test]
fn issue_22_hinted_latest_selections_answer_as_reading_everything() {
    let h = Head::new(HeadOptions::default());
    let mut app = h.appender();
    for i in 0..3 {
        let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
        let mut t = 0;
        for k in 0..1500i64 {
            // Irregular: mostly 1 to 8 s apart, now and then 6 minutes.
            t += if (k * 7 + i) % 97 == 0 {
                360_000
            } else {
                1_000 + (k * 13 + i * 5) % 7_000
            };
            let v = if (k + i) % 211 == 0 {
                f64::from_bits(crate::model::STALE_NAN_BITS)
            } else {
                (k * (i + 1)) as f64
            };
            app.append(0, &l, t, v).unwrap();
        }
    }
    app.commit().unwrap();
    let plain = Unhinted(&h);
    let queries = [
        "m",
        "sum(m)",
        "m offset 2m",
        "m offset -3m",
        "timestamp(m)",
        "m @ AT",
        "timestamp(m @ AT offset -4m)",
        "timestamp(m @ AT offset -9m)",
        "max_over_time(m[10m:45s])",
        "m - m offset 1m",
    ];
    for lookback_ms in [5 * 60_000, 30_000] {
        let e = Engine::new(EngineOptions {
            lookback_delta_ms: lookback_ms,
            ..EngineOptions::default()
        });
        for q in queries {
            for start in (0..12_000_000).step_by(137_000) {
                // `@` a little after the range's start, in seconds.
                let expr = parse_expr(&q.replace("AT", &(start / 1000 + 200).to_string())).unwrap();
                let (end, step) = (start + 600_000, 15_000);
                let want = e.range(&plain, &expr, start, end, step);
                assert_eq!(
                    e.range(&h, &expr, start, end, step),
                    want,
                    "{q} from {start}"
                );
                let want = e.instant(&plain, &expr, start);
                assert_eq!(e.instant(&h, &expr, start), want, "{q} at {start}");
            }
        }
    }
}
