//! The index's part of the head image (`docs/format/head-image.md`):
//! symbols with their reference counts and the table of label pairs, in
//! fixed-size little-endian records. Series name their labels by pair id,
//! so loading fills each postings list by position (no hashing per label)
//! and allocates once per symbol and once per list.

use std::io::Write;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{Index, List, PackedPair, Sym, Symbols};
use crate::storage::SeriesRef;
use crate::tsdb::image::{ImageError, Reader, le32, le64, put_u32, put_u64};

/// A label pair's id in an image: its position in the pair table.
pub type PairId = u32;

/// The pair table of an image: each pair's name and value ids, packed,
/// by pair id.
pub type Pairs = Vec<PackedPair>;

/// The index's part of an image, made from a copy of the series taken
/// shard by shard (`head/image.rs`) rather than from the live index, which
/// may already hold series the copy has not: every count in it is the
/// copy's own, so the two agree.
pub(crate) struct IndexPart {
    /// By symbol id: how many label positions of the copied series use it
    /// (0: none, written as a freed id), and its string's length.
    refs: Vec<u32>,
    lens: Vec<u32>,
    text: Vec<u8>,
    /// By pair id: name and value symbols, and the series that carry it.
    pairs: Vec<([Sym; 2], u64)>,
}

impl IndexPart {
    /// Bytes [`IndexPart::write`] writes.
    pub(crate) fn len(&self) -> u64 {
        (16 + self.refs.len() * 8 + self.text.len() + self.pairs.len() * 16) as u64
    }

    pub(crate) fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(16);
        put_u64(&mut buf, self.refs.len() as u64);
        w.write_all(&buf)?;
        for (&refs, &len) in self.refs.iter().zip(&self.lens) {
            buf.clear();
            put_u32(&mut buf, refs);
            put_u32(&mut buf, len);
            w.write_all(&buf)?;
        }
        w.write_all(&self.text)?;
        buf.clear();
        put_u64(&mut buf, self.pairs.len() as u64);
        w.write_all(&buf)?;
        for &([n, v], count) in &self.pairs {
            buf.clear();
            put_u32(&mut buf, n);
            put_u32(&mut buf, v);
            put_u64(&mut buf, count);
            w.write_all(&buf)?;
        }
        Ok(())
    }
}

impl Index {
    /// The index part for a copy of the series whose label positions use
    /// each symbol `refs[id]` times and whose pairs are `pairs`: the
    /// strings of those symbols are copied here, under the caller's read
    /// lock (a memory copy, no hashing). Symbol ids stay valid meanwhile:
    /// only removing series frees one, and the caller keeps that from
    /// happening while it copies.
    pub(crate) fn image_part(&self, refs: Vec<u32>, pairs: Vec<([Sym; 2], u64)>) -> IndexPart {
        let mut lens = Vec::with_capacity(refs.len());
        let mut text = Vec::new();
        for (id, &n) in refs.iter().enumerate() {
            let s = if n > 0 {
                self.symbols.get(id as Sym)
            } else {
                ""
            };
            lens.push(s.len() as u32);
            text.extend_from_slice(s.as_bytes());
        }
        IndexPart {
            refs,
            lens,
            text,
            pairs,
        }
    }

    /// Reads the pair table that [`IndexPart::write`] wrote after the
    /// symbols, skipping them.
    pub(crate) fn image_pairs(rd: &mut Reader<'_>) -> Result<Pairs, ImageError> {
        let n = rd.count(8)?;
        let heads = rd.take(n * 8)?;
        let total: usize = heads.chunks_exact(8).map(|c| le32(&c[4..]) as usize).sum();
        rd.take(total)?;
        let m = rd.count(16)?;
        Ok(rd
            .take(m * 16)?
            .chunks_exact(16)
            .map(|r| PackedPair::new(le32(&r[..4]), le32(&r[4..8])))
            .collect())
    }

    /// Reads what [`IndexPart::write`] wrote, with `series` (every series'
    /// reference, ascending, and its pair ids, `pair_ids` of them in all)
    /// filling the postings lists. Symbol ids, pair ids, reference counts
    /// and list lengths are checked against each other, so that an image
    /// that does not add up is refused instead of breaking queries.
    pub(crate) fn from_image<P: Iterator<Item = PairId>>(
        rd: &mut Reader<'_>,
        series: impl Iterator<Item = (SeriesRef, P)>,
        pair_ids: usize,
    ) -> Result<Index, ImageError> {
        let n = rd.count(8)?;
        let heads = rd.take(n * 8)?;
        let lens: Vec<(u32, usize)> = heads
            .chunks_exact(8)
            .map(|c| (le32(&c[..4]), le32(&c[4..]) as usize))
            .collect();
        let total: usize = lens.iter().map(|&(_, l)| l).sum();
        let text = std::str::from_utf8(rd.take(total)?)
            .map_err(|_| ImageError::Invalid("a symbol is not UTF-8"))?;
        let mut symbols = Symbols {
            strings: Vec::with_capacity(n),
            refs: Vec::with_capacity(n),
            ids: FxHashMap::default(),
            free: Vec::new(),
            empty: Arc::from(""),
        };
        symbols.ids.reserve(n);
        let mut at = 0;
        for (id, &(refs, len)) in lens.iter().enumerate() {
            // Not `ok_or`: its error would be made, and dropped, for every
            // symbol.
            let Some(s) = text.get(at..at + len) else {
                return Err(ImageError::Invalid("a symbol splits a character"));
            };
            at += len;
            let id = id as Sym;
            if refs == 0 {
                symbols.strings.push(symbols.empty.clone());
                symbols.free.push(id);
            } else {
                let arc: Arc<str> = Arc::from(s);
                if symbols.ids.insert(arc.clone(), id).is_some() {
                    return Err(ImageError::Invalid("a symbol is there twice"));
                }
                symbols.strings.push(arc);
            }
            symbols.refs.push(refs);
        }
        let m = rd.count(16)?;
        let recs = rd.take(m * 16)?;
        let mut pairs: Vec<([Sym; 2], usize)> = Vec::with_capacity(m);
        // What the pairs' lengths say each symbol's count must be.
        let mut uses = vec![0u64; n];
        for rec in recs.chunks_exact(16) {
            let (name, value) = (le32(&rec[..4]), le32(&rec[4..8]));
            let len = le64(&rec[8..]);
            for s in [name, value] {
                match uses.get_mut(s as usize) {
                    Some(u) => *u += len,
                    None => return Err(ImageError::Invalid("a pair names no symbol")),
                }
            }
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            pairs.push(([name, value], len));
        }
        if uses
            .iter()
            .zip(&symbols.refs)
            .any(|(&u, &r)| u != u64::from(r))
        {
            return Err(ImageError::Invalid(
                "symbol counts and pair lengths disagree",
            ));
        }
        // The lengths must add up to the series' pair ids, which bounds
        // what the lists below reserve by the image's size.
        let total = pairs
            .iter()
            .try_fold(0usize, |t, &(_, len)| t.checked_add(len));
        if total != Some(pair_ids) {
            return Err(ImageError::Invalid("pair lengths and series disagree"));
        }
        // Every list is made at its final length before the series are
        // read, so that the loop over every series' pair ids (13 M at a
        // million Ray series, each to a list of its own, far apart) only
        // appends. That loop took a third of this thread's instructions
        // while it looked each pair's length up again and reserved on the
        // first append.
        let mut lists: Vec<List> = Vec::with_capacity(m);
        for &(_, len) in &pairs {
            if len == 0 {
                return Err(ImageError::Invalid("a pair has no series"));
            }
            lists.push(List::with_capacity(len));
        }
        let mut all = List::with_capacity(series.size_hint().0);
        for (r, ids) in series {
            if all.last().is_some_and(|l| l >= r) {
                return Err(ImageError::Invalid("series are not in reference order"));
            }
            all.push_last(r);
            for p in ids {
                // Not `ok_or`: its error would be made, and dropped, at
                // every one of those appends.
                match lists.get_mut(p as usize) {
                    Some(list) => list.push_last(r),
                    None => return Err(ImageError::Invalid("a series names no pair")),
                }
            }
        }
        // Each name's map of values is made at its final size. Grown from
        // empty, the largest (hundreds of thousands of values at a million
        // series) were rehashed at every doubling of their table: 9% of this
        // thread's samples in a profile of the open.
        let mut values_of: FxHashMap<Sym, usize> = FxHashMap::default();
        for &([name, _], _) in &pairs {
            *values_of.entry(name).or_default() += 1;
        }
        let mut postings: FxHashMap<Sym, FxHashMap<Sym, List>> =
            FxHashMap::with_capacity_and_hasher(values_of.len(), Default::default());
        for (name, k) in values_of {
            postings.insert(
                name,
                FxHashMap::with_capacity_and_hasher(k, Default::default()),
            );
        }
        let mut newline_values: FxHashMap<Sym, u32> = FxHashMap::default();
        for (([name, value], want), list) in pairs.into_iter().zip(lists) {
            if list.len() != want {
                return Err(ImageError::Invalid("a pair's length is not its series'"));
            }
            if symbols.get(value).contains('\n') {
                *newline_values.entry(name).or_default() += 1;
            }
            if postings
                .entry(name)
                .or_default()
                .insert(value, list)
                .is_some()
            {
                return Err(ImageError::Invalid("a label pair is there twice"));
            }
        }
        Ok(Index {
            symbols,
            postings,
            all,
            prev: Vec::new(),
            newline_values,
        })
    }
}
