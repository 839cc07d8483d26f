//! One remote write queue (a `remote_write` section): a reader thread that
//! follows the WAL from a durable position, as Prometheus's WAL watcher
//! does, turns each series into its final labels (external labels, then
//! `write_relabel_configs`) once, and hands samples to the shards by series;
//! every 10 s it computes the number of shards with Prometheus 2.42's
//! formula (`calculateDesiredShards`) and reshards.
//!
//! The position written to disk is the start of the oldest WAL record with
//! a sample not yet finished with (sent, or refused for good), so after a
//! receiver outage or a restart (even `kill -9`) the queue goes on from
//! there: samples are sent at least once.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::encode::encode_labels;
use super::metrics::QueueMetrics;
use super::shard::{self, Msg, Pending, SendContext, ShardState};
use crate::config::{QueueConfig, RelabelConfig};
use crate::model::{Label, Labels};
use crate::storage::SeriesRef;
use crate::tsdb::wal::{Position, Record, Tail, Tailed};

/// How often the shard count is reconsidered (`shardUpdateDuration`).
const SHARD_UPDATE: Duration = Duration::from_secs(10);
/// The EWMA weight of the rates (`ewmaWeight`).
const EWMA_WEIGHT: f64 = 0.2;
/// Shards may be 30 % off the desired count before resharding.
const SHARD_TOLERANCE: f64 = 0.3;
/// How often the position is written, and the idle reader looks again.
const SAVE_EVERY: Duration = Duration::from_secs(1);
const IDLE_POLL: Duration = Duration::from_millis(100);

/// What the queue reads from the rest of the process.
pub struct Inputs {
    pub wal_dir: PathBuf,
    /// Labels of a series whose record the queue did not read (it was
    /// written before the queue's position).
    pub labels_of: Arc<dyn Fn(SeriesRef) -> Option<Labels> + Send + Sync>,
    /// Samples appended to storage so far, and the highest timestamp among
    /// them (`prometheus_remote_storage_samples_in_total`,
    /// `..._highest_timestamp_in_seconds`).
    pub samples_in: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub highest_in_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
}

/// A queue's settings.
pub struct QueueSettings {
    pub queue: QueueConfig,
    pub external_labels: Labels,
    pub relabel: Vec<RelabelConfig>,
    /// How long stopping waits for the shards to send what they hold.
    pub flush_deadline: Duration,
}

/// A running queue; dropping it does not stop it, [`Queue::stop`] does.
pub struct Queue {
    pub metrics: Arc<QueueMetrics>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Queue {
    /// Starts the reader at `start` (the saved position, or the WAL's end
    /// for a new queue); `holder` keeps the WAL segments it still needs.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        settings: QueueSettings,
        client: super::Client,
        metrics: Arc<QueueMetrics>,
        inputs: Inputs,
        start: Position,
        position_file: PathBuf,
        holder: Arc<AtomicU32>,
        rt: tokio::runtime::Handle,
    ) -> std::io::Result<Queue> {
        let stop = Arc::new(AtomicBool::new(false));
        let q = &settings.queue;
        metrics
            .shards_min
            .store(q.min_shards as u64, Ordering::Relaxed);
        metrics
            .shards_max
            .store(q.max_shards as u64, Ordering::Relaxed);
        metrics.capacity.store(q.capacity as u64, Ordering::Relaxed);
        metrics
            .max_samples_per_send
            .store(q.max_samples_per_send as u64, Ordering::Relaxed);
        metrics
            .shards_desired
            .store((q.min_shards as f64).to_bits(), Ordering::Relaxed);
        let ctx = Arc::new(SendContext {
            client,
            max_samples_per_send: q.max_samples_per_send,
            batch_send_deadline: q.batch_send_deadline,
            min_backoff: q.min_backoff,
            max_backoff: q.max_backoff,
            metrics: metrics.clone(),
            out_samples: Default::default(),
            out_nanos: Default::default(),
            last_send: Default::default(),
        });
        ctx.last_send.store(shard::unix_now(), Ordering::Relaxed);
        let reader = Reader {
            tail: Tail::new(&inputs.wal_dir, start),
            series: FxHashMap::default(),
            pos: start,
            saved: None,
            position_file,
            holder,
            shards: Shards::start(q.min_shards.max(1), &ctx, &rt),
            ctx,
            rt,
            settings,
            inputs,
            metrics: metrics.clone(),
            stop: stop.clone(),
            bufs: Vec::new(),
            rates: Rates::default(),
        };
        let thread = std::thread::Builder::new()
            .name("raymon-remote".to_string())
            .spawn(move || reader.run())?;
        Ok(Queue {
            metrics,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops reading, lets the shards send what they hold for up to the
    /// flush deadline, saves the position and returns. Blocks.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The running shards and, per shard, the WAL records it has samples of.
struct Shards {
    txs: Vec<mpsc::UnboundedSender<Msg>>,
    states: Vec<Arc<ShardState>>,
    /// Per shard: (start of a record, the shard's enqueued count after that
    /// record's samples), oldest first.
    ledger: Vec<VecDeque<(Position, u64)>>,
    enqueued: Vec<u64>,
    hard_stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Shards {
    fn start(n: usize, ctx: &Arc<SendContext>, rt: &tokio::runtime::Handle) -> Shards {
        let hard_stop = CancellationToken::new();
        let mut s = Shards {
            txs: Vec::with_capacity(n),
            states: Vec::with_capacity(n),
            ledger: vec![VecDeque::new(); n],
            enqueued: vec![0; n],
            hard_stop: hard_stop.clone(),
            tasks: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let (tx, rx) = mpsc::unbounded_channel();
            let state = Arc::new(ShardState::default());
            s.tasks.push(rt.spawn(shard::run(
                ctx.clone(),
                state.clone(),
                rx,
                hard_stop.clone(),
            )));
            s.txs.push(tx);
            s.states.push(state);
        }
        ctx.metrics.shards.store(n as u64, Ordering::Relaxed);
        s
    }

    fn len(&self) -> usize {
        self.txs.len()
    }

    /// The start of the oldest record some shard has not finished, if any.
    fn oldest_unfinished(&mut self) -> Option<Position> {
        let mut oldest: Option<Position> = None;
        for (i, l) in self.ledger.iter_mut().enumerate() {
            let done = self.states[i].done.load(Ordering::Acquire);
            while l.front().is_some_and(|&(_, end)| end <= done) {
                l.pop_front();
            }
            if let Some(&(p, _)) = l.front() {
                oldest = Some(oldest.map_or(p, |o| o.min(p)));
            }
        }
        oldest
    }

    fn all_done(&self) -> bool {
        self.states
            .iter()
            .zip(&self.enqueued)
            .all(|(s, &e)| s.done.load(Ordering::Acquire) >= e)
    }

    fn flush(&self) {
        for tx in &self.txs {
            let _ = tx.send(Msg::Flush);
        }
    }
}

/// Exponentially weighted rates, ticked every [`SHARD_UPDATE`].
#[derive(Default)]
struct Rates {
    last_in: u64,
    last_out: u64,
    last_out_nanos: u64,
    last_dropped: u64,
    in_rate: Option<f64>,
    out_rate: Option<f64>,
    out_nanos_rate: Option<f64>,
    dropped_rate: Option<f64>,
    last_tick: Option<Instant>,
}

fn ewma(prev: Option<f64>, instant: f64) -> f64 {
    match prev {
        None => instant,
        Some(p) => EWMA_WEIGHT * instant + (1.0 - EWMA_WEIGHT) * p,
    }
}

/// A series' encoded final labels (`None`: not sent) and the segment it
/// was last used in.
type SeriesEntry = (Option<Arc<[u8]>>, u32);

struct Reader {
    tail: Tail,
    /// Final encoded labels per series reference; `None` for a series that
    /// relabeling drops or whose labels are unknown. The segment number is
    /// when it was last used, so long-gone series can be forgotten.
    series: FxHashMap<SeriesRef, SeriesEntry>,
    /// The start of the next record to read.
    pos: Position,
    saved: Option<Position>,
    position_file: PathBuf,
    holder: Arc<AtomicU32>,
    shards: Shards,
    ctx: Arc<SendContext>,
    rt: tokio::runtime::Handle,
    settings: QueueSettings,
    inputs: Inputs,
    metrics: Arc<QueueMetrics>,
    stop: Arc<AtomicBool>,
    bufs: Vec<Vec<Pending>>,
    rates: Rates,
}

impl Reader {
    fn run(mut self) {
        let mut last_save = Instant::now();
        let mut last_shard_update = Instant::now();
        let mut segment = self.pos.segment;
        self.metrics
            .current_segment
            .store(segment as u64, Ordering::Relaxed);
        while !self.stop.load(Ordering::Acquire) {
            let idle = self.step();
            if self.pos.segment != segment {
                segment = self.pos.segment;
                self.metrics
                    .current_segment
                    .store(segment as u64, Ordering::Relaxed);
                // Series unused for two segments are looked up again if
                // they come back.
                self.series
                    .retain(|_, (_, seen)| seen.saturating_add(2) > segment);
            }
            if last_save.elapsed() >= SAVE_EVERY {
                self.save();
                last_save = Instant::now();
            }
            if last_shard_update.elapsed() >= SHARD_UPDATE {
                last_shard_update = Instant::now();
                self.update_shards();
            }
            if idle {
                std::thread::sleep(IDLE_POLL);
            }
        }
        self.shutdown();
    }

    /// Reads and dispatches one record; true when there was none.
    fn step(&mut self) -> bool {
        let Reader {
            tail,
            series,
            settings,
            inputs,
            metrics,
            ..
        } = self;
        let next = match tail.read() {
            Ok(n) => n,
            Err(e) => {
                error!(remote_name = %metrics.remote_name, error = %e, "cannot read the WAL for remote write; retrying");
                std::thread::sleep(SAVE_EVERY);
                return true;
            }
        };
        match next {
            Tailed::Idle => true,
            Tailed::Skipped { from, to } => {
                warn!(remote_name = %metrics.remote_name, segment = from.segment, offset = from.offset, next = to,
                    "WAL segments were gone before remote write sent them; their samples are lost to this receiver");
                metrics.segments_skipped.fetch_add(1, Ordering::Relaxed);
                self.pos = Position::start_of(to);
                false
            }
            Tailed::Record(Record::Series(s), end) => {
                metrics.records_series.fetch_add(1, Ordering::Relaxed);
                for (r, labels) in s {
                    let enc = final_labels(labels, settings);
                    series.insert(*r, (enc, end.segment));
                }
                self.pos = end;
                false
            }
            Tailed::Record(Record::Samples(samples), end) => {
                metrics.records_samples.fetch_add(1, Ordering::Relaxed);
                let n = self.shards.len();
                self.bufs.resize_with(n, Vec::new);
                let mut dropped = 0u64;
                for &(r, t, v) in samples {
                    let entry = series.entry(r).or_insert_with(|| {
                        let enc = (inputs.labels_of)(r).and_then(|l| final_labels(&l, settings));
                        (enc, end.segment)
                    });
                    entry.1 = end.segment;
                    match &entry.0 {
                        Some(labels) => self.bufs[(r % n as u64) as usize].push(Pending {
                            labels: labels.clone(),
                            t,
                            v,
                        }),
                        None => dropped += 1,
                    }
                }
                if dropped > 0 {
                    metrics.dropped.fetch_add(dropped, Ordering::Relaxed);
                }
                let start = self.pos;
                if self.dispatch(start) {
                    self.pos = end;
                }
                false
            }
        }
    }

    /// Hands the buffered samples to their shards, waiting (with
    /// Prometheus's enqueue backoff) while a shard holds its capacity;
    /// false when stopped first.
    fn dispatch(&mut self, start: Position) -> bool {
        let capacity = self.settings.queue.capacity.max(1);
        for i in 0..self.bufs.len() {
            if self.bufs[i].is_empty() {
                continue;
            }
            let mut backoff = Duration::from_millis(5);
            while self.shards.states[i].queued.load(Ordering::Acquire) >= capacity {
                if self.stop.load(Ordering::Acquire) {
                    // The position stays before this record, which is read
                    // again after the next start.
                    self.bufs.iter_mut().for_each(Vec::clear);
                    return false;
                }
                self.metrics.enqueue_retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(self.settings.queue.max_backoff);
            }
            let batch = std::mem::take(&mut self.bufs[i]);
            let k = batch.len();
            if k == 0 {
                continue;
            }
            self.shards.states[i].queued.fetch_add(k, Ordering::AcqRel);
            self.shards.enqueued[i] += k as u64;
            self.shards.ledger[i].push_back((start, self.shards.enqueued[i]));
            self.metrics.pending.fetch_add(k as i64, Ordering::Relaxed);
            if self.shards.txs[i].send(Msg::Samples(batch)).is_err() {
                // The shard is gone (hard stop); the WAL still has these.
                self.metrics.pending.fetch_sub(k as i64, Ordering::Relaxed);
            }
        }
        true
    }

    /// The position from which nothing unfinished is lost.
    fn safe_position(&mut self) -> Position {
        match self.shards.oldest_unfinished() {
            Some(p) => p.min(self.pos),
            None => self.pos,
        }
    }

    fn save(&mut self) {
        let p = self.safe_position();
        self.holder.store(p.segment, Ordering::Release);
        if self.saved == Some(p) {
            return;
        }
        match write_position(&self.position_file, p) {
            Ok(()) => self.saved = Some(p),
            Err(e) => {
                warn!(remote_name = %self.metrics.remote_name, error = %e, file = %self.position_file.display(), "cannot save the remote write position")
            }
        }
    }

    /// Prometheus 2.42's `calculateDesiredShards` and `shouldReshard`.
    fn update_shards(&mut self) {
        let r = &mut self.rates;
        let now = Instant::now();
        let secs = r
            .last_tick
            .map_or(SHARD_UPDATE.as_secs_f64(), |t| (now - t).as_secs_f64())
            .max(1e-3);
        r.last_tick = Some(now);
        let samples_in = (self.inputs.samples_in)();
        let out = self.ctx.out_samples.load(Ordering::Relaxed);
        let out_nanos = self.ctx.out_nanos.load(Ordering::Relaxed);
        let dropped = self.metrics.dropped.load(Ordering::Relaxed);
        r.in_rate = Some(ewma(
            r.in_rate,
            samples_in.saturating_sub(r.last_in) as f64 / secs,
        ));
        r.out_rate = Some(ewma(
            r.out_rate,
            out.saturating_sub(r.last_out) as f64 / secs,
        ));
        r.out_nanos_rate = Some(ewma(
            r.out_nanos_rate,
            out_nanos.saturating_sub(r.last_out_nanos) as f64 / secs,
        ));
        r.dropped_rate = Some(ewma(
            r.dropped_rate,
            dropped.saturating_sub(r.last_dropped) as f64 / secs,
        ));
        (r.last_in, r.last_out, r.last_out_nanos, r.last_dropped) =
            (samples_in, out, out_nanos, dropped);
        let in_rate = r.in_rate.unwrap_or(0.0);
        let out_rate = r.out_rate.unwrap_or(0.0);
        if out_rate <= 0.0 {
            return;
        }
        let kept = out_rate / (r.dropped_rate.unwrap_or(0.0) + out_rate);
        let out_duration = r.out_nanos_rate.unwrap_or(0.0) / 1e9;
        let highest_sent = (self.metrics.highest_sent_ms.load(Ordering::Relaxed) / 1000) as f64;
        let highest_recv = ((self.inputs.highest_in_ms)() / 1000) as f64;
        let delay = highest_recv - highest_sent;
        let pending = delay * in_rate * kept;
        let time_per_sample = out_duration / out_rate;
        let desired = time_per_sample * (in_rate * kept + 0.05 * pending);
        self.metrics
            .shards_desired
            .store(desired.to_bits(), Ordering::Relaxed);
        let cur = self.shards.len();
        let lower = cur as f64 * (1.0 - SHARD_TOLERANCE);
        let upper = cur as f64 * (1.0 + SHARD_TOLERANCE);
        let desired = desired.ceil();
        if lower <= desired && desired <= upper {
            return;
        }
        let mut n = desired as usize;
        if n < cur && delay > 10.0 {
            return;
        }
        let q = &self.settings.queue;
        n = n.clamp(q.min_shards.max(1), q.max_shards.max(1));
        if n == cur {
            return;
        }
        let last_send = self.ctx.last_send.load(Ordering::Relaxed);
        let min_send = shard::unix_now() - 2 * q.batch_send_deadline.as_secs() as i64;
        if last_send < min_send {
            warn!(remote_name = %self.metrics.remote_name, last_send, "Skipping resharding, last successful send was beyond threshold");
            return;
        }
        info!(remote_name = %self.metrics.remote_name, from = cur, to = n, "Remote storage resharding");
        self.reshard(n);
    }

    /// Lets the current shards finish everything they hold, then starts `n`.
    fn reshard(&mut self, n: usize) {
        self.shards.flush();
        while !self.shards.all_done() {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let old = std::mem::replace(&mut self.shards, Shards::start(n, &self.ctx, &self.rt));
        drop(old.txs);
        self.bufs.clear();
    }

    /// Stops the shards: what they can send within the flush deadline is
    /// sent, the rest stays after the saved position for the next start.
    fn shutdown(mut self) {
        self.shards.flush();
        let deadline = Instant::now() + self.settings.flush_deadline;
        while !self.shards.all_done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.save();
        self.shards.hard_stop.cancel();
        let txs = std::mem::take(&mut self.shards.txs);
        drop(txs);
        let pending = self.metrics.pending.swap(0, Ordering::Relaxed);
        if pending > 0 {
            info!(remote_name = %self.metrics.remote_name, samples = pending, "remote write stopped with samples unsent; they are sent after the next start");
        }
    }
}

/// External labels (where the series has no label of that name), then the
/// write relabeling; `None` when the series is dropped.
fn final_labels(labels: &Labels, s: &QueueSettings) -> Option<Arc<[u8]>> {
    let merged;
    let labels = if s.external_labels.is_empty() {
        labels
    } else {
        let mut v: Vec<Label> = labels.iter().cloned().collect();
        for e in s.external_labels.iter() {
            if labels.get(&e.name).is_none() {
                v.push(e.clone());
            }
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        merged = Labels::from_sorted(v);
        &merged
    };
    let out = crate::config::process_cow(labels, &s.relabel)?;
    if out.is_empty() {
        return None;
    }
    Some(Arc::from(encode_labels(&out)))
}

/// Reads a saved position (`<segment> <offset>`); `None` if there is none
/// or it does not parse.
pub fn read_position(file: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut it = text.split_whitespace();
    let segment = it.next()?.parse().ok()?;
    let offset = it.next()?.parse().ok()?;
    Some(Position { segment, offset })
}

/// Writes the position under a temporary name and renames it into place,
/// so that a crash leaves the old one or the new one.
fn write_position(file: &Path, p: Position) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{} {}\n", p.segment, p.offset))?;
    std::fs::rename(&tmp, file)
}
