//! The PromQL parser of Prometheus 2.42: lexer, syntax tree, type checker,
//! function table and printer.
//!
//! [`parse_expr`] accepts exactly what Prometheus 2.42 accepts and fails with
//! the same first error message and position (`1:15: parse error: ...`).
//! [`Expr`]'s `Display` prints like Prometheus's `String()` methods. The
//! parser never panics and rejects input nested deeper than [`MAX_DEPTH`].
//!
//! This module knows nothing of evaluation, storage or HTTP.
//!
//! ```
//! use raymon::promql::parser::{parse_expr, Expr, ValueType};
//! let e = parse_expr(r#"rate(ray_tasks{State=~"RUNNING"}[5m]) offset -1m"#);
//! assert_eq!(e.unwrap_err().msg, "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery");
//! let e = parse_expr("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))").unwrap();
//! assert_eq!(e.value_type(), ValueType::Vector);
//! ```

mod ast;
mod binary;
mod calls;
mod functions;
mod lexer;
mod matcher_cache;
mod parse;
mod printer;
mod quote;
mod selectors;

pub use ast::{
    AggOp, Aggregate, AtModifier, BinOp, Binary, Call, Cardinality, Expr, MatrixSelector, Subquery,
    ValueType, VectorMatching, VectorSelector,
};
pub use functions::{FUNCTIONS, Function, get_function};
pub use parse::{MAX_DEPTH, ParseError, parse_expr, parse_metric_selector};
