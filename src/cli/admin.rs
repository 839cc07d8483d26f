//! The store side of `--web.enable-admin-api`: deletions through the data
//! directory's tombstones, clean-up of tombstones, and snapshots written as
//! a new raymon data directory under `<data>/snapshots/<name>`, which
//! `raymon serve --storage.tsdb.path=<that dir>` serves as it was.
//!
//! A snapshot reads every series through the same (tombstoned) view queries
//! use and appends it into a fresh store, one metric name at a time, so it
//! is consistent per series while scraping goes on, and never copies files
//! that the store's background work may be rewriting.

use std::path::PathBuf;
use std::sync::Arc;

use crate::model::{Labels, MatchOp, Matcher};
use crate::storage::Queryable;
use crate::tsdb::changes::Changes;
use crate::tsdb::tombstones::Tombstones;
use crate::tsdb::{Db, DbOptions};
use crate::web::admin::Admin;
use crate::web::params::{MAX_TIME_MS, MIN_TIME_MS};

/// Prometheus's block range: a snapshot without the head keeps the
/// windows before the newest one.
const WINDOW_MS: i64 = 2 * 3600 * 1000;

pub(crate) struct StoreAdmin {
    /// The store's own view (deletions are clamped against it).
    pub raw: Arc<dyn Queryable>,
    /// What queries see: `raw` without deleted samples.
    pub visible: Arc<dyn Queryable>,
    pub stones: Arc<Tombstones>,
    /// Told of each deletion, for the range-query cache.
    pub changes: Arc<Changes>,
    pub data_dir: PathBuf,
    /// `--storage.tsdb.retention.time` in milliseconds; 0 for none.
    pub retention_ms: i64,
    pub now_ms: fn() -> i64,
}

impl Admin for StoreAdmin {
    fn delete_series(&self, sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Result<(), String> {
        let _changed = self.changes.begin(mint, maxt);
        let n = self
            .stones
            .delete(self.raw.as_ref(), sets, mint, maxt)
            .map_err(|e| e.to_string())?;
        tracing::info!(series = n, mint, maxt, "series deleted");
        Ok(())
    }

    fn clean_tombstones(&self) -> Result<(), String> {
        let oldest = if self.retention_ms > 0 {
            (self.now_ms)().saturating_sub(self.retention_ms)
        } else {
            MIN_TIME_MS
        };
        self.stones.clean(oldest).map_err(|e| e.to_string())?;
        tracing::info!(series = self.stones.len(), "tombstones cleaned");
        Ok(())
    }

    fn snapshot(&self, name: &str, skip_head: bool) -> Result<(), String> {
        let dir = self.data_dir.join("snapshots").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create snapshot directory: {e}"))?;
        self.write_snapshot(&dir, skip_head)
            .map_err(|e| format!("create snapshot: {e}"))
    }
}

impl StoreAdmin {
    fn write_snapshot(&self, dir: &std::path::Path, skip_head: bool) -> Result<(), String> {
        let maxt = if skip_head {
            // The newest window is what Prometheus's head holds.
            let newest = {
                let q = self
                    .visible
                    .querier(MIN_TIME_MS, MAX_TIME_MS)
                    .map_err(|e| e.to_string())?;
                let names = q.label_values("__name__", &[]).map_err(|e| e.to_string())?;
                let mut newest = i64::MIN;
                for n in &names {
                    for s in q.select(&[name_matcher(n)?]).map_err(|e| e.to_string())? {
                        if let Some(p) = s.samples.last() {
                            newest = newest.max(p.t);
                        }
                    }
                }
                newest
            };
            newest.div_euclid(WINDOW_MS) * WINDOW_MS - 1
        } else {
            MAX_TIME_MS
        };
        let opts = DbOptions {
            retention_ms: 0,
            ..DbOptions::default()
        };
        let (db, _) = Db::open(dir, opts).map_err(|e| e.to_string())?;
        let copied = self.copy_into(&db, maxt);
        let closed = db.close().map_err(|e| e.to_string());
        let (series, samples) = copied?;
        closed?;
        tracing::info!(dir = %dir.display(), series, samples, skip_head, "snapshot written");
        Ok(())
    }

    /// Appends every visible sample up to `maxt` into `db`, one metric name
    /// at a time; returns the series and samples copied.
    fn copy_into(&self, db: &Db, maxt: i64) -> Result<(usize, usize), String> {
        let q = self
            .visible
            .querier(MIN_TIME_MS, maxt)
            .map_err(|e| e.to_string())?;
        let names = q.label_values("__name__", &[]).map_err(|e| e.to_string())?;
        let (mut series, mut samples) = (0, 0);
        for n in &names {
            let mut app = crate::storage::Appendable::appender(db.head());
            for s in q.select(&[name_matcher(n)?]).map_err(|e| e.to_string())? {
                let mut r = 0;
                let labels: &Labels = &s.labels;
                for p in &s.samples {
                    r = app.append(r, labels, p.t, p.v).map_err(|e| e.to_string())?;
                    samples += 1;
                }
                series += 1;
            }
            app.commit().map_err(|e| e.to_string())?;
        }
        Ok((series, samples))
    }
}

fn name_matcher(name: &str) -> Result<Matcher, String> {
    Matcher::new(MatchOp::Equal, "__name__", name).map_err(|e| e.to_string())
}
