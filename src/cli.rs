//! The command layer: flags ([`flags`]), and each command's wiring: `serve`
//! (storage, discovery, scraping and the HTTP server in one process),
//! `import` (a client of a running server), `check config`, the benchmarks
//! (`crate::bench`) and the stack commands, which hand over to
//! `crate::launcher`. The only module besides `launcher` that uses `anyhow`.

mod admin;
mod check;
pub mod flags;
mod import;
mod jobs;
mod logfmt;
pub mod prom_flags;
mod serve;

pub use flags::{
    Cli, Command, DownArgs, EnvArgs, EnvFormat, GrafanaMode, ImportArgs, ServeArgs, StackArgs,
    UpArgs,
};
pub use jobs::jobs_from_config;
pub use serve::serve;
pub(crate) use serve::wait_for_termination;

use crate::launcher::{env, status, up};
use clap::Parser;

/// Parses flags and runs the chosen command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse_from(prom_flags::normalize_args(std::env::args_os()));
    match cli.command {
        Some(Command::Check(flags::CheckArgs {
            what: flags::CheckWhat::Config { files },
        })) => check::run(&files),
        Some(Command::Serve(args)) => run_serve(*args),
        Some(Command::BenchTsdb(args)) => {
            init_logging("warn", None);
            crate::bench::tsdb::run(&args)
        }
        Some(Command::Import(args)) => import::run(&args),
        Some(Command::Up(args)) => {
            init_logging(&args.serve.log_level, args.serve.prom.log_format);
            runtime()?.block_on(up::up_until_signal(*args))
        }
        Some(Command::Down(args)) => runtime()?.block_on(up::down(args)),
        Some(Command::Status(args)) => {
            let data = up::data_dir_from_env(args.data_dir.as_deref());
            let report = status::report(&data);
            print!("{}", status::render(&report, args.format));
            if !report.running {
                std::process::exit(1);
            }
            Ok(())
        }
        Some(Command::Env(args)) => {
            let prefix = std::env::var("JUPYTERHUB_SERVICE_PREFIX").ok();
            let (vars, said) = env::env_vars(&args, prefix.as_deref())?;
            for line in said {
                eprintln!("raymon env: {line}");
            }
            print!("{}", env::render(&vars, args.format));
            Ok(())
        }
        Some(Command::Bench(args)) => run_bench(*args),
        Some(Command::BenchTargets(args)) => run_bench_targets(*args),
        None => run_serve(cli.serve),
    }
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log_level, args.prom.log_format);
    runtime()?.block_on(serve::serve_until_signal(args))
}

/// Serve's runtime: one worker thread unless `TOKIO_WORKER_THREADS` says
/// otherwise. Scrapes, discovery and the HTTP server are mostly waiting;
/// queries and other heavy requests leave the worker (`block_in_place`,
/// `spawn_blocking`). A second worker cost more CPU per sample (measured in
/// docs/decisions.md): every wakeup of one worker by the other is a thread
/// switch, and the head's data went cold in the other core's cache.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        b.worker_threads(1);
    }
    b.enable_all().thread_name("raymon").build()
}

fn run_bench(args: crate::bench::BenchArgs) -> anyhow::Result<()> {
    init_logging("warn", None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("raymon-bench")
        .build()?;
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let out = args.out.clone();
    // On Ctrl-C or SIGTERM the run is dropped, which kills its children
    // (the collector and the simulated cluster) instead of orphaning them.
    if args.same_data.same_data {
        let report = rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = crate::bench::preload::run(&args, command_line) => Ok(r?),
                _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
                _ = term.recv() => Err(anyhow::anyhow!("terminated")),
            }
        })?;
        print!("{}", report.table());
        if let Some(out) = out {
            crate::bench::write_json(&report, &out)?;
        }
        return Ok(());
    }
    let report = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = crate::bench::run(args, command_line) => Ok(r?),
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            _ = term.recv() => Err(anyhow::anyhow!("terminated")),
        }
    })?;
    print!("{}", report.table());
    if let Some(out) = out {
        crate::bench::write_json(&report, &out)?;
    }
    Ok(())
}

fn run_bench_targets(args: crate::bench::TargetsArgs) -> anyhow::Result<()> {
    init_logging("warn", None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("raymon-targets")
        .build()?;
    // The parent ends this process with a signal; nothing needs flushing.
    let cancel = tokio_util::sync::CancellationToken::new();
    rt.block_on(crate::bench::serve_targets(args, cancel))?;
    Ok(())
}

/// Logs to stderr at `level`; `--log.format` picks Prometheus's line formats.
fn init_logging(level: &str, format: Option<prom_flags::LogFormat>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        None => builder.try_init(),
        Some(f) => builder.event_format(logfmt::PromFormat(f)).try_init(),
    };
}
