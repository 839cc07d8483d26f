//! The PromQL evaluator, with Prometheus 2.42's semantics.
//!
//! Like Prometheus, every node is evaluated once over all steps of the query:
//! an instant-vector node yields a step-aligned matrix, a scalar node one value
//! per step. Selectors read storage once per query through the
//! [`Queryable`](crate::storage::Queryable) seam, one series at a time, and
//! walk its samples with a cursor as steps advance, so a range query never
//! re-reads data per step nor holds every sample of every selected series.
//! An instant query is a range query with one step.
//!
//! This module never touches HTTP or the storage layout.

//!
//! - `query`: [`Engine`], its options and limits, concurrency slots.
//! - `eval`: the evaluator's walk over the expression tree and selectors
//!   (`selection` reads storage).
//! - `aggregate`, `binary`, `functions`: operators and the 70 functions;
//!   `range`: range-vector functions, one series at a time; `fold`:
//!   aggregations folding each input series into its group as it is made;
//!   `sliding`: windows sliding across steps and running extremes.
//! - `collect`, `value`: step-aligned results and what a query returns.
//! - `share`: the seam through which range queries share inner
//!   aggregations' answers.

mod aggregate;
mod binary;
mod collect;
mod eval;
mod fold;
mod functions;
mod query;
mod range;
mod selection;
mod share;
mod sliding;
#[cfg(test)]
mod tests;
mod value;

pub(crate) use eval::StepSeries;
pub use eval::{RangeArg, RangeInput, window};
pub use query::{Engine, EngineOptions, Error, Handoff, Limits};
pub(crate) use share::{Claim, Lookup, Share, Wait};
pub use value::{Value, VectorSample};

use collect::*;
use eval::*;
use query::*;
