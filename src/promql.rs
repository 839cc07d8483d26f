//! PromQL: the query language of Prometheus 2.42.
//!
//! [`parser`] turns query text into a typed syntax tree and prints it back.
//! The evaluation engine will live next to it; this module never touches
//! HTTP, scraping or the storage layout.
//!
//! ```
//! use raymon::promql::parser::parse_expr;
//! let e = parse_expr("-x ^ 2").unwrap();
//! assert_eq!(e.to_string(), "-x ^ 2");
//! ```

pub mod engine;
pub mod parser;
