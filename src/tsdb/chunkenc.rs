//! Chunk encodings: how one series' samples are compressed into bytes.
//!
//! Two encodings (`docs/format/chunk.md`): the Gorilla XOR chunk, which the
//! head appends to, and the decimal chunk, which only persisted chunks use
//! when it is smaller. This module knows nothing of series, labels or
//! locking.

mod bstream;
mod decimal;
mod xor;

pub use decimal::DecimalIter;
pub use xor::{XorChunk, XorIter};

/// The encoding byte that precedes a chunk in its persisted form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    Xor = 1,
    Decimal = 2,
}

impl Encoding {
    pub fn from_u8(b: u8) -> Result<Encoding, Error> {
        match b {
            1 => Ok(Encoding::Xor),
            2 => Ok(Encoding::Decimal),
            other => Err(Error::UnknownEncoding(other)),
        }
    }
}

/// Writes a closed XOR chunk into `out` in the smaller of its two forms:
/// as it is, or re-encoded as a decimal chunk. Returns the form written.
pub fn compact(xor: &[u8], out: &mut Vec<u8>) -> Encoding {
    out.clear();
    let mut it = XorIter::new(xor);
    let samples: Vec<(i64, u64)> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
    if !it.is_corrupt()
        && !samples.is_empty()
        && let Some(scale) = decimal::choose_scale(&samples)
        && let Some(bytes) = decimal::encode(&samples, scale, xor.len() - 1)
    {
        out.extend_from_slice(&bytes);
        return Encoding::Decimal;
    }
    out.extend_from_slice(xor);
    Encoding::Xor
}

/// The samples of a chunk in either encoding, in order.
#[derive(Debug, Clone)]
pub enum SampleIter<'a> {
    Xor(XorIter<'a>),
    Decimal(DecimalIter<'a>),
}

impl<'a> SampleIter<'a> {
    pub fn new(encoding: Encoding, bytes: &'a [u8]) -> SampleIter<'a> {
        match encoding {
            Encoding::Xor => SampleIter::Xor(XorIter::new(bytes)),
            Encoding::Decimal => SampleIter::Decimal(DecimalIter::new(bytes)),
        }
    }

    /// Advances to the first sample with timestamp `>= t` and returns it.
    pub fn seek(&mut self, t: i64) -> Option<(i64, f64)> {
        match self {
            SampleIter::Xor(it) => it.seek(t),
            SampleIter::Decimal(it) => it.seek(t),
        }
    }

    /// Whether decoding stopped because the bytes were malformed.
    pub fn is_corrupt(&self) -> bool {
        match self {
            SampleIter::Xor(it) => it.is_corrupt(),
            SampleIter::Decimal(it) => it.is_corrupt(),
        }
    }
}

impl Iterator for SampleIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        match self {
            SampleIter::Xor(it) => it.next(),
            SampleIter::Decimal(it) => it.next(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("chunk is full")]
    Full,
    #[error("chunk is corrupt")]
    Corrupt,
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xor_of(samples: &[(i64, f64)]) -> XorChunk {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v).expect("room");
        }
        c
    }

    fn read_back(encoding: Encoding, bytes: &[u8]) -> Vec<(i64, u64)> {
        SampleIter::new(encoding, bytes)
            .map(|(t, v)| (t, v.to_bits()))
            .collect()
    }

    #[test]
    fn compact_picks_decimal_for_decimals_and_keeps_xor_otherwise() {
        let decimals: Vec<(i64, f64)> = (0..120)
            .map(|i| (i * 15_000, ((i * 37) % 101) as f64 / 10.0))
            .collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                x = x.wrapping_mul(0x5851_F42D_4C95_7F2D).wrapping_add(1);
                (i * 15_000, (x >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect();
        for (samples, want) in [(decimals, Encoding::Decimal), (noise, Encoding::Xor)] {
            let xor = xor_of(&samples);
            let mut out = Vec::new();
            let got = compact(xor.bytes(), &mut out);
            assert_eq!(got, want);
            assert!(out.len() <= xor.bytes().len());
            let bits: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            assert_eq!(read_back(got, &out), bits);
        }
    }

    #[test]
    fn a_staleness_marker_keeps_the_decimal_form() {
        let mut samples: Vec<(i64, f64)> = (0..60).map(|i| (i * 15_000, i as f64)).collect();
        samples.push((60 * 15_000, f64::from_bits(0x7ff0_0000_0000_0002)));
        let xor = xor_of(&samples);
        let mut out = Vec::new();
        assert_eq!(compact(xor.bytes(), &mut out), Encoding::Decimal);
        let back = read_back(Encoding::Decimal, &out);
        assert_eq!(back.last().map(|s| s.1), Some(0x7ff0_0000_0000_0002));
        assert_eq!(back.len(), 61);
    }

    #[test]
    fn seek_works_in_both_encodings() {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (i * 10, i as f64 * 0.5)).collect();
        let xor = xor_of(&samples);
        let mut out = Vec::new();
        let enc = compact(xor.bytes(), &mut out);
        assert_eq!(enc, Encoding::Decimal);
        for (encoding, bytes) in [(Encoding::Xor, xor.bytes()), (enc, &out[..])] {
            let mut it = SampleIter::new(encoding, bytes);
            assert_eq!(it.seek(95), Some((100, 5.0)));
            assert_eq!(it.seek(0), Some((100, 5.0)));
            assert_eq!(it.next(), Some((110, 5.5)));
            assert_eq!(it.seek(10_000), None);
            assert!(!it.is_corrupt());
        }
    }
}
