//! `raymon serve`: storage, discovery, scraping and the HTTP API in one
//! process, with reload on SIGHUP and `POST /-/reload`, and an orderly
//! shutdown (stop scraping, then flush storage, as Prometheus does).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::flags::ServeArgs;
use super::jobs::jobs_from_config;
use crate::config;
use crate::discovery;
use crate::promql::engine::{Engine, EngineOptions};
use crate::remote;
use crate::scrape;
use crate::selfmetrics::{self, Gathered, HeadGauges, StorageGauges, counting::CountingAppendable};
use crate::storage::{Appendable, Queryable};
use crate::tsdb::agent::AgentDb;
use crate::tsdb::changes::{Changes, Tracked};
use crate::tsdb::tombstones::{Tombstoned, Tombstones};
use crate::tsdb::{Db, DbOptions, Head};
use crate::web;
use crate::web::range_cache::{RangeCache, Windows};

/// Runs until SIGINT/SIGTERM or `POST /-/quit`.
pub async fn serve_until_signal(args: ServeArgs) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        wait_for_termination().await;
        info!("received termination signal, shutting down");
        c.cancel();
    });
    serve(args, cancel).await
}

/// Runs `serve` until `cancel`.
pub async fn serve(args: ServeArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let mut cfg = config::load_file(&args.config_file)
        .with_context(|| format!("cannot load {}", args.config_file.display()))?;
    let (features, feature_lines) = args.prom.features();
    expand_external_labels(&mut cfg, &features);
    for w in args.accepted.warnings() {
        warn!("{w}");
    }
    for (is_warning, line) in feature_lines {
        if is_warning {
            warn!("{line}");
        } else {
            info!("{line}");
        }
    }
    if args.prom.retention_deprecated.is_some() {
        warn!(
            deprecated_flag = "storage.tsdb.retention",
            new_flag = "storage.tsdb.retention.time",
            "flag --storage.tsdb.retention is deprecated"
        );
    }
    let location = web::prefix::Location::new(
        args.prom.external_url.as_deref(),
        args.prom.route_prefix.as_deref(),
        &hostname(),
        args.listen_address.port(),
    )?;
    let cors_origin = cors_regex(&args.prom.cors_origin)?;
    warn_unimplemented(&cfg);
    // Prometheus's default `--web.config.file=""` means none.
    let web_config_file = args
        .web_config_file
        .clone()
        .filter(|p| !p.as_os_str().is_empty());
    let web_config = match &web_config_file {
        Some(p) => web::web_config::WebConfig::load(p)
            .with_context(|| format!("cannot load web config {}", p.display()))?,
        None => web::web_config::WebConfig::default(),
    };
    let server_opts = web::server::ServerOptions {
        read_header_timeout: config::parse_duration(&args.read_header_timeout)
            .context("invalid --web.read-header-timeout")?,
        max_connections: args.max_connections,
        web_config,
        web_config_file,
        anonymous: args.dashboards_anonymous.then(|| {
            let prefix = location.route_prefix.clone();
            let open: web::server::Anonymous =
                Arc::new(move |path: &str| web::ui::is_dashboard_path_under(&prefix, path));
            open
        }),
        ..Default::default()
    };
    let wal_keep = Arc::new(crate::tsdb::wal::Keep::new(
        config::parse_duration(&args.remote_wal_retention)
            .context("invalid --storage.remote.wal-retention")?,
    ));
    let agent = features.agent;
    // Held until serve returns: a second raymon (or Prometheus) on this
    // directory would corrupt it.
    let _lock = if agent { None } else { lock_data_dir(&args)? };
    let data_dir = if agent {
        args.agent_path.clone()
    } else {
        args.storage_path.clone()
    };
    let remote = Arc::new(remote::WriteStorage::new(
        data_dir.clone(),
        config::parse_duration(&args.remote_flush_deadline)
            .context("invalid --storage.remote.flush-deadline")?,
        wal_keep.clone(),
    )?);
    // Before the store opens: it deletes WAL segments no queue holds.
    remote.hold_saved(&cfg);
    let metrics = selfmetrics::Metrics::new();
    metrics
        .config_unimplemented_sections
        .store(cfg.unimplemented.len() as u64, Ordering::Relaxed);
    let changes = Arc::new(Changes::new());
    let (db, agent_db, head, inner_store, store_access) = if agent {
        if cfg.remote_write.is_empty() {
            warn!("agent mode without remote_write: samples are kept in the WAL and sent nowhere");
        }
        let a = Arc::new(
            AgentDb::open(&data_dir, Some(wal_keep))
                .with_context(|| format!("cannot open the agent WAL at {}", data_dir.display()))?,
        );
        a.start_background(
            config::parse_duration(&args.agent_truncate_frequency)
                .context("invalid --storage.agent.wal-truncate-frequency")?,
        );
        // No samples are kept in memory; queries are refused.
        let head = Arc::new(Head::new(crate::tsdb::HeadOptions::default()));
        let access = agent_access(&a, &data_dir, &metrics);
        let store: Arc<dyn Appendable> = Arc::new(a.clone());
        (None, Some(a), head, store, access)
    } else {
        let db = Arc::new(open_storage(&args, wal_keep, changes.clone())?);
        db.start_background();
        let head = Arc::new(db.head().clone());
        let access = store_access(&db, &metrics);
        // Every write announces the time range it changed, for the
        // range-query cache.
        let store: Arc<dyn Appendable> = Arc::new(Tracked::new(head.clone(), changes.clone()));
        (Some(db), None, head, store, access)
    };
    // Deletions (`/api/v1/admin/tsdb/delete_series`) hide samples from every read.
    let stones = Arc::new(Tombstones::open(&data_dir).context("cannot read the deleted series")?);
    let visible: Arc<dyn Queryable> = Arc::new(Tombstoned::new(head.clone(), stones.clone()));
    remote
        .apply_config(&cfg, store_access.clone())
        .context("cannot start remote_write")?;
    // Every write (scrapes, imports, remote write) goes through the counting wrapper.
    let store: Arc<dyn Appendable> =
        Arc::new(CountingAppendable::new(inner_store, metrics.tsdb.clone()));
    let (mut discovery, targets_rx) = discovery::Manager::new();
    discovery.apply(discovery_jobs(&cfg, &metrics)?);

    let seed = offset_seed(&args);
    let mut scraper = scrape::Manager::new(store.clone(), seed)?;
    scraper.set_metrics(metrics.scrape.clone());
    if args.scrape_adjust_timestamps {
        scraper.set_timestamp_tolerance(Some(
            config::parse_duration(&args.scrape_timestamp_tolerance)
                .context("invalid --scrape.timestamp-tolerance")?,
        ));
    } else {
        scraper.set_timestamp_tolerance(None);
    }
    scraper.apply_configs(cfg.scrape_configs.clone());
    let scrape_status = scraper.status();
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    let scrape_cancel = cancel.child_token();
    let discovered_rx = targets_rx.clone();
    let scrape_task = tokio::spawn(scraper.run(targets_rx, cmd_rx, scrape_cancel.clone()));
    let (reload_tx, mut reload_rx) = mpsc::channel::<oneshot::Sender<Result<(), String>>>(4);

    let mut state = web::AppState::new(visible.clone(), Arc::new(scrape_status.clone()));
    state.agent = agent;
    if args.enable_import {
        state.appendable = Some(store.clone());
    }
    state.write_limits = write_limits(&args)?;
    *state.config_yaml.write().unwrap_or_else(|e| e.into_inner()) = cfg.original_yaml.clone();
    if args.enable_lifecycle {
        state.reload = Some(reload_tx.clone());
        state.quit = Some(cancel.clone());
    }
    state.flags = args.prometheus_flags();
    if !args.dashboards_dirs.is_empty() {
        state.dashboards = Some(Arc::new(web::ui::Dashboards::new(
            args.dashboards_dirs.clone(),
        )));
    }
    state.dashboard_scrape_ms = cfg.global.scrape_interval.as_millis() as i64;
    state.datasource_name = args.dashboards_datasource_name.clone();
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: config::parse_duration(&args.lookback_delta)
            .context("invalid --query.lookback-delta")?
            .as_millis() as i64,
        max_samples: args.query_max_samples as usize,
        timeout: config::parse_duration(&args.query_timeout).context("invalid --query.timeout")?,
        default_subquery_step_ms: cfg.global.evaluation_interval.as_millis() as i64,
        max_concurrency: args.query_max_concurrency,
    });
    let queries = engine.clone();
    let range_cache = range_cache(&args, &engine, &changes)?;
    let mut promql = web::promql_engine::PromqlEngine::new(engine, visible.clone());
    if let Some(c) = &range_cache {
        promql = promql.with_cache(c.clone());
    }
    state.engine = Some(Arc::new(promql));
    if args.prom.enable_admin_api {
        state.admin = Some(Arc::new(super::admin::StoreAdmin {
            raw: head.clone(),
            visible: visible.clone(),
            stones,
            changes: changes.clone(),
            data_dir: args.storage_path.clone(),
            retention_ms: config::parse_duration(&args.retention_time())
                .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
                .unwrap_or(0),
            now_ms: web::system_now_ms,
        }));
    }
    state.formatter = Some(Arc::new(web::promql_engine::format_query));
    *state
        .external_labels
        .write()
        .unwrap_or_else(|e| e.into_inner()) = cfg.global.external_labels.clone();
    state.lookback_delta =
        config::parse_duration(&args.lookback_delta).context("invalid --query.lookback-delta")?;
    state.query_timeout =
        config::parse_duration(&args.query_timeout).context("invalid --query.timeout")?;
    state.storage_retention = args.retention_time();
    state.request_timeout =
        config::parse_duration(&args.read_timeout).context("invalid --web.read-timeout")?;
    if args.enable_remote_write_receiver || features.remote_write_receiver {
        state.remote_write = Some(store.clone());
    }
    state.location = location;
    state.page_title = args.prom.page_title.clone();
    state.cors_origin = cors_origin;
    let config_yaml = state.config_yaml.clone();
    let external_labels = state.external_labels.clone();
    let config_status = state.config_status.clone();
    state.tsdb_stats = Some(tsdb_status(head.clone()));
    let local_metrics = self_metrics(
        &state,
        metrics.clone(),
        db.clone(),
        head.clone(),
        scrape_status,
        discovered_rx,
        queries,
    );
    let remote_metrics = remote.clone();
    let agent_metrics = agent_db.clone();
    state.self_metrics = Some(Arc::new(move || {
        let mut text = local_metrics();
        text.push_str(&remote_metrics.metrics_text());
        if let Some(c) = &range_cache {
            text.push_str(&c.metrics_text());
        }
        if let Some(a) = &agent_metrics {
            text.push_str(&format!(
                "# HELP prometheus_agent_active_series Number of active series being tracked by the WAL storage\n\
                 # TYPE prometheus_agent_active_series gauge\nprometheus_agent_active_series {}\n",
                a.num_series()
            ));
        }
        text
    }));
    state
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);

    // Reloads come from SIGHUP and from the API; both re-read the file.
    let config_path = args.config_file.clone();
    let reload_cancel = cancel.clone();
    let reload_metrics = metrics.clone();
    let reload_features = features.clone();
    let reload_remote = remote.clone();
    tokio::spawn(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let reply = tokio::select! {
                _ = reload_cancel.cancelled() => return,
                r = reload_rx.recv() => match r { Some(r) => Some(r), None => return },
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => None,
            };
            let loaded = config::load_file(&config_path).map(|mut cfg| {
                expand_external_labels(&mut cfg, &reload_features);
                cfg
            });
            let result = match loaded {
                Ok(cfg) => match discovery_jobs(&cfg, &reload_metrics)
                    .map_err(|e| e.to_string())
                    .and_then(|jobs| {
                        // Stopping a replaced queue waits for its flush.
                        let r = reload_remote.clone();
                        let c = cfg.clone();
                        let a = store_access.clone();
                        tokio::task::block_in_place(move || r.apply_config(&c, a))
                            .map(|()| jobs)
                            .map_err(|e| e.to_string())
                    }) {
                    Ok(jobs) => {
                        warn_unimplemented(&cfg);
                        reload_metrics
                            .config_unimplemented_sections
                            .store(cfg.unimplemented.len() as u64, Ordering::Relaxed);
                        discovery.apply(jobs);
                        let _ = cmd_tx
                            .send(scrape::Command::Configs(cfg.scrape_configs.clone()))
                            .await;
                        *config_yaml.write().unwrap_or_else(|e| e.into_inner()) =
                            cfg.original_yaml.clone();
                        *external_labels.write().unwrap_or_else(|e| e.into_inner()) =
                            cfg.global.external_labels.clone();
                        info!(file = %config_path.display(), "configuration reloaded");
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = &result {
                error!(error = %e, "configuration reload failed, keeping the old one");
            }
            {
                let mut st = config_status.write().unwrap_or_else(|e| e.into_inner());
                st.success = result.is_ok();
                st.last_time = std::time::SystemTime::now();
            }
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(args.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen_address))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    info!(
        address = %bound,
        tls = server_opts.web_config.tls.is_some(),
        basic_auth = server_opts.web_config.users.is_some(),
        "serving the Prometheus API"
    );
    let app = web::router(state);
    if let Err(e) = web::server::serve(listener, app, server_opts, cancel.clone()).await {
        warn!(error = %e, "HTTP server stopped");
    }
    // Scrapers stop before storage closes, so no scrape is cut short.
    scrape_cancel.cancel();
    let _ = scrape_task.await;
    // Queues send what they can within the flush deadline and save their
    // positions; the store's final checkpoint keeps what they did not send.
    let stopping = remote.clone();
    let _ = tokio::task::spawn_blocking(move || stopping.stop()).await;
    info!("scraping stopped; closing storage");
    if let Some(a) = agent_db {
        match tokio::task::spawn_blocking(move || a.close()).await {
            Ok(Ok(())) => info!("agent WAL synced"),
            Ok(Err(e)) => error!(error = %e, "cannot sync the agent WAL"),
            Err(e) => error!(error = %e, "agent WAL close panicked"),
        }
        return Ok(());
    }
    let Some(closing) = db.clone() else {
        return Ok(());
    };
    match tokio::task::spawn_blocking(move || closing.close()).await {
        Ok(Ok(())) => info!("storage flushed and closed"),
        Ok(Err(e)) => error!(error = %e, "cannot close storage cleanly; the WAL will be replayed"),
        Err(e) => error!(error = %e, "storage close panicked; the WAL will be replayed"),
    }
    Ok(())
}

/// Prometheus's `lock` file in the data directory, held (`flock`) while
/// serve runs, unless `--storage.tsdb.no-lockfile`.
fn lock_data_dir(args: &ServeArgs) -> anyhow::Result<Option<std::fs::File>> {
    if args.prom.no_lockfile || !args.prom.use_lockfile {
        return Ok(None);
    }
    let dir = &args.storage_path;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "opening storage failed: lock DB directory: resource temporarily unavailable \
             ({} is used by another process; --storage.tsdb.no-lockfile skips this check)",
            dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The range-query cache `--query.range-cache-size` asks for, if any.
fn range_cache(
    args: &ServeArgs,
    engine: &Engine,
    changes: &Arc<Changes>,
) -> anyhow::Result<Option<Arc<RangeCache>>> {
    let size = args.query_range_cache_size.trim();
    let bytes = if size == "0" {
        0
    } else {
        config::parse_size(size).context("invalid --query.range-cache-size")?
    };
    if bytes == 0 {
        return Ok(None);
    }
    let o = engine.options();
    let windows = Windows {
        lookback_ms: o.lookback_delta_ms,
        default_subquery_step_ms: o.default_subquery_step_ms,
    };
    Ok(Some(Arc::new(RangeCache::new(
        changes.clone(),
        windows,
        usize::try_from(bytes).unwrap_or(usize::MAX),
        o.max_samples,
    ))))
}

/// Opens the durable store at `--storage.tsdb.path` with the retention flags.
fn open_storage(
    args: &ServeArgs,
    wal_keep: Arc<crate::tsdb::wal::Keep>,
    changes: Arc<Changes>,
) -> anyhow::Result<Db> {
    let retention = config::parse_duration(&args.retention_time())
        .context("invalid --storage.tsdb.retention.time")?;
    let size = args.retention_size.trim();
    let retention_bytes = if size.is_empty() || size == "0" {
        0
    } else {
        config::parse_size(size).context("invalid --storage.tsdb.retention.size")?
    };
    let checkpoint_every = config::parse_duration(&args.checkpoint_interval)
        .context("invalid --storage.tsdb.checkpoint-interval")?;
    let series_idle =
        config::parse_duration(&args.series_idle).context("invalid --storage.tsdb.series-idle")?;
    let mut opts = DbOptions {
        retention_ms: retention.as_millis().min(i64::MAX as u128) as i64,
        retention_bytes,
        checkpoint_every,
        series_idle_ms: series_idle.as_millis().min(i64::MAX as u128) as i64,
        ..DbOptions::default()
    };
    opts.head.samples_per_chunk = args.samples_per_chunk.max(4);
    opts.wal_keep = Some(wal_keep);
    opts.changes = Some(changes);
    let (db, _) = Db::open(&args.storage_path, opts)
        .with_context(|| format!("cannot open storage at {}", args.storage_path.display()))?;
    Ok(db)
}

/// What remote write's queues read from the store and the counters.
fn store_access(db: &Arc<Db>, metrics: &selfmetrics::Metrics) -> remote::StoreAccess {
    let (end_db, labels_db) = (db.clone(), db.clone());
    let (m_in, m_high) = (metrics.tsdb.clone(), metrics.tsdb.clone());
    remote::StoreAccess {
        wal_dir: db.wal().dir().to_path_buf(),
        wal_end: Arc::new(move || end_db.wal().end()),
        labels_of: Arc::new(move |r| labels_db.series_labels(r)),
        samples_in: Arc::new(move || m_in.samples_appended.get()),
        highest_in_ms: Arc::new(move || {
            m_high
                .highest_timestamp_ms
                .load(std::sync::atomic::Ordering::Relaxed)
        }),
    }
}

/// What remote write's queues read in agent mode.
fn agent_access(
    a: &Arc<AgentDb>,
    dir: &std::path::Path,
    metrics: &selfmetrics::Metrics,
) -> remote::StoreAccess {
    let (end, labels) = (a.clone(), a.clone());
    let (m_in, m_high) = (metrics.tsdb.clone(), metrics.tsdb.clone());
    remote::StoreAccess {
        wal_dir: dir.join("wal"),
        wal_end: Arc::new(move || end.wal().end()),
        labels_of: Arc::new(move |r| labels.series_labels(r)),
        samples_in: Arc::new(move || m_in.samples_appended.get()),
        highest_in_ms: Arc::new(move || {
            m_high
                .highest_timestamp_ms
                .load(std::sync::atomic::Ordering::Relaxed)
        }),
    }
}

/// What import and remote write accept, from the `--web.write.*` flags.
fn write_limits(args: &ServeArgs) -> anyhow::Result<web::WriteLimits> {
    // 0 (or a retention of 0, when the age follows it) means no bound.
    let bound = |flag: &str, s: &str| -> anyhow::Result<Option<std::time::Duration>> {
        let d = config::parse_duration(s).with_context(|| format!("invalid {flag}"))?;
        Ok((!d.is_zero()).then_some(d))
    };
    let max_age = match &args.write_max_age {
        Some(s) => bound("--web.write.max-age", s)?,
        None => bound("--storage.tsdb.retention.time", &args.retention_time())?,
    };
    Ok(web::WriteLimits {
        labels: crate::model::LabelLimits {
            max_labels: args.write_label_limit,
            max_name_len: args.write_label_name_length_limit,
            max_value_len: args.write_label_value_length_limit,
        },
        max_age,
        max_future: bound("--web.write.max-future", &args.write_max_future)?,
    })
}

/// The config's discovery jobs, counting file read errors into `metrics`.
fn discovery_jobs(
    cfg: &config::Config,
    metrics: &selfmetrics::Metrics,
) -> Result<Vec<discovery::JobDiscovery>, discovery::Error> {
    let mut jobs = jobs_from_config(cfg)?;
    for job in &mut jobs {
        for sd in &mut job.file_sd {
            sd.set_metrics(metrics.sd.clone());
        }
        for sd in &mut job.http_sd {
            sd.set_metrics(metrics.sd.clone());
        }
    }
    Ok(jobs)
}

/// `/api/v1/status/tsdb` from the head's index: without it the API would
/// select every series with its samples (gigabytes at a million series).
fn tsdb_status(head: Arc<Head>) -> web::TsdbStatsSource {
    Arc::new(move || {
        let c = head.cardinality(10);
        let (min_time, max_time) = head.time_bounds().unwrap_or((0, 0));
        let stats = |v: Vec<(String, u64)>| {
            v.into_iter()
                .map(|(name, value)| web::Stat { name, value })
                .collect()
        };
        Ok(web::TsdbStatus {
            head_stats: web::HeadStats {
                num_series: c.num_series,
                num_label_pairs: c.num_label_pairs,
                chunk_count: head.num_chunks() as u64,
                min_time,
                max_time,
            },
            series_count_by_metric_name: stats(c.series_by_metric_name),
            label_value_count_by_label_name: stats(c.values_by_label_name),
            memory_in_bytes_by_label_name: stats(c.bytes_by_label_name),
            series_count_by_label_value_pair: stats(c.series_by_label_pair),
        })
    })
}

/// `/metrics`: the counters plus what the head, scraper, discovery and web
/// state know at the moment of the request.
fn self_metrics(
    state: &web::AppState,
    metrics: selfmetrics::Metrics,
    db: Option<Arc<Db>>,
    head: Arc<Head>,
    scrape_status: scrape::ScrapeStatus,
    targets: tokio::sync::watch::Receiver<discovery::Targets>,
    engine: Engine,
) -> web::SelfMetrics {
    let config_status = state.config_status.clone();
    let ready = state.ready.clone();
    let version = state.build_info.version.clone();
    let revision = state.build_info.revision.clone();
    Arc::new(move || {
        let stats = head.stats();
        let discovered = targets
            .borrow()
            .iter()
            .map(|(job, groups)| {
                let n: usize = groups.iter().map(|g| g.targets.len()).sum();
                (job.clone(), n as u64)
            })
            .collect();
        let cs = *config_status.read().unwrap_or_else(|e| e.into_inner());
        let storage = db.as_ref().map(|db| {
            let st = db.stats();
            StorageGauges {
                wal_bytes_written: st.wal_bytes_written,
                wal_write_failures: st.wal_write_failures,
                wal_segments_created: st.wal_segments_created,
                checkpoints: st.checkpoints,
                checkpoint_failures: st.checkpoint_failures,
                retention_removed_chunks: st.retention_removed_chunks,
                persisted_chunks: st.persisted_chunks,
                compactions: st.compactions,
                merged_chunks: st.merged_chunks,
                disk_bytes: st.disk_bytes,
            }
        });
        metrics.render(&Gathered {
            head: HeadGauges {
                series: stats.num_series as u64,
                chunks: stats.num_chunks as u64,
                time_bounds: head.time_bounds(),
            },
            storage,
            pool_targets: scrape_status.pool_target_counts(),
            discovered_targets: discovered,
            config_reload_success: cs.success,
            config_reload_time: cs.last_time,
            ready: ready.load(std::sync::atomic::Ordering::Acquire),
            engine_queries: engine.active_queries() as u64,
            version: version.clone(),
            revision: revision.clone(),
        })
    })
}

/// `--enable-feature=expand-external-labels`, with Prometheus's warning
/// for each variable that is unset or empty.
fn expand_external_labels(cfg: &mut config::Config, features: &super::prom_flags::Features) {
    if !features.expand_external_labels {
        return;
    }
    for name in cfg.expand_external_labels(|n| std::env::var(n).ok()) {
        warn!(name, "Empty environment variable");
    }
}

/// One warning per section of the config that raymon does not act on.
fn warn_unimplemented(cfg: &config::Config) {
    for u in &cfg.unimplemented {
        warn!("{u}");
    }
}

/// `--web.cors.origin` compiled fully anchored, as Prometheus does; `None`
/// for the default `.*`, which answers any origin with `*`.
fn cors_regex(s: &str) -> anyhow::Result<Option<regex::Regex>> {
    if s == ".*" {
        return Ok(None);
    }
    regex::Regex::new(&format!("^(?:{s})$"))
        .map(Some)
        .with_context(|| format!("could not compile CORS regex string {s:?}"))
}

/// The machine's name, for the default external URL.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

fn offset_seed(args: &ServeArgs) -> u64 {
    let key = format!("{}{}", hostname(), args.listen_address);
    crate::model::Labels::from_pairs([("seed", key)]).stable_hash()
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; `serve` and `up` stop on either.
pub(crate) async fn wait_for_termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
