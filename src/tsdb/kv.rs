//! Persisted chunks and series in fjall (`docs/format/kv.md`): the only file
//! that names fjall.
//!
//! Three keyspaces: `series` (reference → labels), `chunks` (reference and
//! first timestamp → encoding, last timestamp and chunk bytes, XOR or decimal,
//! whichever is smaller) and `ranges`
//! (reference → the first and last timestamp of its persisted chunks). A
//! flush writes chunks and ranges in one batch, so that `ranges` always
//! describes `chunks`, even after a crash. Nothing here is durable before
//! [`ChunkStore::persist`]: the WAL stays the source of truth until then.
//! This file knows nothing of the head's locking, the WAL or queries.

use std::path::{Path, PathBuf};

use fjall::config::{BlockSizePolicy, CompressionPolicy};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::model::Labels;
use crate::storage::SeriesRef;

use super::chunkenc::{self, Encoding};
use super::wal;

mod cold;

pub use cold::{ColdEntry, ColdSeries};

/// The layout version, the first byte of every key.
const VERSION: u8 = 1;
/// References at most this far apart are read in one range by
/// [`ChunkStore::read_many`]: passing over the chunks of a few series in
/// between costs less than finding the next series' first key (about
/// 24,000 instructions). 32, not 8: neighbours in a label-sorted batch of
/// Ray's histogram buckets are mostly more than 16 and at most 32
/// references apart, and the series in between had few chunks to pass over
/// (1.3% more keys read for a tenth of the ranges; docs/decisions.md).
const READ_GAP: SeriesRef = 32;
/// fjall's block cache; chunks are read once per query, so a small cache.
const CACHE_BYTES: u64 = 16 << 20;
/// Blocks of the `series` keyspace: LZ4 finds a label set's repeats in the
/// sets before it only within a block, and a 4 KiB block (fjall's default)
/// holds ten of Ray's. At 64 KiB labels took 34 bytes a series instead of 63
/// (1M series); the keyspace is read whole at open, rarely by key.
const SERIES_BLOCK_BYTES: u32 = 64 << 10;
/// Writes held in memory before they go to tables: a flush of a million
/// new series' labels would otherwise sit in memory (fjall's default is
/// 64 MiB per keyspace).
const MEMTABLE_BYTES: u64 = 8 << 20;
/// fjall moves its garbage-collection watermark after this many closed
/// snapshots (`snapshot_tracker.rs` in fjall 3.1).
const GC_SNAPSHOTS: usize = 10_000;
/// fjall's journal, replayed at open, is kept under this (default 512 MiB).
const JOURNAL_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("chunk store {path}: {source}")]
    Kv {
        path: PathBuf,
        #[source]
        source: fjall::Error,
    },
    #[error("chunk store {path}: undecodable {what} for series {r}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        r: SeriesRef,
    },
}

/// The first and last timestamp of a series' persisted chunks.
pub type TimeRange = (i64, i64);

/// What [`ChunkStore::merge_chunks`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Series looked at.
    pub series: usize,
    /// Chunks found in the window.
    pub chunks_read: usize,
    /// Chunks there afterwards.
    pub chunks_left: usize,
    /// Groups left unmerged because their chunks could not be decoded in
    /// order.
    pub refused: usize,
}

impl std::ops::AddAssign for MergeStats {
    fn add_assign(&mut self, o: MergeStats) {
        self.series += o.series;
        self.chunks_read += o.chunks_read;
        self.chunks_left += o.chunks_left;
        self.refused += o.refused;
    }
}

/// One persisted chunk, decoded from its key and value.
struct StoredChunk {
    min_t: i64,
    max_t: i64,
    encoding: Encoding,
    data: Vec<u8>,
}

/// One series' part of a flush: its labels when not yet stored, and chunks
/// in time order.
#[derive(Debug, Clone)]
pub struct FlushSeries<'a> {
    pub r: SeriesRef,
    /// Encoded as [`wal::put_labels`] writes them.
    pub labels: Option<&'a [u8]>,
    pub chunks: &'a [(i64, i64, &'a [u8])],
    /// The persisted range after this flush (earlier chunks included).
    pub range: Option<(i64, i64)>,
}

/// What [`ChunkStore::load`] calls for each series: its reference, its
/// labels as [`wal::put_labels`] encoded them, its persisted range; false
/// when the labels do not decode.
pub type LoadFn<'a> = dyn FnMut(SeriesRef, &[u8], Option<TimeRange>) -> bool + 'a;

/// The persisted part of the store.
pub struct ChunkStore {
    path: PathBuf,
    db: Database,
    series: Keyspace,
    chunks: Keyspace,
    ranges: Keyspace,
    // Series that left the head (`cold.rs`).
    postings: Keyspace,
    hashes: Keyspace,
    cold: Keyspace,
}

impl std::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn series_key(r: SeriesRef) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = VERSION;
    k[1..].copy_from_slice(&r.to_be_bytes());
    k
}

/// Times are stored with the sign bit flipped so that negative ones sort
/// first.
fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from(b: &[u8]) -> Option<i64> {
    let a: [u8; 8] = b.try_into().ok()?;
    Some((u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

fn chunk_key(r: SeriesRef, min_t: i64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..9].copy_from_slice(&series_key(r));
    k[9..].copy_from_slice(&time_bytes(min_t));
    k
}

fn ref_from(key: &[u8]) -> Option<SeriesRef> {
    if key.first() != Some(&VERSION) {
        return None;
    }
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

fn range_value(range: (i64, i64)) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&range.0.to_be_bytes());
    v[8..].copy_from_slice(&range.1.to_be_bytes());
    v
}

fn range_from(v: &[u8]) -> Option<(i64, i64)> {
    let a = i64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let b = i64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    Some((a, b))
}

/// Writes a `chunks` value into `buf`: encoding, last timestamp, chunk bytes.
fn chunk_value(buf: &mut Vec<u8>, encoding: Encoding, max_t: i64, data: &[u8]) {
    buf.clear();
    buf.push(encoding as u8);
    buf.extend_from_slice(&max_t.to_be_bytes());
    buf.extend_from_slice(data);
}

fn chunk_from(key: &[u8], value: &[u8]) -> Option<StoredChunk> {
    let min_t = time_from(key.get(9..17)?)?;
    let encoding = Encoding::from_u8(*value.first()?).ok()?;
    let max_t = i64::from_be_bytes(value.get(1..9)?.try_into().ok()?);
    Some(StoredChunk {
        min_t,
        max_t,
        encoding,
        data: value.get(9..)?.to_vec(),
    })
}

impl ChunkStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<ChunkStore, Error> {
        let err = |source| Error::Kv {
            path: dir.to_path_buf(),
            source,
        };
        // Two cores are shared with scraping: one background worker.
        let db = Database::builder(dir)
            .cache_size(CACHE_BYTES)
            .worker_threads(1)
            .manual_journal_persist(true)
            .max_journaling_size(JOURNAL_BYTES)
            .open()
            .map_err(err)?;
        // LZ4 at every level (fjall compresses only from level 2 on): label
        // sets repeat most of their bytes, and young tables are most of a
        // store that lives for days.
        let opts = || {
            KeyspaceCreateOptions::default()
                .max_memtable_size(MEMTABLE_BYTES)
                .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
        };
        let series = db
            .keyspace("series", || {
                opts().data_block_size_policy(BlockSizePolicy::all(SERIES_BLOCK_BYTES))
            })
            .map_err(err)?;
        let chunks = db.keyspace("chunks", opts).map_err(err)?;
        let ranges = db.keyspace("ranges", opts).map_err(err)?;
        let postings = db.keyspace("postings", opts).map_err(err)?;
        let hashes = db.keyspace("hashes", opts).map_err(err)?;
        let cold = db.keyspace("cold", opts).map_err(err)?;
        Ok(ChunkStore {
            path: dir.to_path_buf(),
            db,
            series,
            chunks,
            ranges,
            postings,
            hashes,
            cold,
        })
    }

    fn err(&self, source: fjall::Error) -> Error {
        Error::Kv {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: &'static str, r: SeriesRef) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            what,
            r,
        }
    }

    /// Writes the chunks (XOR chunks, as they are), ranges and new labels of
    /// a flush in one batch. The merge of their window
    /// ([`ChunkStore::merge_chunks`]) writes them in their smaller form:
    /// compacting each chunk here too encoded every sample twice, and was
    /// most of what a flush cost.
    pub fn flush(&self, items: &[FlushSeries<'_>]) -> Result<(), Error> {
        let mut batch = self.db.batch();
        let mut buf = Vec::new();
        for s in items {
            if let Some(labels) = s.labels {
                batch.insert(&self.series, series_key(s.r), labels);
            }
            for &(min_t, max_t, data) in s.chunks {
                chunk_value(&mut buf, Encoding::Xor, max_t, data);
                batch.insert(&self.chunks, chunk_key(s.r, min_t), buf.as_slice());
            }
            if let Some(range) = s.range {
                batch.insert(&self.ranges, series_key(s.r), range_value(range));
            }
        }
        batch.commit().map_err(|e| self.err(e))
    }

    /// Appends to `out` the chunks of `r` (encoding and bytes) that overlap
    /// `[mint, maxt]` and end at or before `upto`, in time order.
    pub fn read(
        &self,
        r: SeriesRef,
        mint: i64,
        maxt: i64,
        upto: i64,
        out: &mut Vec<(Encoding, Vec<u8>)>,
    ) -> Result<(), Error> {
        let lo = chunk_key(r, i64::MIN);
        let hi = chunk_key(r, maxt);
        for kv in self.chunks.range(lo..=hi) {
            let (k, v) = kv.into_inner().map_err(|e| self.err(e))?;
            let c = chunk_from(&k, &v).ok_or_else(|| self.corrupt("chunk", r))?;
            if c.max_t >= mint && c.max_t <= upto {
                out.push((c.encoding, c.data));
            }
        }
        Ok(())
    }

    /// [`ChunkStore::read`] for the series of `wanted` (reference and
    /// `upto`, ascending by reference), into `out` with each chunk's
    /// series. Series whose references lie close together are read in one
    /// range, as most of a read's cost is finding its first key: a
    /// selection's series of one metric were mostly created one after the
    /// other. The chunks of references in between are passed over.
    ///
    /// A range has no upper bound: it ends at the first key past its last
    /// series, which saves fjall a second search of the table's index and
    /// of the data block, for the upper bound (a fifth of the 14-day
    /// panel's reads in a profile: its series lie thousands of references
    /// apart, and most get a range each).
    pub fn read_many(
        &self,
        wanted: &[(SeriesRef, i64)],
        mint: i64,
        maxt: i64,
        out: &mut Vec<(SeriesRef, Encoding, Vec<u8>)>,
    ) -> Result<(), Error> {
        let mut i = 0;
        while i < wanted.len() {
            // One range over references at most `READ_GAP` apart.
            let mut j = i + 1;
            while j < wanted.len() && wanted[j].0 - wanted[j - 1].0 <= READ_GAP {
                j += 1;
            }
            let span = &wanted[i..j];
            let (first, last) = (span[0].0, span[span.len() - 1].0);
            let hi = chunk_key(last, maxt);
            let mut k = 0;
            for kv in self.chunks.range(chunk_key(first, i64::MIN)..) {
                let (key, v) = kv.into_inner().map_err(|e| self.err(e))?;
                if key[..] > hi[..] {
                    break;
                }
                let Some(r) = ref_from(&key) else {
                    return Err(self.corrupt("chunk key", first));
                };
                while k < span.len() && span[k].0 < r {
                    k += 1;
                }
                let Some(&(want, upto)) = span.get(k) else {
                    break;
                };
                if want != r {
                    continue;
                }
                let c = chunk_from(&key, &v).ok_or_else(|| self.corrupt("chunk", r))?;
                if c.min_t <= maxt && c.max_t >= mint && c.max_t <= upto {
                    out.push((r, c.encoding, c.data));
                }
            }
            i = j;
        }
        Ok(())
    }

    /// Up to `limit` series with persisted chunks, in reference order after
    /// `after` (from the first when `None`), with their persisted ranges.
    pub fn ranges_after(
        &self,
        after: Option<SeriesRef>,
        limit: usize,
    ) -> Result<Vec<(SeriesRef, TimeRange)>, Error> {
        let lo = match after {
            Some(r) if r == SeriesRef::MAX => return Ok(Vec::new()),
            Some(r) => series_key(r + 1),
            None => series_key(0),
        };
        let mut out = Vec::with_capacity(limit.min(1 << 16));
        for kv in self.ranges.range(lo..).take(limit) {
            let (k, v) = kv.into_inner().map_err(|e| self.err(e))?;
            if let (Some(r), Some(range)) = (ref_from(&k), range_from(&v)) {
                out.push((r, range));
            }
        }
        Ok(out)
    }

    /// Rewrites the chunks of each series in `refs` that start in `[start,
    /// end)` as as few chunks as [`chunkenc::MERGED_MAX_SAMPLES`] allows
    /// (`kv.md`, "Merging a window"), each in its smaller form (a lone XOR
    /// chunk too, as flushes store them), all in one batch. A merged chunk
    /// takes the key of its first part, so readers and ranges see the same
    /// times. A series whose chunks cannot be merged (corrupt, overlapping)
    /// keeps them as they are. Returns the chunks read and the chunks left.
    pub fn merge_chunks(
        &self,
        refs: &[SeriesRef],
        start: i64,
        end: i64,
    ) -> Result<MergeStats, Error> {
        let mut batch = self.db.batch();
        let mut st = MergeStats::default();
        let mut found: Vec<(fjall::Slice, StoredChunk)> = Vec::new();
        let mut merged = Vec::new();
        let mut value = Vec::new();
        let mut samples = Vec::new();
        for &r in refs {
            found.clear();
            for kv in self.chunks.range(chunk_key(r, start)..chunk_key(r, end)) {
                let (k, v) = kv.into_inner().map_err(|e| self.err(e))?;
                let c = chunk_from(&k, &v).ok_or_else(|| self.corrupt("chunk", r))?;
                found.push((k, c));
            }
            st.series += 1;
            st.chunks_read += found.len();
            // Groups of consecutive chunks that fit one merged chunk.
            let mut i = 0;
            while i < found.len() {
                let mut j = i;
                let mut n = 0;
                while j < found.len() {
                    let m = chunkenc::num_samples(&found[j].1.data);
                    if j > i && n + m > chunkenc::MERGED_MAX_SAMPLES {
                        break;
                    }
                    n += m;
                    j += 1;
                }
                let group = &found[i..j];
                i = j;
                st.chunks_left += 1;
                if let [(key, c)] = group {
                    // Alone in its group: only a flushed XOR chunk changes.
                    if c.encoding == Encoding::Xor {
                        let encoding = chunkenc::compact_with(&c.data, &mut merged, &mut samples);
                        if encoding != Encoding::Xor {
                            chunk_value(&mut value, encoding, c.max_t, &merged);
                            batch.insert(&self.chunks, key.clone(), value.as_slice());
                        }
                    }
                    continue;
                }
                let parts: Vec<(Encoding, &[u8])> = group
                    .iter()
                    .map(|(_, c)| (c.encoding, c.data.as_slice()))
                    .collect();
                let Ok(encoding) = chunkenc::merge(&parts, &mut merged) else {
                    st.chunks_left += group.len() - 1;
                    st.refused += 1;
                    continue;
                };
                chunk_value(
                    &mut value,
                    encoding,
                    group[group.len() - 1].1.max_t,
                    &merged,
                );
                batch.insert(&self.chunks, group[0].0.clone(), value.as_slice());
                for (k, _) in &group[1..] {
                    batch.remove(&self.chunks, k.clone());
                }
            }
        }
        batch.commit().map_err(|e| self.err(e))?;
        Ok(st)
    }

    /// Deletes the chunks of `r` that end before `t`; returns the persisted
    /// range left, if any.
    pub fn delete_before(&self, r: SeriesRef, t: i64) -> Result<Option<(i64, i64)>, Error> {
        Ok(self.delete_before_each(&[r], t)?.pop().flatten())
    }

    /// [`ChunkStore::delete_before`] for every series of `refs` in one write
    /// batch: the ranges left, in the order of `refs`. One batch for many
    /// series, because fjall asks its one worker for a memtable rotation on
    /// every write while the memtable is over its size, and a flood of those
    /// requests fills the worker's bounded queue until the worker blocks on
    /// it (fjall-rs/fjall#323): retention over a million series once stopped
    /// an open that way.
    pub fn delete_before_each(
        &self,
        refs: &[SeriesRef],
        t: i64,
    ) -> Result<Vec<Option<(i64, i64)>>, Error> {
        let mut batch = self.db.batch();
        let mut out = Vec::with_capacity(refs.len());
        for &r in refs {
            let lo = chunk_key(r, i64::MIN);
            let hi = chunk_key(r, i64::MAX);
            let mut left: Option<(i64, i64)> = None;
            for kv in self.chunks.range(lo..=hi) {
                let (k, v) = kv.into_inner().map_err(|e| self.err(e))?;
                let c = chunk_from(&k, &v).ok_or_else(|| self.corrupt("chunk", r))?;
                if c.max_t < t {
                    batch.remove(&self.chunks, k);
                } else {
                    left = Some(left.map_or((c.min_t, c.max_t), |(a, b)| (a, b.max(c.max_t))));
                }
            }
            match left {
                Some(range) => batch.insert(&self.ranges, series_key(r), range_value(range)),
                None => batch.remove(&self.ranges, series_key(r)),
            }
            out.push(left);
        }
        batch.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Deletes a series with every chunk it has.
    pub fn delete_series(&self, r: SeriesRef) -> Result<(), Error> {
        self.delete_series_each(&[r])
    }

    /// Deletes every series of `refs` with every chunk it has, in one write
    /// batch (why one: [`ChunkStore::delete_before_each`]).
    pub fn delete_series_each(&self, refs: &[SeriesRef]) -> Result<(), Error> {
        let mut batch = self.db.batch();
        for &r in refs {
            for kv in self
                .chunks
                .range(chunk_key(r, i64::MIN)..=chunk_key(r, i64::MAX))
            {
                let k = kv.key().map_err(|e| self.err(e))?;
                batch.remove(&self.chunks, k);
            }
            batch.remove(&self.ranges, series_key(r));
            batch.remove(&self.series, series_key(r));
        }
        batch.commit().map_err(|e| self.err(e))
    }

    /// Moves a series to another reference (its labels now hash elsewhere).
    pub fn rename(&self, from: SeriesRef, to: SeriesRef, labels: &Labels) -> Result<(), Error> {
        let mut batch = self.db.batch();
        let mut buf = Vec::new();
        wal::put_labels(&mut buf, labels);
        batch.insert(&self.series, series_key(to), buf);
        for kv in self
            .chunks
            .range(chunk_key(from, i64::MIN)..=chunk_key(from, i64::MAX))
        {
            let (k, v) = kv.into_inner().map_err(|e| self.err(e))?;
            let mut nk = k.to_vec();
            if let Some(dst) = nk.get_mut(1..9) {
                dst.copy_from_slice(&to.to_be_bytes());
            }
            batch.insert(&self.chunks, nk, v);
            batch.remove(&self.chunks, k);
        }
        if let Some(v) = self.ranges.get(series_key(from)).map_err(|e| self.err(e))? {
            batch.insert(&self.ranges, series_key(to), v);
        }
        batch.remove(&self.ranges, series_key(from));
        batch.remove(&self.series, series_key(from));
        batch.commit().map_err(|e| self.err(e))
    }

    /// Every series with chunks here and their range, by reference (the
    /// `ranges` keyspace whole: 24 bytes a series).
    pub fn ranges(&self) -> Result<Vec<(SeriesRef, TimeRange)>, Error> {
        let mut out = Vec::new();
        for kv in self.ranges.iter() {
            let (k, v) = kv.into_inner().map_err(|e| self.err(e))?;
            if let (Some(r), Some(range)) = (ref_from(&k), range_from(&v)) {
                out.push((r, range));
            }
        }
        Ok(out)
    }

    /// Calls `f` with every stored series but the cold ones (`is_cold`) in
    /// reference order: its labels as [`wal::put_labels`] encoded them, for
    /// `f` to decode where it keeps them (false if they do not decode), and
    /// its persisted range.
    pub fn load(
        &self,
        is_cold: &dyn Fn(SeriesRef) -> bool,
        f: &mut LoadFn<'_>,
    ) -> Result<u64, Error> {
        let ranges = self.ranges()?;
        // Both keyspaces sort by reference: walk them side by side.
        let mut next = 0;
        let mut n = 0;
        for kv in self.series.iter() {
            let (k, v) = kv.into_inner().map_err(|e| self.err(e))?;
            let Some(r) = ref_from(&k) else { continue };
            if is_cold(r) {
                continue;
            }
            while ranges.get(next).is_some_and(|x| x.0 < r) {
                next += 1;
            }
            let range = ranges.get(next).filter(|x| x.0 == r).map(|x| x.1);
            if !f(r, &v, range) {
                return Err(self.corrupt("labels", r));
            }
            n += 1;
        }
        Ok(n)
    }

    /// Makes every write so far durable.
    pub fn persist(&self) -> Result<(), Error> {
        self.db
            .persist(PersistMode::SyncData)
            .map_err(|e| self.err(e))
    }

    /// Starts writing the in-memory part of every keyspace to tables.
    pub fn rotate(&self) -> Result<(), Error> {
        for ks in self.keyspaces() {
            ks.rotate_memtable().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Writes the in-memory part of every keyspace to tables and waits, so
    /// that the next open has no journal to replay.
    pub fn rotate_and_wait(&self) -> Result<(), Error> {
        for ks in self.keyspaces() {
            ks.rotate_memtable_and_wait().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn keyspaces(&self) -> [&Keyspace; 6] {
        [
            &self.series,
            &self.chunks,
            &self.ranges,
            &self.postings,
            &self.hashes,
            &self.cold,
        ]
    }

    /// Rewrites the chunks so that deleted ones give their space back.
    pub fn compact(&self) -> Result<(), Error> {
        // A compaction keeps every version newer than fjall's
        // garbage-collection watermark, which moves only when a memtable is
        // rotated or after every 10,000th closed snapshot: without both,
        // chunks merged or deleted since then would keep their space
        // (measured: 1.77 instead of 1.31 bytes a sample after merging).
        self.chunks
            .rotate_memtable_and_wait()
            .map_err(|e| self.err(e))?;
        for _ in 0..GC_SNAPSHOTS {
            drop(self.db.snapshot());
        }
        self.chunks.major_compact().map_err(|e| self.err(e))
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    /// Bytes on disk of each table, by name; the journal is not in any.
    pub fn table_bytes(&self) -> Vec<(String, u64)> {
        self.keyspaces()
            .iter()
            .map(|k| (k.name().to_string(), k.disk_space()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::chunkenc::{SampleIter, XorChunk};

    /// Samples as timestamps and value bits.
    type Bits = Vec<(i64, u64)>;

    /// An XOR chunk of `n` samples from `t0`, 15 s apart, of Ray-like
    /// values (one-decimal gauges), and its samples as bits.
    fn xor_chunk(t0: i64, n: i64) -> (Vec<u8>, Bits) {
        let mut c = XorChunk::new();
        let mut want = Vec::new();
        for i in 0..n {
            let (t, v) = (t0 + i * 15_000, ((i * 37) % 1000) as f64 / 10.0);
            c.append(t, v).unwrap();
            want.push((t, v.to_bits()));
        }
        (c.into_bytes(), want)
    }

    fn stored(store: &ChunkStore, r: SeriesRef) -> (Vec<Encoding>, Bits) {
        let mut out = Vec::new();
        store
            .read(r, i64::MIN, i64::MAX, i64::MAX, &mut out)
            .unwrap();
        let encodings = out.iter().map(|c| c.0).collect();
        let samples = out
            .iter()
            .flat_map(|(e, b)| SampleIter::new(*e, b).map(|(t, v)| (t, v.to_bits())))
            .collect();
        (encodings, samples)
    }

    #[test]
    fn a_flush_stores_xor_and_the_window_merge_the_smaller_form() {
        let dir = std::env::temp_dir().join(format!("rm-kv-flush-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = ChunkStore::open(&dir).unwrap();
        // Series 1: four chunks in the window; series 2: one.
        let chunks: Vec<(Vec<u8>, Bits)> =
            (0..4).map(|k| xor_chunk(k * 120 * 15_000, 120)).collect();
        let parts: Vec<(i64, i64, &[u8])> = chunks
            .iter()
            .map(|(b, s)| (s[0].0, s[s.len() - 1].0, b.as_slice()))
            .collect();
        let lone = [parts[1]];
        let items = [
            FlushSeries {
                r: 1,
                labels: None,
                chunks: &parts,
                range: Some((parts[0].0, parts[3].1)),
            },
            FlushSeries {
                r: 2,
                labels: None,
                chunks: &lone,
                range: Some((lone[0].0, lone[0].1)),
            },
        ];
        store.flush(&items).unwrap();
        let all: Vec<(i64, u64)> = chunks.iter().flat_map(|c| c.1.clone()).collect();
        assert_eq!(stored(&store, 1), (vec![Encoding::Xor; 4], all.clone()));
        assert_eq!(
            stored(&store, 2),
            (vec![Encoding::Xor], chunks[1].1.clone())
        );
        let st = store.merge_chunks(&[1, 2], 0, 4 * 120 * 15_000).unwrap();
        assert_eq!((st.chunks_read, st.chunks_left, st.refused), (5, 2, 0));
        assert_eq!(stored(&store, 1), (vec![Encoding::Grid], all));
        assert_eq!(
            stored(&store, 2),
            (vec![Encoding::Grid], chunks[1].1.clone())
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Reading several series at once gives each the chunks its own read
    /// gives, whatever lies between their references and whatever the range.
    #[test]
    fn issue_22_reading_many_series_equals_reading_each() {
        let dir = std::env::temp_dir().join(format!("rm-kv-many-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = ChunkStore::open(&dir).unwrap();
        // Series 1..=40, each with chunks of 10 samples every 100 s from a
        // start that moves with the reference.
        let mut chunks: Vec<(SeriesRef, i64, i64, Vec<u8>)> = Vec::new();
        for r in 1..=40u64 {
            let start = r as i64 * 7_000;
            for c in 0..(1 + r % 4) as i64 {
                let mut x = XorChunk::new();
                let t0 = start + c * 100_000;
                for k in 0..10 {
                    x.append(t0 + k * 10_000, (r * 100 + k as u64) as f64)
                        .unwrap();
                }
                chunks.push((r, t0, t0 + 90_000, x.bytes().to_vec()));
            }
        }
        let parts: Vec<Vec<(i64, i64, &[u8])>> = (1..=40u64)
            .map(|r| {
                chunks
                    .iter()
                    .filter(|c| c.0 == r)
                    .map(|c| (c.1, c.2, c.3.as_slice()))
                    .collect()
            })
            .collect();
        let items: Vec<FlushSeries<'_>> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| FlushSeries {
                r: i as u64 + 1,
                labels: None,
                chunks: p,
                range: None,
            })
            .collect();
        store.flush(&items).unwrap();
        // Far references, with and without chunks between them.
        let far: Vec<(i64, i64, Vec<u8>)> = chunks
            .iter()
            .filter(|c| c.0 <= 3)
            .map(|c| (c.1, c.2, c.3.clone()))
            .collect();
        let far_parts: Vec<(i64, i64, &[u8])> =
            far.iter().map(|c| (c.0, c.1, c.2.as_slice())).collect();
        let far_items: Vec<FlushSeries<'_>> = [1_000, 2_000, 5_000]
            .iter()
            .map(|&r| FlushSeries {
                r,
                labels: None,
                chunks: &far_parts,
                range: None,
            })
            .collect();
        store.flush(&far_items).unwrap();
        let wanted_sets: [Vec<(SeriesRef, i64)>; 7] = [
            (1..=40).map(|r| (r, i64::MAX)).collect(),
            vec![
                (2, i64::MAX),
                (3, 150_000),
                (9, i64::MAX),
                (30, 300_000),
                (40, 0),
            ],
            vec![(5, i64::MAX), (6, i64::MAX), (7, i64::MAX), (41, i64::MAX)],
            vec![(17, i64::MAX)],
            vec![
                (40, i64::MAX),
                (1_000, i64::MAX),
                (2_000, 150_000),
                (5_000, i64::MAX),
            ],
            vec![(1_000, i64::MAX), (3_000, i64::MAX), (5_000, 0)],
            vec![(39, i64::MAX), (2_000, i64::MAX), (6_000, i64::MAX)],
        ];
        for wanted in &wanted_sets {
            for (mint, maxt) in [(0, i64::MAX), (150_000, 260_000), (400_000, 401_000)] {
                let mut many = Vec::new();
                store.read_many(wanted, mint, maxt, &mut many).unwrap();
                let mut each = Vec::new();
                for &(r, upto) in wanted {
                    let mut one = Vec::new();
                    store.read(r, mint, maxt, upto, &mut one).unwrap();
                    each.extend(one.into_iter().map(|(e, d)| (r, e, d)));
                }
                assert_eq!(many, each, "{wanted:?} over [{mint}, {maxt}]");
            }
        }
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
