//! The allocator's size classes, for buffers that grow in steps smaller
//! than doubling: a buffer grown to the end of a class uses its whole
//! allocation. The head's postings lists and the scrape caches grow this
//! way: they hold a reference or a slot per series, and doubling left them
//! on average a quarter to a half empty.
//!
//! Open chunks do not: in quarter steps a chunk's buffer passes through
//! twice as many small size classes, and when a million chunks close
//! together the few still in each class keep its pages resident (measured
//! in `docs/performance.md`, "Memory per series").

/// The smallest size of jemalloc's classes (and of most allocators') that
/// holds `n` bytes: multiples of 16 up to 128, then four sizes between one
/// power of two and the next (`size_classes.sh` in jemalloc 5.3, with
/// 4 KiB pages and the default `LG_QUANTUM` of 4).
pub(crate) fn size_class(n: usize) -> usize {
    if n <= 128 {
        return n.max(16).next_multiple_of(16);
    }
    let step = (1usize << (usize::BITS - 1 - (n - 1).leading_zeros())) / 4;
    n.next_multiple_of(step)
}

/// The capacity, in elements of `elem` bytes, to give a full buffer of
/// `cap` elements that needs room for `len + extra`: about `cap / den`
/// more, at least `min` more, rounded up to the end of a size class.
pub(crate) fn grown_capacity(
    len: usize,
    cap: usize,
    extra: usize,
    den: usize,
    min: usize,
    elem: usize,
) -> usize {
    let want = (cap + (cap / den).max(min)).max(len + extra);
    size_class(want * elem) / elem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_are_jemallocs() {
        let classes: Vec<usize> = [1, 16, 17, 33, 128, 129, 161, 256, 257, 600, 1025, 5000]
            .iter()
            .map(|&n| size_class(n))
            .collect();
        assert_eq!(
            classes,
            [16, 16, 32, 48, 128, 160, 192, 256, 320, 640, 1280, 5120]
        );
        // Large classes: 16 KiB, 20 KiB, .., 1.75 MiB, 2 MiB.
        assert_eq!(size_class(16 << 10), 16 << 10);
        assert_eq!(size_class((16 << 10) + 1), 20 << 10);
        assert_eq!(size_class((1 << 20) + 1), 1280 << 10);
        assert_eq!(size_class((1792 << 10) + 1), 2 << 20);
    }

    #[test]
    fn growth_is_a_fraction_to_a_class_end() {
        // 40-byte elements, 1/8 more: 2,048 -> 2,457 (the 96 KiB class
        // holds 2,457.6) rather than 4,096.
        assert_eq!(grown_capacity(2048, 2048, 1, 8, 4, 40), 2457);
        // An empty buffer gets room for `min` elements at least.
        assert_eq!(grown_capacity(0, 0, 1, 8, 4, 8), 4);
        // Never less than what is needed.
        assert!(grown_capacity(10, 10, 100, 8, 4, 8) >= 110);
    }
}
