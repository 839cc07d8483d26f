//! Chunk encodings: how one series' samples are compressed into bytes.
//!
//! Two encodings (`docs/format/chunk.md`): the Gorilla XOR chunk, which the
//! head appends to, and the decimal chunk (two versions), which only
//! persisted chunks use when it is smaller. This module knows nothing of series, labels or
//! locking.

mod bstream;
mod decimal;
mod xor;

pub use decimal::DecimalIter;
pub(crate) use decimal::nearest_int;
pub use xor::{XorAppender, XorChunk, XorIter, XorState};

/// Samples taken at once that each repeat the one read before them, time
/// step and value alike: `len` samples at `first`, `first + step`, … (see
/// [`XorIter::take_repeats`]). A histogram bucket that did not change, as
/// most do not at any one scrape, is a long run of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeats {
    pub first: i64,
    pub step: i64,
    pub len: u32,
}

impl Repeats {
    pub(crate) const NONE: Repeats = Repeats {
        first: 0,
        step: 0,
        len: 0,
    };
}

/// How many of the times `base + step`, `base + 2 * step`, … (at most
/// `left` of them) are at most `maxt`; none for a step that does not
/// advance.
#[inline]
pub(crate) fn repeats_until(base: i64, step: i64, maxt: i64, left: u16) -> u32 {
    if step <= 0 {
        return 0;
    }
    let Some(room) = maxt.checked_sub(base) else {
        return 0;
    };
    let left = i64::from(left);
    // Most chunks end inside the range: no division for them.
    if step.checked_mul(left).is_some_and(|span| span <= room) {
        return left as u32;
    }
    (room.max(0) / step).min(left) as u32
}

/// The encoding byte that precedes a chunk in its persisted form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    Xor = 1,
    /// Decimal values, delta-of-delta timestamps: written before grid
    /// timestamps came, still read.
    Decimal = 2,
    /// Grid timestamps with decimal values, or with XOR's value code for
    /// values that are no decimals: what the chunk store writes.
    Grid = 3,
}

impl Encoding {
    pub fn from_u8(b: u8) -> Result<Encoding, Error> {
        match b {
            1 => Ok(Encoding::Xor),
            2 => Ok(Encoding::Decimal),
            3 => Ok(Encoding::Grid),
            other => Err(Error::UnknownEncoding(other)),
        }
    }
}

/// Writes a closed XOR chunk into `out` in its smallest form: as it is, or
/// re-encoded as a grid chunk (`decimal.rs`, second version). Returns the
/// form written.
pub fn compact(xor: &[u8], out: &mut Vec<u8>) -> Encoding {
    compact_with(xor, out, &mut Vec::new())
}

/// [`compact`] with the decoded samples in `samples`, a buffer the caller
/// keeps for the next chunk: a flush compacts a million chunks, and
/// collecting each one's samples into a new vector grew it from nothing
/// seven times a chunk (a fifth of the compaction's time).
pub fn compact_with(xor: &[u8], out: &mut Vec<u8>, samples: &mut Vec<(i64, u64)>) -> Encoding {
    samples.clear();
    samples.reserve(num_samples(xor));
    let mut it = XorIter::new(xor);
    samples.extend(it.by_ref().map(|(t, v)| (t, v.to_bits())));
    if it.is_corrupt() {
        out.clear();
        out.extend_from_slice(xor);
        return Encoding::Xor;
    }
    smaller_form(samples, xor, out)
}

/// Most samples [`merge`] puts in one chunk. Reading a sample decodes its
/// chunk from the start: 4,096 samples keep that under about 30 µs, and hold
/// a 2-hour window at any scrape interval of 2 s or more.
pub const MERGED_MAX_SAMPLES: usize = 4096;

/// The number of samples of a chunk in either encoding (both start with it).
pub fn num_samples(bytes: &[u8]) -> usize {
    bytes
        .get(..2)
        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])))
}

/// Writes the samples of several persisted chunks, in time order, as one
/// chunk in its smallest form, as [`compact`] does; returns the form written. Fails on
/// a corrupt chunk, on timestamps that do not increase from one chunk to the
/// next, and on more than [`MERGED_MAX_SAMPLES`] samples, writing nothing.
pub fn merge(parts: &[(Encoding, &[u8])], out: &mut Vec<u8>) -> Result<Encoding, Error> {
    let mut samples: Vec<(i64, u64)> =
        Vec::with_capacity(parts.iter().map(|p| num_samples(p.1)).sum());
    for &(encoding, bytes) in parts {
        let mut it = SampleIter::new(encoding, bytes);
        for (t, v) in it.by_ref() {
            if samples.last().is_some_and(|&(last, _)| t <= last) {
                return Err(Error::Corrupt);
            }
            samples.push((t, v.to_bits()));
        }
        if it.is_corrupt() {
            return Err(Error::Corrupt);
        }
    }
    if samples.len() > MERGED_MAX_SAMPLES {
        return Err(Error::Full);
    }
    // Parts that were all smaller as decimals are as one, at the largest of
    // their scales: no XOR form to compare, no scale to search for.
    let scales: Option<Vec<u8>> = parts
        .iter()
        .map(|&(encoding, bytes)| match encoding {
            Encoding::Xor => None,
            Encoding::Decimal | Encoding::Grid => {
                bytes.get(2).copied().filter(|&k| k <= decimal::MAX_SCALE)
            }
        })
        .collect();
    if let Some(scale) = scales.and_then(|s| s.into_iter().max())
        && let Some(bytes) = decimal::encode(&samples, scale, usize::MAX, decimal::Times::Grid)
    {
        out.clear();
        out.extend_from_slice(&bytes);
        return Ok(Encoding::Grid);
    }
    let mut xor = XorChunk::with_capacity(samples.len() * 2 + 16);
    for &(t, v) in &samples {
        xor.append(t, f64::from_bits(v))?;
    }
    Ok(smaller_form(&samples, xor.bytes(), out))
}

/// Writes `samples`, whose XOR form is `xor`, into `out` as a grid chunk
/// when that is smaller, as `xor` otherwise.
fn smaller_form(samples: &[(i64, u64)], xor: &[u8], out: &mut Vec<u8>) -> Encoding {
    out.clear();
    // Decimal values if they are decimals, XOR's values otherwise (trying
    // both would cost a third more for a chunk and win nearly never); either
    // only if smaller than the XOR chunk.
    let scale = decimal::choose_scale(samples).unwrap_or(decimal::XOR_VALUES);
    let mut best = None;
    if !samples.is_empty() {
        best = decimal::encode(samples, scale, xor.len() - 1, decimal::Times::Grid);
        if best.is_none() && scale != decimal::XOR_VALUES {
            best = decimal::encode(
                samples,
                decimal::XOR_VALUES,
                xor.len() - 1,
                decimal::Times::Grid,
            );
        }
    }
    match best {
        Some(bytes) => {
            out.extend_from_slice(&bytes);
            Encoding::Grid
        }
        None => {
            out.extend_from_slice(xor);
            Encoding::Xor
        }
    }
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
            Encoding::Grid => SampleIter::Decimal(DecimalIter::grid(bytes)),
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
    use crate::testing::Rng;

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

    /// An iterator whose runs of repeats can be taken at once.
    trait Runs {
        fn runs(&mut self, maxt: i64) -> Repeats;
        fn changed(&mut self) -> Option<(i64, f64)>;
    }
    impl Runs for XorIter<'_> {
        fn runs(&mut self, maxt: i64) -> Repeats {
            self.take_repeats(maxt)
        }
        fn changed(&mut self) -> Option<(i64, f64)> {
            self.next_changed()
        }
    }
    impl Runs for DecimalIter<'_> {
        fn runs(&mut self, maxt: i64) -> Repeats {
            self.take_repeats(maxt)
        }
        fn changed(&mut self) -> Option<(i64, f64)> {
            self.next_changed()
        }
    }

    /// The samples with `mint <= t <= maxt`, read with runs taken at once
    /// after every sample (before `mint` as well as in range), as the head's
    /// `push_range` reads them.
    fn by_runs(mut it: impl Runs, mint: i64, maxt: i64) -> Vec<(i64, u64)> {
        let mut out = Vec::new();
        while let Some((t, v)) = it.changed() {
            if t > maxt {
                break;
            }
            if t >= mint {
                out.push((t, v.to_bits()));
            }
            let limit = if t < mint { mint - 1 } else { maxt };
            let run = it.runs(limit);
            for k in 0..i64::from(run.len) {
                let rt = run.first + k * run.step;
                assert!(rt <= limit, "{rt} past {limit}");
                if mint <= rt && rt <= maxt {
                    out.push((rt, v.to_bits()));
                }
            }
        }
        out
    }

    /// Samples with long runs of repeats between changes of every kind:
    /// NaN and staleness markers, ±0, decimals, raw bits, timestamps on an
    /// interval with jitter, gaps, and steps of every delta-of-delta size.
    fn runs_of_samples(rng: &mut Rng, n: usize) -> Vec<(i64, f64)> {
        let mut next = || rng.next();
        let mut t = (next() % 2_000_000_000_000) as i64 - 1_000_000_000_000;
        let mut step = [15_000, 10_000, 1, 60_000][(next() % 4) as usize];
        let mut v = 0.0;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let r = next();
            // A run of repeats, then one change of time, value or both.
            for _ in 0..(r % 40) {
                if out.len() == n {
                    break;
                }
                t += step;
                out.push((t, v));
            }
            match next() % 8 {
                0 if step > 10 => t += (next() % 11) as i64 - 5,
                1 => step += (next() % 20_000) as i64,
                2 => t += 1 << (next() % 41),
                3 => step = (step / 2).max(1),
                _ => {}
            }
            v = match next() % 10 {
                0 => f64::NAN,
                1 => f64::from_bits(crate::model::STALE_NAN_BITS),
                2 => 0.0,
                3 => -0.0,
                4 => f64::from_bits(next()),
                5 => (next() % 1000) as f64 / 100.0,
                6 => -1e300,
                _ => v + (next() % 5) as f64,
            };
            t += step;
            out.push((t, v));
        }
        out.truncate(n);
        out
    }

    /// Taking runs of repeats at once reads the same samples, bit for
    /// bit, as decoding one by one, in every encoding and for any range.
    #[test]
    fn runs_of_repeats_read_like_single_samples() {
        let mut rng = Rng::seeded(
            "runs_of_repeats_read_like_single_samples",
            0x2545_F491_4F6C_DD1D,
        );
        for round in 0..300 {
            let n = [0, 1, 2, 3, 130, 600][round % 6];
            let samples = runs_of_samples(&mut rng, n);
            let bits: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            let xor = xor_of(&samples);
            let scale = decimal::choose_scale(&bits).unwrap_or(0);
            let forms = [
                (Encoding::Xor, xor.bytes().to_vec()),
                (
                    Encoding::Decimal,
                    decimal::encode(&bits, scale, usize::MAX, decimal::Times::Dod).expect("fits"),
                ),
                (
                    Encoding::Grid,
                    decimal::encode(&bits, scale, usize::MAX, decimal::Times::Grid).expect("fits"),
                ),
                (
                    Encoding::Grid,
                    decimal::encode(&bits, decimal::XOR_VALUES, usize::MAX, decimal::Times::Grid)
                        .expect("fits"),
                ),
            ];
            let (lo, hi) = (
                bits.first().map_or(0, |s| s.0),
                bits.last().map_or(0, |s| s.0),
            );
            let mut ranges = vec![(i64::MIN, i64::MAX), (hi, lo), (lo, lo), (hi, hi)];
            for _ in 0..6 {
                let x = rng.next();
                let span = (hi - lo).max(1) as u64 + 20;
                let a = lo - 10 + (x % span) as i64;
                let b = lo - 10 + ((x >> 32) % span) as i64;
                ranges.push((a.min(b), a.max(b)));
                if let Some(&(t, _)) = bits.get((x % 97) as usize % bits.len().max(1)) {
                    ranges.push((t, t + (x % 3) as i64 * 15_000));
                    ranges.push((t + 1, i64::MAX));
                }
            }
            for (encoding, bytes) in &forms {
                let all = read_back(*encoding, bytes);
                assert_eq!(all, bits, "{encoding:?}");
                for &(mint, maxt) in &ranges {
                    let want: Vec<(i64, u64)> = all
                        .iter()
                        .copied()
                        .filter(|&(t, _)| mint <= t && t <= maxt)
                        .collect();
                    let got = match encoding {
                        Encoding::Xor => by_runs(XorIter::new(bytes), mint, maxt),
                        Encoding::Decimal => by_runs(DecimalIter::new(bytes), mint, maxt),
                        Encoding::Grid => by_runs(DecimalIter::grid(bytes), mint, maxt),
                    };
                    assert_eq!(got, want, "{encoding:?} [{mint}, {maxt}], round {round}");
                }
            }
        }
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
        for (samples, want) in [(decimals, Encoding::Grid), (noise, Encoding::Xor)] {
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
        assert_eq!(compact(xor.bytes(), &mut out), Encoding::Grid);
        let back = read_back(Encoding::Grid, &out);
        assert_eq!(back.last().map(|s| s.1), Some(0x7ff0_0000_0000_0002));
        assert_eq!(back.len(), 61);
    }

    #[test]
    fn floats_that_are_no_decimals_keep_xor_values_on_grid_timestamps() {
        // A histogram's sum of seconds, scraped every 15 s, one scrape in
        // seven a few milliseconds late.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut sum = 0.0;
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                sum += (x >> 11) as f64 / (1u64 << 53) as f64;
                let late = if x.is_multiple_of(7) {
                    (x % 5) as i64 + 1
                } else {
                    0
                };
                (i * 15_000 + late, sum)
            })
            .collect();
        let xor = xor_of(&samples);
        let mut out = Vec::new();
        assert_eq!(compact(xor.bytes(), &mut out), Encoding::Grid);
        assert_eq!(out[2], decimal::XOR_VALUES);
        assert!(
            out.len() < xor.bytes().len(),
            "{} vs {}",
            out.len(),
            xor.bytes().len()
        );
        let bits: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(read_back(Encoding::Grid, &out), bits);
    }

    #[test]
    fn merge_joins_chunks_in_order_and_refuses_overlaps_and_excess() {
        let a: Vec<(i64, f64)> = (0..120).map(|i| (i * 15_000, (i / 3) as f64)).collect();
        let b: Vec<(i64, f64)> = (120..240)
            .map(|i| (i * 15_000 + 3, f64::from_bits(0x7ff0_0000_0000_0002)))
            .collect();
        let c: Vec<(i64, f64)> = (240..300).map(|i| (i * 15_000, 1.0 / i as f64)).collect();
        let (xa, xb, xc) = (xor_of(&a), xor_of(&b), xor_of(&c));
        let mut ca = Vec::new();
        let ea = compact(xa.bytes(), &mut ca);
        let parts = [
            (ea, &ca[..]),
            (Encoding::Xor, xb.bytes()),
            (Encoding::Xor, xc.bytes()),
        ];
        let mut out = Vec::new();
        let enc = merge(&parts, &mut out).expect("merges");
        let want: Vec<(i64, u64)> = a
            .iter()
            .chain(&b)
            .chain(&c)
            .map(|&(t, v)| (t, v.to_bits()))
            .collect();
        assert_eq!(read_back(enc, &out), want);
        assert_eq!(num_samples(&out), 300);
        assert!(merge(&[(Encoding::Xor, xb.bytes()), (ea, &ca[..])], &mut out).is_err());
        let big: Vec<(i64, f64)> = (0..MERGED_MAX_SAMPLES as i64 - 100)
            .map(|i| (i, 0.0))
            .collect();
        let xbig = xor_of(&big);
        let late: Vec<(i64, f64)> = (0..101).map(|i| ((1 << 20) + i, 1.0)).collect();
        let xlate = xor_of(&late);
        assert!(matches!(
            merge(
                &[
                    (Encoding::Xor, xbig.bytes()),
                    (Encoding::Xor, xlate.bytes())
                ],
                &mut out
            ),
            Err(Error::Full)
        ));
    }

    #[test]
    fn seek_works_in_both_encodings() {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (i * 10, i as f64 * 0.5)).collect();
        let xor = xor_of(&samples);
        let mut out = Vec::new();
        let enc = compact(xor.bytes(), &mut out);
        assert_eq!(enc, Encoding::Grid);
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
