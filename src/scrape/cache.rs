//! The per-target scrape cache: raw series bytes → storage reference, plus
//! which series each scrape saw, for staleness markers.
//!
//! Known series skip label parsing, target-label merging and relabeling;
//! only series new to the target pay for them (Prometheus's `scrapeCache`).
//!
//! Memory is the point of its shape: an entry is a 128-bit hash of the raw
//! series text and the store's reference, about 50 bytes with its index
//! slot, where keeping the text and the labels cost over 1.5 KB per Ray
//! series. The store keeps the labels; staleness markers are appended by
//! reference alone.

use hashbrown::HashTable;

use crate::sizeclass::grown_capacity;
use crate::storage::SeriesRef;
use crate::textparse::{Format, Vouch};

/// A 128-bit hash of a series' raw text: XXH3-128, a non-cryptographic
/// hash with full 128-bit output that passes SMHasher; accidental collisions
/// among a target's series are about 2^-100 likely. It was chosen over our
/// own hash by measurement on Ray's series texts (docs/decisions.md).
type Key = (u64, u64);

fn key(raw: &[u8]) -> Key {
    let h = xxhash_rust::xxh3::xxh3_128(raw);
    ((h >> 64) as u64, h as u64)
}

/// Scrapes after which an unseen series leaves the cache. It got its stale
/// marker long before; this only bounds memory under churn.
const EVICT_AFTER: u32 = 10;

pub struct Entry {
    key: Key,
    pub series_ref: SeriesRef,
    /// Last scrape that committed this series.
    last_iter: u32,
    /// Last scrape that parsed it (committed or not).
    seen_iter: u32,
    /// Its place among the series of that scrape.
    seen_pos: u32,
    /// The length of the series' text, or 0 past `u16::MAX`: the parser
    /// asks about that many bytes first instead of searching for the
    /// labels' closing brace (see [`Cache::expected_len`]).
    len: u16,
    /// [`TRACK`], [`DROPPED`] and [`DEAD`]: one byte, so that `len` fits in
    /// what three booleans took and an entry stays 40 bytes.
    flags: u8,
    /// The format whose parser last accepted this series' text.
    checked: Option<Format>,
}

/// Samples with explicit timestamps are not tracked for staleness.
const TRACK: u8 = 1;
/// Metric relabeling dropped the series: it is not relabeled again.
const DROPPED: u8 = 2;
/// Evicted; the slot waits for the next compaction.
const DEAD: u8 = 4;

// A slot per series and target: the text's length must not make it bigger.
const _: () = assert!(size_of::<Entry>() == 40);

/// Series kept in the order they were first seen, which is the order a
/// target exposes them in: a scrape then walks `entries` front to back, and
/// each lookup first tries the slot after the previous hit. That slot was
/// written by the same scrape five seconds or more ago and is cold; walking
/// the slots in order lets the CPU prefetch them, where a hash probe per
/// series missed the cache at least once. The index is for series that
/// moved, new series and the odd reordering.
#[derive(Default)]
pub struct Cache {
    entries: Vec<Entry>,
    /// The slot in `entries` of every key whose slot is not dead. Only the
    /// slot is stored (4 bytes and a control byte a bucket, where a map
    /// from key to slot took 25): the key is in the entry, and its first
    /// half, already a hash, is the table's hash. At 2,000 series a target
    /// that is 10 bytes a series instead of about 50.
    index: HashTable<u32>,
    /// Dead slots in `entries`.
    dead: usize,
    /// The slot the next lookup tries first.
    cursor: usize,
    /// Series looked up or added in the scrape in progress.
    seq: u32,
    /// Of those, found away from the cursor: through the index.
    moved: u32,
    /// The scrape in progress.
    iter: u32,
    /// The scrape attempt before it.
    prev_iter: u32,
    /// The format of the scrape in progress.
    format: Option<Format>,
    /// What [`Cache::vouch`] found, for the lookup of the same text.
    memo: Option<Memo>,
}

/// A [`Cache::vouch`] result. The text is identified by its address and
/// length: both come from the body of the scrape in progress (`begin`
/// forgets the memo), so equal ones are the same bytes.
struct Memo {
    addr: usize,
    len: usize,
    key: Key,
    pos: Option<usize>,
}

/// What a lookup found.
pub enum Lookup<'c> {
    Known(&'c mut Entry),
    Dropped,
    /// Not cached; pass the slot to [`Cache::insert`] or
    /// [`Cache::insert_dropped`] to add it without hashing the text again.
    Unknown(Slot),
}

/// A series the cache does not know yet, as [`Cache::lookup`] hashed it,
/// with the length of its text.
#[derive(Clone, Copy)]
pub struct Slot(Key, u16);

impl Entry {
    /// Where to insert this series again, when the store forgot its reference.
    pub fn slot(&self) -> Slot {
        Slot(self.key, self.len)
    }

    /// Whether staleness markers are written for this series.
    pub fn track_staleness(&self) -> bool {
        self.flags & TRACK != 0
    }

    fn dropped(&self) -> bool {
        self.flags & DROPPED != 0
    }

    fn dead(&self) -> bool {
        self.flags & DEAD != 0
    }
}

/// The length kept in an [`Entry`]: 0 (none) past `u16::MAX`.
fn text_len(raw: &[u8]) -> u16 {
    u16::try_from(raw.len()).unwrap_or(0)
}

impl Cache {
    /// Starts a new scrape.
    pub fn begin(&mut self) {
        self.prev_iter = self.iter;
        self.iter += 1;
        self.cursor = 0;
        self.seq = 0;
        self.moved = 0;
        self.memo = None;
    }

    /// Sets the format of the scrape in progress: series text that its
    /// parser accepts is recorded as checked in it.
    pub fn set_format(&mut self, format: Format) {
        self.format = Some(format);
    }

    /// The live slot of `k`: first the one after the previous hit.
    #[inline]
    fn find(&self, k: Key) -> Option<usize> {
        match self.entries.get(self.cursor) {
            Some(e) if e.key == k && !e.dead() => Some(self.cursor),
            _ => self.slot_of(k),
        }
    }

    /// The slot of `k` through the index.
    #[inline]
    fn slot_of(&self, k: Key) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(k.0, |&p| {
                entries.get(p as usize).is_some_and(|e| e.key == k)
            })
            .map(|&p| p as usize)
    }

    /// Adds slot `p` (whose entry is in place) to the index.
    fn index_slot(&mut self, p: usize) {
        let entries = &self.entries;
        let Some(e) = entries.get(p) else { return };
        self.index.insert_unique(e.key.0, p as u32, |&q| {
            entries.get(q as usize).map_or(0, |e| e.key.0)
        });
    }

    /// Finds the series of a sample line the parser accepted.
    pub fn lookup(&mut self, raw: &[u8]) -> Lookup<'_> {
        let (k, pos) = match self.memo.take() {
            Some(m) if m.addr == raw.as_ptr() as usize && m.len == raw.len() => (m.key, m.pos),
            _ => {
                let k = key(raw);
                (k, self.find(k))
            }
        };
        let Some(pos) = pos else {
            return Lookup::Unknown(Slot(k, text_len(raw)));
        };
        if pos != self.cursor {
            self.moved += 1;
        }
        self.cursor = pos + 1;
        let (iter, format, seq) = (self.iter, self.format, self.seq);
        self.seq += 1;
        match self.entries.get_mut(pos) {
            Some(e) => {
                e.seen_iter = iter;
                e.seen_pos = seq;
                e.checked = format;
                if e.dropped() {
                    Lookup::Dropped
                } else {
                    Lookup::Known(e)
                }
            }
            None => Lookup::Unknown(Slot(k, text_len(raw))),
        }
    }

    pub fn insert(&mut self, slot: Slot, series_ref: SeriesRef, track_staleness: bool) {
        let flags = if track_staleness { TRACK } else { 0 };
        self.put(slot, series_ref, flags);
    }

    pub fn insert_dropped(&mut self, slot: Slot) {
        self.put(slot, 0, DROPPED);
    }

    fn put(&mut self, Slot(k, len): Slot, series_ref: SeriesRef, flags: u8) {
        let e = Entry {
            key: k,
            series_ref,
            last_iter: 0,
            seen_iter: self.iter,
            seen_pos: self.seq,
            len,
            flags,
            checked: self.format,
        };
        self.seq += 1;
        // A series already cached comes back through here when the store
        // forgot its reference: it keeps its slot.
        if let Some(p) = self.slot_of(k)
            && let Some(slot) = self.entries.get_mut(p)
        {
            *slot = e;
            return;
        }
        if self.entries.len() == self.entries.capacity() {
            self.grow();
        }
        self.entries.push(e);
        self.index_slot(self.entries.len() - 1);
    }

    /// Grows the full slot list by an eighth instead of doubling it. A
    /// target's series come once and churn adds a few a scrape, so the list
    /// is filled up to about its first size and then grows slowly: doubling
    /// left half of it empty (a Ray node's 2,000 series in room for 4,096,
    /// 80 KiB a target), and there is one per target.
    #[cold]
    fn grow(&mut self) {
        let (len, cap) = (self.entries.len(), self.entries.capacity());
        let want = grown_capacity(len, cap, 1, 8, 16, size_of::<Entry>());
        self.entries.reserve_exact(want - len);
    }

    /// Ends a committed scrape: series it saw become current, series the
    /// previous scrape saw but this one did not are passed to `stale`.
    pub fn commit(&mut self, mut stale: impl FnMut(&mut Entry)) {
        let (iter, prev) = (self.iter, self.prev_iter);
        for (i, e) in self.entries.iter_mut().enumerate() {
            if e.dead() {
                continue;
            }
            let last = if e.dropped() {
                e.seen_iter
            } else {
                if e.seen_iter == iter {
                    e.last_iter = iter;
                } else if e.last_iter == prev && prev != 0 && e.track_staleness() {
                    stale(e);
                }
                e.last_iter
            };
            if last + EVICT_AFTER < iter {
                e.flags |= DEAD;
                // The index holds each live key once, with its own slot.
                if let Ok(found) = self.index.find_entry(e.key.0, |&p| p as usize == i) {
                    found.remove();
                }
                self.dead += 1;
            }
        }
        // Series found through the index cost a probe into memory that is
        // cold by the next scrape, and new series (a Ray worker's, in the
        // middle of the text) join at the end: under churn their share only
        // grows. Once over 1/32 of the scrape, the slots take this scrape's
        // order again (unseen ones after it, as they were).
        let reorder = self.moved as usize * 32 > self.len();
        // Dead slots cost a step of every walk and memory; drop them once
        // they are an eighth of the cache, keeping the order of the rest.
        if reorder || (self.dead > 0 && self.dead * 8 >= self.entries.len()) {
            self.entries.retain(|e| !e.dead());
            self.dead = 0;
            let len = self.entries.len();
            self.entries
                .shrink_to(grown_capacity(len, len, 0, 8, 16, size_of::<Entry>()));
            if reorder {
                self.entries.sort_by_key(|e| {
                    if e.seen_iter == iter {
                        e.seen_pos
                    } else {
                        u32::MAX
                    }
                });
            }
            self.index.clear();
            for i in 0..self.entries.len() {
                self.index_slot(i);
            }
        }
    }

    /// Ends a failed scrape: every series of the previous scrape goes stale.
    pub fn fail(&mut self, mut stale: impl FnMut(&mut Entry)) {
        let prev = self.prev_iter;
        for e in &mut self.entries {
            if !e.dead() && !e.dropped() && e.last_iter == prev && prev != 0 && e.track_staleness()
            {
                stale(e);
            }
        }
    }

    /// Series committed by the most recent successful scrape, if it was the
    /// latest attempt: what a removed target must mark stale.
    pub fn current(&mut self, mut f: impl FnMut(&mut Entry)) {
        let iter = self.iter;
        for e in &mut self.entries {
            if !e.dead() && !e.dropped() && e.last_iter == iter && e.track_staleness() {
                f(e);
            }
        }
    }

    /// Cached series, dropped ones included.
    pub fn len(&self) -> usize {
        self.entries.len() - self.dead
    }
}

impl Vouch for Cache {
    /// Whether `raw` is the text of a cached series that a parser of the
    /// current format accepted (so its labels need no checking again). The
    /// lookup of the same text that follows reuses this one's work.
    fn vouch(&mut self, raw: &[u8]) -> bool {
        let k = key(raw);
        let pos = self.find(k);
        self.memo = Some(Memo {
            addr: raw.as_ptr() as usize,
            len: raw.len(),
            key: k,
            pos,
        });
        let checked = pos.and_then(|p| self.entries.get(p)).map(|e| e.checked);
        self.format.is_some() && checked == Some(self.format)
    }

    /// The length of the series text the scrape in progress is expected to
    /// list next: the one after the previous hit, as a target lists its
    /// series in the same order every time. The parser asks [`Cache::vouch`]
    /// about that many bytes first, which spares it the search for the
    /// labels' closing brace: equal keys mean equal texts, so a text the
    /// cache vouches for ends where it ended when it was parsed.
    fn expected_len(&mut self) -> Option<usize> {
        let e = self.entries.get(self.cursor)?;
        (e.len != 0 && !e.dead() && e.checked == self.format && self.format.is_some())
            .then_some(usize::from(e.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One scrape of `series` (in that order): the references found, with
    /// a new series getting `1000 + i`; returns them and what went stale.
    fn scrape(c: &mut Cache, series: &[&str]) -> (Vec<SeriesRef>, Vec<SeriesRef>) {
        c.begin();
        let mut refs = Vec::new();
        for (i, s) in series.iter().enumerate() {
            match c.lookup(s.as_bytes()) {
                Lookup::Known(e) => refs.push(e.series_ref),
                Lookup::Dropped => refs.push(0),
                Lookup::Unknown(slot) => {
                    let r = 1000 + i as SeriesRef;
                    c.insert(slot, r, true);
                    refs.push(r);
                }
            }
        }
        let mut stale = Vec::new();
        c.commit(|e| stale.push(e.series_ref));
        stale.sort_unstable();
        (refs, stale)
    }

    #[test]
    fn reordered_and_new_series_keep_their_references() {
        let mut c = Cache::default();
        let (refs, stale) = scrape(&mut c, &["a", "b", "c", "d"]);
        assert_eq!(refs, [1000, 1001, 1002, 1003]);
        assert!(stale.is_empty());
        // A new series in the middle, then a reordering, then a duplicate.
        let (refs, _) = scrape(&mut c, &["a", "x", "b", "c", "d"]);
        assert_eq!(refs, [1000, 1001, 1001, 1002, 1003]);
        let (refs, _) = scrape(&mut c, &["d", "c", "x", "b", "a", "a"]);
        assert_eq!(refs, [1003, 1002, 1001, 1001, 1000, 1000]);
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn slots_follow_the_scrape_order_again_after_churn() {
        let mut c = Cache::default();
        let names: Vec<String> = (0..200).map(|i| format!("s{i:03}")).collect();
        let mut text: Vec<&str> = names.iter().map(String::as_str).collect();
        scrape(&mut c, &text);
        // Churn: a new series in the middle of the text in each scrape.
        let new: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
        for (i, n) in new.iter().enumerate() {
            text.insert(10 * i + 5, n);
            let (refs, _) = scrape(&mut c, &text);
            assert_eq!(refs.len(), text.len());
        }
        // The scrape after the last churn finds every series at the cursor.
        scrape(&mut c, &text);
        assert_eq!(c.moved, 0);
        let order: Vec<Key> = text.iter().map(|t| key(t.as_bytes())).collect();
        let cached: Vec<Key> = c.entries.iter().map(|e| e.key).collect();
        assert_eq!(cached, order);
        // References survived the moves.
        let (refs, stale) = scrape(&mut c, &text);
        assert!(stale.is_empty());
        assert_eq!(refs[..5], [1000, 1001, 1002, 1003, 1004]);
    }

    #[test]
    fn gone_series_go_stale_once_and_are_evicted() {
        let mut c = Cache::default();
        let all: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        scrape(&mut c, &all);
        // Half the series leave: one stale marker each, at the next commit only.
        let (_, stale) = scrape(&mut c, &all[..4]);
        assert_eq!(stale, [1004, 1005, 1006, 1007]);
        for _ in 0..EVICT_AFTER {
            let (refs, stale) = scrape(&mut c, &all[..4]);
            assert_eq!(refs, [1000, 1001, 1002, 1003]);
            assert!(stale.is_empty());
        }
        // Evicted (and compacted away): the rest are still found by reference.
        assert_eq!(c.len(), 4);
        assert_eq!(c.entries.len(), 4);
        let (refs, _) = scrape(&mut c, &all[..4]);
        assert_eq!(refs, [1000, 1001, 1002, 1003]);
        // A series that comes back is new again.
        let (refs, _) = scrape(&mut c, &all[3..6]);
        assert_eq!(refs, [1003, 1001, 1002]);
    }

    #[test]
    fn dropped_series_stay_dropped_and_reinserts_keep_one_slot() {
        let mut c = Cache::default();
        c.begin();
        let Lookup::Unknown(slot) = c.lookup(b"dropme") else {
            panic!("new series found")
        };
        c.insert_dropped(slot);
        let Lookup::Unknown(slot) = c.lookup(b"keep") else {
            panic!("new series found")
        };
        c.insert(slot, 7, true);
        c.commit(|_| {});
        c.begin();
        assert!(matches!(c.lookup(b"dropme"), Lookup::Dropped));
        // The store forgot the series: it is inserted again with a new reference.
        let slot = match c.lookup(b"keep") {
            Lookup::Known(e) => e.slot(),
            _ => panic!("known series not found"),
        };
        c.insert(slot, 9, true);
        c.commit(|_| {});
        assert_eq!(c.len(), 2);
        c.begin();
        assert!(matches!(c.lookup(b"keep"), Lookup::Known(e) if e.series_ref == 9));
    }

    #[test]
    fn the_length_of_the_series_expected_next_follows_the_cursor() {
        let mut c = Cache::default();
        let long = format!("m{{v=\"{}\"}}", "x".repeat(usize::from(u16::MAX)));
        let texts = ["a{x=\"1\"}", "bb{}", long.as_str(), "c"];
        c.set_format(Format::PromText);
        scrape(&mut c, &texts);
        c.begin();
        let mut expected = Vec::new();
        for t in texts {
            expected.push(c.expected_len());
            assert!(matches!(c.lookup(t.as_bytes()), Lookup::Known(_)));
        }
        expected.push(c.expected_len());
        // Too long a text has no length kept: the parser searches for its end.
        assert_eq!(expected, [Some(8), Some(4), None, Some(1), None]);
        c.commit(|_| {});
        // Texts accepted in another format are not expected in this one.
        c.begin();
        c.set_format(Format::OpenMetrics);
        assert_eq!(c.expected_len(), None);
    }

    #[test]
    fn keys_of_similar_series_differ() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000u32 {
            let s = format!(
                "ray_tasks{{State=\"RUNNING\",Name=\"task_{i}\",WorkerId=\"{:056x}\"}}",
                i as u64 * 7
            );
            assert!(seen.insert(key(s.as_bytes())), "collision at {i}");
        }
        // Lengths that are not a multiple of 8, and a prefix of another key.
        assert_ne!(key(b"abcdefghi"), key(b"abcdefgh"));
        assert_ne!(key(b""), key(b"\0"));
        // Every length from empty to three blocks and a bit, and the even
        // and odd words swapped.
        let text = b"ray_tasks{State=\"RUNNING\",Name=\"f\",IsRetry=\"0\"}";
        let keys: std::collections::HashSet<Key> =
            (0..=text.len()).map(|n| key(&text[..n])).collect();
        assert_eq!(keys.len(), text.len() + 1);
        assert_ne!(key(b"0123456789abcdef"), key(b"89abcdef01234567"));
    }
}
