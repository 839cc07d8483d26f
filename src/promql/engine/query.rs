//! The engine's entry: [`Engine`] with its options, limits and errors, the
//! concurrency slots (`--query.max-concurrency`), and instant and range
//! queries run to a deadline or a budget ([`Handoff`] carries a first try's
//! storage read to its retry).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::model::{Labels, put_in_order, string_order};
use crate::promql::parser::{Expr, ValueType};
use crate::storage::{Queryable, Series};

use super::*;

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
pub(super) const WORK_PER_CHECK: u32 = 4096;

/// Runs queries against a store.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    pub(super) opts: EngineOptions,
    pub(super) slots: Arc<Slots>,
    /// Where range queries share inner aggregations' answers.
    pub(super) share: Option<Arc<dyn Share>>,
}

/// A counting semaphore for `max_concurrency`; queries block on it.
#[derive(Debug, Default)]
pub(super) struct Slots {
    pub(super) busy: Mutex<usize>,
    pub(super) freed: Condvar,
    /// Queries running or waiting for a slot (`prometheus_engine_queries`).
    pub(super) active: std::sync::atomic::AtomicUsize,
}

/// Counts a query as active while it lives.
pub(super) struct Active<'a>(&'a Slots);

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
pub(super) struct Slot<'a>(&'a Slots);

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
            share: None,
        }
    }

    /// Range queries look their inner aggregations up in `share`, and
    /// keep what they evaluate there.
    pub(crate) fn with_share(mut self, share: Arc<dyn Share>) -> Engine {
        self.share = Some(share);
        self
    }

    /// Waits for a free query slot, at most until `deadline`; with a
    /// budget, not at all.
    pub(super) fn slot(
        &self,
        deadline: Instant,
        budget: Option<Instant>,
    ) -> Result<Slot<'_>, Error> {
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
        ev.share = self.share.as_deref();
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
        sort_by_labels(&mut m);
        Ok(Value::Matrix(m))
    }
}

/// Sorts `m` by labels, in the order `sort_by` on them gives. A large
/// answer is sorted by numbers that stand for its distinct strings in
/// their order: comparing a series' numbers costs a fraction of comparing
/// its strings, which for 83 k series of 3 labels was a tenth of the
/// evaluation (docs/performance.md).
fn sort_by_labels(m: &mut [Series]) {
    if m.len() < 1024 {
        m.sort_by(|a, b| a.labels.cmp(&b.labels));
        return;
    }
    // Each series' names and values in turn, as numbers, and where each
    // series' numbers end: comparing those sequences compares as the
    // labels do (pair by pair, name before value, shorter first).
    let mut keys: Vec<u32> = Vec::new();
    let mut ends: Vec<usize> = Vec::with_capacity(m.len() + 1);
    ends.push(0);
    {
        let mut ids: FxHashMap<&str, u32> = FxHashMap::default();
        let mut strs: Vec<&str> = Vec::new();
        for s in m.iter() {
            for l in s.labels.iter() {
                for x in [l.name.as_str(), l.value.as_str()] {
                    let n = *ids.entry(x).or_insert_with(|| {
                        strs.push(x);
                        (strs.len() - 1) as u32
                    });
                    keys.push(n);
                }
            }
            ends.push(keys.len());
        }
        // The strings are distinct, so ranks in their order compare as
        // the strings do.
        let mut rank = vec![0u32; strs.len()];
        for (r, n) in string_order(&strs).into_iter().enumerate() {
            rank[n as usize] = r as u32;
        }
        for k in &mut keys {
            *k = rank[*k as usize];
        }
    }
    let key = |i: u32| &keys[ends[i as usize]..ends[i as usize + 1]];
    let mut perm: Vec<u32> = (0..m.len() as u32).collect();
    perm.sort_by(|&a, &b| key(a).cmp(key(b)));
    drop((keys, ends));
    // In place: a second list of the series would hold the answer's
    // series twice over.
    put_in_order(m, perm);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_answer_sorts_as_its_labels_do() {
        // Strings that share their first 8 bytes or end within them.
        let mut strs: Vec<String> = ["", "\0", "a", "a\0", "ab", "abcdefgh", "abcdefgh\0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for i in 0..300u32 {
            strs.push(format!("{:08x}", i.wrapping_mul(2_654_435_761) % 5000));
            strs.push(format!("abcdefgh{i}"));
        }
        let mut m = Vec::new();
        for i in 0..3000usize {
            let pick = |k: usize| strs[(i * 7 + k * 13 + i / 5) % strs.len()].as_str();
            // From no labels to three, names and values from the same
            // strings, some label sets equal.
            let pairs: Vec<(&str, &str)> = match i % 4 {
                0 => Vec::new(),
                1 => vec![("a", pick(1))],
                2 => vec![("a", pick(1)), (pick(2), pick(3))],
                _ => vec![(pick(4), "x"), ("b", pick(5)), ("c", pick(6))],
            };
            let labels = Labels::from_pairs(pairs.into_iter().filter(|p| !p.0.is_empty()));
            m.push(Series {
                labels,
                samples: vec![crate::model::Sample {
                    t: i as i64,
                    v: 0.0,
                }],
            });
        }
        let mut want = m.clone();
        want.sort_by(|a, b| a.labels.cmp(&b.labels));
        sort_by_labels(&mut m);
        assert_eq!(m.len(), want.len());
        for (a, b) in m.iter().zip(&want) {
            assert_eq!(a.labels, b.labels);
            // Stable: equal label sets keep their order.
            assert_eq!(a.samples[0].t, b.samples[0].t);
        }
    }
}
