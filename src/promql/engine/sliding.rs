//! Windows that slide over one series' samples as the steps of a range
//! query advance, and the running extremes `max_over_time` and
//! `min_over_time` keep across them.
//!
//! A window as long as the query (`max_over_time(x[14d])` on an hour's
//! dashboard) holds every sample of the series at every step; folding it
//! again at each of 241 steps walks each sample 241 times. Such a window
//! keeps its start from step to step, so the range functions continue the
//! last step's fold over the samples it gained ([`fold_extreme_from`]);
//! for windows whose start moves, a monotonic deque hands out the same
//! value in amortised constant time per step: every sample enters and
//! leaves it once.
//!
//! The value is Prometheus 2.42's bit for bit: its fold keeps the first
//! value unless a later one is greater (`>`), or the kept one is NaN. So
//! NaN counts only when every value of the window is NaN (the result is
//! then the window's last NaN), and among equal values (`0` and `-0`) the
//! earliest wins. The deque keeps the earliest of equal values in front
//! and never holds a NaN.
//!
//! Most windows need neither: [`Runs`] counts once per series where its
//! values stop rising (or falling), and a window that only rises has the
//! fold's maximum at its end and its minimum at its start, bit for bit.
//!
//! Sums, means and variances are not kept this way: adding the newest
//! value and subtracting the oldest rounds differently from Prometheus's
//! front-to-back sum, so those stay folded per window.

use std::collections::VecDeque;
use std::ops::Range;

use crate::model::Sample;

/// `[mint, maxt]` windows over ascending samples for ascending bounds: the
/// ends only move forward, so a whole range query walks each series once.
#[derive(Default)]
pub(super) struct SlidingWindow {
    lo: usize,
    hi: usize,
}

impl SlidingWindow {
    /// The indices of the samples with `mint <= t <= maxt`.
    pub fn slide(&mut self, samples: &[Sample], mint: i64, maxt: i64) -> Range<usize> {
        // Bounds that move back (a constant `@` time) restart the walk.
        if (self.lo > 0 && samples[self.lo - 1].t >= mint)
            || (self.hi > 0 && samples[self.hi - 1].t > maxt)
        {
            *self = SlidingWindow::default();
        }
        while self.lo < samples.len() && samples[self.lo].t < mint {
            self.lo += 1;
        }
        if self.hi < self.lo {
            self.hi = self.lo;
        }
        while self.hi < samples.len() && samples[self.hi].t <= maxt {
            self.hi += 1;
        }
        self.lo..self.hi
    }

    /// [`SlidingWindow::slide`] for bounds that never move back (no `@`
    /// time): the checks for a restart are left out of the step loop.
    pub fn advance(&mut self, samples: &[Sample], mint: i64, maxt: i64) -> Range<usize> {
        debug_assert!(self.lo == 0 || samples[self.lo - 1].t < mint);
        debug_assert!(self.hi == 0 || samples[self.hi - 1].t <= maxt);
        while self.lo < samples.len() && samples[self.lo].t < mint {
            self.lo += 1;
        }
        self.hi = self.hi.max(self.lo);
        while self.hi < samples.len() && samples[self.hi].t <= maxt {
            self.hi += 1;
        }
        self.lo..self.hi
    }
}

/// Where runs of one series' values break, counted from the front so that
/// a window can tell in two reads whether it holds a break.
///
/// `marks[i][k]` is the number of neighbours `(j - 1, j)` with `j <= i`
/// that break a run of kind `k`; the window `lo..hi` holds such a break
/// iff `marks[hi - 1][k] != marks[lo][k]`. For `max_over_time` and
/// `min_over_time` kind 0 is a rise (each value greater than the one
/// before, or the same bits) and kind 1 a fall; for `rate` and `increase`
/// kind 0 is a counter reset (a value below the one before).
#[derive(Default)]
pub(super) struct Runs {
    /// Whether the whole series holds no break of each kind.
    clean: [bool; 2],
    /// The counts, made only when both kinds break somewhere: a kind
    /// that never breaks answers every window, and the other is then
    /// never asked (as a counter's windows only rise).
    marks: Vec<[u32; 2]>,
}

impl Runs {
    /// Counts the breaks that `breaks(before, after)` finds in `samples`.
    pub fn count(&mut self, samples: &[Sample], breaks: impl Fn(f64, f64) -> [bool; 2]) {
        self.marks.clear();
        let mut any = [false; 2];
        for p in samples.windows(2) {
            let b = breaks(p[0].v, p[1].v);
            any[0] |= b[0];
            any[1] |= b[1];
        }
        self.clean = [!any[0], !any[1]];
        if self.clean[0] || self.clean[1] {
            return;
        }
        self.marks.reserve(samples.len());
        let mut n = [0u32; 2];
        let mut prev = samples.first().map_or(0.0, |p| p.v);
        for p in samples {
            let b = breaks(prev, p.v);
            n[0] += u32::from(b[0]);
            n[1] += u32::from(b[1]);
            self.marks.push(n);
            prev = p.v;
        }
    }

    /// How many samples the counts have room for.
    pub fn capacity(&self) -> usize {
        self.marks.capacity()
    }

    /// Whether the samples hold no break of kind `k` at all.
    pub fn none(&self, k: usize) -> bool {
        self.clean[k]
    }

    /// Whether the window `w` (not empty) holds no break of kind `k`. Of
    /// two kinds asked in turn, the first that never breaks answers.
    #[inline]
    pub fn unbroken(&self, w: &Range<usize>, k: usize) -> bool {
        if self.clean[k] {
            return true;
        }
        match (self.marks.get(w.end - 1), self.marks.get(w.start)) {
            (Some(b), Some(a)) => a[k] == b[k],
            // No counts: the other kind never breaks.
            _ => false,
        }
    }
}

/// The breaks of a rise (kind 0) and of a fall (kind 1) between `a` and
/// the value after it, `b`. Within a rise, Prometheus's fold for the
/// maximum ends on the last value and the one for the minimum keeps the
/// first; within a fall the other way round. Equal values count only when
/// their bits are the same (`0` and `-0` differ, and the fold keeps the
/// earliest of them); NaN breaks both unless it repeats a NaN's bits, so a
/// window without breaks holds no NaN or nothing else.
pub(super) fn extreme_breaks(a: f64, b: f64) -> [bool; 2] {
    let same = a.to_bits() == b.to_bits();
    [!(a < b || same), !(b < a || same)]
}

/// The running maximum (or minimum) of a window sliding forward.
pub(super) struct Extreme {
    max: bool,
    /// Indices of non-NaN samples in the window whose value no later
    /// sample beats: values descending (ascending for the minimum) from
    /// the front, equal values in sample order.
    deque: VecDeque<usize>,
    /// The first sample not yet looked at.
    next: usize,
    /// The window's start at the last call.
    lo: usize,
}

impl Extreme {
    pub fn new(max: bool) -> Extreme {
        Extreme {
            max,
            deque: VecDeque::new(),
            next: 0,
            lo: 0,
        }
    }

    /// Whether `a` beats `b`, as Prometheus's fold compares them.
    fn beats(&self, a: f64, b: f64) -> bool {
        if self.max { a > b } else { a < b }
    }

    /// `max_over_time` (or `min_over_time`) of `samples[w]`, which must not
    /// be empty.
    pub fn value(&mut self, samples: &[Sample], w: Range<usize>) -> f64 {
        if w.start < self.lo || w.end < self.next {
            // The window moved back: start over.
            self.deque.clear();
            self.next = w.start;
        }
        self.lo = w.start;
        self.next = self.next.max(w.start);
        while self.next < w.end {
            let v = samples[self.next].v;
            if !v.is_nan() {
                while self
                    .deque
                    .back()
                    .is_some_and(|&b| self.beats(v, samples[b].v))
                {
                    self.deque.pop_back();
                }
                self.deque.push_back(self.next);
            }
            self.next += 1;
        }
        while self.deque.front().is_some_and(|&f| f < w.start) {
            self.deque.pop_front();
        }
        match self.deque.front() {
            Some(&f) => samples[f].v,
            // Only NaNs: the fold ends on the last of them.
            None => samples[w.end - 1].v,
        }
    }
}

/// Prometheus's fold for `max_over_time` (`max`) or `min_over_time` over
/// one window, which must not be empty: cheaper than the deque where
/// windows do not overlap (one step, or a range shorter than the step).
pub(super) fn fold_extreme(w: &[Sample], max: bool) -> f64 {
    fold_extreme_from(w[0].v, w, max)
}

/// Prometheus's fold of [`fold_extreme`] from `m` on over `w`: with `m` the
/// fold of the samples before `w`, the fold of them and `w` together.
pub(super) fn fold_extreme_from(m: f64, w: &[Sample], max: bool) -> f64 {
    w.iter().fold(m, |m, p| {
        let beats = if max { p.v > m } else { p.v < m };
        if beats || m.is_nan() { p.v } else { m }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random samples with NaN, ±Inf, ±0, repeats and gaps.
    fn series(rnd: &mut impl FnMut() -> u64) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut t = (rnd() % 30_000) as i64;
        for _ in 0..(rnd() % 400) {
            let v = match rnd() % 12 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                3 => 0.0,
                4 => -0.0,
                5 | 6 => (rnd() % 5) as f64,
                _ => (rnd() % 100_000) as f64 / 7.0 - 5_000.0,
            };
            out.push(Sample { t, v });
            t += match rnd() % 30 {
                0 => 600_000,
                1..=5 => 1,
                _ => 1 + (rnd() % 20_000) as i64,
            };
        }
        // Runs of NaN only, so windows of nothing else occur.
        if rnd().is_multiple_of(3) {
            let n = out.len();
            for s in out.iter_mut().skip(n / 3).take(n / 4) {
                s.v = f64::NAN;
            }
        }
        out
    }

    #[test]
    fn running_extremes_equal_the_fold_per_window_bit_for_bit() {
        let mut rng = crate::testing::Rng::seeded_by_clock(
            "running_extremes_equal_the_fold_per_window_bit_for_bit",
        );
        let seed = rng.0;
        let mut rnd = move || rng.next();
        let mut windows = 0usize;
        for _ in 0..300 {
            let samples = series(&mut rnd);
            let range = 1 + (rnd() % 400_000) as i64;
            let step = 1 + (rnd() % 40_000) as i64;
            // A constant reference time now and then, as `@` gives.
            let at = rnd().is_multiple_of(8).then(|| (rnd() % 900_000) as i64);
            for max in [true, false] {
                let mut win = SlidingWindow::default();
                let mut ext = Extreme::new(max);
                let mut ts = (rnd() % 50_000) as i64 - 20_000;
                while ts < 1_000_000 {
                    let refr = at.unwrap_or(ts);
                    let w = win.slide(&samples, refr - range, refr);
                    let direct = crate::promql::engine::window(&samples, refr - range, refr);
                    let times = |w: &[Sample]| w.iter().map(|p| p.t).collect::<Vec<_>>();
                    assert_eq!(
                        times(&samples[w.clone()]),
                        times(direct),
                        "seed {seed} window at {ts}"
                    );
                    if !w.is_empty() {
                        windows += 1;
                        let got = ext.value(&samples, w);
                        let want = fold_extreme(direct, max);
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "seed {seed}: max {max} at {ts} over {range}: {got} != {want}"
                        );
                    }
                    ts += step;
                }
            }
        }
        assert!(windows > 10_000, "only {windows} windows compared");
    }

    /// A range query's running extremes against instant queries at each of
    /// its steps, over stored series with stale markers, NaN, ±Inf, ±0 and
    /// gaps, with offsets and `@`.
    #[test]
    fn range_queries_equal_instant_queries_at_every_step() {
        use crate::model::{Labels, STALE_NAN};
        use crate::promql::engine::{Engine, Value};
        use crate::promql::parser::parse_expr;
        use crate::storage::Appendable;
        use crate::tsdb::{Head, HeadOptions};

        let mut rng = crate::testing::Rng::seeded_by_clock(
            "range_queries_equal_instant_queries_at_every_step",
        );
        let seed = rng.0;
        let mut rnd = move || rng.next();
        let head = Head::new(HeadOptions::default());
        let mut app = head.appender();
        for i in 0..12 {
            let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
            let mut t = 0;
            for mut p in series(&mut rnd) {
                // Stored times must increase; some samples are stale markers.
                t = t.max(p.t) + 1;
                if rnd().is_multiple_of(15) {
                    p.v = STALE_NAN;
                }
                app.append(0, &l, t, p.v).unwrap();
            }
        }
        app.commit().unwrap();
        let e = Engine::default();
        let bits = |v: Value, t: i64| -> Vec<(String, u64)> {
            let canon = |v: f64| if v.is_nan() { 0 } else { v.to_bits() };
            match v {
                Value::Matrix(m) => m
                    .into_iter()
                    .filter_map(|s| {
                        let p = s.samples.iter().find(|p| p.t == t)?;
                        Some((s.labels.to_string(), canon(p.v)))
                    })
                    .collect(),
                Value::Vector(v) => v
                    .into_iter()
                    .map(|s| (s.labels.to_string(), canon(s.v)))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let mut compared = 0;
        for f in ["max_over_time", "min_over_time"] {
            for arg in [
                "m[3m]",
                "m[1h]",
                "m[45s] offset 1m",
                "m[2m] @ 300",
                "m[10m:20s]",
            ] {
                let q = parse_expr(&format!("{f}({arg})")).unwrap();
                let (start, end, step) = (0, 1_000_000, 7_000);
                let range = e.range(&head, &q, start, end, step).unwrap();
                let mut t = start;
                while t <= end {
                    let instant = bits(e.instant(&head, &q, t).unwrap(), t);
                    compared += instant.len();
                    assert_eq!(
                        bits(range.clone(), t),
                        instant,
                        "seed {seed}: {f}({arg}) at {t}"
                    );
                    t += step;
                }
            }
        }
        assert!(compared > 5_000, "only {compared} values compared");
    }
}
