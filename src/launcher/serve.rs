//! `raymon serve`: storage, discovery, scraping and the HTTP API in one
//! process, with reload on SIGHUP and `POST /-/reload`, and an orderly
//! shutdown (stop scraping, then flush storage, as Prometheus does).

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::ServeArgs;
use super::jobs::jobs_from_config;
use crate::config;
use crate::discovery;
use crate::promql::engine::{Engine, EngineOptions};
use crate::scrape;
use crate::tsdb::{Db, DbOptions};
use crate::web;

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
    let cfg = config::load_file(&args.config_file)
        .with_context(|| format!("cannot load {}", args.config_file.display()))?;
    let db = Arc::new(open_storage(&args)?);
    db.start_background();
    let head = Arc::new(db.head().clone());
    let (mut discovery, targets_rx) = discovery::Manager::new();
    discovery.apply(jobs_from_config(&cfg)?);

    let seed = offset_seed(&args);
    let mut scraper = scrape::Manager::new(head.clone(), seed)?;
    scraper.apply_configs(cfg.scrape_configs.clone());
    let scrape_status = scraper.status();
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    let scrape_cancel = cancel.child_token();
    let scrape_task = tokio::spawn(scraper.run(targets_rx, cmd_rx, scrape_cancel.clone()));
    let (reload_tx, mut reload_rx) = mpsc::channel::<oneshot::Sender<Result<(), String>>>(4);

    let mut state = web::AppState::new(head.clone(), Arc::new(scrape_status));
    *state.config_yaml.write().unwrap_or_else(|e| e.into_inner()) = cfg.original_yaml.clone();
    if args.enable_lifecycle {
        state.reload = Some(reload_tx.clone());
        state.quit = Some(cancel.clone());
    }
    state.flags = args.prometheus_flags();
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: config::parse_duration(&args.lookback_delta)
            .context("invalid --query.lookback-delta")?
            .as_millis() as i64,
        max_samples: args.query_max_samples as usize,
        timeout: config::parse_duration(&args.query_timeout).context("invalid --query.timeout")?,
        default_subquery_step_ms: cfg.global.evaluation_interval.as_millis() as i64,
    });
    state.engine = Some(Arc::new(web::promql_engine::PromqlEngine::new(
        engine,
        head.clone(),
    )));
    state.formatter = Some(Arc::new(web::promql_engine::format_query));
    state.external_labels = cfg.global.external_labels.clone();
    state.lookback_delta =
        config::parse_duration(&args.lookback_delta).context("invalid --query.lookback-delta")?;
    state.query_timeout =
        config::parse_duration(&args.query_timeout).context("invalid --query.timeout")?;
    state.storage_retention = args.retention_time.clone();
    let config_yaml = state.config_yaml.clone();
    let config_status = state.config_status.clone();
    state
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);

    // Reloads come from SIGHUP and from the API; both re-read the file.
    let config_path = args.config_file.clone();
    let reload_cancel = cancel.clone();
    tokio::spawn(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let reply = tokio::select! {
                _ = reload_cancel.cancelled() => return,
                r = reload_rx.recv() => match r { Some(r) => Some(r), None => return },
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => None,
            };
            let result = match config::load_file(&config_path) {
                Ok(cfg) => match jobs_from_config(&cfg) {
                    Ok(jobs) => {
                        discovery.apply(jobs);
                        let _ = cmd_tx
                            .send(scrape::Command::Configs(cfg.scrape_configs.clone()))
                            .await;
                        *config_yaml.write().unwrap_or_else(|e| e.into_inner()) =
                            cfg.original_yaml.clone();
                        info!(file = %config_path.display(), "configuration reloaded");
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
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
    info!(address = %args.listen_address, "serving the Prometheus API");
    let app = web::router(state);
    let server_cancel = cancel.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        server_cancel.cancelled().await;
    });
    if let Err(e) = server.await {
        warn!(error = %e, "HTTP server stopped");
    }
    // Scrapers stop before storage closes, so no scrape is cut short.
    scrape_cancel.cancel();
    let _ = scrape_task.await;
    info!("scraping stopped; closing storage");
    let closing = db.clone();
    match tokio::task::spawn_blocking(move || closing.close()).await {
        Ok(Ok(())) => info!("storage flushed and closed"),
        Ok(Err(e)) => error!(error = %e, "cannot close storage cleanly; the WAL will be replayed"),
        Err(e) => error!(error = %e, "storage close panicked; the WAL will be replayed"),
    }
    Ok(())
}

/// Opens the durable store at `--storage.tsdb.path` with the retention flags.
fn open_storage(args: &ServeArgs) -> anyhow::Result<Db> {
    let retention = config::parse_duration(&args.retention_time)
        .context("invalid --storage.tsdb.retention.time")?;
    let size = args.retention_size.trim();
    let retention_bytes = if size.is_empty() || size == "0" {
        0
    } else {
        config::parse_size(size).context("invalid --storage.tsdb.retention.size")?
    };
    let opts = DbOptions {
        retention_ms: retention.as_millis().min(i64::MAX as u128) as i64,
        retention_bytes,
        ..DbOptions::default()
    };
    let (db, _) = Db::open(&args.storage_path, opts)
        .with_context(|| format!("cannot open storage at {}", args.storage_path.display()))?;
    Ok(db)
}

fn offset_seed(args: &ServeArgs) -> u64 {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let key = format!("{}{}", host.trim(), args.listen_address);
    crate::model::Labels::from_pairs([("seed", key)]).stable_hash()
}

async fn wait_for_termination() {
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
