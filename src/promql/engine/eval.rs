//! The evaluator: one pass per node over all steps of a query, selectors
//! read once and walked with a cursor, subqueries and the `@` modifier, and
//! the samples held at once counted against `--query.max-samples`.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::model::{Labels, Matcher, Sample, is_stale_nan};
use crate::promql::parser::{AtModifier, Expr, MatrixSelector, Subquery, VectorSelector};
use crate::storage::{Error as StorageError, Prepare, Queryable, SelectHints, Series};

use super::*;

/// A series of step-aligned points (an instant vector over all steps).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    pub points: Vec<Sample>,
}

impl From<StepSeries> for Series {
    fn from(s: StepSeries) -> Series {
        Series {
            labels: s.labels,
            samples: s.points,
        }
    }
}

/// What a node evaluates to.
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    /// An instant vector at every step.
    Vector(Vec<StepSeries>),
    /// A range vector (raw samples), only at the top of an instant query.
    Range(Vec<Series>),
    String(String),
}

/// When a query's work must stop; copied to any thread that does some of
/// it.
#[derive(Clone, Copy)]
pub(super) struct Clock<'a> {
    deadline: Instant,
    budget: Option<Instant>,
    cancel: Option<&'a AtomicBool>,
}

impl Clock<'_> {
    /// A clock that never stops the work, for tests of what it times.
    #[cfg(test)]
    pub fn unbounded() -> Clock<'static> {
        Clock {
            deadline: Instant::now() + std::time::Duration::from_secs(3600),
            budget: None,
            cancel: None,
        }
    }

    pub fn check(&self) -> Result<(), Error> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::Canceled("expression evaluation"));
        }
        let now = Instant::now();
        if self.budget.is_some_and(|b| now > b) {
            return Err(Error::OverBudget);
        }
        if now > self.deadline {
            // Prometheus names the stage "expression evaluation" here.
            return Err(Error::Timeout("expression evaluation"));
        }
        Ok(())
    }
}

/// Evaluates nodes over the steps `start..=end` by `interval`.
pub(crate) struct Evaluator<'a> {
    pub(super) storage: &'a dyn Queryable,
    pub(super) opts: &'a EngineOptions,
    pub start: i64,
    pub end: i64,
    pub interval: i64,
    /// The query's own start and end, for `@ start()` / `@ end()`.
    pub(super) query_start: i64,
    pub(super) query_end: i64,
    pub(super) deadline: Instant,
    pub(super) budget: Option<Instant>,
    pub(super) cancel: Option<&'a AtomicBool>,
    /// Work done since the last look at the clock (see [`WORK_PER_CHECK`]).
    pub(super) work: Cell<u32>,
    /// Samples currently held, checked against `max_samples`: as in
    /// Prometheus, the points of every result still alive (a node's inputs
    /// until it has consumed them, its output, a range query's answer) and
    /// the samples of the largest window a range function looked at.
    pub(super) samples: usize,
    /// The most samples held at once so far (what `max_samples` was
    /// checked against), so that a node's answer taken from [`Share`]
    /// fails where its evaluation would have.
    pub(super) peak: Cell<usize>,
    /// Where inner aggregations' answers are shared; only a range query's
    /// own steps, not a subquery's, and never the root, whose answer is
    /// the query's (the range-query cache keeps those).
    pub(super) share: Option<&'a dyn Share>,
    /// Nodes being evaluated, the root included.
    pub(super) depth: u32,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for a whole query over `start..=end`.
    pub(super) fn new(
        storage: &'a dyn Queryable,
        opts: &'a EngineOptions,
        start: i64,
        end: i64,
        interval: i64,
        deadline: Instant,
    ) -> Evaluator<'a> {
        Evaluator {
            storage,
            opts,
            start,
            end,
            interval,
            query_start: start,
            query_end: end,
            deadline,
            budget: None,
            cancel: None,
            work: Cell::new(0),
            samples: 0,
            peak: Cell::new(0),
            share: None,
            depth: 0,
        }
    }

    pub fn steps(&self) -> usize {
        ((self.end - self.start) / self.interval + 1).max(0) as usize
    }

    pub fn ts(&self, step: usize) -> i64 {
        self.start + step as i64 * self.interval
    }

    /// Counts `n` units of work, and every [`WORK_PER_CHECK`] of them looks
    /// at the deadline, the budget and the cancel flag: the loops over steps
    /// and series call this, so that no expression (a subquery of billions
    /// of steps) runs past its deadline.
    #[inline]
    pub fn tick(&self, n: u32) -> Result<(), Error> {
        let w = self.work.get().saturating_add(n);
        if w < WORK_PER_CHECK {
            self.work.set(w);
            return Ok(());
        }
        self.work.set(0);
        self.check_deadline()
    }

    pub fn check_deadline(&self) -> Result<(), Error> {
        self.clock().check()
    }

    /// The query's deadline, budget and cancel flag, for work that runs
    /// where the evaluator is not (storage's decoding thread).
    pub(super) fn clock(&self) -> Clock<'a> {
        Clock {
            deadline: self.deadline,
            budget: self.budget,
            cancel: self.cancel,
        }
    }

    /// The number of steps, once it is clear that one value per step fits
    /// under `max_samples` beside what is held: a node that keeps a value
    /// per step (a scalar, `absent`) asks this before allocating, so a
    /// subquery of billions of steps fails instead of exhausting memory.
    pub fn reserve_steps(&self) -> Result<usize, Error> {
        let n = self.steps();
        self.peak
            .set(self.peak.get().max(self.samples.saturating_add(n)));
        if self.samples.saturating_add(n) > self.opts.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        Ok(n)
    }

    pub fn add_samples(&mut self, n: usize) -> Result<(), Error> {
        self.samples += n;
        self.peak.set(self.peak.get().max(self.samples));
        if self.samples > self.opts.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        Ok(())
    }

    pub(super) fn at_time(&self, at: Option<AtModifier>) -> Option<i64> {
        at.map(|a| match a {
            AtModifier::Timestamp(t) => t,
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
        })
    }

    /// The reference time of a selector at step time `ts`.
    fn ref_time(&self, ts: i64, at: Option<i64>, offset: i64) -> i64 {
        at.unwrap_or(ts) - offset
    }

    /// Evaluates a whole query. A try with a budget starts with nothing
    /// stashed; a retry without one leaves nothing stashed behind.
    pub(super) fn eval_whole(&mut self, expr: &Expr) -> Result<Val, Error> {
        if self.budget.is_some() {
            selection::clear_stash();
        } else if selection::has_stash() {
            // A retry evaluates what its first try read, perhaps before
            // a change the store would date before this try: what it
            // evaluates is not kept.
            self.share = None;
        }
        let out = self.eval(expr);
        if self.budget.is_none() {
            selection::clear_stash();
        }
        out
    }

    /// Evaluates `expr`. Once it has, what its inputs held is freed and its
    /// result is what it holds, as Prometheus counts `currentSamples`.
    pub fn eval(&mut self, expr: &Expr) -> Result<Val, Error> {
        let before = self.samples;
        // Parentheses around the root are still the root.
        let counted = u32::from(!matches!(expr, Expr::Paren(_)));
        self.depth += counted;
        let out = match self.share {
            Some(share) if self.depth > 1 && matches!(expr, Expr::Aggregate(_)) => {
                self.eval_shared(share, expr)
            }
            _ => self.eval_node(expr),
        };
        self.depth -= counted;
        let out = out?;
        self.samples = before;
        self.add_samples(held(&out))?;
        Ok(out)
    }

    /// [`Evaluator::eval_node`] of an aggregation whose answer other
    /// queries over the same steps may have, or may want.
    fn eval_shared(&mut self, share: &'a dyn Share, expr: &Expr) -> Result<Val, Error> {
        let before = self.samples;
        let clock = self.clock();
        let check = move || clock.check();
        let wait = Wait {
            until: self.budget.map_or(self.deadline, |b| b.min(self.deadline)),
            check: &check,
        };
        let claim = match share.lookup(expr, self.start, self.end, self.interval, &wait)? {
            Lookup::Hit(m, peak) => {
                // Fails as the evaluation would: it held `peak` beyond
                // what was held before it.
                let top = before.saturating_add(peak);
                self.peak.set(self.peak.get().max(top));
                if top > self.opts.max_samples {
                    return Err(Error::TooManySamples("query execution"));
                }
                return Ok(Val::Vector(m));
            }
            Lookup::Skip => return self.eval_node(expr),
            Lookup::Evaluate(claim) => claim,
        };
        let outer_peak = self.peak.replace(before);
        let out = self.eval_node(expr);
        let peak = self.peak.get();
        self.peak.set(outer_peak.max(peak));
        if let Ok(Val::Vector(m)) = &out {
            claim.keep(m, peak.saturating_sub(before));
        }
        out
    }

    fn eval_node(&mut self, expr: &Expr) -> Result<Val, Error> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(v) => Ok(Val::Scalar(vec![*v; self.reserve_steps()?])),
            Expr::StringLiteral(s) => Ok(Val::String(s.clone())),
            Expr::Paren(e) => self.eval(e),
            Expr::Unary { neg, expr } => {
                let v = self.eval(expr)?;
                if !neg {
                    return Ok(v);
                }
                match v {
                    Val::Scalar(mut s) => {
                        s.iter_mut().for_each(|x| *x = -*x);
                        Ok(Val::Scalar(s))
                    }
                    Val::Vector(mut m) => {
                        for s in &mut m {
                            s.labels = s.labels.without_name();
                            s.points.iter_mut().for_each(|p| p.v = -p.v);
                        }
                        check_unique_labelsets(&m)?;
                        Ok(Val::Vector(m))
                    }
                    other => Ok(other),
                }
            }
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.vector_selector(vs)?)),
            Expr::MatrixSelector(ms) => {
                let r = self.range_input(&RangeArg::Selector(ms))?;
                let t = self.start;
                let at = self.at_time(ms.vs.at);
                let refr = self.ref_time(t, at, ms.vs.offset);
                let out = r
                    .series
                    .into_iter()
                    .filter_map(|(labels, samples)| {
                        let w = window(&samples, refr - r.range, refr);
                        (!w.is_empty()).then(|| Series {
                            labels,
                            samples: w.to_vec(),
                        })
                    })
                    .collect();
                Ok(Val::Range(out))
            }
            Expr::Subquery(sq) => {
                let (series, _) = self.subquery(sq)?;
                Ok(Val::Range(series))
            }
            Expr::Call(c) => functions::call(self, c),
            Expr::Aggregate(a) => aggregate::eval(self, a),
            Expr::Binary(b) => binary::eval(self, b),
        }
    }

    /// Evaluates a node that must be an instant vector.
    pub fn eval_vector(&mut self, expr: &Expr) -> Result<Vec<StepSeries>, Error> {
        match self.eval(expr)? {
            Val::Vector(m) => Ok(m),
            _ => Err(Error::Execution(format!(
                "expected instant vector, got {}",
                expr.value_type().documented()
            ))),
        }
    }

    /// Evaluates a node that must be a scalar.
    pub fn eval_scalar(&mut self, expr: &Expr) -> Result<Vec<f64>, Error> {
        match self.eval(expr)? {
            Val::Scalar(s) => Ok(s),
            _ => Err(Error::Execution(format!(
                "expected scalar, got {}",
                expr.value_type().documented()
            ))),
        }
    }

    /// Reads the series of `matchers` with samples in `[mint, maxt]`.
    fn select(&mut self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Series>, Error> {
        self.check_deadline()?;
        let stashed = match self.budget {
            None => selection::take_stash(matchers, mint, maxt),
            Some(_) => None,
        };
        let series = match stashed {
            Some(s) => s,
            None => self.read(matchers, mint, maxt)?,
        };
        if self.budget.is_some_and(|b| Instant::now() > b) {
            selection::stash(matchers, mint, maxt, series);
            return Err(Error::OverBudget);
        }
        // Not counted as held: Prometheus walks storage with iterators and
        // counts only the points and windows taken from them, which is what
        // the callers count.
        Ok(series)
    }

    /// The storage read behind [`Evaluator::select`].
    fn read(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Series>, Error> {
        let q = self
            .storage
            .querier(mint, maxt)
            .map_err(|e| Error::Storage(e.to_string()))?;
        let plan = selection::plan(matchers);
        q.select(plan.as_deref().unwrap_or(matchers))
            .map_err(|e| Error::Storage(e.to_string()))
    }

    /// Walks the series of `matchers` with samples in `[mint, maxt]` one at
    /// a time, in the order [`Evaluator::select`] gives them, and drops each
    /// once `f` has looked at it. `f` counts what it holds.
    ///
    /// A budgeted try stops within its budget as the walk goes, so that
    /// running over wastes the budget and nothing is stashed; a retry takes
    /// a read that a materialising node stashed for the same selection.
    pub(super) fn each_series(
        &mut self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        mut f: impl FnMut(&mut Self, Series) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let all = SelectHints::default();
        self.each_prepared(matchers, mint, maxt, &all, &|_| 0, |ev, s, _| f(ev, s))
    }

    /// [`Evaluator::each_series`] with `prep` applied to each series
    /// before `f` gets it with what `prep` returned; storage may run `prep`
    /// on its decoding thread (see [`crate::storage::Querier::select_prepared`]).
    pub(super) fn each_prepared(
        &mut self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        hints: &SelectHints,
        prep: Prepare<'_>,
        mut f: impl FnMut(&mut Self, Series, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.check_deadline()?;
        if self.budget.is_none()
            && let Some(series) = selection::take_stash(matchers, mint, maxt)
        {
            return series.into_iter().try_for_each(|mut s| {
                let n = prep(&mut s);
                f(self, s, n)
            });
        }
        let storage = self.storage;
        let q = storage
            .querier(mint, maxt)
            .map_err(|e| Error::Storage(e.to_string()))?;
        self.check_deadline()?;
        let plan = selection::plan(matchers);
        let index = plan.as_deref().unwrap_or(matchers);
        let mut failed = None;
        // A budgeted try lets storage give up a selection too large for
        // the budget before taking it, rather than this walk after.
        let hints = SelectHints {
            budget: self.budget,
            ..hints.clone()
        };
        q.select_prepared(index, &hints, prep, &mut |s, n| match f(self, s, n) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        })
        .map_err(|e| match e {
            StorageError::OverBudget => Error::OverBudget,
            e => Error::Storage(e.to_string()),
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// The time span of reference times over all steps.
    pub(super) fn ref_span(&self, at: Option<i64>, offset: i64) -> (i64, i64) {
        let a = self.ref_time(self.start, at, offset);
        let b = self.ref_time(self.end, at, offset);
        (a.min(b), a.max(b))
    }

    fn vector_selector(&mut self, vs: &VectorSelector) -> Result<Vec<StepSeries>, Error> {
        self.select_latest(vs, false)
    }

    /// The latest sample at or before each step, with its own timestamp
    /// (what `timestamp()` needs), as a step-aligned vector of sample times.
    pub fn vector_selector_times(&mut self, vs: &VectorSelector) -> Result<Vec<StepSeries>, Error> {
        self.select_latest(vs, true)
    }

    /// At every step, each series' latest sample within the lookback window,
    /// unless it is a staleness marker; its value, or with `times` its
    /// timestamp in seconds (then without the metric name).
    fn select_latest(
        &mut self,
        vs: &VectorSelector,
        times: bool,
    ) -> Result<Vec<StepSeries>, Error> {
        let mut out = Vec::new();
        self.latest_each(vs, times, None, |_, s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Evaluator::select_latest`] handing each series to `f` as it is
    /// made, holding one series' samples at a time; with `labels`, a
    /// series may come with only the labels so named
    /// ([`SelectHints::labels`]).
    pub(super) fn latest_each(
        &mut self,
        vs: &VectorSelector,
        times: bool,
        labels: Option<Arc<[String]>>,
        mut f: impl FnMut(&mut Self, StepSeries) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let at = self.at_time(vs.at);
        let lookback = self.opts.lookback_delta_ms;
        let (lo, hi) = self.ref_span(at, vs.offset);
        let steps = self.steps();
        // One buffer for every series' points, copied out at their length:
        // a series' own vector grew by doubling, eight times at 241 steps.
        let mut buf: Vec<Sample> = Vec::new();
        let mut plan = LatestPlan::default();
        // Every step looks up the latest sample at or before its reference
        // time, the first of which is `lo` without `@` (with it, `timestamp`
        // looks up at a time that may come before `lo`).
        let hints = SelectHints {
            latest_from: at.is_none().then_some(lo),
            labels,
            ..SelectHints::default()
        };
        let prep: Prepare<'_> = &|_| 0;
        self.each_prepared(&vs.matchers, lo - lookback, hi, &hints, prep, |ev, s, _| {
            // The decoded samples are held while the points are made.
            let raw = s.samples.len();
            ev.add_samples(raw)?;
            let points = if at.is_none() {
                buf.clear();
                let (start, interval) = (ev.start, ev.interval);
                if steps <= LATEST_PLAN_MAX_STEPS && s.samples.len() < NO_SAMPLE as usize {
                    // A step of a series is a unit of work for the deadline.
                    ev.tick(steps as u32)?;
                    plan.prepare(&s.samples, start, interval, steps, vs.offset, lookback);
                    plan.points(&s.samples, start, interval, times, &mut buf);
                } else {
                    let mut walk = LatestWalk::default();
                    let mut step = 0;
                    while step < steps {
                        // A block of steps is the unit of work for the deadline.
                        let end = steps.min(step + WORK_PER_CHECK as usize);
                        ev.tick((end - step) as u32)?;
                        walk.points(
                            &s.samples,
                            start,
                            interval,
                            step..end,
                            vs.offset,
                            lookback,
                            times,
                            &mut buf,
                        );
                        step = end;
                    }
                }
                // Copied out at its length (an empty one allocates nothing).
                buf.as_slice().to_vec()
            } else {
                let mut points = Vec::new();
                let mut cursor = 0usize;
                for step in 0..steps {
                    ev.tick(1)?;
                    let ts = ev.ts(step);
                    let (refr, oldest) = match (times, at) {
                        // Prometheus 2.42 evaluates `timestamp(x @ T offset o)`
                        // with the selector's offset replaced by the distance to
                        // `T` at every step, so it looks up at `T` itself; the
                        // offset only moves the window storage is asked for,
                        // `[T - o - lookback, T - o]`.
                        (true, Some(t)) => {
                            let cap = t - vs.offset;
                            (t.min(cap), t.max(cap) - lookback)
                        }
                        _ => {
                            let refr = ev.ref_time(ts, at, vs.offset);
                            (refr, refr - lookback)
                        }
                    };
                    if let Some(p) = latest_at(&s.samples, &mut cursor, refr)
                        && p.t >= oldest
                        && !is_stale_nan(p.v)
                    {
                        let v = if times { p.t as f64 / 1000.0 } else { p.v };
                        points.push(Sample { t: ts, v });
                    }
                }
                points
            };
            ev.samples -= raw;
            if points.is_empty() {
                return Ok(());
            }
            ev.add_samples(points.len())?;
            let labels = if times {
                s.labels.without_name()
            } else {
                s.labels
            };
            f(ev, StepSeries { labels, points })
        })
    }

    /// Loads what a range function iterates over: samples of a matrix
    /// selector (stale markers dropped) or the points of a subquery.
    pub fn range_input(&mut self, arg: &RangeArg<'_>) -> Result<RangeInput, Error> {
        match arg {
            RangeArg::Selector(ms) => {
                let at = self.at_time(ms.vs.at);
                let (lo, hi) = self.ref_span(at, ms.vs.offset);
                let series = self.select(&ms.vs.matchers, lo - ms.range_ms, hi)?;
                let series = series
                    .into_iter()
                    .map(|mut s| {
                        s.samples.retain(|p| !is_stale_nan(p.v));
                        (s.labels, s.samples)
                    })
                    .collect();
                Ok(RangeInput {
                    series,
                    range: ms.range_ms,
                    offset: ms.vs.offset,
                    at,
                })
            }
            RangeArg::Subquery(sq) => {
                let (series, at) = self.subquery(sq)?;
                Ok(RangeInput {
                    series: series.into_iter().map(|s| (s.labels, s.samples)).collect(),
                    range: sq.range_ms,
                    offset: sq.offset,
                    at,
                })
            }
        }
    }

    /// Evaluates a subquery's inner expression at its own steps, covering every
    /// window the outer steps will look at.
    fn subquery(&mut self, sq: &Subquery) -> Result<(Vec<Series>, Option<i64>), Error> {
        let at = self.at_time(sq.at);
        let step = if sq.step_ms > 0 {
            sq.step_ms
        } else {
            self.opts.default_subquery_step_ms
        };
        let (lo, hi) = self.ref_span(at, sq.offset);
        let first = lo - sq.range_ms;
        // The first multiple of the step at or after the window's start.
        let mut start = step * (first / step);
        if start < first {
            start += step;
        }
        let mut inner = Evaluator {
            storage: self.storage,
            opts: self.opts,
            start,
            end: hi,
            interval: step,
            query_start: self.query_start,
            query_end: self.query_end,
            deadline: self.deadline,
            budget: self.budget,
            cancel: self.cancel,
            work: Cell::new(self.work.get()),
            samples: self.samples,
            peak: Cell::new(self.peak.get()),
            share: None,
            depth: self.depth,
        };
        if inner.end < inner.start {
            return Ok((Vec::new(), at));
        }
        let out = match inner.eval(&sq.expr)? {
            Val::Vector(m) => m.into_iter().map(Into::into).collect(),
            Val::Scalar(v) => vec![Series {
                labels: Labels::new(),
                samples: v
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Sample {
                        t: inner.ts(i),
                        v: *v,
                    })
                    .collect(),
            }],
            _ => Vec::new(),
        };
        self.samples = inner.samples;
        self.peak.set(inner.peak.get());
        self.work.set(inner.work.get());
        Ok((out, at))
    }
}

/// The samples a node's result holds.
pub(super) fn held(v: &Val) -> usize {
    match v {
        Val::Vector(m) => m.iter().map(|s| s.points.len()).sum(),
        Val::Range(m) => m.iter().map(|s| s.samples.len()).sum(),
        Val::Scalar(v) => v.len(),
        Val::String(_) => 0,
    }
}

/// The range argument of a function: `x[5m]` or `expr[1h:1m]`.
pub enum RangeArg<'e> {
    Selector(&'e MatrixSelector),
    Subquery(&'e Subquery),
}

/// Loaded samples for a range function.
pub struct RangeInput {
    pub series: Vec<(Labels, Vec<Sample>)>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

/// The latest sample with `t <= refr`, advancing `cursor` (reference times
/// never decrease across steps, so the walk is linear overall).
pub(super) fn latest_at<'s>(
    samples: &'s [Sample],
    cursor: &mut usize,
    refr: i64,
) -> Option<&'s Sample> {
    // A constant reference time (`@`) may be behind the cursor: restart.
    if *cursor > 0 && samples[*cursor - 1].t > refr {
        *cursor = 0;
    }
    while *cursor < samples.len() && samples[*cursor].t <= refr {
        *cursor += 1;
    }
    if *cursor == 0 {
        None
    } else {
        Some(&samples[*cursor - 1])
    }
}

/// The walk of [`Evaluator::latest_each`] over one series' samples
/// without `@`, whose reference times only move forward, where no
/// [`LatestPlan`] is made: each step's latest sample is found by advancing
/// one cursor, without [`latest_at`]'s restart check and the `@` cases.
#[derive(Default)]
pub(super) struct LatestWalk {
    /// The first sample after the last step's reference time.
    cursor: usize,
}

impl LatestWalk {
    /// Appends to `out` the points of `steps` (step `k` at `start + k *
    /// interval`, consecutive calls taking consecutive steps): each step's
    /// latest sample at or before `ts - offset`, if no older than
    /// `lookback` and not a staleness marker, as its value, or with `times`
    /// its timestamp in seconds.
    #[allow(clippy::too_many_arguments)]
    pub fn points(
        &mut self,
        samples: &[Sample],
        start: i64,
        interval: i64,
        steps: std::ops::Range<usize>,
        offset: i64,
        lookback: i64,
        times: bool,
        out: &mut Vec<Sample>,
    ) {
        let mut cursor = self.cursor;
        for step in steps {
            let ts = start + step as i64 * interval;
            let refr = ts - offset;
            while cursor < samples.len() && samples[cursor].t <= refr {
                cursor += 1;
            }
            let Some(p) = cursor.checked_sub(1).and_then(|i| samples.get(i)) else {
                continue;
            };
            if p.t >= refr - lookback && !is_stale_nan(p.v) {
                let v = if times { p.t as f64 / 1000.0 } else { p.v };
                out.push(Sample { t: ts, v });
            }
        }
        self.cursor = cursor;
    }
}

/// The most steps a [`LatestPlan`] is made for: a range query's (Prometheus
/// allows 11,000); a subquery of more steps walks each series instead of
/// keeping a position per step.
const LATEST_PLAN_MAX_STEPS: usize = 11_000;

/// No sample at a step of a [`LatestPlan`].
const NO_SAMPLE: u32 = u32::MAX;

/// Each step's latest sample within the lookback, by position, for one
/// series' sample times, without `@` (the steps, offset and lookback are
/// one selector's). Series sampled at the same times, every series of one
/// scrape target, share it: a run of such series finds the positions once,
/// and each of their steps then reads one sample. Walking each series
/// took about 60 instructions a step of `sum(x)` over 27,600 series.
#[derive(Default)]
pub(super) struct LatestPlan {
    /// Whether `at` was made (for `times`).
    made: bool,
    times: Vec<i64>,
    at: Vec<u32>,
}

impl LatestPlan {
    /// Finds each step's latest sample of `samples`' times, unless the last
    /// series' times were the same. `samples` must hold fewer than
    /// [`NO_SAMPLE`].
    pub fn prepare(
        &mut self,
        samples: &[Sample],
        start: i64,
        interval: i64,
        steps: usize,
        offset: i64,
        lookback: i64,
    ) {
        if self.made
            && self.times.len() == samples.len()
            && samples.iter().zip(&self.times).all(|(p, &t)| p.t == t)
        {
            return;
        }
        self.times.clear();
        self.times.extend(samples.iter().map(|p| p.t));
        self.at.clear();
        let mut cursor = 0usize;
        for step in 0..steps {
            let refr = start + step as i64 * interval - offset;
            while cursor < samples.len() && samples[cursor].t <= refr {
                cursor += 1;
            }
            self.at.push(match cursor.checked_sub(1) {
                Some(i) if samples[i].t >= refr - lookback => i as u32,
                _ => NO_SAMPLE,
            });
        }
        self.made = true;
    }

    /// Appends the points of the series whose times the plan was made for:
    /// each step's sample unless it is a staleness marker, as its value, or
    /// with `times` its timestamp in seconds.
    pub fn points(
        &self,
        samples: &[Sample],
        start: i64,
        interval: i64,
        times: bool,
        out: &mut Vec<Sample>,
    ) {
        for (step, &i) in self.at.iter().enumerate() {
            // `NO_SAMPLE` is past the end.
            if let Some(p) = samples.get(i as usize)
                && !is_stale_nan(p.v)
            {
                let v = if times { p.t as f64 / 1000.0 } else { p.v };
                out.push(Sample {
                    t: start + step as i64 * interval,
                    v,
                });
            }
        }
    }
}

/// Samples with `mint <= t <= maxt` (both ends inclusive, as in 2.x).
pub fn window(samples: &[Sample], mint: i64, maxt: i64) -> &[Sample] {
    let lo = samples.partition_point(|s| s.t < mint);
    let hi = samples.partition_point(|s| s.t <= maxt);
    if lo >= hi { &[] } else { &samples[lo..hi] }
}

pub(super) fn points_from(ev: &Evaluator<'_>, v: &[f64]) -> Vec<Sample> {
    v.iter()
        .enumerate()
        .map(|(i, v)| Sample { t: ev.ts(i), v: *v })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN;

    /// The walk without `@` gives each step the point the general loop
    /// (`latest_at`, then the lookback and staleness checks) gives, in
    /// blocks of steps as the deadline's checks cut them: gaps longer than
    /// the lookback, staleness markers, samples between steps and offsets.
    #[test]
    fn the_forward_walk_finds_what_latest_at_finds() {
        let mut rng =
            crate::testing::Rng::seeded_by_clock("the_forward_walk_finds_what_latest_at_finds");
        let seed = rng.0;
        let mut rnd = move || rng.next();
        for _ in 0..500 {
            let mut samples = Vec::new();
            let mut t = (rnd() % 100_000) as i64;
            for _ in 0..(rnd() % 400) {
                let v = if rnd() % 15 == 0 {
                    STALE_NAN
                } else {
                    (rnd() % 100) as f64
                };
                samples.push(Sample { t, v });
                t += match rnd() % 30 {
                    0 => 600_000,
                    1 => 1,
                    _ => 1 + (rnd() % 20_000) as i64,
                };
            }
            let start = (rnd() % 200_000) as i64;
            let interval = [1_000, 15_000, 60_000][(rnd() % 3) as usize];
            let offset = [0, 0, 45_000, -30_000][(rnd() % 4) as usize];
            let lookback = [300_000, 10_000][(rnd() % 2) as usize];
            let steps = (rnd() % 400) as usize;
            let times = rnd() % 2 == 0;
            let mut want = Vec::new();
            let mut cursor = 0;
            for step in 0..steps {
                let ts = start + step as i64 * interval;
                let refr = ts - offset;
                if let Some(p) = latest_at(&samples, &mut cursor, refr)
                    && p.t >= refr - lookback
                    && !is_stale_nan(p.v)
                {
                    let v = if times { p.t as f64 / 1000.0 } else { p.v };
                    want.push((ts, v.to_bits()));
                }
            }
            let mut got = Vec::new();
            let mut walk = LatestWalk::default();
            let mut step = 0;
            while step < steps {
                let end = steps.min(step + 1 + (rnd() % 50) as usize);
                walk.points(
                    &samples,
                    start,
                    interval,
                    step..end,
                    offset,
                    lookback,
                    times,
                    &mut got,
                );
                step = end;
            }
            let got: Vec<(i64, u64)> = got.iter().map(|p| (p.t, p.v.to_bits())).collect();
            assert_eq!(got, want, "seed {seed}: walk");
            // A plan made for other times first, then for these, then
            // reused for the same times with other values.
            let mut plan = LatestPlan::default();
            let other: Vec<Sample> = samples
                .iter()
                .map(|p| Sample { t: p.t + 1, v: p.v })
                .collect();
            for s in [&other, &samples] {
                plan.prepare(s, start, interval, steps, offset, lookback);
            }
            let mut planned = Vec::new();
            plan.points(&samples, start, interval, times, &mut planned);
            let planned: Vec<(i64, u64)> = planned.iter().map(|p| (p.t, p.v.to_bits())).collect();
            assert_eq!(planned, want, "seed {seed}: plan");
            let doubled: Vec<Sample> = samples
                .iter()
                .map(|p| Sample {
                    t: p.t,
                    v: p.v * 2.0,
                })
                .collect();
            plan.prepare(&doubled, start, interval, steps, offset, lookback);
            let mut again = Vec::new();
            plan.points(&doubled, start, interval, times, &mut again);
            let mut walked = Vec::new();
            LatestWalk::default().points(
                &doubled,
                start,
                interval,
                0..steps,
                offset,
                lookback,
                times,
                &mut walked,
            );
            let bits = |v: &[Sample]| -> Vec<(i64, u64)> {
                v.iter().map(|p| (p.t, p.v.to_bits())).collect()
            };
            assert_eq!(bits(&again), bits(&walked), "seed {seed}: plan reused");
        }
    }
}
