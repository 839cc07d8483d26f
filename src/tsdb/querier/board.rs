//! The board through which a large selection's two threads share its
//! batches (`HeadQuerier::prepare_beside`): which are taken, finished and
//! handed out, and how either side tells the other it has stopped.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::Prepared;

/// Which batches of a selection are taken, finished and handed out; both
/// threads of `HeadQuerier::prepare_beside` share it under one lock.
pub(super) struct Board {
    /// The first batch nobody has taken.
    pub(super) next: usize,
    /// Batches the caller has taken back (all before it).
    pub(super) consumed: usize,
    /// Finished batches not yet handed out.
    pub(super) done: Vec<(usize, Prepared)>,
    /// The caller has stopped: take nothing more.
    pub(super) stop: bool,
    /// The helper thread has ended by a panic, maybe holding a batch.
    pub(super) helper_lost: bool,
}

pub(super) struct Shared {
    board: Mutex<Board>,
    pub(super) changed: Condvar,
}

impl Shared {
    /// A board with no batch taken.
    pub(super) fn new() -> Shared {
        Shared {
            board: Mutex::new(Board {
                next: 0,
                consumed: 0,
                done: Vec::new(),
                stop: false,
                helper_lost: false,
            }),
            changed: Condvar::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Board> {
        // A thread that panicked left the board consistent: every change
        // is one assignment or push.
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn wait<'g>(&self, g: MutexGuard<'g, Board>) -> MutexGuard<'g, Board> {
        self.changed.wait(g).unwrap_or_else(PoisonError::into_inner)
    }
}

/// Tells the helper thread to stop when the caller leaves, however it
/// leaves (done, broken off, an error, a panic in `f`): the scope that
/// joins the helper would otherwise wait on it forever.
pub(super) struct StopOnDrop<'a>(pub(super) &'a Shared);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.lock().stop = true;
        self.0.changed.notify_all();
    }
}

/// Tells the caller when the helper thread panics, so that it does not
/// wait for a batch that thread held; the scope then passes the panic on.
pub(super) struct LostOnPanic<'a>(pub(super) &'a Shared);

impl Drop for LostOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().helper_lost = true;
            self.0.changed.notify_all();
        }
    }
}
