//! The head's part of the head image (`docs/format/head-image.md`): the
//! index, then every series' reference, label hash, persisted range and
//! labels as pair ids, in fixed-size records sorted by reference. Loading
//! builds the index on a second thread while this one fills the shards;
//! nothing hashes labels.

use std::sync::atomic::Ordering;

use super::series::MemSeries;
use super::shards::{Head, SHARD_BITS, SHARDS, Shard, lock, read, shard_of, write};
use crate::storage::SeriesRef;
use crate::tsdb::image::{ImageError, Reader, le32, le64, put_u32, put_u64};
use crate::tsdb::index::{Index, PairId, Pairs, Sym};

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

impl Head {
    /// Appends the image of the index and of every series' identity (not
    /// their samples: the checkpoint has those), taken under every shard
    /// lock so that index and series agree.
    pub fn put_image(&self, out: &mut Vec<u8>) {
        let shards: Vec<_> = self.inner.shards.iter().map(lock).collect();
        let ix = read(&self.inner.index);
        let mut index = Vec::new();
        let ids = ix.put_image(&mut index);
        put_u64(out, index.len() as u64);
        out.extend_from_slice(&index);
        drop(index);
        let mut all: Vec<(SeriesRef, &MemSeries)> = shards
            .iter()
            .flat_map(|s| s.series.iter().map(|(&r, s)| (r, &**s)))
            .collect();
        all.sort_unstable_by_key(|x| x.0);
        put_u64(out, self.inner.next_seq.load(Ordering::Relaxed));
        put_u64(out, all.len() as u64);
        for &(r, s) in &all {
            put_u64(out, r);
            put_u64(out, s.hash);
            put_u64(out, s.disk_min as u64);
            put_u64(out, s.disk_max as u64);
            put_u32(out, (s.labels.len() / 2) as u32);
            put_u32(out, if s.labels_stored { LABELS_STORED } else { 0 });
        }
        for (_, s) in all {
            for p in s.labels.chunks_exact(2) {
                // Every pair of a series is in the index.
                put_u32(out, ids.get(&(p[0], p[1])).copied().unwrap_or(PairId::MAX));
            }
        }
    }

    /// Fills this head, which must be empty, from an image body written by
    /// [`Head::put_image`]. Nothing is changed unless the whole image
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
            let ix = Index::from_image(&mut ir, section.iter())?;
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
        let mut guards: Vec<_> = self.inner.shards.iter().map(lock).collect();
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
        s.by_hash.reserve(k);
    }
    let mut load = ImageLoad::default();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let mut max_seq = 0;
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
        let mut labels: Vec<Sym> = Vec::with_capacity(ids.len() * 2);
        for p in ids {
            let [n, v] = *pairs
                .get(p as usize)
                .ok_or(ImageError::Invalid("a series names no pair"))?;
            labels.push(n);
            labels.push(v);
        }
        let mut s = MemSeries::new(labels.into_boxed_slice(), hash);
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
        if let Some(prev) = shard.by_hash.insert(hash, r) {
            // A collision: the first series keeps the main slot.
            shard.by_hash.insert(hash, prev);
            shard.collisions.entry(hash).or_default().push(r);
        }
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
