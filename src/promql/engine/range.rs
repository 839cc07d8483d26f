//! Range-vector functions (`rate`, `increase`, `*_over_time`, ...) evaluated
//! one series at a time: a matrix selector's series are decoded, walked by a
//! sliding window over all steps and dropped before the next is read, so a
//! function over a hundred thousand series holds one series' samples and
//! its results, never every sample of every series.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::aggregate::quantile;
use super::eval::Clock;
use super::functions::{
    RateShape, absent_labels, absent_result, avg_over_time, changes, holt_winters, instant_value,
    linear_regression, rate_of_shape, unwrap_parens, variance, window_shape,
};
use super::sliding::{Extreme, Runs, SlidingWindow, fold_extreme, fold_extreme_from};
use super::{Error, Evaluator, RangeArg, StepSeries, Val, WORK_PER_CHECK};
use crate::model::{Labels, METRIC_NAME, MatchOp, Sample, is_stale_nan};
use crate::promql::parser::{Call, Expr};
use crate::storage::{SelectHints, Series};

/// Where a range function's windows sit relative to the steps.
#[derive(Clone, Copy, PartialEq)]
struct Windows {
    range: i64,
    offset: i64,
    at: Option<i64>,
}

/// What making one series' points takes: nothing of the evaluator but
/// copies, so that storage's decoding thread can make them too.
struct Job<'a> {
    func: RangeFn,
    scalars: &'a [Vec<f64>],
    windows: Windows,
    start: i64,
    interval: i64,
    steps: usize,
    clock: Clock<'a>,
}

impl Job<'_> {
    fn ts(&self, step: usize) -> i64 {
        self.start + step as i64 * self.interval
    }
}

thread_local! {
    /// The points of the series a thread is preparing, before they replace
    /// its samples: one buffer a thread instead of one a series.
    static POINTS: RefCell<Vec<Sample>> = const { RefCell::new(Vec::new()) };
}

/// Evaluates the range function `c` whose range argument is `args[idx]`.
pub(super) fn range_function(ev: &mut Evaluator<'_>, c: &Call, idx: usize) -> Result<Val, Error> {
    let name = c.func.name;
    // Only `absent_over_time` needs to know the steps that had a value.
    let mut present = if name == "absent_over_time" {
        vec![false; ev.reserve_steps()?]
    } else {
        Vec::new()
    };
    let mut out: Vec<StepSeries> = Vec::new();
    each(ev, c, idx, &mut present, None, |_, labels, points| {
        out.push(StepSeries {
            labels,
            points: points.to_vec(),
        });
        Ok(())
    })?;
    if name == "absent_over_time" {
        let labels = match unwrap_parens(&c.args[idx]) {
            e @ Expr::MatrixSelector(_) => absent_labels(e),
            _ => Labels::new(),
        };
        return Ok(absent_result(ev, &present, labels));
    }
    let mut seen = HashSet::with_capacity(out.len());
    for s in &out {
        if !seen.insert(&s.labels) {
            return Err(duplicate());
        }
    }
    Ok(Val::Vector(out))
}

pub(super) fn duplicate() -> Error {
    Error::Execution("vector cannot contain metrics with the same labelset".into())
}

/// Whether the range function `c` over `args[idx]` can hand out two
/// results with the same labels: it drops the metric name, and its
/// selector does not fix one.
pub(super) fn may_collide(c: &Call, idx: usize) -> bool {
    if c.func.name == "last_over_time" {
        return false;
    }
    match unwrap_parens(&c.args[idx]) {
        Expr::MatrixSelector(ms) => !ms
            .vs
            .matchers
            .iter()
            .any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal),
        _ => true,
    }
}

/// Hands `f` each result series of the range function `c` (range argument
/// `args[idx]`) as it is made, in the order of the input series; marks in
/// `present` the steps that had a window with samples.
///
/// The points are lent: one buffer serves every series, so an aggregation
/// that folds them in allocates nothing per series for them. With
/// `labels`, a series selected by a matrix selector may come with only
/// the labels so named ([`SelectHints::labels`]).
pub(super) fn each(
    ev: &mut Evaluator<'_>,
    c: &Call,
    idx: usize,
    present: &mut [bool],
    labels: Option<Arc<[String]>>,
    mut f: impl FnMut(&mut Evaluator<'_>, Labels, &[Sample]) -> Result<(), Error>,
) -> Result<(), Error> {
    let name = c.func.name;
    let func = RangeFn::of(name)?;
    let mut points = Vec::with_capacity(ev.steps());
    let mut scalars: Vec<Vec<f64>> = Vec::new();
    for (i, a) in c.args.iter().enumerate() {
        if i != idx {
            scalars.push(ev.eval_scalar(a)?);
        }
    }
    let (start, interval, steps, clock) = (ev.start, ev.interval, ev.steps(), ev.clock());
    let job = |windows: Windows, scalars| Job {
        func,
        scalars,
        windows,
        start,
        interval,
        steps,
        clock,
    };
    // A step of a series is a unit of work for the deadline's checks.
    let work = u32::try_from(ev.steps()).unwrap_or(u32::MAX);
    let keep_name = name == "last_over_time";
    // The series' own labels, without the name: nothing is copied.
    let labels_of = |l: Labels| {
        if keep_name {
            return l;
        }
        let mut pairs = l.into_vec();
        pairs.retain(|p| p.name != METRIC_NAME);
        Labels::from_sorted(pairs)
    };
    match unwrap_parens(&c.args[idx]) {
        Expr::MatrixSelector(ms) => {
            let at = ev.at_time(ms.vs.at);
            let (lo, hi) = ev.ref_span(at, ms.vs.offset);
            let w = Windows {
                range: ms.range_ms,
                offset: ms.vs.offset,
                at,
            };
            let job = job(w, &scalars);
            let (mint, matchers) = (lo - ms.range_ms, &ms.vs.matchers);
            if !present.is_empty() {
                // `absent_over_time` marks steps as it goes: made here.
                return ev.each_series(matchers, mint, hi, |ev, mut s| {
                    ev.tick(work)?;
                    s.samples.retain(|p| !is_stale_nan(p.v));
                    // The decoded samples are held while the points are made.
                    let raw = s.samples.len();
                    ev.add_samples(raw)?;
                    eval_points(&job, &s.samples, present, &mut points)?;
                    ev.samples -= raw;
                    if points.is_empty() {
                        return Ok(());
                    }
                    ev.add_samples(points.len())?;
                    f(ev, labels_of(s.labels), &points)
                });
            }
            // The points replace each series' samples where it is decoded;
            // an error there is handed over here.
            let failed: Mutex<Option<Error>> = Mutex::new(None);
            let prep = |s: &mut Series| -> usize {
                s.samples.retain(|p| !is_stale_nan(p.v));
                let raw = s.samples.len();
                POINTS.with_borrow_mut(|points| {
                    if let Err(e) = eval_points(&job, &s.samples, &mut [], points) {
                        points.clear();
                        failed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert(e);
                    }
                    // The points become the series' samples by a swap, not a
                    // copy; the decoded buffer serves the next series' points.
                    s.samples.clear();
                    std::mem::swap(&mut s.samples, points);
                    if points.capacity() > KEPT {
                        *points = Vec::new();
                    }
                });
                raw
            };
            let hints = SelectHints {
                labels,
                ..SelectHints::default()
            };
            ev.each_prepared(matchers, mint, hi, &hints, &prep, |ev, s, raw| {
                if let Some(e) = failed.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    return Err(e);
                }
                ev.tick(work)?;
                // The decoded samples were held while the points were made.
                ev.add_samples(raw)?;
                ev.samples -= raw;
                if s.samples.is_empty() {
                    return Ok(());
                }
                ev.add_samples(s.samples.len())?;
                f(ev, labels_of(s.labels), &s.samples)
            })
        }
        Expr::Subquery(sq) => {
            let input = ev.range_input(&RangeArg::Subquery(sq))?;
            let w = Windows {
                range: input.range,
                offset: input.offset,
                at: input.at,
            };
            let job = job(w, &scalars);
            let mut loaded = 0usize;
            for (labels, samples) in input.series {
                ev.tick(work)?;
                let most = eval_points(&job, &samples, present, &mut points)?;
                loaded = loaded.max(most);
                if points.is_empty() {
                    continue;
                }
                ev.add_samples(points.len())?;
                f(ev, labels_of(labels), &points)?;
            }
            // The largest window looked at, as Prometheus counts it.
            ev.add_samples(loaded)
        }
        _ => Err(Error::Execution(format!(
            "expected range vector in call to {name}"
        ))),
    }
}

/// A range function, resolved from its name once per call rather than
/// once per step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Changes,
    Resets,
    Deriv,
    PredictLinear,
    HoltWinters,
    Avg,
    Count,
    Last,
    /// `present_over_time` and `absent_over_time`: 1 where a window has samples.
    Present,
    Max,
    Min,
    Sum,
    Quantile,
    Stddev,
    Stdvar,
}

impl RangeFn {
    fn of(name: &str) -> Result<RangeFn, Error> {
        use RangeFn::*;
        Ok(match name {
            "rate" => Rate,
            "increase" => Increase,
            "delta" => Delta,
            "irate" => Irate,
            "idelta" => Idelta,
            "changes" => Changes,
            "resets" => Resets,
            "deriv" => Deriv,
            "predict_linear" => PredictLinear,
            "holt_winters" => HoltWinters,
            "avg_over_time" => Avg,
            "count_over_time" => Count,
            "last_over_time" => Last,
            "present_over_time" | "absent_over_time" => Present,
            "max_over_time" => Max,
            "min_over_time" => Min,
            "sum_over_time" => Sum,
            "quantile_over_time" => Quantile,
            "stddev_over_time" => Stddev,
            "stdvar_over_time" => Stdvar,
            other => {
                return Err(Error::Execution(format!(
                    "function {other} is not implemented"
                )));
            }
        })
    }
}

/// The points of the job's function over one series' samples at every
/// step, into `points` (cleared first); returns the most samples one
/// window held.
fn eval_points(
    job: &Job<'_>,
    samples: &[Sample],
    present: &mut [bool],
    points: &mut Vec<Sample>,
) -> Result<usize, Error> {
    SCRATCH.with_borrow_mut(|(plan, runs)| {
        plan.prepare(job, samples)?;
        let loaded = eval_points_with(job, samples, present, points, plan, runs);
        // A thread keeps what a dashboard's series take, not the largest
        // series it ever saw.
        if plan.times.capacity().max(plan.bounds.capacity()) > KEPT {
            *plan = Plan::default();
        }
        if runs.capacity() > KEPT {
            *runs = Runs::default();
        }
        loaded
    })
}

/// The most samples or steps a thread's [`Plan`] and [`Runs`] keep between
/// series.
const KEPT: usize = 1 << 16;

thread_local! {
    /// The windows of the last sample times a thread evaluated, and the
    /// breaks of the series it is evaluating.
    static SCRATCH: RefCell<(Plan, Runs)> = RefCell::new((Plan::default(), Runs::default()));
}

/// Every step's window over one series' sample times, and for `rate`,
/// `increase` and `delta` the windows' shapes. Series sampled at the same
/// times (every series of one scrape target) share them: a run of such
/// series finds the windows once, and each of its steps then reads two
/// positions instead of sliding the window and dividing.
#[derive(Default)]
struct Plan {
    /// What the windows were found for: the job's function, windows and
    /// steps, and the samples' times.
    made_for: Option<PlanKey>,
    times: Vec<i64>,
    /// The samples `lo..hi` in each step's window.
    bounds: Vec<(usize, usize)>,
    /// Each step's window shape where it holds two samples or more (rate
    /// functions only).
    shapes: Vec<RateShape>,
}

/// What a [`Plan`]'s windows depend on besides the sample times.
#[derive(Clone, Copy, PartialEq)]
struct PlanKey {
    func: RangeFn,
    windows: Windows,
    start: i64,
    interval: i64,
    steps: usize,
}

impl Plan {
    /// Finds the windows of `samples`' times, unless the last series' times
    /// were the same.
    fn prepare(&mut self, job: &Job<'_>, samples: &[Sample]) -> Result<(), Error> {
        let w = &job.windows;
        let key = PlanKey {
            func: job.func,
            windows: *w,
            start: job.start,
            interval: job.interval,
            steps: job.steps,
        };
        if self.made_for == Some(key)
            && self.times.len() == samples.len()
            && samples.iter().zip(&self.times).all(|(p, &t)| p.t == t)
        {
            return Ok(());
        }
        self.made_for = None;
        self.times.clear();
        self.times.extend(samples.iter().map(|p| p.t));
        self.bounds.clear();
        self.shapes.clear();
        let shaped = matches!(job.func, RangeFn::Rate | RangeFn::Increase | RangeFn::Delta);
        let mut win = SlidingWindow::default();
        for step in 0..job.steps {
            if step % WORK_PER_CHECK as usize == WORK_PER_CHECK as usize - 1 {
                job.clock.check()?;
            }
            let refr = w.at.unwrap_or(job.ts(step)) - w.offset;
            // Without `@` the windows only move forward.
            let span = if w.at.is_none() {
                win.advance(samples, refr - w.range, refr)
            } else {
                win.slide(samples, refr - w.range, refr)
            };
            if shaped {
                self.shapes.push(if span.len() >= 2 {
                    window_shape(
                        &samples[span.clone()],
                        refr - w.range,
                        refr,
                        job.func == RangeFn::Rate,
                        w.range,
                    )
                } else {
                    RateShape::default()
                });
            }
            self.bounds.push((span.start, span.end));
        }
        self.made_for = Some(key);
        Ok(())
    }
}

/// [`eval_points`] over the windows of `plan`, made for these samples'
/// times.
fn eval_points_with(
    job: &Job<'_>,
    samples: &[Sample],
    present: &mut [bool],
    points: &mut Vec<Sample>,
    plan: &Plan,
    runs: &mut Runs,
) -> Result<usize, Error> {
    use RangeFn::*;
    let (func, scalars, input) = (job.func, job.scalars, &job.windows);
    points.clear();
    let mut loaded = 0usize;
    // Windows that overlap keep a running extreme across steps.
    let overlap = job.steps > 1 && input.range > job.interval;
    let mut extreme = match func {
        Max if overlap => Some(Extreme::new(true)),
        Min if overlap => Some(Extreme::new(false)),
        _ => None,
    };
    // Counter resets, or the rises and falls of the values, counted once
    // per series: a step then tells from two reads whether its window has a
    // reset to add in (most have none), or whether its extreme is simply
    // its first or last value (a counter's window always rises).
    let mut resets = false;
    match func {
        Rate | Increase => {
            // Kind 1 is no run of values: always broken, so that a series
            // with resets has them counted for each window.
            runs.count(samples, |a, b| [b < a, true]);
            resets = !runs.none(0);
        }
        Max | Min => runs.count(samples, super::sliding::extreme_breaks),
        _ => {}
    }
    debug_assert_eq!(plan.bounds.len(), job.steps);
    if matches!(func, Max | Min) && present.is_empty() {
        // A series that only rises (a bucket, a counter) or only falls has
        // every window's extreme at its first or last sample, so a step
        // reads one sample (the general loop below took about 65
        // instructions a step for it).
        let monotonic = runs.none(0) || runs.none(1);
        let last = (func == Max) == runs.none(0);
        if monotonic {
            // In a loop of its own, without the last window that the fold
            // below keeps for the windows that keep their start.
            points.reserve(plan.bounds.len());
            for (step, &(lo, hi)) in plan.bounds.iter().enumerate() {
                if step % WORK_PER_CHECK as usize == WORK_PER_CHECK as usize - 1 {
                    job.clock.check()?;
                }
                if lo >= hi {
                    continue;
                }
                loaded = loaded.max(hi - lo);
                let i = if last { hi - 1 } else { lo };
                points.push(Sample {
                    t: job.ts(step),
                    v: samples[i].v,
                });
            }
            return Ok(loaded);
        }
        // The last window's bounds and value.
        let mut kept: Option<(usize, usize, f64)> = None;
        for (step, &(lo, hi)) in plan.bounds.iter().enumerate() {
            if step % WORK_PER_CHECK as usize == WORK_PER_CHECK as usize - 1 {
                job.clock.check()?;
            }
            if lo >= hi {
                continue;
            }
            loaded = loaded.max(hi - lo);
            let v = match kept {
                // The window kept its start (one as long as the query's
                // data, `max_over_time(x[14d])` on an hour): the fold goes
                // on from the last step's value over the samples added
                // since, as Prometheus's fold over the whole window would.
                Some((klo, khi, v)) if klo == lo && khi <= hi => {
                    fold_extreme_from(v, &samples[khi..hi], func == Max)
                }
                _ => extreme_of(func, samples, lo..hi, runs, extreme.as_mut()),
            };
            kept = Some((lo, hi, v));
            points.push(Sample { t: job.ts(step), v });
        }
        return Ok(loaded);
    }
    if matches!(func, Rate | Increase | Delta) && present.is_empty() {
        // The dashboards' most common function in a loop of its own: the
        // general loop's dispatch per step cost as much as the rate.
        debug_assert_eq!(plan.shapes.len(), job.steps);
        let counter = func != Delta;
        for (step, (&(lo, hi), shape)) in plan.bounds.iter().zip(&plan.shapes).enumerate() {
            if step % WORK_PER_CHECK as usize == WORK_PER_CHECK as usize - 1 {
                job.clock.check()?;
            }
            loaded = loaded.max(hi.saturating_sub(lo));
            if hi < lo + 2 {
                continue;
            }
            let ts = job.ts(step);
            let refr = input.at.unwrap_or(ts) - input.offset;
            let v = rate_of_shape(
                &samples[lo..hi],
                refr - input.range,
                refr,
                counter.then(|| resets && !runs.unbroken(&(lo..hi), 0)),
                func == Rate,
                input.range,
                shape,
            );
            points.push(Sample { t: ts, v });
        }
        return Ok(loaded);
    }
    for (step, &(lo, hi)) in plan.bounds.iter().enumerate() {
        if step % WORK_PER_CHECK as usize == WORK_PER_CHECK as usize - 1 {
            job.clock.check()?;
        }
        if lo >= hi {
            continue;
        }
        let ts = job.ts(step);
        let refr = input.at.unwrap_or(ts) - input.offset;
        let span = lo..hi;
        let w = &samples[lo..hi];
        loaded = loaded.max(w.len());
        if let Some(p) = present.get_mut(step) {
            *p = true;
        }
        let arg = |i: usize| scalars.get(i).map_or(f64::NAN, |s| s[step]);
        let v = match func {
            Rate | Increase | Delta => (w.len() >= 2).then(|| {
                rate_of_shape(
                    w,
                    refr - input.range,
                    refr,
                    (func != Delta).then(|| resets && !runs.unbroken(&span, 0)),
                    func == Rate,
                    input.range,
                    &plan.shapes[step],
                )
            }),
            Irate => instant_value(w, true),
            Idelta => instant_value(w, false),
            Changes => Some(changes(w)),
            Resets => Some(w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64),
            Deriv => (w.len() >= 2).then(|| linear_regression(w, w[0].t).0),
            PredictLinear => (w.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(w, ts);
                slope * arg(0) + intercept
            }),
            HoltWinters => holt_winters(w, arg(0), arg(1))?,
            Avg => Some(avg_over_time(w)),
            Count => Some(w.len() as f64),
            Last => w.last().map(|p| p.v),
            Present => Some(1.0),
            Max | Min => Some(extreme_of(func, samples, span, runs, extreme.as_mut())),
            Sum => Some(w.iter().map(|p| p.v).sum()),
            Quantile => {
                let mut vals: Vec<f64> = w.iter().map(|p| p.v).collect();
                Some(quantile(arg(0), &mut vals))
            }
            Stddev => Some(variance(w).sqrt()),
            Stdvar => Some(variance(w)),
        };
        if let Some(v) = v {
            points.push(Sample { t: ts, v });
        }
    }
    Ok(loaded)
}

/// `max_over_time` (`func` `Max`) or `min_over_time` of the non-empty
/// window `span` of `samples`: from the rises and falls `runs` counted,
/// else from the running extreme, else folded.
fn extreme_of(
    func: RangeFn,
    samples: &[Sample],
    span: std::ops::Range<usize>,
    runs: &Runs,
    extreme: Option<&mut Extreme>,
) -> f64 {
    let w = &samples[span.clone()];
    if runs.unbroken(&span, 0) {
        // A rise: the fold's maximum is the last value, its minimum
        // the first.
        if func == RangeFn::Max {
            w[w.len() - 1].v
        } else {
            w[0].v
        }
    } else if runs.unbroken(&span, 1) {
        if func == RangeFn::Max {
            w[0].v
        } else {
            w[w.len() - 1].v
        }
    } else {
        match extreme {
            Some(e) => e.value(samples, span),
            None => fold_extreme(w, func == RangeFn::Max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::engine::functions::extrapolated_rate;
    use crate::promql::engine::window;

    /// Random samples: counters that mostly rise (by whole and fractional
    /// steps, with resets, flat runs, `0` against `-0`), gauges, NaN runs
    /// and ±Inf, on grid-aligned and jittered times with gaps.
    fn series(rnd: &mut impl FnMut() -> u64) -> Vec<Sample> {
        let mut out = Vec::new();
        let (mut t, mut v) = ((rnd() % 30_000) as i64, (rnd() % 3) as f64);
        let gauge = rnd().is_multiple_of(4);
        let jitter = rnd().is_multiple_of(2);
        for _ in 0..(rnd() % 600) {
            out.push(Sample { t, v });
            t += match rnd() % 40 {
                0 => 300_000,
                1 => 1,
                _ => 10_000 + if jitter { (rnd() % 3_000) as i64 } else { 0 },
            };
            v = match rnd() % 60 {
                0 => 0.0,
                1 => -0.0,
                2 => f64::NAN,
                3 => f64::INFINITY,
                4 => f64::NEG_INFINITY,
                5 => v - 1.0,
                6..=20 => v,
                _ if gauge => (rnd() % 1_000) as f64 / 7.0 - 50.0,
                _ => v + (rnd() % 9) as f64 * 0.1,
            };
            if v.is_nan() && rnd().is_multiple_of(2) {
                // Runs of NaN alone, so windows of nothing else occur.
                for _ in 0..(rnd() % 20) {
                    out.push(Sample { t, v });
                    t += 10_000;
                }
            }
        }
        out
    }

    /// Each step's value from scratch: the window found by bisection, the
    /// extreme folded over all of it, and `rate` with the reset loop run
    /// over every window, as Prometheus does.
    fn from_scratch(func: RangeFn, samples: &[Sample], range: i64, refr: i64) -> Option<f64> {
        let w = window(samples, refr - range, refr);
        if w.is_empty() {
            return None;
        }
        match func {
            RangeFn::Max | RangeFn::Min => Some(fold_extreme(w, func == RangeFn::Max)),
            RangeFn::Rate | RangeFn::Increase => extrapolated_rate(
                w,
                refr - range,
                refr,
                Some(true),
                func == RangeFn::Rate,
                range,
            ),
            _ => unreachable!(),
        }
    }

    /// The per-series shortcuts (windows without a reset, extremes of
    /// windows that only rise or only fall, windows that only move forward)
    /// give the bits of the computation from scratch at every step: resets
    /// and NaN at a window's edges, one sample in a window, gaps longer
    /// than the range, offsets and `@`.
    #[test]
    fn shortcuts_over_the_steps_change_no_bit() {
        let mut rng =
            crate::testing::Rng::seeded_by_clock("shortcuts_over_the_steps_change_no_bit");
        let seed = rng.0;
        let mut rnd = move || rng.next();
        let clock = Clock::unbounded();
        let mut compared = 0usize;
        let mut points = Vec::new();
        for _ in 0..300 {
            let samples = series(&mut rnd);
            // 14 days: every window keeps its start, as on a dashboard's
            // `max_over_time(x[$__range])` of a long range.
            let range =
                [15_000, 30_000, 60_000, 120_000, 3_600_000, 1_209_600_000][(rnd() % 6) as usize];
            let interval = [1_000, 15_000, 60_000][(rnd() % 3) as usize];
            let offset = [0, 0, 45_000][(rnd() % 3) as usize];
            let at = rnd().is_multiple_of(6).then(|| (rnd() % 3_000_000) as i64);
            let start = (rnd() % 60_000) as i64;
            let steps = 1 + (rnd() % 300) as usize;
            for func in [RangeFn::Max, RangeFn::Min, RangeFn::Rate, RangeFn::Increase] {
                let job = Job {
                    func,
                    scalars: &[],
                    windows: Windows { range, offset, at },
                    start,
                    interval,
                    steps,
                    clock,
                };
                eval_points(&job, &samples, &mut [], &mut points).unwrap();
                let mut got = points.iter().peekable();
                for step in 0..steps {
                    let ts = job.ts(step);
                    let refr = at.unwrap_or(ts) - offset;
                    let want = from_scratch(func, &samples, range, refr);
                    let have = got.next_if(|p| p.t == ts).map(|p| p.v);
                    assert_eq!(
                        have.map(f64::to_bits),
                        want.map(f64::to_bits),
                        "seed {seed}: step {step} at {ts}, range {range}, @ {at:?}: {have:?} != {want:?}"
                    );
                    compared += 1;
                }
                assert!(got.next().is_none(), "seed {seed}: points past the steps");
            }
        }
        assert!(compared > 50_000, "only {compared} steps compared");
    }
}
