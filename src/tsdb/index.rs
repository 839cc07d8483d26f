//! The head's inverted index: interned label strings and, per label pair,
//! the sorted list of series references that carry it (postings).
//!
//! Matcher evaluation follows Prometheus's `PostingsForMatchers`
//! (`tsdb/querier.go`): matchers that accept the empty string select by
//! subtraction, so series that lack a label behave as if it were empty. This
//! file knows series only by reference; it does not know about chunks,
//! samples, time or locking (the head wraps it in one `RwLock`).

mod cardinality;
mod image;
mod list;
mod postings;

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{Labels, MatchOp, Matcher};
use crate::storage::SeriesRef;

pub use cardinality::Cardinality;
pub(crate) use image::IndexPart;
pub use image::{PairId, Pairs};
pub use list::List;
pub use postings::{intersect, subtract, union};

/// A symbol id: the index of an interned string.
pub type Sym = u32;

/// Interned strings with reference counts, so that label names and values
/// shared by many series are stored once and freed with their last series.
#[derive(Debug)]
pub struct Symbols {
    strings: Vec<Arc<str>>,
    refs: Vec<u32>,
    ids: FxHashMap<Arc<str>, Sym>,
    free: Vec<Sym>,
    empty: Arc<str>,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols {
            strings: Vec::new(),
            refs: Vec::new(),
            ids: FxHashMap::default(),
            free: Vec::new(),
            empty: Arc::from(""),
        }
    }
}

impl Symbols {
    /// Interns `s` and takes a reference on it.
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            self.refs[id as usize] += 1;
            return id;
        }
        let arc: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = arc.clone();
                self.refs[id as usize] = 1;
                id
            }
            None => {
                self.strings.push(arc.clone());
                self.refs.push(1);
                (self.strings.len() - 1) as Sym
            }
        };
        self.ids.insert(arc, id);
        id
    }

    /// Drops a reference taken by [`Symbols::intern`]; the last one frees the id.
    pub fn release(&mut self, id: Sym) {
        let Some(r) = self.refs.get_mut(id as usize) else {
            return;
        };
        *r = r.saturating_sub(1);
        if *r == 0 {
            let s = std::mem::replace(&mut self.strings[id as usize], self.empty.clone());
            self.ids.remove(&s);
            self.free.push(id);
        }
    }

    /// Interns `s` when it is the string of `hint` (a live id, such as the
    /// same label of the series added before) by taking another reference
    /// on it, without hashing `s`; otherwise as [`Symbols::intern`].
    fn intern_hinted(&mut self, s: &str, hint: Option<Sym>) -> Sym {
        if let Some(id) = self.hinted(s, hint) {
            self.refs[id as usize] += 1;
            return id;
        }
        self.intern(s)
    }

    /// `hint` if it is a live id of `s`, found without hashing `s`.
    fn hinted(&self, s: &str, hint: Option<Sym>) -> Option<Sym> {
        let id = hint?;
        let live = self.refs.get(id as usize).is_some_and(|&r| r > 0);
        (live
            && self
                .strings
                .get(id as usize)
                .is_some_and(|have| same_str(have, s)))
        .then_some(id)
    }

    pub fn lookup(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    pub fn get(&self, id: Sym) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }

    /// The interned string of `id` as it is shared, for a reader that
    /// clones it only when it has not seen it yet.
    pub fn get_arc(&self, id: Sym) -> &Arc<str> {
        self.strings.get(id as usize).unwrap_or(&self.empty)
    }

    /// Live symbols.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn heap_bytes(&self) -> usize {
        let strings: usize = self.ids.keys().map(|s| s.len() + 16).sum();
        strings
            + self.strings.capacity() * 16
            + self.refs.capacity() * 4
            + self.free.capacity() * 4
            + self.ids.capacity() * 21
    }
}

/// `a == b`, rejecting strings of one length that differ in their last
/// byte before calling `memcmp`: ids and numbers that follow each other
/// (`ray_metric_5`, `ray_metric_7`) are most of the hints that miss, and
/// the call was most of their cost.
fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().last() == b.as_bytes().last() && a == b
}

/// Label pairs of one series as symbol ids, `[name0, value0, name1, value1, ..]`
/// sorted by name string, each id in LEB128 (seven bits a byte, the high
/// bit set on every byte but an id's last). Every series holds one, so its
/// size is paid a million times over: a dozen labels took 96-112 bytes as
/// `u32`s, and take about 40 packed (names and the values many series
/// share are interned first and have small ids, one or two bytes). Readers
/// walk the ids in order, which is all they did with the `u32`s.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SymLabels(Box<[u8]>);

impl SymLabels {
    /// Packs `syms`, in one allocation of exactly their packed length.
    pub fn new(syms: &[Sym]) -> SymLabels {
        let len = syms.iter().map(|&s| packed_len(s)).sum();
        let mut out = Vec::with_capacity(len);
        for &s in syms {
            let mut s = s;
            while s >= 0x80 {
                out.push(s as u8 | 0x80);
                s >>= 7;
            }
            out.push(s as u8);
        }
        debug_assert_eq!(out.len(), len);
        SymLabels(out.into_boxed_slice())
    }

    /// The labels whose pairs [`PackedPair::append_to`] put into `packed`
    /// one after another: the same bytes [`SymLabels::new`] makes of their
    /// ids, copied instead of encoded id by id.
    pub fn from_packed(packed: &[u8]) -> SymLabels {
        // Invariant: every id ends in a byte with the high bit clear.
        debug_assert!(packed.last().is_none_or(|&b| b < 0x80));
        SymLabels(Box::from(packed))
    }

    /// The ids, in order.
    pub fn iter(&self) -> SymIter<'_> {
        SymIter(&self.0)
    }

    /// The (name, value) pairs, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (Sym, Sym)> + '_ {
        let mut it = self.iter();
        std::iter::from_fn(move || Some((it.next()?, it.next()?)))
    }

    /// How many ids (twice the label pairs).
    pub fn len(&self) -> usize {
        // Every id ends in exactly one byte with the high bit clear.
        self.0.iter().filter(|&&b| b < 0x80).count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many label pairs.
    pub fn num_pairs(&self) -> usize {
        self.len() / 2
    }

    /// Heap bytes of the packed ids.
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }

    /// The first byte, for warming the line the ids sit in.
    pub(crate) fn first_byte(&self) -> u8 {
        self.0.first().copied().unwrap_or(0)
    }
}

impl std::fmt::Debug for SymLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One label pair's name and value ids packed as a [`SymLabels`] holds
/// them. Loading a head image makes one per pair of its table, so that
/// each series' labels are its pairs' bytes copied one after another
/// rather than every id encoded again: at a million series that encoding
/// was half of the opening thread's instructions in building the shards.
#[derive(Debug, Clone, Copy)]
pub struct PackedPair {
    /// Two ids of at most five bytes each; `len` of them used.
    bytes: [u8; 10],
    len: u8,
}

impl PackedPair {
    pub fn new(name: Sym, value: Sym) -> PackedPair {
        let mut p = PackedPair {
            bytes: [0; 10],
            len: 0,
        };
        for mut s in [name, value] {
            while s >= 0x80 {
                p.bytes[usize::from(p.len)] = s as u8 | 0x80;
                p.len += 1;
                s >>= 7;
            }
            p.bytes[usize::from(p.len)] = s as u8;
            p.len += 1;
        }
        p
    }

    /// Appends the pair's bytes to `out`, for [`SymLabels::from_packed`].
    #[inline]
    pub fn append_to(&self, out: &mut Vec<u8>) {
        // A copy of the whole fixed-size array, cut back to the bytes
        // used: a known length compiles to two moves, where a slice of
        // `len` bytes calls `memcpy` for every pair.
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        out.truncate(at + usize::from(self.len));
    }
}

/// Bytes `s` takes in LEB128.
fn packed_len(s: Sym) -> usize {
    (32 - (s | 1).leading_zeros()).div_ceil(7) as usize
}

/// The ids of a [`SymLabels`], in order.
#[derive(Clone)]
pub struct SymIter<'a>(&'a [u8]);

impl Iterator for SymIter<'_> {
    type Item = Sym;

    #[inline]
    fn next(&mut self) -> Option<Sym> {
        let (&b, rest) = self.0.split_first()?;
        if b < 0x80 {
            self.0 = rest;
            return Some(Sym::from(b));
        }
        let mut v = Sym::from(b & 0x7f);
        let mut shift = 7;
        let mut at = 1;
        while let Some(&b) = self.0.get(at) {
            at += 1;
            v |= Sym::from(b & 0x7f).wrapping_shl(shift);
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        self.0 = &self.0[at..];
        Some(v)
    }
}

/// Counts one value of label `name` with a newline less.
fn forget_newline_value(counts: &mut FxHashMap<Sym, u32>, name: Sym) {
    if let Entry::Occupied(mut e) = counts.entry(name) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

/// Whether `m` is `=~".*"`, which accepts every value without a newline.
fn matches_all_but_newlines(m: &Matcher) -> bool {
    m.op == MatchOp::Regex && m.value == ".*"
}

/// The inverted index over all series of the head.
#[derive(Debug, Default)]
pub struct Index {
    symbols: Symbols,
    // Invariant: every list is sorted, deduplicated and non-empty.
    postings: FxHashMap<Sym, FxHashMap<Sym, List>>,
    all: List,
    // The symbols of the series added last. Series come in runs that share
    // most labels (a target's, in creation and so reference order), so a
    // label is usually found here by one comparison instead of hashing it
    // into a table of millions: that hashing was a third of the thread that
    // rebuilds the index at start-up. Cleared when series are removed, so
    // that it names only live symbols.
    prev: Vec<Sym>,
    // How many values with a newline each label name has (names with none
    // are left out). `.` matches no newline, so where a name has none,
    // `=~".*"` accepts every series: Ray's dashboards put such a matcher
    // on most selectors, and walking every value of the label (thousands of
    // worker ids) to find none was the lookup's cost.
    newline_values: FxHashMap<Sym, u32>,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    /// Number of indexed series.
    pub fn num_series(&self) -> usize {
        self.all.len()
    }

    /// Whether indexing a new series with `labels` could grow one of the
    /// tables every series goes into: the strings, their map, the map of a
    /// label name's values, the list of all series. At millions of entries
    /// such a growth is a rehash or copy of tens of milliseconds to a few
    /// hundred, which [`Index::make_room`] lets a caller do outside its
    /// other locks. The lists of single pairs are left out: they grow by an
    /// eighth, a copy of a few milliseconds at millions of series.
    pub fn needs_room(&self, labels: &Labels) -> bool {
        let k = 2 * labels.len();
        let symbols = &self.symbols;
        if symbols.strings.len() + k > symbols.strings.capacity()
            || symbols.refs.len() + k > symbols.refs.capacity()
            || symbols.ids.len() + k > symbols.ids.capacity()
            || self.postings.len() + labels.len() > self.postings.capacity()
            || self.all.len() == self.all.capacity()
        {
            return true;
        }
        labels.iter().enumerate().any(|(i, l)| {
            let hint = self.prev.get(2 * i).copied();
            let name = symbols
                .hinted(&l.name, hint)
                .or_else(|| symbols.lookup(&l.name));
            name.and_then(|n| self.postings.get(&n))
                .is_some_and(|values| values.len() == values.capacity())
        })
    }

    /// Grows the tables [`Index::needs_room`] looks at, so that indexing
    /// one series with `labels` grows none of them.
    pub fn make_room(&mut self, labels: &Labels) {
        let k = 2 * labels.len();
        self.symbols.strings.reserve(k);
        self.symbols.refs.reserve(k);
        self.symbols.ids.reserve(k);
        self.postings.reserve(labels.len());
        self.all.reserve_one();
        for l in labels.iter() {
            if let Some(values) = self
                .symbols
                .lookup(&l.name)
                .and_then(|n| self.postings.get_mut(&n))
            {
                values.reserve(1);
            }
        }
    }

    /// Interns `labels` and indexes series `r` under each pair.
    pub fn add_series(&mut self, r: SeriesRef, labels: &Labels) -> SymLabels {
        let mut syms = std::mem::take(&mut self.prev);
        for (i, l) in labels.iter().enumerate() {
            let n = self
                .symbols
                .intern_hinted(&l.name, syms.get(2 * i).copied());
            let v = self
                .symbols
                .intern_hinted(&l.value, syms.get(2 * i + 1).copied());
            // The hints at `2 * i` and `2 * i + 1` were read above; the
            // slots are reused for this series' ids.
            set_or_push(&mut syms, 2 * i, n);
            set_or_push(&mut syms, 2 * i + 1, v);
            let list = match self.postings.entry(n).or_default().entry(v) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    if l.value.contains('\n') {
                        *self.newline_values.entry(n).or_default() += 1;
                    }
                    e.insert(List::default())
                }
            };
            list.insert(r);
        }
        syms.truncate(labels.len() * 2);
        self.all.insert(r);
        let packed = SymLabels::new(&syms);
        self.prev = syms;
        packed
    }

    /// Removes series from every list they are in and drops their symbol
    /// references. Batched so that long lists are rewritten once.
    pub fn remove_series(&mut self, removed: &[(SeriesRef, SymLabels)]) {
        if removed.is_empty() {
            return;
        }
        self.prev.clear();
        let mut by_pair: FxHashMap<(Sym, Sym), Vec<SeriesRef>> = FxHashMap::default();
        let mut refs = Vec::with_capacity(removed.len());
        for (r, syms) in removed {
            refs.push(*r);
            for pair in syms.pairs() {
                by_pair.entry(pair).or_default().push(*r);
            }
        }
        refs.sort_unstable();
        self.all.remove_sorted(&refs);
        for ((n, v), mut rs) in by_pair {
            rs.sort_unstable();
            let Some(values) = self.postings.get_mut(&n) else {
                continue;
            };
            if let Some(list) = values.get_mut(&v) {
                list.remove_sorted(&rs);
                if list.is_empty() {
                    values.remove(&v);
                    if self.symbols.get(v).contains('\n') {
                        forget_newline_value(&mut self.newline_values, n);
                    }
                }
            }
            if values.is_empty() {
                self.postings.remove(&n);
            }
        }
        for (_, syms) in removed {
            for s in syms.iter() {
                self.symbols.release(s);
            }
        }
    }

    /// Whether `syms` spells exactly `labels`.
    pub fn labels_equal(&self, syms: &SymLabels, labels: &Labels) -> bool {
        let mut pairs = syms.pairs();
        labels.iter().all(|l| {
            pairs.next().is_some_and(|(n, v)| {
                self.symbols.get(n) == l.name && self.symbols.get(v) == l.value
            })
        }) && pairs.next().is_none()
    }

    /// Resolves symbol labels back to strings.
    pub fn labels(&self, syms: &SymLabels) -> Labels {
        Labels::from_sorted(
            syms.pairs()
                .map(|(n, v)| crate::model::Label {
                    name: self.symbols.get(n).to_string(),
                    value: self.symbols.get(v).to_string(),
                })
                .collect(),
        )
    }

    /// The names and values of `syms`, in order, without building strings.
    pub fn strs<'a>(&'a self, syms: &'a SymLabels) -> impl Iterator<Item = &'a str> + 'a {
        syms.iter().map(|s| self.symbols.get(s))
    }

    /// All series references, sorted.
    pub fn all_postings(&self) -> Cow<'_, [SeriesRef]> {
        self.all.refs()
    }

    /// Series that have `name="value"`.
    pub fn postings(&self, name: &str, value: &str) -> Cow<'_, [SeriesRef]> {
        self.lookup_pair(name, value)
            .map_or(Cow::Borrowed(&[]), List::refs)
    }

    fn lookup_pair(&self, name: &str, value: &str) -> Option<&List> {
        let n = self.symbols.lookup(name)?;
        let v = self.symbols.lookup(value)?;
        self.postings.get(&n)?.get(&v)
    }

    /// Label names present on at least one series, with the postings of each
    /// of their values. Unsorted.
    pub fn label_names(&self) -> impl Iterator<Item = (&str, Vec<&List>)> {
        self.postings
            .iter()
            .map(|(n, values)| (self.symbols.get(*n), values.values().collect()))
    }

    /// The values of `name` with their postings. Unsorted.
    pub fn label_values(&self, name: &str) -> Vec<(&str, &List)> {
        let Some(values) = self
            .symbols
            .lookup(name)
            .and_then(|n| self.postings.get(&n))
        else {
            return Vec::new();
        };
        values
            .iter()
            .map(|(v, list)| (self.symbols.get(*v), list))
            .collect()
    }

    /// The sorted series references selected by `matchers`, exactly as
    /// Prometheus's `PostingsForMatchers` selects them. No matchers select
    /// nothing.
    pub fn postings_for_matchers(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        // Names that some matcher requires to be set (non-empty).
        let must_be_set: FxHashSet<&str> = matchers
            .iter()
            .filter(|m| !m.matches_empty())
            .map(|m| m.name.as_str())
            .collect();
        let mut its: Vec<Vec<&List>> = Vec::new();
        let mut nots: Vec<Vec<&List>> = Vec::new();
        // Whether a matcher that accepts a missing label was seen.
        let mut had_nots = false;
        for m in matchers {
            let positive = matches!(m.op, MatchOp::Equal | MatchOp::Regex);
            let required = positive && must_be_set.contains(m.name.as_str());
            if !required && matches_all_but_newlines(m) && !self.has_newline_values(&m.name) {
                // Accepts every series: nothing to look up or subtract.
                had_nots = true;
                continue;
            }
            if !m.matches_empty() || required {
                // Series with a value the matcher accepts.
                let group = self.values_where(m, false);
                if group.is_empty() {
                    return Vec::new();
                }
                its.push(group);
            } else {
                // The matcher accepts a missing label, so take every series
                // and subtract those whose value it rejects.
                had_nots = true;
                nots.push(self.values_where(m, true));
            }
        }
        // Lists of different values of one name are disjoint, so a group whose
        // lengths add up to every series selects every series: skip it.
        let had_its = !its.is_empty();
        its.retain(|g| g.iter().map(|l| l.len()).sum::<usize>() != self.all.len());
        if its.is_empty() {
            if !had_its && !had_nots {
                return Vec::new();
            }
            its.push(vec![&self.all]);
        }
        its.sort_by_key(|g| g.iter().map(|l| l.len()).sum::<usize>());
        let mut groups = its.into_iter();
        let mut result = match groups.next().as_deref() {
            Some([l]) => l.refs().into_owned(),
            Some(g) => as_slices(g, union, union),
            None => return Vec::new(),
        };
        for g in groups {
            if result.is_empty() {
                return result;
            }
            result = as_slices(
                &g,
                |lists| postings::intersect_union(&result, lists),
                |lists| postings::intersect_union(&result, lists),
            );
        }
        for g in nots {
            if result.is_empty() {
                break;
            }
            result = as_slices(
                &g,
                |lists| postings::subtract_union(&result, lists),
                |lists| postings::subtract_union(&result, lists),
            );
        }
        result
    }

    /// Whether some value of label `name` has a newline.
    fn has_newline_values(&self, name: &str) -> bool {
        self.symbols
            .lookup(name)
            .is_some_and(|n| self.newline_values.contains_key(&n))
    }

    /// Postings of the values of `m.name` that `m` accepts (or, with
    /// `negate`, rejects).
    fn values_where(&self, m: &Matcher, negate: bool) -> Vec<&List> {
        let Some(values) = self
            .symbols
            .lookup(&m.name)
            .and_then(|n| self.postings.get(&n))
        else {
            return Vec::new();
        };
        let lookup = |v: &str| self.symbols.lookup(v).and_then(|s| values.get(&s));
        match (m.op, negate) {
            (MatchOp::Equal, false) | (MatchOp::NotEqual, true) => {
                return lookup(&m.value).into_iter().collect();
            }
            (MatchOp::Regex, false) | (MatchOp::NotRegex, true) => {
                if let Some(set) = literal_alternation(&m.value) {
                    let mut seen = FxHashSet::default();
                    return set.filter(|v| seen.insert(*v)).filter_map(lookup).collect();
                }
            }
            _ => {}
        }
        let any = match m.op {
            MatchOp::Regex if m.value == ".*" => Some(true),
            MatchOp::NotRegex if m.value == ".*" => Some(false),
            _ => None,
        };
        values
            .iter()
            .filter(|(v, _)| {
                let s = self.symbols.get(**v);
                let accepted = match any {
                    // Go's `.` does not match a newline either.
                    Some(a) if !s.contains('\n') => a,
                    _ => m.matches(s),
                };
                accepted != negate
            })
            .map(|(_, l)| l)
            .collect()
    }

    /// Approximate heap bytes held by the index, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        let mut b = self.symbols.heap_bytes() + self.all.heap_bytes();
        b += self.postings.capacity() * 45;
        for values in self.postings.values() {
            b += values.capacity() * 37;
            b += values.values().map(List::heap_bytes).sum::<usize>();
        }
        b
    }
}

/// The alternatives of a regex that is only literals joined by `|`, such as
/// Grafana's multi-value variables produce.
fn literal_alternation(re: &str) -> Option<impl Iterator<Item = &str>> {
    const META: &[char] = &[
        '\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$',
    ];
    if re.contains(META) {
        return None;
    }
    Some(re.split('|'))
}

fn set_or_push(v: &mut Vec<Sym>, i: usize, s: Sym) {
    match v.get_mut(i) {
        Some(slot) => *slot = s,
        None => v.push(s),
    }
}

/// Calls `narrow` with the references of each list of `group` when all of
/// them are narrow, as they are: a select's intersection gallops over a few
/// of a long list's references (every series of a Ray session), where
/// widening the list first copied all of them for every query. Otherwise
/// calls `wide`, with narrow lists widened into copies that live for the
/// call.
fn as_slices<R>(
    group: &[&List],
    narrow: impl FnOnce(&[&[u32]]) -> R,
    wide: impl FnOnce(&[&[SeriesRef]]) -> R,
) -> R {
    let narrows: Option<Vec<&[u32]>> = group
        .iter()
        .map(|l| match l {
            List::Narrow(v) => Some(v.as_slice()),
            List::Wide(_) => None,
        })
        .collect();
    if let Some(slices) = narrows {
        return narrow(&slices);
    }
    let widened: Vec<Cow<'_, [SeriesRef]>> = group.iter().map(|l| l.refs()).collect();
    let slices: Vec<&[SeriesRef]> = widened.iter().map(|l| &**l).collect();
    wide(&slices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    /// Whatever `needs_room` asks for, `make_room` provides: indexing the
    /// series after it grows none of the tables it looks at, so that their
    /// growth can happen before, outside a shard's lock.
    #[test]
    fn made_room_is_room_for_the_next_series() {
        let mut ix = Index::new();
        let capacities = |ix: &Index| {
            let inner = |name: &str| {
                ix.symbols
                    .lookup(name)
                    .and_then(|n| ix.postings.get(&n))
                    .map(|values| values.capacity())
            };
            (
                ix.symbols.strings.capacity(),
                ix.symbols.refs.capacity(),
                ix.symbols.ids.capacity(),
                ix.postings.capacity(),
                ix.all.capacity(),
                inner("series"),
            )
        };
        let mut made = 0;
        for i in 0..20_000u64 {
            let labels = Labels::from_pairs([
                ("__name__", "burst".to_string()),
                ("job", "ray".to_string()),
                ("series", i.to_string()),
            ]);
            if ix.needs_room(&labels) {
                ix.make_room(&labels);
                made += 1;
                assert!(!ix.needs_room(&labels), "still no room at {i}");
            }
            let before = capacities(&ix);
            ix.add_series(i + 1, &labels);
            let mut after = capacities(&ix);
            if before.5.is_none() {
                // The first series makes the map of each name's values.
                after.5 = None;
            }
            assert_eq!(before, after, "series {i}");
        }
        // Tables grow geometrically: room is made a few dozen times.
        assert!((5..200).contains(&made), "{made}");
    }

    #[test]
    fn symbols_are_shared_and_freed() {
        let mut ix = Index::new();
        let a = ix.add_series(1, &Labels::from_pairs([("job", "ray"), ("i", "1")]));
        let b = ix.add_series(2, &Labels::from_pairs([("job", "ray"), ("i", "2")]));
        let ids = |s: &SymLabels| s.iter().collect::<Vec<Sym>>();
        assert_eq!(ids(&a)[0], ids(&b)[0]);
        assert_eq!(ix.symbols().len(), 5);
        ix.remove_series(&[(1, a)]);
        assert_eq!(ix.symbols().len(), 4);
        assert_eq!(*ix.postings("job", "ray"), [2]);
        assert_eq!(*ix.postings("i", "1"), [] as [u64; 0]);
        ix.remove_series(&[(2, b)]);
        assert!(ix.symbols().is_empty());
        assert!(ix.all_postings().is_empty());
        // Freed ids are reused.
        let c = ix.add_series(3, &Labels::from_pairs([("x", "y")]));
        assert!(c.iter().all(|s| s < 5));
        assert_eq!(ix.labels(&c), Labels::from_pairs([("x", "y")]));
    }

    #[test]
    fn labels_shared_with_the_series_before_take_its_symbols() {
        let mut ix = Index::new();
        let pairs = |v: &str, w: &str| Labels::from_pairs([("a", v), ("b", w)]);
        let ids = |s: &SymLabels| s.iter().collect::<Vec<Sym>>();
        let one = ix.add_series(1, &pairs("x", "y"));
        let two = ix.add_series(2, &pairs("x", "z"));
        assert_eq!(ids(&one)[..3], ids(&two)[..3]);
        assert_ne!(ids(&one)[3], ids(&two)[3]);
        // Another label set at the same positions is not taken for the hint.
        let three = ix.add_series(3, &Labels::from_pairs([("a", "z"), ("c", "y")]));
        assert_eq!(
            ix.labels(&three),
            Labels::from_pairs([("a", "z"), ("c", "y")])
        );
        assert_eq!(ids(&three)[1], ids(&two)[3]);
        assert_eq!(ix.symbols().len(), 6);
        // Every reference the hints took is given back.
        ix.remove_series(&[(1, one), (2, two)]);
        assert_eq!(ix.symbols().len(), 4);
        let four = ix.add_series(4, &pairs("x", "y"));
        assert_eq!(ix.labels(&four), pairs("x", "y"));
        assert_eq!(*ix.postings("b", "y"), [4]);
        ix.remove_series(&[(3, three), (4, four)]);
        assert!(ix.symbols().is_empty());
    }

    #[test]
    fn packed_ids_read_back_in_order() {
        let edges = [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            0x1f_ffff,
            0x20_0000,
            0x0fff_ffff,
            0x1000_0000,
            Sym::MAX,
        ];
        let mut rng = crate::testing::Rng::seeded_by_clock("packed_ids_read_back_in_order");
        let mut syms: Vec<Sym> = edges.to_vec();
        // Every length of id, from one byte to five.
        syms.extend((0..200).map(|_| (rng.next() >> rng.below(64)) as Sym));
        for n in [0, 1, 2, 11, syms.len()] {
            let packed = SymLabels::new(&syms[..n]);
            assert_eq!(packed.iter().collect::<Vec<Sym>>(), syms[..n]);
            assert_eq!(packed.len(), n);
            assert_eq!(packed.num_pairs(), n / 2);
            let want: Vec<(Sym, Sym)> = syms[..n].chunks_exact(2).map(|p| (p[0], p[1])).collect();
            assert_eq!(packed.pairs().collect::<Vec<_>>(), want);
            let bytes: usize = syms[..n].iter().map(|&s| packed_len(s)).sum();
            assert_eq!(packed.heap_bytes(), bytes);
            // Pairs packed once and copied one after another: the same.
            let mut buf = Vec::new();
            for p in syms[..n / 2 * 2].chunks_exact(2) {
                PackedPair::new(p[0], p[1]).append_to(&mut buf);
            }
            assert_eq!(
                SymLabels::from_packed(&buf),
                SymLabels::new(&syms[..n / 2 * 2])
            );
        }
        // One byte up to 127, two up to 16,383, five for the largest.
        assert_eq!(
            SymLabels::new(&[0x7f, 0x80, 0x3fff, Sym::MAX]).heap_bytes(),
            1 + 2 + 2 + 5
        );
    }

    #[test]
    fn groups_covering_every_series_are_skipped_not_lost() {
        let mut ix = Index::new();
        for i in 0..100u64 {
            let l = Labels::from_pairs([
                ("job", "ray"),
                ("i", &i.to_string()),
                ("odd", &(i % 2).to_string()),
            ]);
            ix.add_series(i + 1, &l);
        }
        let all: Vec<u64> = (1..=100).collect();
        assert_eq!(
            ix.postings_for_matchers(&[m(MatchOp::Regex, "job", ".+")]),
            all
        );
        assert_eq!(
            ix.postings_for_matchers(&[m(MatchOp::Regex, "i", ".+"), Matcher::equal("job", "ray")]),
            all
        );
        assert_eq!(
            ix.postings_for_matchers(&[
                m(MatchOp::Regex, "odd", "0|1"),
                Matcher::equal("odd", "1")
            ]),
            (1..=100).filter(|x| x % 2 == 0).collect::<Vec<u64>>()
        );
        assert_eq!(
            ix.postings_for_matchers(&[
                m(MatchOp::Regex, "job", ".+"),
                m(MatchOp::NotEqual, "odd", "1")
            ]),
            (1..=100).filter(|x| x % 2 == 1).collect::<Vec<u64>>()
        );
    }

    /// `=~".*"` accepts every series but those whose label has a newline,
    /// while the index walks no values for it: as values with a newline come
    /// and go, the answer stays the one of checking each series.
    #[test]
    fn match_all_regex_rejects_newlines_as_they_come_and_go() {
        let mut ix = Index::new();
        let labels =
            |i: u64, w: &str| Labels::from_pairs([("job", "ray"), ("w", w), ("i", &i.to_string())]);
        let mut added = Vec::new();
        for i in 1..=6u64 {
            let w = if i == 3 || i == 5 { "a\nb" } else { "x" };
            let l = labels(i, w);
            added.push((i, ix.add_series(i, &l)));
        }
        // A series without the label matches: its value is the empty one.
        let bare = Labels::from_pairs([("job", "ray")]);
        added.push((7, ix.add_series(7, &bare)));
        let all_w = m(MatchOp::Regex, "w", ".*");
        let job = Matcher::equal("job", "ray");
        let sel = |ix: &Index| ix.postings_for_matchers(&[job.clone(), all_w.clone()]);
        assert_eq!(sel(&ix), [1, 2, 4, 6, 7]);
        assert!(ix.has_newline_values("w") && !ix.has_newline_values("job"));
        // One of the two series with the newline value goes: the value stays.
        let third = added.iter().find(|(r, _)| *r == 3).unwrap().clone();
        ix.remove_series(&[third]);
        assert_eq!(sel(&ix), [1, 2, 4, 6, 7]);
        assert!(ix.has_newline_values("w"));
        // The last one goes: every series with the label is accepted again.
        let fifth = added.iter().find(|(r, _)| *r == 5).unwrap().clone();
        ix.remove_series(&[fifth]);
        assert!(!ix.has_newline_values("w"));
        assert_eq!(sel(&ix), [1, 2, 4, 6, 7]);
        ix.add_series(8, &labels(8, "c\nd"));
        assert_eq!(sel(&ix), [1, 2, 4, 6, 7]);
        ix.add_series(9, &labels(9, "y"));
        assert_eq!(sel(&ix), [1, 2, 4, 6, 7, 9]);
        // Alone, a match-all regex still selects (an empty selection is for
        // no matchers only), and with a name that no series has as well.
        assert_eq!(
            ix.postings_for_matchers(std::slice::from_ref(&all_w)),
            [1, 2, 4, 6, 7, 9]
        );
        let none = m(MatchOp::Regex, "nope", ".*");
        assert_eq!(ix.postings_for_matchers(&[none]), [1, 2, 4, 6, 7, 8, 9]);
        // `!~".*"` selects the newline values alone.
        let not_all = m(MatchOp::NotRegex, "w", ".*");
        assert_eq!(ix.postings_for_matchers(&[not_all]), [8]);
    }

    #[test]
    fn literal_alternation_detection() {
        assert_eq!(
            literal_alternation("a|b|c").map(|i| i.collect::<Vec<_>>()),
            Some(vec!["a", "b", "c"])
        );
        assert!(literal_alternation("a.*").is_none());
        assert!(literal_alternation("(head|worker)").is_none());
        let mut ix = Index::new();
        ix.add_series(1, &Labels::from_pairs([("s", "a")]));
        ix.add_series(2, &Labels::from_pairs([("s", "b")]));
        ix.add_series(3, &Labels::from_pairs([("s", "c")]));
        assert_eq!(
            ix.postings_for_matchers(&[m(MatchOp::Regex, "s", "a|c|a|zz")]),
            vec![1, 3]
        );
        assert_eq!(
            ix.postings_for_matchers(&[m(MatchOp::NotRegex, "s", "a|c")]),
            vec![2]
        );
    }
}
