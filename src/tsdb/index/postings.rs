//! Set operations on sorted lists of series references.
//!
//! Inputs are sorted and deduplicated; so are outputs. A "group" is a union
//! of lists (the values one matcher accepts), which is intersected with or
//! subtracted from a candidate list without always building the union first.
//! A list's references may be 32-bit ones (a narrow [`super::List`]): they
//! are read as they are, so that a long list of which a select reads a few
//! references is not first widened into a copy.

use crate::storage::SeriesRef;

/// An element of a sorted list: a series reference, or a narrow list's
/// 32-bit one.
pub trait Ref: Copy + Into<SeriesRef> {}

impl Ref for u32 {}
impl Ref for SeriesRef {}

/// The sorted union of `lists`.
pub fn union<T: Ref>(lists: &[&[T]]) -> Vec<SeriesRef> {
    match lists {
        [] => Vec::new(),
        [a] => a.iter().map(|&r| r.into()).collect(),
        [a, b] => merge(a, b),
        _ => {
            let total: usize = lists.iter().map(|l| l.len()).sum();
            let max = lists
                .iter()
                .filter_map(|l| l.last())
                .map(|&r| r.into())
                .max()
                .unwrap_or(0);
            let words = (max / 64 + 1) as usize;
            if total < 1024 || words > total.saturating_mul(4) {
                let mut out = Vec::with_capacity(total);
                for l in lists {
                    out.extend(l.iter().map(|&r| r.into()));
                }
                out.sort_unstable();
                out.dedup();
                return out;
            }
            // Dense references: a bitmap is linear in the output.
            let mut bits = vec![0u64; words];
            for l in lists {
                for &r in *l {
                    let r: SeriesRef = r.into();
                    bits[(r / 64) as usize] |= 1 << (r % 64);
                }
            }
            let mut out = Vec::with_capacity(total);
            for (i, &w) in bits.iter().enumerate() {
                let mut w = w;
                while w != 0 {
                    out.push(i as u64 * 64 + u64::from(w.trailing_zeros()));
                    w &= w - 1;
                }
            }
            out
        }
    }
}

fn merge<T: Ref>(a: &[T], b: &[T]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y): (SeriesRef, SeriesRef) = (a[i].into(), b[j].into());
        match x.cmp(&y) {
            std::cmp::Ordering::Less => {
                out.push(x);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(y);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(x);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend(a[i..].iter().map(|&r| r.into()));
    out.extend(b[j..].iter().map(|&r| r.into()));
    out
}

/// Calls `hit(i)` for every index `i` of `a` whose element is also in `b`.
fn for_each_common<A: Ref, B: Ref>(a: &[A], b: &[B], mut hit: impl FnMut(usize)) {
    if a.is_empty() || b.is_empty() {
        return;
    }
    if a.len().saturating_mul(4) < b.len() {
        // Few candidates in a long list: gallop forward from the last hit,
        // which stays in nearby cache lines when candidates are spread evenly.
        let mut lo = 0;
        for (i, &x) in a.iter().enumerate() {
            let x: SeriesRef = x.into();
            lo += gallop(&b[lo..], x);
            if lo >= b.len() {
                return;
            }
            if b[lo].into() == x {
                hit(i);
                lo += 1;
            }
        }
        return;
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y): (SeriesRef, SeriesRef) = (a[i].into(), b[j].into());
        match x.cmp(&y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                hit(i);
                i += 1;
                j += 1;
            }
        }
    }
}

/// The index of the first element of `b` that is `>= x` (or `b.len()`).
#[inline]
fn gallop<T: Ref>(b: &[T], x: SeriesRef) -> usize {
    let below = |y: T| y.into() < x;
    let mut step = 1;
    let mut prev = 0;
    while step < b.len() && below(b[step]) {
        prev = step;
        step *= 2;
    }
    let end = (step + 1).min(b.len());
    prev + b[prev..end].partition_point(|&y| below(y))
}

/// Elements of `a` that are also in `b`.
pub fn intersect<A: Ref, B: Ref>(a: &[A], b: &[B]) -> Vec<SeriesRef> {
    if a.len() <= b.len() {
        let mut out = Vec::with_capacity(a.len());
        for_each_common(a, b, |i| out.push(a[i].into()));
        out
    } else {
        let mut out = Vec::with_capacity(b.len());
        for_each_common(b, a, |i| out.push(b[i].into()));
        out
    }
}

/// Elements of `a` that are not in `b`.
pub fn subtract<T: Ref>(a: &[SeriesRef], b: &[T]) -> Vec<SeriesRef> {
    let mut drop = vec![false; a.len()];
    for_each_common(a, b, |i| drop[i] = true);
    a.iter()
        .zip(drop)
        .filter(|(_, d)| !d)
        .map(|(r, _)| *r)
        .collect()
}

/// Whether testing each candidate against every list of the group costs less
/// than building the group's union.
fn filter_is_cheaper<T>(c: &[SeriesRef], group: &[&[T]]) -> bool {
    let n = c.len();
    let mut filter = 0usize;
    let mut total = 0usize;
    for l in group {
        // Galloping costs about log2 of the gap between hits per candidate.
        let gap = l.len() / n.max(1) + 1;
        let log = (usize::BITS - gap.leading_zeros()) as usize;
        filter = filter.saturating_add((n.saturating_mul(log + 1)).min(n + l.len()));
        total += l.len();
    }
    filter <= total.saturating_add(n)
}

/// Marks the candidates that appear in any list of the group.
fn mark<T: Ref>(c: &[SeriesRef], group: &[&[T]]) -> Vec<bool> {
    let mut marks = vec![false; c.len()];
    for l in group {
        for_each_common(c, l, |i| marks[i] = true);
    }
    marks
}

/// `c ∩ (∪ group)`.
pub fn intersect_union<T: Ref>(c: &[SeriesRef], group: &[&[T]]) -> Vec<SeriesRef> {
    match group {
        [] => Vec::new(),
        [l] => intersect(c, l),
        _ if filter_is_cheaper(c, group) => c
            .iter()
            .zip(mark(c, group))
            .filter(|(_, m)| *m)
            .map(|(r, _)| *r)
            .collect(),
        _ => intersect(c, &union(group)),
    }
}

/// `c ∖ (∪ group)`.
pub fn subtract_union<T: Ref>(c: &[SeriesRef], group: &[&[T]]) -> Vec<SeriesRef> {
    match group {
        [] => c.to_vec(),
        [l] => subtract(c, l),
        _ if filter_is_cheaper(c, group) => c
            .iter()
            .zip(mark(c, group))
            .filter(|(_, m)| !*m)
            .map(|(r, _)| *r)
            .collect(),
        _ => subtract(c, &union(group)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_union(lists: &[&[u64]]) -> Vec<u64> {
        let mut v: Vec<u64> = lists.iter().flat_map(|l| l.iter().copied()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn lists(seed: u64, n: usize, len: usize, stride: u64) -> Vec<Vec<u64>> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                let mut l: Vec<u64> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x % stride
                    })
                    .collect();
                l.sort_unstable();
                l.dedup();
                l
            })
            .collect()
    }

    #[test]
    fn operations_agree_with_naive_sets() {
        for (n, len, stride) in [
            (3, 10, 50),
            (5, 2000, 5000),
            (40, 300, 100_000),
            (2, 5, 1 << 40),
        ] {
            let ls = lists(n as u64 * 7 + 1, n, len, stride);
            let refs: Vec<&[u64]> = ls.iter().map(Vec::as_slice).collect();
            let u = union(&refs);
            assert_eq!(u, naive_union(&refs));
            for c in [&ls[0][..], &u[..], &ls[1][..ls[1].len() / 3]] {
                let want_i: Vec<u64> = c
                    .iter()
                    .copied()
                    .filter(|x| u.binary_search(x).is_ok())
                    .collect();
                let want_s: Vec<u64> = c
                    .iter()
                    .copied()
                    .filter(|x| u.binary_search(x).is_err())
                    .collect();
                assert_eq!(intersect_union(c, &refs), want_i);
                assert_eq!(subtract_union(c, &refs), want_s);
                assert_eq!(intersect(c, &u), want_i);
                assert_eq!(subtract(c, &u), want_s);
                // The same lists as 32-bit references, read without widening.
                if stride <= 1 << 32 {
                    let narrow: Vec<Vec<u32>> = ls
                        .iter()
                        .map(|l| l.iter().map(|&r| r as u32).collect())
                        .collect();
                    let nrefs: Vec<&[u32]> = narrow.iter().map(Vec::as_slice).collect();
                    assert_eq!(union(&nrefs), u);
                    assert_eq!(intersect_union(c, &nrefs), want_i);
                    assert_eq!(subtract_union(c, &nrefs), want_s);
                    assert_eq!(intersect(&narrow[0], c), intersect(&ls[0], c));
                }
            }
        }
    }
}
