//! The data model shared by every stage: label sets, matchers, samples,
//! Prometheus durations, Go's text formats, and synthetic Ray-like label
//! sets for benchmarks.
//!
//! This module does no IO and knows nothing of scraping, storage or HTTP.
//!
//! ```
//! use raymon::model::{Labels, MatchOp, Matcher, is_valid_label_name};
//!
//! // Label sets are sorted by name, however they were given.
//! let l = Labels::from_pairs([("job", "ray"), ("__name__", "up")]);
//! assert_eq!(l.get("__name__"), Some("up"));
//! // Regex matchers are fully anchored, as in Prometheus.
//! let m = Matcher::new(MatchOp::Regex, "job", "ra").unwrap();
//! assert!(!m.matches(l.get("job").unwrap_or("")));
//! assert!(is_valid_label_name("node_id") && !is_valid_label_name("1x"));
//! ```

pub mod civil;
pub mod duration;
mod expand;
pub mod gofmt;
pub mod goparse;
mod labels;
mod matcher;
pub mod synthetic;
mod value;

pub use expand::expand;
pub use labels::{
    Label, LabelLimits, Labels, LabelsBuilder, LabelsError, METRIC_NAME, is_valid_label_name,
    is_valid_metric_name, put_in_order, string_order,
};
pub use matcher::{MatchOp, Matcher, MatcherError, anchored};
pub use value::{STALE_NAN, STALE_NAN_BITS, Sample, is_stale_nan};
