//! Plugs the PromQL engine into the API's [`QueryEngine`] seam: parses the
//! query, runs it against the store (range queries through the
//! [`RangeCache`] when there is one), and maps results and errors to the
//! API's types.

use std::cell::Cell;
use std::sync::Arc;

use super::range_cache::{Mark, RangeCache};
use super::{QueryEngine, QueryError, QueryValue, Until};
use crate::promql::engine::{Engine, Error, Handoff, Limits, Value};
use crate::promql::parser::{Expr, parse_expr};
use crate::storage::Queryable;

pub struct PromqlEngine {
    engine: Engine,
    storage: Arc<dyn Queryable>,
    cache: Option<Arc<RangeCache>>,
}

impl PromqlEngine {
    pub fn new(engine: Engine, storage: Arc<dyn Queryable>) -> PromqlEngine {
        PromqlEngine {
            engine,
            storage,
            cache: None,
        }
    }

    /// Range queries go through `cache`, and share their inner
    /// aggregations' answers through it.
    pub fn with_cache(mut self, cache: Arc<RangeCache>) -> PromqlEngine {
        self.engine = self.engine.with_share(cache.clone());
        self.cache = Some(cache);
        self
    }
}

thread_local! {
    /// The cache generation a budgeted first try took before its storage
    /// read; its retry evaluates that same read ([`Handoff`]), so what it
    /// stores must be dated no later.
    static FIRST_TRY_GENERATION: Cell<Option<u64>> = const { Cell::new(None) };
}

fn convert(v: Value) -> QueryValue {
    match v {
        Value::Scalar { t, v } => QueryValue::Scalar(t, v),
        Value::String { t, s } => QueryValue::String(t, s),
        Value::Vector(v) => {
            QueryValue::Vector(v.into_iter().map(|s| (s.labels, s.t, s.v)).collect())
        }
        Value::Matrix(m) => {
            QueryValue::Matrix(m.into_iter().map(|s| (s.labels, s.samples)).collect())
        }
    }
}

/// Without a budget the engine never stops for one; should it, that is an
/// internal error, not a panic.
fn over_budget() -> Result<QueryValue, QueryError> {
    Err(QueryError::Internal(
        "query stopped for a budget it was not given".to_string(),
    ))
}

fn error(e: Error) -> QueryError {
    match e {
        Error::BadData(m) => QueryError::BadData(m),
        Error::Timeout(_) | Error::Canceled(_) => QueryError::Timeout(e.to_string()),
        Error::Storage(m) => QueryError::Internal(m),
        Error::OverBudget => QueryError::Internal(e.to_string()),
        Error::Execution(_) | Error::TooManySamples(_) => QueryError::Execution(e.to_string()),
    }
}

impl QueryEngine for PromqlEngine {
    fn instant(&self, query: &str, time_ms: i64) -> Result<QueryValue, QueryError> {
        self.run_instant(query, time_ms, Limits::default())
            .unwrap_or_else(over_budget)
    }

    fn range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryValue, QueryError> {
        self.run_range(query, start_ms, end_ms, step_ms, Limits::default())
            .unwrap_or_else(over_budget)
    }

    fn keeps_deadlines(&self) -> bool {
        true
    }

    fn handoff(&self) -> Box<dyn FnOnce() + Send> {
        let h = Handoff::take();
        let generation = FIRST_TRY_GENERATION.take();
        Box::new(move || {
            h.restore();
            FIRST_TRY_GENERATION.set(generation);
        })
    }

    fn instant_until(
        &self,
        query: &str,
        time_ms: i64,
        until: Until,
    ) -> Option<Result<QueryValue, QueryError>> {
        self.run_instant(query, time_ms, limits(until))
    }

    fn range_until(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        until: Until,
    ) -> Option<Result<QueryValue, QueryError>> {
        self.run_range(query, start_ms, end_ms, step_ms, limits(until))
    }

    fn mark(&self) -> Option<Mark> {
        self.cache.as_ref().map(|c| c.mark())
    }

    fn unchanged_upto(
        &self,
        query: &str,
        mark: Mark,
        start_ms: i64,
        step_ms: i64,
        held_last_ms: i64,
    ) -> Option<i64> {
        let cache = self.cache.as_ref()?;
        let expr = parse_expr(query).ok()?;
        cache.unchanged_upto(&expr, mark, start_ms, step_ms, held_last_ms)
    }

    fn range_tail_until(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        until: Until,
    ) -> Option<Result<QueryValue, QueryError>> {
        let expr = match parse_expr(query) {
            Ok(e) => e,
            Err(e) => return Some(Err(QueryError::BadData(e.to_string()))),
        };
        self.range_whole(&expr, start_ms, end_ms, step_ms, limits(until))
    }
}

fn limits(until: Until) -> Limits {
    Limits {
        deadline: Some(until.deadline),
        budget: until.budget,
        cancel: until.cancel,
    }
}

/// The engine's answer, `None` when it ran over its budget.
fn answer(r: Result<Value, Error>) -> Option<Result<QueryValue, QueryError>> {
    match r {
        Err(Error::OverBudget) => None,
        r => Some(r.map(convert).map_err(error)),
    }
}

impl PromqlEngine {
    fn run_instant(
        &self,
        query: &str,
        time_ms: i64,
        limits: Limits,
    ) -> Option<Result<QueryValue, QueryError>> {
        let expr = match parse_expr(query) {
            Ok(e) => e,
            Err(e) => return Some(Err(QueryError::BadData(e.to_string()))),
        };
        answer(
            self.engine
                .instant_until(self.storage.as_ref(), &expr, time_ms, limits),
        )
    }

    fn run_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        limits: Limits,
    ) -> Option<Result<QueryValue, QueryError>> {
        let expr = match parse_expr(query) {
            Ok(e) => e,
            Err(e) => return Some(Err(QueryError::BadData(e.to_string()))),
        };
        let floor = FIRST_TRY_GENERATION.take();
        if let Some(cache) = &self.cache
            && let Some(plan) = cache.plan(query, &expr, start_ms, end_ms, step_ms, floor)
        {
            let fresh = if plan.eval_from() > plan.last() {
                Ok(Value::Matrix(Vec::new()))
            } else {
                self.engine.range_until(
                    self.storage.as_ref(),
                    &expr,
                    plan.eval_from(),
                    end_ms,
                    step_ms,
                    limits.clone(),
                )
            };
            match fresh {
                Ok(Value::Matrix(m)) => {
                    if let Some(whole) = cache.finish(plan, m) {
                        return Some(Ok(convert(Value::Matrix(whole))));
                    }
                }
                Err(Error::OverBudget) => {
                    FIRST_TRY_GENERATION.set(Some(plan.generation()));
                    return None;
                }
                // The steps' errors are the whole query's when no step came
                // from the cache; else a whole evaluation says which.
                Err(e @ (Error::Timeout(_) | Error::Canceled(_))) => return Some(Err(error(e))),
                Err(e) if !plan.reuses() => return Some(Err(error(e))),
                Err(_) | Ok(_) => {}
            }
        }
        self.range_whole(&expr, start_ms, end_ms, step_ms, limits)
    }

    fn range_whole(
        &self,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        limits: Limits,
    ) -> Option<Result<QueryValue, QueryError>> {
        answer(self.engine.range_until(
            self.storage.as_ref(),
            expr,
            start_ms,
            end_ms,
            step_ms,
            limits,
        ))
    }
}

/// `/api/v1/format_query`: the expression as Prometheus prints it.
pub fn format_query(query: &str) -> Result<String, String> {
    parse_expr(query)
        .map(|e| e.to_string())
        .map_err(|e| e.to_string())
}
