//! The time-series store: an in-memory head of compressed chunks with an
//! inverted index, behind the `storage` seam.
//!
//! [`Head`] implements [`crate::storage::Appendable`] and
//! [`crate::storage::Queryable`]. Durability (WAL, persisted chunks,
//! retention) is layered on later and must not change these seams. This
//! module knows nothing of scraping, PromQL or HTTP.

pub mod chunkenc;
pub mod head;
pub mod index;
mod querier;

pub use head::{Head, HeadOptions, HeadStats};
