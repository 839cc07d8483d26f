//! The per-target scrape cache: raw series bytes → final labels and storage
//! reference, plus which series each scrape saw, for staleness markers.
//!
//! Known series skip label parsing, target-label merging and relabeling;
//! only series new to the target pay for them (Prometheus's `scrapeCache`).

use rustc_hash::FxHashMap;

use crate::model::Labels;
use crate::storage::SeriesRef;

/// Scrapes after which an unseen series leaves the cache. It got its stale
/// marker long before; this only bounds memory under churn.
const EVICT_AFTER: u64 = 10;

pub struct Entry {
    pub labels: Labels,
    pub series_ref: SeriesRef,
    /// Last scrape that committed this series.
    last_iter: u64,
    /// Last scrape that parsed it (committed or not).
    seen_iter: u64,
    /// Samples with explicit timestamps are not tracked for staleness.
    pub track_staleness: bool,
}

#[derive(Default)]
pub struct Cache {
    series: FxHashMap<Box<[u8]>, Entry>,
    /// Series that metric relabeling dropped, so they are not relabeled again.
    dropped: FxHashMap<Box<[u8]>, u64>,
    /// The scrape in progress.
    iter: u64,
    /// The scrape attempt before it.
    prev_iter: u64,
}

/// What a lookup found.
pub enum Lookup<'c> {
    Known(&'c mut Entry),
    Dropped,
    Unknown,
}

impl Cache {
    /// Starts a new scrape.
    pub fn begin(&mut self) {
        self.prev_iter = self.iter;
        self.iter += 1;
    }

    pub fn lookup(&mut self, raw: &[u8]) -> Lookup<'_> {
        let iter = self.iter;
        if let Some(e) = self.series.get_mut(raw) {
            e.seen_iter = iter;
            return Lookup::Known(e);
        }
        if let Some(seen) = self.dropped.get_mut(raw) {
            *seen = iter;
            return Lookup::Dropped;
        }
        Lookup::Unknown
    }

    pub fn insert(
        &mut self,
        raw: &[u8],
        labels: Labels,
        series_ref: SeriesRef,
        track_staleness: bool,
    ) {
        self.series.insert(
            raw.into(),
            Entry {
                labels,
                series_ref,
                last_iter: 0,
                seen_iter: self.iter,
                track_staleness,
            },
        );
    }

    pub fn insert_dropped(&mut self, raw: &[u8]) {
        self.dropped.insert(raw.into(), self.iter);
    }

    /// Ends a committed scrape: series it saw become current, series the
    /// previous scrape saw but this one did not are passed to `stale`.
    pub fn commit(&mut self, mut stale: impl FnMut(&mut Entry)) {
        let (iter, prev) = (self.iter, self.prev_iter);
        self.series.retain(|_, e| {
            if e.seen_iter == iter {
                e.last_iter = iter;
            } else if e.last_iter == prev && prev != 0 && e.track_staleness {
                stale(e);
            }
            e.last_iter + EVICT_AFTER >= iter
        });
        self.dropped.retain(|_, seen| *seen + EVICT_AFTER >= iter);
    }

    /// Ends a failed scrape: every series of the previous scrape goes stale.
    pub fn fail(&mut self, mut stale: impl FnMut(&mut Entry)) {
        let prev = self.prev_iter;
        for e in self.series.values_mut() {
            if e.last_iter == prev && prev != 0 && e.track_staleness {
                stale(e);
            }
        }
    }

    /// Series committed by the most recent successful scrape, if it was the
    /// latest attempt: what a removed target must mark stale.
    pub fn current(&mut self, mut f: impl FnMut(&mut Entry)) {
        let iter = self.iter;
        for e in self.series.values_mut() {
            if e.last_iter == iter && e.track_staleness {
                f(e);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}
