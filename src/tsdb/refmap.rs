//! The head's map from series reference to series, hashed so that series
//! created one after another sit in neighbouring slots.
//!
//! A commit looks up every series of a scrape, twice (check, then apply),
//! and with a million series the table does not fit in any cache: perf put
//! most of a commit's time on the first touch of each table slot. A
//! target's series are created together, so their references are close
//! (one counter for all shards, shard in the low bits; see `head.rs`).
//! With the counter's bits as the slot position, a scrape's lookups in one
//! shard land a few slots apart, several to a cache line, where a mixing
//! hash scatters each to a line of its own.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::storage::SeriesRef;

/// A `HashMap` keyed by series reference with [`RefHasher`].
pub type RefMap<V> = HashMap<SeriesRef, V, BuildHasherDefault<RefHasher>>;

/// Bits of a reference dropped for the slot: the shard (4), and 3 of the
/// counter's, since a shard gets one counter value in 16. A shard's series
/// then take about every other slot of the stretch they span, so probe
/// sequences stay short. Measured with `raymon bench-tsdb --series 1000000
/// --scrapes 40`, appends per CPU second: 8.3 M with FxHash, 7.4 M dropping
/// 8 bits (as dense as the table allows: long probes), 10.1 M with 7,
/// 9.6 M with 6.
const LOCAL_SHIFT: u32 = 7;
/// The table keeps its 7-bit probe tag in the hash's top bits: those come
/// from a multiplicative mix so that neighbours do not share a tag.
const TAG_MASK: u64 = 0x7f << 57;
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// Hashes a series reference to its counter over 8 (the slot) with mixed
/// bits on top (the probe tag). For anything but a `u64` write it
/// falls back to FxHash-like folding, which the map never uses.
#[derive(Default, Clone, Copy)]
pub struct RefHasher(u64);

impl Hasher for RefHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(MIX);
        }
    }

    #[inline]
    fn write_u64(&mut self, r: u64) {
        self.0 = r;
    }

    #[inline]
    fn finish(&self) -> u64 {
        let r = self.0;
        ((r >> LOCAL_SHIFT) & !TAG_MASK) | (r.wrapping_mul(MIX) & TAG_MASK)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn hash(r: SeriesRef) -> u64 {
        BuildHasherDefault::<RefHasher>::default().hash_one(r)
    }

    #[test]
    fn neighbouring_references_get_neighbouring_slots_and_varied_tags() {
        // References as the head makes them: counter << 4 | shard.
        let shard = 5u64;
        let refs: Vec<SeriesRef> = (1_000_000..1_002_000u64)
            .map(|seq| seq << 4 | shard)
            .collect();
        let slots: Vec<u64> = refs.iter().map(|&r| hash(r) & 0xffff).collect();
        let (lo, hi) = (slots.iter().min().unwrap(), slots.iter().max().unwrap());
        // 2,000 consecutive counter values: 250 slots, not scattered over
        // the table.
        assert!(hi - lo < 260, "{lo}..{hi}");
        let tags: std::collections::HashSet<u64> = refs.iter().map(|&r| hash(r) >> 57).collect();
        assert!(tags.len() > 100, "{} tags", tags.len());
    }

    #[test]
    fn the_map_finds_every_series() {
        let mut m: RefMap<u64> = RefMap::default();
        for seq in 1..50_000u64 {
            m.insert(seq << 4 | (seq * 7 % 16), seq);
        }
        for seq in (1..50_000u64).step_by(7) {
            assert_eq!(m.remove(&(seq << 4 | (seq * 7 % 16))), Some(seq));
        }
        for seq in 1..50_000u64 {
            let want = (seq % 7 != 1).then_some(seq);
            assert_eq!(m.get(&(seq << 4 | (seq * 7 % 16))).copied(), want, "{seq}");
        }
    }
}
