//! One postings list as the index holds it: the sorted references of the
//! series that carry a label pair, 4 bytes a reference while they fit.
//!
//! The index keeps a reference per series and label (and one more in the
//! list of all series), about 13 per Ray series: as `u64`s that was about
//! 110 bytes a series, the largest part of the index. References are a
//! counter shifted past the shard bits, so they stay below 2^32 for the
//! first 268 M series a store ever creates; a list that takes a larger one
//! turns wide (`u64`s) and stays so. Readers get `u64` slices: a narrow
//! list is widened into a copy for the query that reads it. This file knows
//! nothing of symbols, matchers or locking.

use std::borrow::Cow;

use crate::sizeclass::grown_capacity;
use crate::storage::SeriesRef;

/// The sorted, deduplicated references of one list.
#[derive(Debug, Clone)]
pub enum List {
    /// Every reference fits in 32 bits.
    Narrow(Vec<u32>),
    Wide(Vec<SeriesRef>),
}

impl Default for List {
    fn default() -> List {
        List::Narrow(Vec::new())
    }
}

impl List {
    /// An empty list with room for `n` references below 2^32.
    pub fn with_capacity(n: usize) -> List {
        List::Narrow(Vec::with_capacity(n))
    }

    pub fn len(&self) -> usize {
        match self {
            List::Narrow(v) => v.len(),
            List::Wide(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The references as `u64`s: borrowed when wide, a copy when narrow.
    pub fn refs(&self) -> Cow<'_, [SeriesRef]> {
        match self {
            List::Narrow(v) => Cow::Owned(v.iter().map(|&r| SeriesRef::from(r)).collect()),
            List::Wide(v) => Cow::Borrowed(v),
        }
    }

    /// Heap bytes of the list's buffer.
    pub fn heap_bytes(&self) -> usize {
        match self {
            List::Narrow(v) => v.capacity() * 4,
            List::Wide(v) => v.capacity() * 8,
        }
    }

    /// References the list holds before its buffer must grow.
    pub fn capacity(&self) -> usize {
        match self {
            List::Narrow(v) => v.capacity(),
            List::Wide(v) => v.capacity(),
        }
    }

    /// Grows a full list now, so that the next insert does not.
    pub fn reserve_one(&mut self) {
        match self {
            List::Narrow(v) if v.len() == v.capacity() => grow(v),
            List::Wide(v) if v.len() == v.capacity() => grow(v),
            _ => {}
        }
    }

    /// Adds `r` in its place (nothing if it is there).
    pub fn insert(&mut self, r: SeriesRef) {
        match self {
            List::Narrow(v) => match u32::try_from(r) {
                Ok(r) => insert_sorted(v, r),
                Err(_) => {
                    let mut w = widen(v);
                    insert_sorted(&mut w, r);
                    *self = List::Wide(w);
                }
            },
            List::Wide(v) => insert_sorted(v, r),
        }
    }

    /// Appends `r`, which is larger than every reference in the list. A
    /// list built from an image is made at its final length
    /// ([`List::with_capacity`]), so this only grows one that was not: it
    /// runs for every label of every series at an open, a few moves each.
    #[inline]
    pub fn push_last(&mut self, r: SeriesRef) {
        debug_assert!(self.last().is_none_or(|l| l < r));
        match self {
            List::Narrow(v) => match u32::try_from(r) {
                Ok(r) => v.push(r),
                Err(_) => self.push_wide(r),
            },
            List::Wide(v) => v.push(r),
        }
    }

    /// Turns a narrow list wide, keeping the room it had, and appends `r`.
    #[cold]
    fn push_wide(&mut self, r: SeriesRef) {
        if let List::Narrow(v) = self {
            let mut w = widen(v);
            w.reserve_exact(v.capacity() - v.len());
            *self = List::Wide(w);
        }
        if let List::Wide(w) = self {
            w.push(r);
        }
    }

    /// The largest reference.
    pub fn last(&self) -> Option<SeriesRef> {
        match self {
            List::Narrow(v) => v.last().map(|&r| SeriesRef::from(r)),
            List::Wide(v) => v.last().copied(),
        }
    }

    /// Removes the references in `gone` (sorted), in place: the buffer is
    /// kept for the series that replace them (churn removes and adds a few
    /// at a time).
    pub fn remove_sorted(&mut self, gone: &[SeriesRef]) {
        debug_assert!(gone.windows(2).all(|w| w[0] < w[1]));
        match self {
            List::Narrow(v) => retain_absent(v, gone),
            List::Wide(v) => retain_absent(v, gone),
        }
    }
}

fn widen(v: &[u32]) -> Vec<SeriesRef> {
    v.iter().map(|&r| SeriesRef::from(r)).collect()
}

/// Keeps the elements of `v` that are not in `gone`; both sorted.
/// A list left less than half full gives the rest back.
fn retain_absent<T: Copy + Into<SeriesRef>>(v: &mut Vec<T>, gone: &[SeriesRef]) {
    let mut j = 0;
    v.retain(|&x| {
        let x: SeriesRef = x.into();
        while gone.get(j).is_some_and(|&g| g < x) {
            j += 1;
        }
        gone.get(j) != Some(&x)
    });
    if v.len() < v.capacity() / 2 {
        v.shrink_to_fit();
    }
}

fn insert_sorted<T: Copy + Ord>(list: &mut Vec<T>, r: T) {
    if list.len() == list.capacity() {
        grow(list);
    }
    match list.last() {
        None => list.push(r),
        Some(&last) if last < r => list.push(r),
        _ => {
            if let Err(i) = list.binary_search(&r) {
                list.insert(i, r);
            }
        }
    }
}

/// Grows a full postings list by an eighth (at least four references), to
/// the end of an allocator size class, instead of doubling it. The lists of
/// label pairs that every series of a cluster carries (`SessionName`, the
/// `otel_scope_*` labels) hold a reference per series: with doubling they
/// were on average a quarter empty, about 30 bytes a series in all. The
/// extra copies are paid when series are created, a few hundred a second
/// once a cluster runs.
#[cold]
fn grow<T>(list: &mut Vec<T>) {
    let (len, cap) = (list.len(), list.capacity());
    let want = grown_capacity(len, cap, 1, 8, 4, std::mem::size_of::<T>());
    list.reserve_exact(want - len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(l: &List) -> Vec<SeriesRef> {
        l.refs().into_owned()
    }

    #[test]
    fn a_list_is_narrow_until_a_reference_needs_more_than_32_bits() {
        let mut l = List::default();
        for r in [5, 3, 9, 3] {
            l.insert(r);
        }
        assert!(matches!(l, List::Narrow(_)));
        assert_eq!(refs(&l), [3, 5, 9]);
        l.insert(1 << 32);
        l.insert(7);
        assert!(matches!(l, List::Wide(_)));
        assert_eq!(refs(&l), [3, 5, 7, 9, 1 << 32]);
        l.remove_sorted(&[5, 1 << 32]);
        assert_eq!(refs(&l), [3, 7, 9]);
        assert_eq!(l.last(), Some(9));
    }

    #[test]
    fn pushes_keep_the_room_made_and_widen_past_32_bits() {
        let mut l = List::with_capacity(3);
        l.push_last(1);
        l.push_last(u64::from(u32::MAX));
        assert!(matches!(&l, List::Narrow(v) if v.capacity() >= 3));
        l.push_last(u64::from(u32::MAX) + 1);
        assert!(matches!(&l, List::Wide(v) if v.capacity() >= 3));
        assert_eq!(refs(&l), [1, u64::from(u32::MAX), u64::from(u32::MAX) + 1]);
        l.remove_sorted(&[0, 1, 2]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.heap_bytes() % 8, 0);
    }
}
