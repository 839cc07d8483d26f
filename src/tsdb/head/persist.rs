//! What the head hands to persistence and takes back: the commit log seam
//! (the WAL), snapshots of closed chunks for flushes and checkpoints,
//! restores on start-up, and the chunk store seam (`DiskChunks`) through
//! which series leave memory and come back. Knows nothing of file layouts.

use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

use crate::model::{Labels, Matcher};
use crate::storage::{Error, SeriesRef};

use crate::tsdb::chunkenc::{Encoding, XorChunk, XorState};
use crate::tsdb::index::{Index, SymLabels};

use super::walk::{closed_line, each_warmed, labels_line, open_line};
use super::{append::*, series::*, shards::*};

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
    pub(super) last_t: i64,
    pub(super) last_v: u64,
    pub(super) closed: Vec<ClosedChunk>,
    pub(super) open: Option<OpenChunk>,
}

impl Restore {
    /// Reopens the last chunk: with `state`, its saved encoder state, else
    /// by decoding all of its samples; a chunk that does not decode (or
    /// whose state is impossible) stays closed.
    pub fn new(
        last_t: i64,
        last_v: u64,
        mut chunks: Vec<ChunkSnapshot>,
        state: Option<XorState>,
    ) -> Restore {
        let last = chunks.pop().map(|c| (c.min_t, c.max_t, c.data.to_vec()));
        Restore::with_last(last_t, last_v, chunks, last, state)
    }

    /// As [`Restore::new`], with the last chunk (first and last timestamp,
    /// bytes) apart from the `closed` ones before it and owned, so that
    /// reopening it keeps its bytes instead of copying them: a checkpoint
    /// of a million series is a million open chunks to reopen.
    pub fn with_last(
        last_t: i64,
        last_v: u64,
        mut closed: Vec<ChunkSnapshot>,
        last: Option<(i64, i64, Vec<u8>)>,
        state: Option<XorState>,
    ) -> Restore {
        let mut open = None;
        if let Some((min_t, max_t, bytes)) = last {
            // The bytes a chunk that stays closed keeps, as they were given.
            let (reopened, kept) = match state {
                Some(st) if XorChunk::state_fits(&bytes, st) => {
                    (XorChunk::from_state(bytes, st).ok(), None)
                }
                Some(_) => (None, Some(bytes)),
                None => (XorChunk::from_bytes(bytes.clone()).ok(), Some(bytes)),
            };
            let snapshot = |data: Vec<u8>| ChunkSnapshot {
                min_t,
                max_t,
                data: Arc::from(data),
            };
            // The reopened chunk's last sample must be the series' last one,
            // which its next appends start from; otherwise it stays closed.
            match (reopened.map(XorChunk::into_parts), kept) {
                (Some((chunk, t, v)), _) if (t, v) == (last_t, last_v) => {
                    open = Some(OpenChunk { chunk });
                }
                (_, Some(bytes)) => closed.push(snapshot(bytes)),
                (Some((chunk, _, _)), None) => closed.push(snapshot(chunk.into_bytes())),
                // `state_fits` is the whole of `from_state`'s check.
                (None, None) => {}
            }
        }
        Restore {
            last_t,
            last_v,
            closed: closed
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

    /// [`DiskChunks::read`] for several series at once: `wanted` holds each
    /// series and its `upto`, ascending by reference; `out` gets every
    /// chunk with its series, in that order and time order. A store whose
    /// reads cost most in finding a series' first chunk reads neighbours in
    /// one pass.
    fn read_many(
        &self,
        wanted: &[(SeriesRef, i64)],
        mint: i64,
        maxt: i64,
        out: &mut Vec<(SeriesRef, Encoding, Vec<u8>)>,
    ) -> Result<(), Error> {
        let mut one = Vec::new();
        for &(r, upto) in wanted {
            one.clear();
            self.read(r, mint, maxt, upto, &mut one)?;
            out.extend(one.drain(..).map(|(e, d)| (r, e, d)));
        }
        Ok(())
    }
}

/// How often [`Head::quiesce`] tries the gate, and how long it tries
/// before waiting in the lock's queue.
const QUIESCE_POLL: Duration = Duration::from_millis(1);
const QUIESCE_PATIENCE: Duration = Duration::from_secs(60);

/// One series' part of a flush (see [`Head::flush_items`]).
#[derive(Debug, Clone)]
pub struct FlushItem {
    pub r: SeriesRef,
    /// Set when the chunk store does not have the labels yet: encoded as
    /// [`crate::tsdb::wal::put_labels`] does, straight from the index's symbols.
    pub labels: Option<Vec<u8>>,
    /// Closed chunks, in time order.
    pub chunks: Vec<ChunkSnapshot>,
    /// The persisted range once these chunks are written.
    pub range: Option<(i64, i64)>,
}

impl Head {
    /// Attaches the log that sees every later series and commit. Only the
    /// first call counts.
    pub fn set_commit_log(&self, log: Arc<dyn CommitLog>) {
        let _ = self.inner.log.set(log);
    }

    /// Runs `f` while no commit is between logging and applying.
    ///
    /// Waits by trying, not in the lock's queue: a waiting writer of the
    /// gate (std's lock and parking_lot's alike) keeps every later commit
    /// out until it has had its turn, and a commit of millions of samples
    /// (a target bursting into new series) holds the gate for seconds,
    /// through which every other target's commit, and the scrape thread
    /// with it, would wait. Commits of ordinary scrapes take milliseconds,
    /// so a free moment comes soon; past `QUIESCE_PATIENCE` the wait joins
    /// the queue so that a checkpoint cannot be put off for ever.
    pub fn quiesce<R>(&self, f: impl FnOnce() -> R) -> R {
        let gate = &self.inner.gate;
        let started = Instant::now();
        let _gate = loop {
            match gate.try_write() {
                Ok(g) => break g,
                Err(TryLockError::Poisoned(e)) => break e.into_inner(),
                Err(TryLockError::WouldBlock) if started.elapsed() >= QUIESCE_PATIENCE => {
                    break write(gate);
                }
                Err(TryLockError::WouldBlock) => std::thread::sleep(QUIESCE_POLL),
            }
        };
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
            |s| open_line(s) ^ closed_line(s),
            |r, s, ix| {
                if !s.has_last || s.mem_range().is_none() {
                    return;
                }
                let open_chunk = s.open.as_ref().filter(|o| o.chunk.num_samples() > 0);
                let open = open_chunk.map(|o| (o.min_t(), s.last_t, o.chunk.bytes()));
                // Loading takes the encoder state as saved instead of
                // decoding every open chunk.
                let state = open_chunk.map(|o| o.chunk.state(s.last_t, s.last_v));
                let chunks = s
                    .closed
                    .iter()
                    .map(|c| (c.min_t, c.max_t, &*c.data))
                    .chain(open);
                crate::tsdb::wal::put_checkpoint_record(
                    out,
                    r,
                    (!s.labels_stored).then(|| (s.labels.num_pairs(), ix.strs(&s.labels))),
                    (s.last_t, s.last_v),
                    s.closed.len() + usize::from(open.is_some()),
                    chunks,
                    state.as_ref(),
                );
            },
        );
    }

    /// Every series reference with its labels.
    pub fn all_series(&self) -> Vec<(SeriesRef, Labels)> {
        let mut out = Vec::new();
        for shard in &self.inner.shards {
            let (shard, ix) = lock_with_index(shard, &self.inner.index);
            out.extend(shard.series.iter().map(|(&r, s)| (r, ix.labels(&s.labels))));
        }
        out
    }

    /// Finds or creates the series with `labels` (replay); a new series
    /// takes reference `want` when it can, else a fresh one.
    pub fn series_ref(&self, labels: &Labels, want: SeriesRef) -> Result<SeriesRef, Error> {
        Ok(self.inner.get_or_create(labels, want)?.0)
    }

    /// A series of the chunk store at start-up: finds or creates it (as
    /// [`Head::series_ref`], with `hash` from [`hash_labels`]) and records
    /// that the chunk store holds its labels and, if any, chunks over
    /// `range`, under one lock.
    pub fn restore_stored(
        &self,
        labels: &Labels,
        hash: u64,
        want: SeriesRef,
        range: Option<TimeRange>,
    ) -> Result<SeriesRef, Error> {
        let (r, mut shard) = self.inner.get_or_create_hashed(labels, hash, want, false)?;
        if let Some(s) = shard.series.get_mut(&r) {
            s.set_stored(range);
        }
        drop(shard);
        if let Some((a, b)) = range {
            self.inner.note_times(a, b);
        }
        Ok(r)
    }

    /// Gives a series created by [`Head::series_ref`] the chunks of a
    /// snapshot (decoded beforehand by [`Restore::new`], on any thread), if
    /// it holds no samples in memory yet. The last chunk stays open for
    /// appends. Returns whether the head has series `r`.
    pub fn restore_prepared(&self, r: SeriesRef, prep: Restore) -> bool {
        let opts = &self.inner.opts;
        let mut shard = self.inner.shards[shard_of(r)].lock();
        let Some(s) = shard.series.get_mut(&r) else {
            return false;
        };
        let times = restore_into(s, prep, opts.chunk_range);
        drop(shard);
        if let Some((lo, hi)) = times {
            self.inner.note_times(lo, hi);
        }
        true
    }

    /// [`Head::restore_prepared`] for many series, emptying `items`:
    /// each run of one shard's series is applied under one lock, and the
    /// series are looked up `RESTORE_GROUP` (32) at a time before any is
    /// written, so that their cache misses (one per series, a million on
    /// the open's path) overlap instead of coming one after another.
    /// Returns the references the head does not have.
    pub fn restore_prepared_many(&self, items: &mut Vec<(SeriesRef, Restore)>) -> Vec<SeriesRef> {
        let chunk_range = self.inner.opts.chunk_range;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let mut missing = Vec::new();
        let mut rest = items.drain(..).peekable();
        while let Some(first) = rest.next() {
            let si = shard_of(first.0);
            let mut shard = self.inner.shards[si].lock();
            let mut group: Vec<(SeriesRef, Restore)> = Vec::with_capacity(RESTORE_GROUP);
            group.push(first);
            loop {
                while group.len() < RESTORE_GROUP {
                    match rest.next_if(|x| shard_of(x.0) == si) {
                        Some(x) => group.push(x),
                        None => break,
                    }
                }
                warm_restore(&shard, group.iter().map(|x| x.0));
                let full = group.len() == RESTORE_GROUP;
                for (r, prep) in group.drain(..) {
                    match shard.series.get_mut(&r) {
                        Some(s) => {
                            if let Some((a, b)) = restore_into(s, prep, chunk_range) {
                                lo = lo.min(a);
                                hi = hi.max(b);
                            }
                        }
                        None => missing.push(r),
                    }
                }
                if !full {
                    break;
                }
            }
        }
        drop(rest);
        self.inner.note_times(lo, hi);
        missing
    }

    /// Appends logged samples (replay): no order errors, a sample not after
    /// its series' last one is dropped. Sorts `batch` by shard to take each
    /// lock once. Returns how many samples named no series.
    pub fn replay_samples(&self, batch: &mut [(SeriesRef, i64, f64)]) -> usize {
        batch.sort_by_key(|&(r, _, _)| shard_of(r));
        let (mut lo, mut hi, mut unknown) = (i64::MAX, i64::MIN, 0);
        for group in batch.chunk_by(|a, b| shard_of(a.0) == shard_of(b.0)) {
            let mut shard = self.inner.shards[shard_of(group[0].0)].lock();
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

    /// The references, in increasing order, of every series with closed
    /// chunks to move and, with `all_labels`, of every series whose labels
    /// the chunk store lacks: what a flush writes, in the chunk store's key
    /// order. Refs interleave the shards (`shard_of` takes the low bits), so
    /// a flush shard by shard wrote keys from the whole range in every
    /// batch: each of fjall's tables then overlapped every other, and its
    /// compactions merged and rewrote all of them. Written in key order,
    /// the tables of one flush do not overlap, and fjall moves them down a
    /// level without reading them again.
    pub fn flush_refs(&self, all_labels: bool) -> Vec<SeriesRef> {
        self.close_idle_and_flush_refs(None, all_labels)
    }

    /// [`Head::flush_refs`], having first closed the open chunks of series
    /// with no sample since `close_before`, so that this flush moves them:
    /// in one walk over the series, where a closing walk of its own missed
    /// the cache on every series again, at every flush.
    pub fn close_idle_and_flush_refs(
        &self,
        close_before: Option<i64>,
        all_labels: bool,
    ) -> Vec<SeriesRef> {
        let mut refs = Vec::new();
        for sh in &self.inner.shards {
            let mut shard = sh.lock();
            for (&r, s) in shard.series.iter_mut() {
                if let Some(before) = close_before {
                    close_if_idle(s, before);
                }
                if !s.closed.is_empty() || (all_labels && !s.labels_stored) {
                    refs.push(r);
                }
            }
        }
        refs.sort_unstable();
        refs
    }

    /// Appends to `out` what the chunk store lacks of each series of `refs`
    /// (increasing, from [`Head::flush_refs`]): closed chunks and, if not
    /// stored yet, labels (encoded as [`crate::tsdb::wal::put_labels`] does,
    /// straight from the index's symbols), in the order of `refs`. Each
    /// shard is locked once per `PIECE` (1,024) of its series. A series removed
    /// in between is skipped.
    pub fn flush_items(&self, refs: &[SeriesRef], out: &mut Vec<FlushItem>) {
        let start = out.len();
        let mut by_shard: [Vec<SeriesRef>; SHARDS] = Default::default();
        for &r in refs {
            by_shard[shard_of(r)].push(r);
        }
        for (shard, mine) in by_shard.iter().enumerate() {
            let deep = |s: &MemSeries| closed_line(s) ^ labels_line(s);
            self.each_in_pieces(shard, mine, deep, |r, s, ix| {
                let chunks = s.closed_snapshots();
                let range = match (chunks.first(), chunks.last()) {
                    (Some(a), Some(b)) => Some((a.min_t.min(s.disk_min), b.max_t)),
                    _ => s.disk_range(),
                };
                out.push(FlushItem {
                    r,
                    labels: (!s.labels_stored).then(|| {
                        let mut buf = Vec::with_capacity(256);
                        crate::tsdb::wal::put_label_strs(
                            &mut buf,
                            s.labels.num_pairs(),
                            ix.strs(&s.labels),
                        );
                        buf
                    }),
                    chunks,
                    range,
                });
            });
        }
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
        deep: impl Fn(&MemSeries) -> u64,
        f: impl FnMut(SeriesRef, &MemSeries, &Index),
    ) {
        let Some(sh) = self.inner.shards.get(shard) else {
            return;
        };
        let refs: Vec<SeriesRef> = sh
            .lock()
            .series
            .iter()
            .filter(|(_, s)| want(s))
            .map(|(&r, _)| r)
            .collect();
        self.each_in_pieces(shard, &refs, deep, f);
    }

    /// Calls `f` for each series of `refs`, all of shard `shard`, in that
    /// order, locking the shard (and reading the index) once per [`PIECE`]
    /// of them, the series warmed (with `deep`) by [`each_warmed`]. A
    /// series removed in between is skipped.
    fn each_in_pieces(
        &self,
        shard: usize,
        refs: &[SeriesRef],
        deep: impl Fn(&MemSeries) -> u64,
        mut f: impl FnMut(SeriesRef, &MemSeries, &Index),
    ) {
        let Some(sh) = self.inner.shards.get(shard) else {
            return;
        };
        for piece in refs.chunks(PIECE) {
            let (guard, ix) = lock_with_index(sh, &self.inner.index);
            let found = piece
                .iter()
                .filter_map(|&r| guard.series.get(&r).map(|s| (r, &**s)));
            each_warmed(found, &deep, |r, s| f(r, s, &ix));
            drop(ix);
            // A commit waiting for the shard goes before the next piece.
            parking_lot::MutexGuard::unlock_fair(guard);
        }
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
                labels_line,
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
            let mut shard = inner.shards[shard_of(r)].lock();
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
    /// leave memory. Each shard is locked once per `PIECE` (1,024) of its items.
    pub fn mark_flushed(&self, items: &[FlushItem]) {
        let mut by_shard: [Vec<&FlushItem>; SHARDS] = Default::default();
        for item in items {
            by_shard[shard_of(item.r)].push(item);
        }
        for (sh, mine) in self.inner.shards.iter().zip(&by_shard) {
            for piece in mine.chunks(PIECE) {
                let mut shard = sh.lock();
                for item in piece {
                    let Some(s) = shard.series.get_mut(&item.r) else {
                        continue;
                    };
                    s.labels_stored = true;
                    if let Some((a, b)) = item.range {
                        s.drop_closed_until(b);
                        s.disk_min = a;
                        s.disk_max = s.disk_max.max(b);
                    }
                }
            }
        }
    }

    /// Sets what the chunk store holds of series `r` (open, retention). A
    /// series known only from disk takes its last timestamp from there, so
    /// that older samples are refused.
    pub fn set_disk_range(&self, r: SeriesRef, range: Option<(i64, i64)>) {
        let mut shard = self.inner.shards[shard_of(r)].lock();
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
            let shard = shard.lock();
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
}

/// Closes the open chunk of `s` if no sample came since `before`.
fn close_if_idle(s: &mut MemSeries, before: i64) {
    if s.has_last && s.last_t < before && s.pending == 0 {
        s.close_open();
    }
}

/// Series looked up together by [`Head::restore_prepared_many`].
const RESTORE_GROUP: usize = 32;

/// Touches the fields [`restore_into`] reads of each series in `refs`,
/// all lookups first, so the loads are in flight together.
fn warm_restore(shard: &Shard, refs: impl Iterator<Item = SeriesRef>) {
    let mut acc = 0i64;
    for r in refs {
        if let Some(s) = shard.series.get(&r) {
            acc ^= s.disk_max;
        }
    }
    std::hint::black_box(acc);
}

/// Gives `s` the chunks of `prep` unless it holds samples in memory
/// already; returns the time range it now holds, if it took any.
fn restore_into(s: &mut MemSeries, mut prep: Restore, chunk_range: i64) -> Option<(i64, i64)> {
    // Chunks that reached disk after this snapshot was taken are read
    // from there.
    prep.closed.retain(|c| c.max_t > s.disk_max);
    if prep.open.is_some() && prep.last_t <= s.disk_max {
        prep.open = None;
    }
    if s.mem_range().is_some() || (prep.closed.is_empty() && prep.open.is_none()) {
        return None;
    }
    let take_last = !s.has_last || prep.last_t > s.last_t;
    if !take_last && let Some(o) = prep.open.take() {
        // Its encoding goes on from `prep.last_t`, which the series does
        // not take: the chunk stays closed.
        prep.closed.push(ClosedChunk {
            min_t: o.min_t(),
            max_t: prep.last_t,
            data: Arc::from(o.chunk.into_bytes()),
        });
    }
    let lo = prep
        .closed
        .first()
        .map(|c| c.min_t)
        .or(prep.open.as_ref().map(|o| o.min_t()))
        .unwrap_or(prep.last_t);
    s.closed = prep.closed.into();
    s.next_at = prep
        .open
        .as_ref()
        .map_or(i64::MIN, |o| range_for_timestamp(o.min_t(), chunk_range));
    s.open = prep.open;
    if take_last {
        s.last_t = prep.last_t;
        s.last_v = prep.last_v;
    }
    s.has_last = true;
    Some((lo, prep.last_t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Appendable;
    use crate::tsdb::head::HeadOptions;

    /// A quiesce waiting for a long commit lets other commits through: a
    /// checkpoint starting while a target's burst of millions of samples
    /// was being committed stopped every other commit until the burst's
    /// was done.
    #[test]
    fn a_quiesce_waiting_for_a_long_commit_lets_other_commits_through() {
        let head = Head::new(HeadOptions::default());
        // A commit in flight, between logging and applying.
        let long = read(&head.inner.gate);
        let quiesced = {
            let head = head.clone();
            std::thread::spawn(move || head.quiesce(|| true))
        };
        // Time for the quiesce to start waiting (not a bound on anything).
        std::thread::sleep(Duration::from_millis(50));
        let (tx, rx) = std::sync::mpsc::channel();
        let other = {
            let head = head.clone();
            std::thread::spawn(move || {
                let mut app = head.appender();
                let labels = Labels::from_pairs([("__name__", "up")]);
                app.append(0, &labels, 1, 1.0).unwrap();
                app.commit().unwrap();
                tx.send(()).unwrap();
            })
        };
        let passed = rx.recv_timeout(Duration::from_secs(10));
        drop(long);
        assert!(quiesced.join().unwrap());
        other.join().unwrap();
        assert!(
            passed.is_ok(),
            "a commit waited behind a quiesce that waited for another commit"
        );
    }

    fn chunk(t0: i64, n: i64) -> (ChunkSnapshot, XorState) {
        let mut c = XorChunk::new();
        for i in 0..n {
            c.append(t0 + i * 1000, i as f64).unwrap();
        }
        let st = c.state();
        let snap = ChunkSnapshot {
            min_t: t0,
            max_t: t0 + (n - 1) * 1000,
            data: c.into_bytes().into(),
        };
        (snap, st)
    }

    /// A chunk is reopened for appends only when its last sample is the
    /// one the series records as its last: appends encode against that.
    #[test]
    fn a_reopened_chunk_ends_at_the_series_last_sample() {
        let (c, st) = chunk(0, 5);
        let r = Restore::new(st.t, st.v, vec![c.clone()], Some(st));
        assert!(r.open.is_some() && r.closed.is_empty());
        let r = Restore::new(st.t, 0, vec![c.clone()], Some(st));
        assert!(r.open.is_none());
        assert_eq!(r.closed.len(), 1);
        let r = Restore::new(st.t + 1, st.v, vec![c], None);
        assert!(r.open.is_none());
        assert_eq!(r.closed.len(), 1);
    }

    /// A last chunk handed over owned keeps its bytes as given when it
    /// stays closed: its saved state is impossible, or it does not end at
    /// the series' last sample.
    #[test]
    fn a_chunk_that_stays_closed_keeps_its_bytes() {
        let (c, st) = chunk(0, 5);
        let last = || Some((c.min_t, c.max_t, c.data.to_vec()));
        let bad = XorState { free: 8, ..st };
        for r in [
            Restore::with_last(st.t, st.v, Vec::new(), last(), Some(bad)),
            Restore::with_last(st.t, 0, Vec::new(), last(), Some(st)),
        ] {
            assert!(r.open.is_none());
            assert_eq!(r.closed.len(), 1);
            assert_eq!(&r.closed[0].data[..], &c.data[..]);
            assert_eq!((r.closed[0].min_t, r.closed[0].max_t), (c.min_t, c.max_t));
        }
        let r = Restore::with_last(st.t, st.v, Vec::new(), last(), Some(st));
        assert!(r.open.is_some() && r.closed.is_empty());
    }

    /// The batched restore gives every series what one restore each
    /// gives, across shards and runs longer than a group, and names the
    /// references the head lacks.
    #[test]
    fn restoring_many_equals_restoring_one_by_one() {
        let (one, many) = (
            Head::new(HeadOptions::default()),
            Head::new(HeadOptions::default()),
        );
        let mut items = Vec::new();
        for i in 0..2000i64 {
            let labels = Labels::from_pairs([("__name__", "m"), ("i", i.to_string().as_str())]);
            let r = one.series_ref(&labels, 0).unwrap();
            assert_eq!(many.series_ref(&labels, r).unwrap(), r);
            let (c, st) = chunk(i * 10, 5 + i % 7);
            let prep = || Restore::new(st.t, st.v, vec![c.clone()], Some(st));
            assert!(one.restore_prepared(r, prep()));
            items.push((r, prep()));
        }
        // Runs of one shard longer than a group, then the rest.
        items.sort_by_key(|x| shard_of(x.0));
        items.push((SeriesRef::MAX, Restore::new(0, 0, Vec::new(), None)));
        assert_eq!(many.restore_prepared_many(&mut items), vec![SeriesRef::MAX]);
        assert!(items.is_empty());
        assert_eq!(many.time_bounds(), one.time_bounds());
        assert_eq!(many.num_chunks(), one.num_chunks());
        assert_eq!(many.stats().num_series, 2000);
    }
}
