//! The seam through which a range query shares the answers of its inner
//! aggregations with other range queries over the same steps: Grafana
//! sends a dashboard's panels together, and the P50, P90 and P99 panels of
//! a histogram ask `histogram_quantile` of the same `sum by (le) (rate(…))`.
//! The engine asks [`Share::lookup`] before evaluating such a node and
//! gets the stored answer, or a [`Claim`] to evaluate it and hand it over;
//! the store (`crate::web::range_cache`) decides exactness and memory, and
//! makes a query wait for an identical node another query is evaluating.

use std::time::Instant;

use crate::promql::parser::Expr;

use super::{Error, StepSeries};

/// When a query waiting for another's answer must stop waiting.
pub(crate) struct Wait<'a> {
    /// The earlier of the query's deadline and budget.
    pub until: Instant,
    /// Fails once the deadline or budget has passed or the query was
    /// canceled, as the evaluation itself would.
    pub check: &'a dyn Fn() -> Result<(), Error>,
}

/// What the store has for a node.
pub(crate) enum Lookup<'a> {
    /// The node's answer, series in the order its evaluation made them,
    /// and the most samples that evaluation held at once beyond what was
    /// held before it (`--query.max-samples` applies to that as if the
    /// node were evaluated).
    Hit(Vec<StepSeries>, usize),
    /// Evaluate the node and give the answer to the claim; dropping the
    /// claim without an answer (the evaluation failed) lets a waiting
    /// query evaluate it.
    Evaluate(Box<dyn Claim + 'a>),
    /// Evaluate the node; its answer is not kept.
    Skip,
}

/// The right, and duty, to evaluate a node others may wait for.
pub(crate) trait Claim {
    /// Keeps `answer`, whose evaluation held at most `peak` samples.
    fn keep(self: Box<Self>, answer: &[StepSeries], peak: usize);
}

/// A store of node answers shared between queries.
pub(crate) trait Share: Send + Sync + std::fmt::Debug {
    /// What is known of `expr` evaluated at the steps `start..=end` by
    /// `step`; may wait, within `wait`, for a query evaluating the same.
    fn lookup(
        &self,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        wait: &Wait<'_>,
    ) -> Result<Lookup<'_>, Error>;
}
