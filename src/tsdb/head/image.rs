//! The head's part of the head image (`docs/format/head-image.md`): the
//! index, then every series' reference, label hash, persisted range and
//! labels as pair ids, in fixed-size records sorted by reference. Loading
//! builds the index on a second thread while this one fills the shards;
//! nothing hashes labels.

use std::io::Write;
use std::sync::atomic::Ordering;

use rustc_hash::FxHashMap;

use super::series::MemSeries;
use super::shards::{Head, PIECE, SHARD_BITS, SHARDS, Shard, read, shard_of, write};
use super::walk::{each_warmed, labels_line};
use crate::storage::SeriesRef;
use crate::tsdb::image::{ImageError, Reader, le32, le64, put_u32, put_u64};
use crate::tsdb::index::{Index, IndexPart, PairId, Pairs, Sym, SymLabels};

/// Bytes of one series record.
const SERIES_RECORD: usize = 40;
/// Record flag: the chunk store holds the series' labels.
const LABELS_STORED: u32 = 1;

/// What [`Head::load_image`] put into the head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageLoad {
    pub series: u64,
    /// Of those, the series whose labels the chunk store holds.
    pub stored: u64,
}

/// One series as an image copy holds it, until written.
struct Copied {
    r: SeriesRef,
    hash: u64,
    disk_min: i64,
    disk_max: i64,
    flags: u32,
    /// Its pair ids: `ids[at..at + k]` of the copy.
    k: u32,
    at: usize,
}

/// What an image holds, copied from the head shard by shard, a piece of
/// series per lock, so that commits wait only as long as a flush makes them
/// (see `PIECE`): the series, their labels as pair ids, and the index part
/// counted from those same series.
pub struct ImageCopy {
    index: IndexPart,
    next_seq: u64,
    series: Vec<Copied>,
    ids: Vec<PairId>,
}

impl ImageCopy {
    /// Bytes of the body [`ImageCopy::write`] writes.
    pub fn len(&self) -> u64 {
        8 + self.index.len() + 16 + (self.series.len() * SERIES_RECORD + self.ids.len() * 4) as u64
    }

    /// Whether it holds no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Writes the body: the index part, then the series section. Records
    /// gather in a buffer of their own, so the writer sees few large writes.
    pub fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(WRITE_BUF + SERIES_RECORD);
        put_u64(&mut buf, self.index.len());
        w.write_all(&buf)?;
        self.index.write(w)?;
        buf.clear();
        put_u64(&mut buf, self.next_seq);
        put_u64(&mut buf, self.series.len() as u64);
        for s in &self.series {
            put_u64(&mut buf, s.r);
            put_u64(&mut buf, s.hash);
            put_u64(&mut buf, s.disk_min as u64);
            put_u64(&mut buf, s.disk_max as u64);
            put_u32(&mut buf, s.k);
            put_u32(&mut buf, s.flags);
            spill(w, &mut buf)?;
        }
        for s in &self.series {
            for &p in &self.ids[s.at..s.at + s.k as usize] {
                put_u32(&mut buf, p);
            }
            spill(w, &mut buf)?;
        }
        w.write_all(&buf)
    }
}

/// Bytes gathered before a write.
const WRITE_BUF: usize = 64 << 10;

/// Writes `buf` out once it holds [`WRITE_BUF`] bytes.
fn spill(w: &mut dyn Write, buf: &mut Vec<u8>) -> std::io::Result<()> {
    if buf.len() >= WRITE_BUF {
        w.write_all(buf)?;
        buf.clear();
    }
    Ok(())
}

impl Head {
    /// Copies what the head image holds (not the samples: the checkpoint
    /// has those) without stopping commits for more than a piece of series
    /// at a time. Series created meanwhile may be left out: the WAL after
    /// the checkpoint the image is taken beside names them. The caller
    /// keeps series from being removed while it runs (the store's
    /// maintenance lock, under which alone series leave the head), so that
    /// the symbol ids copied stay those of the same strings.
    pub fn image_copy(&self) -> ImageCopy {
        let mut pair_of: FxHashMap<u64, PairId> = FxHashMap::default();
        let mut pairs: Vec<([Sym; 2], u64)> = Vec::new();
        let mut refs: Vec<u32> = Vec::new();
        let mut series: Vec<Copied> = Vec::new();
        let mut ids: Vec<PairId> = Vec::new();
        let mut syms: Vec<Sym> = Vec::new();
        // The pairs of the series copied last, by position, with their ids.
        let mut prev: Vec<(Sym, Sym, PairId)> = Vec::new();
        for sh in &self.inner.shards {
            let mut list: Vec<SeriesRef> = sh.lock().series.keys().copied().collect();
            list.sort_unstable();
            for piece in list.chunks(PIECE) {
                syms.clear();
                let start = series.len();
                {
                    // In reference order the series lie anywhere in memory:
                    // read 32 of them and their labels' first line before
                    // using any, so that those misses overlap (half of this
                    // walk waited on each series' labels pointer in turn).
                    let g = sh.lock();
                    let found = piece
                        .iter()
                        .filter_map(|&r| g.series.get(&r).map(|s| (r, &**s)));
                    each_warmed(found, labels_line, |r, s| {
                        series.push(Copied {
                            r,
                            hash: s.hash,
                            disk_min: s.disk_min,
                            disk_max: s.disk_max,
                            flags: if s.labels_stored { LABELS_STORED } else { 0 },
                            k: s.labels.num_pairs() as u32,
                            at: 0,
                        });
                        syms.extend(s.labels.iter());
                    });
                }
                // Pair ids are found outside the lock. Series in reference
                // order come in runs that share most labels (a target's), so
                // a pair is usually the one at the same position of the
                // series before, found by one comparison instead of hashing.
                let mut at = 0;
                for c in &mut series[start..] {
                    c.at = ids.len();
                    let k = c.k as usize;
                    for (i, p) in syms[at..at + 2 * k].chunks_exact(2).enumerate() {
                        let (n, v) = (p[0], p[1]);
                        let top = n.max(v) as usize;
                        if refs.len() <= top {
                            refs.resize(top + 1, 0);
                        }
                        refs[n as usize] += 1;
                        refs[v as usize] += 1;
                        let id = match prev.get(i) {
                            Some(&(pn, pv, id)) if pn == n && pv == v => id,
                            _ => {
                                let next = pairs.len() as PairId;
                                let id = *pair_of
                                    .entry(u64::from(n) << 32 | u64::from(v))
                                    .or_insert(next);
                                if id == next {
                                    pairs.push(([n, v], 0));
                                }
                                if let Some(slot) = prev.get_mut(i) {
                                    *slot = (n, v, id);
                                } else {
                                    prev.push((n, v, id));
                                }
                                id
                            }
                        };
                        pairs[id as usize].1 += 1;
                        ids.push(id);
                    }
                    at += 2 * k;
                }
            }
        }
        drop(pair_of);
        // Read after the series: it only grows, and must not be behind any.
        let next_seq = self.inner.next_seq.load(Ordering::Relaxed);
        series.sort_unstable_by_key(|c| c.r);
        let index = read(&self.inner.index).image_part(refs, pairs);
        ImageCopy {
            index,
            next_seq,
            series,
            ids,
        }
    }

    /// Brings the series of a checkpoint's image up to what the chunk
    /// store holds (`ranges`: every series with chunks there, by
    /// reference): chunks moved since the image extend a series' persisted
    /// range, and a series they moved has its labels there too. Returns the
    /// entries of series the head does not have (created or brought back
    /// after the image), for the caller to load from the chunk store.
    pub fn catch_up_stored(
        &self,
        ranges: &[(SeriesRef, (i64, i64))],
    ) -> Vec<(SeriesRef, (i64, i64))> {
        let mut missing = Vec::new();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (i, sh) in self.inner.shards.iter().enumerate() {
            let mut g = sh.lock();
            for &(r, range) in ranges.iter().filter(|x| shard_of(x.0) == i) {
                match g.series.get_mut(&r) {
                    Some(s) => {
                        if !s.labels_stored || s.disk_range() != Some(range) {
                            s.set_stored(Some(range));
                        }
                        lo = lo.min(range.0);
                        hi = hi.max(range.1);
                    }
                    None => missing.push((r, range)),
                }
            }
        }
        self.inner.note_times(lo, hi);
        missing
    }

    /// Fills this head, which must be empty, from an image body written by
    /// [`ImageCopy::write`]. Nothing is changed unless the whole image
    /// reads and agrees with itself.
    pub fn load_image(&self, body: &[u8]) -> Result<ImageLoad, ImageError> {
        let mut rd = Reader::new(body);
        let index_len = usize::try_from(rd.u64()?).unwrap_or(usize::MAX);
        let index_bytes = rd.take(index_len)?;
        let section = SeriesSection::read(&mut rd)?;
        if !rd.is_done() {
            return Err(ImageError::Invalid("bytes after the series"));
        }
        let pairs = Index::image_pairs(&mut Reader::new(index_bytes))?;
        let build_index = || {
            let mut ir = Reader::new(index_bytes);
            let ix = Index::from_image(&mut ir, section.iter(), section.pairs.len() / 4)?;
            if !ir.is_done() {
                return Err(ImageError::Invalid("bytes after the index"));
            }
            Ok(ix)
        };
        let (index, built) = std::thread::scope(|scope| {
            let index = std::thread::Builder::new()
                .name("raymon-open-image".into())
                .spawn_scoped(scope, build_index);
            let built = build_shards(&section, &pairs);
            let index = match index {
                Ok(h) => h
                    .join()
                    .unwrap_or(Err(ImageError::Invalid("building the index panicked"))),
                // No second thread: build it here.
                Err(_) => build_index(),
            };
            (index, built)
        });
        let index = index?;
        let built = built?;
        let mut guards: Vec<_> = self.inner.shards.iter().map(|s| s.lock()).collect();
        let mut ix = write(&self.inner.index);
        if ix.num_series() > 0 || guards.iter().any(|g| !g.series.is_empty()) {
            return Err(ImageError::Invalid("the head is not empty"));
        }
        *ix = index;
        for (g, shard) in guards.iter_mut().zip(built.shards) {
            **g = shard;
        }
        drop(ix);
        drop(guards);
        self.inner
            .next_seq
            .fetch_max(section.next_seq, Ordering::Relaxed);
        self.inner.note_times(built.times.0, built.times.1);
        Ok(built.load)
    }
}

/// The series section of an image, as slices of it.
struct SeriesSection<'a> {
    next_seq: u64,
    records: &'a [u8],
    pairs: &'a [u8],
}

impl<'a> SeriesSection<'a> {
    fn read(rd: &mut Reader<'a>) -> Result<SeriesSection<'a>, ImageError> {
        let next_seq = rd.u64()?;
        let n = rd.count(SERIES_RECORD)?;
        let records = rd.take(n * SERIES_RECORD)?;
        let total: usize = records
            .chunks_exact(SERIES_RECORD)
            .map(|r| le32(&r[32..36]) as usize)
            .sum();
        let pairs = rd.take(total.saturating_mul(4))?;
        Ok(SeriesSection {
            next_seq,
            records,
            pairs,
        })
    }

    /// Every series' reference and pair ids.
    fn iter(
        &self,
    ) -> impl Iterator<Item = (SeriesRef, impl ExactSizeIterator<Item = PairId> + 'a)> + '_ {
        let mut at = 0usize;
        let pairs = self.pairs;
        self.records.chunks_exact(SERIES_RECORD).map(move |rec| {
            let k = le32(&rec[32..36]) as usize;
            let ids = &pairs[at * 4..(at + k) * 4];
            at += k;
            (le64(&rec[..8]), ids.chunks_exact(4).map(le32))
        })
    }
}

/// The shards built from an image, with their counts and the persisted
/// time range.
struct Built {
    shards: [Shard; SHARDS],
    load: ImageLoad,
    times: (i64, i64),
}

fn build_shards(section: &SeriesSection<'_>, pairs: &Pairs) -> Result<Built, ImageError> {
    let mut shards: [Shard; SHARDS] = Default::default();
    let mut per_shard = [0usize; SHARDS];
    for rec in section.records.chunks_exact(SERIES_RECORD) {
        per_shard[shard_of(le64(&rec[..8]))] += 1;
    }
    for (s, &k) in shards.iter_mut().zip(&per_shard) {
        s.series.reserve(k);
        s.reserve_hashes(k);
    }
    let mut load = ImageLoad::default();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let mut max_seq = 0;
    // One buffer for every series: the packed ids are their own allocation.
    let mut labels: Vec<u8> = Vec::new();
    for ((r, ids), rec) in section
        .iter()
        .zip(section.records.chunks_exact(SERIES_RECORD))
    {
        let hash = le64(&rec[8..16]);
        let (disk_min, disk_max) = (le64(&rec[16..24]) as i64, le64(&rec[24..32]) as i64);
        let flags = le32(&rec[36..40]);
        let si = shard_of(r);
        if r == 0 || (hash >> (64 - SHARD_BITS)) as usize != si || ids.len() == 0 {
            return Err(ImageError::Invalid("a series record is malformed"));
        }
        labels.clear();
        for p in ids {
            // Not `ok_or`: its error would be made, and dropped, for every
            // pair of every series.
            match pairs.get(p as usize) {
                Some(pair) => pair.append_to(&mut labels),
                None => return Err(ImageError::Invalid("a series names no pair")),
            }
        }
        let mut s = MemSeries::new(SymLabels::from_packed(&labels), hash);
        if flags & LABELS_STORED != 0 {
            let range = (disk_min <= disk_max).then_some((disk_min, disk_max));
            s.set_stored(range);
            if let Some((a, b)) = range {
                lo = lo.min(a);
                hi = hi.max(b);
            }
            load.stored += 1;
        }
        let shard = &mut shards[si];
        if shard.series.insert(r, Box::new(s)).is_some() {
            return Err(ImageError::Invalid("a series is there twice"));
        }
        shard.link_hash(r, hash);
        max_seq = max_seq.max(r >> SHARD_BITS);
        load.series += 1;
    }
    if section.next_seq < max_seq {
        return Err(ImageError::Invalid(
            "the reference counter is behind a series",
        ));
    }
    Ok(Built {
        shards,
        load,
        times: (lo, hi),
    })
}
