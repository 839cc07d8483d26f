//! Walks over many series that read each one's memory (its own lines, its
//! open chunk, its labels): they touch a series that is in no cache, so
//! they read a group of series ahead and let the CPU overlap those misses.
//!
//! Used by checkpoints, the head image's copy and selections. Knows the
//! series' layout, nothing of what the walk does.

use crate::storage::SeriesRef;

use super::series::MemSeries;

/// Series a walk visits before it reads them, at most this many at a time.
const WARM_GROUP: usize = 32;

/// Calls `f` with each series of `series`, having first read every cache
/// line of the series, and then what `deep` reads of what they point to
/// (the open chunk, the labels: what `f` will read), for [`WARM_GROUP`] of
/// them: those loads do not depend on each other, so the CPU overlaps
/// their misses, where `f` alone waits for each series in turn: a
/// checkpoint of a million series spent three quarters of its walk on
/// them, as the appender did before it warmed its series (`append::warm`).
/// A selection's walks over a dashboard's tens of thousands of series
/// (numbering their labels, taking their chunks) wait on the same misses.
/// (A walk that only iterates a shard's map, such as `Head::flush_refs`,
/// gains nothing: the CPU runs ahead through the map by itself, and the
/// extra reads cost more.)
pub(crate) fn each_warmed<'a>(
    mut series: impl Iterator<Item = (SeriesRef, &'a MemSeries)>,
    deep: impl Fn(&MemSeries) -> u64,
    mut f: impl FnMut(SeriesRef, &'a MemSeries),
) {
    loop {
        let mut group: [Option<(SeriesRef, &'a MemSeries)>; WARM_GROUP] = [None; WARM_GROUP];
        let mut n = 0;
        for (slot, x) in group.iter_mut().zip(series.by_ref()) {
            *slot = Some(x);
            n += 1;
        }
        let mut acc = 0u64;
        // The series' own lines (its first field, the middle one and the
        // last), then what they point to.
        for (_, s) in group.iter().flatten() {
            acc ^= u64::from(s.has_last) ^ s.hash ^ s.closed.len() as u64;
        }
        for (_, s) in group.iter().flatten() {
            acc ^= deep(s);
        }
        std::hint::black_box(acc);
        for (r, s) in group.into_iter().flatten() {
            f(r, s);
        }
        if n < WARM_GROUP {
            return;
        }
    }
}

/// For [`each_warmed`]: the first line of the open chunk's bytes.
pub(crate) fn open_line(s: &MemSeries) -> u64 {
    s.open.as_ref().map_or(0, |o| {
        u64::from(o.chunk.bytes().first().copied().unwrap_or(0))
    })
}

/// For [`each_warmed`]: the closed chunks' list and the first one's bytes.
pub(super) fn closed_line(s: &MemSeries) -> u64 {
    s.closed
        .first()
        .map_or(0, |c| u64::from(c.data.first().copied().unwrap_or(0)))
}

/// For [`each_warmed`]: the first line of the labels' symbols.
pub(crate) fn labels_line(s: &MemSeries) -> u64 {
    u64::from(s.labels.first_byte())
}
