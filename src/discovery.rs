//! Service discovery: turns `static_configs`, `file_sd_configs` and
//! `http_sd_configs` into target groups per scrape job, and keeps them current.
//!
//! Discovery knows nothing of scraping: it publishes the full set of target
//! groups of every job on a `watch` channel, and the scrape manager reacts.

pub mod file_sd;
pub mod http_sd;
mod target_group;

pub use target_group::{ADDRESS_LABEL, TargetGroup};

use std::collections::BTreeMap;
use std::sync::Arc;

/// Every job's current target groups, keyed by job name.
pub type Targets = Arc<BTreeMap<String, Vec<TargetGroup>>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("invalid file_sd pattern {pattern:?}: {msg}")]
    Pattern { pattern: String, msg: String },
    /// An `http_sd_configs` URL could not be used or refreshed.
    #[error("http_sd {url}: {msg}")]
    Http { url: String, msg: String },
}

mod manager;
pub use manager::{JobDiscovery, Manager};
