//! A storage wrapper that counts what goes into the store and what it
//! refuses, for `prometheus_tsdb_head_samples_appended_total` and the
//! rejection counters, without touching the store itself.
//!
//! Counts are kept in plain fields of the appender and added to the shared
//! atomics once per commit, so the per-sample cost is one increment of a
//! local. Samples that the store accepts but then drops at commit (a
//! concurrent appender overtook them) are counted as appended.

use std::sync::Arc;

use super::TsdbMetrics;
use crate::model::Labels;
use crate::storage::{Appendable, Appender, Error, Rejected, SeriesRef};

/// Wraps an [`Appendable`], counting into `metrics`.
pub struct CountingAppendable {
    inner: Arc<dyn Appendable>,
    metrics: Arc<TsdbMetrics>,
}

impl CountingAppendable {
    pub fn new(inner: Arc<dyn Appendable>, metrics: Arc<TsdbMetrics>) -> CountingAppendable {
        CountingAppendable { inner, metrics }
    }
}

impl Appendable for CountingAppendable {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(CountingAppender {
            inner: self.inner.appender(),
            metrics: self.metrics.clone(),
            counts: Counts::default(),
        })
    }
}

#[derive(Default)]
struct Counts {
    ok: u64,
    out_of_order: u64,
    out_of_bounds: u64,
    duplicate: u64,
    max_t: i64,
}

struct CountingAppender {
    inner: Box<dyn Appender>,
    metrics: Arc<TsdbMetrics>,
    counts: Counts,
}

impl CountingAppender {
    /// Rejections count whether or not the batch is committed: the sample
    /// was refused either way.
    fn flush_rejections(&self) {
        let c = &self.counts;
        self.metrics.out_of_order.add(c.out_of_order);
        self.metrics.out_of_bounds.add(c.out_of_bounds);
        self.metrics.duplicate.add(c.duplicate);
    }
}

impl Appender for CountingAppender {
    #[inline]
    fn append(
        &mut self,
        hint: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Error> {
        match self.inner.append(hint, labels, t, v) {
            Ok(r) => {
                self.counts.ok += 1;
                self.counts.max_t = self.counts.max_t.max(t);
                Ok(r)
            }
            Err(e) => {
                match e {
                    Error::OutOfOrderSample => self.counts.out_of_order += 1,
                    Error::OutOfBounds => self.counts.out_of_bounds += 1,
                    Error::DuplicateSampleForTimestamp => self.counts.duplicate += 1,
                    _ => {}
                }
                Err(e)
            }
        }
    }

    fn commit(self: Box<Self>) -> Result<Rejected, Error> {
        self.flush_rejections();
        let CountingAppender {
            inner,
            metrics,
            counts,
        } = *self;
        match inner.commit() {
            Ok(rejected) => {
                // Samples appended by reference alone are checked at commit.
                metrics.out_of_order.add(rejected.out_of_order);
                metrics.duplicate.add(rejected.duplicate);
                metrics
                    .samples_appended
                    .add(counts.ok.saturating_sub(rejected.total()));
                if counts.ok > 0 {
                    metrics
                        .highest_timestamp_ms
                        .fetch_max(counts.max_t, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(rejected)
            }
            Err(e) => {
                metrics.commit_failures.inc();
                Err(e)
            }
        }
    }

    fn rollback(self: Box<Self>) {
        self.flush_rejections();
        self.inner.rollback();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::{Head, HeadOptions};

    #[test]
    fn counts_committed_samples_and_rejections() {
        let head = Arc::new(Head::new(HeadOptions::default()));
        let m = Arc::new(TsdbMetrics::default());
        let store = CountingAppendable::new(head, m.clone());
        let l = Labels::from_pairs([("__name__", "x")]);
        let mut app = store.appender();
        app.append(0, &l, 10, 1.0).unwrap();
        app.append(0, &l, 20, 1.0).unwrap();
        assert!(app.append(0, &l, 15, 1.0).is_err());
        assert!(app.append(0, &l, 20, 2.0).is_err());
        assert_eq!(m.samples_appended.get(), 0);
        app.commit().unwrap();
        assert_eq!(m.samples_appended.get(), 2);
        assert_eq!(m.out_of_order.get(), 1);
        assert_eq!(m.duplicate.get(), 1);

        let mut app = store.appender();
        app.append(0, &l, 30, 1.0).unwrap();
        app.rollback();
        assert_eq!(m.samples_appended.get(), 2);
    }
}
