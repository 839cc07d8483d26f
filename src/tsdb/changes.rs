//! The store's change signal: which time ranges of stored samples changed
//! since a reader last looked, for readers that keep derived answers (the
//! range-query cache) and must know which of them still hold.
//!
//! Every change (a committed batch of appends, a deletion, retention) is
//! announced twice: [`Changes::begin`] before it can become visible, which
//! puts its range among the changes in flight, and the drop of the returned
//! [`Pending`] after it is visible, which gives it a generation. A reader
//! takes [`Changes::generation`] before it reads the store, and later asks
//! [`Changes::since`] that generation: the answer covers every change that
//! may be visible now and that its read may have missed (those finished
//! after the generation was taken, and those still in flight).
//!
//! [`Tracked`] wraps an [`Appendable`] and announces each commit with the
//! lowest and highest timestamp it held. Knows nothing of queries.

use std::sync::{Arc, Mutex, PoisonError};

use crate::model::Labels;
use crate::storage::{Appendable, Appender, Error, Rejected, SeriesRef};

/// Finished changes remembered; a reader whose generation is older than
/// all of them gets [`Since::Unknown`]. A change only takes a slot of its
/// own when a reader took a generation since the one before (otherwise it
/// widens the newest), so this bounds readers between two looks, not writes.
const KEPT: usize = 1024;

/// The timestamps (ms, inclusive) a change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub lo: i64,
    pub hi: i64,
}

/// What changed since a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// These spans, possibly overlapping; empty when nothing changed.
    Spans(Vec<Span>),
    /// Too long ago to say: treat everything as changed.
    Unknown,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    /// Whether a reader took `generation` since it last moved.
    observed: bool,
    /// Finished changes by generation, oldest first.
    done: std::collections::VecDeque<(u64, Span)>,
    /// Changes begun and not finished, by id.
    in_flight: Vec<(u64, Span)>,
    next_id: u64,
}

/// The change signal; shared by the writers and readers of one store.
#[derive(Debug, Default)]
pub struct Changes {
    state: Mutex<State>,
}

/// A change in flight; dropping it marks it finished (visible).
#[must_use = "the change counts as finished when this is dropped"]
pub struct Pending<'a> {
    changes: &'a Changes,
    id: u64,
    span: Span,
}

impl Changes {
    pub fn new() -> Changes {
        Changes::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current generation, for a reader about to read the store.
    pub fn generation(&self) -> u64 {
        let mut s = self.lock();
        s.observed = true;
        s.generation
    }

    /// Announces a change of samples with timestamps in `lo..=hi` that is
    /// about to become visible.
    pub fn begin(&self, lo: i64, hi: i64) -> Pending<'_> {
        let span = Span {
            lo: lo.min(hi),
            hi: hi.max(lo),
        };
        let mut s = self.lock();
        s.next_id += 1;
        let id = s.next_id;
        s.in_flight.push((id, span));
        Pending {
            changes: self,
            id,
            span,
        }
    }

    fn finish(&self, id: u64, span: Span) {
        let mut s = self.lock();
        s.in_flight.retain(|(i, _)| *i != id);
        if !s.observed
            && let Some((_, last)) = s.done.back_mut()
        {
            // Nobody took the newest generation: no reader can tell this
            // change from the one before, so they share a generation.
            last.lo = last.lo.min(span.lo);
            last.hi = last.hi.max(span.hi);
            return;
        }
        s.generation += 1;
        s.observed = false;
        let g = s.generation;
        if s.done.len() == KEPT {
            s.done.pop_front();
        }
        s.done.push_back((g, span));
    }

    /// What may have changed, as seen by a reader that took `generation`
    /// before reading: every change finished after it and every change in
    /// flight.
    pub fn since(&self, generation: u64) -> Since {
        let s = self.lock();
        if generation < s.generation {
            // The oldest kept change must directly follow `generation`.
            match s.done.front() {
                Some((g, _)) if *g <= generation + 1 => {}
                _ => return Since::Unknown,
            }
        }
        let mut spans: Vec<Span> = s
            .done
            .iter()
            .filter(|(g, _)| *g > generation)
            .map(|(_, sp)| *sp)
            .collect();
        spans.extend(s.in_flight.iter().map(|(_, sp)| *sp));
        Since::Spans(spans)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.changes.finish(self.id, self.span);
    }
}

/// An [`Appendable`] that announces every commit to a [`Changes`].
pub struct Tracked {
    inner: Arc<dyn Appendable>,
    changes: Arc<Changes>,
}

impl Tracked {
    pub fn new(inner: Arc<dyn Appendable>, changes: Arc<Changes>) -> Tracked {
        Tracked { inner, changes }
    }
}

impl Appendable for Tracked {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(TrackedAppender {
            inner: self.inner.appender(),
            changes: self.changes.clone(),
            lo: i64::MAX,
            hi: i64::MIN,
        })
    }
}

struct TrackedAppender {
    inner: Box<dyn Appender>,
    changes: Arc<Changes>,
    lo: i64,
    hi: i64,
}

impl Appender for TrackedAppender {
    #[inline]
    fn append(
        &mut self,
        hint: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Error> {
        // Refused samples count too: cheaper than telling, and only wider.
        self.lo = self.lo.min(t);
        self.hi = self.hi.max(t);
        self.inner.append(hint, labels, t, v)
    }

    fn commit(self: Box<Self>) -> Result<Rejected, Error> {
        let TrackedAppender {
            inner,
            changes,
            lo,
            hi,
        } = *self;
        if lo > hi {
            return inner.commit();
        }
        let _pending = changes.begin(lo, hi);
        // A failed commit may still have made part of the batch visible.
        inner.commit()
    }

    fn rollback(self: Box<Self>) {
        self.inner.rollback();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::Head;

    fn spans(s: Since) -> Vec<(i64, i64)> {
        match s {
            Since::Spans(v) => v.iter().map(|s| (s.lo, s.hi)).collect(),
            Since::Unknown => panic!("unknown"),
        }
    }

    #[test]
    fn a_reader_sees_changes_after_its_generation_and_in_flight() {
        let c = Changes::new();
        let g0 = c.generation();
        drop(c.begin(50, 10));
        let g1 = c.generation();
        let p = c.begin(100, 200);
        assert_eq!(spans(c.since(g0)), vec![(10, 50), (100, 200)]);
        assert_eq!(spans(c.since(g1)), vec![(100, 200)]);
        drop(p);
        assert_eq!(spans(c.since(g1)), vec![(100, 200)]);
        let g2 = c.generation();
        assert!(spans(c.since(g2)).is_empty());
    }

    #[test]
    fn unobserved_changes_share_a_generation_and_old_readers_get_unknown() {
        let c = Changes::new();
        let g0 = c.generation();
        for i in 0..10_000 {
            drop(c.begin(i, i));
        }
        assert_eq!(spans(c.since(g0)), vec![(0, 9_999)]);
        for i in 0..(KEPT as i64 + 1) {
            c.generation();
            drop(c.begin(i, i));
        }
        assert_eq!(c.since(g0), Since::Unknown);
    }

    #[test]
    fn tracked_commits_announce_their_time_range() {
        let head: Arc<dyn Appendable> = Arc::new(Head::default());
        let c = Arc::new(Changes::new());
        let store = Tracked::new(head, c.clone());
        let g = c.generation();
        let l = Labels::from_pairs([("__name__", "x")]);
        let mut app = store.appender();
        app.append(0, &l, 30, 1.0).unwrap();
        app.append(0, &l, 70, 1.0).unwrap();
        app.commit().unwrap();
        let mut app = store.appender();
        app.append(0, &l, 500, 1.0).unwrap();
        app.rollback();
        assert_eq!(spans(c.since(g)), vec![(30, 70)]);
    }
}
