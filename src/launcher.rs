//! Entry point of the binary: command-line flags, the runtime, and the
//! processes and tasks raymon runs (`serve`; with `up`, Ray and Grafana as
//! supervised children), and the client commands (`import`). The only module
//! that uses `anyhow`.

mod bench_tsdb;
mod cli;
pub mod env;
pub mod grafana;
mod import;
mod jobs;
pub mod ray;
mod serve;
pub mod supervisor;
pub mod up;
pub mod urls;

pub use cli::{
    Cli, Command, DownArgs, EnvArgs, EnvFormat, GrafanaMode, ImportArgs, ServeArgs, StackArgs,
    UpArgs,
};
pub use jobs::jobs_from_config;
pub use serve::serve;

use clap::Parser;

/// Parses flags and runs the chosen command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(cli::CheckArgs {
            what: cli::CheckWhat::Config { files },
        })) => check_config(&files),
        Some(Command::Serve(args)) => run_serve(*args),
        Some(Command::BenchTsdb(args)) => {
            init_logging("warn");
            bench_tsdb::run(&args)
        }
        Some(Command::Import(args)) => import::run(&args),
        Some(Command::Up(args)) => {
            init_logging(&args.serve.log_level);
            runtime()?.block_on(up::up_until_signal(*args))
        }
        Some(Command::Down(args)) => runtime()?.block_on(up::down(args)),
        Some(Command::Env(args)) => {
            up::print_env(&args);
            Ok(())
        }
        None => run_serve(cli.serve),
    }
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log_level);
    runtime()?.block_on(serve::serve_until_signal(args))
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("raymon")
        .build()
}

fn check_config(files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let out = crate::config::check(&paths);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    if !out.success {
        std::process::exit(1);
    }
    Ok(())
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
