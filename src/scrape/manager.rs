//! The scrape manager: one pool per scrape config, each pool one loop per
//! target. It follows discovery updates and config reloads, and answers
//! [`TargetsSource`] for the API.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::append::Settings;
use super::client::Client;
use super::scrape_loop::{self, LoopContext, LoopHandle};
use super::status::{ActiveTarget, DroppedTarget, MetricMetadata, TargetsSource};
use super::target::{self, Outcome, Target};
use crate::config::ScrapeConfig;
use crate::discovery::{TargetGroup, Targets};
use crate::model::{LabelLimits, Labels};
use crate::selfmetrics::ScrapeMetrics;
use crate::storage::Appendable;

struct Running {
    target: Arc<Target>,
    handle: LoopHandle,
}

struct Pool {
    cfg: Arc<ScrapeConfig>,
    ctx: LoopContext,
    loops: HashMap<u64, Running>,
    dropped: Vec<Labels>,
}

impl Pool {
    /// A pool for `cfg`; fails, as Prometheus's `newScrapePool`, when the
    /// config's HTTP client cannot be built (a CA file that cannot be read).
    fn new(
        cfg: ScrapeConfig,
        storage: Arc<dyn Appendable>,
        offset_seed: u64,
        metrics: Arc<ScrapeMetrics>,
        timestamp_tolerance: Option<Duration>,
    ) -> Result<Pool, super::client::Error> {
        metrics.pools_created.inc();
        let client = Client::new(&cfg.http_client).inspect_err(|_| metrics.pools_failed.inc())?;
        let settings = Settings {
            honor_labels: cfg.honor_labels,
            honor_timestamps: cfg.honor_timestamps,
            sample_limit: cfg.sample_limit as usize,
            label_limits: LabelLimits {
                max_labels: cfg.label_limit as usize,
                max_name_len: cfg.label_name_length_limit as usize,
                max_value_len: cfg.label_value_length_limit as usize,
            },
            metric_relabel: cfg.metric_relabel_configs.clone(),
        };
        let ctx = LoopContext {
            client,
            forced_error: Arc::default(),
            storage,
            settings: Arc::new(settings),
            body_size_limit: cfg.body_size_limit,
            offset_seed,
            metrics,
            timestamp_tolerance,
            bodies: Arc::default(),
        };
        Ok(Pool {
            cfg: Arc::new(cfg),
            ctx,
            loops: HashMap::new(),
            dropped: Vec::new(),
        })
    }

    /// Starts loops for new targets and stops (with staleness) those gone.
    fn sync(&mut self, groups: &[TargetGroup]) {
        let mut wanted: HashMap<u64, Target> = HashMap::new();
        self.dropped.clear();
        for g in groups {
            for t in &g.targets {
                match target::populate(&g.labels, t, &self.cfg) {
                    Ok(Outcome::Active(t)) => {
                        wanted.insert(t.hash(), t);
                    }
                    Ok(Outcome::Dropped(labels)) => self.dropped.push(labels),
                    Err(error) => {
                        warn!(%error, job = %self.cfg.job_name, "invalid target, not scraped");
                    }
                }
            }
        }
        // Prometheus's `refreshTargetLimitErr`: over the limit, every loop
        // of the pool fails its scrapes with this error (`up` 0).
        let limit = self.cfg.target_limit;
        let forced = (limit > 0 && wanted.len() as u64 > limit).then(|| {
            self.ctx.metrics.exceeded_target_limit.inc();
            format!(
                "target_limit exceeded (number of targets: {}, limit: {limit})",
                wanted.len()
            )
        });
        *self
            .ctx
            .forced_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = forced;
        self.loops.retain(|hash, r| {
            let keep = wanted.contains_key(hash);
            if !keep {
                info!(target = %r.target.url, job = %self.cfg.job_name, "target removed");
                r.handle.stop(true);
            }
            keep
        });
        for (hash, t) in wanted {
            if self.loops.contains_key(&hash) {
                continue;
            }
            info!(target = %t.url, job = %self.cfg.job_name, "target added");
            let target = Arc::new(t);
            let handle = scrape_loop::spawn(target.clone(), self.ctx.clone());
            self.loops.insert(hash, Running { target, handle });
        }
    }

    fn stop(&mut self, stale: bool) {
        for r in self.loops.values() {
            r.handle.stop(stale);
        }
        self.loops.clear();
    }
}

/// What the manager is told from outside.
pub enum Command {
    /// A reloaded configuration's scrape configs.
    Configs(Vec<ScrapeConfig>),
}

/// The running scraper.
pub struct Manager {
    pools: BTreeMap<String, Pool>,
    storage: Arc<dyn Appendable>,
    offset_seed: u64,
    status: ScrapeStatus,
    last_targets: Targets,
    metrics: Arc<ScrapeMetrics>,
    timestamp_tolerance: Option<Duration>,
}

/// Prometheus's `--scrape.timestamp-tolerance` default.
pub const DEFAULT_TIMESTAMP_TOLERANCE: Duration = Duration::from_millis(2);

impl Manager {
    pub fn new(
        storage: Arc<dyn Appendable>,
        offset_seed: u64,
    ) -> Result<Manager, super::client::Error> {
        Ok(Manager {
            pools: BTreeMap::new(),
            storage,
            offset_seed,
            status: ScrapeStatus::default(),
            last_targets: Targets::default(),
            metrics: Arc::default(),
            timestamp_tolerance: Some(DEFAULT_TIMESTAMP_TOLERANCE),
        })
    }

    /// How far a scrape's start may be from the last timestamp plus the
    /// interval and still get that time (pools created later); `None`
    /// keeps every scrape's real start time.
    pub fn set_timestamp_tolerance(&mut self, tolerance: Option<Duration>) {
        self.timestamp_tolerance = tolerance;
    }

    /// Counts into `metrics` from now on (pools created later, and their loops).
    pub fn set_metrics(&mut self, metrics: Arc<ScrapeMetrics>) {
        self.metrics = metrics;
    }

    /// A handle for the API that stays valid as the manager changes.
    pub fn status(&self) -> ScrapeStatus {
        self.status.clone()
    }

    /// Applies scrape configs: unchanged pools keep running; changed ones are
    /// rebuilt without staleness (the same targets go on); removed jobs stop
    /// and their series go stale.
    pub fn apply_configs(&mut self, cfgs: Vec<ScrapeConfig>) {
        let mut next = BTreeMap::new();
        for cfg in cfgs {
            let name = cfg.job_name.clone();
            match self.pools.remove(&name) {
                Some(pool) if *pool.cfg == cfg => {
                    next.insert(name, pool);
                }
                old => {
                    let pool = Pool::new(
                        cfg,
                        self.storage.clone(),
                        self.offset_seed,
                        self.metrics.clone(),
                        self.timestamp_tolerance,
                    );
                    match (pool, old) {
                        (Ok(pool), old) => {
                            if let Some(mut old) = old {
                                old.stop(false);
                            }
                            next.insert(name, pool);
                        }
                        // As Prometheus: a job whose client cannot be built
                        // keeps its running pool, or gets none.
                        (Err(e), Some(old)) => {
                            error!(error = %e, scrape_pool = %name, "error reloading scrape pool");
                            next.insert(name, old);
                        }
                        (Err(e), None) => {
                            error!(error = %e, scrape_pool = %name, "error creating new scrape pool");
                        }
                    }
                }
            }
        }
        for pool in self.pools.values_mut() {
            pool.stop(true);
        }
        self.pools = next;
        let targets = self.last_targets.clone();
        self.sync(&targets);
    }

    /// Follows a discovery update.
    pub fn sync(&mut self, targets: &Targets) {
        self.last_targets = targets.clone();
        for (job, pool) in &mut self.pools {
            let groups = targets.get(job).map(Vec::as_slice).unwrap_or(&[]);
            pool.sync(groups);
        }
        self.publish();
    }

    /// Stops every loop without staleness markers, as Prometheus does at shutdown.
    pub fn stop(&mut self) {
        for pool in self.pools.values_mut() {
            pool.stop(false);
        }
        self.publish();
    }

    fn publish(&self) {
        let mut pools = BTreeMap::new();
        for (job, pool) in &self.pools {
            let mut active: Vec<(Arc<Target>, Arc<Mutex<scrape_loop::LoopStatus>>)> = pool
                .loops
                .values()
                .map(|r| (r.target.clone(), r.handle.status.clone()))
                .collect();
            active.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
            pools.insert(
                job.clone(),
                PoolStatus {
                    active,
                    dropped: pool.dropped.clone(),
                },
            );
        }
        *self.status.pools.lock().unwrap_or_else(|e| e.into_inner()) = pools;
    }

    /// Runs until `cancel`, following discovery and config commands.
    pub async fn run(
        mut self,
        mut targets: watch::Receiver<Targets>,
        mut commands: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = targets.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let t = targets.borrow_and_update().clone();
                    self.sync(&t);
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Configs(cfgs)) => self.apply_configs(cfgs),
                    None => break,
                },
            }
        }
        self.stop();
    }
}

struct PoolStatus {
    active: Vec<(Arc<Target>, Arc<Mutex<scrape_loop::LoopStatus>>)>,
    dropped: Vec<Labels>,
}

/// A cheap, cloneable view of the scraper for the HTTP API.
#[derive(Clone, Default)]
pub struct ScrapeStatus {
    pools: Arc<Mutex<BTreeMap<String, PoolStatus>>>,
}

impl ScrapeStatus {
    /// Active targets per scrape job, including jobs with none.
    pub fn pool_target_counts(&self) -> BTreeMap<String, u64> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .iter()
            .map(|(job, p)| (job.clone(), p.active.len() as u64))
            .collect()
    }
}

impl TargetsSource for ScrapeStatus {
    fn active_targets(&self) -> Vec<ActiveTarget> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (job, pool) in pools.iter() {
            for (t, st) in &pool.active {
                let st = st.lock().unwrap_or_else(|e| e.into_inner()).clone();
                out.push(ActiveTarget {
                    discovered_labels: t.discovered.clone(),
                    labels: t.public.clone(),
                    scrape_pool: job.clone(),
                    scrape_url: t.url.clone(),
                    global_url: t.url.clone(),
                    last_error: st.last_error,
                    last_scrape: st.last_scrape,
                    last_scrape_duration: st.last_duration,
                    health: st.health,
                    scrape_interval: t.interval,
                    scrape_timeout: t.timeout,
                });
            }
        }
        out
    }

    fn dropped_targets(&self) -> Vec<DroppedTarget> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .values()
            .flat_map(|p| p.dropped.iter())
            .map(|l| DroppedTarget {
                discovered_labels: l.clone(),
            })
            .collect()
    }

    fn metadata(&self) -> Vec<(Labels, Vec<MetricMetadata>)> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for pool in pools.values() {
            for (t, st) in &pool.active {
                let md = st
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .metadata
                    .clone();
                out.push((t.public.clone(), md.as_ref().clone()));
            }
        }
        out
    }
}
