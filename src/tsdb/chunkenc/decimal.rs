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
//!
//! Two versions: the first (encoding 2) writes timestamps as
//! delta-of-deltas and value deltas in fixed fields; the second (encoding 3,
//! what the chunk store writes now) measures timestamps against a grid of
//! the chunk's usual interval, where a scrape a few milliseconds late costs
//! one code instead of three, sizes its value fields per chunk, and can keep
//! XOR's value code for values that are no decimals ([`XOR_VALUES`]).

use super::bstream::{BitReader, BitWriter};
use super::xor::{put_uvarint, put_varint, read_xor_value, unzigzag, write_xor_value};
use super::{Repeats, repeats_until};

/// Bytes before the bit stream: the big-endian sample count and the scale;
/// the second version adds the base width of its value codes.
const HEADER: usize = 3;
const GRID_HEADER: usize = 4;
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

/// Grid residual codes after `1`, the move bit and their prefix: the
/// zig-zag residual minus one in this many bits, then in 64.
const RESIDUAL_BITS: [u8; 3] = [4, 14, 24];

/// How a decimal chunk writes its timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Times {
    /// Delta-of-deltas (encoding 2).
    Dod,
    /// Residuals from a grid of the chunk's usual interval (encoding 3).
    Grid,
}

/// Value codes after their prefix: the zig-zag mantissa delta in this many
/// bits, then a 64-bit delta, then the raw value. Chosen on real Ray data
/// (Prometheus 2.42 golden data), where most deltas need 2 to 8 bits.
const DELTA_BITS: [u8; 6] = [4, 8, 13, 20, 27, 40];
/// The second version's value codes: the chunk's base width `k` (chosen per
/// chunk, at most [`MAX_WIDTH`]) plus these, then 64 bits. A chunk's changes
/// tend to be alike (a counter's steps, a gauge's random walk), so one width
/// fits most of them: a memory gauge's 26-bit steps cost 28 bits instead of
/// the first version's 33, a percentage's 11-bit ones 13 instead of 17.
const WIDTH_STEPS: [u8; 3] = [0, 4, 12];
const MAX_WIDTH: u8 = 40;
/// The scale byte of a second-version chunk whose values keep XOR's code
/// (full-precision floats such as histogram sums): its timestamps still
/// gain from the grid.
pub(crate) const XOR_VALUES: u8 = 0xff;

/// The mantissa of `v` at `scale` when `v` is exactly `m / 10^scale`, the
/// same division the reader does, compared by bits (so `-0.0`, NaN and
/// infinities are never decimals).
#[inline]
fn mantissa(v: f64, scale: u8) -> Option<i64> {
    let p = POW10[scale as usize];
    let x = v * p;
    if x.is_nan() || x.abs() > MAX_MANTISSA {
        return None;
    }
    let m = nearest_int(x)?;
    ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
}

/// `x` rounded to a nearest integer (a tie may go either way), or `None`
/// for NaN and beyond ±2^63, where `x as i64` would saturate.
///
/// `f64::round` is a call into libm on x86-64's baseline (no SSE4.1), and
/// a flush rounds every value of every chunk it moves at up to 16 scales,
/// a commit every logged value once: this is a conversion and a subtraction.
/// Every caller keeps the result only if dividing it back gives the same
/// bits, and an exact decimal is never within a rounding error of a tie, so
/// the ties' direction changes nothing.
#[inline]
pub(crate) fn nearest_int(x: f64) -> Option<i64> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if x.is_nan() || x.abs() > LIMIT {
        return None;
    }
    // Truncation; exact below 2^52, and above it every float is an integer
    // (`f` is 0). At 2^63 it saturates to `i64::MAX`, as `as` did before.
    let i = x as i64;
    let f = x - i as f64;
    Some(if f >= 0.5 {
        i + 1
    } else if f <= -0.5 {
        i - 1
    } else {
        i
    })
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

/// Encodes samples (timestamps increasing, values as bits) at `scale`,
/// with timestamps as `times` says; stops with `None` once the bytes exceed
/// `limit`.
pub(crate) fn encode(
    samples: &[(i64, u64)],
    scale: u8,
    limit: usize,
    times: Times,
) -> Option<Vec<u8>> {
    let num = u16::try_from(samples.len()).ok()?;
    // Values that are no decimals keep XOR's code (second version only).
    let xor_values = scale == XOR_VALUES;
    let codes = if xor_values {
        Vec::new()
    } else {
        value_codes(samples, scale)
    };
    let k = match times {
        Times::Grid if !xor_values => base_width(&codes),
        _ => 0,
    };
    let (widths, n_widths) = field_widths(times, k);
    let widths = &widths[..n_widths];
    let header_len = match times {
        Times::Dod => HEADER,
        Times::Grid => GRID_HEADER,
    };
    let mut w = BitWriter::with_header(header_len, limit.min(1 << 16));
    let header = w.bytes_mut();
    header[..2].copy_from_slice(&num.to_be_bytes());
    header[2] = scale;
    if times == Times::Grid {
        header[3] = k;
    }
    let (mut t_prev, mut t_delta) = (0i64, 0u64);
    let step = usual_interval(samples);
    let mut grid = samples.first().map_or(0, |s| s.0);
    let (mut v_prev, mut leading, mut trailing) = (0u64, 0xffu8, 0u8);
    for (i, &(t, vb)) in samples.iter().enumerate() {
        let mut buf = [0u8; 10];
        match (i, times) {
            (0, _) => {
                let n = put_varint(&mut buf, t);
                buf[..n].iter().for_each(|&b| w.write_byte(b));
                if times == Times::Grid && samples.len() > 1 {
                    // Increasing timestamps make it positive: no sign bit.
                    let n = put_uvarint(&mut buf, step as u64);
                    buf[..n].iter().for_each(|&b| w.write_byte(b));
                }
            }
            (_, Times::Grid) => {
                let next = samples.get(i + 1).map(|s| s.0);
                grid = write_grid_time(&mut w, t, grid, step, next);
            }
            (1, Times::Dod) => {
                t_delta = t.wrapping_sub(t_prev) as u64;
                let n = put_uvarint(&mut buf, t_delta);
                buf[..n].iter().for_each(|&b| w.write_byte(b));
            }
            (_, Times::Dod) => {
                let d = t.wrapping_sub(t_prev) as u64;
                write_dod(&mut w, d.wrapping_sub(t_delta) as i64);
                t_delta = d;
            }
        }
        t_prev = t;
        if xor_values {
            write_xor_value(&mut w, v_prev, vb, &mut leading, &mut trailing);
            v_prev = vb;
        } else {
            write_value(&mut w, codes[i], widths);
        }
        if w.bytes().len() > limit {
            return None;
        }
    }
    Some(w.into_bytes())
}

/// The field widths of the value codes, in order, and how many there are:
/// fixed in the first version, the base width `k` plus [`WIDTH_STEPS`] in
/// the second.
fn field_widths(times: Times, k: u8) -> ([u8; DELTA_BITS.len()], usize) {
    match times {
        Times::Dod => (DELTA_BITS, DELTA_BITS.len()),
        Times::Grid => {
            let mut widths = [0u8; DELTA_BITS.len()];
            for (w, d) in widths.iter_mut().zip(WIDTH_STEPS) {
                *w = k.min(MAX_WIDTH) + d;
            }
            (widths, WIDTH_STEPS.len())
        }
    }
}

/// How one value is written.
#[derive(Debug, Clone, Copy)]
enum ValueCode {
    /// The same bits as the previous value.
    Same,
    /// The zig-zag difference of its mantissa from the last one.
    Delta(u64),
    /// Its IEEE 754 bits, which are no decimal at the chunk's scale.
    Raw(u64),
}

/// The code of every value of a chunk, at `scale`.
fn value_codes(samples: &[(i64, u64)], scale: u8) -> Vec<ValueCode> {
    let (mut prev, mut m) = (0f64.to_bits(), 0i64);
    samples
        .iter()
        .map(|&(_, vb)| {
            let code = if vb == prev {
                ValueCode::Same
            } else if let Some(next) = mantissa(f64::from_bits(vb), scale) {
                let zz = zigzag(next.wrapping_sub(m));
                m = next;
                ValueCode::Delta(zz)
            } else {
                ValueCode::Raw(vb)
            };
            prev = vb;
            code
        })
        .collect()
}

/// The base width that makes a chunk's value codes smallest: counted from
/// how many deltas need each number of bits. The cost changes only where a
/// delta's length crosses a field's width, so only those widths are tried.
fn base_width(codes: &[ValueCode]) -> u8 {
    let mut by_len = [0usize; 65];
    for c in codes {
        if let ValueCode::Delta(zz) = c {
            by_len[(64 - zz.leading_zeros()) as usize] += 1;
        }
    }
    // On the stack: this runs for every chunk a flush moves.
    let mut found = [(0usize, 0usize); 65];
    let mut n_found = 0;
    for (len, &n) in by_len.iter().enumerate().filter(|(_, n)| **n > 0) {
        found[n_found] = (len, n);
        n_found += 1;
    }
    let lens = &found[..n_found];
    let cost = |k: u8| -> usize {
        lens.iter()
            .map(|&(len, n)| {
                let bits = WIDTH_STEPS
                    .iter()
                    .position(|d| len <= usize::from(k + d))
                    .map_or(WIDTH_STEPS.len() + 2 + 64, |p| {
                        p + 2 + usize::from(k + WIDTH_STEPS[p])
                    });
                n * bits
            })
            .sum()
    };
    let candidates = lens.iter().flat_map(|&(len, _)| {
        WIDTH_STEPS.iter().map(move |&d| {
            len.saturating_sub(usize::from(d))
                .min(usize::from(MAX_WIDTH)) as u8
        })
    });
    std::iter::once(0)
        .chain(candidates)
        .min_by_key(|&k| (cost(k), k))
        .unwrap_or(0)
}

/// Writes a value's code: `0` for the same bits; a delta after `p + 1` ones
/// and a zero in `widths[p]` bits, the first that holds it, or after one
/// more `1` in 64 bits; raw bits after one more `1` again, with no zero.
fn write_value(w: &mut BitWriter, code: ValueCode, widths: &[u8]) {
    match code {
        ValueCode::Same => w.write_bit(false),
        ValueCode::Delta(zz) if widths.iter().any(|&n| zz < 1 << n) => {
            write_sized(w, 1, zz, widths);
        }
        ValueCode::Delta(zz) => {
            let ones = widths.len() + 1;
            w.write_bits((1 << (ones + 1)) - 2, ones as u8 + 1);
            w.write_bits(zz, 64);
        }
        ValueCode::Raw(vb) => {
            let ones = widths.len() + 2;
            w.write_bits((1 << ones) - 1, ones as u8);
            w.write_bits(vb, 64);
        }
    }
}

/// The most frequent interval between consecutive samples (the scrape
/// interval), the smaller on a tie; 0 for fewer than two samples.
fn usual_interval(samples: &[(i64, u64)]) -> i64 {
    let delta = |p: &[(i64, u64)]| p[1].0.wrapping_sub(p[0].0);
    // Most chunks keep one interval: a majority needs no sort.
    if let Some(first) = samples.windows(2).next().map(delta) {
        let same = samples.windows(2).filter(|p| delta(p) == first).count();
        if same * 2 > samples.len() - 1 {
            return first;
        }
    }
    let mut deltas: Vec<i64> = samples.windows(2).map(delta).collect();
    deltas.sort_unstable();
    let (mut best, mut best_n) = (0, 0);
    for run in deltas.chunk_by(|a, b| a == b) {
        if run.len() > best_n {
            (best, best_n) = (run[0], run.len());
        }
    }
    best
}

/// Writes `t` against the grid point after `grid` and returns the grid
/// point `t` is measured from next. On the grid: `0`, and the grid moves to
/// `t`. Off it: `1`, the move bit, the residual. A scrape a few milliseconds
/// late leaves the grid where it was, so the one after it is on the grid
/// again; a lasting shift (a missed scrape, a restart) moves the grid, so
/// the encoder moves it when the next sample is nearer to `t`'s grid.
fn write_grid_time(w: &mut BitWriter, t: i64, grid: i64, step: i64, next: Option<i64>) -> i64 {
    let expected = grid.wrapping_add(step);
    let e = t.wrapping_sub(expected);
    if e == 0 {
        w.write_bit(false);
        return t;
    }
    let off = |from: i64| {
        next.map_or(0, |n| {
            n.wrapping_sub(from.wrapping_add(step)).unsigned_abs()
        })
    };
    let moves = next.is_some() && off(t) < off(expected);
    w.write_bit(true);
    w.write_bit(moves);
    write_sized(w, 0, zigzag(e) - 1, &RESIDUAL_BITS);
    if moves { t } else { expected }
}

/// The timestamp delta-of-delta. Most scrapes keep their interval to the
/// millisecond (a `0`); the rest are a few milliseconds off, which XOR's
/// smallest field (14 bits) would overpay, or a missed scrape.
fn write_dod(w: &mut BitWriter, dod: i64) {
    if dod == 0 {
        w.write_bit(false);
    } else {
        write_sized(w, 1, zigzag(dod), &DOD_BITS);
    }
}

/// Writes `zz` in the first of `sizes` that holds it, the `p`-th after
/// `ones + p` one bits and a zero; in 64 bits after `ones + sizes.len()` one
/// bits when none does.
fn write_sized(w: &mut BitWriter, ones: usize, zz: u64, sizes: &[u8]) {
    match sizes.iter().position(|&n| zz < 1 << n) {
        Some(p) => {
            let n = ones + p;
            w.write_bits((1 << (n + 1)) - 2, n as u8 + 1);
            w.write_bits(zz, sizes[p]);
        }
        None => {
            let n = ones + sizes.len();
            w.write_bits((1 << n) - 1, n as u8);
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
    times: Times,
    total: u16,
    read: u16,
    pow: f64,
    t: i64,
    t_delta: u64,
    // Grid timestamps: the grid point the next one is measured from, and
    // the interval.
    grid: i64,
    step: i64,
    // Field widths of the value codes, in order.
    widths: [u8; DELTA_BITS.len()],
    n_widths: usize,
    // Values in XOR's code, with its window.
    xor_values: bool,
    leading: u8,
    trailing: u8,
    v: u64,
    m: i64,
    corrupt: bool,
}

impl<'a> DecimalIter<'a> {
    /// Iterates over the bytes (header included) of a decimal chunk of the
    /// first version (encoding 2).
    pub fn new(bytes: &'a [u8]) -> DecimalIter<'a> {
        DecimalIter::with_times(bytes, Times::Dod)
    }

    /// Iterates over the bytes of a decimal chunk with grid timestamps
    /// (encoding 3).
    pub fn grid(bytes: &'a [u8]) -> DecimalIter<'a> {
        DecimalIter::with_times(bytes, Times::Grid)
    }

    fn with_times(bytes: &'a [u8], times: Times) -> DecimalIter<'a> {
        let (total, scale, width, stream) = match (times, bytes) {
            (Times::Dod, [a, b, k, rest @ ..]) => (u16::from_be_bytes([*a, *b]), *k, 0, rest),
            (Times::Grid, [a, b, k, w, rest @ ..]) => (u16::from_be_bytes([*a, *b]), *k, *w, rest),
            // Shorter than a header: nothing to read (corrupt unless empty).
            _ => (0, 0, u8::MAX, &[][..]),
        };
        let xor_values = times == Times::Grid && scale == XOR_VALUES;
        let corrupt =
            ((scale > MAX_SCALE && !xor_values) || width > MAX_WIDTH) && !bytes.is_empty();
        let (widths, n_widths) = field_widths(times, width);
        DecimalIter {
            r: BitReader::new(stream),
            times,
            total: if corrupt { 0 } else { total },
            read: 0,
            pow: POW10[usize::from(scale.min(MAX_SCALE))],
            t: 0,
            t_delta: 0,
            grid: 0,
            step: 0,
            widths,
            n_widths,
            xor_values,
            leading: 0xff,
            trailing: 0,
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

    /// [`super::XorIter::take_repeats`] for a decimal chunk: in either
    /// time code and either value code a repeat is two zero bits, on the
    /// grid (or the same delta) and the same value.
    #[inline(always)]
    pub fn take_repeats(&mut self, maxt: i64) -> Repeats {
        if self.read < 2 || !self.r.peek_zero_pair() {
            return Repeats::NONE;
        }
        let (base, step) = match self.times {
            Times::Grid => (self.grid, self.step),
            Times::Dod => (self.t, self.t_delta as i64),
        };
        let max = repeats_until(base, step, maxt, self.total - self.read);
        let len = self.r.take_zero_pairs(max);
        if len == 0 {
            return Repeats::NONE;
        }
        // Invariant: `read + len <= total` and the last time is at most
        // `maxt` (`repeats_until`), so neither overflows.
        self.read += len as u16;
        self.t = base.wrapping_add(step.wrapping_mul(i64::from(len)));
        if self.times == Times::Grid {
            self.grid = self.t;
        }
        Repeats {
            first: base.wrapping_add(step),
            step,
            len,
        }
    }

    /// Marks the chunk corrupt and ends it.
    #[cold]
    #[inline(never)]
    fn fail(&mut self) -> Option<(i64, f64)> {
        self.corrupt = true;
        self.read = self.total;
        None
    }

    #[inline(always)]
    fn read_dod(&mut self) -> Option<i64> {
        let ones = self.r.read_ones(DOD_BITS.len() as u32 + 1)? as usize;
        if ones == 0 {
            return Some(0);
        }
        let size = DOD_BITS.get(ones - 1).copied().unwrap_or(64);
        Some(unzigzag(self.r.read_bits(size)?))
    }

    #[inline(always)]
    fn read_grid_time(&mut self) -> Option<()> {
        let expected = self.grid.wrapping_add(self.step);
        if !self.r.read_bit()? {
            self.t = expected;
            self.grid = expected;
            return Some(());
        }
        let moves = self.r.read_bit()?;
        let ones = self.r.read_ones(RESIDUAL_BITS.len() as u32)? as usize;
        let size = RESIDUAL_BITS.get(ones).copied().unwrap_or(64);
        let zz = self.r.read_bits(size)?.wrapping_add(1);
        self.t = expected.wrapping_add(unzigzag(zz));
        self.grid = if moves { self.t } else { expected };
        Some(())
    }

    #[inline(always)]
    fn read_value(&mut self) -> Option<()> {
        if self.xor_values {
            return read_xor_value(
                &mut self.r,
                &mut self.v,
                &mut self.leading,
                &mut self.trailing,
            );
        }
        let widths = &self.widths[..self.n_widths];
        let raw = widths.len() + 2;
        let ones = self.r.read_ones(raw as u32)? as usize;
        if ones == 0 {
            return Some(());
        }
        if ones == raw {
            self.v = self.r.read_bits(64)?;
            return Some(());
        }
        let size = widths.get(ones - 1).copied().unwrap_or(64);
        self.m = self.m.wrapping_add(unzigzag(self.r.read_bits(size)?));
        self.v = (self.m as f64 / self.pow).to_bits();
        Some(())
    }
}

impl DecimalIter<'_> {
    /// The time of the first sample (and, for grid timestamps, the grid's
    /// interval) or of the second with delta-of-deltas: whole varints, out
    /// of the per-sample loop's way.
    #[cold]
    #[inline(never)]
    fn read_first_time(&mut self) -> Option<()> {
        match (self.read, self.times) {
            (0, Times::Grid) => self.r.read_uvarint().and_then(|ux| {
                self.t = unzigzag(ux);
                self.grid = self.t;
                if self.total > 1 {
                    self.step = self.r.read_uvarint()? as i64;
                }
                Some(())
            }),
            (_, Times::Grid) => self.read_grid_time(),
            (0, Times::Dod) => self.r.read_uvarint().map(|ux| self.t = unzigzag(ux)),
            (_, Times::Dod) => self.r.read_uvarint().map(|d| {
                self.t_delta = d;
                self.t = self.t.wrapping_add(d as i64);
            }),
        }
    }
}

impl Iterator for DecimalIter<'_> {
    type Item = (i64, f64);

    /// Inlined into the caller's loop (a chunk's samples are read in one
    /// loop), with the rare cases out of line.
    #[inline(always)]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.total {
            return None;
        }
        // After the first two samples, `0` (on time) then `0` (same
        // value), in either time code and either value code: a regular
        // series that did not change.
        if self.read >= 2 && self.r.take_zeros(2) {
            match self.times {
                Times::Grid => {
                    self.grid = self.grid.wrapping_add(self.step);
                    self.t = self.grid;
                }
                Times::Dod => self.t = self.t.wrapping_add(self.t_delta as i64),
            }
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

impl DecimalIter<'_> {
    /// [`Iterator::next`] without its test for a repeat
    /// ([`super::XorIter::next_changed`]).
    #[inline(always)]
    pub fn next_changed(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.total {
            return None;
        }
        self.next_coded()
    }

    /// A sample's time code and value code, whatever they are.
    #[inline(always)]
    fn next_coded(&mut self) -> Option<(i64, f64)> {
        let time = if self.read < 2 {
            self.read_first_time()
        } else {
            match self.times {
                Times::Grid => self.read_grid_time(),
                Times::Dod => self.read_dod().map(|dod| {
                    self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
                    self.t = self.t.wrapping_add(self.t_delta as i64);
                }),
            }
        };
        if time.and_then(|()| self.read_value()).is_none() {
            return self.fail();
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes in both versions, checks that both read back exactly, and
    /// returns the grid version's bytes.
    fn round_trip(samples: &[(i64, f64)]) -> Vec<u8> {
        let bits: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        let scale = choose_scale(&bits).unwrap_or(0);
        let dod = encode(&bits, scale, usize::MAX, Times::Dod).expect("encodes");
        let back: Vec<(i64, u64)> = DecimalIter::new(&dod)
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        assert_eq!(back, bits, "scale {scale}, delta-of-deltas");
        let grid = encode(&bits, scale, usize::MAX, Times::Grid).expect("encodes");
        let back: Vec<(i64, u64)> = DecimalIter::grid(&grid)
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        assert_eq!(back, bits, "scale {scale}, grid");
        let xor_values = encode(&bits, XOR_VALUES, usize::MAX, Times::Grid).expect("encodes");
        let back: Vec<(i64, u64)> = DecimalIter::grid(&xor_values)
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        assert_eq!(back, bits, "XOR values, grid");
        grid
    }

    #[test]
    fn grid_timestamps_pay_once_for_a_late_scrape_and_follow_shifts() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut t = 1_764_000_000_000i64;
        let mut samples = Vec::new();
        for i in 0..480i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += 15_000;
            // A lasting shift now and then (a missed scrape, a restart).
            if i % 100 == 99 {
                t += 15_000 + (x % 700) as i64;
            }
            // 15% of scrapes a few milliseconds late, or early.
            let late = if x % 100 < 15 { (x % 11) as i64 - 5 } else { 0 };
            samples.push((t + late, (i / 7) as f64));
        }
        // Timestamps far apart, and going back and forth, read back too.
        samples.push((t + (1 << 40), 1.0));
        samples.push((t + (1 << 40) + 1, 1.0));
        let grid = round_trip(&samples);
        let bits: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        let dod = encode(&bits, 0, usize::MAX, Times::Dod).expect("encodes");
        assert!(
            grid.len() * 10 < dod.len() * 8,
            "grid {} bytes, delta-of-deltas {}",
            grid.len(),
            dod.len()
        );
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

    /// `mantissa` as it was written with `f64::round`, which
    /// `nearest_int` replaces.
    fn mantissa_by_round(v: f64, scale: u8) -> Option<i64> {
        let p = POW10[scale as usize];
        let m = (v * p).round();
        if m.is_nan() || m.abs() > MAX_MANTISSA {
            return None;
        }
        let m = m as i64;
        ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
    }

    #[test]
    fn nearest_int_finds_every_mantissa_that_round_finds() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut decimals = 0;
        for i in 0..400_000u64 {
            let r = next();
            let scale = (i % 16) as u8;
            let v = match i % 6 {
                // Exact decimals at this scale, and at every other.
                0 => (r % 2_000_000_000) as f64 / POW10[scale as usize],
                1 => -((r % 10_000_000) as f64) / POW10[(r % 16) as usize],
                // Ties and near-ties of the product.
                2 => ((r % 100_000) as f64 + 0.5) / POW10[scale as usize],
                3 => f64::from_bits(r),
                // Near 2^53 and 2^63, where the integers thin out.
                4 => (1u64 << 53) as f64 + ((r % 64) as f64 - 32.0),
                _ => 9.2e18 + (r % 1000) as f64 * 1e3,
            };
            let want = mantissa_by_round(v, scale);
            decimals += usize::from(want.is_some());
            assert_eq!(
                mantissa(v, scale),
                want,
                "v {v:e} ({:#x}) scale {scale}",
                v.to_bits()
            );
        }
        assert!(decimals > 100_000, "only {decimals} decimals tried");
        for x in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            4_503_599_627_370_497.0,
        ] {
            let n = nearest_int(x).expect("in range");
            assert!((n as f64 - x).abs() <= 0.5, "{x}: {n}");
        }
        let top = 9_223_372_036_854_775_808.0;
        assert_eq!(nearest_int(top), Some(i64::MAX));
        assert_eq!(nearest_int(-top), Some(i64::MIN));
        for x in [f64::NAN, f64::INFINITY, -f64::INFINITY, 1e19, -1e300] {
            assert_eq!(nearest_int(x), None, "{x}");
        }
    }

    #[test]
    fn malformed_bytes_stop_with_corrupt() {
        let bytes = round_trip(&[(0, 1.5), (15_000, 2.5), (30_000, 3.5)]);
        for cut in 0..bytes.len() {
            let mut it = DecimalIter::grid(&bytes[..cut]);
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
