//! The durable store: a [`Head`] whose commits go through the WAL, opened by
//! replaying the newest checkpoint and the segments after it, with a
//! background thread that syncs the WAL, applies retention and writes
//! checkpoints (which delete the segments they cover).
//!
//! This file owns the data directory's life cycle and the order of the steps
//! above. It knows the WAL and the head only through their APIs, and nothing
//! of scraping, PromQL or HTTP.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashSet;
use tracing::{error, info};

use crate::model::{Labels, Matcher};
use crate::storage::{self, SeriesRef};

use super::changes;
use super::chunkenc::Encoding;
use super::head::{
    CommitLog, DiskChunks, FlushItem, Head, HeadOptions, SHARD_COUNT, StoredSeries, TimeRange,
};
use super::image;
use super::kv::{self, ChunkStore, ColdSeries, FlushSeries};
use super::ticker::Ticker;

/// The chunk store's directory inside the data directory.
const KV_DIR: &str = "chunks";
/// Series whose expired chunks go to the chunk store in one write batch.
const EXPIRE_BATCH: usize = 4096;
/// Series whose closed chunks (and new labels) go to the chunk store in one
/// write batch: as many as a shard held of a million series, when each
/// shard was one batch.
const FLUSH_BATCH: usize = 1 << 16;
use super::wal::{self, ReplayStats, Wal};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create data directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Wal(#[from] wal::Error),
    #[error(transparent)]
    Kv(#[from] kv::Error),
    #[error("cannot restore series: {0}")]
    Restore(#[from] storage::Error),
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub head: HeadOptions,
    /// Samples older than this (milliseconds before now) are deleted; 0 keeps
    /// everything.
    pub retention_ms: i64,
    /// The data directory is kept under this many bytes by deleting the
    /// oldest samples; 0 means no limit.
    pub retention_bytes: u64,
    pub segment_size: u64,
    /// `fdatasync` of the WAL at least this often.
    pub sync_every: Duration,
    /// A checkpoint at least this often, or when the WAL grew past
    /// `checkpoint_bytes` or `checkpoint_samples` since the last one (the
    /// samples bound what a restart replays, and so its time).
    pub checkpoint_every: Duration,
    pub checkpoint_bytes: u64,
    pub checkpoint_samples: u64,
    /// How often retention runs.
    pub retention_every: Duration,
    /// How often closed chunks move to the chunk store between checkpoints.
    pub flush_every: Duration,
    /// A series with no sample for this long (milliseconds) leaves memory
    /// once its chunks are in the chunk store; queries still find it there.
    /// 0 keeps every series in memory until retention.
    pub series_idle_ms: i64,
    /// Series whose chunks of a past window (`head.chunk_range`) the
    /// background thread merges a tick (`db/merge.rs`); 0 merges nothing.
    pub merge_series_per_tick: usize,
    /// Segments that WAL followers (remote write) still need; checkpoints
    /// keep them within its age bound.
    pub wal_keep: Option<Arc<wal::Keep>>,
    /// Told of what retention deletes (`changes.rs`), for readers that
    /// keep derived answers.
    pub changes: Option<Arc<changes::Changes>>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            head: HeadOptions::default(),
            retention_ms: 15 * 24 * 3600 * 1000,
            retention_bytes: 0,
            segment_size: wal::DEFAULT_SEGMENT_SIZE,
            sync_every: Duration::from_secs(1),
            checkpoint_every: Duration::from_secs(300),
            checkpoint_bytes: 256 << 20,
            checkpoint_samples: 30_000_000,
            retention_every: Duration::from_secs(60),
            flush_every: Duration::from_secs(30),
            // Prometheus keeps a series in its head for two to three hours.
            series_idle_ms: 2 * 3600 * 1000,
            merge_series_per_tick: merge::SERIES_PER_STEP,
            wal_keep: None,
            changes: None,
        }
    }
}

/// What [`Db::open`] did.
#[derive(Debug, Clone, Default)]
pub struct OpenStats {
    pub checkpoint: Option<u32>,
    pub checkpoint_series: u64,
    /// Series loaded from the chunk store, and the time it took to open it
    /// (fjall replays its journal).
    pub stored_series: u64,
    /// Whether the series came from the head image of a clean close
    /// instead of the chunk store.
    pub from_image: bool,
    /// Series left on disk only (idle ones that left memory).
    pub cold_series: u64,
    pub kv_open: Duration,
    pub replay: ReplayStats,
    /// Time spent loading the chunk store's series, the checkpoint,
    /// replaying the WAL, and starting the new segment.
    pub phases: [Duration; 4],
    pub elapsed: Duration,
}

struct WalLog(Arc<Wal>);

/// The head's view of the chunk store.
struct KvChunks {
    kv: Arc<ChunkStore>,
    // The newest sample of any cold series: queries after it skip the
    // chunk store's postings. Only grows.
    cold_max: Arc<AtomicI64>,
}

fn other(e: kv::Error) -> storage::Error {
    storage::Error::Other(e.to_string())
}

impl KvChunks {
    /// Whether no cold series has samples at or after `mint` (with
    /// `i64::MIN`: whether no series ever went cold).
    fn none_cold_from(&self, mint: i64) -> bool {
        let max = self.cold_max.load(Ordering::Acquire);
        max == i64::MIN || mint > max
    }
}

impl DiskChunks for KvChunks {
    fn cold_select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<StoredSeries>, storage::Error> {
        if self.none_cold_from(mint) {
            return Ok(Vec::new());
        }
        self.kv.cold_select(matchers, mint, maxt).map_err(other)
    }

    fn cold_labels(
        &self,
        name: Option<&str>,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, storage::Error> {
        if self.none_cold_from(mint) {
            return Ok(Vec::new());
        }
        self.kv
            .cold_labels(name, matchers, mint, maxt)
            .map_err(other)
    }

    fn revive(
        &self,
        hash: u64,
        labels: &Labels,
    ) -> Result<Option<(SeriesRef, TimeRange)>, storage::Error> {
        if self.none_cold_from(i64::MIN) {
            return Ok(None);
        }
        let Some(e) = self.kv.find_cold(hash, labels).map_err(other)? else {
            return Ok(None);
        };
        self.kv.forget_cold(e.r, e.hash, labels).map_err(other)?;
        Ok(Some((e.r, e.range)))
    }

    fn revive_ref(&self, r: SeriesRef) -> Result<Option<(Labels, u64, TimeRange)>, storage::Error> {
        if self.none_cold_from(i64::MIN) {
            return Ok(None);
        }
        let Some(e) = self.kv.cold_entry(r).map_err(other)? else {
            return Ok(None);
        };
        let Some(labels) = self.kv.labels_of(r).map_err(other)? else {
            return Ok(None);
        };
        self.kv.forget_cold(r, e.hash, &labels).map_err(other)?;
        Ok(Some((labels, e.hash, e.range)))
    }

    fn read(
        &self,
        r: SeriesRef,
        mint: i64,
        maxt: i64,
        upto: i64,
        out: &mut Vec<(Encoding, Vec<u8>)>,
    ) -> Result<(), storage::Error> {
        self.kv.read(r, mint, maxt, upto, out).map_err(other)
    }

    fn read_many(
        &self,
        wanted: &[(SeriesRef, i64)],
        mint: i64,
        maxt: i64,
        out: &mut Vec<(SeriesRef, Encoding, Vec<u8>)>,
    ) -> Result<(), storage::Error> {
        self.kv.read_many(wanted, mint, maxt, out).map_err(other)
    }
}

impl CommitLog for WalLog {
    fn log_series(&self, r: SeriesRef, labels: &Labels) {
        self.0.log_series(r, labels);
    }

    fn log_samples(
        &self,
        samples: &mut dyn Iterator<Item = (SeriesRef, i64, f64)>,
    ) -> Result<(), storage::Error> {
        self.0.log_samples(samples).map_err(|e| {
            error!(error = %e, "cannot write the WAL: the batch is refused");
            match e {
                wal::Error::Write { source, .. } => storage::Error::Io(source),
                other => storage::Error::Other(other.to_string()),
            }
        })
    }
}

/// Counters for self-monitoring (Prometheus's `prometheus_tsdb_*` names in
/// brackets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Bytes written to WAL segments (`prometheus_tsdb_wal_..._bytes`).
    pub wal_bytes_written: u64,
    /// Failed WAL writes, each a refused commit
    /// (`prometheus_tsdb_wal_writes_failed_total`).
    pub wal_write_failures: u64,
    pub wal_segments_created: u64,
    /// Checkpoints written and failed
    /// (`prometheus_tsdb_checkpoint_creations_total`, `..._failed_total`).
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    /// Chunks deleted by retention.
    pub retention_removed_chunks: u64,
    /// Closed chunks moved to the chunk store.
    pub persisted_chunks: u64,
    /// Windows whose chunks were merged (`prometheus_tsdb_compactions_total`),
    /// and chunks that merging took away.
    pub compactions: u64,
    pub merged_chunks: u64,
    /// Bytes of the data directory: checkpoints, WAL and chunk store
    /// (`prometheus_tsdb_storage_blocks_bytes` plus the WAL).
    pub disk_bytes: u64,
}

/// The durable store. [`Db::head`] is what scrapers and queries use.
pub struct Db {
    dir: PathBuf,
    head: Head,
    wal: Arc<Wal>,
    kv: Arc<ChunkStore>,
    cold_max: Arc<AtomicI64>,
    persisted_chunks: AtomicU64,
    opts: DbOptions,
    // Serialises checkpoints and retention.
    maintenance: Mutex<Maintenance>,
    background: Ticker,
}

struct Maintenance {
    last_checkpoint: Instant,
    wal_bytes_at_checkpoint: u64,
    wal_samples_at_checkpoint: u64,
    /// The head holds records replayed from the WAL at open that no
    /// checkpoint has written since: a checkpoint is due for them even if
    /// nothing was logged after.
    replayed: bool,
    checkpoints: u64,
    checkpoint_failures: u64,
    retention_removed_chunks: u64,
    merge: merge::MergeCursor,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dir", &self.dir).finish()
    }
}

/// Whether segment `n` may go, as far as WAL followers are concerned.
pub(super) fn may_delete(opts: &DbOptions, dir: &Path, n: u32) -> bool {
    opts.wal_keep.as_ref().is_none_or(|k| k.may_delete(dir, n))
}

/// CPU time this thread has run, in milliseconds (Linux's
/// `/proc/thread-self/schedstat`; 0 where it cannot be read). Only for the
/// maintenance logs: wall time alone cannot tell a checkpoint that computed
/// from one that waited on the disk or for a core.
fn thread_cpu_ms() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |ns| ns / 1_000_000)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Db {
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The labels of a series by reference, from memory or, for a series
    /// that went cold, from the chunk store.
    pub fn series_labels(&self, r: SeriesRef) -> Option<Labels> {
        if let Some(l) = self.head.series_labels(r) {
            return Some(l);
        }
        self.kv.labels_of(r).ok().flatten()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Bytes of the data directory (checkpoints, WAL and chunk store).
    pub fn disk_bytes(&self) -> u64 {
        wal::dir_bytes(&self.dir) + self.wal.disk_bytes() + self.kv.disk_bytes()
    }

    /// Moves the closed chunks to the chunk store (what the background
    /// thread does every `flush_every`), without a checkpoint.
    pub fn flush_closed_chunks(&self) -> Result<(), Error> {
        let _m = self
            .maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.move_closed_chunks(false, now_ms())
    }

    /// Moves the series idle since `now_ms` minus `series_idle_ms` out of
    /// memory (what a checkpoint does); returns how many left.
    pub fn age_out(&self, now_ms: i64) -> Result<usize, Error> {
        let _m = self
            .maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.flush_chunks(now_ms)?;
        self.go_cold(now_ms)
    }

    /// Before when a series' last sample makes it idle, if series go idle.
    fn idle_before(&self, now_ms: i64) -> Option<i64> {
        (self.opts.series_idle_ms > 0).then(|| now_ms.saturating_sub(self.opts.series_idle_ms))
    }

    /// Series idle long enough whose every chunk is synced in the chunk
    /// store leave memory: marked cold there first, then dropped from the
    /// head. Call after a synced flush.
    fn go_cold(&self, now_ms: i64) -> Result<usize, Error> {
        if self.opts.series_idle_ms <= 0 {
            return Ok(0);
        }
        let before = now_ms.saturating_sub(self.opts.series_idle_ms);
        let found = self.head.cold_candidates(before);
        if found.is_empty() {
            return Ok(0);
        }
        // An image that still holds these series would bring them back.
        image::remove(&self.dir);
        let items: Vec<ColdSeries<'_>> = found
            .iter()
            .map(|(r, hash, labels, range)| ColdSeries {
                r: *r,
                hash: *hash,
                labels,
                range: *range,
            })
            .collect();
        self.kv.make_cold(&items)?;
        if let Some(max) = found.iter().map(|f| f.3.1).max() {
            self.cold_max.fetch_max(max, Ordering::AcqRel);
        }
        let refs: Vec<SeriesRef> = found.iter().map(|f| f.0).collect();
        let dropped: FxHashSet<SeriesRef> =
            self.head.drop_cold(&refs, before).into_iter().collect();
        // A sample came for these in between: they stay in memory.
        for (r, hash, labels, _) in found.iter().filter(|f| !dropped.contains(&f.0)) {
            self.kv.forget_cold(*r, *hash, labels)?;
        }
        info!(series = dropped.len(), "idle series left memory");
        Ok(dropped.len())
    }

    /// Rewrites the chunk store's chunks table whole, so that chunks that
    /// were deleted or merged give their space back now instead of when
    /// fjall's own compactions reach them.
    pub fn compact_chunk_store(&self) -> Result<(), Error> {
        Ok(self.kv.compact()?)
    }

    /// Bytes of the chunk store alone.
    pub fn chunk_store_bytes(&self) -> u64 {
        self.kv.disk_bytes()
    }

    /// Bytes on disk of each of the chunk store's tables (no journal).
    pub fn chunk_store_tables(&self) -> Vec<(String, u64)> {
        self.kv.table_bytes()
    }

    /// Writes a checkpoint of the whole head and deletes the segments and
    /// checkpoints it replaces. Returns the checkpoint's size in bytes.
    /// Then writes the head image beside it (`docs/format/head-image.md`),
    /// so that an open after a crash reads it instead of every series'
    /// labels from the chunk store.
    pub fn checkpoint(&self) -> Result<u64, Error> {
        let mut m = self
            .maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.checkpoint_locked(&mut m, true)
    }

    fn lock_maintenance(&self) -> MutexGuard<'_, Maintenance> {
        self.maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counters since open.
    pub fn stats(&self) -> DbStats {
        let m = self.lock_maintenance();
        let w = &self.wal.stats;
        DbStats {
            wal_bytes_written: w.bytes_written.load(Ordering::Relaxed),
            wal_write_failures: w.write_failures.load(Ordering::Relaxed),
            wal_segments_created: w.segments_created.load(Ordering::Relaxed),
            checkpoints: m.checkpoints,
            checkpoint_failures: m.checkpoint_failures,
            retention_removed_chunks: m.retention_removed_chunks,
            persisted_chunks: self.persisted_chunks.load(Ordering::Relaxed),
            compactions: m.merge.windows,
            merged_chunks: (m.merge.total.chunks_read - m.merge.total.chunks_left) as u64,
            disk_bytes: self.disk_bytes(),
        }
    }

    /// A checkpoint, and with `image` the head image after it.
    fn checkpoint_locked(&self, m: &mut Maintenance, image: bool) -> Result<u64, Error> {
        let res = self.write_checkpoint(m);
        match &res {
            Ok(_) => m.checkpoints += 1,
            Err(_) => m.checkpoint_failures += 1,
        }
        if res.is_ok() && image {
            let started = Instant::now();
            let cpu_started = thread_cpu_ms();
            match self.write_image(image::Kind::Checkpoint) {
                Ok(()) => info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    cpu_ms = thread_cpu_ms().saturating_sub(cpu_started),
                    "head image written"
                ),
                Err(e) => {
                    error!(error = %e, "cannot write the head image; an open after a crash will be slower");
                    image::remove(&self.dir);
                }
            }
        }
        res
    }

    fn write_checkpoint(&self, m: &mut Maintenance) -> Result<u64, Error> {
        let started = Instant::now();
        let cpu_started = thread_cpu_ms();
        // The image of the last checkpoint describes the store only until
        // what follows moves series out of memory or changes the chunk
        // store beyond adding chunks and labels.
        image::remove(&self.dir);
        // After the rotation every batch in the closed segments is in the
        // head, so a snapshot taken from now on covers them. Commits wait
        // only for the switch to a new segment: the closed ones are synced
        // after, still before the checkpoint that replaces them is written.
        // Syncing them with commits held off (an fdatasync, tens to
        // hundreds of milliseconds on a busy disk, see `Wal::sync`) stopped
        // the scrape thread, and with it every scrape, for as long.
        // What the WAL had logged when commits were held off is what this
        // checkpoint covers; what comes while it is written counts towards
        // the next (and keeps it from being left out as unchanged).
        let st = &self.wal.stats;
        let (mut bytes_at, mut samples_at) = (0, 0);
        let closed = self.head.quiesce(|| {
            bytes_at = st.bytes_written.load(Ordering::Relaxed);
            samples_at = st.samples_written.load(Ordering::Relaxed);
            self.wal.start_segment()
        })?;
        self.wal.sync()?;
        let synced = started.elapsed();
        let now = now_ms();
        let moving = self.flush_chunks(now)?;
        let flushed = started.elapsed();
        self.go_cold(now)?;
        let before_file = started.elapsed();
        // Shard by shard, encoded under the shard's lock in pieces. Entries
        // name series by reference (their labels are in the chunk store), so
        // their order does not matter to loading.
        let head = &self.head;
        let mut shard = 0;
        let mut encoding = Duration::ZERO;
        let bytes = wal::write_checkpoint(&self.dir, closed, &mut |out| {
            let t = Instant::now();
            head.checkpoint_shard(shard, out);
            encoding += t.elapsed();
            shard += 1;
            shard < SHARD_COUNT
        })?;
        let written = started.elapsed();
        let wal_dir = self.wal.dir();
        for n in wal::list_segments(wal_dir)? {
            if n <= closed && may_delete(&self.opts, wal_dir, n) {
                let _ = std::fs::remove_file(wal_dir.join(wal::segment_name(n)));
            }
        }
        for n in wal::list_checkpoints(&self.dir)? {
            if n < closed {
                let _ = std::fs::remove_file(self.dir.join(wal::checkpoint_name(n)));
            }
        }
        m.last_checkpoint = Instant::now();
        m.wal_bytes_at_checkpoint = bytes_at;
        m.wal_samples_at_checkpoint = samples_at;
        m.replayed = false;
        // Where the time went, so that a slow checkpoint can be told apart
        // by phase (CPU under the shards' locks against disk writes and
        // syncs) from its log line alone.
        info!(
            segment = closed,
            bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            cpu_ms = thread_cpu_ms().saturating_sub(cpu_started),
            wal_sync_ms = synced.as_millis() as u64,
            move_ms = moving.as_millis() as u64,
            persist_rotate_ms = (flushed - synced).saturating_sub(moving).as_millis() as u64,
            go_cold_ms = (before_file - flushed).as_millis() as u64,
            encode_ms = encoding.as_millis() as u64,
            write_sync_ms = (written - before_file).saturating_sub(encoding).as_millis() as u64,
            "checkpoint written"
        );
        Ok(bytes)
    }

    /// Moves every closed chunk (and the labels of new series) to the chunk
    /// store, syncs it, and drops those chunks from memory.
    /// Returns how long the move took (the rest went to fjall).
    fn flush_chunks(&self, now_ms: i64) -> Result<Duration, Error> {
        let started = Instant::now();
        self.move_closed_chunks(true, now_ms)?;
        let moved = started.elapsed();
        self.kv.persist()?;
        // Written to tables, the flushed chunks no longer need fjall's
        // journal, which would otherwise be replayed at the next open.
        self.kv.rotate()?;
        Ok(moved)
    }

    /// Closes the open chunks of series idle at `now_ms`, then writes every
    /// closed chunk (with its series' labels, if not stored
    /// yet) to the chunk store and drops those chunks from memory, shard by
    /// shard; with `all_labels`, the labels of every new series too, which a
    /// checkpoint needs (it names stored series by reference only). Labels
    /// stay in the index either way, so moving them frees no memory: between
    /// checkpoints only chunks move. Not synced: the WAL keeps them until a
    /// checkpoint has synced the chunk store.
    fn move_closed_chunks(&self, all_labels: bool, now_ms: i64) -> Result<(), Error> {
        let refs = self
            .head
            .close_idle_and_flush_refs(self.idle_before(now_ms), all_labels);
        let mut items: Vec<FlushItem> = Vec::new();
        // In the chunk store's key order (see `Head::flush_refs`), one
        // write batch per piece.
        for piece in refs.chunks(FLUSH_BATCH) {
            items.clear();
            self.head.flush_items(piece, &mut items);
            if items.is_empty() {
                continue;
            }
            let parts: Vec<Vec<(i64, i64, &[u8])>> = items
                .iter()
                .map(|it| {
                    it.chunks
                        .iter()
                        .map(|c| (c.min_t, c.max_t, &*c.data))
                        .collect()
                })
                .collect();
            let batch: Vec<FlushSeries<'_>> = items
                .iter()
                .zip(&parts)
                .map(|(it, chunks)| FlushSeries {
                    r: it.r,
                    labels: it.labels.as_deref(),
                    chunks,
                    range: it.range,
                })
                .collect();
            self.kv.flush(&batch)?;
            let n: usize = items.iter().map(|it| it.chunks.len()).sum();
            self.persisted_chunks.fetch_add(n as u64, Ordering::Relaxed);
            // Readers may take these chunks from disk from now on.
            self.head.mark_flushed(&items);
        }
        Ok(())
    }

    /// Deletes expired chunks from the chunk store and series left with
    /// nothing from memory, disk and the index.
    fn expire(&self, cutoff: i64) -> Result<usize, Error> {
        // An image still naming what goes would bring it back after a crash.
        image::remove(&self.dir);
        let _changed = self
            .opts
            .changes
            .as_ref()
            .map(|c| c.begin(i64::MIN, cutoff));
        let mut removed = 0;
        // Many series to a write batch (see `ChunkStore::delete_before_each`).
        for refs in self.head.disk_before(cutoff).chunks(EXPIRE_BATCH) {
            let lefts = self.kv.delete_before_each(refs, cutoff)?;
            for (&r, left) in refs.iter().zip(lefts) {
                // A chunk that straddles the cutoff stays; its older samples
                // count as gone, so the series is not looked at again.
                self.head
                    .set_disk_range(r, left.map(|(a, b)| (a.max(cutoff), b)));
                removed += 1;
            }
        }
        let g = self.head.gc(cutoff);
        for refs in g.removed_refs.chunks(EXPIRE_BATCH) {
            self.kv.delete_series_each(refs)?;
        }
        for e in self.kv.cold_list()? {
            if e.range.1 < cutoff {
                self.kv.delete_cold(e)?;
                removed += 1;
            } else if e.range.0 < cutoff {
                if let Some((a, b)) = self.kv.delete_before(e.r, cutoff)? {
                    self.kv.set_cold_range(kv::ColdEntry {
                        range: (a.max(cutoff), b),
                        ..e
                    })?;
                }
                removed += 1;
            }
        }
        Ok(removed + g.removed_chunks)
    }

    /// Deletes samples older than the retention time, then the oldest ones
    /// until the directory fits the size limit; writes a checkpoint when
    /// anything was deleted so that the disk space comes back.
    pub fn apply_retention(&self, now_ms: i64) -> Result<(), Error> {
        let mut m = self
            .maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut removed = 0;
        let cutoff = now_ms.saturating_sub(self.opts.retention_ms);
        // Only a head that holds expired samples is collected: gc also
        // refuses later samples before the cutoff, which an empty store has
        // no reason to do (a backfill goes in, and a later pass expires it).
        if self.opts.retention_ms > 0 && self.head.time_bounds().is_some_and(|(lo, _)| lo < cutoff)
        {
            let n = self.expire(cutoff)?;
            removed += n;
            m.retention_removed_chunks += n as u64;
        }
        if removed > 0 {
            self.checkpoint_locked(&mut m, true)?;
        }
        if self.opts.retention_bytes > 0 {
            // Each round drops the oldest quarter of the time span held.
            for _ in 0..8 {
                if self.disk_bytes() <= self.opts.retention_bytes {
                    break;
                }
                let Some((lo, hi)) = self.head.time_bounds() else {
                    break;
                };
                let cut = lo + (hi - lo) / 4 + 1;
                let n = self.expire(cut)?;
                m.retention_removed_chunks += n as u64;
                info!(cut, chunks = n, "size retention deleted old samples");
                self.checkpoint_locked(&mut m, true)?;
                // Deleted keys hold their space until compacted away.
                self.kv.compact()?;
            }
        }
        Ok(())
    }

    /// One pass of background work; returns after deciding what was due.
    fn tick(&self, last_retention: &mut Instant, last_flush: &mut Instant) {
        if let Err(e) = self.wal.sync() {
            error!(error = %e, "cannot sync the WAL");
        }
        // Closed chunks leave memory soon after they close, between
        // checkpoints: memory then holds little more than the open chunks.
        if last_flush.elapsed() >= self.opts.flush_every {
            *last_flush = Instant::now();
            if let Err(e) = self.flush_closed_chunks() {
                error!(error = %e, "cannot move closed chunks to the chunk store");
            }
        }
        if last_retention.elapsed() >= self.opts.retention_every {
            *last_retention = Instant::now();
            if let Err(e) = self.apply_retention(now_ms()) {
                error!(error = %e, "retention failed");
            }
        }
        if self.opts.merge_series_per_tick > 0
            && let Err(e) = self.merge_some(self.opts.merge_series_per_tick)
        {
            error!(error = %e, "cannot merge chunks of a past window");
        }
        let due = {
            let m = self.lock_maintenance();
            let st = &self.wal.stats;
            let grown = st
                .bytes_written
                .load(Ordering::Relaxed)
                .saturating_sub(m.wal_bytes_at_checkpoint);
            let logged = st
                .samples_written
                .load(Ordering::Relaxed)
                .saturating_sub(m.wal_samples_at_checkpoint);
            let due = m.last_checkpoint.elapsed() >= self.opts.checkpoint_every
                || grown >= self.opts.checkpoint_bytes
                || logged >= self.opts.checkpoint_samples;
            let unchanged = grown == 0 && !m.replayed;
            due && !(unchanged && self.may_skip_unchanged(m.last_checkpoint.elapsed()))
        };
        if due && let Err(e) = self.checkpoint() {
            error!(error = %e, "checkpoint failed, the WAL keeps everything");
            let mut m = self
                .maintenance
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Do not retry in a tight loop on a full disk.
            m.last_checkpoint = Instant::now();
        }
    }

    /// Whether a checkpoint of a head unchanged since the last one, written
    /// `since` ago (nothing logged after it), may be left out. It would
    /// write the same head again (about 200 MB and a head image at 300
    /// nodes: 1.3 CPU s and 3 s of disk beside the queries, see
    /// `docs/performance.md`), and the last checkpoint, the WAL
    /// and the image already describe that head: a crash in between
    /// recovers what it recovered just before the checkpoint. Only series
    /// going idle still need one (it moves them out of memory), so one is
    /// written at least every `series_idle_ms`, which moves every series
    /// idle by then; memory does not grow meanwhile, nothing being added.
    fn may_skip_unchanged(&self, since: Duration) -> bool {
        self.opts.series_idle_ms <= 0
            || since < Duration::from_millis(self.opts.series_idle_ms as u64)
    }

    /// Starts the background thread (sync, retention, checkpoints).
    pub fn start_background(self: &Arc<Self>) {
        let db = Arc::downgrade(self);
        let mut last_retention = Instant::now();
        let mut last_flush = Instant::now();
        let started = self
            .background
            .start("raymon-tsdb", self.opts.sync_every, move || {
                let Some(db) = db.upgrade() else { return false };
                db.tick(&mut last_retention, &mut last_flush);
                true
            });
        if let Err(e) = started {
            error!(error = %e, "cannot start the storage background thread");
        }
    }

    /// Stops background work, writes a final checkpoint (so the next start
    /// replays no WAL) and syncs. Call after every appender is done.
    pub fn close(&self) -> Result<(), Error> {
        self.background.stop();
        self.wal.flush_series()?;
        self.wal.sync()?;
        {
            let mut m = self.lock_maintenance();
            // Its image would be replaced at once by the close's.
            self.checkpoint_locked(&mut m, false)?;
        }
        self.wal.sync()?;
        self.kv.rotate_and_wait()?;
        // Only a speed-up for the next open: without it, that open reads
        // the chunk store's series.
        if let Err(e) = self.write_image(image::Kind::Close) {
            tracing::warn!(error = %e, "cannot write the head image; the next start will be slower");
            image::remove(&self.dir);
        }
        Ok(())
    }

    /// Writes the head image (`docs/format/head-image.md`), stamped with
    /// the newest checkpoint and the WAL's end. Called with the
    /// maintenance lock held (or from `close`, after the background thread
    /// stopped), so no series leaves the head while it is copied.
    fn write_image(&self, kind: image::Kind) -> Result<(), image::ImageError> {
        let stamp = image::Stamp {
            checkpoint: wal::list_checkpoints(&self.dir)?.last().copied(),
            wal_end: self.wal.end(),
            kind,
        };
        let copy = self.head.image_copy();
        image::write(&self.dir, stamp, copy.len(), |w| copy.write(w))
    }
}

#[cfg(test)]
mod image_tests;
mod merge;
mod open;
#[cfg(test)]
mod tests;
