//! Appending: `HeadAppender` buffers a batch per shard, checks each sample
//! against its series, and on commit logs the batch (the WAL) and applies
//! it under each shard's lock, at most `LOCKED_SAMPLES` at a time.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::MutexGuard;
use rustc_hash::FxHashMap;

use crate::model::Labels;
use crate::storage::{Appendable, Appender, Error, Rejected, SeriesRef};

use super::{series::*, shards::*};

/// An appender's per-batch buffers.
#[derive(Default)]
pub(super) struct AppendBuffers {
    pub(super) pending: [Vec<Pending>; SHARDS],
    pub(super) last: FxHashMap<SeriesRef, (i64, u64)>,
}

/// Spare buffers kept at most, and the largest batch whose buffers are kept.
pub(super) const SPARE_BUFFERS: usize = 16;
pub(super) const SPARE_MAX_SAMPLES: usize = 1 << 16;

/// A commit locks a shard for at most this many of its samples at a time,
/// and hands the lock to any commit waiting for it between parts: a scrape
/// of millions of series would otherwise hold each shard for long enough to
/// stall every other target's commit. Appends to different
/// series need no atomicity among themselves (queries may see a commit
/// half applied, as in Prometheus); a few thousand keep the lock's cost
/// per sample nil.
pub(super) const LOCKED_SAMPLES: usize = 4096;

/// Reads the series `refs` and both ends of their open chunks so that the
/// loop that appends to them finds them in cache: these loads do not depend
/// on each other, so the CPU overlaps their misses, where the appending loop
/// would wait for each in turn (a million series do not fit in any cache).
/// Done in stages over groups of series (table entries, then series, then
/// chunk ends) so that no load waits on another's miss: one series after
/// another, each series' misses came in turn.
pub(super) fn warm(shard: &Shard, refs: impl Iterator<Item = SeriesRef>) {
    const GROUP: usize = 32;
    let mut refs = refs.peekable();
    let mut acc = 0u64;
    while refs.peek().is_some() {
        let mut found: [Option<&MemSeries>; GROUP] = [None; GROUP];
        for (slot, r) in found.iter_mut().zip(refs.by_ref()) {
            *slot = shard.series.get(&r).map(|s| &**s);
        }
        // The first and the last hot field: both lines of the hot part.
        for s in found.iter().flatten() {
            acc ^= u64::from(s.labels_stored);
        }
        // The open chunk's end, where the sample goes, and its start, where
        // every append rewrites the sample count: two lines once the chunk
        // outgrows 64 bytes.
        for s in found.iter().flatten() {
            if let Some(o) = &s.open {
                let b = o.chunk.bytes();
                acc ^= u64::from(b.first().copied().unwrap_or(0) ^ b.last().copied().unwrap_or(0));
            }
        }
    }
    std::hint::black_box(acc);
}

pub(super) struct Pending {
    pub(super) r: SeriesRef,
    pub(super) t: i64,
    pub(super) v: f64,
    pub(super) state: Check,
}

/// Where a buffered sample stands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// Checked against the series; it took the series' `pending` count,
    /// which commit or rollback gives back.
    First,
    /// Checked against the batch's previous sample of the series.
    Buffered,
    /// Appended by reference alone: checked at commit.
    Unchecked,
    /// Refused at commit: neither logged nor applied.
    Refused,
}

/// Buffers samples and applies them under the shard locks on commit.
pub(super) struct HeadAppender {
    pub(super) head: Arc<Inner>,
    pub(super) pending: [Vec<Pending>; SHARDS],
    // The last buffered sample of each series, to catch order errors within
    // the batch.
    pub(super) last: FxHashMap<SeriesRef, (i64, u64)>,
    pub(super) min_valid: i64,
    pub(super) done: bool,
}

impl Appendable for Head {
    fn appender(&self) -> Box<dyn Appender> {
        let AppendBuffers { pending, last } = self.inner.spare.lock().pop().unwrap_or_default();
        Box::new(HeadAppender {
            head: self.inner.clone(),
            pending,
            last,
            min_valid: self.inner.min_valid_time.load(Ordering::Acquire),
            done: false,
        })
    }
}

impl HeadAppender {
    /// Checks the sample against the series' committed samples with the
    /// shard locked. None if the series does not exist.
    fn check_committed(
        shard: &mut Shard,
        r: SeriesRef,
        t: i64,
        vb: u64,
    ) -> Option<Result<Appendability, Error>> {
        let s = shard.series.get_mut(&r)?;
        let res = s.appendable(t, vb);
        if matches!(res, Ok(Appendability::Append)) {
            s.pending += 1;
        }
        Some(res)
    }

    /// Appends after a sample this batch already holds for series `r`.
    fn append_buffered(
        &mut self,
        r: SeriesRef,
        (lt, lv): (i64, u64),
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Error> {
        let vb = v.to_bits();
        match t.cmp(&lt) {
            std::cmp::Ordering::Greater => {}
            std::cmp::Ordering::Equal if vb == lv => return Ok(r),
            std::cmp::Ordering::Equal => return Err(Error::DuplicateSampleForTimestamp),
            std::cmp::Ordering::Less => return Err(Error::OutOfOrderSample),
        }
        self.pending[shard_of(r)].push(Pending {
            r,
            t,
            v,
            state: Check::Buffered,
        });
        self.last.insert(r, (t, vb));
        Ok(r)
    }

    /// Checks the samples appended by reference alone, shard by shard with
    /// each shard locked once; a series that left memory comes back from
    /// the chunk store (logged before the samples that name it).
    fn check_unchecked(&mut self) -> Rejected {
        let inner = &*self.head;
        let mut rejected = Rejected::default();
        for (i, pending) in self.pending.iter_mut().enumerate() {
            if !pending.iter().any(|p| p.state == Check::Unchecked) {
                continue;
            }
            for part in pending.chunks_mut(LOCKED_SAMPLES) {
                let mut shard = inner.shards[i].lock();
                warm(&shard, part.iter().map(|p| p.r));
                Self::check_part(inner, &mut shard, part, &mut rejected);
                MutexGuard::unlock_fair(shard);
            }
        }
        rejected
    }

    /// [`HeadAppender::check_unchecked`] for one part of a shard's samples,
    /// with the shard locked.
    fn check_part(inner: &Inner, shard: &mut Shard, part: &mut [Pending], rejected: &mut Rejected) {
        for p in part.iter_mut().filter(|p| p.state == Check::Unchecked) {
            let vb = p.v.to_bits();
            let mut res = Self::check_committed(shard, p.r, p.t, vb);
            if res.is_none() && inner.revive_ref(shard, p.r) {
                res = Self::check_committed(shard, p.r, p.t, vb);
            }
            p.state = match res {
                Some(Ok(Appendability::Append)) => Check::First,
                Some(Ok(Appendability::Duplicate)) => Check::Refused,
                Some(Err(Error::DuplicateSampleForTimestamp)) => {
                    rejected.duplicate += 1;
                    Check::Refused
                }
                Some(Err(_)) => {
                    rejected.out_of_order += 1;
                    Check::Refused
                }
                None => {
                    rejected.unknown += 1;
                    Check::Refused
                }
            };
        }
    }

    fn finish(&mut self, commit: bool) {
        self.done = true;
        let inner = &*self.head;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (i, pending) in self.pending.iter_mut().enumerate() {
            if pending.is_empty() {
                continue;
            }
            for part in pending.chunks(LOCKED_SAMPLES) {
                let mut shard = inner.shards[i].lock();
                warm(&shard, part.iter().map(|p| p.r));
                for p in part {
                    let Some(s) = shard.series.get_mut(&p.r) else {
                        continue;
                    };
                    match p.state {
                        Check::First => s.pending = s.pending.saturating_sub(1),
                        Check::Refused | Check::Unchecked => continue,
                        Check::Buffered => {}
                    }
                    // A sample that a concurrent appender overtook is dropped, as
                    // Prometheus drops it at commit.
                    if commit && s.append(p.t, p.v, &inner.opts) {
                        lo = lo.min(p.t);
                        hi = hi.max(p.t);
                    }
                }
                // A commit waiting for this shard goes next, not after the
                // rest of this one's parts.
                MutexGuard::unlock_fair(shard);
            }
            pending.clear();
        }
        inner.note_times(lo, hi);
        self.last.clear();
    }
}

impl Appender for HeadAppender {
    fn append(
        &mut self,
        hint: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Error> {
        if t < self.min_valid {
            return Err(Error::OutOfBounds);
        }
        let vb = v.to_bits();
        let mut r = hint;
        let mut known = None;
        if r != 0 {
            if labels.is_empty() {
                // A scrape's known series: checked at commit with the rest
                // of its shard in one pass, where the cache misses of many
                // series overlap, instead of one lookup per sample here.
                // One probe of `last` finds a sample this batch holds for
                // the series or takes the slot for this one.
                match self.last.entry(r) {
                    Entry::Occupied(o) => {
                        let last = *o.get();
                        return self.append_buffered(r, last, t, v);
                    }
                    Entry::Vacant(slot) => {
                        slot.insert((t, vb));
                    }
                }
                self.pending[shard_of(r)].push(Pending {
                    r,
                    t,
                    v,
                    state: Check::Unchecked,
                });
                return Ok(r);
            }
            if let Some(&last) = self.last.get(&r) {
                return self.append_buffered(r, last, t, v);
            }
            let mut shard = self.head.shards[shard_of(r)].lock();
            known = Self::check_committed(&mut shard, r, t, vb);
        }
        let res = match known {
            Some(res) => res,
            None => {
                let (found, mut shard) = self.head.get_or_create_as(labels, 0, true)?;
                r = found;
                if let Some(&last) = self.last.get(&r) {
                    // Came by labels for a series that this batch already holds.
                    drop(shard);
                    return self.append_buffered(r, last, t, v);
                }
                Self::check_committed(&mut shard, r, t, vb).unwrap_or(Ok(Appendability::Append))
            }
        };
        match res? {
            Appendability::Duplicate => Ok(r),
            Appendability::Append => {
                self.pending[shard_of(r)].push(Pending {
                    r,
                    t,
                    v,
                    state: Check::First,
                });
                self.last.insert(r, (t, vb));
                Ok(r)
            }
        }
    }

    fn commit(mut self: Box<Self>) -> Result<Rejected, Error> {
        let head = self.head.clone();
        let _gate = read(&head.gate);
        let rejected = self.check_unchecked();
        if let Some(log) = head.log.get()
            && self.pending.iter().any(|p| !p.is_empty())
        {
            let mut it = self.pending.iter().flat_map(|p| {
                p.iter()
                    .filter(|p| p.state != Check::Refused)
                    .map(|p| (p.r, p.t, p.v))
            });
            if let Err(e) = log.log_samples(&mut it) {
                self.finish(false);
                return Err(e);
            }
        }
        self.finish(true);
        Ok(rejected)
    }

    fn rollback(mut self: Box<Self>) {
        self.finish(false);
    }
}

impl Drop for HeadAppender {
    fn drop(&mut self) {
        if !self.done {
            self.finish(false);
        }
        // Invariant: `finish` left the buffers empty.
        debug_assert!(self.pending.iter().all(Vec::is_empty) && self.last.is_empty());
        if self.last.capacity() <= SPARE_MAX_SAMPLES {
            let mut spare = self.head.spare.lock();
            if spare.len() < SPARE_BUFFERS {
                spare.push(AppendBuffers {
                    pending: std::mem::take(&mut self.pending),
                    last: std::mem::take(&mut self.last),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::head::{Head, HeadOptions};

    /// `n` label sets whose series all go to shard 0.
    fn in_shard_zero(n: usize) -> Vec<Labels> {
        (0..)
            .map(|i| Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]))
            .filter(|l| (hash_labels(l) >> (64 - SHARD_BITS)) == 0)
            .take(n)
            .collect()
    }

    /// A small commit that waits for a shard while a large one applies its
    /// parts there goes in between them: with a lock the large commit could
    /// take back at each part, the small one waited for all of them (a
    /// target bursting into millions of series stopped every other
    /// target's commits for as long).
    #[test]
    fn a_waiting_commit_goes_between_a_large_commits_parts() {
        let head = Head::new(HeadOptions::default());
        let parts = 16;
        let mut big = in_shard_zero(parts * LOCKED_SAMPLES + 1);
        let small = big.pop().unwrap();
        let mut app = head.appender();
        let refs: Vec<SeriesRef> = big
            .iter()
            .map(|l| app.append(0, l, 1, 1.0).unwrap())
            .collect();
        let small_ref = app.append(0, &small, 1, 1.0).unwrap();
        app.commit().unwrap();
        assert!(refs.iter().chain([&small_ref]).all(|&r| shard_of(r) == 0));

        let mut large = head.appender();
        for &r in &refs {
            large.append(r, &Labels::default(), 2, 2.0).unwrap();
        }
        let inner = head.inner.clone();
        let large = std::thread::spawn(move || large.commit().unwrap());
        // The small commit starts once the large one holds the shard.
        while inner.shards[0].try_lock().is_some() {
            assert!(
                !large.is_finished(),
                "the large commit ended before it was seen holding the shard"
            );
            std::thread::yield_now();
        }
        let small_head = head.clone();
        let small = std::thread::spawn(move || {
            let mut app = small_head.appender();
            app.append(small_ref, &Labels::default(), 2, 2.0).unwrap();
            app.commit().unwrap();
            let shard = small_head.inner.shards[0].lock();
            refs.iter()
                .filter(|r| shard.series.get(r).is_some_and(|s| s.last_t == 2))
                .count()
        });
        let applied = small.join().unwrap();
        large.join().unwrap();
        println!(
            "the large commit had applied {applied} of its {} samples",
            parts * LOCKED_SAMPLES
        );
        assert!(
            applied <= parts * LOCKED_SAMPLES / 2,
            "the small commit waited for {applied} of the large one's samples"
        );
    }
}
