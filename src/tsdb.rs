//! The time-series store: an in-memory head of compressed chunks with an
//! inverted index, behind the `storage` seam.
//!
//! [`Head`] implements [`crate::storage::Appendable`] and
//! [`crate::storage::Queryable`]. This module knows nothing of scraping,
//! PromQL or HTTP.
//!
//! ```
//! use raymon::model::{Labels, Matcher};
//! use raymon::storage::{Appendable, Queryable};
//! use raymon::tsdb::Head;
//!
//! let head = Head::default();
//! let up = Labels::from_pairs([("__name__", "up"), ("job", "ray")]);
//! let mut app = head.appender();
//! let r = app.append(0, &up, 1_000, 1.0).unwrap();
//! app.append(r, &up, 16_000, 1.0).unwrap(); // The reference skips the label lookup.
//! app.commit().unwrap();
//! let series = head.querier(0, 20_000).unwrap().select(&[Matcher::equal("job", "ray")]).unwrap();
//! assert_eq!(series[0].samples.len(), 2);
//! ```
//!
//! Layout:
//! - `chunkenc`: the XOR chunk format (`docs/format/chunk.md`).
//! - `index`: interned label strings and postings; Prometheus's matcher rules.
//! - `head`: series in 16 shards, chunk cutting, the appender, gc.
//! - `querier`: reads over a time range.
//!
//! Durability is layered on later without changing these seams:
//! - The WAL hooks into the appender's commit: write a series record for
//!   every series the batch created (`SeriesRef` + labels) and one samples
//!   record for the batch, then apply. Replay appends through the same path.
//! - Closed chunks are immutable bytes with their time range, ready to be
//!   written as-is (prefixed with the encoding byte) to the key-value store;
//!   `Head::gc` is the truncation step once they are persisted or expired.
//! - Series references are never reused within a process, so a cached hint
//!   can go stale but never points at another series.

pub mod chunkenc;
pub mod head;
pub mod index;
mod querier;

pub use head::{GcStats, Head, HeadOptions, HeadStats};
