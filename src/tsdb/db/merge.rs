//! Merging a window's chunks (`kv.md`, "Merging a window"): once the head
//! is past a chunk-range window (2 h, aligned as Prometheus aligns its
//! blocks), each series' 120-sample chunks of that window become one chunk
//! on disk. Every persisted chunk carries about 40 bytes besides its samples
//! (key, end time, first timestamp and value in full); over 120 samples that
//! is a third of a byte a sample, over a window's 1,440 (5 s scrapes) a
//! fortieth. The head keeps cutting chunks at 120 samples, as Prometheus
//! does: only their persisted form changes.
//!
//! The work goes a few hundred series a tick on the background thread, so
//! that a million series spread their merge over half an hour instead of
//! stalling scrapes at the window's end.

use std::time::Instant;

use tracing::info;

use super::{Db, Error, Maintenance};
use crate::storage::SeriesRef;
use crate::tsdb::kv::MergeStats;

/// Series whose chunks one step of the background thread merges.
pub const SERIES_PER_STEP: usize = 512;

/// Series of the `ranges` table one read takes while looking for those that
/// have samples in the window.
const RANGES_PER_READ: usize = 1024;

/// Where merging stands.
#[derive(Debug, Default)]
pub(super) struct MergeCursor {
    /// Windows that start before this are done; `None` until the first
    /// window after an open, which is the latest complete one.
    done_before: Option<i64>,
    /// The window being merged, the last series looked at in it, what it
    /// did so far and since when.
    window: Option<i64>,
    after: Option<SeriesRef>,
    window_stats: MergeStats,
    window_started: Option<Instant>,
    /// Windows finished, and everything done, since open.
    pub(super) windows: u64,
    pub(super) total: MergeStats,
}

impl Db {
    /// The end of the last window complete enough to merge: the head is half
    /// a window past it, so every series still scraped has cut the window's
    /// last chunk and moved it to disk. `None` without samples.
    fn complete_windows_end(&self) -> Option<i64> {
        let range = self.head.options().chunk_range;
        let (_, newest) = self.head.time_bounds()?;
        (range > 0).then(|| (newest - range / 2).div_euclid(range) * range)
    }

    /// Merges the chunks of up to `budget` series in the current window, or
    /// starts the next complete one. Returns whether it did anything.
    pub(super) fn merge_step(&self, m: &mut Maintenance, budget: usize) -> Result<bool, Error> {
        let range = self.head.options().chunk_range;
        let Some(complete_end) = self.complete_windows_end() else {
            return Ok(false);
        };
        let c = &mut m.merge;
        let start = match c.window {
            Some(w) => w,
            None => {
                let next = *c.done_before.get_or_insert(complete_end - range);
                if next + range > complete_end {
                    return Ok(false);
                }
                c.window = Some(next);
                c.after = None;
                c.window_stats = MergeStats::default();
                c.window_started = Some(Instant::now());
                next
            }
        };
        let end = start + range;
        let mut picked: Vec<SeriesRef> = Vec::new();
        let mut scanned = 0;
        let mut finished = false;
        'read: while picked.len() < budget && scanned < budget.saturating_mul(16) {
            let batch = self.kv.ranges_after(c.after, RANGES_PER_READ)?;
            if batch.is_empty() {
                finished = true;
                break;
            }
            for (r, (first, last)) in batch {
                scanned += 1;
                c.after = Some(r);
                if first < end && last >= start {
                    picked.push(r);
                    if picked.len() >= budget {
                        break 'read;
                    }
                }
            }
        }
        // A series that still holds samples of the window in memory (idle,
        // its last chunk not cut yet) keeps its chunks as they are.
        let busy = self.head.in_memory_before(&picked, end);
        picked.retain(|r| !busy.contains(r));
        let st = self.kv.merge_chunks(&picked, start, end)?;
        c.window_stats += st;
        c.total += st;
        if finished {
            let ws = c.window_stats;
            info!(
                window_start = start,
                series = ws.series,
                chunks_before = ws.chunks_read,
                chunks_after = ws.chunks_left,
                refused = ws.refused,
                secs = c.window_started.map_or(0.0, |t| t.elapsed().as_secs_f64()),
                "merged the chunks of a window"
            );
            c.done_before = Some(end);
            c.window = None;
            c.after = None;
            c.windows += 1;
        }
        Ok(true)
    }

    /// What the background thread does once a tick: merges the chunks of up
    /// to `budget` series of the current window, or starts the next complete
    /// one. Returns whether it did anything.
    pub fn merge_some(&self, budget: usize) -> Result<bool, Error> {
        let mut m = self.lock_maintenance();
        self.merge_step(&mut m, budget)
    }

    /// Merges the chunks of every complete window from the oldest sample on
    /// (not only from the latest window, as the background thread starts
    /// after an open): for a backfill, and to measure the store. Returns
    /// what it did.
    pub fn merge_windows(&self) -> Result<MergeStats, Error> {
        let mut m = self.lock_maintenance();
        let range = self.head.options().chunk_range;
        if let (Some((oldest, _)), true) = (self.head.time_bounds(), range > 0)
            && m.merge.window.is_none()
        {
            let first = oldest.div_euclid(range) * range;
            let done = m.merge.done_before.get_or_insert(first);
            *done = (*done).min(first);
        }
        let before = m.merge.total;
        while self.merge_step(&mut m, usize::MAX)? {}
        self.kv.persist()?;
        let after = m.merge.total;
        Ok(MergeStats {
            series: after.series - before.series,
            chunks_read: after.chunks_read - before.chunks_read,
            chunks_left: after.chunks_left - before.chunks_left,
            refused: after.refused - before.refused,
        })
    }
}
