//! Command-line flags. Names follow Prometheus's (`--config.file`,
//! `--storage.tsdb.path`, ...) so raymon can stand where `/bin/prometheus`
//! stood in an existing command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Watches a Ray cluster: discovers Ray's metrics endpoints, scrapes them,
/// stores the samples and answers Prometheus's HTTP API and PromQL, so
/// Grafana and the Ray dashboard use it as if it were Prometheus 2.42.
///
/// Without a subcommand, runs `serve` with the flags given.
#[derive(Debug, Parser)]
#[command(name = "raymon", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scrape the targets of a Prometheus config and serve the HTTP API.
    Serve(Box<ServeArgs>),
    /// Check files, like promtool.
    Check(CheckArgs),
    /// Measure the durable store on Ray-like data (append with WAL, memory
    /// per series, restart time, bytes per sample on disk).
    #[command(hide = true)]
    BenchTsdb(BenchTsdbArgs),
}

#[derive(Debug, Args)]
pub struct BenchTsdbArgs {
    /// Active series.
    #[arg(long, default_value_t = 1_000_000)]
    pub series: usize,
    /// Scrapes of every series, 15 s apart.
    #[arg(long, default_value_t = 30)]
    pub scrapes: usize,
    /// Series per commit, as one scrape of one target.
    #[arg(long, default_value_t = 2_000)]
    pub batch: usize,
    /// Data directory; it is emptied first.
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(subcommand)]
    pub what: CheckWhat,
}

#[derive(Debug, Subcommand)]
pub enum CheckWhat {
    /// Check that Prometheus config files are valid, as `promtool check config`.
    Config {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Prometheus configuration file, such as Ray's
    /// `/tmp/ray/session_latest/metrics/prometheus/prometheus.yml`.
    #[arg(long = "config.file", default_value = "prometheus.yml")]
    pub config_file: PathBuf,

    /// Where samples are stored.
    #[arg(long = "storage.tsdb.path", default_value = "data/")]
    pub storage_path: PathBuf,

    /// How long to keep samples (Prometheus duration: 15d, 12h, ...).
    #[arg(long = "storage.tsdb.retention.time", default_value = "15d")]
    pub retention_time: String,

    /// Most bytes of storage to keep (e.g. 512MB, 10GB); 0 means no limit.
    #[arg(long = "storage.tsdb.retention.size", default_value = "0")]
    pub retention_size: String,

    /// Address to listen on. Loopback by default: pass 0.0.0.0:9090 to be
    /// reachable from other hosts (and consider --web.config.file).
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9090")]
    pub listen_address: SocketAddr,

    /// Prometheus web config file (basic auth, TLS).
    #[arg(long = "web.config.file")]
    pub web_config_file: Option<PathBuf>,

    /// Enable POST /-/reload and /-/quit, as in Prometheus.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// How far back an instant selector looks for a sample.
    #[arg(long = "query.lookback-delta", default_value = "5m")]
    pub lookback_delta: String,

    /// Longest a query may run.
    #[arg(long = "query.timeout", default_value = "2m")]
    pub query_timeout: String,

    /// Most samples a query may load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub query_max_samples: u64,

    /// Most queries that run at once.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    pub query_max_concurrency: usize,

    /// Log level: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,
}

impl ServeArgs {
    /// The flags as Prometheus names them, for `/api/v1/status/flags`.
    pub fn prometheus_flags(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("config.file", self.config_file.display().to_string()),
            ("storage.tsdb.path", self.storage_path.display().to_string()),
            ("storage.tsdb.retention.time", self.retention_time.clone()),
            ("storage.tsdb.retention.size", self.retention_size.clone()),
            ("web.listen-address", self.listen_address.to_string()),
            (
                "web.config.file",
                self.web_config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("web.enable-lifecycle", self.enable_lifecycle.to_string()),
            ("query.lookback-delta", self.lookback_delta.clone()),
            ("query.timeout", self.query_timeout.clone()),
            ("query.max-samples", self.query_max_samples.to_string()),
            (
                "query.max-concurrency",
                self.query_max_concurrency.to_string(),
            ),
            ("log.level", self.log_level.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
