//! Reads from the head over a time range: series selection by matchers and
//! label name/value lookups restricted to series with samples in the range.
//!
//! This file knows the head's locking only through `Inner::visit`, and
//! nothing of PromQL or HTTP.

mod board;

use std::cmp::Ordering;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{Label, Labels, Matcher, Sample, put_in_order, string_order};
use crate::storage::{Error, Prepare, Querier, SelectHints, Series, SeriesRef};

use super::chunkenc::Encoding;
use super::head::{
    ChunkData, DiskChunks, Inner, MemSeries, decode_range, each_warmed, labels_line, open_line,
    samples_in,
};
use super::index::{Index, Sym, SymLabels, union};
use board::{LostOnPanic, Shared, StopOnDrop};

/// What a select takes of one series under the locks.
struct Taken {
    r: SeriesRef,
    chunks: Vec<ChunkData>,
    // Whether the chunks on disk are read (they overlap the range and the
    // select needs them); samples up to `disk_max` come from there
    // (`i64::MIN` when there are none).
    read_disk: bool,
    disk_max: i64,
}

/// A selected series' labels until it is handed out. A head series' are
/// ranks into the selection's table of distinct label strings (interned
/// strings, shared; in string order, so that comparing ranks compares the
/// strings): 4 bytes a name or value where a shared string took 16, which
/// for a selection of a million series is most of what a query holds
/// beyond the store. The caller's copies are made by the decoding thread.
enum Key {
    Head(Box<[u32]>, Arc<[Arc<str>]>),
    Cold(Labels),
}

/// The string of rank `r` in a selection's `table`.
fn rank_str(table: &[Arc<str>], r: u32) -> &str {
    table.get(r as usize).map_or("", |s| s)
}

impl Key {
    /// The names and values in order; comparing these compares as
    /// [`Labels`] do (pair by pair, name before value, shorter first).
    fn strs(&self) -> impl Iterator<Item = &str> {
        let (head, cold) = match self {
            Key::Head(ranks, table) => (Some(ranks.iter().map(|&r| rank_str(table, r))), None),
            Key::Cold(l) => (
                None,
                Some(l.iter().flat_map(|l| [l.name.as_str(), l.value.as_str()])),
            ),
        };
        head.into_iter().flatten().chain(cold.into_iter().flatten())
    }

    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            // Ranks in one table compare as their strings do.
            (Key::Head(a, ta), Key::Head(b, tb)) if Arc::ptr_eq(ta, tb) => a.cmp(b),
            (Key::Cold(a), Key::Cold(b)) => a.cmp(b),
            _ => self.strs().cmp(other.strs()),
        }
    }

    /// The labels, or those that `keep` names alone.
    fn into_labels(self, keep: Option<&Kept>) -> Labels {
        match self {
            Key::Head(ranks, table) => {
                // Straight from the ranks: no list of the strings first, an
                // allocation per series of every large selection.
                let str_of = |r: u32| rank_str(&table, r).to_string();
                Labels::from_sorted(
                    ranks
                        .chunks_exact(2)
                        .filter(|p| keep.is_none_or(|k| k.keeps(&table, p[0])))
                        .map(|p| Label {
                            name: str_of(p[0]),
                            value: str_of(p[1]),
                        })
                        .collect(),
                )
            }
            Key::Cold(l) => match keep {
                None => l,
                Some(k) => {
                    let mut pairs = l.into_vec();
                    pairs.retain(|l| k.names.contains(&l.name));
                    Labels::from_sorted(pairs)
                }
            },
        }
    }
}

/// The names of the labels a select hands over ([`SelectHints::labels`]),
/// and their ranks in the table of the selection's head keys: a name is
/// told by its rank, not by comparing strings.
struct Kept<'a> {
    names: &'a [String],
    table: Option<Arc<[Arc<str>]>>,
    ranks: Vec<u32>,
}

impl<'a> Kept<'a> {
    /// `names` in the table of the head keys among `found`.
    fn new(names: &'a [String], found: &[(Key, Source)]) -> Kept<'a> {
        let table = found.iter().find_map(|(k, _)| match k {
            Key::Head(_, t) => Some(t),
            Key::Cold(_) => None,
        });
        let ranks = table.map_or_else(Vec::new, |t| {
            names
                .iter()
                .filter_map(|n| t.binary_search_by(|s| (**s).cmp(n.as_str())).ok())
                .map(|r| r as u32)
                .collect()
        });
        Kept {
            names,
            table: table.cloned(),
            ranks,
        }
    }

    /// Whether the label named by rank `name` in `table` is kept.
    fn keeps(&self, table: &Arc<[Arc<str>]>, name: u32) -> bool {
        match &self.table {
            Some(t) if Arc::ptr_eq(t, table) => self.ranks.contains(&name),
            _ => {
                let name = rank_str(table, name);
                self.names.iter().any(|n| n == name)
            }
        }
    }
}

/// The distinct label strings of a selection's head series, collected
/// under the locks. A symbol id names a string only while the index's lock
/// is held (a freed id is reused), so strings are told apart by their
/// shared allocation, which the table keeps alive; an id is looked up in
/// the index each time. (A map from ids, valid for one lock hold, cost
/// two more hash-map inserts for each string seen first, and most of a
/// large selection's strings are its series' own ids.)
#[derive(Default)]
struct Strings {
    distinct: Vec<Arc<str>>,
    by_ptr: FxHashMap<usize, u32>,
    // The previous series' symbols and their numbers: a selection's series
    // share most labels with the one before, so most take no lookup.
    prev: Vec<(Sym, u32)>,
    // The numbers of the series being numbered.
    scratch: Vec<u32>,
}

impl Strings {
    /// Starts a lock hold.
    fn begin(&mut self) {
        self.prev.clear();
    }

    /// Numbers `syms` (the labels of one series, under the lock) by their
    /// strings.
    fn number(&mut self, ix: &Index, syms: &SymLabels) -> Box<[u32]> {
        // Gathered in a buffer kept across series, then copied into one
        // allocation of the exact length: sizing it first took a pass over
        // the packed ids.
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        for (i, y) in syms.iter().enumerate() {
            if let Some(&(py, n)) = self.prev.get(i)
                && py == y
            {
                out.push(n);
                continue;
            }
            // A string already numbered is found by its address, without
            // taking a reference.
            let s = ix.symbols().get_arc(y);
            let next = self.distinct.len() as u32;
            let n = *self.by_ptr.entry(s.as_ptr() as usize).or_insert(next);
            if n == next {
                self.distinct.push(Arc::clone(s));
            }
            match self.prev.get_mut(i) {
                Some(p) => *p = (y, n),
                None => self.prev.push((y, n)),
            }
            out.push(n);
        }
        let numbers = Box::from(out.as_slice());
        self.scratch = out;
        numbers
    }

    /// The table of distinct strings in order, and each number's rank in
    /// it (equal strings interned twice between lock holds share one).
    fn ranked(self) -> (Arc<[Arc<str>]>, Vec<u32>) {
        let d = &self.distinct;
        // By each string's first 8 bytes as a number first: most pairs
        // differ there (worker and replica ids), where comparing the
        // strings took most of this sort.
        let order = string_order(d);
        let mut rank = vec![0u32; d.len()];
        let mut table: Vec<Arc<str>> = Vec::with_capacity(order.len());
        for &n in &order {
            let s = &d[n as usize];
            if table.last() != Some(s) {
                table.push(s.clone());
            }
            rank[n as usize] = (table.len() - 1) as u32;
        }
        (table.into(), rank)
    }
}

/// Sorts a selection by its keys ([`Key::cmp`]). When every key is a head
/// key of one table (no series left memory), a list of each key's first
/// four ranks after the prefix that all keys share, packed into one number,
/// is sorted instead, and the selection is then put in its order: sorting
/// the selection itself compared keys behind two pointers, each from its
/// first rank (a metric's series share their name, session and the like),
/// and moved its large entries at every step.
fn sort_found(found: &mut [(Key, Source)]) {
    let table = match found.first() {
        Some((Key::Head(_, t), _)) => t.clone(),
        _ => return found.sort_unstable_by(|a, b| a.0.cmp(&b.0)),
    };
    let heads: Option<Vec<&[u32]>> = found
        .iter()
        .map(|(k, _)| match k {
            Key::Head(r, t) if Arc::ptr_eq(t, &table) => Some(&**r),
            _ => None,
        })
        .collect();
    // Ranks below `u32::MAX` leave room for "no rank here" below them all.
    let fits = table.len() < u32::MAX as usize && u32::try_from(found.len()).is_ok();
    let (Some(heads), true) = (heads, fits) else {
        return found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    };
    let first = heads.first().copied().unwrap_or_default();
    let common = heads.iter().fold(first.len(), |n, r| {
        first[..n]
            .iter()
            .zip(r.iter())
            .take_while(|(a, b)| a == b)
            .count()
    });
    // A key that ends first sorts first, as a shorter label set does.
    let at = |r: &[u32], i: usize| r.get(common + i).map_or(0, |&x| u128::from(x) + 1);
    let mut order: Vec<(u128, u32)> = heads
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let packed = (at(r, 0) << 96) | (at(r, 1) << 64) | (at(r, 2) << 32) | at(r, 3);
            (packed, i as u32)
        })
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| heads[a.1 as usize][common..].cmp(&heads[b.1 as usize][common..]))
    });
    put_in_order(found, order.into_iter().map(|(_, i)| i).collect());
}

/// Where a selected series' samples are read from.
enum Source {
    /// In memory (with what it has on disk).
    Head(Taken),
    /// In memory when selected; its chunks are taken when its batch is
    /// decoded ([`HeadQuerier::take_batch`]). A large selection holds no
    /// copy of every series' open chunk until its turn comes: those copies
    /// were most of what a query over many series added to the process.
    Later(SeriesRef),
    /// Left memory: on disk alone, up to `last`.
    Cold { r: SeriesRef, last: i64 },
}

#[derive(Clone, Copy)]
pub(crate) struct HeadQuerier<'a> {
    head: &'a Inner,
    mint: i64,
    maxt: i64,
    // A select's [`SelectHints::latest_from`]: of a series' samples at or
    // before it, only the latest is needed.
    latest_from: Option<i64>,
    // A select's [`SelectHints::labels`]: the names of the labels handed
    // over, or all.
    keep: Option<&'a [String]>,
    // A select's [`SelectHints::budget`]: when its caller gives up.
    budget: Option<Instant>,
}

/// The least a selected series costs to take, decode and hand over (its
/// labels copied out, a chunk decoded): a large dashboard selection costs
/// its query about 9 µs a series on the 2-core machine measured, so one
/// microsecond is well below what any series takes.
const LEAST_PER_SERIES: Duration = Duration::from_micros(1);

impl<'a> HeadQuerier<'a> {
    pub(crate) fn new(head: &'a Inner, mint: i64, maxt: i64) -> HeadQuerier<'a> {
        HeadQuerier {
            head,
            mint,
            maxt,
            latest_from: None,
            keep: None,
            budget: None,
        }
    }

    /// Whether `series` selected series cannot be handed over before the
    /// select's budget runs out, even at [`LEAST_PER_SERIES`].
    fn beyond_budget(&self, series: usize) -> bool {
        self.budget.is_some_and(|b| {
            let left = b.saturating_duration_since(Instant::now());
            LEAST_PER_SERIES.saturating_mul(u32::try_from(series).unwrap_or(u32::MAX)) > left
        })
    }

    /// Whether the range covers every committed sample, so that every series
    /// with samples qualifies without looking at it.
    fn covers_head(&self) -> bool {
        self.head
            .time_bounds()
            .is_some_and(|(a, b)| self.mint <= a && self.maxt >= b)
    }

    fn overlaps_head(&self) -> bool {
        self.head
            .time_bounds()
            .is_some_and(|(a, b)| self.mint <= b && self.maxt >= a)
    }

    /// Series references selected by `matchers`, or all when there are none.
    fn candidates(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        let ix = self.head.index();
        if matchers.is_empty() {
            ix.all_postings().into_owned()
        } else {
            ix.postings_for_matchers(matchers)
        }
    }
}

impl HeadQuerier<'_> {
    /// The series in memory that match, with what they hold in the range.
    /// Chunk bytes are taken under the locks and decoded after releasing
    /// them, so that appenders do not wait on decoding or disk reads.
    /// Gives up with [`Error::OverBudget`] a selection too large for what
    /// is left of the select's budget.
    fn take_head(&self, matchers: &[Matcher], out: &mut Vec<(Key, Source)>) -> Result<(), Error> {
        let refs = self.head.index().postings_for_matchers(matchers);
        // A first try that would take a dashboard's selection (tens of
        // thousands of series under the locks, their labels numbered and
        // sorted: tens of milliseconds) only to find its budget gone and
        // start again elsewhere gives up before it: the postings are cheap.
        if self.beyond_budget(refs.len()) {
            return Err(Error::OverBudget);
        }
        // A selection that will be decoded in batches takes its chunks
        // batch by batch.
        let later = refs.len() >= PIPELINE_MIN_SERIES;
        let start = out.len();
        let strings = if refs.len() >= SPLIT_MIN_SERIES && spare_core() {
            self.number_beside(&refs, later, out)?
        } else {
            let mut strings = Strings::default();
            self.number_part(&refs, (0, 1), later, &mut strings, out);
            strings
        };
        // After the locks: numbers become ranks in the sorted table.
        let (table, rank) = strings.ranked();
        for (key, _) in out.iter_mut().skip(start) {
            if let Key::Head(ns, t) = key {
                for n in ns.iter_mut() {
                    *n = rank.get(*n as usize).copied().unwrap_or_default();
                }
                *t = table.clone();
            }
        }
        Ok(())
    }

    /// Appends the series among `refs` in the shards of `part` (of
    /// `parts`, [`Inner::visit_part`]) to `out`, their labels numbered in
    /// `strings`; with `later`, their chunks are taken batch by batch.
    fn number_part(
        &self,
        refs: &[SeriesRef],
        (part, parts): (usize, usize),
        later: bool,
        strings: &mut Strings,
        out: &mut Vec<(Key, Source)>,
    ) {
        let unranked: Arc<[Arc<str>]> = Arc::from(Vec::new());
        // The labels' symbols, and the open chunk when it is taken now.
        let deep = |s: &MemSeries| labels_line(s) ^ if later { 0 } else { open_line(s) };
        self.head.visit_part(refs, part, parts, |ix, batch| {
            strings.begin();
            each_warmed(batch.iter().copied(), deep, |r, s| {
                let src = if later {
                    // What a batch finds empty is left out then.
                    s.overlaps(self.mint, self.maxt).then_some(Source::Later(r))
                } else {
                    self.take(r, s).map(Source::Head)
                };
                if let Some(src) = src {
                    let key = Key::Head(strings.number(ix, &s.labels), unranked.clone());
                    out.push((key, src));
                }
            });
        });
    }

    /// [`HeadQuerier::number_part`] of all of `refs` on two threads, the
    /// caller's and one beside it, each over half of the shards: numbering
    /// a large selection's label strings under the locks was most of what
    /// its query did before decoding could start, with the second core
    /// idle. The second half is appended after the first, its numbers
    /// moved past the first half's strings; a string both halves hold is
    /// numbered twice and becomes one rank in [`Strings::ranked`]. If no
    /// thread can be started, the caller numbers both halves.
    fn number_beside(
        &self,
        refs: &[SeriesRef],
        later: bool,
        out: &mut Vec<(Key, Source)>,
    ) -> Result<Strings, Error> {
        let half = |part: usize| {
            let mut strings = Strings::default();
            let mut found = Vec::new();
            self.number_part(refs, (part, 2), later, &mut strings, &mut found);
            (strings, found)
        };
        let (mut strings, (theirs, mut found)) = std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name("select-number".into())
                .spawn_scoped(scope, move || {
                    // Numbering goes on either way.
                    let _ = lower_priority();
                    half(1)
                });
            let mut strings = Strings::default();
            self.number_part(refs, (0, 2), later, &mut strings, out);
            let theirs = match helper {
                Ok(h) => h
                    .join()
                    .map_err(|_| Error::Other("the selection's numbering thread failed".into()))?,
                Err(_) => half(1),
            };
            Ok::<_, Error>((strings, theirs))
        })?;
        let Ok(moved) = u32::try_from(strings.distinct.len()) else {
            return Err(Error::Other("too many label strings in a selection".into()));
        };
        for (key, _) in &mut found {
            if let Key::Head(ns, _) = key {
                for n in ns.iter_mut() {
                    *n += moved;
                }
            }
        }
        strings.distinct.extend(theirs.distinct);
        out.append(&mut found);
        Ok(strings)
    }

    /// The chunks of series `r` (`s`, under its shard's lock) in the range,
    /// if it has any there in memory or on disk.
    ///
    /// A latest-value selection (`latest_from`) takes nothing older than
    /// the memory's latest chunk start at or before its first reference
    /// time: every step finds its latest sample at or after that start.
    /// When the newest samples are in memory, as for a dashboard refresh
    /// whose lookback reaches back past a chunk cut, the chunk store is not
    /// read at all (it holds only samples older than memory's).
    fn take(&self, r: SeriesRef, s: &MemSeries) -> Option<Taken> {
        let from = self.latest_from.and_then(|t| s.mem_start_at_or_before(t));
        let mut chunks = Vec::new();
        s.chunks_in(
            from.map_or(self.mint, |m| m.max(self.mint)),
            self.maxt,
            &mut chunks,
        );
        let disk = s.disk_range();
        let read_disk =
            from.is_none() && disk.is_some_and(|(a, b)| a <= self.maxt && b >= self.mint);
        (!chunks.is_empty() || read_disk).then_some(Taken {
            r,
            chunks,
            read_disk,
            disk_max: disk.map_or(i64::MIN, |(_, b)| b),
        })
    }

    /// Takes the chunks of the batch's series selected for later, under
    /// their shards' locks. A series that has left memory since it was
    /// selected is read from the chunk store, which it went to first; one
    /// still in memory with nothing left in the range leaves the batch.
    fn take_batch(&self, items: &mut Vec<(Key, Source)>) {
        let refs: Vec<SeriesRef> = items
            .iter()
            .filter_map(|(_, src)| match src {
                Source::Later(r) => Some(*r),
                _ => None,
            })
            .collect();
        if refs.is_empty() {
            return;
        }
        let mut taken: FxHashMap<SeriesRef, Option<Taken>> =
            FxHashMap::with_capacity_and_hasher(refs.len(), Default::default());
        self.head.visit(&refs, |_, batch| {
            each_warmed(batch.iter().copied(), open_line, |r, s| {
                taken.insert(r, self.take(r, s));
            });
        });
        items.retain_mut(|(_, src)| {
            if let Source::Later(r) = *src {
                *src = match taken.remove(&r) {
                    Some(Some(t)) => Source::Head(t),
                    Some(None) => return false,
                    None => Source::Cold { r, last: i64::MAX },
                };
            }
            true
        });
    }

    /// The series that left memory and match, read from the chunk store.
    fn take_cold(&self, matchers: &[Matcher], out: &mut Vec<(Key, Source)>) -> Result<(), Error> {
        let Some(disk) = self.head.disk() else {
            return Ok(());
        };
        let cold = disk.cold_select(matchers, self.mint, self.maxt)?;
        if cold.is_empty() {
            return Ok(());
        }
        // Went cold between the two looks: the head's look has it already.
        let taken: FxHashSet<SeriesRef> = out
            .iter()
            .filter_map(|(_, src)| match src {
                Source::Head(t) => Some(t.r),
                Source::Later(r) => Some(*r),
                Source::Cold { .. } => None,
            })
            .collect();
        for (r, labels, (_, last)) in cold {
            // Came back between the two looks: the head has answered for it.
            if !self.head.contains(r) && !taken.contains(&r) {
                out.push((Key::Cold(labels), Source::Cold { r, last }));
            }
        }
        Ok(())
    }

    /// The chunks on disk of a batch's series, read in as few passes as
    /// their references allow ([`DiskChunks::read_many`]); empty when there
    /// is little to gain or the read fails (then each series' own read
    /// reports it).
    fn read_ahead(&self, items: &[(Key, Source)]) -> ReadAhead {
        let mut out = ReadAhead::default();
        let Some(disk) = self.head.disk() else {
            return out;
        };
        let mut wanted: Vec<(SeriesRef, i64)> = items
            .iter()
            .filter_map(|(_, src)| match src {
                Source::Head(t) if t.read_disk => Some((t.r, t.disk_max)),
                Source::Cold { r, last } => Some((*r, *last)),
                _ => None,
            })
            .collect();
        wanted.sort_unstable();
        if wanted.len() < 2 || wanted.windows(2).any(|w| w[0].0 == w[1].0) {
            return out;
        }
        let mut chunks = Vec::new();
        if disk
            .read_many(&wanted, self.mint, self.maxt, &mut chunks)
            .is_err()
        {
            return out;
        }
        for &(r, _) in &wanted {
            out.insert(r, Vec::new());
        }
        for (r, encoding, data) in chunks {
            if let Some(v) = out.get_mut(&r) {
                v.push((encoding, data));
            }
        }
        out
    }

    /// Decodes the samples in range of one selected series into `samples`;
    /// `stored` is a reused buffer, `ahead` what was read ahead.
    fn decode(
        &self,
        src: &Source,
        ahead: &mut ReadAhead,
        stored: &mut Vec<(Encoding, Vec<u8>)>,
        samples: &mut Vec<Sample>,
    ) -> Result<(), Error> {
        let disk = self.head.disk();
        match src {
            Source::Head(t) => {
                if t.read_disk
                    && let Some(disk) = &disk
                {
                    // Room for the memory's samples too: one allocation.
                    let more = samples_in(&t.chunks);
                    let stored = ahead_or(ahead, t.r, stored);
                    self.read_disk(disk.as_ref(), t.r, t.disk_max, more, stored, samples)?;
                }
                // Memory holds what came after the disk's last sample.
                let from = self.mint.max(t.disk_max.saturating_add(1));
                decode_range(&t.chunks, from, self.maxt, samples);
            }
            Source::Cold { r, last } => {
                if let Some(disk) = &disk {
                    let stored = ahead_or(ahead, *r, stored);
                    self.read_disk(disk.as_ref(), *r, *last, 0, stored, samples)?;
                }
            }
            // Every batch is taken before it is decoded.
            Source::Later(_) => {
                return Err(Error::Other("a selected series was not taken".into()));
            }
        }
        Ok(())
    }

    /// Appends the samples in range of the chunks of `r` on disk that end at
    /// or before `upto`, with room for `more` samples after them; `stored`
    /// is a reused buffer, or the chunks read ahead.
    fn read_disk(
        &self,
        disk: &dyn DiskChunks,
        r: SeriesRef,
        upto: i64,
        more: usize,
        stored_in: Stored<'_>,
        samples: &mut Vec<Sample>,
    ) -> Result<(), Error> {
        let stored = |(encoding, data)| ChunkData::Stored(encoding, data);
        let chunks: Vec<ChunkData> = match stored_in {
            Stored::Ahead(chunks) => chunks.into_iter().map(stored).collect(),
            Stored::Read(buf) => {
                buf.clear();
                disk.read(r, self.mint, self.maxt, upto, buf)?;
                buf.drain(..).map(stored).collect()
            }
        };
        samples.reserve(samples_in(&chunks) + more);
        decode_range(&chunks, self.mint, self.maxt, samples);
        Ok(())
    }
}

/// A batch's chunks read ahead from disk, by series.
type ReadAhead = FxHashMap<SeriesRef, Vec<(Encoding, Vec<u8>)>>;

/// Where a series' chunks on disk come from.
enum Stored<'a> {
    Ahead(Vec<(Encoding, Vec<u8>)>),
    /// Read now into this buffer.
    Read(&'a mut Vec<(Encoding, Vec<u8>)>),
}

/// The chunks of `r` read ahead, or the buffer to read them into.
fn ahead_or<'a>(
    ahead: &mut ReadAhead,
    r: SeriesRef,
    buf: &'a mut Vec<(Encoding, Vec<u8>)>,
) -> Stored<'a> {
    match ahead.remove(&r) {
        Some(chunks) => Stored::Ahead(chunks),
        None => Stored::Read(buf),
    }
}

/// Selections of at least this many series are prepared on a thread
/// beside the caller as well as on the caller's.
const PIPELINE_MIN_SERIES: usize = 256;

/// Selections of at least this many head series have their labels
/// numbered on two threads ([`HeadQuerier::number_beside`]): below it, a
/// thread's start is a good part of the time it would save.
const SPLIT_MIN_SERIES: usize = 4096;

/// Series taken at a time, and batches that may be finished or under way
/// past the one the caller hands out next: what both threads hold beyond
/// the caller's series is bounded by `(PIPELINE_AHEAD + 2) * PIPELINE_BATCH`
/// series. A batch's take locks each shard that holds some of its series
/// once: at 16 series a batch that was about one series a lock hold, with
/// nothing for the walk's read-ahead to overlap, and the hand-over between
/// the threads at every 16th series; at 128 Ray's aggregations over 83-92 k
/// series at 500 × 2,000 took about a quarter less time (docs/performance.md,
/// "The built-in heavy aggregations"), and a few hundred decoded series are
/// still little beside a query's answer.
const PIPELINE_BATCH: usize = 128;
const PIPELINE_AHEAD: usize = 3;

/// Whether a second core may take the decoding: looked up once, as the
/// answer comes from the scheduler and the cgroup's files.
fn spare_core() -> bool {
    static SPARE: OnceLock<bool> = OnceLock::new();
    *SPARE.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// The nice value of query work: the web server's query threads and a
/// select's decoding thread. With 10, a busy query thread weighs about a
/// tenth of a normal thread in Linux's scheduler (110 against 1024): twenty
/// of them together still leave a scrape thread more than half of a core
/// when it needs it. A select may come from a query's first try on the
/// server's own thread, which also scrapes: its decoding thread must not
/// compete with scraping at that thread's priority.
pub(crate) const QUERY_NICE: i32 = 10;

/// Lowers this thread's CPU priority to [`QUERY_NICE`] unless it is lower
/// already; an error only costs isolation (the caller decides whether to
/// say so).
pub(crate) fn lower_priority() -> rustix::io::Result<()> {
    let tid = rustix::thread::gettid();
    if rustix::process::getpriority_process(Some(tid))? < QUERY_NICE {
        rustix::process::setpriority_process(Some(tid), QUERY_NICE)?;
    }
    Ok(())
}

/// One batch of prepared series, each with what `prep` returned, and the
/// error that ended it.
type Prepared = (Vec<(Series, usize)>, Option<Error>);

impl HeadQuerier<'_> {
    /// Decodes and prepares the sorted selection one series at a time,
    /// handing each to `f` until it breaks.
    fn prepare_each(
        &self,
        found: Vec<(Key, Source)>,
        prep: Prepare<'_>,
        f: &mut dyn FnMut(Series, usize) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let mut found = found.into_iter();
        loop {
            let mut batch: Vec<_> = found.by_ref().take(PIPELINE_BATCH).collect();
            if batch.is_empty() {
                return Ok(());
            }
            self.take_batch(&mut batch);
            for s in self.decoded(batch) {
                let mut s = s?;
                let n = prep(&mut s);
                if f(s, n).is_break() {
                    return Ok(());
                }
            }
        }
    }

    /// The sorted selection decoded one series at a time, leaving out those
    /// with no samples in the range; the caller stops at the first error.
    fn decoded<'s>(
        &'s self,
        found: Vec<(Key, Source)>,
    ) -> impl Iterator<Item = Result<Series, Error>> + 's {
        let mut stored = Vec::new();
        let mut ahead = self.read_ahead(&found);
        // One table serves every head key of a select.
        let keep = self.keep.map(|names| Kept::new(names, &found));
        found.into_iter().filter_map(move |(key, src)| {
            let mut samples = Vec::new();
            if let Err(e) = self.decode(&src, &mut ahead, &mut stored, &mut samples) {
                return Some(Err(e));
            }
            drop(src);
            (!samples.is_empty()).then(|| {
                Ok(Series {
                    labels: key.into_labels(keep.as_ref()),
                    samples,
                })
            })
        })
    }

    /// One batch decoded and prepared, up to its first error.
    fn prepare_batch(&self, batch: &Mutex<Vec<(Key, Source)>>, prep: Prepare<'_>) -> Prepared {
        let mut items = std::mem::take(&mut *batch.lock().unwrap_or_else(PoisonError::into_inner));
        self.take_batch(&mut items);
        let mut out = Vec::with_capacity(items.len());
        for s in self.decoded(items) {
            match s {
                Ok(mut s) => {
                    let n = prep(&mut s);
                    out.push((s, n));
                }
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    /// [`HeadQuerier::prepare_each`] on two threads: the selection is cut
    /// into batches that a thread beside the caller and the caller itself
    /// take in turn, decode (labels copied out) and prepare, and the caller
    /// hands them to `f` in order. On a dashboard's large selections the
    /// decoding and the caller's work per series (a range function over
    /// every step, then folding) each took a good part; with either thread
    /// taking whichever batch comes next, neither waits for the other
    /// while work is left, whichever part is the larger. The order, the
    /// series and an error are as the one-thread loop gives them; if no
    /// thread can be started, the caller takes every batch.
    fn prepare_beside(
        &self,
        found: Vec<(Key, Source)>,
        prep: Prepare<'_>,
        f: &mut dyn FnMut(Series, usize) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let mut found = found.into_iter();
        let mut batches = Vec::new();
        loop {
            let batch: Vec<_> = found.by_ref().take(PIPELINE_BATCH).collect();
            if batch.is_empty() {
                break;
            }
            batches.push(Mutex::new(batch));
        }
        let n = batches.len();
        let shared = Shared::new();
        std::thread::scope(|scope| {
            let (shared, batches) = (&shared, &batches);
            // Without the helper the caller takes every batch itself.
            let _ = std::thread::Builder::new()
                .name("select-decode".into())
                .spawn_scoped(scope, move || {
                    // Preparing goes on either way.
                    let _ = lower_priority();
                    let _lost = LostOnPanic(shared);
                    loop {
                        let b = {
                            let mut g = shared.lock();
                            loop {
                                if g.stop || g.next >= n {
                                    return;
                                }
                                if g.next < g.consumed + PIPELINE_AHEAD {
                                    break;
                                }
                                g = shared.wait(g);
                            }
                            g.next += 1;
                            g.next - 1
                        };
                        let out = self.prepare_batch(&batches[b], prep);
                        shared.lock().done.push((b, out));
                        shared.changed.notify_all();
                    }
                });
            let _stop = StopOnDrop(shared);
            for b in 0..n {
                let (series, error) = loop {
                    let mut g = shared.lock();
                    if let Some(i) = g.done.iter().position(|d| d.0 == b) {
                        break g.done.swap_remove(i).1;
                    }
                    if g.next == b {
                        g.next += 1;
                        drop(g);
                        break self.prepare_batch(&batches[b], prep);
                    }
                    // The helper has `b` under way: take a later batch
                    // meanwhile, if that stays within the bound.
                    if g.next < n && g.next <= b + PIPELINE_AHEAD {
                        let c = g.next;
                        g.next += 1;
                        drop(g);
                        let out = self.prepare_batch(&batches[c], prep);
                        shared.lock().done.push((c, out));
                        continue;
                    }
                    if g.helper_lost {
                        return Err(Error::Other(
                            "the selection's decoding thread failed".into(),
                        ));
                    }
                    drop(shared.wait(g));
                };
                shared.lock().consumed = b + 1;
                shared.changed.notify_all();
                for (s, k) in series {
                    if f(s, k).is_break() {
                        return Ok(());
                    }
                }
                if let Some(e) = error {
                    return Err(e);
                }
            }
            Ok(())
        })
    }
}

impl Querier for HeadQuerier<'_> {
    fn select(&self, matchers: &[Matcher]) -> Result<Vec<Series>, Error> {
        let mut out = Vec::new();
        self.select_each(matchers, &mut |s| {
            out.push(s);
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// [`Querier::select_prepared`] with nothing to prepare.
    fn select_each(
        &self,
        matchers: &[Matcher],
        f: &mut dyn FnMut(Series) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        self.select_prepared(matchers, &SelectHints::default(), &|_| 0, &mut |s, _| f(s))
    }

    /// Finds and sorts the selected series by their labels and chunk
    /// handles, then decodes and prepares one series at a time (a large
    /// selection on two threads, see [`HeadQuerier::prepare_beside`]): the
    /// caller holds the samples of the series it is looking at (and both
    /// threads at most `(PIPELINE_AHEAD + 2) * PIPELINE_BATCH` series
    /// ahead), not of all of them.
    fn select_prepared(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
        prep: Prepare<'_>,
        f: &mut dyn FnMut(Series, usize) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        if matchers.is_empty() || self.mint > self.maxt {
            return Ok(());
        }
        // This view with the caller's hints, for every series it takes.
        let q = HeadQuerier {
            latest_from: hints.latest_from,
            keep: hints.labels.as_deref(),
            budget: hints.budget,
            ..*self
        };
        let mut found = Vec::new();
        if q.overlaps_head() {
            q.take_head(matchers, &mut found)?;
        }
        q.take_cold(matchers, &mut found)?;
        sort_found(&mut found);
        if found.len() >= PIPELINE_MIN_SERIES && spare_core() {
            q.prepare_beside(found, prep, f)
        } else {
            q.prepare_each(found, prep, f)
        }
    }

    fn series(&self, matchers: &[Matcher]) -> Result<Vec<Labels>, Error> {
        if matchers.is_empty() || self.mint > self.maxt {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if self.overlaps_head() {
            let refs = self.head.index().postings_for_matchers(matchers);
            self.head.visit(&refs, |ix, batch| {
                out.extend(
                    batch
                        .iter()
                        .filter(|(_, s)| s.overlaps(self.mint, self.maxt))
                        .map(|(_, s)| ix.labels(&s.labels)),
                );
            });
        }
        if let Some(disk) = self.head.disk() {
            for (r, labels, _) in disk.cold_select(matchers, self.mint, self.maxt)? {
                // Came back between the two looks: the head has answered for it.
                if !self.head.contains(r) {
                    out.push(labels);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, Error> {
        if self.mint > self.maxt {
            return Ok(Vec::new());
        }
        let names = self.head_label_names(matchers)?;
        self.with_cold(names, None, matchers)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, Error> {
        if self.mint > self.maxt {
            return Ok(Vec::new());
        }
        let values = self.head_label_values(name, matchers)?;
        self.with_cold(values, Some(name), matchers)
    }
}

impl HeadQuerier<'_> {
    /// Adds to the sorted label names (`name` None) or values of `name`
    /// that the head found those of cold series, sorted and unique.
    fn with_cold(
        &self,
        mut found: Vec<String>,
        name: Option<&str>,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, Error> {
        if let Some(disk) = self.head.disk() {
            found.extend(disk.cold_labels(name, matchers, self.mint, self.maxt)?);
            found.sort_unstable();
            found.dedup();
        }
        Ok(found)
    }

    fn head_label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, Error> {
        if !self.overlaps_head() {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> = if matchers.is_empty() && self.covers_head() {
            let ix = self.head.index();
            ix.label_names().map(|(n, _)| n.to_string()).collect()
        } else {
            let refs = self.candidates(matchers);
            let mut found: FxHashSet<String> = FxHashSet::default();
            let mut syms: FxHashSet<Sym> = FxHashSet::default();
            self.head.visit(&refs, |ix, batch| {
                for (_, s) in batch
                    .iter()
                    .filter(|(_, s)| s.overlaps(self.mint, self.maxt))
                {
                    syms.extend(s.labels.pairs().map(|(n, _)| n));
                }
                // Symbols are resolved under the lock that keeps them alive.
                for sym in syms.drain() {
                    let name = ix.symbols().get(sym);
                    if !found.contains(name) {
                        found.insert(name.to_string());
                    }
                }
            });
            found.into_iter().collect()
        };
        names.sort_unstable();
        Ok(names)
    }

    fn head_label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, Error> {
        if !self.overlaps_head() {
            return Ok(Vec::new());
        }
        let refs = {
            let ix = self.head.index();
            let values = ix.label_values(name);
            if matchers.is_empty() && self.covers_head() {
                let mut out: Vec<String> = values.iter().map(|(v, _)| v.to_string()).collect();
                out.sort_unstable();
                return Ok(out);
            }
            let lists: Vec<_> = values.iter().map(|(_, l)| l.refs()).collect();
            let with_name = union(&lists.iter().map(|l| &**l).collect::<Vec<_>>());
            if matchers.is_empty() {
                with_name
            } else {
                super::index::intersect(&ix.postings_for_matchers(matchers), &with_name)
            }
        };
        let mut found: FxHashSet<String> = FxHashSet::default();
        let mut syms: FxHashSet<Sym> = FxHashSet::default();
        self.head.visit(&refs, |ix, batch| {
            // Looked up under this lock: a symbol id is only stable while held.
            let Some(name_sym) = ix.symbols().lookup(name) else {
                return;
            };
            for (_, s) in batch
                .iter()
                .filter(|(_, s)| s.overlaps(self.mint, self.maxt))
            {
                if let Some((_, v)) = s.labels.pairs().find(|&(n, _)| n == name_sym) {
                    syms.insert(v);
                }
            }
            for sym in syms.drain() {
                let v = ix.symbols().get(sym);
                if !found.contains(v) {
                    found.insert(v.to_string());
                }
            }
        });
        let mut out: Vec<String> = found.into_iter().collect();
        out.sort_unstable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_sorts_as_its_keys_compare() {
        let table: Arc<[Arc<str>]> = (0..50)
            .map(|i| Arc::from(format!("{i:03}")))
            .collect::<Vec<_>>()
            .into();
        let mut x = 7u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20u64 {
            // A prefix every key shares, then keys of every length up to 8
            // ranks more, many equal in their first ranks after it.
            let mut found = Vec::new();
            let mut keys = Vec::new();
            for r in 0..300u64 {
                let len = 4 + (next() % 9) as usize;
                let key: Vec<u32> = (0..len)
                    .map(|i| {
                        if i < 4 {
                            1
                        } else {
                            (next() % (2 + round % 5)) as u32
                        }
                    })
                    .collect();
                keys.push(key.clone());
                found.push((Key::Head(key.into(), table.clone()), Source::Later(r)));
            }
            sort_found(&mut found);
            let mut want = keys.clone();
            want.sort_unstable();
            let got: Vec<Vec<u32>> = found
                .iter()
                .map(|(k, src)| {
                    let (Key::Head(k, _), Source::Later(r)) = (k, src) else {
                        panic!("a key or source changed kind");
                    };
                    // Each key stays with its own series.
                    assert_eq!(**k, *keys[*r as usize]);
                    k.to_vec()
                })
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_selection_numbered_on_two_threads_hands_out_the_labels_in_order() {
        use crate::storage::{Appendable, Queryable};
        use crate::tsdb::{Head, HeadOptions};
        let h = Head::new(HeadOptions::default());
        let mut app = h.appender();
        let n = SPLIT_MIN_SERIES + 1000;
        let mut want = Vec::new();
        for i in 0..n {
            // Strings every shard holds (the name, `g`), strings some
            // shards hold (`g`'s values) and one per series (`id`).
            let id = format!("{:x}", (i as u64).wrapping_mul(2_654_435_761) % 1_000_003);
            let g = (i % 7).to_string();
            let l = Labels::from_pairs([("__name__", "m"), ("g", g.as_str()), ("id", id.as_str())]);
            app.append(0, &l, 1_000, i as f64).unwrap();
            want.push(l);
        }
        app.commit().unwrap();
        want.sort();
        let q = h.querier(0, 2_000).unwrap();
        let got: Vec<Labels> = q
            .select(&[Matcher::equal("__name__", "m")])
            .unwrap()
            .into_iter()
            .map(|s| s.labels)
            .collect();
        assert_eq!(got.len(), n);
        assert!(got == want);
    }

    #[test]
    fn ranks_order_as_the_strings_do() {
        let mut words: Vec<&str> = vec![
            "",
            "\0",
            "a",
            "a\0",
            "ab",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefg",
            "abcdefgé",
            "zz",
        ];
        let hex: Vec<String> = (0..100u32)
            .map(|i| format!("{:08x}{i}", i.wrapping_mul(2_654_435_761) % 7))
            .collect();
        words.extend(hex.iter().map(String::as_str));
        // The same string twice, as two lock holds may intern it.
        words.push("ab");
        let strings = Strings {
            distinct: words.iter().map(|&w| Arc::from(w)).collect(),
            ..Strings::default()
        };
        let (table, rank) = strings.ranked();
        let mut want: Vec<&str> = words.clone();
        want.sort_unstable();
        want.dedup();
        let got: Vec<&str> = table.iter().map(|s| &**s).collect();
        assert_eq!(got, want);
        for (n, w) in words.iter().enumerate() {
            assert_eq!(&*table[rank[n] as usize], *w);
        }
    }
}
