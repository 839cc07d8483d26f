//! The data model shared by every stage: label sets, matchers, samples,
//! Prometheus durations and Go's text formats.
//!
//! This module does no IO and knows nothing of scraping, storage or HTTP.

pub mod duration;
mod expand;
pub mod gofmt;
mod labels;
mod matcher;
mod value;

pub use expand::expand;
pub use labels::{
    Label, LabelLimits, Labels, LabelsBuilder, LabelsError, METRIC_NAME, is_valid_label_name,
    is_valid_metric_name,
};
pub use matcher::{MatchOp, Matcher, MatcherError, anchored};
pub use value::{STALE_NAN, STALE_NAN_BITS, Sample, is_stale_nan};
