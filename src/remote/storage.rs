//! The remote write side of the process: one [`Queue`] per `remote_write`
//! section, started, kept or replaced on each configuration load (a queue
//! whose section is unchanged keeps running, as Prometheus's
//! `WriteStorage.ApplyConfig`), their shards on a runtime thread of their
//! own (so that encoding and compressing batches never delays a scrape),
//! their positions under `<data dir>/remote/`, their metadata senders, and
//! their self-metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing::info;

use super::metadata;
use super::metrics::{self, QueueMetrics};
use super::queue::{self, Inputs, Queue, QueueSettings};
use super::{Client, ClientOptions, Error};
use crate::config::{Config, RemoteWriteConfig};
use crate::model::Labels;
use crate::storage::SeriesRef;
use crate::tsdb::wal::{Keep, Position};

/// What the queues read from the store.
#[derive(Clone)]
pub struct StoreAccess {
    pub wal_dir: PathBuf,
    /// Where a new queue starts: the WAL's end.
    pub wal_end: Arc<dyn Fn() -> Position + Send + Sync>,
    pub labels_of: Arc<dyn Fn(SeriesRef) -> Option<Labels> + Send + Sync>,
    pub samples_in: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub highest_in_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
}

pub struct WriteStorage {
    data_dir: PathBuf,
    flush_deadline: Duration,
    keep: Arc<Keep>,
    handle: tokio::runtime::Handle,
    runtime: Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    /// Holders of the segments saved positions need, taken before the
    /// store opens, by position key.
    holders: Mutex<BTreeMap<String, Arc<AtomicU32>>>,
    /// Running queues by configuration hash.
    queues: Mutex<Vec<Running>>,
    access: Mutex<Option<StoreAccess>>,
    /// The scraper's metadata, once it runs.
    metadata_source: metadata::Source,
}

struct Running {
    hash: String,
    external_labels: Labels,
    queue: Queue,
    /// Stops the queue's metadata sender, when it has one.
    metadata_stop: Option<tokio_util::sync::CancellationToken>,
}

impl Running {
    fn stop(self) {
        if let Some(t) = &self.metadata_stop {
            t.cancel();
        }
        self.queue.stop();
    }
}

impl WriteStorage {
    /// Starts the runtime thread the shards run on. `keep` is the store's
    /// (`DbOptions::wal_keep`).
    pub fn new(
        data_dir: PathBuf,
        flush_deadline: Duration,
        keep: Arc<Keep>,
    ) -> Result<WriteStorage, Error> {
        let (htx, hrx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("raymon-remote-send".to_string())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = htx.send(Err(e));
                        return;
                    }
                };
                let _ = htx.send(Ok(rt.handle().clone()));
                // Parks the runtime's driver here until told to stop.
                rt.block_on(async move {
                    let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
                });
            })
            .map_err(Error::Runtime)?;
        let handle = hrx
            .recv()
            .map_err(|_| Error::Header("the remote write runtime did not start".to_string()))?
            .map_err(Error::Runtime)?;
        Ok(WriteStorage {
            data_dir,
            flush_deadline,
            keep,
            handle,
            runtime: Mutex::new(Some((stop_tx, thread))),
            holders: Mutex::new(BTreeMap::new()),
            queues: Mutex::new(Vec::new()),
            access: Mutex::new(None),
            metadata_source: Default::default(),
        })
    }

    /// Where queues with `metadata_config.send` read the targets' metadata;
    /// until it is set they send none. Set once; later calls change nothing.
    pub fn set_metadata_source(&self, src: Arc<dyn crate::scrape::status::TargetsSource>) {
        let _ = self.metadata_source.set(src);
    }

    fn position_file(&self, rw: &RemoteWriteConfig) -> PathBuf {
        self.data_dir
            .join("remote")
            .join(position_key(rw))
            .join("position")
    }

    /// Keeps the WAL segments that the configured queues' saved positions
    /// still need; call before the store opens, which deletes the others.
    pub fn hold_saved(&self, cfg: &Config) {
        let mut hs = self.holders.lock().unwrap_or_else(PoisonError::into_inner);
        for rw in &cfg.remote_write {
            if let Some(p) = queue::read_position(&self.position_file(rw)) {
                hs.insert(position_key(rw), self.keep.hold(p.segment));
            }
        }
    }

    /// Starts, keeps or replaces queues to match `cfg`. A section that
    /// cannot be served (a client setting not supported) is an error and
    /// changes nothing.
    pub fn apply_config(&self, cfg: &Config, access: StoreAccess) -> Result<(), Error> {
        let mut plans = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for rw in &cfg.remote_write {
            let hash = config_hash(rw);
            if !seen.insert(hash.clone()) {
                return Err(Error::Header(format!(
                    "duplicate remote write configs are not allowed, found duplicate for URL: {}",
                    rw.url
                )));
            }
            let client = Client::new(client_options(rw)?)?;
            plans.push((rw.clone(), hash, client));
        }
        *self.access.lock().unwrap_or_else(PoisonError::into_inner) = Some(access.clone());
        // Sections that are gone no longer keep WAL segments.
        let keys: std::collections::HashSet<String> =
            cfg.remote_write.iter().map(position_key).collect();
        self.holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, _| keys.contains(k));
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let mut old = std::mem::take(&mut *queues);
        let ext = cfg.global.external_labels.clone();
        let mut kept = Vec::new();
        let mut fresh = Vec::new();
        for (rw, hash, client) in plans {
            match old
                .iter()
                .position(|r| r.hash == hash && r.external_labels == ext)
            {
                Some(i) => kept.push(old.swap_remove(i)),
                None => fresh.push((rw, hash, client)),
            }
        }
        // Replaced queues stop first, so that a changed section's new queue
        // goes on from where the old one stopped.
        for r in old {
            r.stop();
        }
        for (rw, hash, client) in fresh {
            let metadata_stop = rw.metadata_config.send.then(|| {
                let stop = tokio_util::sync::CancellationToken::new();
                (client.clone(), stop)
            });
            let queue = self.start_queue(&rw, &hash, client, &ext, &access)?;
            let metadata_stop = metadata_stop.map(|(client, stop)| {
                self.handle.spawn(metadata::run(
                    metadata::Settings::new(&rw.metadata_config, &rw.queue_config),
                    client,
                    queue.metrics.clone(),
                    self.metadata_source.clone(),
                    stop.clone(),
                ));
                stop
            });
            kept.push(Running {
                hash,
                external_labels: ext.clone(),
                queue,
                metadata_stop,
            });
        }
        *queues = kept;
        Ok(())
    }

    fn start_queue(
        &self,
        rw: &RemoteWriteConfig,
        hash: &str,
        client: Client,
        ext: &Labels,
        access: &StoreAccess,
    ) -> Result<Queue, Error> {
        let name = if rw.name.is_empty() {
            hash[..6].to_string()
        } else {
            rw.name.clone()
        };
        let file = self.position_file(rw);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(Error::Runtime)?;
        }
        let key = position_key(rw);
        let start = queue::read_position(&file).unwrap_or_else(|| (access.wal_end)());
        // The holder outlives the queue, so that the store's final
        // checkpoint at shutdown keeps what the queue did not send.
        let holder = self
            .holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| self.keep.hold(start.segment))
            .clone();
        holder.store(start.segment, std::sync::atomic::Ordering::Release);
        info!(remote_name = %name, url = %rw.url, segment = start.segment, offset = start.offset, "starting remote write queue");
        let metrics = Arc::new(QueueMetrics::new(&name, &rw.url));
        Queue::start(
            QueueSettings {
                queue: rw.queue_config.clone(),
                external_labels: ext.clone(),
                relabel: rw.write_relabel_configs.clone(),
                flush_deadline: self.flush_deadline,
            },
            client,
            metrics,
            Inputs {
                wal_dir: access.wal_dir.clone(),
                labels_of: access.labels_of.clone(),
                samples_in: access.samples_in.clone(),
                highest_in_ms: access.highest_in_ms.clone(),
            },
            start,
            file,
            holder,
            self.handle.clone(),
        )
        .map_err(Error::Runtime)
    }

    /// The remote write self-metrics, in the text format.
    pub fn metrics_text(&self) -> String {
        let mut w = crate::selfmetrics::text::Writer::with_capacity(4 << 10);
        let queues: Vec<Arc<QueueMetrics>> = self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| r.queue.metrics.clone())
            .collect();
        let access = self
            .access
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (highest, samples_in) =
            access.map_or((0, 0), |a| ((a.highest_in_ms)(), (a.samples_in)()));
        metrics::render(&mut w, &queues, highest, samples_in);
        w.finish()
    }

    /// Stops every queue (each sends what it can within the flush deadline
    /// and saves its position) and the runtime. Blocks.
    pub fn stop(&self) {
        let queues =
            std::mem::take(&mut *self.queues.lock().unwrap_or_else(PoisonError::into_inner));
        for r in queues {
            r.stop();
        }
        if let Some((tx, t)) = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = tx.send(());
            let _ = t.join();
        }
    }
}

/// Prometheus names a queue without `name` by a hash of its section; any
/// change of the section replaces the queue.
fn config_hash(rw: &RemoteWriteConfig) -> String {
    format!("{:x}", md5::compute(format!("{rw:?}")))
}

/// Where a queue keeps its position: by name and URL, so that changing its
/// relabeling or queue settings goes on from the same place.
fn position_key(rw: &RemoteWriteConfig) -> String {
    let d = md5::compute(format!("{}\0{}", rw.name, rw.url));
    format!("{d:x}")[..16].to_string()
}

/// The HTTP client of a section; settings it cannot honour are refused
/// rather than ignored.
fn client_options(rw: &RemoteWriteConfig) -> Result<ClientOptions, Error> {
    if rw.sigv4.is_some() {
        return Err(Error::Header(format!(
            "remote_write {}: sigv4 is not supported",
            rw.url
        )));
    }
    if rw.http_client.oauth2.is_some() {
        return Err(Error::Header(format!(
            "remote_write {}: {}",
            rw.url,
            crate::config::UNSUPPORTED_OAUTH2
        )));
    }
    let mut o = ClientOptions::new(rw.url.clone());
    o.timeout = rw.remote_timeout;
    o.retry_on_http_429 = rw.queue_config.retry_on_http_429;
    o.headers = rw
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    o.http_client = rw.http_client.clone();
    Ok(o)
}
