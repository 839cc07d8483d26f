//! One target's scrape loop: Prometheus's timing (a per-target offset inside
//! the interval, then a steady ticker, with scrape timestamps snapped to the
//! interval within a small tolerance), fetch, append, report, and staleness
//! markers when the target goes away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::append::{Error as AppendError, Settings, Stats, TargetState};
use super::buffers::BodyBuffers;
use super::client::Client;
use super::status::{Health, MetricMetadata};
use super::target::Target;
use crate::selfmetrics::ScrapeMetrics;
use crate::storage::Appendable;

/// What `/api/v1/targets` shows of a loop.
#[derive(Debug, Clone)]
pub struct LoopStatus {
    pub health: Health,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
    pub metadata: Arc<Vec<MetricMetadata>>,
}

impl Default for LoopStatus {
    fn default() -> Self {
        LoopStatus {
            health: Health::Unknown,
            last_error: String::new(),
            last_scrape: None,
            last_duration: Duration::ZERO,
            metadata: Arc::default(),
        }
    }
}

/// A scrape body this large is appended with the async worker handed over
/// to the other loops. A Ray node's exposition is a few hundred KiB to
/// 2 MiB and takes a few milliseconds; handing over the worker costs a
/// thread switch and moves the loops' data to another core's cache, so
/// ordinary scrapes stay where they are.
const LARGE_BODY_BYTES: usize = 4 << 20;

fn multi_thread() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Everything a loop needs besides its target.
#[derive(Clone)]
pub struct LoopContext {
    pub client: Client,
    /// An error every scrape of the pool fails with instead of fetching
    /// (`target_limit` exceeded), as Prometheus's forced error.
    pub forced_error: Arc<Mutex<Option<String>>>,
    pub storage: Arc<dyn Appendable>,
    pub settings: Arc<Settings>,
    /// 0 means no limit.
    pub body_size_limit: u64,
    /// Mixed into the offset so two raymon instances spread differently.
    pub offset_seed: u64,
    pub metrics: Arc<ScrapeMetrics>,
    /// `--scrape.timestamp-tolerance` when `--scrape.adjust-timestamps` is
    /// on, else `None`.
    pub timestamp_tolerance: Option<Duration>,
    pub bodies: Arc<BodyBuffers>,
}

/// Owner's handle on a running loop.
pub struct LoopHandle {
    cancel: CancellationToken,
    stale_on_stop: Arc<AtomicBool>,
    pub status: Arc<Mutex<LoopStatus>>,
}

impl LoopHandle {
    /// Stops the loop. With `stale`, it first waits for its next scheduled
    /// scrape time and writes staleness markers at that time for every
    /// series of its last scrape (a target that left).
    pub fn stop(&self, stale: bool) {
        self.stale_on_stop.store(stale, Ordering::Relaxed);
        self.cancel.cancel();
    }
}

pub fn spawn(target: Arc<Target>, ctx: LoopContext) -> LoopHandle {
    let cancel = CancellationToken::new();
    let stale_on_stop = Arc::new(AtomicBool::new(false));
    let status = Arc::new(Mutex::new(LoopStatus::default()));
    let handle = LoopHandle {
        cancel: cancel.clone(),
        stale_on_stop: stale_on_stop.clone(),
        status: status.clone(),
    };
    tokio::spawn(run(target, ctx, cancel, stale_on_stop, status));
    handle
}

/// Delay before the first scrape: the target's fixed slot within the
/// interval, measured from wall-clock interval boundaries (Prometheus's
/// `scrapeLoop.offset`), so restarts keep the same phase.
pub fn first_delay(hash: u64, seed: u64, interval: Duration, now: SystemTime) -> Duration {
    let iv = interval.as_nanos().max(1) as u64;
    let now_ns = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let base = iv - now_ns % iv;
    let offset = (hash ^ seed) % iv;
    let mut next = base + offset;
    if next > iv {
        next -= iv;
    }
    Duration::from_nanos(next)
}

/// Picks each scrape's timestamp (Prometheus's `AlignScrapeTimestamps`):
/// timer jitter of a millisecond or two would otherwise turn every
/// delta-of-delta in a chunk from one bit into about nine.
#[derive(Debug, Clone)]
pub struct TimestampAligner {
    interval: Duration,
    /// `None` when adjusting is off.
    tolerance: Option<Duration>,
    last: Option<SystemTime>,
}

impl TimestampAligner {
    /// The tolerance is clamped to 1% of the interval, as Prometheus does,
    /// so short intervals are never bent by much.
    pub fn new(interval: Duration, tolerance: Option<Duration>) -> TimestampAligner {
        TimestampAligner {
            interval,
            tolerance: tolerance.map(|t| t.min(interval / 100)),
            last: None,
        }
    }

    /// The timestamp for a scrape starting at `now`: the previous one plus
    /// the interval when `now` is within the tolerance of it, else `now`.
    ///
    /// Unlike Prometheus's fixed grid (first scrape plus whole intervals,
    /// matched only when the tick is late), the target follows the last
    /// timestamp used and a tick may be early: the ticker runs on the
    /// monotonic clock while timestamps come from the wall clock, and a
    /// slewed wall clock would otherwise leave a fixed grid for good.
    pub fn time(&mut self, now: SystemTime) -> SystemTime {
        let chosen = match (self.tolerance, self.last) {
            (Some(tolerance), Some(last)) => {
                let expected = last + self.interval;
                let off = match now.duration_since(expected) {
                    Ok(late) => late,
                    Err(early) => early.duration(),
                };
                if off <= tolerance { expected } else { now }
            }
            _ => now,
        };
        self.last = Some(chosen);
        chosen
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn run(
    target: Arc<Target>,
    ctx: LoopContext,
    cancel: CancellationToken,
    stale_on_stop: Arc<AtomicBool>,
    status: Arc<Mutex<LoopStatus>>,
) {
    let delay = first_delay(
        target.hash(),
        ctx.offset_seed,
        target.interval,
        SystemTime::now(),
    );
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(delay) => {}
    }
    let mut ticker = tokio::time::interval_at(Instant::now(), target.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut state = TargetState::default();
    let request = ctx.client.prepare(&target.url, target.timeout);
    let mut last_body_len = 0usize;
    let mut metadata_len = 0usize;
    let mut last_start: Option<Instant> = None;
    let mut aligner = TimestampAligner::new(target.interval, ctx.timestamp_tolerance);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let started = aligner.time(SystemTime::now());
        let clock = Instant::now();
        if let Some(prev) = last_start.replace(clock) {
            ctx.metrics
                .observe_interval(target.interval, clock.duration_since(prev));
        }
        let t = unix_ms(started);
        let mut body = ctx.bodies.take(last_body_len + last_body_len / 16);
        let forced = ctx
            .forced_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let fetched = match forced {
            Some(e) => Err(e),
            None => tokio::select! {
                _ = cancel.cancelled() => break,
                r = ctx.client.scrape(&request, ctx.body_size_limit, &mut body) => {
                    r.map_err(|e| e.to_string())
                }
            },
        };
        let duration = clock.elapsed();
        let error = if body.len() >= LARGE_BODY_BYTES && multi_thread() {
            // Other targets' loops move to another worker while this one
            // parses and appends (a target that suddenly serves millions
            // of series takes seconds here).
            tokio::task::block_in_place(|| {
                scrape_once(&mut state, &ctx, &target, fetched, &body, t, duration)
            })
        } else {
            scrape_once(&mut state, &ctx, &target, fetched, &body, t, duration)
        };
        last_body_len = body.len();
        ctx.bodies.give(body);
        let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
        st.health = if error.is_none() {
            Health::Up
        } else {
            Health::Down
        };
        st.last_error = error.unwrap_or_default();
        st.last_scrape = Some(started);
        st.last_duration = duration;
        if state.metadata.len() != metadata_len || state.metadata_changed() {
            metadata_len = state.metadata.len();
            st.metadata = Arc::new(state.metadata.values().cloned().collect());
        }
    }
    if stale_on_stop.load(Ordering::Relaxed) {
        // Stale markers carry the time of the scrape that did not happen.
        ticker.tick().await;
        let t = unix_ms(SystemTime::now());
        let mut app = ctx.storage.appender();
        match state.append_end_of_run(app.as_mut(), t, &target.public) {
            Ok(()) => {
                if let Err(error) = app.commit() {
                    warn!(%error, target = %target.url, "cannot write staleness markers");
                }
            }
            Err(error) => {
                app.rollback();
                warn!(%error, target = %target.url, "cannot write staleness markers");
            }
        }
        debug!(target = %target.url, "target removed, series marked stale");
    }
}

/// Appends one scrape's outcome; returns the error to show, if any.
fn scrape_once(
    state: &mut TargetState,
    ctx: &LoopContext,
    target: &Target,
    fetched: Result<String, String>,
    body: &[u8],
    t: i64,
    duration: Duration,
) -> Option<String> {
    let mut app = ctx.storage.appender();
    let (mut error, stats) = match fetched {
        Ok(content_type) => {
            match state.append_body(
                app.as_mut(),
                body,
                &content_type,
                t,
                &target.public,
                &ctx.settings,
            ) {
                Ok(stats) => (None, stats),
                Err(e) => {
                    // A scrape over its sample limit still reports how many
                    // samples it had; other failures report none.
                    let stats = match e {
                        AppendError::SampleLimit(stats) => {
                            ctx.metrics.exceeded_sample_limit.inc();
                            stats
                        }
                        AppendError::LabelLimit(_) => {
                            ctx.metrics.exceeded_label_limits.inc();
                            Stats::default()
                        }
                        _ => Stats::default(),
                    };
                    app.rollback();
                    app = ctx.storage.appender();
                    if let Err(error) = state.append_failed(app.as_mut(), t) {
                        warn!(%error, "cannot write staleness markers");
                    }
                    (Some(e.to_string()), stats)
                }
            }
        }
        Err(e) => {
            if let Err(error) = state.append_failed(app.as_mut(), t) {
                warn!(%error, "cannot write staleness markers");
            }
            (Some(e), Stats::default())
        }
    };
    if let Err(e) = state.append_report(
        app.as_mut(),
        t,
        &target.public,
        error.is_none(),
        duration.as_secs_f64(),
        stats,
    ) {
        error.get_or_insert_with(|| e.to_string());
    }
    if let Err(e) = app.commit() {
        warn!(error = %e, target = %target.url, "cannot commit scrape");
        error.get_or_insert_with(|| e.to_string());
    }
    if let Some(e) = &error {
        debug!(error = %e, target = %target.url, "scrape failed");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_stays_inside_the_interval() {
        let iv = Duration::from_secs(10);
        for h in [0u64, 1, 12345, u64::MAX] {
            for now_s in [0u64, 3, 9, 1_700_000_007] {
                let now = UNIX_EPOCH + Duration::from_millis(now_s * 1000 + 123);
                let d = first_delay(h, 7, iv, now);
                assert!(d <= iv, "{d:?}");
            }
        }
    }

    #[test]
    fn same_target_same_phase() {
        let iv = Duration::from_secs(10);
        let a = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        let b = a + Duration::from_secs(20);
        let phase = |now: SystemTime| {
            let t = now + first_delay(99, 1, iv, now);
            t.duration_since(UNIX_EPOCH).unwrap().as_millis() % 10_000
        };
        assert_eq!(phase(a), phase(b));
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn ms(t: SystemTime) -> i64 {
        unix_ms(t)
    }

    const T0: u64 = 1_700_000_000_123;

    #[test]
    fn first_scrape_keeps_its_real_time() {
        let mut a = TimestampAligner::new(Duration::from_secs(1), Some(Duration::from_millis(2)));
        let now = at(T0) + Duration::from_micros(700);
        assert_eq!(a.time(now), now);
    }

    #[test]
    fn jitter_within_tolerance_is_snapped_to_the_interval() {
        let mut a = TimestampAligner::new(Duration::from_secs(1), Some(Duration::from_millis(2)));
        let ts: Vec<i64> = [0u64, 1_001, 2_002, 2_999, 3_998]
            .iter()
            .map(|d| ms(a.time(at(T0 + d))))
            .collect();
        let t0 = T0 as i64;
        assert_eq!(ts, [t0, t0 + 1_000, t0 + 2_000, t0 + 3_000, t0 + 4_000]);
    }

    #[test]
    fn jitter_beyond_tolerance_keeps_real_time_and_restarts_from_it() {
        let mut a = TimestampAligner::new(Duration::from_secs(1), Some(Duration::from_millis(2)));
        let ts: Vec<i64> = [0u64, 1_003, 2_004, 3_005, 3_990]
            .iter()
            .map(|d| ms(a.time(at(T0 + d))))
            .collect();
        let t0 = T0 as i64;
        // 1_003 is 3 ms late; 2_004 is then 1 ms from 1_003 + 1_000; 3_005
        // 2 ms from 3_003 (the bound counts); 3_990 is 13 ms early.
        assert_eq!(ts, [t0, t0 + 1_003, t0 + 2_003, t0 + 3_003, t0 + 3_990]);
    }

    #[test]
    fn tolerance_is_inclusive_to_the_nanosecond() {
        let tol = Duration::from_millis(2);
        let mut a = TimestampAligner::new(Duration::from_secs(10), Some(tol));
        let start = at(T0);
        a.time(start);
        let edge = start + Duration::from_secs(10) + tol;
        assert_eq!(a.time(edge), start + Duration::from_secs(10));
        let past = start + Duration::from_secs(20) + tol + Duration::from_nanos(1);
        assert_eq!(a.time(past), past);
    }

    #[test]
    fn a_skipped_tick_keeps_real_time() {
        let mut a = TimestampAligner::new(Duration::from_secs(1), Some(Duration::from_millis(2)));
        a.time(at(T0));
        assert_eq!(ms(a.time(at(T0 + 2_001))), (T0 + 2_001) as i64);
        assert_eq!(ms(a.time(at(T0 + 3_002))), (T0 + 3_001) as i64);
    }

    #[test]
    fn off_keeps_real_time() {
        let mut a = TimestampAligner::new(Duration::from_secs(1), None);
        for d in [0u64, 1_001, 2_000, 3_002] {
            assert_eq!(ms(a.time(at(T0 + d))), (T0 + d) as i64);
        }
    }

    #[test]
    fn tolerance_is_clamped_to_a_hundredth_of_the_interval() {
        // 100 ms interval: 1 ms tolerance at most, so 1.5 ms late stays real.
        let mut a =
            TimestampAligner::new(Duration::from_millis(100), Some(Duration::from_millis(2)));
        a.time(at(T0));
        let late = at(T0 + 100) + Duration::from_micros(1_500);
        assert_eq!(a.time(late), late);
        let next = late + Duration::from_millis(100) + Duration::from_micros(900);
        assert_eq!(a.time(next), late + Duration::from_millis(100));
    }
}
