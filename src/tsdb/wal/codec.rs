//! Payload encodings of WAL and checkpoint records (`docs/format/wal.md`).
//!
//! Pure byte work: no files, no locks. Decoders return false/None on bytes
//! that do not parse, never panic.

use std::sync::Arc;

use crate::model::{Label, Labels};
use crate::storage::SeriesRef;

/// One chunk of a series in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub data: Arc<[u8]>,
}

/// One series with all its chunks, as a checkpoint holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointSeries {
    pub r: SeriesRef,
    pub labels: Labels,
    pub last_t: i64,
    pub last_v: u64,
    pub chunks: Vec<CheckpointChunk>,
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

/// Appends a samples payload; returns how many samples it holds.
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
}

pub fn get_checkpoint_series(payload: &[u8]) -> Option<CheckpointSeries> {
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
            data: Arc::from(d.bytes(len)?),
        });
    }
    d.b.is_empty().then_some(CheckpointSeries {
        r,
        labels,
        last_t,
        last_v,
        chunks,
    })
}
