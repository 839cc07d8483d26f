//! One shard of a remote write queue: a task that batches the samples the
//! queue's reader hands it (up to `max_samples_per_send`, or whatever is
//! there when `batch_send_deadline` passes) and sends each batch until it
//! succeeds, retrying recoverable failures with Prometheus 2.42's backoff
//! (`sendWriteRequestWithBackoff`: from `min_backoff`, doubling up to
//! `max_backoff`, or the receiver's `Retry-After`) and dropping a batch on a
//! non-recoverable answer. Samples of one series always go to one shard, so
//! they are sent in order.
//!
//! Knows nothing of the WAL: what it has finished with (sent or dropped) is
//! counted in [`ShardState::done`], from which the reader works out the WAL
//! position that is safe to resume from.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::Client;
use super::encode::put_sample;
use super::metrics::QueueMetrics;

/// A sample on its way: the series' encoded labels, time and value.
#[derive(Debug, Clone)]
pub struct Pending {
    pub labels: Arc<[u8]>,
    pub t: i64,
    pub v: f64,
}

pub enum Msg {
    Samples(Vec<Pending>),
    /// Send what is buffered now, without waiting for the deadline.
    Flush,
}

/// What a shard shares with the reader.
#[derive(Debug, Default)]
pub struct ShardState {
    /// Samples handed to the shard and not yet finished with.
    pub queued: AtomicUsize,
    /// Samples finished with (sent, or dropped on a non-recoverable error)
    /// since the shard started.
    pub done: AtomicU64,
}

/// What every shard of a queue sends with.
pub struct SendContext {
    pub client: Client,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub metrics: Arc<QueueMetrics>,
    /// Samples sent and the time spent sending, for the shard calculation.
    pub out_samples: AtomicU64,
    pub out_nanos: AtomicU64,
    /// Unix seconds of the last finished send.
    pub last_send: AtomicI64,
}

/// Runs one shard until its channel closes (after sending what it holds)
/// or `hard_stop` is cancelled (abandoning it: the WAL still has it).
pub async fn run(
    ctx: Arc<SendContext>,
    state: Arc<ShardState>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    hard_stop: CancellationToken,
) {
    let max = ctx.max_samples_per_send.max(1);
    let mut pending: Vec<Pending> = Vec::with_capacity(max);
    let mut buf = Bufs::default();
    let mut deadline = tokio::time::Instant::now() + ctx.batch_send_deadline;
    loop {
        tokio::select! {
            _ = hard_stop.cancelled() => return,
            m = rx.recv() => match m {
                None => {
                    while !pending.is_empty() {
                        if !send_some(&ctx, &state, &mut pending, max, &mut buf, &hard_stop).await {
                            return;
                        }
                    }
                    return;
                }
                Some(Msg::Samples(v)) => {
                    if pending.is_empty() {
                        deadline = tokio::time::Instant::now() + ctx.batch_send_deadline;
                    }
                    pending.extend(v);
                    while pending.len() >= max {
                        if !send_some(&ctx, &state, &mut pending, max, &mut buf, &hard_stop).await {
                            return;
                        }
                        deadline = tokio::time::Instant::now() + ctx.batch_send_deadline;
                    }
                }
                Some(Msg::Flush) => {
                    while !pending.is_empty() {
                        if !send_some(&ctx, &state, &mut pending, max, &mut buf, &hard_stop).await {
                            return;
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline), if !pending.is_empty() => {
                if !send_some(&ctx, &state, &mut pending, max, &mut buf, &hard_stop).await {
                    return;
                }
                deadline = tokio::time::Instant::now() + ctx.batch_send_deadline;
            }
        }
    }
}

/// Sends the first `max` pending samples; false when stopped hard.
async fn send_some(
    ctx: &SendContext,
    state: &ShardState,
    pending: &mut Vec<Pending>,
    max: usize,
    buf: &mut Bufs,
    hard_stop: &CancellationToken,
) -> bool {
    let n = pending.len().min(max);
    let began = Instant::now();
    let finished = send_batch(ctx, &pending[..n], buf, hard_stop).await;
    if !finished {
        return false;
    }
    pending.drain(..n);
    let m = &ctx.metrics;
    m.pending.fetch_sub(n as i64, Ordering::Relaxed);
    ctx.out_samples.fetch_add(n as u64, Ordering::Relaxed);
    ctx.out_nanos
        .fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
    ctx.last_send.store(unix_now(), Ordering::Relaxed);
    state.queued.fetch_sub(n, Ordering::AcqRel);
    state.done.fetch_add(n as u64, Ordering::AcqRel);
    true
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A shard's encoding buffers and snappy encoder, kept from one batch to
/// the next: allocating and zeroing them per batch cost as much as the
/// compression itself.
struct Bufs {
    raw: Vec<u8>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Default for Bufs {
    fn default() -> Bufs {
        Bufs {
            raw: Vec::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }
}

/// Encodes `batch` and sends it until it is accepted or refused for good;
/// false when `hard_stop` came first.
async fn send_batch(
    ctx: &SendContext,
    batch: &[Pending],
    bufs: &mut Bufs,
    hard_stop: &CancellationToken,
) -> bool {
    bufs.raw.clear();
    let mut highest = i64::MIN;
    for p in batch {
        put_sample(&mut bufs.raw, &p.labels, p.t, p.v);
        highest = highest.max(p.t);
    }
    let want = snap::raw::max_compress_len(bufs.raw.len());
    if bufs.compressed.len() < want {
        bufs.compressed.resize(want, 0);
    }
    // Compression fails only for inputs over 4 GiB, which a batch never is.
    let len = bufs
        .snappy
        .compress(&bufs.raw, &mut bufs.compressed)
        .unwrap_or(0);
    // Bytes: each attempt sends the same body without a copy.
    let body = hyper::body::Bytes::copy_from_slice(&bufs.compressed[..len]);
    let n = batch.len() as u64;
    let m = &ctx.metrics;
    let mut backoff = ctx.min_backoff;
    loop {
        // Counted per attempt, as Prometheus 2.42 does.
        m.samples.fetch_add(n, Ordering::Relaxed);
        let began = Instant::now();
        let res = tokio::select! {
            _ = hard_stop.cancelled() => return false,
            r = ctx.client.send_encoded(body.clone()) => r,
        };
        m.observe_batch(began.elapsed());
        match res {
            Ok(()) => {
                m.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                m.highest_sent_ms.fetch_max(highest, Ordering::Relaxed);
                return true;
            }
            Err(e) if e.is_recoverable() => {
                let sleep = match e.retry_after() {
                    Some(d) => {
                        info!(remote_name = %m.remote_name, duration = ?d, "Retrying after duration specified by Retry-After header");
                        d
                    }
                    None => backoff,
                };
                tokio::select! {
                    _ = hard_stop.cancelled() => return false,
                    _ = tokio::time::sleep(sleep) => {}
                }
                m.retried.fetch_add(n, Ordering::Relaxed);
                warn!(remote_name = %m.remote_name, url = %m.url, error = %e, "Failed to send batch, retrying");
                backoff = (sleep * 2).min(ctx.max_backoff);
            }
            Err(e) => {
                error!(remote_name = %m.remote_name, url = %m.url, count = n, error = %e, "non-recoverable error");
                m.failed.fetch_add(n, Ordering::Relaxed);
                m.highest_sent_ms.fetch_max(highest, Ordering::Relaxed);
                return true;
            }
        }
    }
}
