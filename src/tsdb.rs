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
//! - `refmap`: the shards' map from reference to series, hashed for locality.
//! - `querier`: reads over a time range.
//! - `changes`: which time ranges changed since a reader looked.
//!
//! - `wal`: segment files and checkpoints (`docs/format/wal.md`).
//! - `image`: the head's index and series written at a clean close, for a
//!   fast next open (`docs/format/head-image.md`).
//! - `kv`: closed chunks and series labels in fjall (`docs/format/kv.md`).
//! - `db`: the durable store: open from the chunk store, checkpoint and WAL,
//!   the WAL attached to the head's commits, background sync, retention, and
//!   checkpoints that move closed chunks to the chunk store.
//!
//! Durability: the head logs every new series and every committed batch to a
//! [`head::CommitLog`] (the WAL) before the batch is applied and commit
//! returns. Series references are never reused within a process, so a cached
//! hint can go stale but never points at another series; across processes
//! they mean nothing, and replay maps them.

pub mod agent;
pub mod changes;
pub mod chunkenc;
pub mod db;
pub mod head;
pub mod image;
pub mod index;
pub mod kv;
mod querier;

#[cfg(test)]
pub(crate) use querier::QUERY_NICE;
pub(crate) use querier::lower_priority;
mod refmap;
mod ticker;
pub mod tombstones;
pub mod wal;

pub use db::{Db, DbOptions, DbStats, OpenStats};
pub use head::{GcStats, Head, HeadOptions, HeadStats};
