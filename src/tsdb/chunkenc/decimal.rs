//! The decimal chunk: persisted chunks whose values are decimals (integers,
//! or numbers with a few decimal digits, as most of Ray's are) stored as
//! integer mantissas at one decimal scale, with small deltas in few bits.
//!
//! A value such as `12.3` has an IEEE 754 mantissa full of bits, so XOR
//! encoding pays about 50 bits whenever it changes; as the mantissa `123` at
//! scale 1 a change costs 9 to 18 bits. Only the chunk store writes this
//! encoding, by re-encoding a closed XOR chunk when the result is smaller
//! ([`super::compact`]); the head appends in XOR only. Layout:
//! `docs/format/chunk.md`. Every value round-trips bit for bit: a value that
//! is not exactly `m / 10^scale` is written raw.

use super::bstream::{BitReader, BitWriter};
use super::xor::{put_uvarint, put_varint, unzigzag};

/// Bytes before the bit stream: the big-endian sample count and the scale.
const HEADER: usize = 3;
/// The largest scale (decimal digits after the point) tried.
pub(crate) const MAX_SCALE: u8 = 15;
/// Mantissas stay within the integers a float holds exactly.
const MAX_MANTISSA: f64 = (1u64 << 53) as f64;

/// `10^k` for every scale; exact as floats (powers of ten are up to 10^22).
const POW10: [f64; MAX_SCALE as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Timestamp delta-of-delta codes after their prefix: the zig-zag value in
/// this many bits, then in 64.
const DOD_BITS: [u8; 3] = [5, 14, 20];

/// Value codes after their prefix: the zig-zag mantissa delta in this many
/// bits, then a 64-bit delta, then the raw value. Chosen on real Ray data
/// (Prometheus 2.42 golden data), where most deltas need 2 to 8 bits.
const DELTA_BITS: [u8; 6] = [4, 8, 13, 20, 27, 40];
/// The prefix of a raw value: one `1` more than the 64-bit delta's.
const RAW_ONES: usize = DELTA_BITS.len() + 2;

/// The mantissa of `v` at `scale` when `v` is exactly `m / 10^scale`, the
/// same division the reader does, compared by bits (so `-0.0`, NaN and
/// infinities are never decimals).
#[inline]
fn mantissa(v: f64, scale: u8) -> Option<i64> {
    let p = POW10[scale as usize];
    let m = (v * p).round();
    if m.is_nan() || m.abs() > MAX_MANTISSA {
        return None;
    }
    let m = m as i64;
    ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
}

/// The smallest scale at which `v` is a decimal.
fn min_scale(v: f64) -> Option<u8> {
    (0..=MAX_SCALE).find(|&k| mantissa(v, k).is_some())
}

/// The scale for a chunk's values: the largest any of them needs, or `None`
/// when too many are no decimal at all for this encoding to win.
pub(crate) fn choose_scale(samples: &[(i64, u64)]) -> Option<u8> {
    let mut scale = 0u8;
    let mut raw = 0usize;
    let mut prev = None;
    for &(_, vb) in samples {
        if prev == Some(vb) {
            continue;
        }
        prev = Some(vb);
        match min_scale(f64::from_bits(vb)) {
            Some(k) => scale = scale.max(k),
            None => {
                // A raw value costs 71 bits against XOR's 20 to 66: a few
                // (staleness markers) are fine, many are a loss.
                raw += 1;
                if raw * 8 > samples.len() + 8 {
                    return None;
                }
            }
        }
    }
    Some(scale)
}

/// Encodes samples (timestamps increasing, values as bits) at `scale`;
/// stops with `None` once the bytes exceed `limit`.
pub(crate) fn encode(samples: &[(i64, u64)], scale: u8, limit: usize) -> Option<Vec<u8>> {
    let num = u16::try_from(samples.len()).ok()?;
    let mut w = BitWriter::with_header(HEADER, limit.min(1 << 16));
    let header = w.bytes_mut();
    header[..2].copy_from_slice(&num.to_be_bytes());
    header[2] = scale;
    let (mut t_prev, mut t_delta) = (0i64, 0u64);
    let (mut v_prev, mut m) = (0f64.to_bits(), 0i64);
    for (i, &(t, vb)) in samples.iter().enumerate() {
        let mut buf = [0u8; 10];
        match i {
            0 => {
                let n = put_varint(&mut buf, t);
                buf[..n].iter().for_each(|&b| w.write_byte(b));
            }
            1 => {
                t_delta = t.wrapping_sub(t_prev) as u64;
                let n = put_uvarint(&mut buf, t_delta);
                buf[..n].iter().for_each(|&b| w.write_byte(b));
            }
            _ => {
                let d = t.wrapping_sub(t_prev) as u64;
                write_dod(&mut w, d.wrapping_sub(t_delta) as i64);
                t_delta = d;
            }
        }
        t_prev = t;
        if vb == v_prev {
            w.write_bit(false);
        } else if let Some(next) = mantissa(f64::from_bits(vb), scale) {
            let zz = zigzag(next.wrapping_sub(m));
            match DELTA_BITS.iter().position(|&n| zz < 1 << n) {
                Some(p) => {
                    // `p + 1` ones and a zero.
                    w.write_bits((1 << (p + 2)) - 2, p as u8 + 2);
                    w.write_bits(zz, DELTA_BITS[p]);
                }
                None => {
                    w.write_bits((1 << RAW_ONES) - 2, RAW_ONES as u8);
                    w.write_bits(zz, 64);
                }
            }
            m = next;
        } else {
            w.write_bits((1 << RAW_ONES) - 1, RAW_ONES as u8);
            w.write_bits(vb, 64);
        }
        v_prev = vb;
        if w.bytes().len() > limit {
            return None;
        }
    }
    Some(w.into_bytes())
}

/// The timestamp delta-of-delta. Most scrapes keep their interval to the
/// millisecond (a `0`); the rest are a few milliseconds off, which XOR's
/// smallest field (14 bits) would overpay, or a missed scrape.
fn write_dod(w: &mut BitWriter, dod: i64) {
    let zz = zigzag(dod);
    match DOD_BITS.iter().position(|&n| zz < 1 << n) {
        _ if dod == 0 => w.write_bit(false),
        Some(p) => {
            w.write_bits((1 << (p + 2)) - 2, p as u8 + 2);
            w.write_bits(zz, DOD_BITS[p]);
        }
        None => {
            w.write_bits(0b1111, 4);
            w.write_bits(zz, 64);
        }
    }
}

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

/// Decodes a decimal chunk's samples in order; stops early, and reports
/// [`DecimalIter::is_corrupt`], on malformed bytes.
#[derive(Debug, Clone)]
pub struct DecimalIter<'a> {
    r: BitReader<'a>,
    total: u16,
    read: u16,
    pow: f64,
    t: i64,
    t_delta: u64,
    v: u64,
    m: i64,
    corrupt: bool,
}

impl<'a> DecimalIter<'a> {
    /// Iterates over encoded chunk bytes (header included).
    pub fn new(bytes: &'a [u8]) -> DecimalIter<'a> {
        let (total, scale, stream) = match bytes {
            [a, b, k, rest @ ..] => (u16::from_be_bytes([*a, *b]), *k, rest),
            _ => (0, u8::MAX, &[][..]),
        };
        let corrupt = scale > MAX_SCALE && !bytes.is_empty();
        DecimalIter {
            r: BitReader::new(stream),
            total: if corrupt { 0 } else { total },
            read: 0,
            pow: POW10[usize::from(scale.min(MAX_SCALE))],
            t: 0,
            t_delta: 0,
            v: 0f64.to_bits(),
            m: 0,
            corrupt,
        }
    }

    /// Whether decoding stopped because the bytes were malformed.
    pub fn is_corrupt(&self) -> bool {
        self.corrupt
    }

    /// Advances to the first sample with timestamp `>= t` and returns it.
    pub fn seek(&mut self, t: i64) -> Option<(i64, f64)> {
        if self.read > 0 && self.t >= t {
            return Some((self.t, f64::from_bits(self.v)));
        }
        self.find(|&(st, _)| st >= t)
    }

    fn read_dod(&mut self) -> Option<i64> {
        let mut ones = 0usize;
        while ones < DOD_BITS.len() + 1 && self.r.read_bit()? {
            ones += 1;
        }
        if ones == 0 {
            return Some(0);
        }
        let size = DOD_BITS.get(ones - 1).copied().unwrap_or(64);
        Some(unzigzag(self.r.read_bits(size)?))
    }

    fn read_value(&mut self) -> Option<()> {
        let mut ones = 0usize;
        while ones < RAW_ONES && self.r.read_bit()? {
            ones += 1;
        }
        match ones {
            0 => {}
            RAW_ONES => self.v = self.r.read_bits(64)?,
            n => {
                let size = DELTA_BITS.get(n - 1).copied().unwrap_or(64);
                self.m = self.m.wrapping_add(unzigzag(self.r.read_bits(size)?));
                self.v = (self.m as f64 / self.pow).to_bits();
            }
        }
        Some(())
    }
}

impl Iterator for DecimalIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.total {
            return None;
        }
        let ok = match self.read {
            0 => self.r.read_uvarint().map(|ux| self.t = unzigzag(ux)),
            1 => self.r.read_uvarint().map(|d| {
                self.t_delta = d;
                self.t = self.t.wrapping_add(d as i64);
            }),
            _ => self.read_dod().map(|dod| {
                self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
                self.t = self.t.wrapping_add(self.t_delta as i64);
            }),
        }
        .and_then(|()| self.read_value());
        if ok.is_none() {
            self.corrupt = true;
            self.read = self.total;
            return None;
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(samples: &[(i64, f64)]) -> Vec<u8> {
        let bits: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        let scale = choose_scale(&bits).unwrap_or(0);
        let bytes = encode(&bits, scale, usize::MAX).expect("encodes");
        let back: Vec<(i64, u64)> = DecimalIter::new(&bytes)
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        assert_eq!(back, bits, "scale {scale}");
        bytes
    }

    #[test]
    fn every_value_round_trips_bit_for_bit() {
        let specials = [
            f64::from_bits(0x7ff0_0000_0000_0002),
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
            1e300,
            -1.5,
            0.1,
            0.30000000000000004,
            9007199254740993.0,
            123456.789,
            1.0 / 3.0,
        ];
        let samples: Vec<(i64, f64)> = specials
            .iter()
            .enumerate()
            .map(|(i, &v)| (1_000 * i as i64 - 5_000, v))
            .collect();
        round_trip(&samples);
    }

    #[test]
    fn ray_like_values_are_smaller_than_xor() {
        use super::super::XorChunk;
        let mut samples = Vec::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..120i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // A one-decimal percentage, scraped every 15 s with a little jitter.
            let v = (x % 1000) as f64 / 10.0;
            samples.push((1_700_000_000_000 + i * 15_000 + (x % 3) as i64, v));
        }
        let decimal = round_trip(&samples);
        let mut xor = XorChunk::new();
        for &(t, v) in &samples {
            xor.append(t, v).expect("room");
        }
        assert!(
            decimal.len() * 2 < xor.bytes().len(),
            "decimal {} bytes, xor {}",
            decimal.len(),
            xor.bytes().len()
        );
    }

    #[test]
    fn random_bits_round_trip() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200 {
            let mut samples = Vec::new();
            let mut t = -3_000_000i64;
            for _ in 0..(x % 150) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                t += (x % 40_000) as i64;
                let v = match x % 5 {
                    0 => f64::from_bits(x),
                    1 => (x % 100_000) as f64 / 1000.0,
                    2 => -((x % 7) as f64),
                    3 => (x >> 11) as f64,
                    _ => 0.5,
                };
                samples.push((t, v));
            }
            round_trip(&samples);
        }
    }

    #[test]
    fn malformed_bytes_stop_with_corrupt() {
        let bytes = round_trip(&[(0, 1.5), (15_000, 2.5), (30_000, 3.5)]);
        for cut in 0..bytes.len() {
            let mut it = DecimalIter::new(&bytes[..cut]);
            it.by_ref().for_each(drop);
            assert!(it.is_corrupt() || cut == 0, "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[2] = MAX_SCALE + 1;
        let mut it = DecimalIter::new(&bad);
        assert_eq!(it.next(), None);
        assert!(it.is_corrupt());
    }
}
