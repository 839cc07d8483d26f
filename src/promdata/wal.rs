//! Prometheus's write-ahead log: 32 KiB pages of fragments (type byte with
//! a snappy flag, big-endian length, CRC-32C), records assembled from
//! fragments and snappy-decompressed when flagged, and the record types
//! the head replays (series, samples, tombstones). The newest
//! `checkpoint.N` directory is read first, then the segments after N.
//! Layouts: `docs/format/prometheus.md`.
//!
//! Like Prometheus's own replay, reading stops at the first corruption
//! (a bad checksum, a torn record, a record that does not decode): what
//! came before it is kept, nothing after it is read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::Error;
use super::decode::Cursor;

const PAGE: usize = 32 * 1024;
const HEADER: usize = 7;
const SNAPPY_FLAG: u8 = 1 << 3;
const TYPE_MASK: u8 = SNAPPY_FLAG - 1;
const PAGE_TERM: u8 = 0;
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

/// Record types (Prometheus's `record.Type`).
const REC_SERIES: u8 = 1;
const REC_SAMPLES: u8 = 2;
const REC_TOMBSTONES: u8 = 3;
const REC_HISTOGRAMS: u8 = 7;
const REC_FLOAT_HISTOGRAMS: u8 = 8;

/// A decoded record the importer cares about.
pub(super) enum Record<'a> {
    Series(Vec<(u64, Vec<(&'a str, &'a str)>)>),
    Samples(Vec<(u64, i64, f64)>),
    /// (series, min time, max time), both ends deleted.
    Tombstones(Vec<(u64, i64, i64)>),
    /// Native histogram samples, which raymon does not store.
    Histograms,
    /// Exemplars, metadata and types this reader does not know.
    Other,
}

/// The files to replay, in order: the newest checkpoint's segments, then
/// the WAL segments after it.
pub(super) fn segments(wal_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut checkpoint: Option<(u64, PathBuf)> = None;
    let mut segs: Vec<(u64, PathBuf)> = Vec::new();
    let rd = std::fs::read_dir(wal_dir).map_err(|e| Error::io(wal_dir, e))?;
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_prefix("checkpoint.") {
            // `checkpoint.N.tmp` is one being written: not a checkpoint.
            if let Ok(n) = n.parse::<u64>()
                && e.path().is_dir()
                && checkpoint.as_ref().is_none_or(|c| c.0 < n)
            {
                checkpoint = Some((n, e.path()));
            }
        } else if let Ok(n) = name.parse::<u64>() {
            segs.push((n, e.path()));
        }
    }
    segs.sort();
    let mut out = Vec::new();
    if let Some((n, dir)) = &checkpoint {
        let mut inner: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().to_str()?.parse::<u64>().ok()?, e.path())))
            .collect();
        inner.sort();
        out.extend(inner.into_iter().map(|(_, p)| p));
        segs.retain(|(i, _)| i > n);
    }
    out.extend(segs.into_iter().map(|(_, p)| p));
    Ok(out)
}

/// Reads the records of one segment file.
pub(super) struct SegmentReader {
    r: BufReader<File>,
    path: PathBuf,
    /// Bytes consumed, counting the zeros that pad a short last page.
    total: usize,
    at_eof: bool,
    rec: Vec<u8>,
    compressed: Vec<u8>,
    page: Vec<u8>,
}

impl SegmentReader {
    pub fn open(path: &Path) -> Result<SegmentReader, Error> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(SegmentReader {
            r: BufReader::with_capacity(4 * PAGE, f),
            path: path.to_path_buf(),
            total: 0,
            at_eof: false,
            rec: Vec::new(),
            compressed: Vec::new(),
            page: vec![0; PAGE],
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads exactly `buf.len()` bytes; past the end of the file, zeros up
    /// to the page boundary (a segment's last page may be short). `false`
    /// at the end.
    fn fill(&mut self, n: usize) -> Result<bool, Error> {
        let buf = &mut self.page[..n];
        let mut got = 0;
        while got < n && !self.at_eof {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => self.at_eof = true,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        }
        if got < n {
            let pad_to = self.total.div_ceil(PAGE) * PAGE;
            let padded = (pad_to.saturating_sub(self.total + got)).min(n - got);
            if got == 0 && self.total.is_multiple_of(PAGE) {
                return Ok(false);
            }
            if got + padded < n {
                return Err(self.bad(format!(
                    "ends inside a record fragment at offset {}",
                    self.total + got
                )));
            }
            buf[got..].fill(0);
        }
        self.total += n;
        Ok(true)
    }

    fn bad(&self, msg: String) -> Error {
        Error::corrupt(&self.path, msg)
    }

    /// The next record's bytes, or `None` at the end of the segment.
    pub fn next(&mut self) -> Result<Option<&[u8]>, Error> {
        self.rec.clear();
        self.compressed.clear();
        let mut fragments = 0;
        let mut snappy = false;
        loop {
            if !self.fill(1)? {
                if fragments > 0 {
                    return Err(self.bad("last record is torn".into()));
                }
                return Ok(None);
            }
            let typ = self.page[0] & TYPE_MASK;
            if typ == PAGE_TERM {
                // The rest of the page is zeros.
                let left = (PAGE - self.total % PAGE) % PAGE;
                if left > 0 {
                    if !self.fill(left)? {
                        return Err(self.bad("page ends early".into()));
                    }
                    if self.page[..left].iter().any(|&b| b != 0) {
                        return Err(self.bad(format!(
                            "unexpected non-zero byte in padded page before offset {}",
                            self.total
                        )));
                    }
                }
                continue;
            }
            let flag = self.page[0] & SNAPPY_FLAG != 0;
            if !self.fill(HEADER - 1)? {
                return Err(self.bad("fragment header is cut off".into()));
            }
            let len = usize::from(u16::from_be_bytes([self.page[0], self.page[1]]));
            let crc = u32::from_be_bytes([self.page[2], self.page[3], self.page[4], self.page[5]]);
            if len > PAGE - HEADER {
                return Err(self.bad(format!("invalid record size {len}")));
            }
            if !self.fill(len)? {
                return Err(self.bad("fragment is cut off".into()));
            }
            let data = &self.page[..len];
            if crc32c::crc32c(data) != crc {
                return Err(self.bad(format!(
                    "fragment checksum mismatch before offset {}",
                    self.total
                )));
            }
            let ok = match typ {
                FULL | FIRST => fragments == 0,
                MIDDLE | LAST => fragments > 0,
                _ => false,
            };
            if !ok {
                return Err(self.bad(format!(
                    "unexpected fragment type {typ} before offset {}",
                    self.total
                )));
            }
            if flag {
                snappy = true;
                self.compressed.extend_from_slice(data);
            } else {
                self.rec.extend_from_slice(data);
            }
            fragments += 1;
            if typ == FULL || typ == LAST {
                break;
            }
        }
        if snappy && !self.compressed.is_empty() {
            let n = snap::raw::decompress_len(&self.compressed)
                .map_err(|e| self.bad(format!("snappy: {e}")))?;
            self.rec.resize(n, 0);
            snap::raw::Decoder::new()
                .decompress(&self.compressed, &mut self.rec)
                .map_err(|e| self.bad(format!("snappy: {e}")))?;
        }
        Ok(Some(&self.rec))
    }
}

/// Decodes a record; `None` if it is malformed.
pub(super) fn decode(rec: &[u8]) -> Option<Record<'_>> {
    let mut c = Cursor::new(rec);
    match c.byte()? {
        REC_SERIES => {
            let mut out = Vec::new();
            while !c.is_empty() {
                let r = c.be64()?;
                let n = c.uvarint()?;
                let mut labels = Vec::with_capacity(n.min(256) as usize);
                for _ in 0..n {
                    labels.push((c.uvarint_str()?, c.uvarint_str()?));
                }
                out.push((r, labels));
            }
            Some(Record::Series(out))
        }
        REC_SAMPLES => {
            let mut out = Vec::new();
            if c.is_empty() {
                return Some(Record::Samples(out));
            }
            let base_ref = c.be64()?;
            let base_t = c.be64()? as i64;
            while !c.is_empty() {
                let dr = c.varint()?;
                let dt = c.varint()?;
                let v = f64::from_bits(c.be64()?);
                out.push((base_ref.wrapping_add(dr as u64), base_t.wrapping_add(dt), v));
            }
            Some(Record::Samples(out))
        }
        REC_TOMBSTONES => {
            let mut out = Vec::new();
            while !c.is_empty() {
                out.push((c.be64()?, c.varint()?, c.varint()?));
            }
            Some(Record::Tombstones(out))
        }
        REC_HISTOGRAMS | REC_FLOAT_HISTOGRAMS => Some(Record::Histograms),
        _ => Some(Record::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes records as Prometheus's WAL writer lays them out: fragments
    /// within 32 KiB pages, split where a page ends.
    pub(crate) fn write_segment(records: &[(Vec<u8>, bool)]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        for (rec, compress) in records {
            let payload = if *compress {
                snap::raw::Encoder::new().compress_vec(rec).unwrap()
            } else {
                rec.clone()
            };
            let mut rest = &payload[..];
            let mut first = true;
            loop {
                let left = PAGE - out.len() % PAGE;
                if left < HEADER + 1 {
                    out.resize(out.len() + left, 0);
                    continue;
                }
                let n = rest.len().min(left - HEADER);
                let last = n == rest.len();
                let typ = match (first, last) {
                    (true, true) => FULL,
                    (true, false) => FIRST,
                    (false, false) => MIDDLE,
                    (false, true) => LAST,
                };
                out.push(typ | if *compress { SNAPPY_FLAG } else { 0 });
                out.extend_from_slice(&(n as u16).to_be_bytes());
                out.extend_from_slice(&crc32c::crc32c(&rest[..n]).to_be_bytes());
                out.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                first = false;
                if last {
                    break;
                }
            }
        }
        out
    }

    fn samples_record(n: usize) -> Vec<u8> {
        let mut r = vec![REC_SAMPLES];
        r.extend_from_slice(&7u64.to_be_bytes());
        r.extend_from_slice(&1000i64.to_be_bytes());
        for i in 0..n {
            r.push(((i % 3) as u8) << 1); // varint ref delta 0..2
            r.push(((i % 50) as u8) << 1); // varint time delta
            r.extend_from_slice(&(i as f64).to_bits().to_be_bytes());
        }
        r
    }

    #[test]
    fn records_across_pages_with_and_without_snappy() {
        let dir = crate::promdata::import::tests::tempdir("walseg");
        let recs = vec![
            (samples_record(3), false),
            (samples_record(10_000), true),
            (samples_record(9_000), false),
        ];
        let path = dir.join("00000000");
        std::fs::write(&path, write_segment(&recs)).unwrap();
        let mut r = SegmentReader::open(&path).unwrap();
        let mut n = 0;
        while let Some(rec) = r.next().unwrap() {
            let Some(Record::Samples(s)) = decode(rec) else {
                panic!("not samples")
            };
            assert_eq!(rec, &recs[n].0[..]);
            assert_eq!(s[2], (9, 1002, 2.0));
            n += 1;
        }
        assert_eq!(n, 3);

        // A flipped byte in the second record: the first is still read.
        let mut bytes = write_segment(&recs);
        bytes[5000] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let mut r = SegmentReader::open(&path).unwrap();
        assert!(r.next().unwrap().is_some());
        let e = r.next().unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");

        // Cut inside the last record: torn.
        let bytes = write_segment(&recs);
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let mut r = SegmentReader::open(&path).unwrap();
        assert!(r.next().unwrap().is_some());
        assert!(r.next().unwrap().is_some());
        assert!(r.next().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
