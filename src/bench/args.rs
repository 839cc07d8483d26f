//! The flags of `raymon bench` and of the hidden `bench-targets` command,
//! and the simulated cluster's shape they share.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::exposition::Shape;

/// The command `--vs prometheus` stands for.
pub const PROMETHEUS_COMMAND: &str = "/usr/bin/prometheus --config.file={config} --storage.tsdb.path={data} --web.listen-address=127.0.0.1:{port}";

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s).map_err(|e| e.to_string())
}

/// The simulated cluster's shape, shared by `bench` and `bench-targets`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Simulated Ray nodes (HTTP targets on 127.0.0.1).
    #[arg(long, default_value_t = 100)]
    pub targets: usize,
    /// Sample lines per target body.
    #[arg(long, default_value_t = 1000)]
    pub series_per_target: usize,
    /// Scrape interval, written into the generated prometheus.yml.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Share of the series replaced by new ones at every interval (Ray's
    /// head node replaces about 0.3%).
    #[arg(long, default_value_t = 0.003)]
    pub churn: f64,
    /// Share of the series that are histogram buckets, sums and counts.
    #[arg(long, default_value_t = 0.5)]
    pub histogram_fraction: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl ClusterArgs {
    pub(super) fn shape(&self) -> Shape {
        Shape {
            series: self.series_per_target,
            histogram_fraction: self.histogram_fraction,
            churn: self.churn,
            seed: self.seed,
        }
    }

    pub(super) fn to_flags(&self) -> Vec<String> {
        vec![
            "--targets".into(),
            self.targets.to_string(),
            "--series-per-target".into(),
            self.series_per_target.to_string(),
            "--interval".into(),
            format!("{}ms", self.interval.as_millis()),
            "--churn".into(),
            self.churn.to_string(),
            "--histogram-fraction".into(),
            self.histogram_fraction.to_string(),
            "--seed".into(),
            self.seed.to_string(),
        ]
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How long to measure each collector.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Another collector to measure: a command with {config}, {data} and
    /// {port} in it, or `prometheus` for Prometheus from /usr/bin. Repeatable.
    #[arg(long = "vs")]
    pub vs: Vec<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Measure only the `--vs` collectors.
    #[arg(long)]
    pub no_raymon: bool,
    /// Dashboard queries: a file with one per line, `ray` for Ray's 397
    /// dashboard queries, or `builtin` for a handful of Ray's heaviest
    /// (built in). Repeatable; the lists are run in the order given.
    /// Default: `builtin`, or with --same-data `ray`.
    #[arg(long, value_name = "FILE|ray|builtin")]
    pub queries: Vec<PathBuf>,
    /// Run at most this many of the queries, spread evenly over the file so
    /// every collector runs the same ones (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_queries: usize,
    /// Give up on one query after this long (it counts as failed).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub query_timeout: Duration,
    /// Stop running queries after this long in all; the report says how
    /// many ran.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub query_budget: Duration,
    /// Skip the restart measurements: after a clean stop (SIGTERM), then
    /// after `kill -9` of the restarted collector.
    #[arg(long)]
    pub no_restart: bool,
    /// Add a `remote_write` section sending here to every collector's
    /// config, and count what the receiver took (a VictoriaMetrics:
    /// `vm_rows_inserted_total` on its `/metrics`).
    #[arg(long = "remote-write-url")]
    pub remote_write_url: Option<String>,
    /// Run raymon in agent mode (`--enable-feature=agent`); queries and the
    /// restart are skipped for every collector.
    #[arg(long)]
    pub agent: bool,
    /// Let each collector run this long after its first scrapes before the
    /// measured window (remote write shards settle, a receiver registers
    /// the new series).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Where configs, data and logs go; a fresh temporary directory when
    /// not given, removed at the end.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub same_data: super::preload::SameDataArgs,
}

/// Flags of the hidden `bench-targets` command.
#[derive(Debug, Clone, Args)]
pub struct TargetsArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Where to write the file_sd JSON and the control address.
    #[arg(long)]
    pub dir: PathBuf,
}
