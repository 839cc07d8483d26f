//! The data model shared by every stage: label sets, matchers and samples.
//!
//! This module does no IO and knows nothing of scraping, storage or HTTP.

mod labels;
mod matcher;
mod value;

pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError, anchored};
pub use value::{STALE_NAN, STALE_NAN_BITS, Sample, is_stale_nan};
