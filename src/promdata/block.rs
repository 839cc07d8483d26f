//! One persisted block of a Prometheus data directory: `meta.json`, the
//! `index` (version 2: symbols, the all-series postings list, series with
//! their chunk references), the segment files of `chunks/`, and
//! `tombstones`. Layouts: `docs/format/prometheus.md`.
//!
//! Reads only; knows nothing of raymon's store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Error;
use super::decode::{Cursor, FileWindow, crc_ok, uvarint};

const INDEX_MAGIC: u32 = 0xBAAA_D700;
const CHUNKS_MAGIC: u32 = 0x85BD_40DD;
const TOMBSTONES_MAGIC: u32 = 0x0130_BA30;
/// The index's table of contents: six 8-byte offsets and a CRC.
const TOC_LEN: usize = 6 * 8 + 4;
/// Chunk encodings (Prometheus's `chunkenc.Encoding`).
pub(super) const ENC_XOR: u8 = 1;
pub(super) const ENC_HISTOGRAM: u8 = 2;
pub(super) const ENC_FLOAT_HISTOGRAM: u8 = 3;

/// What `meta.json` says (the fields this reader uses).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Meta {
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub compaction: Compaction,
    pub version: u64,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Stats {
    #[serde(default)]
    pub num_samples: u64,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(super) struct Compaction {
    #[serde(default)]
    pub deletable: bool,
    #[serde(default)]
    pub parents: Vec<Parent>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub(super) struct Parent {
    pub ulid: String,
}

pub(super) fn read_meta(dir: &Path) -> Result<Meta, Error> {
    let path = dir.join("meta.json");
    let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let meta: Meta =
        serde_json::from_slice(&text).map_err(|e| Error::corrupt(&path, e.to_string()))?;
    if meta.version != 1 {
        return Err(Error::Version {
            file: path.display().to_string(),
            what: "block meta",
            version: meta.version,
        });
    }
    Ok(meta)
}

/// A chunk of a series as the index lists it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkMeta {
    pub reference: u64,
}

/// Deleted intervals (both ends included) by series reference.
pub(super) type Tombstones = HashMap<u64, Vec<(i64, i64)>>;

/// An open block.
pub(super) struct Block {
    pub dir: PathBuf,
    pub meta: Meta,
    index: FileWindow,
    symbols: Vec<Box<str>>,
    /// Every series' reference (offset / 16), ascending.
    series: Vec<u32>,
    chunks: Vec<FileWindow>,
    pub tombstones: Tombstones,
}

impl Block {
    /// Opens the block and reads what is small: symbols, the list of
    /// series, tombstones. Chunks are read as series are walked.
    pub fn open(dir: &Path, meta: Meta) -> Result<Block, Error> {
        let path = dir.join("index");
        let mut index = FileWindow::open(&path)?;
        let head = index.range(0, 5)?;
        if u32::from_be_bytes([head[0], head[1], head[2], head[3]]) != INDEX_MAGIC {
            return Err(Error::corrupt(
                &path,
                "not an index file (bad magic number)",
            ));
        }
        if head[4] != 2 {
            return Err(Error::Version {
                file: path.display().to_string(),
                what: "index format",
                version: u64::from(head[4]),
            });
        }
        if index.len() < (5 + TOC_LEN) as u64 {
            return Err(Error::corrupt(&path, "too short for a table of contents"));
        }
        let toc = index.range(index.len() - TOC_LEN as u64, TOC_LEN)?;
        if !crc_ok(&toc[..TOC_LEN - 4], &toc[TOC_LEN - 4..]) {
            return Err(Error::corrupt(
                &path,
                "table of contents: checksum mismatch",
            ));
        }
        let mut c = Cursor::new(toc);
        let symbols_at = c.be64().unwrap_or(0);
        let _series_at = c.be64();
        let _label_indices = c.be64();
        let _label_offsets = c.be64();
        let _postings = c.be64();
        let postings_table_at = c.be64().unwrap_or(0);

        let symbols = read_symbols(&mut index, symbols_at)?;
        let series = read_all_postings(&mut index, postings_table_at)?;

        let chunks_dir = dir.join("chunks");
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(&chunks_dir)
            .map_err(|e| Error::io(&chunks_dir, e))?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let n = e.file_name().to_str()?.parse::<u64>().ok()?;
                Some((n, e.path()))
            })
            .collect();
        names.sort();
        let mut chunks = Vec::with_capacity(names.len());
        for (_, p) in names {
            let mut w = FileWindow::open(&p)?;
            let h = w.range(0, 8)?;
            if u32::from_be_bytes([h[0], h[1], h[2], h[3]]) != CHUNKS_MAGIC {
                return Err(Error::corrupt(&p, "not a chunks file (bad magic number)"));
            }
            if h[4] != 1 {
                return Err(Error::Version {
                    file: p.display().to_string(),
                    what: "chunks format",
                    version: u64::from(h[4]),
                });
            }
            chunks.push(w);
        }
        let tombstones = read_tombstones(&dir.join("tombstones"))?;
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            symbols,
            series,
            chunks,
            tombstones,
        })
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// The `i`-th series (in label order): its reference, label pairs and
    /// chunks.
    pub fn series(
        &mut self,
        i: usize,
        labels: &mut Vec<(Box<str>, Box<str>)>,
        chunks: &mut Vec<ChunkMeta>,
    ) -> Result<u64, Error> {
        labels.clear();
        chunks.clear();
        let id = u64::from(self.series[i]);
        let off = id * 16;
        let path = self.index.path().to_path_buf();
        let bad = |msg: &str| Error::corrupt(&path, format!("series {id}: {msg}"));
        let (len, n) = uvarint(self.index.up_to(off, 5)?).ok_or_else(|| bad("bad length"))?;
        let body = self.index.range(off + n as u64, len as usize + 4)?;
        let (data, crc) = body.split_at(len as usize);
        if !crc_ok(data, crc) {
            return Err(bad("checksum mismatch"));
        }
        let mut c = Cursor::new(data);
        let k = c.uvarint().ok_or_else(|| bad("truncated"))?;
        for _ in 0..k {
            let name = c.uvarint().ok_or_else(|| bad("truncated"))?;
            let value = c.uvarint().ok_or_else(|| bad("truncated"))?;
            let sym = |r: u64| self.symbols.get(r as usize).cloned();
            let (Some(name), Some(value)) = (sym(name), sym(value)) else {
                return Err(bad("label refers to a symbol that does not exist"));
            };
            labels.push((name, value));
        }
        let k = c.uvarint().ok_or_else(|| bad("truncated"))?;
        let mut t0 = 0i64;
        let mut r = 0i64;
        for j in 0..k {
            let reference = if j == 0 {
                let mint = c.varint().ok_or_else(|| bad("truncated"))?;
                let maxt = mint.wrapping_add(c.uvarint().ok_or_else(|| bad("truncated"))? as i64);
                r = c.uvarint().ok_or_else(|| bad("truncated"))? as i64;
                t0 = maxt;
                r
            } else {
                let mint = t0.wrapping_add(c.uvarint().ok_or_else(|| bad("truncated"))? as i64);
                let maxt = mint.wrapping_add(c.uvarint().ok_or_else(|| bad("truncated"))? as i64);
                r = r.wrapping_add(c.varint().ok_or_else(|| bad("truncated"))?);
                t0 = maxt;
                r
            };
            chunks.push(ChunkMeta {
                reference: reference as u64,
            });
        }
        Ok(id)
    }

    /// A chunk's encoding and data, checksum verified.
    pub fn chunk(&mut self, m: &ChunkMeta) -> Result<(u8, &[u8]), Error> {
        let seq = (m.reference >> 32) as usize;
        let off = m.reference & 0xffff_ffff;
        let chunks_dir = self.dir.join("chunks");
        let Some(w) = self.chunks.get_mut(seq) else {
            return Err(Error::corrupt(
                &chunks_dir,
                format!(
                    "chunk reference {:#x} names segment file {seq}, which does not exist",
                    m.reference
                ),
            ));
        };
        let path = w.path().to_path_buf();
        let (len, n) = uvarint(w.up_to(off, 5)?)
            .ok_or_else(|| Error::corrupt(&path, format!("chunk at {off}: bad length")))?;
        let all = w.range(off + n as u64, 1 + len as usize + 4)?;
        let (enc_data, crc) = all.split_at(1 + len as usize);
        if !crc_ok(enc_data, crc) {
            return Err(Error::corrupt(
                &path,
                format!("chunk at {off}: checksum mismatch"),
            ));
        }
        Ok((enc_data[0], &enc_data[1..]))
    }
}

/// The symbol table: strings referenced by their position (index v2).
fn read_symbols(index: &mut FileWindow, at: u64) -> Result<Vec<Box<str>>, Error> {
    let path = index.path().to_path_buf();
    let data = section(index, at, "symbol table")?;
    let mut c = Cursor::new(&data);
    let n = c
        .be32()
        .ok_or_else(|| Error::corrupt(&path, "symbol table: truncated"))?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let s = c
            .uvarint_str()
            .ok_or_else(|| Error::corrupt(&path, "symbol table: truncated or not UTF-8"))?;
        out.push(Box::from(s));
    }
    Ok(out)
}

/// The postings list of the empty label pair, which lists every series.
fn read_all_postings(index: &mut FileWindow, table_at: u64) -> Result<Vec<u32>, Error> {
    let path = index.path().to_path_buf();
    let table = section(index, table_at, "postings offset table")?;
    let mut c = Cursor::new(&table);
    let bad = || Error::corrupt(&path, "postings offset table: truncated");
    let n = c.be32().ok_or_else(bad)?;
    let mut at = None;
    for _ in 0..n {
        if c.uvarint().ok_or_else(bad)? != 2 {
            return Err(Error::corrupt(
                &path,
                "postings offset table: entry is not a label pair",
            ));
        }
        let name = c.uvarint_str().ok_or_else(bad)?;
        let value = c.uvarint_str().ok_or_else(bad)?;
        let off = c.uvarint().ok_or_else(bad)?;
        if name.is_empty() && value.is_empty() {
            at = Some(off);
            break;
        }
    }
    let Some(at) = at else {
        // An index of no series has no postings at all.
        return Ok(Vec::new());
    };
    let list = section(index, at, "postings list")?;
    let mut c = Cursor::new(&list);
    let n = c
        .be32()
        .ok_or_else(|| Error::corrupt(&path, "postings list: truncated"))?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push(
            c.be32()
                .ok_or_else(|| Error::corrupt(&path, "postings list: truncated"))?,
        );
    }
    Ok(out)
}

/// A section of the index: 4-byte length, data, CRC-32C of the data.
fn section(index: &mut FileWindow, at: u64, what: &str) -> Result<Vec<u8>, Error> {
    let path = index.path().to_path_buf();
    let len = {
        let b = index.range(at, 4)?;
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
    };
    let b = index.range(at + 4, len + 4)?;
    let (data, crc) = b.split_at(len);
    if !crc_ok(data, crc) {
        return Err(Error::corrupt(&path, format!("{what}: checksum mismatch")));
    }
    Ok(data.to_vec())
}

/// A block's tombstones file; a block without one has none.
fn read_tombstones(path: &Path) -> Result<Tombstones, Error> {
    let b = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tombstones::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if b.len() < 9 {
        return Err(Error::corrupt(path, "too short"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if u32::from_be_bytes([body[0], body[1], body[2], body[3]]) != TOMBSTONES_MAGIC {
        return Err(Error::corrupt(
            path,
            "not a tombstones file (bad magic number)",
        ));
    }
    if body[4] != 1 {
        return Err(Error::Version {
            file: path.display().to_string(),
            what: "tombstones format",
            version: u64::from(body[4]),
        });
    }
    // The checksum covers the stones, not the magic number or version.
    if !crc_ok(&body[5..], crc) {
        return Err(Error::corrupt(path, "checksum mismatch"));
    }
    let mut out = Tombstones::new();
    let mut c = Cursor::new(&body[5..]);
    while !c.is_empty() {
        let (Some(r), Some(mint), Some(maxt)) = (c.uvarint(), c.varint(), c.varint()) else {
            return Err(Error::corrupt(path, "truncated"));
        };
        out.entry(r).or_default().push((mint, maxt));
    }
    Ok(out)
}

/// Whether `t` lies in one of `intervals` (both ends included).
pub(super) fn deleted(intervals: Option<&Vec<(i64, i64)>>, t: i64) -> bool {
    intervals.is_some_and(|iv| iv.iter().any(|&(a, b)| a <= t && t <= b))
}
