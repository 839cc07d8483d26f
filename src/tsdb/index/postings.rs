//! Set operations on sorted lists of series references.
//!
//! Inputs are sorted and deduplicated; so are outputs. A "group" is a union
//! of lists (the values one matcher accepts), which is intersected with or
//! subtracted from a candidate list without always building the union first.

use crate::storage::SeriesRef;

/// The sorted union of `lists`.
pub fn union(lists: &[&[SeriesRef]]) -> Vec<SeriesRef> {
    match lists {
        [] => Vec::new(),
        [a] => a.to_vec(),
        [a, b] => merge(a, b),
        _ => {
            let total: usize = lists.iter().map(|l| l.len()).sum();
            let max = lists
                .iter()
                .filter_map(|l| l.last())
                .max()
                .copied()
                .unwrap_or(0);
            let words = (max / 64 + 1) as usize;
            if total < 1024 || words > total.saturating_mul(4) {
                let mut out = Vec::with_capacity(total);
                for l in lists {
                    out.extend_from_slice(l);
                }
                out.sort_unstable();
                out.dedup();
                return out;
            }
            // Dense references: a bitmap is linear in the output.
            let mut bits = vec![0u64; words];
            for l in lists {
                for &r in *l {
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

fn merge(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Calls `hit(i)` for every index `i` of `a` whose element is also in `b`.
fn for_each_common(a: &[SeriesRef], b: &[SeriesRef], mut hit: impl FnMut(usize)) {
    if a.is_empty() || b.is_empty() {
        return;
    }
    if a.len().saturating_mul(4) < b.len() {
        // Few candidates in a long list: gallop forward from the last hit,
        // which stays in nearby cache lines when candidates are spread evenly.
        let mut lo = 0;
        for (i, x) in a.iter().enumerate() {
            lo += gallop(&b[lo..], *x);
            if lo >= b.len() {
                return;
            }
            if b[lo] == *x {
                hit(i);
                lo += 1;
            }
        }
        return;
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
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
fn gallop(b: &[SeriesRef], x: SeriesRef) -> usize {
    let mut step = 1;
    let mut prev = 0;
    while step < b.len() && b[step] < x {
        prev = step;
        step *= 2;
    }
    let end = (step + 1).min(b.len());
    prev + b[prev..end].partition_point(|&y| y < x)
}

/// Elements of `a` that are also in `b`.
pub fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    for_each_common(small, large, |i| out.push(small[i]));
    out
}

/// Elements of `a` that are not in `b`.
pub fn subtract(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
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
fn filter_is_cheaper(c: &[SeriesRef], group: &[&[SeriesRef]]) -> bool {
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
fn mark(c: &[SeriesRef], group: &[&[SeriesRef]]) -> Vec<bool> {
    let mut marks = vec![false; c.len()];
    for l in group {
        for_each_common(c, l, |i| marks[i] = true);
    }
    marks
}

/// `c ∩ (∪ group)`.
pub fn intersect_union(c: &[SeriesRef], group: &[&[SeriesRef]]) -> Vec<SeriesRef> {
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
pub fn subtract_union(c: &[SeriesRef], group: &[&[SeriesRef]]) -> Vec<SeriesRef> {
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
            }
        }
    }
}
