//! The head's chunk files (`chunks_head/`): chunks that the head cut and
//! wrote to disk, each with its series reference, time range and a
//! CRC-32C. Layout: `docs/format/prometheus.md` (the upstream document
//! still shows a file header with times, which 2.x does not write).
//!
//! As Prometheus does on start-up, a corrupt file drops the chunks of that
//! file and every later one (the WAL still holds their samples), and a
//! series whose chunks come out of time order drops every chunk file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Error;
use super::decode::{FileWindow, crc_ok, uvarint};

const MAGIC: u32 = 0x0130_BC91;
const FILE_HEADER: u64 = 8;
/// Series reference, min and max time, encoding, the longest length
/// field, CRC: less than this left in a file can only be its zero tail.
const MAX_META: u64 = 8 + 8 + 8 + 1 + 5 + 4;
/// Out-of-order chunks (`--storage.tsdb.out_of_order_time_window`) carry
/// this bit in their encoding byte.
const OOO_FLAG: u8 = 0x80;

/// Where a chunk lies.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeadChunk {
    pub file: usize,
    pub offset: u64,
    pub len: usize,
    pub encoding: u8,
    pub min_time: i64,
    pub max_time: i64,
}

/// The head chunks of every series, and what was left out.
#[derive(Default)]
pub(super) struct HeadChunks {
    pub files: Vec<PathBuf>,
    pub by_series: HashMap<u64, Vec<HeadChunk>>,
    pub out_of_order: u64,
    /// Why some chunks were dropped, if any were.
    pub problem: Option<String>,
}

/// Lists the chunks of `dir` (absent: none) whose max time is at least
/// `min_valid`, as Prometheus's start-up keeps them.
pub(super) fn scan(dir: &Path, min_valid: i64) -> Result<HeadChunks, Error> {
    let mut out = HeadChunks::default();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut files: Vec<(u64, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u64>().ok()?, e.path())))
        .collect();
    files.sort();
    out.files = files.into_iter().map(|(_, p)| p).collect();
    for i in 0..out.files.len() {
        let path = out.files[i].clone();
        if let Err(e) = scan_file(&path, i, min_valid, &mut out) {
            // Prometheus deletes this file and every later one, then maps
            // the earlier ones again: the WAL has what they held.
            for chunks in out.by_series.values_mut() {
                chunks.retain(|c| c.file < i);
            }
            out.by_series.retain(|_, c| !c.is_empty());
            out.files.truncate(i);
            out.problem = Some(format!(
                "{e}; its chunks and later files' are read from the WAL instead"
            ));
            break;
        }
    }
    let unordered = out
        .by_series
        .values()
        .any(|c| c.windows(2).any(|w| w[0].max_time >= w[1].min_time));
    if unordered {
        out.by_series.clear();
        out.problem = Some(format!(
            "{}: a series' chunks are out of time order; every head chunk is read from the WAL instead",
            dir.display()
        ));
    }
    Ok(out)
}

fn scan_file(path: &Path, index: usize, min_valid: i64, out: &mut HeadChunks) -> Result<(), Error> {
    let mut w = FileWindow::open(path)?;
    let h = w.range(0, FILE_HEADER as usize)?;
    if u32::from_be_bytes([h[0], h[1], h[2], h[3]]) != MAGIC {
        return Err(Error::corrupt(
            path,
            "not a head chunks file (bad magic number)",
        ));
    }
    if h[4] != 1 {
        return Err(Error::Version {
            file: path.display().to_string(),
            what: "head chunks format",
            version: u64::from(h[4]),
        });
    }
    let end = w.len();
    let mut at = FILE_HEADER;
    while at < end {
        if end - at < MAX_META {
            if w.range(at, (end - at) as usize)?.iter().all(|&b| b == 0) {
                break;
            }
            return Err(Error::corrupt(
                path,
                format!("chunk header at {at} is cut off"),
            ));
        }
        let meta = w.range(at, 25)?;
        let series = u64::from_be_bytes(meta[0..8].try_into().unwrap_or_default());
        let min_time = i64::from_be_bytes(meta[8..16].try_into().unwrap_or_default());
        let max_time = i64::from_be_bytes(meta[16..24].try_into().unwrap_or_default());
        let encoding = meta[24];
        // A file's unused tail is zeros; series references start at 1.
        if series == 0 && min_time == 0 && max_time == 0 {
            break;
        }
        let (len, n) = uvarint(w.up_to(at + 25, 5)?)
            .ok_or_else(|| Error::corrupt(path, format!("chunk at {at}: bad length")))?;
        let data_at = at + 25 + n as u64;
        let total = (data_at - at) as usize + len as usize;
        if data_at + len + 4 > end {
            return Err(Error::corrupt(path, format!("chunk at {at} is cut off")));
        }
        let all = w.range(at, total + 4)?;
        if !crc_ok(&all[..total], &all[total..]) {
            return Err(Error::corrupt(
                path,
                format!("chunk at {at}: checksum mismatch"),
            ));
        }
        if encoding & OOO_FLAG != 0 {
            out.out_of_order += 1;
        } else if max_time >= min_valid {
            out.by_series.entry(series).or_default().push(HeadChunk {
                file: index,
                offset: data_at,
                len: len as usize,
                encoding,
                min_time,
                max_time,
            });
        }
        at = data_at + len + 4;
    }
    Ok(())
}

/// Reads chunk data from the scanned files.
pub(super) struct Reader {
    files: Vec<Option<FileWindow>>,
    paths: Vec<PathBuf>,
}

impl Reader {
    pub fn new(paths: &[PathBuf]) -> Reader {
        Reader {
            files: paths.iter().map(|_| None).collect(),
            paths: paths.to_vec(),
        }
    }

    pub fn data(&mut self, c: &HeadChunk) -> Result<&[u8], Error> {
        let Some(slot) = self.files.get_mut(c.file) else {
            return Err(Error::corrupt(
                Path::new("chunks_head"),
                "chunk in an unknown file",
            ));
        };
        if slot.is_none() {
            *slot = Some(FileWindow::open(&self.paths[c.file])?);
        }
        match slot {
            Some(w) => w.range(c.offset, c.len),
            None => Err(Error::corrupt(
                Path::new("chunks_head"),
                "chunk file not open",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::chunkenc::XorChunk;

    fn chunk(series: u64, samples: &[(i64, f64)]) -> Vec<u8> {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v).unwrap();
        }
        let data = c.bytes();
        let mut out = Vec::new();
        out.extend_from_slice(&series.to_be_bytes());
        out.extend_from_slice(&samples[0].0.to_be_bytes());
        out.extend_from_slice(&samples[samples.len() - 1].0.to_be_bytes());
        out.push(1);
        out.push(data.len() as u8);
        out.extend_from_slice(data);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn file(chunks: &[Vec<u8>], zero_tail: usize) -> Vec<u8> {
        let mut out = MAGIC.to_be_bytes().to_vec();
        out.extend_from_slice(&[1, 0, 0, 0]);
        for c in chunks {
            out.extend_from_slice(c);
        }
        out.resize(out.len() + zero_tail, 0);
        out
    }

    #[test]
    fn chunks_zero_tails_and_a_corrupt_file() {
        let dir = crate::promdata::import::tests::tempdir("headchunks");
        let a = chunk(1, &[(1000, 1.0), (2000, 2.0)]);
        let b = chunk(2, &[(1500, 5.0)]);
        let c = chunk(1, &[(3000, 3.0)]);
        std::fs::write(dir.join("000001"), file(&[a, b], 100)).unwrap();
        std::fs::write(dir.join("000002"), file(std::slice::from_ref(&c), 0)).unwrap();
        let hc = scan(&dir, i64::MIN).unwrap();
        assert!(hc.problem.is_none());
        assert_eq!(hc.by_series[&1].len(), 2);
        assert_eq!(hc.by_series[&2].len(), 1);
        let mut r = Reader::new(&hc.files);
        let got: Vec<(i64, f64)> = hc.by_series[&1]
            .iter()
            .flat_map(|ch| {
                crate::tsdb::chunkenc::XorIter::new(r.data(ch).unwrap()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(got, [(1000, 1.0), (2000, 2.0), (3000, 3.0)]);

        // Chunks before the blocks' end are left out.
        let hc = scan(&dir, 2500).unwrap();
        assert_eq!(hc.by_series[&1].len(), 1);
        assert!(!hc.by_series.contains_key(&2));

        // A flipped byte in the second file: its chunks go, the first's stay.
        let mut bad = file(&[c], 0);
        let n = bad.len();
        bad[n - 6] ^= 1;
        std::fs::write(dir.join("000002"), bad).unwrap();
        let hc = scan(&dir, i64::MIN).unwrap();
        assert!(
            hc.problem
                .as_deref()
                .unwrap_or("")
                .contains("checksum mismatch")
        );
        assert_eq!(hc.by_series[&1].len(), 1);
        assert_eq!(hc.files.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
