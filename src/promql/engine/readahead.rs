//! Evaluating a large selection on a second core: the query thread finds
//! and decodes the selected series while a worker thread evaluates the ones
//! already read (window functions, folding into groups), so a query over a
//! hundred thousand series keeps two cores busy instead of one.
//!
//! The worker receives the series in the order the serial walk gives them
//! and evaluates them exactly as the query thread would have: every sum
//! adds the same values in the same order, so answers are the same bit for
//! bit.
//!
//! Bounds, so that a query never takes more than its share:
//! - a walk starts serially and hands over only past [`INLINE_SERIES`]
//!   series: small selections (most panels) never start a thread;
//! - one worker per walk, living only while the walk does: a query holds
//!   at most two threads, so `--query.max-concurrency` queries hold at most
//!   twice as many;
//! - the worker runs at the query thread's CPU priority (a query thread's
//!   nice 10), so that scraping keeps its precedence over both;
//! - the reading is ahead by at most [`QUEUE`] batches of about
//!   [`BATCH_SAMPLES`] samples, and hands over only when that fits under
//!   `--query.max-samples` beside what the query holds, so near the limit
//!   it fails exactly as the serial walk would;
//! - the worker checks the deadline and cancel flag as the query thread
//!   does, the reading checks them per batch, and each stops as soon as the
//!   other does (an error, a break);
//! - a first try that runs on the request thread (a query with a budget)
//!   never hands over.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use crate::model::Matcher;
use crate::storage::Series;

use super::{Error, Evaluator};

/// Series evaluated on the query thread before a worker takes over.
pub(super) const INLINE_SERIES: usize = 256;

/// Batches read ahead of the one being evaluated.
pub(super) const QUEUE: usize = 2;

/// Samples (about) per batch: a batch closes at this many or at
/// [`BATCH_SERIES`] series, whichever comes first.
pub(super) const BATCH_SAMPLES: usize = 16_384;
const BATCH_SERIES: usize = 64;

/// Samples read ahead at most (a batch may overshoot by one series).
fn ahead_bound() -> usize {
    (QUEUE + 1) * BATCH_SAMPLES
}

/// Whether a walk for `ev` may hand over to a worker.
fn wanted(ev: &Evaluator<'_>) -> bool {
    ev.budget.is_none()
        && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
        && ev.samples.saturating_add(ahead_bound()) <= ev.opts.max_samples
}

type Batch = Vec<Series>;

/// Walks the series of `index` (then filtered by `later`) with samples in
/// `[mint, maxt]`, handing each to `f` in order: on this thread for a small
/// selection, on a worker thread for a large one.
pub(super) fn each_series<'a, F>(
    ev: &mut Evaluator<'a>,
    index: &[Matcher],
    later: &[&Matcher],
    mint: i64,
    maxt: i64,
    f: F,
) -> Result<(), Error>
where
    F: FnMut(&mut Evaluator<'a>, Series) -> Result<(), Error> + Send,
{
    let storage = ev.storage;
    let q = storage
        .querier(mint, maxt)
        .map_err(|e| Error::Storage(e.to_string()))?;
    ev.check_deadline()?;
    let may_hand_over = wanted(ev);
    let stop = Stop {
        cancel: ev.cancel,
        deadline: ev.deadline,
    };
    let nice = priority();
    #[cfg(test)]
    let parent = std::thread::current().id();
    let mut f = f;
    std::thread::scope(|scope| {
        let mut inline = Some((ev, &mut f));
        let mut seen = 0usize;
        let mut tx: Option<SyncSender<Batch>> = None;
        let mut worker = None;
        let mut batch = Vec::new();
        let mut held = 0usize;
        let mut failed = None;
        let walked = q.select_each(index, &mut |s| {
            if !later.iter().all(|m| m.matches_labels(&s.labels)) {
                return ControlFlow::Continue(());
            }
            seen += 1;
            if !(may_hand_over && seen > INLINE_SERIES)
                && let Some((ev, f)) = inline.as_mut()
            {
                return match f(ev, s) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        failed = Some(e);
                        ControlFlow::Break(())
                    }
                };
            }
            if let Some((ev, f)) = inline.take() {
                let (send, recv) = sync_channel::<Batch>(QUEUE);
                let spawned = std::thread::Builder::new()
                    .name("raymon-query-eval".to_string())
                    .spawn_scoped(scope, move || {
                        match_priority(nice);
                        #[cfg(test)]
                        tests::record(parent);
                        consume(ev, recv, f)
                    });
                match spawned {
                    Ok(h) => {
                        worker = Some(h);
                        tx = Some(send);
                    }
                    Err(e) => {
                        failed = Some(Error::Execution(format!(
                            "cannot start a query worker thread: {e}"
                        )));
                        return ControlFlow::Break(());
                    }
                }
            }
            held += s.samples.len();
            batch.push(s);
            if batch.len() < BATCH_SERIES && held < BATCH_SAMPLES {
                return ControlFlow::Continue(());
            }
            held = 0;
            if let Err(e) = stop.check() {
                failed = Some(e);
                return ControlFlow::Break(());
            }
            match tx.as_ref().map(|t| t.send(std::mem::take(&mut batch))) {
                Some(Ok(())) => ControlFlow::Continue(()),
                // The worker stopped: its error is the answer.
                _ => ControlFlow::Break(()),
            }
        });
        if let Some(t) = tx.take()
            && failed.is_none()
            && walked.is_ok()
            && !batch.is_empty()
        {
            let _ = t.send(std::mem::take(&mut batch));
        }
        // The worker ends once the last batch is taken; an error of the
        // series it evaluated came before any of the reading.
        if let Some(h) = worker {
            match h.join() {
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {}
                Err(_) => return Err(Error::Execution("query worker thread panicked".into())),
            }
        }
        walked.map_err(|e| Error::Storage(e.to_string()))?;
        failed.map_or(Ok(()), Err)
    })
}

fn consume<'a, F>(ev: &mut Evaluator<'a>, rx: Receiver<Batch>, f: &mut F) -> Result<(), Error>
where
    F: FnMut(&mut Evaluator<'a>, Series) -> Result<(), Error>,
{
    for batch in rx {
        for s in batch {
            f(ev, s)?;
        }
    }
    Ok(())
}

/// When the reading gives up: the query's deadline and cancel flag.
struct Stop<'a> {
    cancel: Option<&'a AtomicBool>,
    deadline: Instant,
}

impl Stop<'_> {
    fn check(&self) -> Result<(), Error> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::Canceled("expression evaluation"));
        }
        if Instant::now() > self.deadline {
            return Err(Error::Timeout("expression evaluation"));
        }
        Ok(())
    }
}

/// This thread's nice value (Linux keeps one per thread).
fn priority() -> Option<i32> {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok()
}

/// Gives this thread the nice value `nice` if it is not already as low in
/// priority: Linux lets a new thread inherit its creator's, and this makes
/// sure of it. A failure only costs isolation, as for the query threads.
fn match_priority(nice: Option<i32>) {
    if let (Some(want), Some(have)) = (nice, priority())
        && have < want
    {
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), want);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::model::Labels;
    use crate::promql::engine::{Engine, Value};
    use crate::promql::parser::parse_expr;
    use crate::storage::Appendable;
    use crate::tsdb::{Head, HeadOptions};

    /// Workers started: the query thread that started each, the worker,
    /// and the worker's nice value.
    type Started = (std::thread::ThreadId, std::thread::ThreadId, Option<i32>);
    static STARTED: Mutex<Vec<Started>> = Mutex::new(Vec::new());

    pub(super) fn record(parent: std::thread::ThreadId) {
        if let Ok(mut s) = STARTED.lock() {
            s.push((parent, std::thread::current().id(), priority()));
        }
    }

    fn started_by(parent: std::thread::ThreadId) -> Vec<Started> {
        STARTED
            .lock()
            .map(|s| s.iter().filter(|w| w.0 == parent).cloned().collect())
            .unwrap_or_default()
    }

    /// 600 counters `c{g, i}` over 10 minutes, values from the test RNG.
    fn store(seed: u64) -> Head {
        let mut rng = crate::testing::Rng(seed.max(1));
        let head = Head::new(HeadOptions::default());
        let mut app = head.appender();
        for i in 0..600 {
            let l = Labels::from_pairs([
                ("__name__", "c"),
                ("g", &(i % 7).to_string()),
                ("i", &i.to_string()),
            ]);
            let mut v = 0.0;
            for t in (0..600_000).step_by(10_000) {
                v += (rng.next() % 1000) as f64 / 3.0;
                app.append(0, &l, t + (i % 10) as i64, v).unwrap();
            }
        }
        app.commit().unwrap();
        head
    }

    fn bits(v: Value) -> Vec<(String, Vec<(i64, u64)>)> {
        match v {
            Value::Matrix(m) => m
                .into_iter()
                .map(|s| {
                    let p = s.samples.iter().map(|p| (p.t, p.v.to_bits())).collect();
                    (s.labels.to_string(), p)
                })
                .collect(),
            other => vec![(format!("{other:?}"), Vec::new())],
        }
    }

    #[test]
    fn a_query_thread_reads_ahead_at_its_own_priority_with_the_serial_answer() {
        let seed = 22;
        println!("seed {seed}");
        let s = store(seed);
        let e = Engine::default();
        let expr = parse_expr("sum by (g) (rate(c[1m]))").unwrap();
        // The serial answer: a first try with a budget never reads ahead.
        let limits = crate::promql::engine::Limits {
            budget: Some(Instant::now() + std::time::Duration::from_secs(60)),
            ..Default::default()
        };
        let serial = e.range_until(&s, &expr, 60_000, 600_000, 15_000, limits);
        let serial = bits(serial.unwrap());
        let me = std::thread::current().id();
        assert!(
            started_by(me).is_empty(),
            "a budgeted try hands nothing over"
        );
        // On a thread at nice 10, as the web server's query threads run.
        let (ahead, query_thread) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let tid = rustix::thread::gettid();
                    rustix::process::setpriority_process(Some(tid), 10).unwrap();
                    let v = e.range(&s, &expr, 60_000, 600_000, 15_000).unwrap();
                    (bits(v), std::thread::current().id())
                })
                .join()
                .unwrap()
        });
        assert_eq!(ahead, serial, "the same answer, bit for bit");
        assert_eq!(ahead.len(), 7);
        let w = started_by(query_thread);
        if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
            assert_eq!(w.len(), 1, "{w:?}");
            assert_ne!(w[0].1, query_thread, "evaluated on a second thread");
            assert!(
                w[0].2.is_some_and(|n| n >= 10),
                "worker's nice {:?}",
                w[0].2
            );
        } else {
            println!("skipped: the hand-over check (one core: nothing is handed over)");
        }
        // A small selection stays on the query thread.
        let small = parse_expr("sum(rate(c{i=~\"1.\"}[1m]))").unwrap();
        let t = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    e.range(&s, &small, 60_000, 600_000, 15_000).unwrap();
                    std::thread::current().id()
                })
                .join()
                .unwrap()
        });
        assert!(started_by(t).is_empty());
    }
}
