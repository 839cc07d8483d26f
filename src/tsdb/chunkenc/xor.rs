//! The Gorilla XOR chunk: an appender that keeps its encoder state and an
//! iterator over the encoded bytes.
//!
//! The byte layout is written down in `docs/format/chunk.md` and matches
//! Prometheus's `XORChunk` bit for bit. This file knows nothing of series,
//! locks or time ranges beyond a single chunk.

use super::bstream::{BitReader, BitWriter};
use super::{Error, Repeats, repeats_until};

/// Bytes before the bit stream: the big-endian sample count.
const HEADER: usize = 2;

/// Whether `x` fits an `nbits` field of the delta-of-delta encoding.
#[inline]
fn bit_range(x: i64, nbits: u8) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

/// A chunk being appended to. Values are kept as bits so that every NaN
/// payload (the staleness marker in particular) survives bit for bit.
#[derive(Debug, Clone)]
pub struct XorChunk {
    a: XorAppender,
    // The last sample's time and value bits.
    t: i64,
    v: u64,
}

/// A [`XorChunk`]'s encoder without the last sample's time and value, for a
/// holder that keeps those anyway and passes them to every append: the
/// head's series do (they check each sample's order against them), and
/// storing them twice made a series too large for a 128-byte allocation.
#[derive(Debug, Clone)]
pub struct XorAppender {
    w: BitWriter,
    t_delta: u64,
    num: u16,
    // The current XOR window; `leading == 0xff` means there is none yet.
    leading: u8,
    trailing: u8,
}

/// The encoder state of a [`XorChunk`] after its last sample: that
/// sample's time and value bits, the last time delta, the XOR window and the
/// free bits of the last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XorState {
    pub t: i64,
    pub v: u64,
    pub t_delta: u64,
    pub leading: u8,
    pub trailing: u8,
    pub free: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        XorChunk::new()
    }
}

impl XorChunk {
    pub fn new() -> XorChunk {
        XorChunk::with_capacity(16)
    }

    /// A chunk whose buffer starts with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> XorChunk {
        XorChunk {
            a: XorAppender::with_capacity(bytes),
            t: 0,
            v: 0,
        }
    }

    /// Reopens an encoded chunk for appending, rebuilding the encoder state
    /// by decoding it once.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<XorChunk, Error> {
        let mut it = XorIter::new(&bytes);
        for _ in it.by_ref() {}
        if it.is_corrupt() {
            return Err(Error::Corrupt);
        }
        let num = it.read;
        let (t, v, t_delta, leading, trailing) = (it.t, it.v, it.t_delta, it.leading, it.trailing);
        let used_bits = it.r.bits_consumed();
        let free = ((8 - used_bits % 8) % 8) as u8;
        let stream_len = used_bits.div_ceil(8) as usize;
        let mut bytes = bytes;
        bytes.truncate(HEADER + stream_len);
        Ok(XorChunk {
            a: XorAppender {
                w: BitWriter::from_parts(bytes, free),
                num,
                t_delta,
                leading,
                trailing,
            },
            t,
            v,
        })
    }

    /// What an appender needs besides the bytes to go on writing this
    /// chunk: kept in checkpoints so that reopening a million open chunks
    /// does not decode each of them ([`XorChunk::from_state`]).
    pub fn state(&self) -> XorState {
        self.a.state(self.t, self.v)
    }

    /// Whether [`XorChunk::from_state`] takes `st` for `bytes`: asked
    /// first by a caller that keeps the bytes when it would not.
    pub fn state_fits(bytes: &[u8], st: XorState) -> bool {
        let num = match bytes {
            [a, b, rest @ ..] if !rest.is_empty() => u16::from_be_bytes([*a, *b]),
            _ => return false,
        };
        let window_ok = st.leading == 0xff
            || (st.leading < 32 && st.trailing < 64 && st.leading + st.trailing < 64);
        num != 0 && st.free < 8 && window_ok
    }

    /// Reopens an encoded chunk for appending with the state
    /// [`XorChunk::state`] gave for these bytes, without decoding them.
    /// Refuses a state that cannot belong to any chunk; one that is
    /// possible but wrong for these bytes (which checksums rule out) would
    /// make later samples decode wrongly.
    pub fn from_state(bytes: Vec<u8>, st: XorState) -> Result<XorChunk, Error> {
        if !Self::state_fits(&bytes, st) {
            return Err(Error::Corrupt);
        }
        let num = u16::from_be_bytes([bytes[0], bytes[1]]);
        Ok(XorChunk {
            a: XorAppender {
                w: BitWriter::from_parts(bytes, st.free),
                num,
                t_delta: st.t_delta,
                leading: st.leading,
                trailing: st.trailing,
            },
            t: st.t,
            v: st.v,
        })
    }

    /// The encoder without the last sample's time and value bits, and
    /// those two, for a holder that keeps them itself.
    pub fn into_parts(self) -> (XorAppender, i64, u64) {
        (self.a, self.t, self.v)
    }

    pub fn num_samples(&self) -> usize {
        self.a.num_samples()
    }

    /// The first sample's timestamp, read back from the encoding (it is a
    /// whole-byte varint right after the header), so that holders of an
    /// open chunk need not keep a copy.
    pub fn first_t(&self) -> Option<i64> {
        self.a.first_t()
    }

    /// The encoded chunk, including its sample count header.
    pub fn bytes(&self) -> &[u8] {
        self.a.bytes()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.a.into_bytes()
    }

    /// Heap bytes held by the chunk's buffer.
    pub fn capacity(&self) -> usize {
        self.a.capacity()
    }

    /// Appends a sample. The caller keeps timestamps increasing; the format
    /// itself would accept anything.
    pub fn append(&mut self, t: i64, v: f64) -> Result<(), Error> {
        self.a.append(self.t, self.v, t, v)?;
        self.t = t;
        self.v = v.to_bits();
        Ok(())
    }

    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(self.bytes())
    }
}

impl XorAppender {
    /// An empty chunk's encoder whose buffer starts with room for `bytes`
    /// bytes.
    pub fn with_capacity(bytes: usize) -> XorAppender {
        XorAppender {
            w: BitWriter::with_header(HEADER, bytes),
            t_delta: 0,
            num: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    /// [`XorChunk::state`], given the last sample's time and value bits.
    pub fn state(&self, t: i64, v: u64) -> XorState {
        XorState {
            t,
            v,
            t_delta: self.t_delta,
            leading: self.leading,
            trailing: self.trailing,
            free: self.w.free_bits(),
        }
    }

    pub fn num_samples(&self) -> usize {
        usize::from(self.num)
    }

    /// The time between the last two samples, if there are two: the
    /// holder's last time less this is the one before it, known without
    /// reading the bytes.
    pub fn last_delta(&self) -> Option<u64> {
        (self.num >= 2).then_some(self.t_delta)
    }

    /// The first sample's timestamp (see [`XorChunk::first_t`]).
    pub fn first_t(&self) -> Option<i64> {
        if self.num == 0 {
            return None;
        }
        let mut ux = 0u64;
        for (i, &b) in self.bytes().get(HEADER..)?.iter().take(10).enumerate() {
            ux |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                let x = (ux >> 1) as i64;
                return Some(if ux & 1 == 1 { !x } else { x });
            }
        }
        None
    }

    /// The encoded chunk, including its sample count header.
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.w.into_bytes()
    }

    /// Heap bytes held by the chunk's buffer.
    pub fn capacity(&self) -> usize {
        self.w.capacity()
    }

    /// Appends a sample after the one at `last_t` with value bits
    /// `last_v` (the chunk's last; ignored while the chunk is empty).
    pub fn append(&mut self, last_t: i64, last_v: u64, t: i64, v: f64) -> Result<(), Error> {
        let vb = v.to_bits();
        if self.num == u16::MAX {
            return Err(Error::Full);
        }
        if self.num == 0 {
            let mut buf = [0u8; 10];
            let n = put_varint(&mut buf, t);
            for &b in &buf[..n] {
                self.w.write_byte(b);
            }
            self.w.write_bits(vb, 64);
        } else {
            let t_delta = t.wrapping_sub(last_t) as u64;
            if self.num == 1 {
                let mut buf = [0u8; 10];
                let n = put_uvarint(&mut buf, t_delta);
                for &b in &buf[..n] {
                    self.w.write_byte(b);
                }
            } else {
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.write_bit(false);
                } else if bit_range(dod, 14) {
                    self.w.write_bits(0b10, 2);
                    self.w.write_bits(dod as u64, 14);
                } else if bit_range(dod, 17) {
                    self.w.write_bits(0b110, 3);
                    self.w.write_bits(dod as u64, 17);
                } else if bit_range(dod, 20) {
                    self.w.write_bits(0b1110, 4);
                    self.w.write_bits(dod as u64, 20);
                } else {
                    self.w.write_bits(0b1111, 4);
                    self.w.write_bits(dod as u64, 64);
                }
            }
            write_xor_value(
                &mut self.w,
                last_v,
                vb,
                &mut self.leading,
                &mut self.trailing,
            );
            self.t_delta = t_delta;
        }
        self.num += 1;
        let header = self.num.to_be_bytes();
        self.w.bytes_mut()[..HEADER].copy_from_slice(&header);
        Ok(())
    }
}

/// Decodes a chunk's samples in order. Stops early, and reports
/// [`XorIter::is_corrupt`], if the bytes end before the header's count.
#[derive(Debug, Clone)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    v: u64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
    corrupt: bool,
}

impl<'a> XorIter<'a> {
    /// Iterates over encoded chunk bytes (header included).
    pub fn new(bytes: &'a [u8]) -> XorIter<'a> {
        let (total, corrupt, stream) = match bytes {
            [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), false, rest),
            _ => (0, !bytes.is_empty(), &[][..]),
        };
        XorIter {
            r: BitReader::new(stream),
            total,
            read: 0,
            t: 0,
            v: 0,
            t_delta: 0,
            leading: 0xff,
            trailing: 0,
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

    /// After a sample [`Iterator::next`] returned, takes the samples
    /// right after it that repeat it (the same time step, the same value)
    /// with times at most `maxt`: what `next` would return one by one,
    /// found from the count of zero bits that follow. Its value is the
    /// last one returned.
    #[inline(always)]
    pub fn take_repeats(&mut self, maxt: i64) -> Repeats {
        if self.read < 2 || !self.r.peek_zero_pair() {
            return Repeats::NONE;
        }
        let step = self.t_delta as i64;
        let max = repeats_until(self.t, step, maxt, self.total - self.read);
        let len = self.r.take_zero_pairs(max);
        let first = self.t.wrapping_add(step);
        // Invariant: `read + len <= total` and the last time is at most
        // `maxt` (`repeats_until`), so neither overflows.
        self.read += len as u16;
        self.t = self.t.wrapping_add(step.wrapping_mul(i64::from(len)));
        Repeats { first, step, len }
    }

    fn fail(&mut self) -> Option<(i64, f64)> {
        self.corrupt = true;
        self.read = self.total;
        None
    }

    #[inline(always)]
    fn read_value(&mut self) -> Option<()> {
        read_xor_value(
            &mut self.r,
            &mut self.v,
            &mut self.leading,
            &mut self.trailing,
        )
    }

    #[inline(always)]
    fn read_dod(&mut self) -> Option<i64> {
        // The prefix `0`, `10`, `110`, `1110` or `1111` as its count of ones.
        let size: u8 = match self.r.read_ones(4)? {
            0 => return Some(0),
            1 => 14,
            2 => 17,
            3 => 20,
            _ => 64,
        };
        let mut bits = self.r.read_bits(size)?;
        if size != 64 && bits > 1 << (size - 1) {
            bits = bits.wrapping_sub(1 << size);
        }
        Some(bits as i64)
    }
}

impl XorIter<'_> {
    /// [`Iterator::next`] for the first sample (varint time, raw value)
    /// and the second (varint delta, XOR value).
    #[inline(never)]
    fn next_whole(&mut self) -> Option<(i64, f64)> {
        let ok = if self.read == 0 {
            self.r.read_uvarint().and_then(|ux| {
                self.t = unzigzag(ux);
                self.v = self.r.read_bits(64)?;
                Some(())
            })
        } else {
            self.r.read_uvarint().and_then(|d| {
                self.t_delta = d;
                self.t = self.t.wrapping_add(d as i64);
                self.read_value()
            })
        };
        if ok.is_none() {
            return self.fail();
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.v)))
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    #[inline(always)]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.total {
            return None;
        }
        // The first two samples, written whole, out of the loop's way.
        if self.read < 2 {
            return self.next_whole();
        }
        // `0` (delta-of-delta 0) then `0` (same value): a regular series
        // that did not change, as most samples of histogram buckets are.
        if self.r.take_zeros(2) {
            self.t = self.t.wrapping_add(self.t_delta as i64);
            self.read += 1;
            return Some((self.t, f64::from_bits(self.v)));
        }
        self.next_coded()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.total - self.read.min(self.total));
        (0, Some(left))
    }
}

impl XorIter<'_> {
    /// [`Iterator::next`] without its test for a repeat, for a caller
    /// that has just taken the repeats ([`XorIter::take_repeats`]): the
    /// next sample then most likely changes, and were it a repeat after
    /// all, its two zero bits decode the same way as a code.
    #[inline(always)]
    pub fn next_changed(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.total {
            return None;
        }
        if self.read < 2 {
            return self.next_whole();
        }
        self.next_coded()
    }

    /// The third sample on: its delta-of-delta code and value code.
    #[inline(always)]
    fn next_coded(&mut self) -> Option<(i64, f64)> {
        // `0` (the same time step), `10` (the last XOR window) and the
        // window's bits: a counter that moved by a similar step, as most
        // changing samples of histogram buckets are, in one read.
        if self.leading != 0xff {
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            if let Some(bits) = self.r.take_after_prefix(0b010, 3, sig) {
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.v ^= bits << self.trailing;
                self.read += 1;
                return Some((self.t, f64::from_bits(self.v)));
            }
        }
        let ok = self.read_dod().and_then(|dod| {
            self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
            self.t = self.t.wrapping_add(self.t_delta as i64);
            self.read_value()
        });
        if ok.is_none() {
            return self.fail();
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.v)))
    }
}

/// Writes `vb` XOR-encoded against the previous value `prev` (Gorilla's
/// value code, `docs/format/chunk.md`), keeping the window (`leading`,
/// `trailing`; `leading == 0xff` before the first) up to date.
#[inline]
pub(super) fn write_xor_value(
    w: &mut BitWriter,
    prev: u64,
    vb: u64,
    leading: &mut u8,
    trailing: &mut u8,
) {
    let delta = vb ^ prev;
    if delta == 0 {
        w.write_bit(false);
        return;
    }
    w.write_bit(true);
    let lead = (delta.leading_zeros() as u8).min(31);
    let trail = delta.trailing_zeros() as u8;
    if *leading != 0xff && lead >= *leading && trail >= *trailing {
        w.write_bit(false);
        let sig = 64 - *leading - *trailing;
        w.write_bits(delta >> *trailing, sig);
        return;
    }
    *leading = lead;
    *trailing = trail;
    w.write_bit(true);
    w.write_bits(u64::from(lead), 5);
    let sig = 64 - lead - trail;
    // A 64-bit window is written as 0: six bits cannot hold 64.
    w.write_bits(u64::from(sig & 63), 6);
    w.write_bits(delta >> trail, sig);
}

/// Reads a value written by [`write_xor_value`] into `v`, which holds the
/// previous one.
#[inline(always)]
pub(super) fn read_xor_value(
    r: &mut BitReader<'_>,
    v: &mut u64,
    leading: &mut u8,
    trailing: &mut u8,
) -> Option<()> {
    // `0`: the same value; `10`: the last window; `11`: a new window.
    let ones = r.read_ones(2)?;
    if ones == 0 {
        return Some(());
    }
    if ones == 2 {
        *leading = r.read_bits(5)? as u8;
        let mut sig = r.read_bits(6)? as u8;
        if sig == 0 {
            sig = 64;
        }
        *trailing = 64u8.checked_sub(*leading + sig)?;
    } else if *leading == 0xff {
        // Reusing a window that was never opened: the encoder never does this.
        return None;
    }
    let sig = 64 - *leading - *trailing;
    let bits = r.read_bits(sig)?;
    *v ^= bits << *trailing;
    Some(())
}

/// Writes `x` as Go's `binary.PutVarint` does and returns the length.
pub(super) fn put_varint(buf: &mut [u8; 10], x: i64) -> usize {
    let ux = if x < 0 {
        !((x as u64) << 1)
    } else {
        (x as u64) << 1
    };
    put_uvarint(buf, ux)
}

pub(super) fn put_uvarint(buf: &mut [u8; 10], mut x: u64) -> usize {
    let mut i = 0;
    while x >= 0x80 {
        buf[i] = (x as u8) | 0x80;
        x >>= 7;
        i += 1;
    }
    buf[i] = x as u8;
    i + 1
}

pub(super) fn unzigzag(ux: u64) -> i64 {
    let x = (ux >> 1) as i64;
    if ux & 1 != 0 { !x } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN_BITS;

    /// A small deterministic generator so tests need no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn round_trip(samples: &[(i64, f64)]) -> XorChunk {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v).unwrap();
        }
        assert_eq!(c.num_samples(), samples.len());
        let got: Vec<(i64, u64)> = c.iter().map(|(t, v)| (t, v.to_bits())).collect();
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, want);
        // Reopening the bytes must give an encoder that continues identically.
        let mut reopened = XorChunk::from_bytes(c.bytes().to_vec()).unwrap();
        assert_eq!(reopened.bytes(), c.bytes());
        // So must the saved state, which equals the decoded one.
        let mut restored = if samples.is_empty() {
            assert!(XorChunk::from_state(c.bytes().to_vec(), c.state()).is_err());
            None
        } else {
            assert_eq!(reopened.state(), c.state());
            Some(XorChunk::from_state(c.bytes().to_vec(), c.state()).unwrap())
        };
        if let Some(&(t, _)) = samples.last().filter(|s| s.0 < i64::MAX / 2) {
            let mut cont = c.clone();
            for (i, v) in [42.0, 42.0, -1.0, f64::from_bits(STALE_NAN_BITS)]
                .iter()
                .enumerate()
            {
                cont.append(t + 1 + i as i64 * 7, *v).unwrap();
                reopened.append(t + 1 + i as i64 * 7, *v).unwrap();
                if let Some(r) = restored.as_mut() {
                    r.append(t + 1 + i as i64 * 7, *v).unwrap();
                }
            }
            assert_eq!(reopened.bytes(), cont.bytes());
            if let Some(r) = restored {
                assert_eq!(r.bytes(), cont.bytes());
            }
        }
        c
    }

    #[test]
    fn empty_and_single() {
        let c = XorChunk::new();
        assert_eq!(c.bytes(), &[0, 0]);
        assert_eq!(c.iter().count(), 0);
        round_trip(&[(1_700_000_000_000, 1.5)]);
        round_trip(&[(-5, f64::from_bits(STALE_NAN_BITS))]);
    }

    #[test]
    fn special_values_are_bit_exact() {
        let specials = [
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(STALE_NAN_BITS),
            f64::from_bits(0x7ff8_0000_0000_0001),
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            1.0,
        ];
        let mut samples = Vec::new();
        let mut t = 1_000;
        for (i, a) in specials.iter().enumerate() {
            for b in &specials[i..] {
                samples.push((t, *a));
                samples.push((t + 15_000, *b));
                t += 30_000;
            }
        }
        round_trip(&samples);
    }

    #[test]
    fn impossible_states_are_refused() {
        let mut c = XorChunk::new();
        c.append(1_000, 1.0).unwrap();
        c.append(2_000, 3.5).unwrap();
        let good = c.state();
        assert!(XorChunk::from_state(c.bytes().to_vec(), good).is_ok());
        for bad in [
            XorState { free: 8, ..good },
            XorState {
                leading: 32,
                ..good
            },
            XorState {
                leading: 20,
                trailing: 44,
                ..good
            },
        ] {
            assert!(
                XorChunk::from_state(c.bytes().to_vec(), bad).is_err(),
                "{bad:?}"
            );
        }
        assert!(XorChunk::from_state(vec![0, 1], good).is_err());
        assert!(XorChunk::from_state(vec![0, 0, 0], good).is_err());
    }

    #[test]
    fn random_values_and_jittered_timestamps() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..50 {
            let mut t = (rng.next() as i64) >> (round % 40);
            let mut samples = Vec::new();
            for _ in 0..(rng.next() % 300) {
                let step = match rng.next() % 10 {
                    0 => (rng.next() % (1 << 40)) as i64,
                    1 => (rng.next() % 1_000_000) as i64,
                    2 => 0,
                    _ => 15_000 + (rng.next() % 200) as i64 - 100,
                };
                t = t.wrapping_add(step.max(1));
                let v = match rng.next() % 6 {
                    0 => f64::from_bits(rng.next()),
                    1 => (rng.next() % 1000) as f64,
                    2 => f64::from_bits(STALE_NAN_BITS),
                    _ => samples.last().map_or(0.0, |&(_, v): &(i64, f64)| v + 0.5),
                };
                samples.push((t, v));
            }
            round_trip(&samples);
        }
    }

    #[test]
    fn dod_bucket_edges() {
        let mut samples = vec![(0, 0.0), (1_000_000, 0.0)];
        let mut delta = 1_000_000i64;
        let mut t = 1_000_000i64;
        for dod in [
            8192,
            -8191,
            8193,
            -8192,
            65536,
            -65535,
            65537,
            -65536,
            524_288,
            -524_287,
            524_289,
            -524_288,
            1 << 40,
            -(1 << 39),
        ] {
            delta += dod;
            t += delta;
            samples.push((t, 1.0));
        }
        round_trip(&samples);
    }

    #[test]
    fn negative_and_extreme_timestamps() {
        round_trip(&[
            (-1_000_000, 1.0),
            (-985_000, 2.0),
            (-970_000, 3.0),
            (0, 4.0),
        ]);
        round_trip(&[(i64::MIN + 1, 1.0), (0, 2.0), (i64::MAX, 3.0)]);
    }

    #[test]
    fn first_t_reads_the_first_timestamp_back() {
        assert_eq!(XorChunk::new().first_t(), None);
        for t0 in [0, 1, -1, 63, -64, 1_700_000_000_000, i64::MIN, i64::MAX] {
            let mut c = XorChunk::new();
            c.append(t0, 1.0).unwrap();
            assert_eq!(c.first_t(), Some(t0), "{t0}");
            if t0 < i64::MAX {
                c.append(t0 + 1, 2.0).unwrap();
                assert_eq!(c.first_t(), Some(t0), "{t0}");
            }
        }
    }

    #[test]
    fn sizes_match_prometheus() {
        // A constant series at 15 s: 2 bits per sample after the first two.
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 15_000, 1.0))
            .collect();
        let c = round_trip(&samples);
        // Header 2 + varint t0 6 + v0 8 + uvarint 15000 2 = 18 bytes, then
        // 1 bit (value of sample 1) + 118 * 2 bits = 237 bits = 30 bytes.
        assert_eq!(c.bytes().len(), 48);
        let per_sample = (c.bytes().len() - 18) as f64 / 120.0;
        assert!((0.2..=0.4).contains(&per_sample), "{per_sample}");

        // A counter increasing by a small integer each scrape, as Ray's are.
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 15_000, (1000 + i * 3) as f64))
            .collect();
        let c = round_trip(&samples);
        let per_sample = c.bytes().len() as f64 / 120.0;
        assert!(per_sample < 2.5, "{per_sample}");
    }

    #[test]
    fn known_bytes() {
        // Checked by hand against the layout in docs/format/chunk.md.
        let mut c = XorChunk::new();
        c.append(1, 1.0).unwrap();
        c.append(3, 1.0).unwrap();
        c.append(5, 1.0).unwrap();
        // Header 3; varint(1) = 0x02; 1.0 = 0x3ff0000000000000; uvarint(2) = 0x02;
        // value bit 0; dod bit 0; value bit 0.
        assert_eq!(
            c.bytes(),
            &[0, 3, 0x02, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x02, 0b0000_0000]
        );
    }

    #[test]
    fn seek_and_truncated_bytes() {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (i * 10, i as f64)).collect();
        let c = round_trip(&samples);
        let mut it = c.iter();
        assert_eq!(it.seek(95), Some((100, 10.0)));
        assert_eq!(it.seek(50), Some((100, 10.0)));
        assert_eq!(it.next(), Some((110, 11.0)));
        assert_eq!(it.seek(10_000), None);

        let bytes = c.bytes();
        let mut it = XorIter::new(&bytes[..bytes.len() - 5]);
        assert!(it.by_ref().count() < 50);
        assert!(it.is_corrupt());
        assert!(XorChunk::from_bytes(bytes[..bytes.len() - 5].to_vec()).is_err());
    }
}
