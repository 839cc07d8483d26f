//! The head's store: series sharded by reference behind `[Mutex<Shard>; SHARDS]`,
//! the inverted index behind one `RwLock`, series creation and lookup, time
//! bounds, garbage collection and statistics. Lock order is always shard,
//! then index.

use std::hash::Hasher;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{
    Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
};

use hashbrown::HashTable;
use parking_lot::{Mutex, MutexGuard};
use rustc_hash::{FxHashSet, FxHasher};

use crate::model::Labels;
use crate::storage::{Error, Querier, Queryable, SeriesRef};

use crate::tsdb::index::{Cardinality, Index, SymLabels};
use crate::tsdb::querier::HeadQuerier;
use crate::tsdb::refmap::RefMap;

use super::{append::*, persist::*, series::*};

/// Prometheus's default head chunk range: two hours in milliseconds.
pub const DEFAULT_CHUNK_RANGE: i64 = 2 * 60 * 60 * 1000;

/// Prometheus's target number of samples per chunk.
pub const DEFAULT_SAMPLES_PER_CHUNK: usize = 120;

pub(super) const SHARD_BITS: u32 = 4;
/// Series handled per shard lock by the background copies (flush,
/// checkpoint).
pub(super) const PIECE: usize = 1024;
pub(super) const SHARDS: usize = 1 << SHARD_BITS;

#[derive(Debug, Clone)]
pub struct HeadOptions {
    /// Chunks never span a multiple of this many milliseconds.
    pub chunk_range: i64,
    /// The number of samples a chunk aims for; a chunk is cut at twice this
    /// at the latest.
    pub samples_per_chunk: usize,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions {
            chunk_range: DEFAULT_CHUNK_RANGE,
            samples_per_chunk: DEFAULT_SAMPLES_PER_CHUNK,
        }
    }
}

/// Counts and memory of the head at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadStats {
    pub num_series: usize,
    pub num_chunks: usize,
    pub num_symbols: usize,
    /// Estimated heap bytes of series, chunks and index, from capacities.
    pub heap_bytes: usize,
    /// Of `heap_bytes`, the bytes of encoded samples (chunk buffers).
    pub chunk_bytes: usize,
    /// Samples in open chunks.
    pub open_samples: usize,
}

/// What one [`Head::gc`] call removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    pub removed_chunks: usize,
    pub removed_series: usize,
    /// The references of the removed series, for the chunk store.
    pub removed_refs: Vec<SeriesRef>,
}

/// Number of shards, for callers that walk the head shard by shard.
pub const SHARD_COUNT: usize = SHARDS;

/// The in-memory time-series store. Cloning is cheap and shares the store.
#[derive(Clone, Default)]
pub struct Head {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(super) opts: HeadOptions,
    // parking_lot's lock, which hands itself to a thread that has waited
    // half a millisecond instead of letting the thread that released it take
    // it back at once: with std's, a commit of a million samples, which
    // releases its shard between parts of `LOCKED_SAMPLES`, took it back
    // every time and kept a small commit to the same shard waiting for the
    // whole burst.
    pub(super) shards: [Mutex<Shard>; SHARDS],
    pub(super) index: RwLock<Index>,
    // Bounds of committed samples; `i64::MAX`/`i64::MIN` while empty.
    pub(super) min_time: AtomicI64,
    pub(super) max_time: AtomicI64,
    // Samples before this are out of bounds: they were garbage-collected.
    pub(super) min_valid_time: AtomicI64,
    pub(super) log: OnceLock<Arc<dyn CommitLog>>,
    pub(super) disk: OnceLock<Arc<dyn DiskChunks>>,
    pub(super) next_seq: AtomicU64,
    // Commits hold it shared from logging to applying; a checkpoint holds it
    // exclusively to find a moment when the log and the head agree.
    pub(super) gate: RwLock<()>,
    // Emptied appender buffers kept for the next appender: a scrape's batch
    // would otherwise grow 16 vectors and a map from nothing every time.
    pub(super) spare: Mutex<Vec<AppendBuffers>>,
    // When the index's tables last grew for a new series, in milliseconds
    // of `growth_clock`; 0 before they ever did.
    pub(super) grown_at: AtomicU64,
}

/// A monotonic clock for [`Inner::grown_at`], in milliseconds from its
/// first use plus one (so that 0 can mean never).
fn growth_clock() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

/// How long after the index's tables grew a burst of new series is taken
/// to go on: growths come every few seconds at most while it does.
const GROWTH_QUIET_MS: u64 = 2_000;

/// Growths of an index smaller than this are noted nowhere: they take
/// well under a millisecond.
const GROWTH_NOTED_SERIES: usize = 1 << 16;

impl Default for Inner {
    fn default() -> Self {
        Inner::new(HeadOptions::default())
    }
}

#[derive(Default)]
pub(super) struct Shard {
    pub(super) series: RefMap<Box<MemSeries>>,
    // The series by label hash: only references are stored (8 bytes a
    // bucket, where a map from hash to reference took 16), the hash is the
    // series' own. Series whose labels share a hash (a collision) are all
    // there; a lookup compares their labels.
    pub(super) by_hash: HashTable<SeriesRef>,
}

/// The table's hash of a label hash. The top `SHARD_BITS` are the shard's,
/// the same for every series of a shard; the table takes its probe tag from
/// the top 7 bits and its position from the low ones, so both must vary.
/// A multiply by an odd constant keeps the low bits a bijection of the
/// label hash's own (which vary) and mixes every bit into the top ones.
/// (Rotating the shard's bits down into the position made one position in
/// 16 a start: probes ran through about 15 groups and met two false
/// candidates, each a series read from memory, on every lookup of a new
/// series.)
fn table_hash(hash: u64) -> u64 {
    hash.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

pub(super) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `shard`, then takes `index` for reading, without ever waiting for
/// the index with the shard held. Every scrape of a series in the shard
/// needs the shard's lock, and the index may be written for a long time
/// (its tables growing while a target bursts into new series): a reader
/// that waited there with the shard locked would stop those scrapes for as
/// long. Lock order stays shard, then index.
pub(super) fn lock_with_index<'a>(
    shard: &'a Mutex<Shard>,
    index: &'a RwLock<Index>,
) -> (MutexGuard<'a, Shard>, RwLockReadGuard<'a, Index>) {
    loop {
        let guard = shard.lock();
        match index.try_read() {
            Ok(ix) => return (guard, ix),
            Err(TryLockError::Poisoned(e)) => return (guard, e.into_inner()),
            Err(TryLockError::WouldBlock) => {
                drop(guard);
                // Waits for the writer with nothing else held.
                drop(read(index));
            }
        }
    }
}

/// The series of `shard` with exactly `labels` (whose hash is `hash`).
fn find(shard: &Shard, ix: &Index, labels: &Labels, hash: u64) -> Option<SeriesRef> {
    shard
        .by_hash
        .iter_hash(table_hash(hash))
        .find(|&&r| {
            shard
                .series
                .get(&r)
                .is_some_and(|s| s.hash == hash && ix.labels_equal(&s.labels, labels))
        })
        .copied()
}

/// The shard that holds series `r`.
pub(crate) fn shard_of(r: SeriesRef) -> usize {
    (r & (SHARDS as u64 - 1)) as usize
}

pub fn hash_labels(labels: &Labels) -> u64 {
    let mut h = FxHasher::default();
    for l in labels {
        h.write(l.name.as_bytes());
        h.write_u8(0xff);
        h.write(l.value.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

impl Inner {
    fn new(opts: HeadOptions) -> Inner {
        Inner {
            opts,
            shards: Default::default(),
            index: RwLock::new(Index::new()),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            min_valid_time: AtomicI64::new(i64::MIN),
            log: OnceLock::new(),
            disk: OnceLock::new(),
            next_seq: AtomicU64::new(0),
            gate: RwLock::new(()),
            spare: Mutex::new(Vec::new()),
            grown_at: AtomicU64::new(0),
        }
    }

    fn note_growth(&self) {
        self.grown_at.store(growth_clock(), Ordering::Relaxed);
    }

    /// Whether the index's tables grew for new series in the last
    /// [`GROWTH_QUIET_MS`]: a burst of new series may be writing the index
    /// for long stretches, and a reader can wait that long for it.
    pub(crate) fn index_growing(&self) -> bool {
        let at = self.grown_at.load(Ordering::Relaxed);
        at != 0 && growth_clock().saturating_sub(at) < GROWTH_QUIET_MS
    }

    pub(super) fn note_times(&self, lo: i64, hi: i64) {
        if lo <= hi {
            self.min_time.fetch_min(lo, Ordering::AcqRel);
            self.max_time.fetch_max(hi, Ordering::AcqRel);
        }
    }

    /// Whether series `r` is in memory.
    pub(crate) fn contains(&self, r: SeriesRef) -> bool {
        self.shards[shard_of(r)].lock().series.contains_key(&r)
    }

    pub(crate) fn disk(&self) -> Option<&Arc<dyn DiskChunks>> {
        self.disk.get()
    }

    pub(crate) fn index(&self) -> RwLockReadGuard<'_, Index> {
        read(&self.index)
    }

    /// Bounds of the committed samples, if any.
    pub(crate) fn time_bounds(&self) -> Option<(i64, i64)> {
        let (a, b) = (
            self.min_time.load(Ordering::Acquire),
            self.max_time.load(Ordering::Acquire),
        );
        (a <= b).then_some((a, b))
    }

    /// Calls `f` once per shard with the series among `refs` (sorted or not)
    /// that still exist, holding that shard's lock and the index read lock.
    pub(crate) fn visit(
        &self,
        refs: &[SeriesRef],
        f: impl FnMut(&Index, &[(SeriesRef, &MemSeries)]),
    ) {
        self.visit_part(refs, 0, 1, f);
    }

    /// [`Inner::visit`] of the shards whose number is `part` modulo
    /// `parts` alone: `parts` threads, one part each, visit all of `refs`
    /// without waiting for each other's shard locks.
    pub(crate) fn visit_part(
        &self,
        refs: &[SeriesRef],
        part: usize,
        parts: usize,
        mut f: impl FnMut(&Index, &[(SeriesRef, &MemSeries)]),
    ) {
        let parts = parts.max(1);
        let mut buckets: [Vec<SeriesRef>; SHARDS] = Default::default();
        for &r in refs {
            let i = shard_of(r);
            if i % parts == part {
                buckets[i].push(r);
            }
        }
        for (i, bucket) in buckets.iter().enumerate() {
            if bucket.is_empty() {
                continue;
            }
            let (shard, ix) = lock_with_index(&self.shards[i], &self.index);
            let batch: Vec<(SeriesRef, &MemSeries)> = bucket
                .iter()
                .filter_map(|&r| shard.series.get(&r).map(|s| (r, &**s)))
                .collect();
            f(&ix, &batch);
        }
    }

    /// Finds the series with exactly `labels`, creating it if needed.
    /// A new series takes reference `want` if that is free and in the right
    /// shard (restoring a checkpoint keeps references stable).
    pub(super) fn get_or_create(
        &self,
        labels: &Labels,
        want: SeriesRef,
    ) -> Result<(SeriesRef, MutexGuard<'_, Shard>), Error> {
        self.get_or_create_as(labels, want, false)
    }

    /// As [`Inner::get_or_create`]; with `revive`, a series that is not in
    /// memory is first looked for among the cold ones, and comes back with
    /// its old reference (under the shard's lock, so that two appenders of
    /// the same labels cannot both miss it).
    pub(super) fn get_or_create_as(
        &self,
        labels: &Labels,
        want: SeriesRef,
        revive: bool,
    ) -> Result<(SeriesRef, MutexGuard<'_, Shard>), Error> {
        self.get_or_create_hashed(labels, hash_labels(labels), want, revive)
    }

    /// As [`Inner::get_or_create_as`], with `hash` the [`hash_labels`] of
    /// `labels`, computed by the caller (start-up hashes on another thread).
    pub(super) fn get_or_create_hashed(
        &self,
        labels: &Labels,
        hash: u64,
        mut want: SeriesRef,
        revive: bool,
    ) -> Result<(SeriesRef, MutexGuard<'_, Shard>), Error> {
        if labels.is_empty() {
            return Err(Error::EmptyLabelset);
        }
        debug_assert_eq!(hash, hash_labels(labels));
        let si = (hash >> (64 - SHARD_BITS)) as usize;
        let (mut shard, ix) = lock_with_index(&self.shards[si], &self.index);
        if let Some(r) = find(&shard, &ix, labels, hash) {
            return Ok((r, shard));
        }
        // A new series. Should it grow one of the index's large tables (a
        // rehash of millions of entries when a target bursts into new
        // series), that happens first, without the shard's lock, which
        // every scrape of a series in this shard needs. Restoring at open
        // (`want`) has no scrape to hold up.
        if want == 0 && ix.needs_room(labels) {
            drop((shard, ix));
            let mut w = write(&self.index);
            w.make_room(labels);
            if w.num_series() >= GROWTH_NOTED_SERIES {
                self.note_growth();
            }
            drop(w);
            let (again, ix) = lock_with_index(&self.shards[si], &self.index);
            shard = again;
            if let Some(r) = find(&shard, &ix, labels, hash) {
                return Ok((r, shard));
            }
        } else {
            drop(ix);
        }
        let mut revived = None;
        if revive && let Some(disk) = self.disk.get() {
            revived = disk.revive(hash, labels)?;
            if let Some((r, _)) = revived {
                want = r;
            }
        }
        // One counter for all shards: references grow in creation order, so
        // postings lists take new series at their end (a bulk load from a
        // checkpoint would otherwise insert into the middle, quadratically).
        let r = if want != 0 && shard_of(want) == si && !shard.series.contains_key(&want) {
            self.next_seq
                .fetch_max(want >> SHARD_BITS, Ordering::Relaxed);
            want
        } else {
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
            seq << SHARD_BITS | si as u64
        };
        let range = match revived {
            Some((old, range)) if old == r => Some(range),
            Some((old, _)) => {
                tracing::error!(
                    series = old,
                    now = r,
                    "a cold series came back under another reference"
                );
                None
            }
            None => None,
        };
        self.insert_series(&mut shard, r, labels, hash, range);
        Ok((r, shard))
    }

    /// Adds series `r` to the index, the WAL and `shard`; `stored` is its
    /// persisted range when it comes back from the chunk store.
    fn insert_series(
        &self,
        shard: &mut Shard,
        r: SeriesRef,
        labels: &Labels,
        hash: u64,
        stored: Option<TimeRange>,
    ) {
        let syms = write(&self.index).add_series(r, labels);
        if let Some(log) = self.log.get() {
            log.log_series(r, labels);
        }
        let mut series = Box::new(MemSeries::new(syms, hash));
        if let Some((a, b)) = stored {
            series.set_stored(Some((a, b)));
            // Queries look at the head only within its time bounds.
            self.note_times(a, b);
        }
        shard.series.insert(r, series);
        shard.link_hash(r, hash);
    }

    /// Brings cold series `r` back into `shard` (its own, locked); false if
    /// the chunk store has no such cold series.
    pub(super) fn revive_ref(&self, shard: &mut Shard, r: SeriesRef) -> bool {
        let Some(disk) = self.disk.get() else {
            return false;
        };
        match disk.revive_ref(r) {
            Ok(Some((labels, hash, range))) => {
                self.insert_series(shard, r, &labels, hash, Some(range));
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %e, series = r, "cannot bring a series back from the chunk store");
                false
            }
        }
    }
}

impl Head {
    pub fn new(opts: HeadOptions) -> Head {
        Head {
            inner: Arc::new(Inner::new(opts)),
        }
    }

    pub fn options(&self) -> &HeadOptions {
        &self.inner.opts
    }

    /// The oldest and newest committed sample times, if any.
    pub fn time_bounds(&self) -> Option<(i64, i64)> {
        self.inner.time_bounds()
    }

    /// Of `refs`, those that hold a sample before `t` in memory (open or
    /// closed chunks not yet in the chunk store).
    pub fn in_memory_before(&self, refs: &[SeriesRef], t: i64) -> FxHashSet<SeriesRef> {
        let mut out = FxHashSet::default();
        for &r in refs {
            let shard = self.inner.shards[shard_of(r)].lock();
            let Some(s) = shard.series.get(&r) else {
                continue;
            };
            let first = s
                .closed
                .first()
                .map(|c| c.min_t)
                .or_else(|| s.open.as_ref().map(OpenChunk::min_t));
            if first.is_some_and(|m| m < t) {
                out.insert(r);
            }
        }
        out
    }

    /// Whether a series with this reference exists.
    pub fn has_series(&self, r: SeriesRef) -> bool {
        self.inner.contains(r)
    }

    /// The labels of a series by reference, if it exists.
    pub fn series_labels(&self, r: SeriesRef) -> Option<Labels> {
        let shard = self.inner.shards[shard_of(r)].lock();
        let s = shard.series.get(&r)?;
        Some(read(&self.inner.index).labels(&s.labels))
    }

    /// Drops every chunk that ends before `min_time`, then every series left
    /// without chunks (unless an appender has uncommitted samples for it), and
    /// removes them from the index. Samples before `min_time` are refused
    /// afterwards with [`Error::OutOfBounds`].
    pub fn gc(&self, min_time: i64) -> GcStats {
        let inner = &*self.inner;
        inner.min_valid_time.fetch_max(min_time, Ordering::AcqRel);
        let mut stats = GcStats::default();
        let mut new_min = i64::MAX;
        for shard in &inner.shards {
            let mut removed: Vec<(SeriesRef, SymLabels)> = Vec::new();
            {
                let mut shard = shard.lock();
                let mut dead = Vec::new();
                for (r, s) in shard.series.iter_mut() {
                    stats.removed_chunks += s.truncate(min_time);
                    match s.time_range() {
                        Some((a, _)) => new_min = new_min.min(a),
                        None if s.is_empty() && s.pending == 0 => dead.push(*r),
                        None => {}
                    }
                }
                for r in dead {
                    let Some(s) = shard.series.remove(&r) else {
                        continue;
                    };
                    shard.unlink_hash(r, s.hash);
                    stats.removed_refs.push(r);
                    removed.push((r, s.labels));
                }
            }
            stats.removed_series += removed.len();
            if !removed.is_empty() {
                write(&inner.index).remove_series(&removed);
            }
        }
        if new_min == i64::MAX {
            inner.min_time.store(i64::MAX, Ordering::Release);
            inner.max_time.store(i64::MIN, Ordering::Release);
        } else {
            inner.min_time.store(new_min, Ordering::Release);
        }
        stats
    }
}

impl Head {
    /// Cardinality of the series in memory, from the index alone
    /// (`/api/v1/status/tsdb`), `limit` entries per list.
    pub fn cardinality(&self, limit: usize) -> Cardinality {
        read(&self.inner.index).cardinality(crate::model::METRIC_NAME, limit)
    }

    /// Chunks in memory, open and closed (`prometheus_tsdb_head_chunks`).
    pub fn num_chunks(&self) -> usize {
        let mut n = 0;
        for shard in &self.inner.shards {
            let shard = shard.lock();
            n += shard
                .series
                .values()
                .map(|s| s.closed.len() + usize::from(s.open.is_some()))
                .sum::<usize>();
        }
        n
    }

    /// Counts and estimated memory.
    pub fn stats(&self) -> HeadStats {
        let mut st = HeadStats::default();
        for shard in &self.inner.shards {
            let shard = shard.lock();
            st.num_series += shard.series.len();
            st.heap_bytes += shard.series.capacity() * 17 + shard.by_hash.capacity() * 9;
            for s in shard.series.values() {
                let (all, chunks) = s.heap_bytes();
                st.heap_bytes += all;
                st.chunk_bytes += chunks;
                st.num_chunks += s.closed.len() + usize::from(s.open.is_some());
                st.open_samples += s.open.as_ref().map_or(0, |o| o.chunk.num_samples());
            }
        }
        let ix = read(&self.inner.index);
        st.heap_bytes += ix.heap_bytes();
        st.num_symbols = ix.symbols().len();
        st
    }
}

impl Shard {
    /// Adds series `r`, already in `series`, to the table by label hash.
    pub(super) fn link_hash(&mut self, r: SeriesRef, hash: u64) {
        let series = &self.series;
        self.by_hash
            .insert_unique(table_hash(hash), r, |r| series_hash(series, *r));
    }

    /// Makes room for `n` more series in the table by label hash.
    pub(super) fn reserve_hashes(&mut self, n: usize) {
        let series = &self.series;
        self.by_hash.reserve(n, |r| series_hash(series, *r));
    }

    pub(super) fn unlink_hash(&mut self, r: SeriesRef, hash: u64) {
        if let Ok(e) = self.by_hash.find_entry(table_hash(hash), |&x| x == r) {
            e.remove();
        }
    }
}

/// The table position of series `r`, which the table holds only while
/// `series` does (a resize of the table asks for every member's).
fn series_hash(series: &RefMap<Box<MemSeries>>, r: SeriesRef) -> u64 {
    series.get(&r).map_or(0, |s| table_hash(s.hash))
}

impl Queryable for Head {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, Error> {
        Ok(Box::new(HeadQuerier::new(&self.inner, mint, maxt)))
    }

    fn may_block_readers(&self) -> bool {
        self.inner.index_growing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hash(shard: &Shard, hash: u64) -> Vec<SeriesRef> {
        let mut v: Vec<SeriesRef> = shard
            .by_hash
            .iter_hash(table_hash(hash))
            .copied()
            .filter(|r| shard.series.get(r).is_some_and(|s| s.hash == hash))
            .collect();
        v.sort_unstable();
        v
    }

    /// A reader of a shard and the index never waits for the index with
    /// the shard locked: a writer holding the index (growing its tables)
    /// would keep every scrape of that shard waiting as long.
    #[test]
    fn waiting_for_the_index_leaves_the_shard_unlocked() {
        let inner = Arc::new(Inner::new(HeadOptions::default()));
        let writing = write(&inner.index);
        let reader = {
            let inner = inner.clone();
            std::thread::spawn(move || {
                let (_shard, ix) = lock_with_index(&inner.shards[0], &inner.index);
                ix.num_series()
            })
        };
        // The reader has had time to take the shard and find the index
        // taken; the shard must be free again each time we look.
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            assert!(
                inner.shards[0].try_lock().is_some(),
                "shard held while waiting for the index"
            );
        }
        drop(writing);
        assert_eq!(reader.join().unwrap(), 0);
    }

    /// Creating series notes the index's growth only once it is large, and
    /// readers are then told they may wait.
    #[test]
    fn a_large_index_growing_tells_readers() {
        let head = Head::new(HeadOptions::default());
        let create = |i: usize| {
            let labels =
                Labels::from_pairs([("__name__", "burst".to_string()), ("series", i.to_string())]);
            drop(head.inner.get_or_create(&labels, 0).unwrap());
        };
        for i in 0..1000 {
            create(i);
        }
        assert!(!head.may_block_readers(), "a small index's growth is noted");
        for i in 1000..(GROWTH_NOTED_SERIES * 2 + 10) {
            create(i);
        }
        assert!(head.may_block_readers());
    }

    /// A lookup of a series that is not there meets almost no candidate,
    /// though every hash of a shard shares its top bits: each candidate is
    /// a series read from memory, and a new series' labels are looked up
    /// once before it is created.
    #[test]
    fn a_missing_series_meets_few_candidates() {
        let mut shard = Shard::default();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> SHARD_BITS | 5 << (64 - SHARD_BITS)
        };
        for i in 1..=60_000u64 {
            let hash = next();
            shard.series.insert(
                i << SHARD_BITS,
                Box::new(MemSeries::new(SymLabels::default(), hash)),
            );
            shard.link_hash(i << SHARD_BITS, hash);
        }
        let lookups = 20_000;
        let met: usize = (0..lookups)
            .map(|_| shard.by_hash.iter_hash(table_hash(next())).count())
            .sum();
        let per_lookup = met as f64 / lookups as f64;
        assert!(per_lookup < 0.5, "{per_lookup} candidates per lookup");
    }

    /// Series whose labels share a hash are all found, the table keeps
    /// finding every series across its resizes, and a removed one is gone.
    #[test]
    fn series_sharing_a_label_hash_are_all_found() {
        let mut shard = Shard::default();
        let add = |shard: &mut Shard, r: SeriesRef, hash: u64| {
            shard
                .series
                .insert(r, Box::new(MemSeries::new(SymLabels::default(), hash)));
            shard.link_hash(r, hash);
        };
        let other = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for r in [1 << 4, 2 << 4] {
            add(&mut shard, r, 42);
        }
        for i in 3..5000u64 {
            add(&mut shard, i << 4, other(i));
        }
        add(&mut shard, 5000 << 4, 42);
        assert_eq!(with_hash(&shard, 42), [1 << 4, 2 << 4, 5000 << 4]);
        for i in 3..5000u64 {
            assert_eq!(with_hash(&shard, other(i)), [i << 4]);
        }
        shard.series.remove(&(2 << 4));
        shard.unlink_hash(2 << 4, 42);
        assert_eq!(with_hash(&shard, 42), [1 << 4, 5000 << 4]);
        assert_eq!(shard.by_hash.len(), 4999);
    }
}
