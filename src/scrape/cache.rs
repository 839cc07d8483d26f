//! The per-target scrape cache: raw series bytes → storage reference, plus
//! which series each scrape saw, for staleness markers.
//!
//! Known series skip label parsing, target-label merging and relabeling;
//! only series new to the target pay for them (Prometheus's `scrapeCache`).
//!
//! Memory is the point of its shape: an entry is a 128-bit hash of the raw
//! series text and the store's reference, about 50 bytes, where keeping the
//! text and the labels cost over 1.5 KB per Ray series. The store keeps the
//! labels; staleness markers are appended by reference alone.

use rustc_hash::FxHashMap;

use crate::storage::SeriesRef;

/// A 128-bit hash of a series' raw text: two independent multiply-rotate
/// lanes over 8-byte words, each finished with a full avalanche. Accidental
/// collisions among a target's series are about 2^-100 likely.
type Key = (u64, u64);

fn key(raw: &[u8]) -> Key {
    fn fmix(mut h: u64) -> u64 {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    let mut a: u64 = 0x243f_6a88_85a3_08d3 ^ raw.len() as u64;
    let mut b: u64 = 0x1319_8a2e_0370_7344 ^ (raw.len() as u64).rotate_left(32);
    let mut mix = |w: u64| {
        a = (a ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        b = (b.rotate_left(23) ^ w).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    };
    let chunks = raw.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        mix(u64::from_le_bytes(w));
    }
    if !tail.is_empty() {
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        mix(u64::from_le_bytes(w) ^ 0x8000_0000_0000_0000);
    }
    (fmix(a), fmix(b ^ a.rotate_left(17)))
}

/// Scrapes after which an unseen series leaves the cache. It got its stale
/// marker long before; this only bounds memory under churn.
const EVICT_AFTER: u64 = 10;

pub struct Entry {
    pub series_ref: SeriesRef,
    /// Last scrape that committed this series.
    last_iter: u64,
    /// Last scrape that parsed it (committed or not).
    seen_iter: u64,
    /// Samples with explicit timestamps are not tracked for staleness.
    pub track_staleness: bool,
}

#[derive(Default)]
pub struct Cache {
    series: FxHashMap<Key, Entry>,
    /// Series that metric relabeling dropped, so they are not relabeled again.
    dropped: FxHashMap<Key, u64>,
    /// The scrape in progress.
    iter: u64,
    /// The scrape attempt before it.
    prev_iter: u64,
}

/// What a lookup found.
pub enum Lookup<'c> {
    Known(&'c mut Entry),
    Dropped,
    Unknown,
}

impl Cache {
    /// Starts a new scrape.
    pub fn begin(&mut self) {
        self.prev_iter = self.iter;
        self.iter += 1;
    }

    pub fn lookup(&mut self, raw: &[u8]) -> Lookup<'_> {
        let iter = self.iter;
        let k = key(raw);
        if let Some(e) = self.series.get_mut(&k) {
            e.seen_iter = iter;
            return Lookup::Known(e);
        }
        if let Some(seen) = self.dropped.get_mut(&k) {
            *seen = iter;
            return Lookup::Dropped;
        }
        Lookup::Unknown
    }

    pub fn insert(&mut self, raw: &[u8], series_ref: SeriesRef, track_staleness: bool) {
        self.series.insert(
            key(raw),
            Entry {
                series_ref,
                last_iter: 0,
                seen_iter: self.iter,
                track_staleness,
            },
        );
    }

    pub fn insert_dropped(&mut self, raw: &[u8]) {
        self.dropped.insert(key(raw), self.iter);
    }

    /// Ends a committed scrape: series it saw become current, series the
    /// previous scrape saw but this one did not are passed to `stale`.
    pub fn commit(&mut self, mut stale: impl FnMut(&mut Entry)) {
        let (iter, prev) = (self.iter, self.prev_iter);
        self.series.retain(|_, e| {
            if e.seen_iter == iter {
                e.last_iter = iter;
            } else if e.last_iter == prev && prev != 0 && e.track_staleness {
                stale(e);
            }
            e.last_iter + EVICT_AFTER >= iter
        });
        self.dropped.retain(|_, seen| *seen + EVICT_AFTER >= iter);
    }

    /// Ends a failed scrape: every series of the previous scrape goes stale.
    pub fn fail(&mut self, mut stale: impl FnMut(&mut Entry)) {
        let prev = self.prev_iter;
        for e in self.series.values_mut() {
            if e.last_iter == prev && prev != 0 && e.track_staleness {
                stale(e);
            }
        }
    }

    /// Series committed by the most recent successful scrape, if it was the
    /// latest attempt: what a removed target must mark stale.
    pub fn current(&mut self, mut f: impl FnMut(&mut Entry)) {
        let iter = self.iter;
        for e in self.series.values_mut() {
            if e.last_iter == iter && e.track_staleness {
                f(e);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
