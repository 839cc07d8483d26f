//! The head's selection cache: for a list of matchers, the series in memory
//! they selected last time, in label order, with their labels.
//!
//! A dashboard's refresh asks the same selectors every few seconds for a
//! few new steps, and numbering, sorting and copying every selected
//! series' labels cost more than reading those steps. An entry is kept
//! exact without any invalidation: each request still finds the matching
//! references in the postings (cheap), and only the references that came
//! or went since the entry was made are looked at. This relies on a
//! reference naming one label set for the life of the head (new series take
//! fresh references; a cold series comes back under its own).
//!
//! This file knows nothing of the head's locking: the caller passes a
//! function that looks up the labels of new references.

use std::sync::{Arc, Mutex, PoisonError};

use rustc_hash::FxHashMap;

use crate::model::{Labels, MatchOp, Matcher};
use crate::storage::SeriesRef;

/// Bytes the cache may hold, counted as [`Selection::bytes`].
pub(crate) const MAX_BYTES: usize = 64 << 20;
/// The most series a cached selection has. Larger selections take the
/// querier's own path, which holds label ranks instead of strings.
pub(crate) const MAX_SERIES: usize = 20_000;

/// Series in memory selected by some matchers, in label order.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// In label order. Shared, so that an update copies pointers: with
    /// churn most requests find a few references new or gone.
    series: Vec<(SeriesRef, Arc<Labels>)>,
    // The references of `series`, sorted, to compare with the postings.
    refs: Vec<SeriesRef>,
    bytes: usize,
}

impl Selection {
    pub(crate) fn series(&self) -> &[(SeriesRef, Arc<Labels>)] {
        &self.series
    }

    pub(crate) fn refs(&self) -> &[SeriesRef] {
        &self.refs
    }

    /// The selection of the sorted references `refs`, reusing `old`'s
    /// labels: `labels_of` is called (once, if any) with the sorted
    /// references `old` lacks and returns those it found with their labels,
    /// in any order; one it does not find is left out. None when `old`
    /// holds exactly `refs`.
    pub(crate) fn update(
        old: Option<&Selection>,
        refs: &[SeriesRef],
        labels_of: impl FnOnce(&[SeriesRef]) -> Vec<(SeriesRef, Labels)>,
    ) -> Option<Selection> {
        debug_assert!(refs.windows(2).all(|w| w[0] < w[1]));
        let empty = Selection::default();
        let old = old.unwrap_or(&empty);
        if old.refs == refs {
            return None;
        }
        let added: Vec<SeriesRef> = refs
            .iter()
            .copied()
            .filter(|r| old.refs.binary_search(r).is_err())
            .collect();
        let mut new = if added.is_empty() {
            Vec::new()
        } else {
            labels_of(&added)
        };
        new.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        let new = new.into_iter().map(|(r, l)| (r, Arc::new(l)));
        let kept = old
            .series
            .iter()
            .filter(|(r, _)| refs.binary_search(r).is_ok());
        // Both in label order: merge them.
        let mut series = Vec::with_capacity(refs.len());
        let mut new = new.peekable();
        for k in kept {
            while let Some(n) = new.next_if(|n| n.1 < k.1) {
                series.push(n);
            }
            series.push(k.clone());
        }
        series.extend(new);
        let mut refs: Vec<SeriesRef> = series.iter().map(|(r, _)| *r).collect();
        refs.sort_unstable();
        let bytes = series.iter().map(|(_, l)| series_bytes(l)).sum();
        // Invariant: `series` is in label order, `refs` sorted.
        debug_assert!(series.windows(2).all(|w| w[0].1 < w[1].1));
        Some(Selection {
            series,
            refs,
            bytes,
        })
    }
}

/// Heap and inline bytes one selected series takes in a [`Selection`].
fn series_bytes(l: &Labels) -> usize {
    let strings: usize = l.iter().map(|l| l.name.len() + l.value.len()).sum();
    // The pair, the reference in the sorted list and the shared
    // allocation's counts; a `Label` is two `String`s.
    64 + l.len() * 48 + strings
}

/// Matchers as a cache key: the same matchers in the same order.
type Key = Box<[(MatchOp, String, String)]>;

fn key(matchers: &[Matcher]) -> Key {
    matchers
        .iter()
        .map(|m| (m.op, m.name.clone(), m.value.clone()))
        .collect()
}

struct Slot {
    sel: Arc<Selection>,
    used: u64,
}

#[derive(Default)]
struct State {
    entries: FxHashMap<Key, Slot>,
    bytes: usize,
    clock: u64,
}

/// Selections by their matchers, at most [`MAX_BYTES`] of them, the least
/// recently used leaving first.
#[derive(Default)]
pub(crate) struct SelCache {
    state: Mutex<State>,
}

impl SelCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change leaves the state consistent before it can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The selection last stored for `matchers`.
    pub(crate) fn get(&self, matchers: &[Matcher]) -> Option<Arc<Selection>> {
        let mut st = self.lock();
        st.clock += 1;
        let now = st.clock;
        let slot = st.entries.get_mut(&key(matchers))?;
        slot.used = now;
        Some(slot.sel.clone())
    }

    /// Stores `sel` for `matchers`, unless it alone would take more than a
    /// quarter of the cache.
    pub(crate) fn put(&self, matchers: &[Matcher], sel: Arc<Selection>) {
        let size = sel.bytes + 64;
        let mut st = self.lock();
        let k = key(matchers);
        if let Some(old) = st.entries.remove(&k) {
            st.bytes -= old.sel.bytes + 64;
        }
        if size > MAX_BYTES / 4 {
            return;
        }
        while st.bytes + size > MAX_BYTES {
            let Some(oldest) = st
                .entries
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(s) = st.entries.remove(&oldest) {
                st.bytes -= s.sel.bytes + 64;
            }
        }
        st.clock += 1;
        let used = st.clock;
        st.bytes += size;
        st.entries.insert(k, Slot { sel, used });
    }

    /// Bytes held, as counted against [`MAX_BYTES`].
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str, i: u64) -> Labels {
        Labels::from_pairs([("__name__", name.to_string()), ("i", format!("{i:03}"))])
    }

    // References in the opposite order of their labels, so that an
    // order taken from the references would show.
    fn lookup(rs: &[SeriesRef]) -> Vec<(SeriesRef, Labels)> {
        rs.iter().map(|&r| (r, labels("m", 100 - r))).collect()
    }

    #[test]
    fn new_and_gone_references_update_the_selection_in_label_order() {
        let a = Selection::update(None, &[1, 2, 3], lookup).unwrap();
        let order = |s: &Selection| s.series().iter().map(|(r, _)| *r).collect::<Vec<_>>();
        assert_eq!(order(&a), [3, 2, 1]);
        // The same references: nothing to do, nothing looked up.
        assert!(Selection::update(Some(&a), &[1, 2, 3], |_| unreachable!()).is_none());
        // 2 went away, 4 and 5 came: only those two are looked up.
        let mut asked = Vec::new();
        let b = Selection::update(Some(&a), &[1, 3, 4, 5], |rs| {
            asked.extend_from_slice(rs);
            lookup(rs)
        })
        .unwrap();
        assert_eq!(asked, [4, 5]);
        assert_eq!(order(&b), [5, 4, 3, 1]);
        assert_eq!(b.refs(), [1, 3, 4, 5]);
        // A reference the lookup does not find is left out.
        let c = Selection::update(Some(&b), &[1, 3, 4, 5, 6], |_| Vec::new()).unwrap();
        assert_eq!(c.refs(), [1, 3, 4, 5]);
    }

    #[test]
    fn the_cache_keeps_to_its_size() {
        let cache = SelCache::default();
        let m = |v: &str| vec![Matcher::new(MatchOp::Equal, "__name__", v).unwrap()];
        let sel = Arc::new(Selection::update(None, &[1, 2], lookup).unwrap());
        cache.put(&m("a"), sel.clone());
        assert!(cache.get(&m("a")).is_some());
        assert!(cache.get(&m("b")).is_none());
        assert_eq!(cache.bytes(), sel.bytes + 64);
        cache.put(&m("a"), sel.clone());
        assert_eq!(cache.bytes(), sel.bytes + 64);
        // Too large for a quarter of the cache: not kept, and the older
        // entry for the same matchers is gone too.
        let big = Selection {
            bytes: MAX_BYTES,
            ..Selection::default()
        };
        cache.put(&m("a"), Arc::new(big));
        assert!(cache.get(&m("a")).is_none());
        assert_eq!(cache.bytes(), 0);
        // Filling it evicts the least recently used.
        let quarter = || {
            Arc::new(Selection {
                bytes: MAX_BYTES / 4 - 64,
                ..Selection::default()
            })
        };
        for v in ["w", "x", "y", "z"] {
            cache.put(&m(v), quarter());
        }
        assert!(cache.get(&m("w")).is_some());
        cache.put(&m("v"), quarter());
        assert!(cache.get(&m("x")).is_none());
        assert!(cache.get(&m("w")).is_some());
        assert!(cache.bytes() <= MAX_BYTES);
    }
}
