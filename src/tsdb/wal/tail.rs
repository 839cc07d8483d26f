//! Follows the WAL as it is written, from a [`Position`], for readers other
//! than replay (remote write's queues, as Prometheus's WAL watcher): records
//! are handed out one at a time with the position just after them, a record
//! still being written is waited for, and a segment that is gone (deleted
//! past its retention, or set aside as corrupt) is skipped and reported.
//!
//! This file knows the segment layout only through its parent; it knows
//! nothing of what the records are used for.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tracing::warn;

use super::{
    Error, HEADER_LEN, Next, Record, SEGMENT_MAGIC, TYPE_SAMPLES, TYPE_SAMPLES_PACKED, TYPE_SERIES,
    TYPE_SERIES_SNAPPY, codec, list_segments, open_checked, read_record, segment_name, unsnappy,
};
use crate::model::Labels;
use crate::storage::SeriesRef;

/// A place in the WAL: the segment and the byte offset of the next record.
/// Positions order as the records they point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub segment: u32,
    pub offset: u64,
}

impl Position {
    /// The first record of segment `segment`.
    pub fn start_of(segment: u32) -> Position {
        Position {
            segment,
            offset: HEADER_LEN,
        }
    }
}

/// What [`Tail::read`] found.
pub enum Tailed<'a> {
    /// A record, and the position just after it.
    Record(Record<'a>, Position),
    /// Nothing more is written yet.
    Idle,
    /// Segments from `from` up to (not including) `to` were missing or
    /// unreadable past `from`'s offset; reading goes on at the start of `to`.
    Skipped { from: Position, to: u32 },
}

/// A reader that follows the WAL in `dir`.
pub struct Tail {
    dir: PathBuf,
    pos: Position,
    file: Option<BufReader<File>>,
    payload: Vec<u8>,
    unpacked: Vec<u8>,
    series: Vec<(SeriesRef, Labels)>,
    samples: Vec<(SeriesRef, i64, f64)>,
}

impl Tail {
    /// A reader whose first record is the one at `pos`.
    pub fn new(dir: &Path, pos: Position) -> Tail {
        Tail {
            dir: dir.to_path_buf(),
            pos,
            file: None,
            payload: Vec::new(),
            unpacked: Vec::new(),
            series: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// Where the next record is read from.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Moves to the start of the first segment after the current one that
    /// exists, if any.
    fn next_segment(&mut self) -> Result<Option<u32>, Error> {
        let cur = self.pos.segment;
        let next = list_segments(&self.dir)?.into_iter().find(|&n| n > cur);
        if let Some(n) = next {
            self.pos = Position::start_of(n);
            self.file = None;
        }
        Ok(next)
    }

    /// Opens the current segment at the current offset; `Ok(false)` when it
    /// is not there (yet, or any more).
    fn open(&mut self) -> Result<bool, Error> {
        let path = self.dir.join(segment_name(self.pos.segment));
        if !path.exists() {
            return Ok(false);
        }
        let Some(mut r) = open_checked(&path, SEGMENT_MAGIC)? else {
            // A segment whose header is not written yet.
            return Ok(false);
        };
        self.pos.offset = self.pos.offset.max(HEADER_LEN);
        r.seek(SeekFrom::Start(self.pos.offset))
            .map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
        self.file = Some(r);
        Ok(true)
    }

    /// Reads the next record. A record cut short or damaged at the end of
    /// the segment being written is waited for (its writer is still at it,
    /// or undid a failed write); one in a closed segment ends that segment.
    pub fn read(&mut self) -> Result<Tailed<'_>, Error> {
        loop {
            if self.file.is_none() && !self.open()? {
                let from = self.pos;
                let segs = list_segments(&self.dir)?;
                match segs.iter().find(|&&n| n >= from.segment) {
                    Some(&n) if n == from.segment => return Ok(Tailed::Idle),
                    Some(&n) => {
                        // Our segment is gone but later ones exist.
                        self.pos = Position::start_of(n);
                        return Ok(Tailed::Skipped { from, to: n });
                    }
                    None => return Ok(Tailed::Idle),
                }
            }
            let path = self.dir.join(segment_name(self.pos.segment));
            let Some(file) = self.file.as_mut() else {
                return Ok(Tailed::Idle);
            };
            let next = read_record(file, self.pos.offset, &mut self.payload).map_err(|source| {
                Error::Read {
                    path: path.clone(),
                    source,
                }
            })?;
            match next {
                Next::Record(typ, end) => {
                    let ok = match typ {
                        TYPE_SERIES | TYPE_SERIES_SNAPPY => {
                            self.series.clear();
                            let entries = if typ == TYPE_SERIES {
                                Some(&self.payload[..])
                            } else {
                                unsnappy(&self.payload, &mut self.unpacked)
                                    .then_some(&self.unpacked[..])
                            };
                            entries.is_some_and(|e| codec::get_series(e, &mut self.series))
                        }
                        TYPE_SAMPLES | TYPE_SAMPLES_PACKED => {
                            self.samples.clear();
                            if typ == TYPE_SAMPLES {
                                codec::get_samples(&self.payload, &mut self.samples)
                            } else {
                                codec::get_packed_samples(&self.payload, &mut self.samples)
                            }
                        }
                        // Checkpoint records never appear in segments.
                        _ => false,
                    };
                    if !ok {
                        let from = self.pos;
                        if let Some(to) = self.next_segment()? {
                            return Ok(Tailed::Skipped { from, to });
                        }
                        // The last segment: wait for the writer to go past.
                        self.file = None;
                        return Ok(Tailed::Idle);
                    }
                    self.pos.offset = end;
                    let rec = match typ {
                        TYPE_SERIES | TYPE_SERIES_SNAPPY => Record::Series(&self.series),
                        _ => Record::Samples(&self.samples),
                    };
                    return Ok(Tailed::Record(rec, self.pos));
                }
                Next::End if !self.later_segment_exists()? => {
                    // Caught up with the writer. Nothing of the next record
                    // was consumed, so the open file is read on from here at
                    // the next call (reopening it would read its header
                    // block again every poll).
                    return Ok(Tailed::Idle);
                }
                Next::End | Next::Torn(_) | Next::Corrupt(..) => {
                    self.file = None;
                    // Records of a segment are all written before the next
                    // segment is created, so once a later one exists, one
                    // more read of this one finds whatever came meanwhile,
                    // and what is still cut short then stays so.
                    if !self.later_segment_exists()? {
                        return Ok(Tailed::Idle);
                    }
                    if !self.open()? {
                        continue;
                    }
                    let Some(file) = self.file.as_mut() else {
                        continue;
                    };
                    let again = read_record(file, self.pos.offset, &mut self.payload).map_err(
                        |source| Error::Read {
                            path: path.clone(),
                            source,
                        },
                    )?;
                    self.file = None;
                    match again {
                        // Read properly on the next turn.
                        Next::Record(..) => continue,
                        Next::End => {
                            self.next_segment()?;
                            continue;
                        }
                        Next::Torn(_) | Next::Corrupt(..) => {
                            let from = self.pos;
                            if let Some(to) = self.next_segment()? {
                                return Ok(Tailed::Skipped { from, to });
                            }
                            return Ok(Tailed::Idle);
                        }
                    }
                }
            }
        }
    }

    fn later_segment_exists(&self) -> Result<bool, Error> {
        let cur = self.pos.segment;
        Ok(list_segments(&self.dir)?.into_iter().any(|n| n > cur))
    }
}

/// The segments that followers still need: a checkpoint deletes a segment
/// only when no holder's position is at or before it, or when the segment
/// was last written longer than `max_age` ago (so that a receiver that
/// never comes back cannot fill the disk).
#[derive(Debug)]
pub struct Keep {
    holders: Mutex<Vec<Weak<AtomicU32>>>,
    max_age_ms: AtomicU64,
}

impl Keep {
    pub fn new(max_age: Duration) -> Keep {
        Keep {
            holders: Mutex::new(Vec::new()),
            max_age_ms: AtomicU64::new(max_age.as_millis() as u64),
        }
    }

    /// A holder that keeps segments from `segment` on while it lives; the
    /// follower moves it forward as it goes.
    pub fn hold(&self, segment: u32) -> Arc<AtomicU32> {
        let h = Arc::new(AtomicU32::new(segment));
        let mut hs = self.holders.lock().unwrap_or_else(PoisonError::into_inner);
        hs.retain(|w| w.strong_count() > 0);
        hs.push(Arc::downgrade(&h));
        h
    }

    /// The lowest segment a holder needs, if any.
    pub fn lowest(&self) -> Option<u32> {
        let hs = self.holders.lock().unwrap_or_else(PoisonError::into_inner);
        hs.iter()
            .filter_map(|w| w.upgrade())
            .map(|h| h.load(Ordering::Acquire))
            .min()
    }

    /// Whether segment `n` of `dir` may be deleted.
    pub fn may_delete(&self, dir: &Path, n: u32) -> bool {
        let Some(low) = self.lowest() else {
            return true;
        };
        if n < low {
            return true;
        }
        let max_age = Duration::from_millis(self.max_age_ms.load(Ordering::Relaxed));
        let age = std::fs::metadata(dir.join(segment_name(n)))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if age.is_some_and(|a| a > max_age) {
            warn!(
                segment = n,
                max_age = ?max_age,
                "deleting a WAL segment that remote write has not sent yet: it is older than --storage.remote.wal-retention"
            );
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::wal::Wal;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("rm-tail-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn drain(t: &mut Tail, series: &mut Vec<SeriesRef>, samples: &mut Vec<(SeriesRef, i64)>) {
        loop {
            match t.read().unwrap() {
                Tailed::Record(Record::Series(s), _) => series.extend(s.iter().map(|x| x.0)),
                Tailed::Record(Record::Samples(s), _) => {
                    samples.extend(s.iter().map(|x| (x.0, x.1)))
                }
                Tailed::Idle => return,
                Tailed::Skipped { .. } => panic!("nothing should be skipped"),
            }
        }
    }

    #[test]
    fn follows_writes_across_segments_and_resumes_from_a_position() {
        let dir = tmp("follow");
        let wal = Wal::create(&dir, 1, 4096).unwrap();
        let mut t = Tail::new(&dir, Position::start_of(1));
        let (mut series, mut samples) = (Vec::new(), Vec::new());
        drain(&mut t, &mut series, &mut samples);
        assert!(samples.is_empty());
        let l = Labels::from_pairs([("__name__", "m")]);
        wal.log_series(7, &l);
        for i in 0..200i64 {
            wal.log_samples(&mut [(7u64, i, i as f64)].into_iter())
                .unwrap();
            if i % 50 == 0 {
                drain(&mut t, &mut series, &mut samples);
            }
        }
        drain(&mut t, &mut series, &mut samples);
        assert_eq!(series, vec![7]);
        assert_eq!(samples.len(), 200);
        assert!(samples.iter().enumerate().all(|(i, s)| s.1 == i as i64));
        assert!(wal.current_segment() > 1, "the test must cross segments");

        // From a position in the middle, the rest and nothing else.
        let mut t = Tail::new(&dir, Position::start_of(1));
        let mut mid = None;
        let mut n = 0;
        while let Tailed::Record(r, p) = t.read().unwrap() {
            if let Record::Samples(_) = r {
                n += 1;
                if n == 120 {
                    mid = Some(p);
                }
            }
        }
        let mut t = Tail::new(&dir, mid.unwrap());
        let (mut s2, mut rest) = (Vec::new(), Vec::new());
        drain(&mut t, &mut s2, &mut rest);
        assert_eq!(rest.len(), 80);
        assert_eq!(rest[0].1, 120);
    }

    #[test]
    fn a_missing_segment_is_skipped_and_reported() {
        let dir = tmp("skip");
        let wal = Wal::create(&dir, 1, 4096).unwrap();
        wal.log_series(1, &Labels::from_pairs([("__name__", "m")]));
        for i in 0..2000i64 {
            wal.log_samples(&mut [(1u64, i, 1.0)].into_iter()).unwrap();
        }
        let last = wal.current_segment();
        assert!(last >= 3);
        std::fs::remove_file(dir.join(segment_name(1))).unwrap();
        let mut t = Tail::new(&dir, Position::start_of(1));
        match t.read().unwrap() {
            Tailed::Skipped { from, to } => {
                assert_eq!(from.segment, 1);
                assert_eq!(to, 2);
            }
            _ => panic!("expected a skip"),
        }
        let (mut s, mut samples) = (Vec::new(), Vec::new());
        drain(&mut t, &mut s, &mut samples);
        assert!(!samples.is_empty());
    }
}
