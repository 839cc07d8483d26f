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
    #[inline]
    pub(crate) fn write_bits(&mut self, value: u64, nbits: u8) {
        debug_assert!(nbits <= 64);
        if nbits == 0 {
            return;
        }
        let mut v = value << (64 - u32::from(nbits));
        let mut n = nbits;
        while n >= 8 {
            self.write_byte((v >> 56) as u8);
            v <<= 8;
            n -= 8;
        }
        while n > 0 {
            self.write_bit(v >> 63 == 1);
            v <<= 1;
            n -= 1;
        }
    }

    /// Free bits left in the last byte, for [`BitWriter::from_parts`].
    #[cfg(test)]
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

    #[inline]
    fn refill(&mut self) {
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

    /// Reads `nbits` (at most 64) bits as the low bits of the result.
    #[inline]
    pub(crate) fn read_bits(&mut self, nbits: u8) -> Option<u64> {
        let n = u32::from(nbits);
        debug_assert!(n <= 64);
        if n == 0 {
            return Some(0);
        }
        if n > 56 {
            // The window may not hold this many bits at once; read in two parts.
            let hi = self.read_bits(nbits - 32)?;
            let lo = self.read_bits(32)?;
            return Some(hi << 32 | lo);
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn msb_first_layout() {
        let mut w = BitWriter::with_header(0, 0);
        w.write_bits(0b10, 2);
        w.write_bits(0x3fff, 14);
        w.write_bit(true);
        assert_eq!(w.bytes(), &[0b1011_1111, 0xff, 0b1000_0000]);
        assert_eq!(w.free_bits(), 7);
    }
}
