//! One series in memory (`MemSeries`): its closed chunks and open XOR chunk,
//! where chunks are cut (as Prometheus cuts them), and reading its samples
//! back. Knows nothing of shards, locks or appenders.

use std::ops::Deref;
use std::sync::Arc;

use crate::model::{STALE_NAN_BITS, Sample};
use crate::storage::Error;

use crate::tsdb::chunkenc::{DecimalIter, Encoding, Repeats, XorAppender, XorIter};
use crate::tsdb::index::SymLabels;

use super::{persist::*, shards::*};

pub(super) struct ClosedChunk {
    pub(super) min_t: i64,
    pub(super) max_t: i64,
    // Shared so that readers (and later a flusher) take it without copying.
    pub(super) data: Arc<[u8]>,
}

/// The chunk being appended to. Its last sample's time and value bits are
/// the series' `last_t` and `last_v`, which every append passes in.
pub(super) struct OpenChunk {
    pub(super) chunk: XorAppender,
}

/// A series' closed chunks that the chunk store does not hold yet: none
/// but for the half minute between a cut and the next flush, so they sit
/// behind one pointer (8 bytes of the series instead of a `Vec`'s 24).
// The box is the point: a thin pointer where a `Vec` takes three words.
#[allow(clippy::box_collection)]
#[derive(Default)]
pub(super) struct ClosedChunks(Option<Box<Vec<ClosedChunk>>>);

impl Deref for ClosedChunks {
    type Target = [ClosedChunk];

    fn deref(&self) -> &[ClosedChunk] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl From<Vec<ClosedChunk>> for ClosedChunks {
    fn from(v: Vec<ClosedChunk>) -> ClosedChunks {
        ClosedChunks((!v.is_empty()).then(|| Box::new(v)))
    }
}

impl ClosedChunks {
    /// Adds a chunk after the others. The list usually holds one chunk
    /// until the next flush: room for exactly one rather than the four a
    /// `Vec` gives its first push.
    fn push(&mut self, c: ClosedChunk) {
        let v = self.0.get_or_insert_with(Box::default);
        v.reserve_exact(1);
        v.push(c);
    }

    /// Drops the first `n` chunks; an emptied list frees its allocations.
    fn drop_front(&mut self, n: usize) {
        if let Some(v) = &mut self.0 {
            v.drain(..n.min(v.len()));
            if v.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Heap bytes of the list itself (not of the chunks' data).
    fn heap_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |v| {
            std::mem::size_of::<Vec<ClosedChunk>>()
                + v.capacity() * std::mem::size_of::<ClosedChunk>()
        })
    }
}

impl OpenChunk {
    /// The first sample's time; an open chunk always holds one, as it is
    /// opened for the sample that starts it.
    pub(super) fn min_t(&self) -> i64 {
        self.chunk.first_t().unwrap_or(i64::MAX)
    }
}

/// Field order is fixed (`repr(C)`) so that everything an append reads or
/// writes sits in the first 78 bytes: at most two cache lines, both of which
/// [`warm`](super::append::warm) touches before a commit's appends. With the compiler's order the
/// hot fields spread over three lines and the append loop waited on one.
#[repr(C)]
pub(crate) struct MemSeries {
    // Hot: every append.
    pub(super) open: Option<OpenChunk>,
    // The last sample's time and value bits; while a chunk is open, its last
    // sample's too (the chunk does not keep a copy).
    pub(super) last_t: i64,
    pub(super) last_v: u64,
    pub(super) next_at: i64,
    // Appenders holding uncommitted samples for this series; gc keeps it.
    pub(super) pending: u32,
    pub(super) has_last: bool,
    // Whether the chunk store has the labels, so checkpoints can omit them.
    pub(super) labels_stored: bool,
    // Cold: checkpoints, queries, gc.
    pub(super) hash: u64,
    // The range of the chunks moved to disk (`i64::MAX`, `i64::MIN` when
    // none). Readers take samples up to `disk_max` from disk and only later
    // ones from memory, so a chunk briefly in both places counts once.
    pub(super) disk_min: i64,
    pub(super) disk_max: i64,
    pub(crate) labels: SymLabels,
    // Invariant: chunks are in time order and do not overlap; the open chunk
    // comes after every closed one.
    pub(super) closed: ClosedChunks,
}

/// The end of the chunk range that contains `t` (Prometheus `rangeForTimestamp`).
pub(super) fn range_for_timestamp(t: i64, width: i64) -> i64 {
    let width = width.max(1);
    ((t / width) as i128 * width as i128 + width as i128).min(i64::MAX as i128) as i64
}

/// Where to cut a chunk: at the first of `n` equal steps of its chunk range
/// (ending at `max`) after `cur`, where `n` is how many chunks of ~120
/// samples the range holds at the rate seen from `start` to `cur` (the
/// chunk is a quarter full at `cur`). Prometheus's `computeChunkEndTime`
/// takes the same estimate but splits the rest of the range from the
/// chunk's own start, so series that started at different times (a
/// target's new series, churn) cut at different times; here every series
/// scraped at one interval cuts within the same interval. When a million
/// chunks close and are flushed together, the allocator's pages that held
/// them empty out and go back to the system; cut at other times, the
/// chunks still open kept most of those pages resident, a few per page
/// (`docs/performance.md`, "Memory per series"). A chunk holds 30 to about
/// 150 samples (240 at most, as before); queries do not see the cut.
pub(super) fn compute_chunk_end_time(start: i64, cur: i64, max: i64, range: i64) -> i64 {
    let width = (cur as i128 - start as i128 + 1) * 4;
    let n = i128::from(range.max(1)) / width.max(1);
    if n <= 1 {
        return max;
    }
    let step = i128::from(range.max(1)) / n;
    let range_start = max as i128 - i128::from(range.max(1));
    // The first step boundary after `cur`; the last step ends at `max`
    // (steps are rounded down, so `n` of them may stop a few ms short).
    let k = (cur as i128 - range_start).div_euclid(step) + 1;
    if k >= n {
        return max;
    }
    (range_start + k * step) as i64
}

// The hot part must stay within two cache lines wherever the allocation
// starts, and the whole in jemalloc's 128-byte size class (the 160-byte
// class it took before cost 32 bytes a series, 46 MB at 1.4 M series).
const _: () = assert!(std::mem::offset_of!(MemSeries, hash) <= 96);
const _: () = assert!(std::mem::size_of::<MemSeries>() <= 128);

impl MemSeries {
    pub(super) fn new(labels: SymLabels, hash: u64) -> MemSeries {
        MemSeries {
            labels,
            hash,
            closed: ClosedChunks::default(),
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
    pub(super) fn appendable(&self, t: i64, v: u64) -> Result<Appendability, Error> {
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
    pub(super) fn append(&mut self, t: i64, v: f64, opts: &HeadOptions) -> bool {
        if self.has_last && t <= self.last_t {
            return false;
        }
        let per_chunk = opts.samples_per_chunk.max(4);
        let cut = match &self.open {
            None => true,
            Some(o) => {
                let n = o.chunk.num_samples();
                if n == per_chunk / 4 {
                    self.next_at = compute_chunk_end_time(
                        o.min_t(),
                        self.last_t,
                        self.next_at,
                        opts.chunk_range,
                    );
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
        if o.chunk.append(self.last_t, self.last_v, t, v).is_err() {
            return false;
        }
        self.last_t = t;
        self.last_v = v.to_bits();
        self.has_last = true;
        if self.last_v == STALE_NAN_BITS {
            // The series has ended (its target dropped it or went away):
            // its chunk goes to the chunk store with the next flush instead
            // of holding its buffer until the series has been idle for
            // `--storage.tsdb.series-idle`. If it comes back, the next
            // sample opens a new chunk.
            self.close_open();
        }
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
            chunk: XorAppender::with_capacity(32),
        });
        self.next_at = range_for_timestamp(t, opts.chunk_range);
    }

    /// Drops the closed chunks that end at or before `t` (the chunk store
    /// holds them now). An emptied list gives its buffer back: a million
    /// series each keeping the room of its last closed chunk held 128 MB
    /// that nothing used until the next cut.
    pub(super) fn drop_closed_until(&mut self, t: i64) {
        let n = self.closed.partition_point(|c| c.max_t <= t);
        self.closed.drop_front(n);
    }

    /// Records what the chunk store holds of the series (its labels, and
    /// the range of its chunks if any). A series known only from disk takes
    /// its last timestamp from there, so that older samples are refused.
    pub(super) fn set_stored(&mut self, range: Option<TimeRange>) {
        self.labels_stored = true;
        match range {
            Some((a, b)) => {
                self.disk_min = a;
                self.disk_max = b;
                if !self.has_last || self.last_t < b {
                    // An open chunk's encoding goes on from its last
                    // sample, which `last_t` and `last_v` must stay.
                    self.close_open();
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
    pub(super) fn close_open(&mut self) -> bool {
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
    pub(super) fn can_go_cold(&self, before: i64) -> bool {
        self.labels_stored
            && self.pending == 0
            && self.closed.is_empty()
            && self.open.is_none()
            && self.disk_range().is_some_and(|(_, b)| b < before)
            && (!self.has_last || self.last_t < before)
    }

    /// The time range of the samples held in memory, if any.
    pub(super) fn mem_range(&self) -> Option<(i64, i64)> {
        let min = self
            .closed
            .first()
            .map(|c| c.min_t)
            // Lazily: the open chunk's first time is decoded from its
            // bytes, a cache miss on every series a selection looks at.
            .or_else(|| self.open.as_ref().and_then(|o| o.chunk.first_t()))?;
        Some((min, self.last_t))
    }

    /// The first time of the latest chunk in memory that starts after
    /// every sample on disk and at or before `t`: a sample at or before `t`
    /// that is later than any on disk, if memory holds one. What came
    /// before it cannot be the latest sample at or before `t` or later.
    pub(crate) fn mem_start_at_or_before(&self, t: i64) -> Option<i64> {
        let usable = |m: i64| m > self.disk_max && m <= t;
        // The open chunk starts after every closed one: looked at first.
        if let Some(m) = self.open.as_ref().map(OpenChunk::min_t)
            && usable(m)
        {
            return Some(m);
        }
        self.closed
            .iter()
            .rev()
            .map(|c| c.min_t)
            .find(|&m| usable(m))
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

    /// Whether the samples held span part of `[mint, maxt]`: as
    /// [`MemSeries::time_range`] says, but mostly without reading where
    /// the samples start. That is a closed chunk behind two pointers or the
    /// open chunk's bytes, a cache miss on each series of a selection; a
    /// dashboard's refresh asks this of every series it selects for only
    /// its last few steps.
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let held_in_memory = !self.closed.is_empty()
            || self
                .open
                .as_ref()
                .is_some_and(|o| o.chunk.num_samples() > 0);
        let disk = self.disk_range();
        let last = match (held_in_memory, disk) {
            (true, Some((_, b))) => self.last_t.max(b),
            (true, None) => self.last_t,
            (false, Some((_, b))) => b,
            (false, None) => return false,
        };
        if last < mint {
            return false;
        }
        // The first sample is no later than any sample known here: the
        // last, the first on disk, and the open chunk's one before its last.
        let before_last = self
            .open
            .as_ref()
            .and_then(|o| o.chunk.last_delta())
            .map(|d| self.last_t.wrapping_sub(d as i64));
        let known_upto = |t: i64| t <= maxt;
        if known_upto(last)
            || disk.is_some_and(|(a, _)| known_upto(a))
            || before_last.is_some_and(known_upto)
        {
            return true;
        }
        self.time_range().is_some_and(|(a, _)| a <= maxt)
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
        for c in self.closed.iter() {
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
    pub(super) fn closed_snapshots(&self) -> Vec<ChunkSnapshot> {
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
    pub(super) fn truncate(&mut self, min_time: i64) -> usize {
        let keep_from = self.closed.partition_point(|c| c.max_t < min_time);
        self.closed.drop_front(keep_from);
        let mut removed = keep_from;
        if self.has_last && self.last_t < min_time && self.open.take().is_some() {
            removed += 1;
        }
        removed
    }

    pub(super) fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.open.is_none() && self.disk_range().is_none()
    }

    pub(super) fn heap_bytes(&self) -> (usize, usize) {
        // An Arc allocation carries two counters before the bytes.
        let mut chunks = self.closed.iter().map(|c| c.data.len() + 16).sum::<usize>();
        chunks += self.open.as_ref().map_or(0, |o| o.chunk.capacity());
        let other =
            std::mem::size_of::<MemSeries>() + self.labels.heap_bytes() + self.closed.heap_bytes();
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
    /// The samples the chunk holds (every encoding starts with the count).
    fn num_samples(&self) -> usize {
        match self {
            ChunkData::Shared(b) => crate::tsdb::chunkenc::num_samples(b),
            ChunkData::Copied(b) | ChunkData::Stored(_, b) => crate::tsdb::chunkenc::num_samples(b),
        }
    }

    /// The samples of the chunk with `mint <= t <= maxt`, appended to `out`.
    /// Each encoding is decoded by a loop of its own rather than through
    /// the iterator that dispatches on the encoding per sample.
    fn decode_into(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        match self {
            ChunkData::Shared(b) => push_range(XorIter::new(b), mint, maxt, out),
            ChunkData::Copied(b) => push_range(XorIter::new(b), mint, maxt, out),
            ChunkData::Stored(Encoding::Xor, b) => push_range(XorIter::new(b), mint, maxt, out),
            ChunkData::Stored(Encoding::Decimal, b) => {
                push_range(DecimalIter::new(b), mint, maxt, out)
            }
            ChunkData::Stored(Encoding::Grid, b) => {
                push_range(DecimalIter::grid(b), mint, maxt, out)
            }
        }
    }
}

/// A chunk's iterator that can take a run of repeated samples at once.
trait Repeating {
    fn repeats(&mut self, maxt: i64) -> Repeats;
    fn next_changed(&mut self) -> Option<(i64, f64)>;
}

impl Repeating for XorIter<'_> {
    #[inline(always)]
    fn repeats(&mut self, maxt: i64) -> Repeats {
        self.take_repeats(maxt)
    }
    #[inline(always)]
    fn next_changed(&mut self) -> Option<(i64, f64)> {
        XorIter::next_changed(self)
    }
}

impl Repeating for DecimalIter<'_> {
    #[inline(always)]
    fn repeats(&mut self, maxt: i64) -> Repeats {
        self.take_repeats(maxt)
    }
    #[inline(always)]
    fn next_changed(&mut self) -> Option<(i64, f64)> {
        DecimalIter::next_changed(self)
    }
}

/// Appends the samples of one chunk with `mint <= t <= maxt`. After each
/// sample the ones that repeat it are taken as one run (most samples of
/// histogram buckets, which seldom change from one scrape to the next):
/// written out as times `first + k * step` with one value, instead of
/// decoded one by one.
#[inline]
fn push_range(mut it: impl Repeating, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
    let mut v = loop {
        let Some((t, v)) = it.next_changed() else {
            return;
        };
        if t >= mint {
            if t > maxt {
                return;
            }
            out.push(Sample { t, v });
            break v;
        }
        // `t < mint`, so `mint - 1` does not overflow.
        it.repeats(mint - 1);
    };
    loop {
        let run = it.repeats(maxt);
        if run.len > 0 {
            out.extend((0..i64::from(run.len)).map(|k| Sample {
                t: run.first.wrapping_add(k.wrapping_mul(run.step)),
                v,
            }));
        }
        match it.next_changed() {
            Some((t, next_v)) if t <= maxt => {
                out.push(Sample { t, v: next_v });
                v = next_v;
            }
            _ => return,
        }
    }
}

/// How many samples `chunks` hold, in range or not.
pub(crate) fn samples_in(chunks: &[ChunkData]) -> usize {
    chunks.iter().map(ChunkData::num_samples).sum()
}

/// Appends the samples of `chunks` (in time order) with `mint <= t <= maxt`.
pub(crate) fn decode_range(chunks: &[ChunkData], mint: i64, maxt: i64, out: &mut Vec<Sample>) {
    // At most every sample of the chunks: one allocation instead of the
    // doublings a long window's series would take sample by sample.
    out.reserve(samples_in(chunks));
    for c in chunks {
        c.decode_into(mint, maxt, out);
    }
}

pub(super) enum Appendability {
    Append,
    Duplicate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_end_time_steps_through_the_range() {
        let r = DEFAULT_CHUNK_RANGE;
        // 15 s scrapes from the range's start: the 30th sample sits at
        // 29 * 15 s, so the 2 h range splits into 4 chunks of 120 samples,
        // as Prometheus splits it.
        assert_eq!(compute_chunk_end_time(0, 29 * 15_000, r, r), 1_800_000);
        // A chunk that starts later at the same rate ends at the first step
        // boundary after its 30th sample (Prometheus would split the rest
        // of the range into 3 and end it at 3,066,666).
        let start = 1_000_000;
        assert_eq!(
            compute_chunk_end_time(start, start + 29 * 15_000, r, r),
            1_800_000
        );
        // Past the last inner boundary the chunk runs to the range's end.
        let start = 5_500_000;
        assert_eq!(compute_chunk_end_time(start, start + 29 * 15_000, r, r), r);
        // 1 s scrapes: 62 steps of 116,129 ms (rounded down); the last one
        // ends at the range's end, not 2 ms before it.
        assert_eq!(compute_chunk_end_time(0, 29_000, r, r), 116_129);
        let start = 7_100_000;
        assert_eq!(compute_chunk_end_time(start, start + 29_000, r, r), r);
        // A later range, and one before time 0 (ranges end at multiples of
        // the range, as `range_for_timestamp` gives them).
        assert_eq!(
            compute_chunk_end_time(r + 10_000, r + 10_000 + 29 * 15_000, 2 * r, r),
            r + 1_800_000
        );
        assert_eq!(
            compute_chunk_end_time(-r + 10_000, -r + 10_000 + 29 * 15_000, 0, r),
            -r + 1_800_000
        );
        // Sparse samples: never later than the range end.
        assert_eq!(compute_chunk_end_time(0, 3_000_000, r, r), r);
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
    fn series_started_apart_cut_together() {
        // Series of one target created at different times (churn), scraped
        // at 5 s with a few milliseconds of jitter: after their first
        // chunk, each cuts at the first scrape after the same 600 s steps.
        let opts = HeadOptions::default();
        let mut cuts: Vec<Vec<i64>> = Vec::new();
        for first in [0, 37, 101, 150] {
            let mut s = MemSeries::new(SymLabels::default(), 0);
            for i in first..1000 {
                let t = 7 * DEFAULT_CHUNK_RANGE + i * 5_000 + (i * 7919) % 5;
                assert!(s.append(t, (i % 13) as f64, &opts));
            }
            cuts.push(s.closed.iter().map(|c| c.max_t / 5_000).collect());
            // No chunk holds fewer than 30 samples or more than 150.
            for c in s.closed.iter() {
                let n = XorIter::new(&c.data).count();
                assert!((30..=150).contains(&n), "{n} samples in a chunk");
            }
        }
        let step = 600_000 / 5_000;
        let base = 7 * DEFAULT_CHUNK_RANGE / 5_000;
        // The chunks' last samples sit just before a step boundary.
        for c in &cuts {
            assert!(c.iter().all(|&t| (t - base + 1) % step == 0), "{cuts:?}");
        }
        // All cut at the same times: a series whose 30th sample comes
        // after the first boundary skips it.
        assert_eq!(cuts[0].len(), 8, "{cuts:?}");
        assert_eq!(cuts[1], cuts[0]);
        assert_eq!(cuts[2], cuts[0][1..]);
        assert_eq!(cuts[3], cuts[0][1..]);
    }

    /// `decode_range`, which takes runs of repeats at once, gives what
    /// filtering every decoded sample gives, for chunks in memory and on
    /// disk in either form and for ranges that start and end inside runs.
    #[test]
    fn decode_range_equals_filtering_every_sample() {
        let mut rng = crate::testing::Rng::seeded(
            "decode_range_equals_filtering_every_sample",
            0x9E37_79B9_7F4A_7C15,
        );
        let mut next = move || rng.next();
        let mut chunks = Vec::new();
        let mut all = Vec::new();
        let mut t = 1_700_000_000_000i64;
        let mut v = 0.0;
        for c in 0..6 {
            let mut xor = crate::tsdb::chunkenc::XorChunk::new();
            for _ in 0..(120 + next() % 60) {
                t += 15_000
                    + if next().is_multiple_of(9) {
                        (next() % 7) as i64
                    } else {
                        0
                    };
                if next().is_multiple_of(4) {
                    v += (next() % 3) as f64;
                }
                if next().is_multiple_of(50) {
                    v = crate::model::STALE_NAN;
                } else if v.is_nan() {
                    v = 0.0;
                }
                xor.append(t, v).expect("room");
                all.push((t, v.to_bits()));
            }
            chunks.push(match c % 3 {
                0 => ChunkData::Copied(xor.bytes().to_vec()),
                1 => ChunkData::Shared(xor.bytes().into()),
                _ => {
                    let mut out = Vec::new();
                    let encoding = crate::tsdb::chunkenc::compact(xor.bytes(), &mut out);
                    ChunkData::Stored(encoding, out)
                }
            });
        }
        assert!(
            chunks
                .iter()
                .any(|c| matches!(c, ChunkData::Stored(Encoding::Grid, _)))
        );
        let (lo, hi) = (all[0].0, all[all.len() - 1].0);
        let mut ranges = vec![(i64::MIN, i64::MAX), (lo, hi), (hi, lo), (hi, hi)];
        for _ in 0..200 {
            let span = (hi - lo + 40_000) as u64;
            let a = lo - 20_000 + (next() % span) as i64;
            let b = a + (next() % 900_000) as i64;
            ranges.push((a, b));
        }
        for (mint, maxt) in ranges {
            let mut got = Vec::new();
            decode_range(&chunks, mint, maxt, &mut got);
            let got: Vec<(i64, u64)> = got.iter().map(|s| (s.t, s.v.to_bits())).collect();
            let want: Vec<(i64, u64)> = all
                .iter()
                .copied()
                .filter(|&(t, _)| mint <= t && t <= maxt)
                .collect();
            assert_eq!(got, want, "[{mint}, {maxt}]");
        }
    }

    #[test]
    fn a_stale_marker_closes_the_chunk() {
        let opts = HeadOptions::default();
        let mut s = MemSeries::new(SymLabels::default(), 0);
        for i in 0..10 {
            assert!(s.append(i * 15_000, i as f64, &opts));
        }
        assert!(s.append(150_000, crate::model::STALE_NAN, &opts));
        assert!(s.open.is_none());
        assert_eq!(s.closed.len(), 1);
        // Back again: a new chunk, after the marker.
        assert!(!s.append(150_000, 1.0, &opts));
        assert!(s.append(165_000, 7.0, &opts));
        assert_eq!(s.closed.len(), 1);
        assert_eq!(s.open.as_ref().map(|o| o.chunk.num_samples()), Some(1));
        let mut out = Vec::new();
        s.samples(i64::MIN, i64::MAX, &mut out);
        assert_eq!(out.len(), 12);
        assert!(crate::model::is_stale_nan(out[10].v));
        assert_eq!((out[11].t, out[11].v), (165_000, 7.0));
    }

    #[test]
    fn flushed_chunks_give_their_list_back() {
        let opts = HeadOptions::default();
        let mut s = MemSeries::new(SymLabels::default(), 0);
        // 15 s scrapes: the first chunk closes after 120 samples.
        for i in 0..130 {
            assert!(s.append(i * 15_000, i as f64, &opts));
        }
        assert_eq!(s.closed.len(), 1);
        // The list and room for exactly one chunk.
        assert_eq!(s.closed.heap_bytes(), 24 + 32);
        let end = s.closed[0].max_t;
        s.drop_closed_until(end - 1);
        assert_eq!(s.closed.len(), 1, "a chunk ending later stays");
        s.drop_closed_until(end);
        assert!(s.closed.is_empty());
        assert_eq!(s.closed.heap_bytes(), 0);
        // Retention empties the list the same way.
        s.close_open();
        assert_eq!(s.closed.len(), 1);
        assert_eq!(s.truncate(i64::MAX), 1);
        assert_eq!(s.closed.heap_bytes(), 0);
    }

    #[test]
    fn overlaps_answers_as_the_time_range_does() {
        let opts = HeadOptions::default();
        // The range's ends around every sample time and the series' states
        // on the way: empty, one sample, an open chunk, a closed one, chunks
        // on disk, the memory's flushed.
        let check = |s: &MemSeries, what: &str| {
            for mint in (-20_000..=260_000).step_by(5_000) {
                for maxt in (mint - 5_000..=270_000).step_by(5_000) {
                    let want = s.time_range().is_some_and(|(a, b)| a <= maxt && b >= mint);
                    assert_eq!(s.overlaps(mint, maxt), want, "{what}: [{mint}, {maxt}]");
                }
            }
        };
        let mut s = MemSeries::new(SymLabels::default(), 0);
        check(&s, "empty");
        assert!(s.append(15_000, 1.0, &opts));
        check(&s, "one sample");
        for i in 2..10 {
            assert!(s.append(i * 15_000, i as f64, &opts));
            check(&s, "open chunk");
        }
        s.close_open();
        check(&s, "closed chunk");
        assert!(s.append(150_000, 1.0, &opts));
        check(&s, "closed and open, one sample");
        assert!(s.append(165_000, 1.0, &opts));
        check(&s, "closed and open");
        s.set_stored(Some((15_000, 135_000)));
        s.drop_closed_until(135_000);
        check(&s, "disk and open");
        s.set_stored(Some((15_000, 200_000)));
        check(&s, "disk after the memory");
        s.drop_closed_until(i64::MAX);
        check(&s, "disk alone");
    }

    #[test]
    fn a_later_stored_range_closes_the_open_chunk() {
        let opts = HeadOptions::default();
        let mut s = MemSeries::new(SymLabels::default(), 0);
        for i in 0..10 {
            assert!(s.append(i * 15_000, i as f64, &opts));
        }
        // The chunk store holds samples up to a later time: the open chunk
        // cannot go on from there, as its encoding continues from its own
        // last sample.
        s.set_stored(Some((0, 200_000)));
        assert!(s.open.is_none());
        assert_eq!(s.closed.len(), 1);
        assert!(!s.append(200_000, 1.0, &opts));
        assert!(s.append(215_000, 1.5, &opts));
        assert!(s.append(230_000, -2.5, &opts));
        let mut out = Vec::new();
        s.samples(i64::MIN, i64::MAX, &mut out);
        let got: Vec<(i64, f64)> = out.iter().map(|p| (p.t, p.v)).collect();
        let mut want: Vec<(i64, f64)> = (0..10).map(|i| (i * 15_000, i as f64)).collect();
        want.extend([(215_000, 1.5), (230_000, -2.5)]);
        assert_eq!(got, want);
    }

    #[test]
    fn chunks_are_cut_like_prometheus() {
        let opts = HeadOptions::default();
        let mut s = MemSeries::new(SymLabels::default(), 0);
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
        for c in s.closed.iter() {
            assert_eq!(c.min_t / DEFAULT_CHUNK_RANGE, c.max_t / DEFAULT_CHUNK_RANGE);
        }

        // A 1 s interval would give 1800 samples per quarter range: cut at 240.
        let mut s = MemSeries::new(SymLabels::default(), 0);
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
