//! PromQL: the query language of Prometheus 2.42.
//!
//! [`parser`] turns query text into a typed syntax tree and prints it back;
//! [`engine`] evaluates it over any [`crate::storage::Queryable`]. This
//! module never touches HTTP, scraping, the config or the storage layout.
//!
//! ```
//! use raymon::model::Labels;
//! use raymon::promql::engine::{Engine, EngineOptions, Value};
//! use raymon::promql::parser::parse_expr;
//! use raymon::storage::Appendable;
//! use raymon::tsdb::Head;
//!
//! let e = parse_expr("-x ^ 2").unwrap();
//! assert_eq!(e.to_string(), "-x ^ 2");
//!
//! let head = Head::default();
//! let mut app = head.appender();
//! for (node, v) in [("a", 2.0), ("b", 3.0)] {
//!     let l = Labels::from_pairs([("__name__", "ray_node_cpu_count"), ("node", node)]);
//!     app.append(0, &l, 10_000, v).unwrap();
//! }
//! app.commit().unwrap();
//! let engine = Engine::new(EngineOptions::default());
//! let expr = parse_expr("sum(ray_node_cpu_count)").unwrap();
//! let Value::Vector(v) = engine.instant(&head, &expr, 20_000).unwrap() else {
//!     panic!("an aggregation of a vector is a vector");
//! };
//! assert_eq!(v[0].v, 5.0);
//! ```

pub mod engine;
pub mod parser;
