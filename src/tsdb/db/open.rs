//! Opening the durable store, in its steps: the series, from the head image
//! a clean close or checkpoint left (`docs/format/head-image.md`) or else from the chunk
//! store (read and hashed on a second thread while this one fills the
//! head); the newest checkpoint that reads cleanly (decoded on a second
//! thread from the start, its batches applied as they come); the WAL after
//! it (replayed on two threads); a new segment that names the series whose
//! references moved; and the cold series settled. Each step is a function
//! below; [`Db::open`] runs them in order.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};
use tracing::{error, info, warn};

use crate::model::Labels;
use crate::storage::{self, SeriesRef};
use crate::tsdb::head::{
    ChunkSnapshot, Head, ImageLoad, Restore, SHARD_COUNT, TimeRange, hash_labels, shard_of,
};
use crate::tsdb::image;
use crate::tsdb::kv::{ChunkStore, ColdEntry};
use crate::tsdb::ticker::Ticker;
use crate::tsdb::wal::{self, CheckpointSeries, Record, Wal};

use super::{
    Db, DbOptions, Error, KV_DIR, KvChunks, Maintenance, OpenStats, WalLog, may_delete, merge,
    now_ms,
};

/// A checkpoint's series decoded and ready for [`Head::restore_prepared`].
type Prepared = Vec<(SeriesRef, Labels, Restore)>;

/// What the thread decoding a checkpoint hands over: batches of series,
/// then how the whole read ended (the number of series, or why it broke).
enum Decoded {
    Batch(Prepared),
    Done(Result<u64, wal::Error>),
}

/// The checkpoint being decoded on another thread, and its number.
type Prefetch = Option<(u32, mpsc::Receiver<Decoded>)>;

/// Series per batch from the decoding thread.
const CHECKPOINT_BATCH: usize = 4096;

/// Decodes checkpoint `n` into `tx` in batches; the channel is unbounded,
/// so decoding runs ahead while the series are still being loaded.
fn decode_checkpoint(dir: &Path, n: u32, tx: &mpsc::Sender<Decoded>) {
    let mut batch = Vec::with_capacity(CHECKPOINT_BATCH);
    let res = wal::read_checkpoint(dir, n, &mut |s: CheckpointSeries| {
        let mut chunks = s.chunks;
        // The last chunk, usually the only one, is reopened with its bytes
        // as decoded; the closed ones before it are shared.
        let last = chunks.pop().map(|c| (c.min_t, c.max_t, c.data));
        // Not collected from the emptied list, whose allocation would
        // otherwise travel with the series and be freed on another thread.
        let closed = if chunks.is_empty() {
            Vec::new()
        } else {
            chunks
                .into_iter()
                .map(|c| ChunkSnapshot {
                    min_t: c.min_t,
                    max_t: c.max_t,
                    data: Arc::from(c.data),
                })
                .collect()
        };
        batch.push((
            s.r,
            s.labels,
            Restore::with_last(s.last_t, s.last_v, closed, last, s.open),
        ));
        if batch.len() == CHECKPOINT_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(CHECKPOINT_BATCH));
            let _ = tx.send(Decoded::Batch(full));
        }
    });
    if !batch.is_empty() {
        let _ = tx.send(Decoded::Batch(batch));
    }
    let _ = tx.send(Decoded::Done(res));
}

/// Series of the chunk store whose reference changed on load: old, new,
/// labels.
type Renamed = Vec<(SeriesRef, SeriesRef, Labels)>;

/// How references in the checkpoint and the WAL map to the head's, and the
/// series the new segment must name again under their new reference.
#[derive(Default)]
struct Remap {
    map: FxHashMap<SeriesRef, SeriesRef>,
    moved: FxHashMap<SeriesRef, Labels>,
}

impl Db {
    /// Opens (or creates) the store in `dir`: loads the newest checkpoint,
    /// replays the WAL after it, starts a new segment and applies retention.
    /// Series keep their references across restarts when they can; one that
    /// cannot (its label hash now picks another shard, after an upgrade) is
    /// logged again with its new reference, so that later records never
    /// depend on an older process's references.
    pub fn open(dir: &Path, opts: DbOptions) -> Result<(Db, OpenStats), Error> {
        let started = Instant::now();
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let wal_dir = dir.join("wal");
        let head = Head::new(opts.head.clone());
        let mut st = OpenStats::default();
        // The newest checkpoint is read and decoded on another thread while
        // this one loads the chunk store's series.
        let checkpoints = wal::list_checkpoints(dir)?;
        let prefetch = prefetch_checkpoint(dir, checkpoints.last().copied());
        // fjall opens (and reads its journal) on another thread while this
        // one reads the head image, if there is one.
        let (kv, loaded) = std::thread::scope(|scope| {
            let kv_dir = dir.join(KV_DIR);
            let kv = std::thread::Builder::new()
                .name("raymon-open-kv".into())
                .spawn_scoped(scope, move || ChunkStore::open(&kv_dir));
            let image = take_image(dir, checkpoints.last().copied(), &wal_dir);
            let loaded = image.and_then(|im| Some((load_image(dir, &head, im.body())?, im.kind())));
            let kv = match kv {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| ChunkStore::open(&dir.join(KV_DIR))),
                Err(_) => ChunkStore::open(&dir.join(KV_DIR)),
            };
            (kv, loaded)
        });
        let kv = Arc::new(kv?);
        st.kv_open = started.elapsed();
        let (renamed, cold) = match loaded {
            Some((loaded, kind)) => {
                st.from_image = true;
                st.stored_series = loaded.stored;
                let cold = kv.cold_list()?;
                st.cold_series = cold.len() as u64;
                let renamed = match kind {
                    image::Kind::Close => Renamed::new(),
                    image::Kind::Checkpoint => catch_up_stored(&head, &kv, &cold, &mut st)?,
                };
                (renamed, cold)
            }
            None => load_stored_series(&head, &kv, &mut st)?,
        };
        st.phases[0] = started.elapsed();
        let (base, mut remap) =
            load_checkpoint(dir, &head, &checkpoints, prefetch, &renamed, &mut st);
        st.checkpoint = base;
        if st.from_image && base != checkpoints.last().copied() {
            // The image's checkpoint did not read: what the WAL replays
            // from an older one is more than the image could be told.
            image::remove(dir);
        }
        st.phases[1] = started.elapsed() - st.phases[0];
        replay_wal(&wal_dir, base, &head, &mut remap, &mut st)?;
        st.phases[2] = started.elapsed() - st.phases[0] - st.phases[1];
        let wal = start_segment(&wal_dir, base, &opts, &remap.moved)?;
        head.set_commit_log(Arc::new(WalLog(wal.clone())));
        st.elapsed = started.elapsed();
        st.phases[3] = st.elapsed - st.phases.iter().take(3).sum::<Duration>();
        info!(
            series = head.stats().num_series,
            checkpoint = ?base,
            from_image = st.from_image,
            wal_samples = st.replay.samples,
            elapsed_ms = st.elapsed.as_millis() as u64,
            "storage opened"
        );
        let cold_max = Arc::new(AtomicI64::new(settle_cold(&head, &kv, &cold)?));
        head.set_disk(Arc::new(KvChunks {
            kv: kv.clone(),
            cold_max: cold_max.clone(),
        }));
        let db = Db {
            dir: dir.to_path_buf(),
            head,
            wal,
            kv,
            cold_max,
            persisted_chunks: AtomicU64::new(0),
            opts,
            maintenance: Mutex::new(Maintenance {
                last_checkpoint: Instant::now(),
                wal_bytes_at_checkpoint: 0,
                wal_samples_at_checkpoint: 0,
                replayed: st.replay.samples > 0 || st.replay.series_records > 0,
                checkpoints: 0,
                checkpoint_failures: 0,
                retention_removed_chunks: 0,
                merge: merge::MergeCursor::default(),
            }),
            background: Ticker::default(),
        };
        // What expired while the process was down goes now, from disk too.
        db.apply_retention(now_ms())?;
        Ok((db, st))
    }
}

/// The head image of the last clean close or checkpoint, if there is one
/// that may be trusted (else it is removed; see [`image::take`]).
fn take_image(dir: &Path, newest: Option<u32>, wal_dir: &Path) -> Option<image::Image> {
    match image::take(dir, newest, wal_dir) {
        Ok(x) => x,
        Err(e) => {
            warn!(error = %e, "not using the head image: reading the series from the chunk store");
            None
        }
    }
}

/// Step 1 from the head image: the index and series as the last clean
/// close or checkpoint left them. `None` (the head untouched, the image
/// removed) when the image does not read; the chunk store is read instead.
fn load_image(dir: &Path, head: &Head, body: &[u8]) -> Option<ImageLoad> {
    match head.load_image(body) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            warn!(error = %e, "not using the head image: reading the series from the chunk store");
            image::remove(dir);
            None
        }
    }
}

/// Step 1 after a checkpoint's image: what moved to the chunk store since
/// it was taken (chunks every 30 seconds, with the labels of their series
/// when new) is read back from there, as an open without an image would
/// have read it: each series' persisted range from the `ranges` keyspace,
/// and the labels of series the image does not have. Returns the series
/// whose reference changed, as [`load_stored_series`] does.
fn catch_up_stored(
    head: &Head,
    kv: &ChunkStore,
    cold: &[ColdEntry],
    st: &mut OpenStats,
) -> Result<Renamed, Error> {
    let cold_refs: FxHashSet<SeriesRef> = cold.iter().map(|e| e.r).collect();
    let mut ranges = kv.ranges()?;
    ranges.retain(|x| !cold_refs.contains(&x.0));
    let missing = head.catch_up_stored(&ranges);
    let mut renamed = Renamed::new();
    for (old, range) in missing {
        let Some(labels) = kv.labels_of(old)? else {
            warn!(
                series = old,
                "the chunk store has chunks but no labels for a series; skipped"
            );
            continue;
        };
        let r = head.restore_stored(&labels, hash_labels(&labels), old, Some(range))?;
        st.stored_series += 1;
        if r != old {
            renamed.push((old, r, labels));
        }
    }
    for (from, to, labels) in &renamed {
        kv.rename(*from, *to, labels)?;
    }
    Ok(renamed)
}

/// Starts decoding checkpoint `n` on a thread of its own.
fn prefetch_checkpoint(dir: &Path, n: Option<u32>) -> Prefetch {
    let n = n?;
    let d = dir.to_path_buf();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("raymon-open".into())
        .spawn(move || decode_checkpoint(&d, n, &tx))
        .ok()
        .map(|_| (n, rx))
}

/// A series of the chunk store as the reading thread hands it over:
/// reference, labels, label hash and persisted range.
type Stored = (SeriesRef, Labels, u64, Option<TimeRange>);

/// Series per batch handed from the reading thread: small, so that the few
/// batches in flight (whose strings the reading thread reuses) stay in cache.
const STORED_BATCH: usize = 1024;

/// Step 1: the chunk store's series into the head, first, since checkpoints
/// name them by reference only. Cold series stay on disk: queries find them
/// through the chunk store's postings. Returns the series whose reference
/// changed (renamed in the chunk store too) and the cold list.
///
/// A second thread reads the chunk store, decodes and hashes the labels,
/// while this one puts them into the head and its index: at a million
/// series that halves this step's time. Batches go back to the reading
/// thread, which reuses their strings, so no label is freed on a thread
/// other than the one that allocated it (which made restarts 5x slower
/// once).
fn load_stored_series(
    head: &Head,
    kv: &ChunkStore,
    st: &mut OpenStats,
) -> Result<(Renamed, Vec<ColdEntry>), Error> {
    let mut renamed: Renamed = Vec::new();
    let mut restore_err = None;
    let cold = kv.cold_list()?;
    let cold_refs: FxHashSet<SeriesRef> = cold.iter().map(|e| e.r).collect();
    st.cold_series = cold.len() as u64;
    let loaded = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<(Vec<Stored>, usize)>(2);
        let (back_tx, back_rx) = mpsc::channel::<(Vec<Stored>, usize)>();
        let cold_refs = &cold_refs;
        let reader = std::thread::Builder::new()
            .name("raymon-open-kv".into())
            .spawn_scoped(scope, move || {
                let mut batch: Vec<Stored> = Vec::with_capacity(STORED_BATCH);
                let mut len = 0;
                let res = kv.load(&|r| cold_refs.contains(&r), &mut |r, payload, range| {
                    if len == batch.len() {
                        batch.push((0, Labels::default(), 0, None));
                    }
                    let slot = &mut batch[len];
                    // Decoded straight into the slot, reusing its strings.
                    let mut labels = std::mem::take(&mut slot.1).into_vec();
                    if !wal::get_labels_into(payload, &mut labels) {
                        labels.clear();
                        slot.1 = Labels::from_sorted(labels);
                        return false;
                    }
                    slot.1 = Labels::from_sorted(labels);
                    slot.0 = r;
                    slot.2 = hash_labels(&slot.1);
                    slot.3 = range;
                    len += 1;
                    if len == STORED_BATCH {
                        let next = back_rx
                            .try_recv()
                            .map(|(b, _)| b)
                            .unwrap_or_else(|_| Vec::with_capacity(STORED_BATCH));
                        let full = std::mem::replace(&mut batch, next);
                        // The head's side is gone only if it panicked.
                        let _ = tx.send((full, len));
                        len = 0;
                    }
                    true
                });
                if len > 0 {
                    let _ = tx.send((batch, len));
                }
                drop(tx);
                // Batches still on their way back are freed here, where
                // their strings were allocated.
                back_rx.iter().for_each(drop);
                res
            });
        let reader = match reader {
            Ok(h) => h,
            Err(e) => return Err(Error::Restore(storage::Error::Other(e.to_string()))),
        };
        for (batch, len) in rx {
            for (old, labels, hash, range) in &batch[..len] {
                match head.restore_stored(labels, *hash, *old, *range) {
                    Ok(r) => {
                        if r != *old {
                            renamed.push((*old, r, labels.clone()));
                        }
                    }
                    Err(e) => restore_err = Some(e),
                }
            }
            let _ = back_tx.send((batch, 0));
        }
        drop(back_tx);
        match reader.join() {
            Ok(res) => res.map_err(Error::from),
            Err(_) => Err(Error::Restore(storage::Error::Other(
                "the thread reading the chunk store's series panicked".to_string(),
            ))),
        }
    });
    st.stored_series = loaded?;
    if let Some(e) = restore_err {
        warn!(error = %e, "a stored series was skipped");
    }
    for (from, to, labels) in &renamed {
        kv.rename(*from, *to, labels)?;
    }
    Ok((renamed, cold))
}

/// Step 2: the newest checkpoint that reads cleanly wins; a broken one is
/// reported and skipped (its segments were kept until it was whole).
/// Returns its number and the reference map the WAL replay starts from.
fn load_checkpoint(
    dir: &Path,
    head: &Head,
    checkpoints: &[u32],
    mut prefetch: Prefetch,
    renamed: &Renamed,
    st: &mut OpenStats,
) -> (Option<u32>, Remap) {
    let kv_map: FxHashMap<SeriesRef, SeriesRef> =
        renamed.iter().map(|(from, to, _)| (*from, *to)).collect();
    let mut remap = Remap::default();
    for &n in checkpoints.iter().rev() {
        remap.map.clone_from(&kv_map);
        remap.moved.clear();
        remap
            .moved
            .extend(renamed.iter().map(|(_, to, l)| (*to, l.clone())));
        let rx = match prefetch.take() {
            Some((m, rx)) if m == n => rx,
            _ => {
                let (tx, rx) = mpsc::channel();
                decode_checkpoint(dir, n, &tx);
                rx
            }
        };
        // Batches are applied as they come. If the checkpoint breaks part
        // way, the series restored from it keep that newer state: replaying
        // the WAL from an older checkpoint drops the samples they already
        // hold, as it does for any series.
        let mut skipped = None;
        let mut ended = None;
        // The series of the upper half of the shards are restored on a
        // second thread. The decoding thread runs ahead while the head's
        // series load, so by the time they are in, most of the checkpoint
        // waits here and this step is bound by one core's cache misses;
        // shards are locked one at a time, so the halves never meet.
        let missing = std::thread::scope(|scope| {
            let (tx, rx_hi) = mpsc::sync_channel::<Vec<(SeriesRef, Restore)>>(4);
            let worker = std::thread::Builder::new()
                .name("raymon-open-restore".into())
                .spawn_scoped(scope, move || {
                    let mut missing = Vec::new();
                    for mut list in rx_hi {
                        missing.extend(head.restore_prepared_many(&mut list));
                    }
                    missing
                })
                .ok()
                .map(|h| (h, tx));
            let (worker, tx) = worker.unzip();
            for msg in rx {
                let list = match msg {
                    Decoded::Batch(list) => list,
                    Decoded::Done(res) => {
                        ended = Some(res);
                        break;
                    }
                };
                restore_batch(head, list, &kv_map, &mut remap, &mut skipped, tx.as_ref());
            }
            drop(tx);
            worker.map_or_else(Vec::new, |h| h.join().unwrap_or_default())
        });
        if let Some(r) = missing.first() {
            skipped = Some(missing_series(*r));
        }
        let count = match ended {
            Some(Ok(count)) => count,
            Some(Err(e)) => {
                error!(error = %e, "cannot load checkpoint, trying an older one");
                continue;
            }
            None => {
                error!("the thread reading checkpoint {n} stopped; trying an older one");
                continue;
            }
        };
        if let Some(e) = skipped {
            warn!(error = %e, "a checkpoint series was skipped");
        }
        st.checkpoint_series = count;
        return (Some(n), remap);
    }
    (None, remap)
}

/// Puts one batch of a checkpoint's series into the head; with `upper`,
/// those of the chunk store in the upper half of the shards go there
/// instead, for another thread to restore.
fn restore_batch(
    head: &Head,
    list: Prepared,
    kv_map: &FxHashMap<SeriesRef, SeriesRef>,
    remap: &mut Remap,
    skipped: &mut Option<storage::Error>,
    upper: Option<&mpsc::SyncSender<Vec<(SeriesRef, Restore)>>>,
) {
    let mut stored = Vec::with_capacity(list.len());
    let mut theirs = Vec::with_capacity(if upper.is_some() { list.len() } else { 0 });
    for (old, labels, prep) in list {
        if labels.is_empty() {
            // Stored in the chunk store, loaded in step 1: restored
            // together below, a shard's run under one lock with their
            // lookups overlapped (a million of them are on the open's path).
            let r = kv_map.get(&old).copied().unwrap_or(old);
            if upper.is_some() && shard_of(r) >= SHARD_COUNT / 2 {
                theirs.push((r, prep));
            } else {
                stored.push((r, prep));
            }
            continue;
        }
        match head.series_ref(&labels, old) {
            Ok(r) => {
                if r != old {
                    remap.moved.insert(r, labels);
                    remap.map.insert(old, r);
                }
                head.restore_prepared(r, prep);
            }
            Err(e) => *skipped = Some(e),
        }
    }
    if let Some(tx) = upper
        && !theirs.is_empty()
        && let Err(mpsc::SendError(mut back)) = tx.send(theirs)
    {
        // The other thread is gone (it panicked): restore them here.
        stored.append(&mut back);
    }
    if let Some(r) = head.restore_prepared_many(&mut stored).first() {
        *skipped = Some(missing_series(*r));
    }
}

/// Why series `r` of a checkpoint was skipped.
fn missing_series(r: SeriesRef) -> storage::Error {
    storage::Error::Other(format!(
        "series {r} is in the checkpoint but not in the chunk store"
    ))
}

/// Step 3: the WAL after checkpoint `base`. Replay is bound by memory
/// latency (one series, one chunk per sample, all over the heap): a second
/// thread applies the samples of half the shards while this one reads,
/// decodes and applies the rest. Each series belongs to one thread, so its
/// order holds.
fn replay_wal(
    wal_dir: &Path,
    base: Option<u32>,
    head: &Head,
    remap: &mut Remap,
    st: &mut OpenStats,
) -> Result<(), Error> {
    let Remap { map, moved } = remap;
    let mut dropped = 0u64;
    let (replay, worker_dropped) = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Vec<(SeriesRef, i64, f64)>>(8);
        let (back_tx, back_rx) = mpsc::channel::<Vec<(SeriesRef, i64, f64)>>();
        let worker_head = head.clone();
        let worker = scope.spawn(move || {
            let mut unknown = 0u64;
            for mut batch in rx {
                unknown += worker_head.replay_samples(&mut batch) as u64;
                batch.clear();
                let _ = back_tx.send(batch);
            }
            unknown
        });
        let mut mine = Vec::new();
        let res = wal::replay(wal_dir, base, &mut |rec| match rec {
            Record::Series(list) => {
                for (old, labels) in list {
                    match head.series_ref(labels, *old) {
                        Ok(r) => {
                            // A later record for the same reference
                            // replaces the mapping; most keep theirs.
                            if r != *old {
                                moved.insert(r, labels.clone());
                                map.insert(*old, r);
                            } else {
                                map.remove(old);
                            }
                        }
                        Err(_) => dropped += 1,
                    }
                }
            }
            Record::Samples(list) => {
                let mut theirs = back_rx.try_recv().unwrap_or_default();
                mine.clear();
                for &(old, t, v) in list {
                    let r = map.get(&old).copied().unwrap_or(old);
                    if shard_of(r) < SHARD_COUNT / 2 {
                        mine.push((r, t, v));
                    } else {
                        theirs.push((r, t, v));
                    }
                }
                if !theirs.is_empty()
                    && let Err(mpsc::SendError(mut batch)) = tx.send(theirs)
                {
                    // The worker is gone (it panicked): apply here.
                    dropped += head.replay_samples(&mut batch) as u64;
                }
                dropped += head.replay_samples(&mut mine) as u64;
            }
        });
        drop(tx);
        (res, worker.join().unwrap_or(0))
    });
    st.replay = replay?;
    dropped += worker_dropped;
    if dropped > 0 {
        warn!(
            dropped,
            "WAL samples or series without a known series were skipped"
        );
    }
    if let Some(c) = &st.replay.corruption {
        error!(corruption = %c, "the WAL was corrupt: samples after the damage are lost; serving what was recovered");
    }
    Ok(())
}

/// Step 4: deletes segments the checkpoint covers (they may outlive it
/// after a crash) and starts a new one that first names every series whose
/// reference moved, synced before any commit.
fn start_segment(
    wal_dir: &Path,
    base: Option<u32>,
    opts: &DbOptions,
    moved: &FxHashMap<SeriesRef, Labels>,
) -> Result<Arc<Wal>, Error> {
    for n in wal::list_segments(wal_dir)? {
        if base.is_some_and(|b| n <= b) && may_delete(opts, wal_dir, n) {
            let _ = std::fs::remove_file(wal_dir.join(wal::segment_name(n)));
        }
    }
    let next = wal::list_segments(wal_dir)?
        .last()
        .copied()
        .max(base)
        .map_or(1, |n| n + 1);
    let wal = Arc::new(Wal::create(wal_dir, next, opts.segment_size)?);
    for (r, labels) in moved {
        wal.log_series(*r, labels);
    }
    wal.flush_series()?;
    wal.sync()?;
    Ok(wal)
}

/// Step 5: a cold series that came back before a crash may still be marked
/// cold (the mark's removal was not synced): the WAL brought it back, so
/// the mark goes. Returns the newest sample of the series still cold.
fn settle_cold(head: &Head, kv: &ChunkStore, cold: &[ColdEntry]) -> Result<i64, Error> {
    let mut cold_max = i64::MIN;
    for e in cold {
        match head.series_labels(e.r) {
            Some(labels) => {
                head.set_disk_range(e.r, Some(e.range));
                kv.forget_cold(e.r, e.hash, &labels)?;
            }
            None => cold_max = cold_max.max(e.range.1),
        }
    }
    Ok(cold_max)
}
