//! A thread of its own, at the queries' priority (`QUERY_NICE`, nice 10),
//! for the part of the store's background work that holds no lock the
//! scrape path or a query waits for: writing, summing and syncing the bytes
//! of a checkpoint and of the head image, which were copied or encoded
//! beforehand under the head's locks at the background thread's own
//! priority. On the background thread (nice 0) those bytes took a core from
//! the queries (nice 10) for a second or more at every checkpoint; here
//! they share it as an equal. Priority is the only thing this file knows of
//! that work.

use std::thread::{Scope, ScopedJoinHandle};

/// The name of the writing thread.
const NAME: &str = "raymon-tsdb-write";

/// Starts `f` on a scoped thread at the queries' priority.
pub(crate) fn spawn_scoped<'scope, T: Send + 'scope>(
    s: &'scope Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::io::Result<ScopedJoinHandle<'scope, T>> {
    std::thread::Builder::new()
        .name(NAME.to_string())
        .spawn_scoped(s, move || {
            // A failure only costs the queries their share of the core.
            let _ = super::lower_priority();
            f()
        })
}

/// Runs `f` at the queries' priority and waits for it; on the calling
/// thread when no thread can be started.
pub(crate) fn run<T: Send>(f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let f = std::sync::Mutex::new(Some(f));
    let take = || f.lock().ok().and_then(|mut g| g.take());
    std::thread::scope(|s| {
        let spawned = spawn_scoped(s, || take().map(|f| f()));
        let done = spawned.ok().and_then(|h| h.join().ok()).flatten();
        match done {
            Some(v) => Ok(v),
            // Not started (or it panicked before taking `f`): here instead.
            None => take()
                .map(|f| f())
                .ok_or_else(|| std::io::Error::other("the writing thread panicked")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_at_the_queries_priority_and_returns_its_value() {
        let nice = run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())))
            .unwrap()
            .unwrap();
        assert!(nice >= super::super::QUERY_NICE, "nice {nice}");
    }
}
