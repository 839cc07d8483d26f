//! Payload encodings of WAL and checkpoint records (`docs/format/wal.md`).
//!
//! Pure byte work: no files, no locks. Decoders return false/None on bytes
//! that do not parse, never panic.

use crate::model::{Label, Labels};
use crate::storage::SeriesRef;
use crate::tsdb::chunkenc::{XorState, nearest_int};

/// One chunk of a series in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointChunk {
    pub min_t: i64,
    pub max_t: i64,
    /// Owned, so that the open chunk's bytes become the head's without
    /// another copy.
    pub data: Vec<u8>,
}

/// One series with all its chunks, as a checkpoint holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointSeries {
    pub r: SeriesRef,
    pub labels: Labels,
    pub last_t: i64,
    pub last_v: u64,
    pub chunks: Vec<CheckpointChunk>,
    /// The encoder state of the last chunk, which is the open one (record
    /// type 6); `None` when the record holds none (type 3, or no open
    /// chunk), and the last chunk is then reopened by decoding it.
    pub open: Option<XorState>,
}

const XOR: u8 = 1;

pub fn put_uvarint(buf: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        buf.push(x as u8 | 0x80);
        x >>= 7;
    }
    buf.push(x as u8);
}

pub fn put_varint(buf: &mut Vec<u8>, x: i64) {
    put_uvarint(buf, ((x << 1) ^ (x >> 63)) as u64);
}

struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    fn uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        let mut s = 0;
        for (i, &c) in self.b.iter().enumerate() {
            if i == 10 {
                return None;
            }
            if c < 0x80 {
                x |= (c as u64) << s;
                self.b = &self.b[i + 1..];
                return Some(x);
            }
            x |= ((c & 0x7f) as u64) << s;
            s += 7;
        }
        None
    }

    fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some((u >> 1) as i64 ^ -((u & 1) as i64))
    }

    fn u64(&mut self) -> Option<u64> {
        let (h, rest) = self.b.split_first_chunk::<8>()?;
        self.b = rest;
        Some(u64::from_be_bytes(*h))
    }

    fn u8(&mut self) -> Option<u8> {
        let (&h, rest) = self.b.split_first()?;
        self.b = rest;
        Some(h)
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (h, rest) = self.b.split_at(n);
        self.b = rest;
        Some(h)
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.uvarint()? as usize;
        std::str::from_utf8(self.bytes(n)?).ok()
    }

    fn labels(&mut self) -> Option<Labels> {
        let n = self.uvarint()? as usize;
        if n > self.b.len() {
            return None;
        }
        let mut pairs = Vec::with_capacity(n);
        let mut sorted = true;
        for _ in 0..n {
            let name = self.str()?;
            let value = self.str()?;
            if let Some(last) = pairs.last() {
                let last: &Label = last;
                sorted &= last.name.as_str() < name;
            }
            pairs.push(Label {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
        // Writers log sorted labels; anything else goes through the builder.
        Some(if sorted {
            Labels::from_sorted(pairs)
        } else {
            Labels::from_pairs(pairs.into_iter().map(|l| (l.name, l.value)))
        })
    }
}

/// Appends a label set of `pairs` pairs given as name, value, name,
/// value... strings: a count, then length-prefixed names and values.
pub fn put_label_strs<'a>(buf: &mut Vec<u8>, pairs: usize, strs: impl Iterator<Item = &'a str>) {
    put_uvarint(buf, pairs as u64);
    for s in strs {
        put_uvarint(buf, s.len() as u64);
        buf.extend_from_slice(s.as_bytes());
    }
}

/// Appends a label set as [`put_label_strs`] does.
pub fn put_labels(buf: &mut Vec<u8>, labels: &Labels) {
    put_label_strs(
        buf,
        labels.len(),
        labels
            .iter()
            .flat_map(|l| [l.name.as_str(), l.value.as_str()]),
    );
}

/// Decodes a whole payload written by [`put_labels`] into `out`, reusing
/// its strings (loading a million series allocates nothing per label);
/// false if the bytes do not parse or the names are not sorted.
pub fn get_labels_into(payload: &[u8], out: &mut Vec<Label>) -> bool {
    let mut d = Dec { b: payload };
    let Some(n) = d.uvarint() else { return false };
    let n = n as usize;
    if n > d.b.len() {
        return false;
    }
    out.truncate(n);
    for i in 0..n {
        let (Some(name), Some(value)) = (d.str(), d.str()) else {
            return false;
        };
        if i > 0 && out[i - 1].name.as_str() >= name {
            return false;
        }
        match out.get_mut(i) {
            Some(l) => {
                l.name.clear();
                l.name.push_str(name);
                l.value.clear();
                l.value.push_str(value);
            }
            None => out.push(Label {
                name: name.to_string(),
                value: value.to_string(),
            }),
        }
    }
    d.b.is_empty()
}

/// Appends one series entry.
pub fn put_series(buf: &mut Vec<u8>, r: SeriesRef, labels: &Labels) {
    buf.extend_from_slice(&r.to_be_bytes());
    put_labels(buf, labels);
}

/// Decodes a series record's entries into `out`.
pub fn get_series(payload: &[u8], out: &mut Vec<(SeriesRef, Labels)>) -> bool {
    let mut d = Dec { b: payload };
    while !d.b.is_empty() {
        let Some(r) = d.u64() else { return false };
        let Some(l) = d.labels() else { return false };
        out.push((r, l));
    }
    true
}

/// Appends a plain samples payload, as versions 1 and 2 wrote them; returns
/// how many samples it holds. Writers use [`put_packed_samples`].
#[cfg(test)]
pub fn put_samples(
    buf: &mut Vec<u8>,
    samples: &mut dyn Iterator<Item = (SeriesRef, i64, f64)>,
) -> usize {
    let Some((r, t, v)) = samples.next() else {
        return 0;
    };
    buf.extend_from_slice(&t.to_be_bytes());
    let base = t;
    let mut n = 1;
    let one = |buf: &mut Vec<u8>, r: SeriesRef, t: i64, v: f64| {
        put_uvarint(buf, r);
        put_varint(buf, t.wrapping_sub(base));
        buf.extend_from_slice(&v.to_bits().to_be_bytes());
    };
    one(buf, r, t, v);
    for (r, t, v) in samples {
        one(buf, r, t, v);
        n += 1;
    }
    n
}

/// Decodes a samples payload into `out`.
pub fn get_samples(payload: &[u8], out: &mut Vec<(SeriesRef, i64, f64)>) -> bool {
    let mut d = Dec { b: payload };
    let Some(base) = d.u64() else { return false };
    let base = base as i64;
    while !d.b.is_empty() {
        let (Some(r), Some(dt), Some(v)) = (d.uvarint(), d.varint(), d.u64()) else {
            return false;
        };
        out.push((r, base.wrapping_add(dt), f64::from_bits(v)));
    }
    true
}

/// How a packed sample's value is written (the low two bits of its head
/// byte, `docs/format/wal.md`).
const VALUE_ZERO: u8 = 0;
const VALUE_INTEGER: u8 = 1;
const VALUE_TENTHS: u8 = 2;
const VALUE_RAW: u8 = 3;
/// Head byte flags: the reference is the previous one plus one; the
/// timestamp is the record's base.
const NEXT_REF: u8 = 1 << 2;
const BASE_T: u8 = 1 << 3;
const HEAD_BITS: u8 = 0x0f;

/// Appends a packed samples payload; returns how many samples it holds.
///
/// Most of a scrape's samples share its timestamp, follow the previous
/// sample's series, and hold an integer or a number with one decimal: a
/// head byte says which, so that such a sample takes two to four bytes
/// instead of the plain record's thirteen. Every value comes back bit for
/// bit: a short form is used only when decoding it gives the same bits.
pub fn put_packed_samples(
    buf: &mut Vec<u8>,
    samples: &mut dyn Iterator<Item = (SeriesRef, i64, f64)>,
) -> usize {
    let Some(first) = samples.next() else {
        return 0;
    };
    let base = first.1;
    buf.extend_from_slice(&base.to_be_bytes());
    let mut prev: SeriesRef = 0;
    let mut n = 0;
    for (r, t, v) in std::iter::once(first).chain(samples) {
        let at = buf.len();
        buf.push(0);
        let mut head = 0;
        if r == prev.wrapping_add(1) {
            head |= NEXT_REF;
        } else {
            put_varint(buf, r.wrapping_sub(prev) as i64);
        }
        prev = r;
        if t == base {
            head |= BASE_T;
        } else {
            put_varint(buf, t.wrapping_sub(base));
        }
        let bits = v.to_bits();
        // Saturating casts: a NaN, an infinity or a huge value gives an
        // integer that does not decode to the same bits, and goes raw.
        let k = v as i64;
        head |= if bits == 0 {
            VALUE_ZERO
        } else if (k as f64).to_bits() == bits {
            put_varint(buf, k);
            VALUE_INTEGER
        } else if let Some(k10) = nearest_int(v * 10.0)
            && (k10 as f64 / 10.0).to_bits() == bits
        {
            put_varint(buf, k10);
            VALUE_TENTHS
        } else {
            buf.extend_from_slice(&bits.to_be_bytes());
            VALUE_RAW
        };
        buf[at] = head;
        n += 1;
    }
    n
}

/// Decodes a packed samples payload into `out`.
pub fn get_packed_samples(payload: &[u8], out: &mut Vec<(SeriesRef, i64, f64)>) -> bool {
    let mut d = Dec { b: payload };
    let Some(base) = d.u64() else { return false };
    let base = base as i64;
    let mut prev: SeriesRef = 0;
    while let Some(head) = d.u8() {
        if head & !HEAD_BITS != 0 {
            return false;
        }
        let r = if head & NEXT_REF != 0 {
            prev.wrapping_add(1)
        } else {
            let Some(dr) = d.varint() else { return false };
            prev.wrapping_add(dr as u64)
        };
        prev = r;
        let t = if head & BASE_T != 0 {
            base
        } else {
            let Some(dt) = d.varint() else { return false };
            base.wrapping_add(dt)
        };
        let v = match head & 3 {
            VALUE_ZERO => 0.0,
            VALUE_INTEGER => {
                let Some(k) = d.varint() else { return false };
                k as f64
            }
            VALUE_TENTHS => {
                let Some(k) = d.varint() else { return false };
                k as f64 / 10.0
            }
            _ => {
                let Some(bits) = d.u64() else { return false };
                f64::from_bits(bits)
            }
        };
        out.push((r, t, v));
    }
    true
}

/// Appends a checkpoint series payload from its parts: `labels` as a pair
/// count with the name, value, ... strings (`None` for a series whose labels
/// the chunk store holds), and `n` chunks as (min t, max t, XOR bytes).
#[allow(clippy::too_many_arguments)]
pub fn put_checkpoint_parts<'a, 'c>(
    buf: &mut Vec<u8>,
    r: SeriesRef,
    labels: Option<(usize, impl Iterator<Item = &'a str>)>,
    last_t: i64,
    last_v: u64,
    n: usize,
    chunks: impl Iterator<Item = (i64, i64, &'c [u8])>,
    open: Option<&XorState>,
) {
    buf.extend_from_slice(&r.to_be_bytes());
    match labels {
        Some((pairs, strs)) => put_label_strs(buf, pairs, strs),
        None => put_uvarint(buf, 0),
    }
    buf.extend_from_slice(&last_t.to_be_bytes());
    buf.extend_from_slice(&last_v.to_be_bytes());
    put_uvarint(buf, n as u64);
    for (min_t, max_t, data) in chunks {
        buf.push(XOR);
        buf.extend_from_slice(&min_t.to_be_bytes());
        buf.extend_from_slice(&max_t.to_be_bytes());
        put_uvarint(buf, data.len() as u64);
        buf.extend_from_slice(data);
    }
    // The open chunk's encoder state (type 6): mostly 7 bytes, as its last
    // sample is the series' last one.
    match open {
        None => buf.push(0),
        Some(st) => {
            buf.push(1);
            put_varint(buf, st.t.wrapping_sub(last_t));
            put_uvarint(buf, st.v ^ last_v);
            put_uvarint(buf, st.t_delta);
            buf.extend_from_slice(&[st.leading, st.trailing, st.free]);
        }
    }
}

/// Decodes a checkpoint series record: type 3 (`with_state` false) or
/// type 6, which ends with the open chunk's encoder state.
pub fn get_checkpoint_series(payload: &[u8], with_state: bool) -> Option<CheckpointSeries> {
    let mut d = Dec { b: payload };
    let r = d.u64()?;
    let labels = d.labels()?;
    let last_t = d.u64()? as i64;
    let last_v = d.u64()?;
    let n = d.uvarint()? as usize;
    if n > d.b.len() {
        return None;
    }
    let mut chunks = Vec::with_capacity(n);
    for _ in 0..n {
        if d.u8()? != XOR {
            return None;
        }
        let min_t = d.u64()? as i64;
        let max_t = d.u64()? as i64;
        let len = d.uvarint()? as usize;
        chunks.push(CheckpointChunk {
            min_t,
            max_t,
            data: d.bytes(len)?.to_vec(),
        });
    }
    let open = match (with_state, with_state.then(|| d.u8()).flatten()) {
        (false, _) => None,
        (true, Some(0)) => None,
        (true, Some(1)) if !chunks.is_empty() => Some(XorState {
            t: d.varint()?.wrapping_add(last_t),
            v: d.uvarint()? ^ last_v,
            t_delta: d.uvarint()?,
            leading: d.u8()?,
            trailing: d.u8()?,
            free: d.u8()?,
        }),
        _ => return None,
    };
    d.b.is_empty().then_some(CheckpointSeries {
        r,
        labels,
        last_t,
        last_v,
        chunks,
        open,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN_BITS;

    fn packed_round_trip(samples: &[(SeriesRef, i64, f64)]) -> Vec<u8> {
        let mut buf = Vec::new();
        let n = put_packed_samples(&mut buf, &mut samples.iter().copied());
        assert_eq!(n, samples.len());
        let mut out = Vec::new();
        assert!(get_packed_samples(&buf, &mut out));
        let bits = |s: &[(SeriesRef, i64, f64)]| -> Vec<(SeriesRef, i64, u64)> {
            s.iter().map(|&(r, t, v)| (r, t, v.to_bits())).collect()
        };
        assert_eq!(bits(&out), bits(samples));
        buf
    }

    #[test]
    fn packed_samples_keep_every_value_bit_for_bit() {
        let t = 1_764_000_000_000;
        let awkward = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            12.3,
            -0.1,
            0.3,
            1.0 / 3.0,
            2f64.powi(53) + 2.0,
            9.2e18,
            -9.3e18,
            1e300,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(STALE_NAN_BITS),
            f64::from_bits(0x7ff8_0000_0000_0001),
            922_337_203_685_477_580.7,
        ];
        let mut samples = Vec::new();
        for (i, &v) in awkward.iter().enumerate() {
            let i = i as u64;
            // Refs that step by one, jump back and forth, and reach the top.
            let r = match i % 4 {
                0 => 17 + i,
                1 => 18 + i - 1,
                2 => u64::MAX - i,
                _ => 3,
            };
            let dt = [0, 0, 5, -7, i64::MIN / 2][i as usize % 5];
            samples.push((r, t + dt, v));
        }
        packed_round_trip(&samples);
        packed_round_trip(&[(0, i64::MIN, -0.0)]);
        packed_round_trip(&[(u64::MAX, i64::MAX, 1.5), (0, i64::MIN, 2.5)]);
    }

    #[test]
    fn a_typical_scrape_packs_small() {
        // One target's scrape: consecutive references, one timestamp,
        // counts and one-decimal gauges.
        let samples: Vec<_> = (0..1000u64)
            .map(|i| (4096 + i, 1_764_000_000_000, (i % 200) as f64 / 10.0))
            .collect();
        let buf = packed_round_trip(&samples);
        assert!(buf.len() <= 8 + 3 * samples.len(), "{} bytes", buf.len());
        let mut plain = Vec::new();
        put_samples(&mut plain, &mut samples.iter().copied());
        assert!(
            buf.len() * 4 < plain.len(),
            "{} of {}",
            buf.len(),
            plain.len()
        );
    }

    #[test]
    fn packed_samples_refuse_bytes_that_do_not_parse() {
        let buf = packed_round_trip(&[(5, 1000, 1e300), (6, 1000, 2.0)]);
        let mut out = Vec::new();
        // Cut anywhere but between two samples, the payload is refused.
        let boundaries = [8, 8 + 1 + 1 + 8];
        for cut in 1..buf.len() {
            out.clear();
            let ok = get_packed_samples(&buf[..cut], &mut out);
            assert_eq!(ok, boundaries.contains(&cut), "{cut}");
        }
        let mut bad = buf.clone();
        bad[8] |= 0x80;
        assert!(!get_packed_samples(&bad, &mut out));
    }
}
