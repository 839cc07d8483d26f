//! The store of agent mode (`--enable-feature=agent`, as Prometheus 2.42's
//! `tsdb/agent`): samples go to the WAL and nowhere else; memory holds only
//! each series' labels, reference and last timestamp. remote_write's queues
//! read the WAL; every truncation interval the WAL moves to a new segment,
//! the live series are logged again at its start, and the segments before
//! it go once every queue has sent them (`wal::Keep`, bounded in age).
//!
//! Knows nothing of scraping or sending; it is an [`Appendable`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustc_hash::FxHashMap;
use tracing::{error, info, warn};

use super::ticker::Ticker;
use super::wal::{self, Keep, Record, Wal};
use crate::model::Labels;
use crate::storage::{self, Appendable, Appender, Rejected, SeriesRef};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wal(#[from] wal::Error),
}

struct Series {
    labels: Labels,
    last_t: i64,
    /// The segment of its last sample: a series idle since before every
    /// kept segment is forgotten at truncation.
    last_segment: u32,
}

#[derive(Default)]
struct Inner {
    by_ref: FxHashMap<SeriesRef, Series>,
    by_hash: FxHashMap<u64, Vec<SeriesRef>>,
}

/// The agent's store.
pub struct AgentDb {
    dir: PathBuf,
    wal: Arc<Wal>,
    inner: Mutex<Inner>,
    next_ref: AtomicU64,
    keep: Option<Arc<Keep>>,
    background: Ticker,
    pub truncations: AtomicU64,
}

impl std::fmt::Debug for AgentDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentDb").field("dir", &self.dir).finish()
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AgentDb {
    /// Opens the WAL in `dir/wal`: every segment is read for its series
    /// (references stay as they were) and last timestamps, then writing
    /// goes on in a new segment.
    pub fn open(dir: &Path, keep: Option<Arc<Keep>>) -> Result<AgentDb, Error> {
        let wal_dir = dir.join("wal");
        let mut inner = Inner::default();
        let mut max_ref = 0;
        let st = wal::replay(&wal_dir, None, &mut |r| match r {
            Record::Series(s) => {
                for (r, l) in s {
                    max_ref = max_ref.max(*r);
                    insert(&mut inner, *r, l.clone(), 0);
                }
            }
            Record::Samples(s) => {
                for &(r, t, _) in s {
                    if let Some(x) = inner.by_ref.get_mut(&r) {
                        x.last_t = x.last_t.max(t);
                    }
                }
            }
        })?;
        if let Some(c) = &st.corruption {
            error!(corruption = %c, "the agent WAL was corrupt; later records were set aside");
        }
        let next = wal::list_segments(&wal_dir)?.last().map_or(1, |n| n + 1);
        for s in inner.by_ref.values_mut() {
            s.last_segment = next;
        }
        let wal = Arc::new(Wal::create(&wal_dir, next, wal::DEFAULT_SEGMENT_SIZE)?);
        info!(
            series = inner.by_ref.len(),
            samples = st.samples,
            "agent WAL opened"
        );
        Ok(AgentDb {
            dir: dir.to_path_buf(),
            wal,
            inner: Mutex::new(inner),
            next_ref: AtomicU64::new(max_ref + 1),
            keep,
            background: Ticker::default(),
            truncations: AtomicU64::new(0),
        })
    }

    pub fn wal(&self) -> &Arc<Wal> {
        &self.wal
    }

    pub fn num_series(&self) -> usize {
        lock(&self.inner).by_ref.len()
    }

    /// The labels of a series by reference.
    pub fn series_labels(&self, r: SeriesRef) -> Option<Labels> {
        lock(&self.inner).by_ref.get(&r).map(|s| s.labels.clone())
    }

    fn get_or_create(&self, labels: &Labels) -> SeriesRef {
        let h = labels.stable_hash();
        let mut inner = lock(&self.inner);
        if let Some(refs) = inner.by_hash.get(&h) {
            for r in refs {
                if inner.by_ref.get(r).is_some_and(|s| &s.labels == labels) {
                    return *r;
                }
            }
        }
        let r = self.next_ref.fetch_add(1, Ordering::Relaxed);
        let seg = self.wal.current_segment();
        insert(&mut inner, r, labels.clone(), seg);
        // Queued now, written in front of the next samples record.
        self.wal.log_series(r, labels);
        r
    }

    /// Moves to a new segment, logs the live series at its start, forgets
    /// series idle since before every kept segment, and deletes the
    /// segments no queue needs.
    pub fn truncate(&self) -> Result<(), Error> {
        let closed = self.wal.rotate()?;
        let wal_dir = self.dir.join("wal");
        let lowest = self
            .keep
            .as_ref()
            .and_then(|k| k.lowest())
            .unwrap_or(closed + 1)
            .min(closed + 1);
        {
            let mut inner = lock(&self.inner);
            let before = inner.by_ref.len();
            let gone: Vec<SeriesRef> = inner
                .by_ref
                .iter()
                .filter(|(_, s)| s.last_segment < lowest)
                .map(|(r, _)| *r)
                .collect();
            for r in &gone {
                if let Some(s) = inner.by_ref.remove(r) {
                    let h = s.labels.stable_hash();
                    if let Some(v) = inner.by_hash.get_mut(&h) {
                        v.retain(|x| x != r);
                        if v.is_empty() {
                            inner.by_hash.remove(&h);
                        }
                    }
                }
            }
            for (r, s) in &inner.by_ref {
                self.wal.log_series(*r, &s.labels);
            }
            if before != inner.by_ref.len() {
                info!(
                    forgotten = before - inner.by_ref.len(),
                    "agent: idle series forgotten"
                );
            }
        }
        self.wal.flush_series()?;
        self.wal.sync()?;
        let mut deleted = 0;
        for n in wal::list_segments(&wal_dir)? {
            if n <= closed && self.keep.as_ref().is_none_or(|k| k.may_delete(&wal_dir, n)) {
                match std::fs::remove_file(wal_dir.join(wal::segment_name(n))) {
                    Ok(()) => deleted += 1,
                    Err(e) => warn!(error = %e, segment = n, "cannot delete a WAL segment"),
                }
            }
        }
        self.truncations.fetch_add(1, Ordering::Relaxed);
        info!(segment = closed, deleted, "agent WAL truncated");
        Ok(())
    }

    /// Syncs the WAL every second and truncates every `every`.
    pub fn start_background(self: &Arc<Self>, every: Duration) {
        let db = Arc::downgrade(self);
        let mut last = std::time::Instant::now();
        let started =
            self.background
                .start("raymon-agent-wal", Duration::from_secs(1), move || {
                    let Some(db) = db.upgrade() else { return false };
                    if let Err(e) = db.wal.sync() {
                        error!(error = %e, "cannot sync the agent WAL");
                    }
                    if last.elapsed() >= every {
                        last = std::time::Instant::now();
                        if let Err(e) = db.truncate() {
                            error!(error = %e, "agent WAL truncation failed; it keeps everything");
                        }
                    }
                    true
                });
        if let Err(e) = started {
            error!(error = %e, "cannot start the agent WAL thread");
        }
    }

    /// Stops the background thread and syncs the WAL. Nothing is deleted:
    /// the queues go on from their positions after the next start.
    pub fn close(&self) -> Result<(), Error> {
        self.background.stop();
        self.wal.flush_series()?;
        self.wal.sync()?;
        Ok(())
    }
}

fn insert(inner: &mut Inner, r: SeriesRef, labels: Labels, segment: u32) {
    let h = labels.stable_hash();
    if let Some(old) = inner.by_ref.insert(
        r,
        Series {
            labels,
            last_t: i64::MIN,
            last_segment: segment,
        },
    ) {
        let oh = old.labels.stable_hash();
        if let Some(v) = inner.by_hash.get_mut(&oh) {
            v.retain(|x| *x != r);
        }
    }
    inner.by_hash.entry(h).or_default().push(r);
}

impl Appendable for Arc<AgentDb> {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(AgentAppender {
            db: self.clone(),
            samples: Vec::new(),
        })
    }
}

struct AgentAppender {
    db: Arc<AgentDb>,
    samples: Vec<(SeriesRef, i64, f64)>,
}

impl Appender for AgentAppender {
    fn append(
        &mut self,
        hint: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, storage::Error> {
        let r = if labels.is_empty() {
            if hint == 0 {
                return Err(storage::Error::EmptyLabelset);
            }
            // Checked at commit, with the others.
            hint
        } else {
            self.db.get_or_create(labels)
        };
        self.samples.push((r, t, v));
        Ok(r)
    }

    fn commit(self: Box<Self>) -> Result<Rejected, storage::Error> {
        let AgentAppender { db, mut samples } = *self;
        let mut rejected = Rejected::default();
        {
            let seg = db.wal.current_segment();
            let mut inner = lock(&db.inner);
            samples.retain(|&(r, t, _)| match inner.by_ref.get_mut(&r) {
                None => {
                    rejected.unknown += 1;
                    false
                }
                // As Prometheus's agent: older than the series' last
                // sample is out of order; the same time is taken.
                Some(s) if t < s.last_t => {
                    rejected.out_of_order += 1;
                    false
                }
                Some(s) => {
                    s.last_t = t;
                    s.last_segment = seg;
                    true
                }
            });
        }
        db.wal
            .log_samples(&mut samples.iter().copied())
            .map_err(|e| storage::Error::Other(e.to_string()))?;
        Ok(rejected)
    }

    fn rollback(self: Box<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("rm-agent-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn appends_go_to_the_wal_and_references_survive_a_restart() {
        let dir = tmp("restart");
        let db = Arc::new(AgentDb::open(&dir, None).unwrap());
        let l = Labels::from_pairs([("__name__", "up"), ("job", "ray")]);
        let mut app = db.appender();
        let r = app.append(0, &l, 1000, 1.0).unwrap();
        app.append(r, &Labels::new(), 2000, 1.0).unwrap();
        let rej = app.commit().unwrap();
        assert_eq!(rej, Rejected::default());
        let mut app = db.appender();
        app.append(r, &Labels::new(), 1500, 1.0).unwrap();
        app.append(999, &Labels::new(), 1500, 1.0).unwrap();
        let rej = app.commit().unwrap();
        assert_eq!(rej.out_of_order, 1);
        assert_eq!(rej.unknown, 1);
        db.close().unwrap();
        drop(db);
        let db = Arc::new(AgentDb::open(&dir, None).unwrap());
        assert_eq!(db.series_labels(r), Some(l.clone()));
        let mut app = db.appender();
        assert_eq!(app.append(0, &l, 3000, 2.0).unwrap(), r);
        app.commit().unwrap();
    }

    #[test]
    fn truncation_keeps_what_a_holder_needs_and_relogs_live_series() {
        let dir = tmp("truncate");
        let keep = Arc::new(Keep::new(Duration::from_secs(3600)));
        let db = Arc::new(AgentDb::open(&dir, Some(keep.clone())).unwrap());
        let l = Labels::from_pairs([("__name__", "m")]);
        let mut app = db.appender();
        let r = app.append(0, &l, 1000, 1.0).unwrap();
        app.commit().unwrap();
        let holder = keep.hold(1);
        db.truncate().unwrap();
        let segs = wal::list_segments(&dir.join("wal")).unwrap();
        assert_eq!(
            segs.first(),
            Some(&1),
            "segment 1 is still needed: {segs:?}"
        );
        // Still scraped: appended in segment 2.
        let mut app = db.appender();
        app.append(r, &Labels::new(), 2000, 1.0).unwrap();
        app.commit().unwrap();
        holder.store(2, Ordering::Release);
        db.truncate().unwrap();
        let segs = wal::list_segments(&dir.join("wal")).unwrap();
        assert!(!segs.contains(&1), "{segs:?}");
        // The series is found again after a restart from what is left.
        db.close().unwrap();
        drop(db);
        drop(holder);
        let db = AgentDb::open(&dir, None).unwrap();
        assert_eq!(db.series_labels(r), Some(l));
    }
}
