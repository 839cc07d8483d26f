//! The head: every series in memory, sharded by label hash, each with closed
//! chunks and one open chunk, plus the inverted index over them.
//!
//! Appends go to `[Mutex<Shard>; SHARDS]` picked by the series reference, so
//! appenders only contend within a shard; the index sits behind one `RwLock`
//! that writers take only to create or drop series. Lock order is always
//! shard, then index; nothing takes a shard lock while holding the index.
//! This file knows nothing of WAL files, persistence or PromQL: a
//! [`CommitLog`] attached with [`Head::set_commit_log`] sees every new series
//! and every committed batch, and the snapshot/restore calls hand chunks out
//! and back in.

mod append;
mod image;
mod persist;
mod series;
mod shards;
mod walk;

pub use image::{ImageCopy, ImageLoad};
pub use persist::{
    ChunkSnapshot, CommitLog, DiskChunks, FlushItem, Restore, StoredSeries, TimeRange,
};
pub(crate) use series::{ChunkData, MemSeries, decode_range, samples_in};
pub use shards::{
    DEFAULT_CHUNK_RANGE, DEFAULT_SAMPLES_PER_CHUNK, GcStats, Head, HeadOptions, HeadStats,
    SHARD_COUNT, hash_labels,
};
pub(crate) use shards::{Inner, shard_of};
pub(crate) use walk::{each_warmed, labels_line, open_line};
