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

use std::hash::Hasher;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use rustc_hash::{FxHashMap, FxHashSet, FxHasher};

use crate::model::{Labels, Matcher, Sample};
use crate::storage::{Appendable, Appender, Error, Querier, Queryable, Rejected, SeriesRef};

use super::chunkenc::{Encoding, SampleIter, XorChunk, XorIter};
use super::index::{Cardinality, Index, SymLabels};
use super::querier::HeadQuerier;
use super::refmap::RefMap;

/// Prometheus's default head chunk range: two hours in milliseconds.
pub const DEFAULT_CHUNK_RANGE: i64 = 2 * 60 * 60 * 1000;

/// Prometheus's target number of samples per chunk.
pub const DEFAULT_SAMPLES_PER_CHUNK: usize = 120;

const SHARD_BITS: u32 = 4;
/// Series handled per shard lock by the background copies (flush,
/// checkpoint).
const PIECE: usize = 1024;
const SHARDS: usize = 1 << SHARD_BITS;

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

/// Where committed batches go before they become visible: the WAL.
pub trait CommitLog: Send + Sync {
    /// A series was created; called before any batch that names it is
    /// logged, with the shard of `r` locked.
    fn log_series(&self, r: SeriesRef, labels: &Labels);
    /// Logs one batch; an error fails the commit and nothing is applied.
    fn log_samples(
        &self,
        samples: &mut dyn Iterator<Item = (SeriesRef, i64, f64)>,
    ) -> Result<(), Error>;
}

/// Number of shards, for callers that walk the head shard by shard.
pub const SHARD_COUNT: usize = SHARDS;

/// One closed chunk of a series, shared, as flushes and restores hand it on.
#[derive(Debug, Clone)]
pub struct ChunkSnapshot {
    pub min_t: i64,
    pub max_t: i64,
    pub data: Arc<[u8]>,
}

/// A snapshot's chunks decoded for [`Head::restore_prepared`]: the last one
/// reopened for appends.
pub struct Restore {
    last_t: i64,
    last_v: u64,
    closed: Vec<ClosedChunk>,
    open: Option<OpenChunk>,
}

impl Restore {
    /// Reopens the last chunk (which reads all of its samples); a chunk that
    /// does not decode stays closed.
    pub fn new(last_t: i64, last_v: u64, mut chunks: Vec<ChunkSnapshot>) -> Restore {
        let open = chunks
            .pop()
            .and_then(|c| match XorChunk::from_bytes(c.data.to_vec()) {
                Ok(chunk) => Some(OpenChunk { chunk }),
                Err(_) => {
                    chunks.push(c);
                    None
                }
            });
        Restore {
            last_t,
            last_v,
            closed: chunks
                .into_iter()
                .map(|c| ClosedChunk {
                    min_t: c.min_t,
                    max_t: c.max_t,
                    data: c.data,
                })
                .collect(),
            open,
        }
    }
}

/// A series the chunk store holds: reference, labels, persisted range.
pub type StoredSeries = (SeriesRef, Labels, TimeRange);

/// A first and last timestamp.
pub type TimeRange = (i64, i64);

/// Where chunks moved out of memory are read back: the chunk store. It also
/// keeps the series that left memory ("cold" series) findable.
pub trait DiskChunks: Send + Sync {
    /// Cold series that pass every matcher and have chunks in `[mint,
    /// maxt]`, with their labels and persisted ranges.
    fn cold_select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<StoredSeries>, Error>;
    /// Label names of cold series (`name` None) or the values of label
    /// `name` (of those that pass `matchers`, if any).
    fn cold_labels(
        &self,
        name: Option<&str>,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, Error>;
    /// Takes back the cold series with exactly `labels`: its reference and
    /// persisted range; it is no longer cold afterwards.
    fn revive(&self, hash: u64, labels: &Labels) -> Result<Option<(SeriesRef, TimeRange)>, Error>;
    /// Takes back cold series `r`: its labels, label hash and persisted
    /// range.
    fn revive_ref(&self, r: SeriesRef) -> Result<Option<(Labels, u64, TimeRange)>, Error>;

    /// Appends the chunks of `r` (encoding and bytes) overlapping
    /// `[mint, maxt]` that end at or before `upto`, in time order.
    fn read(
        &self,
        r: SeriesRef,
        mint: i64,
        maxt: i64,
        upto: i64,
        out: &mut Vec<(Encoding, Vec<u8>)>,
    ) -> Result<(), Error>;
}

/// One series' part of a flush (see [`Head::flush_candidates`]).
#[derive(Debug, Clone)]
pub struct FlushItem {
    pub r: SeriesRef,
    /// Set when the chunk store does not have the labels yet: encoded as
    /// [`super::wal::put_labels`] does, straight from the index's symbols.
    pub labels: Option<Vec<u8>>,
    /// Closed chunks, in time order.
    pub chunks: Vec<ChunkSnapshot>,
    /// The persisted range once these chunks are written.
    pub range: Option<(i64, i64)>,
}

/// The in-memory time-series store. Cloning is cheap and shares the store.
#[derive(Clone, Default)]
pub struct Head {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    opts: HeadOptions,
    shards: [Mutex<Shard>; SHARDS],
    index: RwLock<Index>,
    // Bounds of committed samples; `i64::MAX`/`i64::MIN` while empty.
    min_time: AtomicI64,
    max_time: AtomicI64,
    // Samples before this are out of bounds: they were garbage-collected.
    min_valid_time: AtomicI64,
    log: OnceLock<Arc<dyn CommitLog>>,
    disk: OnceLock<Arc<dyn DiskChunks>>,
    next_seq: AtomicU64,
    // Commits hold it shared from logging to applying; a checkpoint holds it
    // exclusively to find a moment when the log and the head agree.
    gate: RwLock<()>,
    // Emptied appender buffers kept for the next appender: a scrape's batch
    // would otherwise grow 16 vectors and a map from nothing every time.
    spare: Mutex<Vec<AppendBuffers>>,
}

/// An appender's per-batch buffers.
#[derive(Default)]
struct AppendBuffers {
    pending: [Vec<Pending>; SHARDS],
    last: FxHashMap<SeriesRef, (i64, u64)>,
}

/// Spare buffers kept at most, and the largest batch whose buffers are kept.
const SPARE_BUFFERS: usize = 16;
const SPARE_MAX_SAMPLES: usize = 1 << 16;

impl Default for Inner {
    fn default() -> Self {
        Inner::new(HeadOptions::default())
    }
}

#[derive(Default)]
struct Shard {
    series: RefMap<Box<MemSeries>>,
    // Label hash to the series with that hash; later series with the same
    // hash (a collision) go to `collisions`.
    by_hash: FxHashMap<u64, SeriesRef>,
    collisions: FxHashMap<u64, Vec<SeriesRef>>,
}

struct ClosedChunk {
    min_t: i64,
    max_t: i64,
    // Shared so that readers (and later a flusher) take it without copying.
    data: Arc<[u8]>,
}

struct OpenChunk {
    chunk: XorChunk,
}

impl OpenChunk {
    /// The first sample's time; an open chunk always holds one, as it is
    /// opened for the sample that starts it.
    fn min_t(&self) -> i64 {
        self.chunk.first_t().unwrap_or(i64::MAX)
    }
}

/// Field order is fixed (`repr(C)`) so that everything an append reads or
/// writes sits in the first 94 bytes: at most two cache lines, both of which
/// [`warm`] touches before a commit's appends. With the compiler's order the
/// hot fields spread over three lines and the append loop waited on one.
#[repr(C)]
pub(crate) struct MemSeries {
    // Hot: every append.
    open: Option<OpenChunk>,
    last_t: i64,
    last_v: u64,
    next_at: i64,
    // Appenders holding uncommitted samples for this series; gc keeps it.
    pending: u32,
    has_last: bool,
    // Whether the chunk store has the labels, so checkpoints can omit them.
    labels_stored: bool,
    // Cold: checkpoints, queries, gc.
    hash: u64,
    // The range of the chunks moved to disk (`i64::MAX`, `i64::MIN` when
    // none). Readers take samples up to `disk_max` from disk and only later
    // ones from memory, so a chunk briefly in both places counts once.
    disk_min: i64,
    disk_max: i64,
    pub(crate) labels: SymLabels,
    // Invariant: chunks are in time order and do not overlap; the open chunk
    // comes after every closed one.
    closed: Vec<ClosedChunk>,
}

/// A commit locks a shard for at most this many of its samples at a time:
/// a scrape of millions of series would otherwise hold each shard for
/// long enough to stall every other target's commit. Appends to different
/// series need no atomicity among themselves (queries may see a commit
/// half applied, as in Prometheus); a few thousand keep the lock's cost
/// per sample nil.
const LOCKED_SAMPLES: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// The shard that holds series `r`.
pub(crate) fn shard_of(r: SeriesRef) -> usize {
    (r & (SHARDS as u64 - 1)) as usize
}

fn hash_labels(labels: &Labels) -> u64 {
    let mut h = FxHasher::default();
    for l in labels {
        h.write(l.name.as_bytes());
        h.write_u8(0xff);
        h.write(l.value.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// Reads the series `refs` and both ends of their open chunks so that the
/// loop that appends to them finds them in cache: these loads do not depend
/// on each other, so the CPU overlaps their misses, where the appending loop
/// would wait for each in turn (a million series do not fit in any cache).
/// Done in stages over groups of series (table entries, then series, then
/// chunk ends) so that no load waits on another's miss: one series after
/// another, each series' misses came in turn.
fn warm(shard: &Shard, refs: impl Iterator<Item = SeriesRef>) {
    const GROUP: usize = 32;
    let mut refs = refs.peekable();
    let mut acc = 0u64;
    while refs.peek().is_some() {
        let mut found: [Option<&MemSeries>; GROUP] = [None; GROUP];
        for (slot, r) in found.iter_mut().zip(refs.by_ref()) {
            *slot = shard.series.get(&r).map(|s| &**s);
        }
        // The first and the last hot field: both lines of the hot part.
        for s in found.iter().flatten() {
            acc ^= u64::from(s.labels_stored);
        }
        // The open chunk's end, where the sample goes, and its start, where
        // every append rewrites the sample count: two lines once the chunk
        // outgrows 64 bytes.
        for s in found.iter().flatten() {
            if let Some(o) = &s.open {
                let b = o.chunk.bytes();
                acc ^= u64::from(b.first().copied().unwrap_or(0) ^ b.last().copied().unwrap_or(0));
            }
        }
    }
    std::hint::black_box(acc);
}

/// The end of the chunk range that contains `t` (Prometheus `rangeForTimestamp`).
fn range_for_timestamp(t: i64, width: i64) -> i64 {
    let width = width.max(1);
    ((t / width) as i128 * width as i128 + width as i128).min(i64::MAX as i128) as i64
}

/// Where to cut a chunk so that the rest of the chunk range is split into
/// chunks of equal size, assuming samples keep coming at the rate seen from
/// `start` to `cur` (Prometheus `computeChunkEndTime`, for a chunk 1/4 full).
fn compute_chunk_end_time(start: i64, cur: i64, max: i64) -> i64 {
    let span = max as i128 - start as i128;
    let n = span / ((cur as i128 - start as i128 + 1) * 4);
    if n <= 1 {
        return max;
    }
    (start as i128 + span / n) as i64
}

// The hot part must stay within two cache lines wherever the allocation
// starts, and the whole in jemalloc's 160-byte size class (a million series
// in the next class, 192 bytes, cost 32 MB more).
const _: () = assert!(std::mem::offset_of!(MemSeries, hash) <= 96);
const _: () = assert!(std::mem::size_of::<MemSeries>() <= 160);

impl MemSeries {
    fn new(labels: SymLabels, hash: u64) -> MemSeries {
        MemSeries {
            labels,
            hash,
            closed: Vec::new(),
            open: None,
            next_at: i64::MIN,
            last_t: 0,
            last_v: 0,
            has_last: false,
            pending: 0,
            disk_min: i64::MAX,
            disk_max: i64::MIN,
            labels_stored: false,
        }
    }

    /// Whether a sample may be appended after the committed ones.
    fn appendable(&self, t: i64, v: u64) -> Result<Appendability, Error> {
        if !self.has_last || t > self.last_t {
            Ok(Appendability::Append)
        } else if t == self.last_t {
            // An identical sample is accepted and dropped, as in Prometheus;
            // values compare by bits so that NaNs and stale markers work.
            if v == self.last_v {
                Ok(Appendability::Duplicate)
            } else {
                Err(Error::DuplicateSampleForTimestamp)
            }
        } else {
            Err(Error::OutOfOrderSample)
        }
    }

    /// Appends a committed sample, cutting chunks by Prometheus's rule.
    /// Returns false (and drops the sample) if it is not after the last one.
    fn append(&mut self, t: i64, v: f64, opts: &HeadOptions) -> bool {
        if self.has_last && t <= self.last_t {
            return false;
        }
        let per_chunk = opts.samples_per_chunk.max(4);
        let cut = match &self.open {
            None => true,
            Some(o) => {
                let n = o.chunk.num_samples();
                if n == per_chunk / 4 {
                    self.next_at = compute_chunk_end_time(o.min_t(), self.last_t, self.next_at);
                }
                t >= self.next_at || n >= per_chunk * 2
            }
        };
        if cut {
            self.cut(t, opts);
        }
        let Some(o) = self.open.as_mut() else {
            return false;
        };
        if o.chunk.append(t, v).is_err() {
            return false;
        }
        self.last_t = t;
        self.last_v = v.to_bits();
        self.has_last = true;
        true
    }

    fn cut(&mut self, t: i64, opts: &HeadOptions) {
        if let Some(o) = self.open.take()
            && o.chunk.num_samples() > 0
        {
            self.closed.push(ClosedChunk {
                min_t: o.min_t(),
                max_t: self.last_t,
                data: Arc::from(o.chunk.into_bytes()),
            });
        }
        self.open = Some(OpenChunk {
            chunk: XorChunk::with_capacity(32),
        });
        self.next_at = range_for_timestamp(t, opts.chunk_range);
    }

    /// Records what the chunk store holds of the series (its labels, and
    /// the range of its chunks if any). A series known only from disk takes
    /// its last timestamp from there, so that older samples are refused.
    fn set_stored(&mut self, range: Option<TimeRange>) {
        self.labels_stored = true;
        match range {
            Some((a, b)) => {
                self.disk_min = a;
                self.disk_max = b;
                if !self.has_last || self.last_t < b {
                    self.last_t = b;
                    self.last_v = 0;
                    self.has_last = true;
                }
            }
            None => {
                self.disk_min = i64::MAX;
                self.disk_max = i64::MIN;
            }
        }
    }

    /// Closes the open chunk so that the next flush moves it to disk; the
    /// next sample opens a new one.
    fn close_open(&mut self) -> bool {
        match self.open.take() {
            Some(o) if o.chunk.num_samples() > 0 => {
                self.closed.push(ClosedChunk {
                    min_t: o.min_t(),
                    max_t: self.last_t,
                    data: Arc::from(o.chunk.into_bytes()),
                });
                true
            }
            _ => false,
        }
    }

    /// Whether the series may leave memory: idle since before `before`, with
    /// everything it has in the chunk store.
    fn can_go_cold(&self, before: i64) -> bool {
        self.labels_stored
            && self.pending == 0
            && self.closed.is_empty()
            && self.open.is_none()
            && self.disk_range().is_some_and(|(_, b)| b < before)
            && (!self.has_last || self.last_t < before)
    }

    /// The time range of the samples held in memory, if any.
    fn mem_range(&self) -> Option<(i64, i64)> {
        let min = self
            .closed
            .first()
            .map(|c| c.min_t)
            .or(self.open.as_ref().and_then(|o| o.chunk.first_t()))?;
        Some((min, self.last_t))
    }

    /// The range of the chunks on disk, if any.
    pub(crate) fn disk_range(&self) -> Option<(i64, i64)> {
        (self.disk_min <= self.disk_max).then_some((self.disk_min, self.disk_max))
    }

    /// The time range of the samples held, in memory or on disk, if any.
    pub(crate) fn time_range(&self) -> Option<(i64, i64)> {
        match (self.mem_range(), self.disk_range()) {
            (Some(m), Some(d)) => Some((m.0.min(d.0), m.1.max(d.1))),
            (m, d) => m.or(d),
        }
    }

    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.time_range()
            .is_some_and(|(a, b)| a <= maxt && b >= mint)
    }

    /// Appends the samples with `mint <= t <= maxt` to `out`.
    #[cfg(test)]
    pub(crate) fn samples(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        let mut chunks = Vec::new();
        self.chunks_in(mint, maxt, &mut chunks);
        decode_range(&chunks, mint, maxt, out);
    }

    /// Appends the chunks that overlap `[mint, maxt]` to `out`: closed ones
    /// shared, the open one copied, so that decoding can happen unlocked.
    pub(crate) fn chunks_in(&self, mint: i64, maxt: i64, out: &mut Vec<ChunkData>) {
        for c in &self.closed {
            if c.min_t <= maxt && c.max_t >= mint {
                out.push(ChunkData::Shared(c.data.clone()));
            }
        }
        if let Some(o) = &self.open
            && o.min_t() <= maxt
            && self.last_t >= mint
        {
            out.push(ChunkData::Copied(o.chunk.bytes().to_vec()));
        }
    }

    /// The closed chunks, shared.
    fn closed_snapshots(&self) -> Vec<ChunkSnapshot> {
        self.closed
            .iter()
            .map(|c| ChunkSnapshot {
                min_t: c.min_t,
                max_t: c.max_t,
                data: c.data.clone(),
            })
            .collect()
    }

    /// Drops chunks that end before `min_time`; returns how many.
    fn truncate(&mut self, min_time: i64) -> usize {
        let keep_from = self.closed.partition_point(|c| c.max_t < min_time);
        self.closed.drain(..keep_from);
        let mut removed = keep_from;
        if self.has_last && self.last_t < min_time && self.open.take().is_some() {
            removed += 1;
        }
        removed
    }

    fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.open.is_none() && self.disk_range().is_none()
    }

    fn heap_bytes(&self) -> (usize, usize) {
        // An Arc allocation carries two counters before the bytes.
        let mut chunks = self.closed.iter().map(|c| c.data.len() + 16).sum::<usize>();
        chunks += self.open.as_ref().map_or(0, |o| o.chunk.capacity());
        let other = std::mem::size_of::<MemSeries>()
            + self.labels.len() * 4
            + self.closed.capacity() * std::mem::size_of::<ClosedChunk>();
        (other + chunks, chunks)
    }
}

/// Encoded chunk bytes taken out of a series (XOR) or read from disk, for
/// reading.
pub(crate) enum ChunkData {
    Shared(Arc<[u8]>),
    Copied(Vec<u8>),
    Stored(Encoding, Vec<u8>),
}

impl ChunkData {
    fn iter(&self) -> SampleIter<'_> {
        match self {
            ChunkData::Shared(b) => SampleIter::Xor(XorIter::new(b)),
            ChunkData::Copied(b) => SampleIter::Xor(XorIter::new(b)),
            ChunkData::Stored(encoding, b) => SampleIter::new(*encoding, b),
        }
    }
}

/// Appends the samples of `chunks` (in time order) with `mint <= t <= maxt`.
pub(crate) fn decode_range(chunks: &[ChunkData], mint: i64, maxt: i64, out: &mut Vec<Sample>) {
    for c in chunks {
        let mut it = c.iter();
        if let Some((t, v)) = it.seek(mint)
            && t <= maxt
        {
            out.push(Sample { t, v });
            out.extend(
                it.take_while(|&(t, _)| t <= maxt)
                    .map(|(t, v)| Sample { t, v }),
            );
        }
    }
}

enum Appendability {
    Append,
    Duplicate,
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
        }
    }

    fn note_times(&self, lo: i64, hi: i64) {
        if lo <= hi {
            self.min_time.fetch_min(lo, Ordering::AcqRel);
            self.max_time.fetch_max(hi, Ordering::AcqRel);
        }
    }

    /// Whether series `r` is in memory.
    pub(crate) fn contains(&self, r: SeriesRef) -> bool {
        lock(&self.shards[shard_of(r)]).series.contains_key(&r)
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
        mut f: impl FnMut(&Index, &[(SeriesRef, &MemSeries)]),
    ) {
        let mut buckets: [Vec<SeriesRef>; SHARDS] = Default::default();
        for &r in refs {
            buckets[shard_of(r)].push(r);
        }
        for (i, bucket) in buckets.iter().enumerate() {
            if bucket.is_empty() {
                continue;
            }
            let shard = lock(&self.shards[i]);
            let ix = read(&self.index);
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
    fn get_or_create(
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
    fn get_or_create_as(
        &self,
        labels: &Labels,
        mut want: SeriesRef,
        revive: bool,
    ) -> Result<(SeriesRef, MutexGuard<'_, Shard>), Error> {
        if labels.is_empty() {
            return Err(Error::EmptyLabelset);
        }
        let hash = hash_labels(labels);
        let si = (hash >> (64 - SHARD_BITS)) as usize;
        let mut shard = lock(&self.shards[si]);
        {
            let ix = read(&self.index);
            let candidates = shard
                .by_hash
                .get(&hash)
                .into_iter()
                .chain(shard.collisions.get(&hash).into_iter().flatten());
            for &r in candidates {
                if shard
                    .series
                    .get(&r)
                    .is_some_and(|s| ix.labels_equal(&s.labels, labels))
                {
                    return Ok((r, shard));
                }
            }
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
        match shard.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => {
                shard.collisions.entry(hash).or_default().push(r);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(r);
            }
        }
    }

    /// Brings cold series `r` back into `shard` (its own, locked); false if
    /// the chunk store has no such cold series.
    fn revive_ref(&self, shard: &mut Shard, r: SeriesRef) -> bool {
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
            let shard = lock(&self.inner.shards[shard_of(r)]);
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
        let shard = lock(&self.inner.shards[shard_of(r)]);
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
                let mut shard = lock(shard);
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

    /// Attaches the log that sees every later series and commit. Only the
    /// first call counts.
    pub fn set_commit_log(&self, log: Arc<dyn CommitLog>) {
        let _ = self.inner.log.set(log);
    }

    /// Runs `f` while no commit is between logging and applying.
    pub fn quiesce<R>(&self, f: impl FnOnce() -> R) -> R {
        let _gate = write(&self.inner.gate);
        f()
    }

    /// Appends to `out` a checkpoint record for every series of shard
    /// `shard` that holds samples in memory, with those chunks (the open one
    /// last), encoded straight from memory under the shard's lock. Series
    /// whose labels the chunk store holds are written without them.
    pub fn checkpoint_shard(&self, shard: usize, out: &mut Vec<u8>) {
        self.in_pieces(
            shard,
            |_| true,
            |r, s, ix| {
                if !s.has_last || s.mem_range().is_none() {
                    return;
                }
                let open = s
                    .open
                    .as_ref()
                    .filter(|o| o.chunk.num_samples() > 0)
                    .map(|o| (o.min_t(), s.last_t, o.chunk.bytes()));
                let chunks = s
                    .closed
                    .iter()
                    .map(|c| (c.min_t, c.max_t, &*c.data))
                    .chain(open);
                super::wal::put_checkpoint_record(
                    out,
                    r,
                    (!s.labels_stored).then(|| (s.labels.len() / 2, ix.strs(&s.labels))),
                    (s.last_t, s.last_v),
                    s.closed.len() + usize::from(open.is_some()),
                    chunks,
                );
            },
        );
    }

    /// Every series reference with its labels.
    pub fn all_series(&self) -> Vec<(SeriesRef, Labels)> {
        let mut out = Vec::new();
        for shard in &self.inner.shards {
            let shard = lock(shard);
            let ix = read(&self.inner.index);
            out.extend(shard.series.iter().map(|(&r, s)| (r, ix.labels(&s.labels))));
        }
        out
    }

    /// Finds or creates the series with `labels` (replay); a new series
    /// takes reference `want` when it can, else a fresh one.
    pub fn series_ref(&self, labels: &Labels, want: SeriesRef) -> Result<SeriesRef, Error> {
        Ok(self.inner.get_or_create(labels, want)?.0)
    }

    /// Gives a series created by [`Head::series_ref`] the chunks of a
    /// snapshot (decoded beforehand by [`Restore::new`], on any thread), if
    /// it holds no samples in memory yet. The last chunk stays open for
    /// appends.
    pub fn restore_prepared(&self, r: SeriesRef, mut prep: Restore) {
        let opts = &self.inner.opts;
        let mut shard = lock(&self.inner.shards[shard_of(r)]);
        let Some(s) = shard.series.get_mut(&r) else {
            return;
        };
        // Chunks that reached disk after this snapshot was taken are read
        // from there.
        prep.closed.retain(|c| c.max_t > s.disk_max);
        if prep.open.is_some() && prep.last_t <= s.disk_max {
            prep.open = None;
        }
        if s.mem_range().is_some() || (prep.closed.is_empty() && prep.open.is_none()) {
            return;
        }
        let lo = prep
            .closed
            .first()
            .map(|c| c.min_t)
            .or(prep.open.as_ref().map(|o| o.min_t()))
            .unwrap_or(prep.last_t);
        s.closed = prep.closed;
        s.next_at = prep.open.as_ref().map_or(i64::MIN, |o| {
            range_for_timestamp(o.min_t(), opts.chunk_range)
        });
        s.open = prep.open;
        if !s.has_last || prep.last_t > s.last_t {
            s.last_t = prep.last_t;
            s.last_v = prep.last_v;
        }
        s.has_last = true;
        drop(shard);
        self.inner.note_times(lo, prep.last_t);
    }

    /// Appends logged samples (replay): no order errors, a sample not after
    /// its series' last one is dropped. Sorts `batch` by shard to take each
    /// lock once. Returns how many samples named no series.
    pub fn replay_samples(&self, batch: &mut [(SeriesRef, i64, f64)]) -> usize {
        batch.sort_by_key(|&(r, _, _)| shard_of(r));
        let (mut lo, mut hi, mut unknown) = (i64::MAX, i64::MIN, 0);
        for group in batch.chunk_by(|a, b| shard_of(a.0) == shard_of(b.0)) {
            let mut shard = lock(&self.inner.shards[shard_of(group[0].0)]);
            warm(&shard, group.iter().map(|x| x.0));
            for &(r, t, v) in group {
                match shard.series.get_mut(&r) {
                    Some(s) => {
                        if s.append(t, v, &self.inner.opts) {
                            lo = lo.min(t);
                            hi = hi.max(t);
                        }
                    }
                    None => unknown += 1,
                }
            }
        }
        self.inner.note_times(lo, hi);
        unknown
    }

    /// Attaches the reader of chunks moved to disk. Only the first call
    /// counts.
    pub fn set_disk(&self, disk: Arc<dyn DiskChunks>) {
        let _ = self.inner.disk.set(disk);
    }

    /// The closed chunks of every series in shard `shard` (of
    /// [`SHARD_COUNT`]) with the labels the chunk store lacks of their
    /// series, for a flush; with `all_labels`, also series that have only
    /// labels to store.
    pub fn flush_candidates(&self, shard: usize, all_labels: bool, out: &mut Vec<FlushItem>) {
        let start = out.len();
        self.in_pieces(
            shard,
            |s| !s.closed.is_empty() || (all_labels && !s.labels_stored),
            |r, s, ix| {
                let chunks = s.closed_snapshots();
                let range = match (chunks.first(), chunks.last()) {
                    (Some(a), Some(b)) => Some((a.min_t.min(s.disk_min), b.max_t)),
                    _ => s.disk_range(),
                };
                out.push(FlushItem {
                    r,
                    labels: (!s.labels_stored).then(|| {
                        let mut buf = Vec::with_capacity(256);
                        super::wal::put_label_strs(
                            &mut buf,
                            s.labels.len() / 2,
                            ix.strs(&s.labels),
                        );
                        buf
                    }),
                    chunks,
                    range,
                });
            },
        );
        out[start..].sort_unstable_by_key(|s| s.r);
    }

    /// Calls `f` for every series of shard `shard` that `want` picks, with
    /// the shard locked for at most [`PIECE`] series at a time: copying the
    /// labels or chunks of a whole shard (a million series' first flush)
    /// under one lock would stall every scrape for seconds. A series
    /// removed in between is skipped.
    fn in_pieces(
        &self,
        shard: usize,
        want: impl Fn(&MemSeries) -> bool,
        mut f: impl FnMut(SeriesRef, &MemSeries, &Index),
    ) {
        let Some(sh) = self.inner.shards.get(shard) else {
            return;
        };
        let refs: Vec<SeriesRef> = lock(sh)
            .series
            .iter()
            .filter(|(_, s)| want(s))
            .map(|(&r, _)| r)
            .collect();
        for piece in refs.chunks(PIECE) {
            let guard = lock(sh);
            let ix = read(&self.inner.index);
            for &r in piece {
                if let Some(s) = guard.series.get(&r) {
                    f(r, s, &ix);
                }
            }
        }
    }

    /// Closes the open chunks of series with no sample since `before`, so
    /// that the next flush moves them to the chunk store. Returns how many.
    pub fn close_idle(&self, before: i64) -> usize {
        let mut n = 0;
        for sh in &self.inner.shards {
            let mut shard = lock(sh);
            for s in shard.series.values_mut() {
                if s.has_last && s.last_t < before && s.pending == 0 && s.close_open() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Series idle since before `before` whose every chunk is in the chunk
    /// store: they may leave memory ([`Head::drop_cold`]). With their label
    /// hash, labels and persisted range.
    pub fn cold_candidates(&self, before: i64) -> Vec<(SeriesRef, u64, Labels, (i64, i64))> {
        let mut out = Vec::new();
        for shard in 0..SHARD_COUNT {
            self.in_pieces(
                shard,
                |s| s.can_go_cold(before),
                |r, s, ix| {
                    if let Some(range) = s.disk_range() {
                        out.push((r, s.hash, ix.labels(&s.labels), range));
                    }
                },
            );
        }
        out
    }

    /// Removes from memory the series of `refs` that still may leave it (no
    /// sample came in the meantime); returns those removed.
    pub fn drop_cold(&self, refs: &[SeriesRef], before: i64) -> Vec<SeriesRef> {
        let inner = &*self.inner;
        let mut out = Vec::new();
        let mut removed: Vec<(SeriesRef, SymLabels)> = Vec::new();
        for &r in refs {
            let mut shard = lock(&inner.shards[shard_of(r)]);
            if !shard.series.get(&r).is_some_and(|s| s.can_go_cold(before)) {
                continue;
            }
            if let Some(s) = shard.series.remove(&r) {
                shard.unlink_hash(r, s.hash);
                removed.push((r, s.labels));
                out.push(r);
            }
        }
        if !removed.is_empty() {
            write(&inner.index).remove_series(&removed);
        }
        out
    }

    /// Records that the chunk store now holds `items`: their closed chunks
    /// leave memory.
    pub fn mark_flushed(&self, items: &[FlushItem]) {
        for item in items {
            let mut shard = lock(&self.inner.shards[shard_of(item.r)]);
            let Some(s) = shard.series.get_mut(&item.r) else {
                continue;
            };
            s.labels_stored = true;
            if let Some((a, b)) = item.range {
                let n = s.closed.partition_point(|c| c.max_t <= b);
                s.closed.drain(..n);
                s.disk_min = a;
                s.disk_max = s.disk_max.max(b);
            }
        }
    }

    /// Sets what the chunk store holds of series `r` (open, retention). A
    /// series known only from disk takes its last timestamp from there, so
    /// that older samples are refused.
    pub fn set_disk_range(&self, r: SeriesRef, range: Option<(i64, i64)>) {
        let mut shard = lock(&self.inner.shards[shard_of(r)]);
        let Some(s) = shard.series.get_mut(&r) else {
            return;
        };
        s.set_stored(range);
        drop(shard);
        if let Some((a, b)) = range {
            self.inner.note_times(a, b);
        }
    }

    /// Series whose chunks on disk start before `t`.
    pub fn disk_before(&self, t: i64) -> Vec<SeriesRef> {
        let mut out = Vec::new();
        for shard in &self.inner.shards {
            let shard = lock(shard);
            out.extend(
                shard
                    .series
                    .iter()
                    .filter(|(_, s)| s.disk_min < t)
                    .map(|(&r, _)| r),
            );
        }
        out
    }

    /// Cardinality of the series in memory, from the index alone
    /// (`/api/v1/status/tsdb`), `limit` entries per list.
    pub fn cardinality(&self, limit: usize) -> Cardinality {
        read(&self.inner.index).cardinality(crate::model::METRIC_NAME, limit)
    }

    /// Chunks in memory, open and closed (`prometheus_tsdb_head_chunks`).
    pub fn num_chunks(&self) -> usize {
        let mut n = 0;
        for shard in &self.inner.shards {
            let shard = lock(shard);
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
            let shard = lock(shard);
            st.num_series += shard.series.len();
            st.heap_bytes += shard.series.capacity() * 17
                + shard.by_hash.capacity() * 17
                + shard.collisions.capacity() * 33;
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
    fn unlink_hash(&mut self, r: SeriesRef, hash: u64) {
        if self.by_hash.get(&hash) == Some(&r) {
            self.by_hash.remove(&hash);
            if let Some(list) = self.collisions.get_mut(&hash) {
                if let Some(next) = list.pop() {
                    self.by_hash.insert(hash, next);
                }
                if list.is_empty() {
                    self.collisions.remove(&hash);
                }
            }
        } else if let Some(list) = self.collisions.get_mut(&hash) {
            list.retain(|x| *x != r);
            if list.is_empty() {
                self.collisions.remove(&hash);
            }
        }
    }
}

struct Pending {
    r: SeriesRef,
    t: i64,
    v: f64,
    state: Check,
}

/// Where a buffered sample stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Checked against the series; it took the series' `pending` count,
    /// which commit or rollback gives back.
    First,
    /// Checked against the batch's previous sample of the series.
    Buffered,
    /// Appended by reference alone: checked at commit.
    Unchecked,
    /// Refused at commit: neither logged nor applied.
    Refused,
}

/// Buffers samples and applies them under the shard locks on commit.
struct HeadAppender {
    head: Arc<Inner>,
    pending: [Vec<Pending>; SHARDS],
    // The last buffered sample of each series, to catch order errors within
    // the batch.
    last: FxHashMap<SeriesRef, (i64, u64)>,
    min_valid: i64,
    done: bool,
}

impl Appendable for Head {
    fn appender(&self) -> Box<dyn Appender> {
        let AppendBuffers { pending, last } = lock(&self.inner.spare).pop().unwrap_or_default();
        Box::new(HeadAppender {
            head: self.inner.clone(),
            pending,
            last,
            min_valid: self.inner.min_valid_time.load(Ordering::Acquire),
            done: false,
        })
    }
}

impl Queryable for Head {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, Error> {
        Ok(Box::new(HeadQuerier::new(&self.inner, mint, maxt)))
    }
}

impl HeadAppender {
    /// Checks the sample against the series' committed samples with the
    /// shard locked. None if the series does not exist.
    fn check_committed(
        shard: &mut Shard,
        r: SeriesRef,
        t: i64,
        vb: u64,
    ) -> Option<Result<Appendability, Error>> {
        let s = shard.series.get_mut(&r)?;
        let res = s.appendable(t, vb);
        if matches!(res, Ok(Appendability::Append)) {
            s.pending += 1;
        }
        Some(res)
    }

    /// Appends after a sample this batch already holds for series `r`.
    fn append_buffered(
        &mut self,
        r: SeriesRef,
        (lt, lv): (i64, u64),
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Error> {
        let vb = v.to_bits();
        match t.cmp(&lt) {
            std::cmp::Ordering::Greater => {}
            std::cmp::Ordering::Equal if vb == lv => return Ok(r),
            std::cmp::Ordering::Equal => return Err(Error::DuplicateSampleForTimestamp),
            std::cmp::Ordering::Less => return Err(Error::OutOfOrderSample),
        }
        self.pending[shard_of(r)].push(Pending {
            r,
            t,
            v,
            state: Check::Buffered,
        });
        self.last.insert(r, (t, vb));
        Ok(r)
    }

    /// Checks the samples appended by reference alone, shard by shard with
    /// each shard locked once; a series that left memory comes back from
    /// the chunk store (logged before the samples that name it).
    fn check_unchecked(&mut self) -> Rejected {
        let inner = &*self.head;
        let mut rejected = Rejected::default();
        for (i, pending) in self.pending.iter_mut().enumerate() {
            if !pending.iter().any(|p| p.state == Check::Unchecked) {
                continue;
            }
            for part in pending.chunks_mut(LOCKED_SAMPLES) {
                let mut shard = lock(&inner.shards[i]);
                warm(&shard, part.iter().map(|p| p.r));
                Self::check_part(inner, &mut shard, part, &mut rejected);
            }
        }
        rejected
    }

    /// [`HeadAppender::check_unchecked`] for one part of a shard's samples,
    /// with the shard locked.
    fn check_part(inner: &Inner, shard: &mut Shard, part: &mut [Pending], rejected: &mut Rejected) {
        for p in part.iter_mut().filter(|p| p.state == Check::Unchecked) {
            let vb = p.v.to_bits();
            let mut res = Self::check_committed(shard, p.r, p.t, vb);
            if res.is_none() && inner.revive_ref(shard, p.r) {
                res = Self::check_committed(shard, p.r, p.t, vb);
            }
            p.state = match res {
                Some(Ok(Appendability::Append)) => Check::First,
                Some(Ok(Appendability::Duplicate)) => Check::Refused,
                Some(Err(Error::DuplicateSampleForTimestamp)) => {
                    rejected.duplicate += 1;
                    Check::Refused
                }
                Some(Err(_)) => {
                    rejected.out_of_order += 1;
                    Check::Refused
                }
                None => {
                    rejected.unknown += 1;
                    Check::Refused
                }
            };
        }
    }

    fn finish(&mut self, commit: bool) {
        self.done = true;
        let inner = &*self.head;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (i, pending) in self.pending.iter_mut().enumerate() {
            if pending.is_empty() {
                continue;
            }
            for part in pending.chunks(LOCKED_SAMPLES) {
                let mut shard = lock(&inner.shards[i]);
                warm(&shard, part.iter().map(|p| p.r));
                for p in part {
                    let Some(s) = shard.series.get_mut(&p.r) else {
                        continue;
                    };
                    match p.state {
                        Check::First => s.pending = s.pending.saturating_sub(1),
                        Check::Refused | Check::Unchecked => continue,
                        Check::Buffered => {}
                    }
                    // A sample that a concurrent appender overtook is dropped, as
                    // Prometheus drops it at commit.
                    if commit && s.append(p.t, p.v, &inner.opts) {
                        lo = lo.min(p.t);
                        hi = hi.max(p.t);
                    }
                }
            }
            pending.clear();
        }
        inner.note_times(lo, hi);
        self.last.clear();
    }
}

impl Appender for HeadAppender {
    fn append(
        &mut self,
        hint: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Error> {
        if t < self.min_valid {
            return Err(Error::OutOfBounds);
        }
        let vb = v.to_bits();
        let mut r = hint;
        let mut known = None;
        if r != 0 {
            if let Some(&last) = self.last.get(&r) {
                return self.append_buffered(r, last, t, v);
            }
            if labels.is_empty() {
                // A scrape's known series: checked at commit with the rest
                // of its shard in one pass, where the cache misses of many
                // series overlap, instead of one lookup per sample here.
                self.pending[shard_of(r)].push(Pending {
                    r,
                    t,
                    v,
                    state: Check::Unchecked,
                });
                self.last.insert(r, (t, vb));
                return Ok(r);
            }
            let mut shard = lock(&self.head.shards[shard_of(r)]);
            known = Self::check_committed(&mut shard, r, t, vb);
        }
        let res = match known {
            Some(res) => res,
            None => {
                let (found, mut shard) = self.head.get_or_create_as(labels, 0, true)?;
                r = found;
                if let Some(&last) = self.last.get(&r) {
                    // Came by labels for a series that this batch already holds.
                    drop(shard);
                    return self.append_buffered(r, last, t, v);
                }
                Self::check_committed(&mut shard, r, t, vb).unwrap_or(Ok(Appendability::Append))
            }
        };
        match res? {
            Appendability::Duplicate => Ok(r),
            Appendability::Append => {
                self.pending[shard_of(r)].push(Pending {
                    r,
                    t,
                    v,
                    state: Check::First,
                });
                self.last.insert(r, (t, vb));
                Ok(r)
            }
        }
    }

    fn commit(mut self: Box<Self>) -> Result<Rejected, Error> {
        let head = self.head.clone();
        let _gate = read(&head.gate);
        let rejected = self.check_unchecked();
        if let Some(log) = head.log.get()
            && self.pending.iter().any(|p| !p.is_empty())
        {
            let mut it = self.pending.iter().flat_map(|p| {
                p.iter()
                    .filter(|p| p.state != Check::Refused)
                    .map(|p| (p.r, p.t, p.v))
            });
            if let Err(e) = log.log_samples(&mut it) {
                self.finish(false);
                return Err(e);
            }
        }
        self.finish(true);
        Ok(rejected)
    }

    fn rollback(mut self: Box<Self>) {
        self.finish(false);
    }
}

impl Drop for HeadAppender {
    fn drop(&mut self) {
        if !self.done {
            self.finish(false);
        }
        // Invariant: `finish` left the buffers empty.
        debug_assert!(self.pending.iter().all(Vec::is_empty) && self.last.is_empty());
        if self.last.capacity() <= SPARE_MAX_SAMPLES {
            let mut spare = lock(&self.head.spare);
            if spare.len() < SPARE_BUFFERS {
                spare.push(AppendBuffers {
                    pending: std::mem::take(&mut self.pending),
                    last: std::mem::take(&mut self.last),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_end_time_matches_prometheus() {
        // 15 s scrapes: the 30th sample sits at 29 * 15 s, so the 2 h range
        // splits into 4 chunks of 120 samples.
        let start = 0;
        assert_eq!(
            compute_chunk_end_time(start, 29 * 15_000, DEFAULT_CHUNK_RANGE),
            1_800_000
        );
        // Sparse samples: never later than the range end.
        assert_eq!(
            compute_chunk_end_time(0, 3_000_000, DEFAULT_CHUNK_RANGE),
            DEFAULT_CHUNK_RANGE
        );
        assert_eq!(
            range_for_timestamp(7_199_999, DEFAULT_CHUNK_RANGE),
            DEFAULT_CHUNK_RANGE
        );
        assert_eq!(
            range_for_timestamp(7_200_000, DEFAULT_CHUNK_RANGE),
            2 * DEFAULT_CHUNK_RANGE
        );
        // Go's division truncates towards zero, and so does ours.
        assert_eq!(
            range_for_timestamp(-1, DEFAULT_CHUNK_RANGE),
            DEFAULT_CHUNK_RANGE
        );
    }

    #[test]
    fn chunks_are_cut_like_prometheus() {
        let opts = HeadOptions::default();
        let mut s = MemSeries::new(Box::new([]), 0);
        // Six hours at 15 s from an aligned start: 4 chunks of 120 per 2 h.
        for i in 0..(6 * 240) {
            assert!(s.append(i * 15_000, i as f64, &opts));
        }
        let sizes: Vec<usize> = s
            .closed
            .iter()
            .map(|c| XorIter::new(&c.data).count())
            .collect();
        assert_eq!(sizes, vec![120; 11]);
        assert_eq!(s.open.as_ref().map(|o| o.chunk.num_samples()), Some(120));
        // No chunk crosses a 2 h boundary.
        for c in &s.closed {
            assert_eq!(c.min_t / DEFAULT_CHUNK_RANGE, c.max_t / DEFAULT_CHUNK_RANGE);
        }

        // A 1 s interval would give 1800 samples per quarter range: cut at 240.
        let mut s = MemSeries::new(Box::new([]), 0);
        for i in 0..1000 {
            assert!(s.append(i * 1000, 1.0, &opts));
        }
        assert!(
            s.closed
                .iter()
                .all(|c| XorIter::new(&c.data).count() <= 240)
        );
        let mut out = Vec::new();
        s.samples(i64::MIN, i64::MAX, &mut out);
        assert_eq!(out.len(), 1000);
        assert!(!s.append(999_000, 1.0, &opts));
    }
}
