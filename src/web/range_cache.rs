//! A cache of range-query answers for dashboards, which ask the same
//! expression again every few seconds over a sliding, step-aligned window:
//! the steps a cached answer already has are reused and only the new ones
//! evaluated.
//!
//! Exactness rests on two facts (`docs/decisions.md`, "Range-query cache"):
//! a step's value depends only on the step's time and on the samples in a
//! window around it that the expression bounds ([`reach`]: lookback, ranges,
//! offsets, subqueries; `@` is not cached), never on the query's start; and
//! the store tells what changed since a generation
//! ([`crate::tsdb::changes`]), so a cached step whose window may hold a
//! changed sample is evaluated again. Knows the engine's values, not HTTP.
//!
//! The same store keeps the answers of aggregations inside range queries
//! for other queries over the same steps ([`Share`]): the P50, P90 and P99
//! panels of a histogram aggregate its buckets the same way, and a query
//! that finds such an aggregation being evaluated by another waits for its
//! answer instead of evaluating it too.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::model::{Labels, Sample};
use crate::promql::engine::{Claim, Error, Lookup, Share, StepSeries, Wait};
use crate::promql::parser::Expr;
use crate::storage::Series;
use crate::tsdb::changes::{Changes, Since};

#[cfg(test)]
mod tests;

/// Bytes counted for each series and label besides their strings and
/// samples (vectors and strings' headers, allocator rounding).
const SERIES_OVERHEAD: usize = 64;
const LABEL_OVERHEAD: usize = 48;

/// The engine settings a step's window depends on.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// `--query.lookback-delta` in milliseconds.
    pub lookback_ms: i64,
    /// The step of a subquery written without one.
    pub default_subquery_step_ms: i64,
}

/// How far before and after a step's time (ms) the samples that decide its
/// value can lie; `None` when that is not bounded by the step's time (an
/// `@` modifier pins a selector to a fixed time or the query's ends).
pub fn reach(e: &Expr, w: Windows) -> Option<(i64, i64)> {
    let (back, fwd) = reach_inner(e, w)?;
    Some((back.max(0), fwd.max(0)))
}

fn reach_inner(e: &Expr, w: Windows) -> Option<(i64, i64)> {
    let selector =
        |offset: i64, window: i64| (window.saturating_add(offset), offset.saturating_neg());
    let max = |a: (i64, i64), b: (i64, i64)| (a.0.max(b.0), a.1.max(b.1));
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Some((0, 0)),
        Expr::VectorSelector(vs) => match vs.at {
            Some(_) => None,
            None => Some(selector(vs.offset, w.lookback_ms)),
        },
        Expr::MatrixSelector(m) => match m.vs.at {
            Some(_) => None,
            None => Some(selector(m.vs.offset, m.range_ms)),
        },
        Expr::Subquery(sq) => {
            if sq.at.is_some() {
                return None;
            }
            let (b, f) = reach_inner(&sq.expr, w)?;
            let step = if sq.step_ms > 0 {
                sq.step_ms
            } else {
                w.default_subquery_step_ms
            };
            // Inner steps lie on multiples of `step` within
            // `[t - offset - range, t - offset]`.
            let back = b
                .saturating_add(sq.range_ms)
                .saturating_add(sq.offset)
                .saturating_add(step);
            Some((back, f.saturating_sub(sq.offset)))
        }
        Expr::Call(c) => c
            .args
            .iter()
            .try_fold((0, 0), |acc, a| Some(max(acc, reach_inner(a, w)?))),
        Expr::Aggregate(a) => {
            let r = reach_inner(&a.expr, w)?;
            match &a.param {
                Some(p) => Some(max(r, reach_inner(p, w)?)),
                None => Some(r),
            }
        }
        Expr::Binary(b) => Some(max(reach_inner(&b.lhs, w)?, reach_inner(&b.rhs, w)?)),
        Expr::Unary { expr, .. } | Expr::Paren(expr) => reach_inner(expr, w),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    query: String,
    step: i64,
    /// `start` modulo `step`: only answers on the same grid share steps.
    phase: i64,
    /// An inner aggregation's answer ([`Share`]), `query` its syntax tree
    /// printed with `{:?}`; else a whole query's, `query` as asked.
    inner: bool,
}

/// One cached answer: every step from `first` to `last` (both on the
/// grid), computed from a read that began at `generation`.
#[derive(Debug)]
struct Entry {
    first: i64,
    last: i64,
    generation: u64,
    series: Vec<Series>,
    bytes: usize,
    /// For an inner aggregation, the most samples its evaluation held at
    /// once beyond what was held before it.
    peak: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Entries with the tick of their last use.
    entries: HashMap<Key, (Arc<Entry>, u64)>,
    bytes: usize,
    tick: u64,
    /// Inner aggregations some query is evaluating now.
    flying: HashSet<Key>,
}

/// What a query's lookup decided: which steps come from the cache and
/// which must be evaluated.
#[derive(Debug)]
pub struct Plan {
    key: Key,
    generation: u64,
    start: i64,
    /// The last step on the grid at or before the query's end.
    last: i64,
    step: i64,
    /// The cached answer and the last of its steps to reuse.
    reuse: Option<(Arc<Entry>, i64)>,
}

impl Plan {
    /// The first step to evaluate; past [`Plan::last`] when every step
    /// comes from the cache.
    pub fn eval_from(&self) -> i64 {
        match &self.reuse {
            Some((_, upto)) => upto + self.step,
            None => self.start,
        }
    }

    /// The last step of the query.
    pub fn last(&self) -> i64 {
        self.last
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether any step comes from the cache.
    pub fn reuses(&self) -> bool {
        self.reuse.is_some()
    }
}

#[derive(Debug, Default)]
struct Counters {
    hit: AtomicU64,
    partial: AtomicU64,
    miss: AtomicU64,
    uncacheable: AtomicU64,
    steps_cached: AtomicU64,
    steps_evaluated: AtomicU64,
    inner_hit: AtomicU64,
    inner_evaluated: AtomicU64,
    inner_waited: AtomicU64,
}

/// Where the store's changes stood when an answer was read: the process
/// (its `epoch`, random at start) and the change generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub epoch: u64,
    pub generation: u64,
}

/// The cache; one per engine, shared by every request.
#[derive(Debug)]
pub struct RangeCache {
    /// Random per process: a mark from before a restart names generations
    /// of another store's change signal.
    epoch: u64,
    changes: Arc<Changes>,
    windows: Windows,
    max_bytes: usize,
    max_samples: usize,
    state: Mutex<State>,
    /// Told whenever an inner aggregation stops being evaluated.
    landed: Condvar,
    counters: Counters,
}

impl RangeCache {
    /// A cache of at most `max_bytes` (answers larger than a quarter of it
    /// are not kept); `max_samples` is `--query.max-samples`, which a
    /// merged answer must stay within as a whole evaluation would.
    pub fn new(
        changes: Arc<Changes>,
        windows: Windows,
        max_bytes: usize,
        max_samples: usize,
    ) -> RangeCache {
        RangeCache {
            epoch: std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                std::process::id(),
            ),
            changes,
            windows,
            max_bytes,
            max_samples,
            state: Mutex::default(),
            landed: Condvar::new(),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry under `key`, marked as the most recently used.
    fn touch(&self, key: &Key) -> Option<Arc<Entry>> {
        let mut s = self.lock();
        s.tick += 1;
        let tick = s.tick;
        s.entries.get_mut(key).map(|(e, used)| {
            *used = tick;
            e.clone()
        })
    }

    /// Looks `query` up; `None` when its answer may not be cached.
    /// `generation_floor` is the generation a first try of the same
    /// request took, when this is its retry on the first try's read.
    pub fn plan(
        &self,
        query: &str,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        generation_floor: Option<u64>,
    ) -> Option<Plan> {
        if step <= 0 || end < start {
            return None;
        }
        let Some((back, fwd)) = reach(expr, self.windows) else {
            self.counters.uncacheable.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        // Taken before anything is read: what changes after it is told
        // by `since` to whoever uses what this query stores.
        let mut generation = self.changes.generation();
        if let Some(g) = generation_floor {
            generation = generation.min(g);
        }
        let last = start + (end - start) / step * step;
        let key = Key {
            query: query.to_string(),
            step,
            phase: start.rem_euclid(step),
            inner: false,
        };
        let entry = self.touch(&key);
        let reuse = entry.and_then(|e| {
            if e.first > start || e.last < start {
                return None;
            }
            let upto = self.clean_upto(e.generation, (back, fwd), start, e.last.min(last), step)?;
            Some((e, upto))
        });
        let c = &self.counters;
        match &reuse {
            None => c.miss.fetch_add(1, Ordering::Relaxed),
            Some((_, upto)) if *upto == last => c.hit.fetch_add(1, Ordering::Relaxed),
            Some(_) => c.partial.fetch_add(1, Ordering::Relaxed),
        };
        Some(Plan {
            key,
            generation,
            start,
            last,
            step,
            reuse,
        })
    }

    /// The last step of the grid `start + k·step` within `start..=upto`
    /// whose value no change since `generation` can have altered, for an
    /// expression of [`reach`] `(back, fwd)`; `None` when that is no step.
    fn clean_upto(
        &self,
        generation: u64,
        (back, fwd): (i64, i64),
        start: i64,
        mut upto: i64,
        step: i64,
    ) -> Option<i64> {
        if upto < start {
            return None;
        }
        match self.changes.since(generation) {
            Since::Unknown => return None,
            Since::Spans(spans) => {
                for sp in spans {
                    // Steps whose window may hold a changed sample.
                    let dirty_lo = sp.lo.saturating_sub(fwd);
                    let dirty_hi = sp.hi.saturating_add(back);
                    if dirty_hi < start || dirty_lo > upto {
                        continue;
                    }
                    if dirty_lo <= start {
                        return None;
                    }
                    upto = upto.min(dirty_lo - 1);
                }
            }
        }
        Some(start + (upto - start) / step * step)
    }

    /// Where the store's changes stand now, for an asker that keeps the
    /// steps of an answer it is about to get ([`RangeCache::unchanged_upto`]).
    /// Taken before the answer's reads.
    pub fn mark(&self) -> Mark {
        Mark {
            epoch: self.epoch,
            generation: self.changes.generation(),
        }
    }

    /// For an asker holding the steps `start + k·step` up to `held_last` of
    /// `expr`'s answer, read after `mark`: the last of them that still hold
    /// (no change since can have altered them); `None` when none does, the
    /// mark is from another process, or the expression's steps do not
    /// depend on their own time alone (`@`).
    pub fn unchanged_upto(
        &self,
        expr: &Expr,
        mark: Mark,
        start: i64,
        step: i64,
        held_last: i64,
    ) -> Option<i64> {
        if mark.epoch != self.epoch || step <= 0 {
            return None;
        }
        let reach = reach(expr, self.windows)?;
        self.clean_upto(mark.generation, reach, start, held_last, step)
    }

    /// The whole answer: the plan's cached steps merged with `fresh` (the
    /// evaluation from [`Plan::eval_from`] to the end, sorted by labels as
    /// the engine returns it), kept for next time. `None` when the merged
    /// answer of reused and new steps holds more samples than
    /// `--query.max-samples` allows, which a whole evaluation must then
    /// report.
    pub fn finish(&self, plan: Plan, fresh: Vec<Series>) -> Option<Vec<Series>> {
        let evaluated_steps = (plan.last - plan.eval_from()) / plan.step + 1;
        let merged = match &plan.reuse {
            None => fresh,
            Some((e, upto)) => {
                let cached_steps = (upto - plan.start) / plan.step + 1;
                self.counters
                    .steps_cached
                    .fetch_add(cached_steps as u64, Ordering::Relaxed);
                merge(&e.series, plan.start, *upto, fresh)
            }
        };
        self.counters
            .steps_evaluated
            .fetch_add(evaluated_steps.max(0) as u64, Ordering::Relaxed);
        let points: usize = merged.iter().map(|s| s.samples.len()).sum();
        if plan.reuse.is_some() && points > self.max_samples {
            return None;
        }
        let bytes = plan.key.query.len() + SERIES_OVERHEAD + merged.iter().map(size).sum::<usize>();
        if bytes <= self.max_bytes / 4 {
            self.store(
                plan.key,
                Entry {
                    first: plan.start,
                    last: plan.last,
                    generation: plan.generation,
                    series: merged.clone(),
                    bytes,
                    peak: 0,
                },
            );
        }
        Some(merged)
    }

    fn store(&self, key: Key, entry: Entry) {
        let mut s = self.lock();
        s.tick += 1;
        let tick = s.tick;
        s.bytes += entry.bytes;
        if let Some((old, _)) = s.entries.insert(key, (Arc::new(entry), tick)) {
            s.bytes -= old.bytes;
        }
        while s.bytes > self.max_bytes {
            let Some(oldest) = s
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((e, _)) = s.entries.remove(&oldest) {
                s.bytes -= e.bytes;
            }
        }
    }

    /// The cache's self-metrics, in the text format.
    pub fn metrics_text(&self) -> String {
        let (entries, bytes) = {
            let s = self.lock();
            (s.entries.len(), s.bytes)
        };
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# HELP raymon_query_range_cache_bytes Bytes of range-query answers the cache holds.\n\
             # TYPE raymon_query_range_cache_bytes gauge\n\
             raymon_query_range_cache_bytes {bytes}\n\
             # HELP raymon_query_range_cache_max_bytes The cache's limit (--query.range-cache-size).\n\
             # TYPE raymon_query_range_cache_max_bytes gauge\n\
             raymon_query_range_cache_max_bytes {}\n\
             # HELP raymon_query_range_cache_entries Range-query answers the cache holds.\n\
             # TYPE raymon_query_range_cache_entries gauge\n\
             raymon_query_range_cache_entries {entries}\n\
             # HELP raymon_query_range_cache_requests_total Range queries by what the cache had for them.\n\
             # TYPE raymon_query_range_cache_requests_total counter\n\
             raymon_query_range_cache_requests_total{{result=\"hit\"}} {}\n\
             raymon_query_range_cache_requests_total{{result=\"partial\"}} {}\n\
             raymon_query_range_cache_requests_total{{result=\"miss\"}} {}\n\
             raymon_query_range_cache_requests_total{{result=\"uncacheable\"}} {}\n\
             # HELP raymon_query_range_cache_steps_total Steps of range-query answers, by where they came from.\n\
             # TYPE raymon_query_range_cache_steps_total counter\n\
             raymon_query_range_cache_steps_total{{source=\"cache\"}} {}\n\
             raymon_query_range_cache_steps_total{{source=\"evaluated\"}} {}\n\
             # HELP raymon_query_shared_aggregations_total Aggregations inside range queries, by whether their answer was taken from another query.\n\
             # TYPE raymon_query_shared_aggregations_total counter\n\
             raymon_query_shared_aggregations_total{{result=\"hit\"}} {}\n\
             raymon_query_shared_aggregations_total{{result=\"evaluated\"}} {}\n\
             # HELP raymon_query_shared_aggregations_waits_total Aggregations inside range queries that waited for another query evaluating the same.\n\
             # TYPE raymon_query_shared_aggregations_waits_total counter\n\
             raymon_query_shared_aggregations_waits_total {}\n",
            self.max_bytes,
            get(&c.hit),
            get(&c.partial),
            get(&c.miss),
            get(&c.uncacheable),
            get(&c.steps_cached),
            get(&c.steps_evaluated),
            get(&c.inner_hit),
            get(&c.inner_evaluated),
            get(&c.inner_waited),
        )
    }
}

fn size(s: &Series) -> usize {
    size_of_parts(&s.labels, s.samples.len())
}

fn size_of_parts(labels: &Labels, samples: usize) -> usize {
    SERIES_OVERHEAD
        + samples * std::mem::size_of::<Sample>()
        + labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + LABEL_OVERHEAD)
            .sum::<usize>()
}

/// The longest a query waiting for an inner aggregation sleeps before it
/// looks at its deadline, budget and cancel flag again.
const WAIT_SLICE: Duration = Duration::from_millis(10);

impl Share for RangeCache {
    /// A stored answer for exactly these steps that no change since its
    /// read can have altered; else, unless another query is evaluating
    /// the same (then this waits for it and looks again), a claim to
    /// evaluate it.
    fn lookup(
        &self,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        wait: &Wait<'_>,
    ) -> Result<Lookup<'_>, Error> {
        if step <= 0 || end < start {
            return Ok(Lookup::Skip);
        }
        let Some(reach) = reach(expr, self.windows) else {
            return Ok(Lookup::Skip);
        };
        let last = start + (end - start) / step * step;
        let key = Key {
            query: format!("{expr:?}"),
            step,
            phase: start.rem_euclid(step),
            inner: true,
        };
        let mut waited = false;
        loop {
            // Taken before this query reads anything, as in `plan`.
            let generation = self.changes.generation();
            let entry = self.touch(&key);
            if let Some(e) = entry
                && e.first == start
                && e.last == last
                && self.clean_upto(e.generation, reach, start, last, step) == Some(last)
            {
                self.counters.inner_hit.fetch_add(1, Ordering::Relaxed);
                let m = e
                    .series
                    .iter()
                    .map(|s| StepSeries {
                        labels: s.labels.clone(),
                        points: s.samples.clone(),
                    })
                    .collect();
                return Ok(Lookup::Hit(m, e.peak));
            }
            let mut s = self.lock();
            if s.flying.insert(key.clone()) {
                drop(s);
                self.counters
                    .inner_evaluated
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(Lookup::Evaluate(Box::new(InnerClaim {
                    cache: self,
                    key,
                    generation,
                    first: start,
                    last,
                })));
            }
            if !waited {
                waited = true;
                self.counters.inner_waited.fetch_add(1, Ordering::Relaxed);
            }
            let left = wait.until.saturating_duration_since(Instant::now());
            s = self
                .landed
                .wait_timeout(s, left.clamp(Duration::from_millis(1), WAIT_SLICE))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            drop(s);
            (wait.check)()?;
        }
    }
}

/// A query's claim to evaluate an inner aggregation: it keeps the answer,
/// and its end, answered or not, wakes the queries waiting for it.
struct InnerClaim<'a> {
    cache: &'a RangeCache,
    key: Key,
    generation: u64,
    first: i64,
    last: i64,
}

impl Claim for InnerClaim<'_> {
    fn keep(self: Box<Self>, answer: &[StepSeries], peak: usize) {
        let bytes = self.key.query.len()
            + SERIES_OVERHEAD
            + answer
                .iter()
                .map(|s| size_of_parts(&s.labels, s.points.len()))
                .sum::<usize>();
        if bytes > self.cache.max_bytes / 4 {
            return;
        }
        let series = answer
            .iter()
            .map(|s| Series {
                labels: s.labels.clone(),
                samples: s.points.clone(),
            })
            .collect();
        self.cache.store(
            self.key.clone(),
            Entry {
                first: self.first,
                last: self.last,
                generation: self.generation,
                series,
                bytes,
                peak,
            },
        );
    }
}

impl Drop for InnerClaim<'_> {
    fn drop(&mut self) {
        self.cache.lock().flying.remove(&self.key);
        self.cache.landed.notify_all();
    }
}

/// The cached series' samples in `start..=upto` joined with `fresh` (all
/// later), both sorted by labels; series left without samples are dropped,
/// as the engine drops them.
fn merge(cached: &[Series], start: i64, upto: i64, fresh: Vec<Series>) -> Vec<Series> {
    let mut out = Vec::with_capacity(cached.len().max(fresh.len()));
    let window = |s: &Series| {
        let a = s.samples.partition_point(|p| p.t < start);
        let b = s.samples.partition_point(|p| p.t <= upto);
        s.samples[a..b.max(a)].to_vec()
    };
    let mut fresh = fresh.into_iter().peekable();
    for c in cached {
        while let Some(f) = fresh.next_if(|f| f.labels < c.labels) {
            out.push(f);
        }
        let mut samples = window(c);
        if let Some(f) = fresh.next_if(|f| f.labels == c.labels) {
            samples.extend_from_slice(&f.samples);
        }
        if !samples.is_empty() {
            out.push(Series {
                labels: c.labels.clone(),
                samples,
            });
        }
    }
    out.extend(fresh);
    out
}
