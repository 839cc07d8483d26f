//! Query threads: where queries and other long reads run, so that they
//! never take a scrape's turn.
//!
//! Scrape loops share one async worker thread with the HTTP server. A
//! query that runs on that thread stops every scrape until it ends; one
//! that runs on a blocking thread of the same priority still takes its
//! share of two cores, and twenty of them leave scraping a twenty-first.
//! So each query that outlives its first short try gets a thread of its
//! own at a lower CPU priority (nice 10, `QUERY_NICE` in the store's
//! querier, whose decoding threads take it too): when the cores are busy,
//! the scheduler gives scraping its time first, and queries take what is
//! left. Their number is bounded by `--query.max-concurrency`
//! (the engine's slots) and, for other reads, by the connection limit.
//!
//! A thread lowers only its own priority (Linux keeps a nice value per
//! thread) and never raises it again: an unprivileged process could not.
//! That is why these threads are not the runtime's blocking pool, which
//! the WAL and storage use too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

/// The query thread went away without an answer (it could not be started,
/// or it panicked).
#[derive(Debug, thiserror::Error)]
#[error("query thread failed: {0}")]
pub struct Failed(String);

/// Runs `f` on a new query thread and waits for its answer.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Failed> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("raymon-query".to_string())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|e| Failed(e.to_string()))?;
    rx.await
        .map_err(|_| Failed("it stopped without an answer".to_string()))
}

/// Starts `f` on a new thread named `name` at the query threads' lower
/// priority, without waiting for it (an answer's encoding, which sends
/// what it makes on its own).
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), Failed> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            f();
        })
        .map(drop)
        .map_err(|e| Failed(e.to_string()))
}

/// Lowers this thread's CPU priority; a failure only costs isolation, so
/// it is logged once and not fatal.
fn lower_priority() {
    if let Err(e) = crate::tsdb::lower_priority() {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "cannot lower the CPU priority of query threads");
        }
    }
}

/// Sets its flag when dropped: held by a request handler, it tells the
/// query thread that nobody waits for the answer any more (the client
/// disconnected and the server dropped the handler).
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::QUERY_NICE;

    #[tokio::test]
    async fn runs_at_a_lower_priority_and_answers() {
        let nice = run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())))
            .await
            .unwrap()
            .unwrap();
        assert!(nice >= QUERY_NICE, "nice {nice}");
    }
}
