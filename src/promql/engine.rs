//! The PromQL evaluator, with Prometheus 2.42's semantics.
//!
//! Like Prometheus, every node is evaluated once over all steps of the query:
//! an instant-vector node yields a step-aligned matrix, a scalar node one value
//! per step. Selectors read storage once per query through the
//! [`Queryable`] seam and walk their samples with a cursor as steps advance,
//! so a range query never re-reads data per step. An instant query is a range
//! query with one step.
//!
//! This module never touches HTTP or the storage layout.

mod aggregate;
mod binary;
mod functions;
mod selection;
mod value;

pub use value::{Value, VectorSample};

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::model::{Labels, Matcher, Sample, is_stale_nan};
use crate::promql::parser::{
    AtModifier, Expr, MatrixSelector, Subquery, ValueType, VectorSelector,
};
use crate::storage::{Queryable, Series};

/// Engine limits and defaults, as Prometheus's flags set them.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `--query.lookback-delta`.
    pub lookback_delta_ms: i64,
    /// `--query.max-samples`.
    pub max_samples: usize,
    /// `--query.timeout`.
    pub timeout: Duration,
    /// Step of a subquery written without one (`x[1h:]`): the global
    /// `evaluation_interval`.
    pub default_subquery_step_ms: i64,
    /// `--query.max-concurrency`: queries beyond it wait for a slot.
    pub max_concurrency: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
            max_concurrency: 20,
        }
    }
}

/// Why a query failed, with Prometheus's error types.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The query is well-formed but cannot be evaluated (`errorType: execution`).
    #[error("{0}")]
    Execution(String),
    /// The query is not acceptable for this kind of request (`bad_data`).
    #[error("{0}")]
    BadData(String),
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The caller gave up (its client went away); nobody reads the answer.
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    #[error("{0}")]
    Storage(String),
    /// The query ran past [`Limits::budget`]; it was cut short to be run
    /// again without a budget, not failed.
    #[error("query ran over its budget")]
    OverBudget,
}

/// When a query stops early.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Fail with a timeout here, if before `--query.timeout` from now.
    pub deadline: Option<Instant>,
    /// Stop with [`Error::OverBudget`] here, and do not wait for a query
    /// slot: for a first try on a thread that should not be held long.
    pub budget: Option<Instant>,
    /// Stop with [`Error::Canceled`] once this is set (the client went away).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Units of work (a step of one series, a sample) between two looks at the
/// clock and the cancel flag: about 10-50 µs of evaluation, so a query stops
/// well within a millisecond of its deadline while the look (~25 ns) costs
/// nothing measurable.
const WORK_PER_CHECK: u32 = 4096;

/// Runs queries against a store.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
    slots: Arc<Slots>,
}

/// A counting semaphore for `max_concurrency`; queries block on it.
#[derive(Debug, Default)]
struct Slots {
    busy: Mutex<usize>,
    freed: Condvar,
    /// Queries running or waiting for a slot (`prometheus_engine_queries`).
    active: std::sync::atomic::AtomicUsize,
}

/// Counts a query as active while it lives.
struct Active<'a>(&'a Slots);

impl<'a> Active<'a> {
    fn new(slots: &'a Slots) -> Active<'a> {
        slots.active.fetch_add(1, Ordering::Relaxed);
        Active(slots)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A held query slot, given back on drop.
struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|e| e.into_inner());
        *busy = busy.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Engine {
        Engine {
            opts,
            slots: Arc::default(),
        }
    }

    /// Waits for a free query slot, at most until `deadline`; with a
    /// budget, not at all.
    fn slot(&self, deadline: Instant, budget: Option<Instant>) -> Result<Slot<'_>, Error> {
        let max = self.opts.max_concurrency.max(1);
        let mut busy = self.slots.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy >= max {
            if budget.is_some() {
                return Err(Error::OverBudget);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout("query queue"));
            }
            busy = self
                .slots
                .freed
                .wait_timeout(busy, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *busy += 1;
        Ok(Slot(&self.slots))
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Queries running or waiting for a slot now, over every clone of this
    /// engine (`prometheus_engine_queries`).
    pub fn active_queries(&self) -> usize {
        self.slots.active.load(Ordering::Relaxed)
    }

    /// The query timeout from now, or the given deadline if that comes
    /// first.
    fn deadline(&self, limits: &Limits) -> Instant {
        let own = Instant::now() + self.opts.timeout;
        limits.deadline.map_or(own, |d| d.min(own))
    }

    /// Evaluates `expr` at `t` (ms).
    pub fn instant(&self, storage: &dyn Queryable, expr: &Expr, t: i64) -> Result<Value, Error> {
        self.instant_until(storage, expr, t, Limits::default())
    }

    /// [`Engine::instant`] that also stops at `limits`, waiting for a slot
    /// included.
    pub fn instant_until(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        t: i64,
        limits: Limits,
    ) -> Result<Value, Error> {
        let _active = Active::new(&self.slots);
        let deadline = self.deadline(&limits);
        let _slot = self.slot(deadline, limits.budget)?;
        let mut ev = Evaluator::new(storage, &self.opts, t, t, 1, deadline);
        ev.budget = limits.budget;
        ev.cancel = limits.cancel.as_deref();
        let out = ev.eval_whole(expr)?;
        Ok(match out {
            Val::Scalar(v) => Value::Scalar {
                t,
                v: v.first().copied().unwrap_or(f64::NAN),
            },
            Val::String(s) => Value::String { t, s },
            Val::Vector(m) => Value::Vector(
                m.into_iter()
                    .filter_map(|s| {
                        s.points.first().map(|p| VectorSample {
                            labels: s.labels,
                            t,
                            v: p.v,
                        })
                    })
                    .collect(),
            ),
            Val::Range(m) => Value::Matrix(m),
        })
    }

    /// Evaluates `expr` at every step from `start` to `end` (ms, inclusive).
    pub fn range(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Value, Error> {
        self.range_until(storage, expr, start, end, step, Limits::default())
    }

    /// [`Engine::range`] that also stops at `limits`, waiting for a slot
    /// included.
    pub fn range_until(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        limits: Limits,
    ) -> Result<Value, Error> {
        let deadline = self.deadline(&limits);
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(Error::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    other.documented()
                )));
            }
        }
        if step <= 0 {
            return Err(Error::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        let _active = Active::new(&self.slots);
        let _slot = self.slot(deadline, limits.budget)?;
        let mut ev = Evaluator::new(storage, &self.opts, start, end, step, deadline);
        ev.budget = limits.budget;
        ev.cancel = limits.cancel.as_deref();
        let out = ev.eval_whole(expr)?;
        let mut m = match out {
            Val::Scalar(v) => vec![Series {
                labels: Labels::new(),
                samples: points_from(&ev, &v),
            }],
            Val::Vector(m) => m.into_iter().map(Into::into).collect(),
            Val::String(_) | Val::Range(_) => Vec::new(),
        };
        m.retain(|s: &Series| !s.samples.is_empty());
        m.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Value::Matrix(m))
    }
}

/// The storage read a budgeted first try stopped in, taken from this
/// thread so that a retry on another thread can start from it.
pub struct Handoff(Option<selection::Stashed>);

impl Handoff {
    /// Takes what a first try left on this thread.
    pub fn take() -> Handoff {
        Handoff(selection::take_any_stash())
    }

    /// Leaves it on this thread for the retry.
    pub fn restore(self) {
        if let Some(s) = self.0 {
            selection::put_stash(s);
        }
    }
}

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

/// Evaluates nodes over the steps `start..=end` by `interval`.
pub(crate) struct Evaluator<'a> {
    storage: &'a dyn Queryable,
    opts: &'a EngineOptions,
    pub start: i64,
    pub end: i64,
    pub interval: i64,
    /// The query's own start and end, for `@ start()` / `@ end()`.
    query_start: i64,
    query_end: i64,
    deadline: Instant,
    budget: Option<Instant>,
    cancel: Option<&'a AtomicBool>,
    /// Work done since the last look at the clock (see [`WORK_PER_CHECK`]).
    work: Cell<u32>,
    /// Samples currently held, checked against `max_samples`: as in
    /// Prometheus, the points of every result still alive (a node's inputs
    /// until it has consumed them, its output, a range query's answer) and
    /// the samples of the largest window a range function looked at.
    samples: usize,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for a whole query over `start..=end`.
    fn new(
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

    /// The number of steps, once it is clear that one value per step fits
    /// under `max_samples` beside what is held: a node that keeps a value
    /// per step (a scalar, `absent`) asks this before allocating, so a
    /// subquery of billions of steps fails instead of exhausting memory.
    pub fn reserve_steps(&self) -> Result<usize, Error> {
        let n = self.steps();
        if self.samples.saturating_add(n) > self.opts.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        Ok(n)
    }

    pub fn add_samples(&mut self, n: usize) -> Result<(), Error> {
        self.samples += n;
        if self.samples > self.opts.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        Ok(())
    }

    fn at_time(&self, at: Option<AtModifier>) -> Option<i64> {
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
    fn eval_whole(&mut self, expr: &Expr) -> Result<Val, Error> {
        if self.budget.is_some() {
            selection::clear_stash();
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
        let out = self.eval_node(expr)?;
        self.samples = before;
        self.add_samples(held(&out))?;
        Ok(out)
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
        let mut series = q
            .select(plan.as_ref().map_or(matchers, |p| &p.index))
            .map_err(|e| Error::Storage(e.to_string()))?;
        if let Some(p) = &plan {
            selection::check(&mut series, &p.later);
        }
        Ok(series)
    }

    /// The time span of reference times over all steps.
    fn ref_span(&self, at: Option<i64>, offset: i64) -> (i64, i64) {
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
        let at = self.at_time(vs.at);
        let lookback = self.opts.lookback_delta_ms;
        let (lo, hi) = self.ref_span(at, vs.offset);
        let series = self.select(&vs.matchers, lo - lookback, hi)?;
        let steps = self.steps();
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            let mut points = Vec::new();
            let mut cursor = 0usize;
            for step in 0..steps {
                self.tick(1)?;
                let ts = self.ts(step);
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
                        let refr = self.ref_time(ts, at, vs.offset);
                        (refr, refr - lookback)
                    }
                };
                if let Some(p) = latest_at(&s.samples, &mut cursor, refr)
                    && p.t >= oldest
                    && !is_stale_nan(p.v)
                {
                    let v = if times { p.t as f64 / 1000.0 } else { p.v };
                    points.push(Sample { t: ts, v });
                    self.add_samples(1)?;
                }
            }
            if !points.is_empty() {
                let labels = if times {
                    s.labels.without_name()
                } else {
                    s.labels
                };
                out.push(StepSeries { labels, points });
            }
        }
        Ok(out)
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
        self.work.set(inner.work.get());
        Ok((out, at))
    }
}

/// The samples a node's result holds.
fn held(v: &Val) -> usize {
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
fn latest_at<'s>(samples: &'s [Sample], cursor: &mut usize, refr: i64) -> Option<&'s Sample> {
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

/// Samples with `mint <= t <= maxt` (both ends inclusive, as in 2.x).
pub fn window(samples: &[Sample], mint: i64, maxt: i64) -> &[Sample] {
    let lo = samples.partition_point(|s| s.t < mint);
    let hi = samples.partition_point(|s| s.t <= maxt);
    if lo >= hi { &[] } else { &samples[lo..hi] }
}

fn points_from(ev: &Evaluator<'_>, v: &[f64]) -> Vec<Sample> {
    v.iter()
        .enumerate()
        .map(|(i, v)| Sample { t: ev.ts(i), v: *v })
        .collect()
}

/// Collects per-step output samples into series, keyed by label set, in the
/// order series first appear (Prometheus's instant results keep it).
///
/// Callers that know which output series a sample belongs to across steps
/// resolve its index once with [`Collector::index_of`] and push by index, so
/// label sets are hashed once per series rather than once per step.
pub(crate) struct Collector {
    index: HashMap<Labels, usize>,
    series: Vec<StepSeries>,
}

impl Collector {
    pub fn new() -> Collector {
        Collector {
            index: HashMap::new(),
            series: Vec::new(),
        }
    }

    /// The index of the output series with `labels`, created if new.
    pub fn index_of(&mut self, labels: &Labels) -> usize {
        if let Some(&i) = self.index.get(labels) {
            return i;
        }
        self.index.insert(labels.clone(), self.series.len());
        self.series.push(StepSeries {
            labels: labels.clone(),
            points: Vec::new(),
        });
        self.series.len() - 1
    }

    pub fn push_at(&mut self, i: usize, t: i64, v: f64) -> Result<(), Error> {
        let s = &mut self.series[i];
        if s.points.last().is_some_and(|p| p.t == t) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
        s.points.push(Sample { t, v });
        Ok(())
    }

    pub fn push(&mut self, labels: Labels, t: i64, v: f64) -> Result<(), Error> {
        let i = self.index_of(&labels);
        self.push_at(i, t, v)
    }

    /// The collected series that received at least one sample.
    pub fn finish(self) -> Vec<StepSeries> {
        self.series
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .collect()
    }
}

/// Gives each distinct label set an id; returns the id of every input and
/// the distinct sets, in order of first appearance.
pub(crate) fn intern(keys: impl IntoIterator<Item = Labels>) -> (Vec<usize>, Vec<Labels>) {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut uniques = Vec::new();
    let ids = keys
        .into_iter()
        .map(|k| match index.get(&k) {
            Some(&i) => i,
            None => {
                index.insert(k.clone(), uniques.len());
                uniques.push(k);
                uniques.len() - 1
            }
        })
        .collect();
    (ids, uniques)
}

fn check_unique_labelsets(m: &[StepSeries]) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::with_capacity(m.len());
    for s in m {
        if !seen.insert(&s.labels) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Walks a step-aligned matrix one step at a time, yielding the samples
/// present at each step.
pub(crate) struct StepWalker {
    cursors: Vec<usize>,
}

impl StepWalker {
    pub fn new(m: &[StepSeries]) -> StepWalker {
        StepWalker {
            cursors: vec![0; m.len()],
        }
    }

    /// Indexes into `m` and values of the samples at time `ts`.
    pub fn at(&mut self, m: &[StepSeries], ts: i64, out: &mut Vec<(usize, f64)>) {
        out.clear();
        for (i, s) in m.iter().enumerate() {
            let c = &mut self.cursors[i];
            if let Some(p) = s.points.get(*c)
                && p.t == ts
            {
                out.push((i, p.v));
                *c += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::parser::parse_expr;
    use crate::storage::Appendable;
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
        let expr = parse_expr("sum(m)").unwrap();
        let want = e.range(&h, &expr, 0, 60_000, 15_000);
        // The budget passes during the read (it is already past when the
        // read returns), so the read is stashed and the try stops.
        let soon = Limits {
            deadline: None,
            budget: Some(Instant::now() + Duration::from_millis(20)),
            cancel: None,
        };
        let slow = Slow(&c);
        assert_eq!(
            e.range_until(&slow, &expr, 0, 60_000, 15_000, soon),
            Err(Error::OverBudget)
        );
        assert_eq!(reads(), 1);
        assert_eq!(
            e.range_until(&c, &expr, 0, 60_000, 15_000, Limits::default()),
            want
        );
        assert_eq!(reads(), 1, "the retry read nothing");
        // Nothing is left behind: the next query reads again.
        assert_eq!(e.range(&c, &expr, 0, 60_000, 15_000), want);
        assert_eq!(reads(), 2);
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
}
