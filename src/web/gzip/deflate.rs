//! A small DEFLATE encoder (RFC 1951) for small answers: greedy LZ77 over a
//! hash table that is never cleared, and one block with the fixed Huffman
//! codes.
//!
//! miniz clears its tables before every stream, which costs more than
//! compressing a typical query answer (docs/decisions.md).
//! Here positions are stored offset by a running base, so entries from
//! earlier calls read as empty without clearing anything. Dynamic Huffman
//! tables would compress a little better; for small answers the fixed codes
//! are close and need no table building.
//!
//! Knows bytes only.

use std::cell::RefCell;

/// Bits of the LZ77 hash.
const HASH_BITS: u32 = 13;
const WINDOW: usize = 32 * 1024;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// Positions seen, as `base + position + 1`; anything not above `base` is
/// from an earlier call.
struct Table {
    slots: Vec<u32>,
    base: u32,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table {
        slots: vec![0; 1 << HASH_BITS],
        base: 0,
    });
}

/// LSB-first bit packing, as DEFLATE wants.
struct Bits<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits<'_> {
    /// Appends the low `n` bits of `v` (`n` at most 32).
    #[inline]
    fn put(&mut self, v: u32, n: u32) {
        self.acc |= u64::from(v) << self.n;
        self.n += n;
        while self.n >= 8 {
            // The low byte of the accumulator, exactly.
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Appends a Huffman code, which DEFLATE stores most significant bit
    /// first.
    #[inline]
    fn code(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }

    fn finish(mut self) {
        if self.n > 0 {
            self.put(0, 8 - self.n);
        }
    }

    /// A literal byte or the end-of-block / length symbol `sym` (0..=285).
    #[inline]
    fn symbol(&mut self, sym: u32) {
        match sym {
            0..=143 => self.code(0x30 + sym, 8),
            144..=255 => self.code(0x190 + sym - 144, 9),
            256..=279 => self.code(sym - 256, 7),
            _ => self.code(0xc0 + sym - 280, 8),
        }
    }

    /// A match of `len` bytes `dist` back.
    fn matched(&mut self, len: usize, dist: usize) {
        // Both fit: `len` is at most 258 and `dist` at most 32 KiB.
        let (len, dist) = (len as u16, dist as u16);
        let li = LEN_BASE.partition_point(|&b| b <= len) - 1;
        self.symbol(257 + li as u32);
        self.put(u32::from(len - LEN_BASE[li]), u32::from(LEN_EXTRA[li]));
        let di = DIST_BASE.partition_point(|&b| b <= dist) - 1;
        self.code(di as u32, 5);
        self.put(u32::from(dist - DIST_BASE[di]), u32::from(DIST_EXTRA[di]));
    }
}

#[inline]
fn hash(b: &[u8]) -> usize {
    let v = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
    (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
}

/// Appends `data` as one final fixed-Huffman DEFLATE block.
pub(crate) fn deflate(data: &[u8], out: &mut Vec<u8>) {
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let Ok(n) = u32::try_from(data.len()) else {
            return stored(data, out);
        };
        if t.base
            .checked_add(n)
            .and_then(|b| b.checked_add(1))
            .is_none()
        {
            t.slots.fill(0);
            t.base = 0;
        }
        let base = t.base;
        compress(data, out, &mut t.slots, base);
        t.base = base + n + 1;
    });
}

fn compress(data: &[u8], out: &mut Vec<u8>, slots: &mut [u32], base: u32) {
    let mut bits = Bits { out, acc: 0, n: 0 };
    // BFINAL, then BTYPE 01 (fixed codes).
    bits.put(0b011, 3);
    let n = data.len();
    let mut i = 0;
    while i < n {
        if i + MIN_MATCH > n {
            bits.symbol(u32::from(data[i]));
            i += 1;
            continue;
        }
        let h = hash(&data[i..]);
        let seen = slots[h];
        // Positions are below `u32::MAX - base` (checked by the caller).
        slots[h] = base + i as u32 + 1;
        let mut len = 0;
        if seen > base {
            let cand = (seen - base - 1) as usize;
            if i - cand <= WINDOW {
                let max = (n - i).min(MAX_MATCH);
                while len < max && data[cand + len] == data[i + len] {
                    len += 1;
                }
            }
            if len >= MIN_MATCH {
                bits.matched(len, i - cand);
                // Index the covered positions so later text finds them.
                let end = (i + len).min(n.saturating_sub(MIN_MATCH - 1));
                for j in i + 1..end {
                    slots[hash(&data[j..])] = base + j as u32 + 1;
                }
                i += len;
                continue;
            }
        }
        bits.symbol(u32::from(data[i]));
        i += 1;
    }
    bits.symbol(256);
    bits.finish();
}

/// Stored blocks, for inputs too large to index (over 4 GiB).
fn stored(data: &[u8], out: &mut Vec<u8>) {
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        // Chunks are at most 0xffff bytes.
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(raw: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(raw)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    fn round_trip(data: &[u8]) -> usize {
        let mut out = Vec::new();
        deflate(data, &mut out);
        assert_eq!(inflate(&out), data, "{} bytes", data.len());
        out.len()
    }

    #[test]
    fn round_trips() {
        round_trip(b"");
        round_trip(b"a");
        round_trip(b"ab");
        round_trip(b"abc");
        round_trip(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let all: Vec<u8> = (0..=255).collect();
        round_trip(&all);
        // Pseudo-random bytes with repeats at every distance and length.
        let mut x = 12345u32;
        let mut data = Vec::new();
        while data.len() < 200_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let r = (x >> 16) as usize;
            if r.is_multiple_of(3) && data.len() > 40_000 {
                let dist = 1 + r % 40_000;
                let len = 3 + (r / 7) % 300;
                for _ in 0..len {
                    data.push(data[data.len() - dist]);
                }
            } else {
                data.push((r >> 4) as u8);
            }
        }
        round_trip(&data);
    }

    #[test]
    fn json_shrinks_and_later_calls_ignore_earlier_input() {
        let json = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"instance":"10.0.0.1:8080"},"values":[[1795686771,"0.5"],[1795686776,"0.5"]]},{"metric":{"instance":"10.0.0.2:8080"},"values":[[1795686771,"0.25"],[1795686776,"0.25"]]}]}}"#;
        let n = round_trip(json);
        assert!(n < json.len() * 3 / 4, "{n} of {}", json.len());
        // A second, different input: stale table entries must not match.
        round_trip(b"zzzz{\"status\":\"success\"}zzzz");
        round_trip(json);
    }

    #[test]
    fn stored_blocks_decode() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for d in [&data[..0], &data[..10], &data[..]] {
            let mut out = Vec::new();
            stored(d, &mut out);
            assert_eq!(inflate(&out), d);
        }
    }
}
