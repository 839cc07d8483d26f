//! Bit streams: an appending writer and a reader, most significant bit first.
//!
//! This file knows nothing of timestamps or values; `xor.rs` gives the bits
//! their meaning (see `docs/format/chunk.md`).

/// Appends bits to a byte buffer. The first `header` bytes are left alone so
/// that the chunk can keep its sample count there.
#[derive(Debug, Clone, Default)]
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    // Free bits in the last byte of `buf`; 0 means the next bit starts a new byte.
    free: u8,
}

impl BitWriter {
    pub(crate) fn with_header(header: usize, capacity: usize) -> BitWriter {
        let mut buf = Vec::with_capacity(capacity.max(header));
        buf.resize(header, 0);
        BitWriter { buf, free: 0 }
    }

    /// Resumes writing after the last bit of `buf`, which must have been
    /// written by a `BitWriter` that had `free` bits left in its last byte.
    pub(crate) fn from_parts(buf: Vec<u8>, free: u8) -> BitWriter {
        BitWriter { buf, free }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    #[inline]
    pub(crate) fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.buf.push(0);
            self.free = 8;
        }
        if bit && let Some(last) = self.buf.last_mut() {
            *last |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    #[inline]
    pub(crate) fn write_byte(&mut self, byte: u8) {
        if self.free == 0 {
            self.buf.push(byte);
            return;
        }
        let free = self.free;
        if let Some(last) = self.buf.last_mut() {
            *last |= byte >> (8 - free);
        }
        self.buf.push(byte << free);
    }

    /// Writes the low `nbits` bits of `value`, highest first.
    ///
    /// All bits are placed at once: the free bits of the last byte and the
    /// new ones form one big-endian word, whose whole bytes are appended.
    /// Writing bit by bit was the largest part of encoding a sample.
    #[inline]
    pub(crate) fn write_bits(&mut self, value: u64, nbits: u8) {
        debug_assert!(nbits <= 64);
        if nbits == 0 {
            return;
        }
        let n = u32::from(nbits);
        let free = u32::from(self.free);
        // The new bits, left-aligned in a 128-bit word, then shifted right
        // past the bits already used in the last byte.
        let bits = (u128::from(value) << (128 - n)) >> ((8 - free) % 8);
        let bytes = bits.to_be_bytes();
        let mut from = 0;
        if free > 0
            && let Some(last) = self.buf.last_mut()
        {
            *last |= bytes[0];
            from = 1;
        }
        if n <= free {
            self.free -= nbits;
            return;
        }
        // Bits used past the old last byte, in whole bytes.
        let spill = n - free;
        let new_bytes = spill.div_ceil(8) as usize;
        self.buf.extend_from_slice(&bytes[from..from + new_bytes]);
        self.free = ((8 - spill % 8) % 8) as u8;
    }

    /// Free bits left in the last byte, for [`BitWriter::from_parts`].
    pub(crate) fn free_bits(&self) -> u8 {
        self.free
    }
}

/// Reads bits from a byte slice through a 64-bit window.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    // Next byte of `data` to load into `window`.
    pos: usize,
    // Unread bits, left aligned: the next bit is bit 63.
    window: u64,
    valid: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader {
            data,
            pos: 0,
            window: 0,
            valid: 0,
        }
    }

    /// Fills the window with as many whole bytes as fit. Away from the
    /// end of the data one big-endian load does it, instead of a loop of
    /// byte loads that was a good part of decoding a chunk.
    #[inline(always)]
    fn refill(&mut self) {
        let Some(word) = self
            .data
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<8>())
        else {
            return self.refill_tail();
        };
        let bytes = (64 - self.valid) / 8;
        self.window |= u64::from_be_bytes(*word) >> self.valid;
        self.valid += bytes * 8;
        self.pos += bytes as usize;
        // Bits past `valid` came from the next byte: clear them, so that
        // bits below `valid` are always zero.
        if self.valid < 64 {
            self.window &= !(u64::MAX >> self.valid);
        }
    }

    /// [`BitReader::refill`] within the last 8 bytes, byte by byte.
    #[cold]
    #[inline(never)]
    fn refill_tail(&mut self) {
        while self.valid <= 56 {
            let Some(&b) = self.data.get(self.pos) else {
                return;
            };
            self.window |= u64::from(b) << (56 - self.valid);
            self.valid += 8;
            self.pos += 1;
        }
    }

    #[inline]
    pub(crate) fn read_bit(&mut self) -> Option<bool> {
        if self.valid == 0 {
            self.refill();
            if self.valid == 0 {
                return None;
            }
        }
        let bit = self.window >> 63 == 1;
        self.window <<= 1;
        self.valid -= 1;
        Some(bit)
    }

    /// Takes the next `n` (1 to 56) bits if they are all zero, and says
    /// whether it did; otherwise (or when fewer than `n` are left) takes
    /// nothing. A sample whose time and value both repeat the last step's
    /// is two zero bits in every chunk encoding: one test instead of two
    /// prefix reads.
    #[inline(always)]
    pub(crate) fn take_zeros(&mut self, n: u32) -> bool {
        debug_assert!((1..=56).contains(&n));
        if self.valid < n {
            self.refill();
            if self.valid < n {
                return false;
            }
        }
        if self.window >> (64 - n) != 0 {
            return false;
        }
        self.window <<= n;
        self.valid -= n;
        true
    }

    /// Takes the next `plen + n` bits (at most 56 together) if the first
    /// `plen` of them are `prefix`, and returns the `n` after it; takes
    /// nothing otherwise, or when fewer bits are left. A sample's most
    /// common codes, read in one test and one field instead of a read per
    /// prefix and field.
    #[inline(always)]
    pub(crate) fn take_after_prefix(&mut self, prefix: u64, plen: u32, n: u32) -> Option<u64> {
        debug_assert!((1..=8).contains(&plen) && prefix < 1 << plen);
        let total = plen + n;
        if total > 56 {
            return None;
        }
        if self.valid < total {
            self.refill();
            if self.valid < total {
                return None;
            }
        }
        if self.window >> (64 - plen) != prefix {
            return None;
        }
        // `n == 0` would shift by 64: no field then.
        let bits = (self.window << plen).checked_shr(64 - n).unwrap_or(0);
        self.window <<= total;
        self.valid -= total;
        Some(bits)
    }

    /// Whether the next two bits are zeros (false when fewer are left);
    /// takes nothing.
    #[inline(always)]
    pub(crate) fn peek_zero_pair(&mut self) -> bool {
        if self.valid < 2 {
            self.refill();
            if self.valid < 2 {
                return false;
            }
        }
        self.window >> 62 == 0
    }

    /// Takes up to `max` pairs of zero bits in a row and returns how many
    /// it took: a run of samples that each repeat the step before (see
    /// [`BitReader::take_zeros`]), counted from the window's leading zeros
    /// instead of one test a sample. Zeros past the end of the data are
    /// never taken; an odd zero before a one is left in place.
    #[inline]
    pub(crate) fn take_zero_pairs(&mut self, max: u32) -> u32 {
        let mut taken = 0;
        while taken < max {
            if self.valid < 56 {
                self.refill();
            }
            let valid = self.valid;
            // Bits past `valid` are zero: count only the loaded ones.
            let zeros = self.window.leading_zeros().min(valid);
            let pairs = (zeros / 2).min(max - taken);
            let bits = 2 * pairs;
            // A shift by 64 is out of range; the bits shifted out are zero.
            self.window = self.window.checked_shl(bits).unwrap_or(0);
            self.valid -= bits;
            taken += pairs;
            // A one ended the run inside the window, or nothing was left.
            if zeros < valid || pairs == 0 {
                break;
            }
        }
        taken
    }

    /// Reads up to `max` (at most 56) one bits and the zero that ends them
    /// if fewer than `max` came, and returns how many ones: the unary
    /// prefixes of the XOR encoding, read at once instead of bit by bit.
    #[inline(always)]
    pub(crate) fn read_ones(&mut self, max: u32) -> Option<u32> {
        debug_assert!(max <= 56);
        if self.valid < max {
            self.refill();
            if self.valid < max {
                return self.read_ones_tail(max);
            }
        }
        let ones = self.window.leading_ones().min(max);
        let used = (ones + 1).min(max);
        self.window <<= used;
        self.valid -= used;
        Some(ones)
    }

    /// [`BitReader::read_ones`] with fewer than `max` bits left, bit by bit.
    #[cold]
    #[inline(never)]
    fn read_ones_tail(&mut self, max: u32) -> Option<u32> {
        let mut ones = 0;
        while ones < max && self.read_bit()? {
            ones += 1;
        }
        Some(ones)
    }

    /// Reads `nbits` (at most 64) bits as the low bits of the result.
    #[inline(always)]
    pub(crate) fn read_bits(&mut self, nbits: u8) -> Option<u64> {
        let n = u32::from(nbits);
        debug_assert!(n <= 64);
        if n > 56 {
            // The window may not hold this many bits at once; read in two parts.
            let hi = self.read_short(n - 32)?;
            let lo = self.read_short(32)?;
            return Some(hi << 32 | lo);
        }
        self.read_short(n)
    }

    /// [`BitReader::read_bits`] for at most 56 bits, which one refill
    /// always makes room for.
    #[inline(always)]
    fn read_short(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if self.valid < n {
            self.refill();
            if self.valid < n {
                return None;
            }
        }
        let v = self.window >> (64 - n);
        self.window <<= n;
        self.valid -= n;
        Some(v)
    }

    /// Bits handed out so far.
    pub(crate) fn bits_consumed(&self) -> u64 {
        self.pos as u64 * 8 - u64::from(self.valid)
    }

    #[inline]
    pub(crate) fn read_byte(&mut self) -> Option<u8> {
        self.read_bits(8).map(|b| b as u8)
    }

    /// An unsigned varint (Go's `binary.Uvarint`) from the next bytes' worth
    /// of bits.
    pub(crate) fn read_uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.read_byte()?;
            if b < 0x80 {
                return Some(x | u64::from(b) << shift);
            }
            x |= u64::from(b & 0x7f) << shift;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Rng;

    #[test]
    fn bits_round_trip_across_byte_boundaries() {
        let mut w = BitWriter::with_header(2, 0);
        let fields: Vec<(u64, u8)> = (0..200u64)
            .map(|i| {
                let n = (i % 64 + 1) as u8;
                let v = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & (u64::MAX >> (64 - u32::from(n)));
                (v, n)
            })
            .collect();
        for &(v, n) in &fields {
            w.write_bits(v, n);
            w.write_bit(n % 2 == 0);
            w.write_byte(n);
        }
        let bytes = w.bytes();
        assert_eq!(&bytes[..2], &[0, 0]);
        let mut r = BitReader::new(&bytes[2..]);
        for &(v, n) in &fields {
            assert_eq!(r.read_bits(n), Some(v));
            assert_eq!(r.read_bit(), Some(n % 2 == 0));
            assert_eq!(r.read_byte(), Some(n));
        }
        // Only padding bits are left.
        while let Some(b) = r.read_bit() {
            assert!(!b);
        }
    }

    #[test]
    fn write_bits_equals_writing_bit_by_bit() {
        let mut rng = Rng::seeded(
            "write_bits_equals_writing_bit_by_bit",
            0x2545_f491_4f6c_dd1d,
        );
        let (mut fast, mut slow) = (BitWriter::with_header(2, 0), BitWriter::with_header(2, 0));
        for _ in 0..5000 {
            let x = rng.next();
            // Small widths often, so that many land inside the last byte;
            // the value's bits above the width must be ignored.
            let n = if x.is_multiple_of(3) {
                (x >> 8) % 8
            } else {
                (x >> 8) % 65
            } as u8;
            let v = x.rotate_left(17);
            fast.write_bits(v, n);
            for i in (0..n).rev() {
                slow.write_bit((v >> i) & 1 == 1);
            }
            assert_eq!(fast.free_bits(), slow.free_bits());
        }
        assert_eq!(fast.bytes(), slow.bytes());
    }

    /// `read_ones` and `read_bits` after the word-at-a-time refill agree
    /// with reading bit by bit, up to the end of the data and past it.
    #[test]
    fn prefixes_and_fields_read_like_single_bits() {
        let mut rng = Rng::seeded(
            "prefixes_and_fields_read_like_single_bits",
            0x9e37_79b9_7f4a_7c15,
        );
        for len in 0..40 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let x = rng.next();
                    // Mostly ones or zeros, so that prefixes run long.
                    match x % 3 {
                        0 => 0xff,
                        1 => 0,
                        _ => x as u8,
                    }
                })
                .collect();
            let (mut fast, mut slow) = (BitReader::new(&data), BitReader::new(&data));
            loop {
                let x = rng.next();
                if x.is_multiple_of(2) {
                    let max = (x >> 8) as u32 % 6 + 1;
                    let mut ones = 0;
                    let want = loop {
                        if ones == max {
                            break Some(ones);
                        }
                        match slow.read_bit() {
                            Some(true) => ones += 1,
                            Some(false) => break Some(ones),
                            None => break None,
                        }
                    };
                    let got = fast.read_ones(max);
                    assert_eq!(got, want, "len {len}");
                    if want.is_none() {
                        break;
                    }
                } else {
                    let n = ((x >> 8) % 65) as u8;
                    let want: Option<u64> = (0..n).try_fold(0u64, |acc, _| {
                        slow.read_bit().map(|b| acc << 1 | u64::from(b))
                    });
                    let got = fast.read_bits(n);
                    if want.is_none() {
                        assert_eq!(got, None);
                        break;
                    }
                    assert_eq!(got, want, "len {len}");
                }
                assert_eq!(fast.bits_consumed(), slow.bits_consumed());
            }
        }
    }

    /// `take_zero_pairs` takes what as many `take_zeros(2)` would, up to
    /// its limit, across refills and up to the end of the data.
    #[test]
    fn zero_pairs_are_taken_like_one_pair_at_a_time() {
        let mut rng = Rng::seeded(
            "zero_pairs_are_taken_like_one_pair_at_a_time",
            0x2545_f491_4f6c_dd1d,
        );
        for len in 0..48 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let x = rng.next();
                    // Mostly zeros, so that runs cross refills.
                    if x.is_multiple_of(4) {
                        x as u8 & 0x91
                    } else {
                        0
                    }
                })
                .collect();
            let (mut fast, mut slow) = (BitReader::new(&data), BitReader::new(&data));
            loop {
                let x = rng.next();
                let max = (x % 300) as u32;
                let mut want = 0;
                while want < max && slow.take_zeros(2) {
                    want += 1;
                }
                assert_eq!(fast.take_zero_pairs(max), want, "len {len}");
                assert_eq!(fast.peek_zero_pair(), slow.clone().take_zeros(2));
                assert_eq!(fast.bits_consumed(), slow.bits_consumed());
                // Step past what ended the run, a bit at a time.
                let (a, b) = (fast.read_bit(), slow.read_bit());
                assert_eq!(a, b);
                if a.is_none() {
                    break;
                }
            }
        }
    }

    /// `take_after_prefix` takes a prefix and a field exactly when
    /// reading them one after the other finds that prefix, and nothing
    /// otherwise.
    #[test]
    fn a_prefix_and_field_are_taken_only_together() {
        let mut rng = Rng::seeded(
            "a_prefix_and_field_are_taken_only_together",
            0x9e37_79b9_7f4a_7c15,
        );
        for len in 0..24 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let x = rng.next();
                    // Many `010` prefixes.
                    if x.is_multiple_of(2) {
                        0b0100_1001
                    } else {
                        x as u8
                    }
                })
                .collect();
            let mut r = BitReader::new(&data);
            loop {
                let x = rng.next();
                let n = (x % 60) as u32;
                let mut slow = r.clone();
                let want = match (slow.read_bits(3), slow.read_bits(n as u8)) {
                    (Some(0b010), Some(bits)) if n <= 53 => Some(bits),
                    _ => None,
                };
                let before = r.bits_consumed();
                let got = r.take_after_prefix(0b010, 3, n);
                assert_eq!(got, want, "len {len}, n {n}");
                if got.is_some() {
                    assert_eq!(r.bits_consumed(), slow.bits_consumed());
                } else {
                    assert_eq!(r.bits_consumed(), before);
                    if r.read_bit().is_none() {
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn msb_first_layout() {
        let mut w = BitWriter::with_header(0, 0);
        w.write_bits(0b10, 2);
        w.write_bits(0x3fff, 14);
        w.write_bit(true);
        assert_eq!(w.bytes(), &[0b1011_1111, 0xff, 0b1000_0000]);
        assert_eq!(w.free_bits(), 7);
    }

    #[test]
    fn take_zeros_takes_only_zeros_and_nothing_past_the_end() {
        // 00 01 00, then the padding of the last byte.
        let data = [0b0001_0000u8];
        let mut r = BitReader::new(&data);
        assert!(r.take_zeros(2));
        assert!(!r.take_zeros(2));
        assert_eq!(r.read_bits(2), Some(0b01));
        assert!(r.take_zeros(2));
        assert!(r.take_zeros(2));
        // Nothing is left: nothing is taken, and reads still end.
        assert!(!r.take_zeros(1));
        assert_eq!(r.read_bit(), None);
        // Across a refill of the window.
        let data = [0u8; 20];
        let mut r = BitReader::new(&data);
        for _ in 0..80 {
            assert!(r.take_zeros(2));
        }
        assert!(!r.take_zeros(2));
    }
}
