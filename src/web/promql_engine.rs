//! Plugs the PromQL engine into the API's [`QueryEngine`] seam: parses the
//! query, runs it against the store, and maps results and errors to the
//! API's types.

use std::sync::Arc;
use std::time::Instant;

use super::{QueryEngine, QueryError, QueryValue};
use crate::promql::engine::{Engine, Error, Value};
use crate::promql::parser::parse_expr;
use crate::storage::Queryable;

pub struct PromqlEngine {
    engine: Engine,
    storage: Arc<dyn Queryable>,
}

impl PromqlEngine {
    pub fn new(engine: Engine, storage: Arc<dyn Queryable>) -> PromqlEngine {
        PromqlEngine { engine, storage }
    }
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

fn error(e: Error) -> QueryError {
    match e {
        Error::BadData(m) => QueryError::BadData(m),
        Error::Timeout(_) => QueryError::Timeout(e.to_string()),
        Error::Storage(m) => QueryError::Internal(m),
        Error::Execution(_) | Error::TooManySamples(_) => QueryError::Execution(e.to_string()),
    }
}

impl QueryEngine for PromqlEngine {
    fn instant(&self, query: &str, time_ms: i64) -> Result<QueryValue, QueryError> {
        self.run_instant(query, time_ms, None)
    }

    fn range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryValue, QueryError> {
        self.run_range(query, start_ms, end_ms, step_ms, None)
    }

    fn keeps_deadlines(&self) -> bool {
        true
    }

    fn instant_until(
        &self,
        query: &str,
        time_ms: i64,
        deadline: Instant,
    ) -> Result<QueryValue, QueryError> {
        self.run_instant(query, time_ms, Some(deadline))
    }

    fn range_until(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        deadline: Instant,
    ) -> Result<QueryValue, QueryError> {
        self.run_range(query, start_ms, end_ms, step_ms, Some(deadline))
    }
}

impl PromqlEngine {
    fn run_instant(
        &self,
        query: &str,
        time_ms: i64,
        deadline: Option<Instant>,
    ) -> Result<QueryValue, QueryError> {
        let expr = parse_expr(query).map_err(|e| QueryError::BadData(e.to_string()))?;
        self.engine
            .instant_until(self.storage.as_ref(), &expr, time_ms, deadline)
            .map(convert)
            .map_err(error)
    }

    fn run_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        deadline: Option<Instant>,
    ) -> Result<QueryValue, QueryError> {
        let expr = parse_expr(query).map_err(|e| QueryError::BadData(e.to_string()))?;
        self.engine
            .range_until(
                self.storage.as_ref(),
                &expr,
                start_ms,
                end_ms,
                step_ms,
                deadline,
            )
            .map(convert)
            .map_err(error)
    }
}

/// `/api/v1/format_query`: the expression as Prometheus prints it.
pub fn format_query(query: &str) -> Result<String, String> {
    parse_expr(query)
        .map(|e| e.to_string())
        .map_err(|e| e.to_string())
}
