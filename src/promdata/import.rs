//! The import itself: blocks in time order, each checked whole before any
//! of its samples is appended, then the head (head chunks, then the WAL's
//! samples after them), all through one [`Appendable`] in batched commits.

use std::collections::HashMap;
use std::path::Path;

use super::Error;
use super::block::{self, Block, ChunkMeta, ENC_FLOAT_HISTOGRAM, ENC_HISTOGRAM, ENC_XOR, Meta};
use super::head_chunks;
use super::wal::{self, Record, SegmentReader};
use crate::model::{Label, Labels};
use crate::storage::{Appendable, Appender, SeriesRef};
use crate::tsdb::chunkenc::XorIter;

#[derive(Debug, Clone)]
pub struct Options {
    /// Samples per commit.
    pub batch_samples: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_samples: 200_000,
        }
    }
}

/// What the import tells as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A block is about to be read (`index` of `total`, from 1).
    BlockStart {
        ulid: &'a str,
        index: usize,
        total: usize,
        min_time: i64,
        max_time: i64,
        /// Samples its meta.json counts.
        samples: u64,
    },
    /// A block's samples are all committed.
    BlockDone {
        samples: u64,
        series: u64,
    },
    /// Something was not imported, and why.
    Skipped {
        what: String,
        reason: String,
    },
    /// The head is about to be read.
    HeadStart {
        segments: usize,
        chunk_files: usize,
    },
    HeadDone {
        samples: u64,
        series: u64,
    },
    /// A batch was committed; `samples` counts every one so far.
    Committed {
        samples: u64,
    },
}

/// What the import did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub blocks: usize,
    pub blocks_skipped: usize,
    /// Blocks a later compaction replaced (their samples are in it).
    pub blocks_replaced: usize,
    pub block_samples: u64,
    pub head_samples: u64,
    pub head_series: u64,
    /// Samples appended (blocks and head).
    pub samples: u64,
    /// Samples the store refused: at or before a sample it already had for
    /// the series (overlapping data, or an import run twice).
    pub refused: u64,
    /// Samples under tombstones (deleted in Prometheus).
    pub deleted: u64,
    /// Native histogram samples (chunks) or records, which raymon does not store.
    pub histograms: u64,
    /// Head samples whose series the WAL never named.
    pub unknown_series: u64,
    /// Head samples of a series from before the WAL named it again under a
    /// new reference, which Prometheus's start-up drops too.
    pub reset: u64,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Everything that was reported and skipped.
    pub problems: Vec<String>,
}

/// Imports the Prometheus data directory `dir` into `store`. Fails only
/// when `dir` is not a Prometheus directory, is in use, or the store stops
/// taking writes; what was committed before stays committed.
pub fn import(
    dir: &Path,
    store: &dyn Appendable,
    opts: &Options,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<Summary, Error> {
    let _lock = super::lock(dir)?;
    let mut blocks = list_blocks(dir)?;
    let has_wal = dir.join("wal").is_dir();
    if blocks.is_empty() && !has_wal {
        return Err(Error::NotPrometheus {
            dir: dir.display().to_string(),
        });
    }
    let mut w = Writer {
        store,
        app: None,
        pending: 0,
        batch: opts.batch_samples.max(1),
        sum: Summary::default(),
        report,
    };
    // Blocks a compaction replaced, and blocks marked for deletion, are
    // what Prometheus deletes when it opens the directory.
    let replaced: std::collections::HashSet<String> = blocks
        .iter()
        .filter_map(|b| b.1.as_ref().ok())
        .flat_map(|m| m.compaction.parents.iter().map(|p| p.ulid.clone()))
        .collect();
    blocks.retain(|(_, m)| match m {
        Ok(m) if m.compaction.deletable || replaced.contains(&m.ulid) => {
            w.sum.blocks_replaced += 1;
            false
        }
        _ => true,
    });
    let mut metas = Vec::new();
    for (path, m) in blocks {
        match m {
            Ok(m) => metas.push((path, m)),
            Err(e) => w.skip(path.display().to_string(), e.to_string()),
        }
    }
    metas.sort_by_key(|(_, m)| (m.min_time, m.max_time));
    // The head keeps only samples from the newest block's end on.
    let min_valid = metas
        .iter()
        .map(|(_, m)| m.max_time)
        .max()
        .unwrap_or(i64::MIN);
    let total = metas.len();
    for (i, (path, meta)) in metas.into_iter().enumerate() {
        let ulid = meta.ulid.clone();
        (w.report)(Event::BlockStart {
            ulid: &ulid,
            index: i + 1,
            total,
            min_time: meta.min_time,
            max_time: meta.max_time,
            samples: meta.stats.num_samples,
        });
        let checked = Block::open(&path, meta).and_then(|mut b| validate(&mut b).map(|()| b));
        let mut b = match checked {
            Ok(b) => b,
            Err(e) => {
                w.skip(format!("block {ulid}"), e.to_string());
                continue;
            }
        };
        let before = w.sum.samples + w.pending;
        match import_block(&mut b, &mut w) {
            Ok(series) => {
                w.commit()?;
                w.sum.blocks += 1;
                let samples = w.sum.samples - before;
                w.sum.block_samples += samples;
                (w.report)(Event::BlockDone { samples, series });
            }
            // Validation read every chunk: only the store can fail here.
            Err(e @ (Error::Commit(_) | Error::Storage(_))) => {
                let _ = w.commit();
                return Err(e);
            }
            Err(e) => {
                w.commit()?;
                w.skip(
                    format!("rest of block {ulid}"),
                    format!("{e} (its samples before this point were imported)"),
                );
            }
        }
    }
    if has_wal {
        import_head(dir, min_valid, &mut w)?;
    }
    w.commit()?;
    Ok(w.sum)
}

type BlockEntry = (std::path::PathBuf, Result<Meta, Error>);

/// Directories named by a ULID (26 characters of Crockford base 32), with
/// their meta or why it cannot be read.
fn list_blocks(dir: &Path) -> Result<Vec<BlockEntry>, Error> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_ulid = name.len() == 26
            && name
                .bytes()
                .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"ILOU".contains(&c)));
        if is_ulid && e.path().is_dir() {
            let meta = block::read_meta(&e.path());
            out.push((e.path(), meta));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads every series and chunk of the block and decodes every sample, so
/// that a block is either imported whole or not at all.
fn validate(b: &mut Block) -> Result<(), Error> {
    let mut labels = Vec::new();
    let mut chunks = Vec::new();
    for i in 0..b.num_series() {
        let id = b.series(i, &mut labels, &mut chunks)?;
        for c in &chunks {
            let (enc, data) = b.chunk(c)?;
            match enc {
                ENC_XOR => {
                    let mut it = XorIter::new(data);
                    let n = it.by_ref().count();
                    let want = data
                        .get(..2)
                        .map_or(0, |h| u16::from_be_bytes([h[0], h[1]]));
                    if it.is_corrupt() || n != usize::from(want) {
                        return Err(Error::corrupt(
                            &b.dir,
                            format!("series {id}: chunk {:#x} does not decode", c.reference),
                        ));
                    }
                }
                ENC_HISTOGRAM | ENC_FLOAT_HISTOGRAM => {}
                other => {
                    return Err(Error::corrupt(
                        &b.dir,
                        format!(
                            "series {id}: chunk {:#x} has unknown encoding {other}",
                            c.reference
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn to_labels<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Result<Labels, String> {
    let v: Vec<Label> = pairs
        .map(|(n, v)| Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect();
    Labels::from_unsorted(v).map_err(|e| e.to_string())
}

/// Appends a validated block; returns its number of series.
fn import_block(b: &mut Block, w: &mut Writer<'_, '_>) -> Result<u64, Error> {
    let mut pairs = Vec::new();
    let mut chunks: Vec<ChunkMeta> = Vec::new();
    let tombstones = std::mem::take(&mut b.tombstones);
    let mut series = 0;
    for i in 0..b.num_series() {
        let id = b.series(i, &mut pairs, &mut chunks)?;
        let labels = match to_labels(pairs.iter().map(|(n, v)| (&**n, &**v))) {
            Ok(l) => l,
            Err(e) => {
                w.skip(format!("series {id} of block {}", b.meta.ulid), e);
                continue;
            }
        };
        series += 1;
        let stones = tombstones.get(&id);
        let mut r: SeriesRef = 0;
        for c in &chunks {
            let (enc, data) = b.chunk(c)?;
            if enc != ENC_XOR {
                w.sum.histograms += u64::from(
                    data.get(..2)
                        .map_or(0, |h| u16::from_be_bytes([h[0], h[1]])),
                );
                continue;
            }
            for (t, v) in XorIter::new(data) {
                if block::deleted(stones, t) {
                    w.sum.deleted += 1;
                    continue;
                }
                r = w.append(r, &labels, t, v)?;
            }
        }
    }
    Ok(series)
}

/// A series of the head: its labels, and the reference it has in the store.
struct HeadSeries {
    labels: Labels,
    r: SeriesRef,
    /// The WAL reference whose head chunks this series has.
    chunks_of: u64,
    /// The newest head-chunk sample: WAL samples up to it are in the chunks.
    mm_max: i64,
    /// Where (segment, record) the WAL last named the series. A series
    /// logged again under a new reference (it had left the head and came
    /// back) loses what was replayed before that record, head chunks
    /// included: Prometheus's replay resets the series there.
    valid_from: (usize, usize),
}

fn import_head(dir: &Path, min_valid: i64, w: &mut Writer<'_, '_>) -> Result<(), Error> {
    let segs = wal::segments(&dir.join("wal"))?;
    let mut series: HashMap<u64, HeadSeries> = HashMap::new();
    let mut by_labels: HashMap<Labels, u64> = HashMap::new();
    // A series logged again under a new reference: new -> first.
    let mut alias: HashMap<u64, u64> = HashMap::new();
    let mut stones: HashMap<u64, Vec<(i64, i64)>> = HashMap::new();

    // First pass: series and tombstones, which apply to samples logged
    // before them. `end` is where the WAL stops being readable.
    let mut end: Option<(usize, usize)> = None;
    'segs: for (si, path) in segs.iter().enumerate() {
        let mut rd = SegmentReader::open(path)?;
        let mut k = 0;
        loop {
            let rec = match rd.next() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) => {
                    end = Some((si, k));
                    w.skip("the rest of the WAL".into(), e.to_string());
                    break 'segs;
                }
            };
            match wal::decode(rec) {
                None => {
                    end = Some((si, k));
                    let at = rd.path().display().to_string();
                    w.skip(
                        "the rest of the WAL".into(),
                        format!("{at}: record {k} does not decode"),
                    );
                    break 'segs;
                }
                Some(Record::Series(list)) => {
                    for (r, pairs) in list {
                        let labels = match to_labels(pairs.into_iter()) {
                            Ok(l) => l,
                            Err(e) => {
                                w.skip(format!("head series {r}"), e);
                                continue;
                            }
                        };
                        if let Some(&first) = by_labels.get(&labels) {
                            if first != r {
                                alias.insert(r, first);
                            }
                            if let Some(s) = series.get_mut(&first) {
                                s.chunks_of = r;
                                s.valid_from = (si, k);
                            }
                            continue;
                        }
                        by_labels.insert(labels.clone(), r);
                        series.insert(
                            r,
                            HeadSeries {
                                labels,
                                r: 0,
                                chunks_of: r,
                                mm_max: i64::MIN,
                                valid_from: (si, k),
                            },
                        );
                    }
                }
                Some(Record::Tombstones(list)) => {
                    for (r, a, b) in list {
                        if b >= min_valid && series.contains_key(&r) {
                            stones.entry(r).or_default().push((a, b));
                        }
                    }
                }
                Some(_) => {}
            }
            k += 1;
        }
    }
    drop(by_labels);

    let hc = head_chunks::scan(&dir.join("chunks_head"), min_valid)?;
    if let Some(p) = &hc.problem {
        w.skip("some head chunks".into(), p.clone());
    }
    if hc.out_of_order > 0 {
        w.skip(
            format!("{} out-of-order head chunks", hc.out_of_order),
            "out-of-order ingestion is not imported".into(),
        );
    }
    (w.report)(Event::HeadStart {
        segments: segs.len(),
        chunk_files: hc.files.len(),
    });
    let before = w.sum.samples + w.pending;
    let mut reader = head_chunks::Reader::new(&hc.files);
    let mut refs: Vec<u64> = series.keys().copied().collect();
    refs.sort_unstable();
    for r in &refs {
        let Some(s) = series.get_mut(r) else { continue };
        let Some(chunks) = hc.by_series.get(&s.chunks_of) else {
            continue;
        };
        let del = stones.get(r);
        for c in chunks {
            s.mm_max = c.max_time;
            let data = reader.data(c)?;
            if c.encoding != ENC_XOR {
                w.sum.histograms += u64::from(
                    data.get(..2)
                        .map_or(0, |h| u16::from_be_bytes([h[0], h[1]])),
                );
                continue;
            }
            let mut it = XorIter::new(data);
            for (t, v) in it.by_ref() {
                if block::deleted(del, t) {
                    w.sum.deleted += 1;
                    continue;
                }
                s.r = w.append(s.r, &s.labels, t, v)?;
            }
            if it.is_corrupt() {
                w.skip(
                    format!("part of a head chunk of {}", s.labels),
                    "it does not decode".into(),
                );
            }
        }
    }

    // Second pass: the samples, up to where the first pass stopped.
    'segs2: for (si, path) in segs.iter().enumerate() {
        let mut rd = SegmentReader::open(path)?;
        let mut k = 0;
        loop {
            if end == Some((si, k)) {
                break 'segs2;
            }
            let Ok(Some(rec)) = rd.next() else { break };
            match wal::decode(rec) {
                Some(Record::Samples(list)) => {
                    for (r, t, v) in list {
                        if t < min_valid {
                            continue;
                        }
                        let r = alias.get(&r).copied().unwrap_or(r);
                        let Some(s) = series.get_mut(&r) else {
                            w.sum.unknown_series += 1;
                            continue;
                        };
                        if t <= s.mm_max {
                            continue;
                        }
                        if (si, k) < s.valid_from {
                            w.sum.reset += 1;
                            continue;
                        }
                        if block::deleted(stones.get(&r), t) {
                            w.sum.deleted += 1;
                            continue;
                        }
                        s.r = w.append(s.r, &s.labels, t, v)?;
                    }
                }
                Some(Record::Histograms) => w.sum.histograms += 1,
                _ => {}
            }
            k += 1;
        }
    }
    w.commit()?;
    w.sum.head_samples = w.sum.samples - before;
    w.sum.head_series = series.values().filter(|s| s.r != 0).count() as u64;
    (w.report)(Event::HeadDone {
        samples: w.sum.head_samples,
        series: w.sum.head_series,
    });
    Ok(())
}

/// Appends in batches and counts.
struct Writer<'s, 'r> {
    store: &'s dyn Appendable,
    app: Option<Box<dyn Appender>>,
    pending: u64,
    batch: usize,
    sum: Summary,
    report: &'r mut dyn FnMut(Event<'_>),
}

impl Writer<'_, '_> {
    fn append(
        &mut self,
        hint: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Error> {
        let store = self.store;
        let app = self.app.get_or_insert_with(|| store.appender());
        match app.append(hint, labels, t, v) {
            Ok(r) => {
                self.pending += 1;
                let s = &mut self.sum;
                s.min_time = Some(s.min_time.map_or(t, |m| m.min(t)));
                s.max_time = Some(s.max_time.map_or(t, |m| m.max(t)));
                if self.pending >= self.batch as u64 {
                    self.commit()?;
                }
                Ok(r)
            }
            Err(e) if e.is_sample_error() => {
                self.sum.refused += 1;
                Ok(hint)
            }
            Err(e) => Err(Error::Storage(e)),
        }
    }

    fn commit(&mut self) -> Result<(), Error> {
        let Some(app) = self.app.take() else {
            return Ok(());
        };
        let pending = std::mem::take(&mut self.pending);
        let rejected = app.commit().map_err(Error::Commit)?;
        self.sum.refused += rejected.total();
        self.sum.samples += pending.saturating_sub(rejected.total());
        (self.report)(Event::Committed {
            samples: self.sum.samples,
        });
        Ok(())
    }

    fn skip(&mut self, what: String, reason: String) {
        self.sum.problems.push(format!("{what}: {reason}"));
        if what.starts_with("block ") {
            self.sum.blocks_skipped += 1;
        }
        (self.report)(Event::Skipped { what, reason });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    /// A fresh directory under the system's temp dir.
    pub(crate) fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "raymon-promdata-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
