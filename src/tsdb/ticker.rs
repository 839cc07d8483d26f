//! A named thread that calls a closure once a period until it is stopped or
//! the closure says its owner is gone. The store's and the agent's
//! background work (WAL sync, retention, checkpoints, truncation) both run on
//! one; holding only a weak reference to their owner inside the closure lets
//! the owner drop while the thread sleeps.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The running thread, if any: dropping its sender wakes and ends it.
#[derive(Default)]
pub(crate) struct Ticker(Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>);

impl Ticker {
    /// Starts `tick` on a thread named `name`, every `every`; it ends when
    /// `tick` returns false or at [`Ticker::stop`].
    pub(crate) fn start(
        &self,
        name: &str,
        every: Duration,
        mut tick: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel::<()>();
        let h = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    if !tick() {
                        return;
                    }
                }
            })?;
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((tx, h));
        Ok(())
    }

    /// Wakes the thread and waits until it has ended (a tick under way
    /// finishes first). Nothing to do when none runs.
    pub(crate) fn stop(&self) {
        let running = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some((tx, h)) = running {
            drop(tx);
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn ticks_until_stopped_or_told_to_end() {
        let n = Arc::new(AtomicU32::new(0));
        let t = Ticker::default();
        let c = n.clone();
        t.start("t", Duration::from_millis(1), move || {
            c.fetch_add(1, Ordering::Relaxed) < 2
        })
        .unwrap();
        // The closure ends the thread after its third call; stop joins it.
        while n.load(Ordering::Relaxed) < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        t.stop();
        assert_eq!(n.load(Ordering::Relaxed), 3);
        t.stop();

        let c = n.clone();
        t.start("t", Duration::from_secs(3600), move || {
            c.fetch_add(1, Ordering::Relaxed);
            true
        })
        .unwrap();
        t.stop();
        assert_eq!(n.load(Ordering::Relaxed), 3, "stop does not wait a period");
    }
}
