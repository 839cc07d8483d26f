//! Body buffers shared by the loops of a scrape pool.
//!
//! A Ray node's body is hundreds of kilobytes. Keeping one buffer per target
//! costs that much per target between scrapes; allocating one per scrape
//! made the allocator hand pages back and the kernel fault them in again
//! (4% of the scrape threads' CPU at 500 targets, plus the copies of a
//! growing buffer). Only the scrapes in flight need a buffer, and a handful
//! of buffers serves them all.

use std::sync::Mutex;

/// Buffers kept at most, and the largest buffer kept.
const KEEP_BUFFERS: usize = 8;
const KEEP_BYTES: usize = 16 << 20;

#[derive(Default)]
pub struct BodyBuffers {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BodyBuffers {
    /// An empty buffer with room for `want` bytes.
    pub fn take(&self, want: usize) -> Vec<u8> {
        let mut b = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        b.clear();
        if b.capacity() < want {
            // A new allocation, not `reserve`: growing would have the
            // allocator copy the old, stale bytes along.
            b = Vec::with_capacity(want);
        }
        b
    }

    /// Gives `b` back for the next scrape.
    pub fn give(&self, b: Vec<u8>) {
        if b.capacity() > KEEP_BYTES {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < KEEP_BUFFERS {
            free.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_bounded() {
        let pool = BodyBuffers::default();
        let mut a = pool.take(1000);
        a.extend_from_slice(b"abc");
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take(10);
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr);
        pool.give(b);
        // One too small for what is wanted is replaced, empty and big enough.
        let big = pool.take(1 << 20);
        assert!(big.is_empty() && big.capacity() >= 1 << 20);
        pool.give(big);
        pool.give(Vec::with_capacity(KEEP_BYTES + 1));
        for _ in 0..20 {
            pool.give(Vec::with_capacity(16));
        }
        assert_eq!(pool.free.lock().unwrap().len(), KEEP_BUFFERS);
        assert!(
            pool.free
                .lock()
                .unwrap()
                .iter()
                .all(|b| b.capacity() <= KEEP_BYTES)
        );
    }
}
