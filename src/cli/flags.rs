//! Command-line flags. Names follow Prometheus's (`--config.file`,
//! `--storage.tsdb.path`, ...) so raymon can stand where `/bin/prometheus`
//! stood in an existing command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Watches a Ray cluster: discovers Ray's metrics endpoints, scrapes them,
/// stores the samples and answers Prometheus's HTTP API and PromQL, so
/// Grafana and the Ray dashboard use it as if it were Prometheus 2.42.
///
/// Without a subcommand, runs `serve` with the flags given.
#[derive(Debug, Parser)]
#[command(
    name = "raymon",
    version,
    args_conflicts_with_subcommands = true,
    after_help = THREADS_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The one setting of `serve` and `up` that is not a flag.
const THREADS_HELP: &str = "Environment:\n  TOKIO_WORKER_THREADS  threads that run scrapes and the HTTP server (default 1: \
a second cost about 17% more CPU per sample; queries run on threads of their own)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scrape the targets of a Prometheus config and serve the HTTP API.
    #[command(after_help = THREADS_HELP)]
    Serve(Box<ServeArgs>),
    /// Start raymon, a Ray head and Grafana, wired together; stop them all on
    /// Ctrl-C or `raymon down`. Arguments after `--` go to `ray start`.
    Up(Box<UpArgs>),
    /// Stop the `raymon up` running with this data dir, and wait until every
    /// process it started is gone.
    Down(DownArgs),
    /// Say where the stack of a running `raymon up` is reached and which
    /// processes it has; exits 1 when none runs with this data dir.
    Status(StatusArgs),
    /// Print the environment a notebook sets before `ray.init()`: with a
    /// running `raymon up`, the ports it chose and its Ray's address
    /// (`RAY_ADDRESS`); else the ports a later `raymon up --attach` with this
    /// data dir will take, so that the notebook's own Ray dashboard uses
    /// raymon and Grafana. Give it the flags that shape URLs that `up` gets.
    Env(EnvArgs),
    /// Check files, like promtool.
    Check(CheckArgs),
    /// Measure raymon (and other collectors) on a simulated Ray cluster.
    Bench(Box<crate::bench::BenchArgs>),
    /// The simulated cluster of `bench`, run as its own process.
    #[command(hide = true)]
    BenchTargets(Box<crate::bench::TargetsArgs>),
    /// Backfill OpenMetrics text with timestamps (as `promtool tsdb
    /// create-blocks-from openmetrics` takes it) into a running raymon,
    /// which must run with `--web.enable-import`, or into a data directory.
    Import(ImportArgs),
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
    /// A checkpoint (closed chunks to the chunk store, WAL retired) after
    /// every this many scrapes, as serve's background thread does every
    /// 5 minutes; 0 for none.
    #[arg(long, default_value_t = 20)]
    pub checkpoint_every: usize,
    /// Only open the existing store in `--dir` and say how long it took.
    #[arg(long)]
    pub open_only: bool,
    /// Stop right after ingesting, without closing (for `--open-only`).
    #[arg(long)]
    pub crash_only: bool,
    /// Stop right after ingesting, with a clean close (for `--open-only`).
    #[arg(long, conflicts_with = "crash_only")]
    pub close_only: bool,
    /// Data directory; it is emptied first.
    #[arg(long)]
    pub dir: PathBuf,
    /// Where sample values come from: `ray`, the simulated Ray nodes of
    /// `raymon bench` (counters, gauges and histograms that move as Ray's
    /// do); or `random`, where 42% of samples jump to random values, a
    /// harder case for compression than any Ray scrape we have seen.
    #[arg(long, value_enum, default_value_t = BenchValues::Ray)]
    pub values: BenchValues,
}

/// See [`BenchTsdbArgs::values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchValues {
    Ray,
    Random,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The running raymon to send samples to; it must have been started
    /// with `--web.enable-import` (and refuses samples older than its
    /// `--web.write.max-age`, by default its retention time).
    #[arg(
        long,
        default_value = "http://127.0.0.1:9090",
        conflicts_with = "storage_path"
    )]
    pub url: String,
    /// Write into this data directory instead, with no server running (as
    /// `promtool tsdb create-blocks-from openmetrics` does); `raymon serve
    /// --storage.tsdb.path` then serves the samples. Retention applies when
    /// serve opens it.
    #[arg(long = "storage.tsdb.path")]
    pub storage_path: Option<PathBuf>,
    /// Read a Prometheus 2.x data directory instead (its blocks, and the
    /// WAL and head chunks a stopped Prometheus left) into the data
    /// directory given by `--storage.tsdb.path`. The Prometheus directory
    /// is only read; one a running Prometheus holds is refused.
    #[arg(
        long = "from-prometheus",
        value_name = "DIR",
        requires = "storage_path",
        conflicts_with = "file"
    )]
    pub from_prometheus: Option<PathBuf>,
    /// OpenMetrics text ending in `# EOF`, every sample with a timestamp;
    /// `-` reads standard input.
    #[arg(required_unless_present = "from_prometheus")]
    pub file: Option<PathBuf>,
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

    /// How long to keep samples (Prometheus duration: 15d, 12h, ...). When
    /// neither it, --storage.tsdb.retention nor --storage.tsdb.retention.size
    /// is given, 15d; with only a size, no time limit (as Prometheus).
    #[arg(long = "storage.tsdb.retention.time", value_name = "DURATION")]
    pub retention_time: Option<String>,

    /// Most bytes of storage to keep (e.g. 512MB, 10GB); 0 means no limit.
    #[arg(long = "storage.tsdb.retention.size", default_value = "0")]
    pub retention_size: String,

    /// How often a checkpoint syncs the chunk store and retires the WAL
    /// (raymon's own flag; closed chunks move to the chunk store every 30 s
    /// regardless). Shorter means less WAL to replay after a crash, longer
    /// means less work while running. A checkpoint also comes sooner, after
    /// 30 million samples or 256 MiB of WAL, so that a restart never has
    /// more than that to replay.
    #[arg(long = "storage.tsdb.checkpoint-interval", default_value = "5m")]
    pub checkpoint_interval: String,

    /// A series with no sample for this long leaves memory once its chunks
    /// are on disk (queries still find it there; a sample brings it back).
    /// 0 keeps series in memory until retention. Prometheus keeps series in
    /// its head for two to three hours.
    #[arg(long = "storage.tsdb.series-idle", default_value = "2h")]
    pub series_idle: String,

    /// How long to wait flushing samples to remote_write receivers on
    /// shutdown or config reload. What is not sent by then is sent after
    /// the next start, from the WAL.
    #[arg(long = "storage.remote.flush-deadline", default_value = "1m")]
    pub remote_flush_deadline: String,

    /// WAL segments that a remote_write queue has not sent yet are kept at
    /// most this long (counted from when the segment was last written), so
    /// that a receiver that never comes back cannot fill the disk; the same
    /// bound as Prometheus agent's --storage.agent.retention.max-time.
    #[arg(long = "storage.remote.wal-retention", default_value = "4h")]
    pub remote_wal_retention: String,

    /// Agent mode (`--enable-feature=agent`: scrape and forward to
    /// remote_write only; the API answers status, targets and metadata):
    /// where the WAL is kept until every queue has sent it.
    #[arg(long = "storage.agent.path", default_value = "data-agent/")]
    pub agent_path: PathBuf,

    /// Agent mode: how often the WAL moves to a new segment and the
    /// segments every remote_write queue has sent are deleted (Prometheus
    /// takes 2h; a shorter interval keeps less on disk at high rates).
    #[arg(long = "storage.agent.wal-truncate-frequency", default_value = "5m")]
    pub agent_truncate_frequency: String,

    /// Samples per chunk (Prometheus's 120); smaller only to exercise the
    /// chunk store in tests.
    #[arg(
        long = "storage.tsdb.samples-per-chunk",
        default_value_t = 120,
        hide = true
    )]
    pub samples_per_chunk: usize,

    /// Address to listen on. Loopback by default: pass 0.0.0.0:9090 to be
    /// reachable from other hosts (and consider --web.config.file).
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9090")]
    pub listen_address: SocketAddr,

    /// Prometheus web config file (basic auth, TLS).
    /// Empty (Prometheus's default) means none.
    #[arg(long = "web.config.file", value_parser = any_path)]
    pub web_config_file: Option<PathBuf>,

    /// A directory of Grafana dashboard JSON files (Ray writes its own into
    /// `<session>/metrics/grafana/dashboards`), served Grafana-style at
    /// `/d/<uid>/` and `/d-solo/<uid>/` for Ray's Metrics tab. Repeatable.
    #[arg(long = "web.dashboards-dir")]
    pub dashboards_dirs: Vec<PathBuf>,

    /// Serve the dashboard pages (and only the queries their panels and
    /// variables hold) without credentials when basic auth is on, as
    /// Grafana's anonymous viewers for Ray's iframes. The query API still
    /// wants credentials.
    #[arg(long = "web.dashboards.anonymous")]
    pub dashboards_anonymous: bool,

    /// The datasource name dashboards show (Ray's RAY_PROMETHEUS_NAME).
    #[arg(long = "web.dashboards.datasource-name", default_value = "Prometheus")]
    pub dashboards_datasource_name: String,

    /// Enable POST /-/reload and /-/quit, as in Prometheus.
    #[arg(
        long = "web.enable-lifecycle",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub enable_lifecycle: bool,

    /// Accept remote write requests on POST /api/v1/write, as in Prometheus.
    #[arg(
        long = "web.enable-remote-write-receiver",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub enable_remote_write_receiver: bool,

    /// Accept OpenMetrics text on POST /api/v1/import (what `raymon import
    /// --url` sends). Off by default: like remote write, a write endpoint
    /// is opt-in.
    #[arg(
        long = "web.enable-import",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub enable_import: bool,

    /// Import and remote write refuse samples older than this (Prometheus
    /// duration); default: the retention time, since older samples would
    /// be deleted anyway; 0 accepts any age.
    #[arg(long = "web.write.max-age")]
    pub write_max_age: Option<String>,

    /// Import and remote write refuse samples further in the future than
    /// this; 0 accepts any time.
    #[arg(long = "web.write.max-future", default_value = "10m")]
    pub write_max_future: String,

    /// Import and remote write refuse a series with more labels than this
    /// (the metric name counts); 0 for no limit.
    #[arg(long = "web.write.label-limit", default_value_t = crate::web::DEFAULT_WRITE_LABEL_LIMIT)]
    pub write_label_limit: usize,

    /// Import and remote write refuse a label name longer than this many
    /// bytes; 0 for no limit.
    #[arg(
        long = "web.write.label-name-length-limit",
        default_value_t = crate::web::DEFAULT_WRITE_LABEL_NAME_LENGTH_LIMIT
    )]
    pub write_label_name_length_limit: usize,

    /// Import and remote write refuse a label value longer than this many
    /// bytes; 0 for no limit.
    #[arg(
        long = "web.write.label-value-length-limit",
        default_value_t = crate::web::DEFAULT_WRITE_LABEL_VALUE_LENGTH_LIMIT
    )]
    pub write_label_value_length_limit: usize,

    /// Longest a request may take from its first byte to the last of the answer.
    #[arg(long = "web.read-timeout", default_value = "5m")]
    pub read_timeout: String,

    /// Longest a client may take to send a request's headers (and TLS
    /// handshake); idle keep-alive connections are closed after it too, so
    /// it stays above Go clients' 90 s idle timeout (Grafana's), which then
    /// close first and never reuse a connection the server is closing.
    #[arg(long = "web.read-header-timeout", default_value = "2m")]
    pub read_header_timeout: String,

    /// Most simultaneous connections.
    #[arg(long = "web.max-connections", default_value_t = 512)]
    pub max_connections: usize,

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

    /// Memory for range-query answers kept so that a dashboard's refresh
    /// evaluates only its new steps (e.g. 64MB); 0 turns the cache off.
    /// Answers stay exact: steps whose data changed are evaluated again.
    #[arg(long = "query.range-cache-size", default_value = "64MB")]
    pub query_range_cache_size: String,

    /// Snap a scrape's timestamp to the previous one plus the interval when
    /// it starts within `--scrape.timestamp-tolerance` of it (as Prometheus
    /// 2.43+): timer jitter otherwise costs bytes in every chunk.
    #[arg(
        long = "scrape.adjust-timestamps",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub scrape_adjust_timestamps: bool,

    /// How far from the interval a scrape's start may be and still be
    /// snapped; at most 1% of the scrape interval is used.
    #[arg(long = "scrape.timestamp-tolerance", default_value = "2ms")]
    pub scrape_timestamp_tolerance: String,

    /// Log level: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,

    #[command(flatten)]
    pub prom: super::prom_flags::PromFlags,

    #[command(flatten)]
    pub accepted: super::prom_flags::AcceptedFlags,
}

impl ServeArgs {
    /// The flags as Prometheus names them, for `/api/v1/status/flags`.
    pub fn prometheus_flags(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("config.file", self.config_file.display().to_string()),
            ("storage.tsdb.path", self.storage_path.display().to_string()),
            ("storage.tsdb.retention.time", self.retention_time()),
            ("storage.tsdb.retention.size", self.retention_size.clone()),
            (
                "storage.tsdb.checkpoint-interval",
                self.checkpoint_interval.clone(),
            ),
            ("storage.tsdb.series-idle", self.series_idle.clone()),
            (
                "storage.remote.flush-deadline",
                self.remote_flush_deadline.clone(),
            ),
            (
                "storage.remote.wal-retention",
                self.remote_wal_retention.clone(),
            ),
            ("storage.agent.path", self.agent_path.display().to_string()),
            (
                "storage.agent.wal-truncate-frequency",
                self.agent_truncate_frequency.clone(),
            ),
            ("web.listen-address", self.listen_address.to_string()),
            (
                "web.config.file",
                self.web_config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("web.enable-lifecycle", self.enable_lifecycle.to_string()),
            (
                "web.enable-remote-write-receiver",
                self.enable_remote_write_receiver.to_string(),
            ),
            ("web.enable-import", self.enable_import.to_string()),
            (
                "web.write.max-age",
                self.write_max_age
                    .clone()
                    .unwrap_or_else(|| self.retention_time()),
            ),
            ("web.write.max-future", self.write_max_future.clone()),
            ("web.write.label-limit", self.write_label_limit.to_string()),
            (
                "web.write.label-name-length-limit",
                self.write_label_name_length_limit.to_string(),
            ),
            (
                "web.write.label-value-length-limit",
                self.write_label_value_length_limit.to_string(),
            ),
            ("web.read-timeout", self.read_timeout.clone()),
            ("web.read-header-timeout", self.read_header_timeout.clone()),
            ("web.max-connections", self.max_connections.to_string()),
            ("query.lookback-delta", self.lookback_delta.clone()),
            ("query.timeout", self.query_timeout.clone()),
            ("query.max-samples", self.query_max_samples.to_string()),
            (
                "query.range-cache-size",
                self.query_range_cache_size.clone(),
            ),
            (
                "query.max-concurrency",
                self.query_max_concurrency.to_string(),
            ),
            (
                "scrape.adjust-timestamps",
                self.scrape_adjust_timestamps.to_string(),
            ),
            (
                "scrape.timestamp-tolerance",
                self.scrape_timestamp_tolerance.clone(),
            ),
            ("log.level", self.log_level.clone()),
            (
                "log.format",
                match self.prom.log_format {
                    Some(f) => format!("{f:?}").to_lowercase(),
                    None => String::new(),
                },
            ),
            (
                "web.external-url",
                self.prom.external_url.clone().unwrap_or_default(),
            ),
            (
                "web.route-prefix",
                self.prom.route_prefix.clone().unwrap_or_default(),
            ),
            (
                "web.enable-admin-api",
                self.prom.enable_admin_api.to_string(),
            ),
            ("web.page-title", self.prom.page_title.clone()),
            ("web.cors.origin", self.prom.cors_origin.clone()),
            (
                "storage.tsdb.retention",
                self.prom.retention_deprecated.clone().unwrap_or_default(),
            ),
            ("enable-feature", self.prom.features.join(",")),
            (
                "storage.tsdb.no-lockfile",
                (self.prom.no_lockfile || !self.prom.use_lockfile).to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(
            self.accepted
                .given
                .iter()
                .map(|(a, v)| (a.name.to_string(), v.clone())),
        )
        .collect()
    }

    /// `--storage.tsdb.retention.time` as Prometheus resolves it: the flag,
    /// else the deprecated `--storage.tsdb.retention`, else 15d unless a
    /// size bound is given (then `0s`, no time bound).
    pub fn retention_time(&self) -> String {
        if let Some(t) = &self.retention_time {
            return t.clone();
        }
        if let Some(t) = &self.prom.retention_deprecated {
            return t.clone();
        }
        let size = self.retention_size.trim();
        if size.is_empty() || size == "0" {
            DEFAULT_RETENTION.to_string()
        } else {
            "0s".to_string()
        }
    }
}

/// Prometheus's retention when no bound is given.
pub const DEFAULT_RETENTION: &str = "15d";

/// Where `up`, `down` and `env` find things, and how the pieces are reached.
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// Where `up` keeps its state file, logs, samples and Grafana's files.
    /// Default: `$SCRATCH/raymon` when SCRATCH is set, else `./raymon-data`.
    #[arg(long = "data-dir", env = "RAYMON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Ray's temp dir (`ray start --temp-dir`); sessions are found under it.
    /// Default: `/tmp/raymon-<user>/ray`, in a directory closed to other
    /// users (`raymon env` sets `RAY_TMPDIR` so that a notebook's
    /// `ray.init()` uses it too).
    #[arg(long = "ray-temp-dir")]
    pub ray_temp_dir: Option<PathBuf>,

    /// Where a taken default port moves to, `LOW-HIGH` (such as the ports a
    /// firewall opens); default: any free port the kernel hands out.
    #[arg(long = "port-range", value_parser = crate::launcher::ports::parse_range)]
    pub port_range: Option<(u16, u16)>,

    /// Port of Ray's dashboard (`ray start --dashboard-port`); `up` moves the
    /// default to a free port when it is taken. So do Grafana's and
    /// raymon's defaults, and Ray's GCS, dashboard agent, client server and
    /// metrics ports unless given after `--`.
    #[arg(long = "dashboard-port", default_value_t = 8265)]
    pub dashboard_port: u16,

    /// Where Grafana listens.
    #[arg(long = "grafana-listen-address", default_value = "127.0.0.1:3000")]
    pub grafana_listen: SocketAddr,

    /// The public URL of Grafana, as a browser reaches it. May contain
    /// `{port}`, then it is a pattern for every service (Ray's dashboard
    /// too), like `https://host/proxy/{port}`.
    #[arg(long = "public-url")]
    pub public_url: Option<String>,

    /// JupyterHub's address; with `JUPYTERHUB_SERVICE_PREFIX` set, services
    /// are reached at `{hub}{prefix}proxy/{port}`.
    #[arg(long = "jupyterhub-url", default_value = "https://jupyter.nersc.gov")]
    pub jupyterhub_url: String,

    /// Name of the Grafana datasource that points at raymon
    /// (`RAY_PROMETHEUS_NAME`).
    #[arg(long = "datasource-name", default_value = "raymon")]
    pub datasource_name: String,
}

/// How `up` runs Grafana.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GrafanaMode {
    /// `native` when `--grafana-bin` is given or a `grafana`/`grafana-server`
    /// is on PATH, else `shifter` when `shifter` is on PATH, else `builtin`.
    Auto,
    /// A `grafana` or `grafana-server` binary (PATH or `--grafana-bin`).
    Native,
    /// A container image through `shifter`, as on NERSC systems.
    Shifter,
    /// No Grafana process: raymon serves Ray's dashboards itself at
    /// `/d/<uid>/` and `/d-solo/<uid>/`, and Ray's Metrics tab embeds them.
    Builtin,
    /// No Grafana: provisioning is still written for one you run yourself.
    None,
}

/// Whether `up` protects raymon's API and Grafana's admin with passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Generated passwords, kept in `<data dir>/credentials.json` (mode
    /// 0600): basic auth on raymon's API, given to Grafana's datasource and
    /// to Ray (`RAY_PROMETHEUS_HEADERS`), and Grafana's admin password.
    Basic,
    /// No passwords: any user of the machine can query raymon.
    None,
}

impl GrafanaMode {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            GrafanaMode::Auto => "auto",
            GrafanaMode::Native => "native",
            GrafanaMode::Shifter => "shifter",
            GrafanaMode::Builtin => "builtin",
            GrafanaMode::None => "none",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    /// Do not start Ray: follow the newest session under `--ray-temp-dir`
    /// (a notebook calls `ray.init()` itself, after `raymon env`, whose
    /// ports it takes).
    #[arg(long)]
    pub attach: bool,

    /// The `ray` executable.
    #[arg(long = "ray-bin", env = "RAYMON_RAY_BIN", default_value = "ray")]
    pub ray_bin: PathBuf,

    /// `ray start --metrics-export-port`; unset lets Ray pick a free port
    /// (discovery finds it either way).
    #[arg(long = "metrics-export-port")]
    pub metrics_export_port: Option<u16>,

    /// How Grafana runs.
    #[arg(long, value_enum, default_value = "auto")]
    pub grafana: GrafanaMode,

    /// The Grafana binary for `--grafana native` (default: `grafana`, then
    /// `grafana-server`, on PATH).
    #[arg(long = "grafana-bin")]
    pub grafana_bin: Option<PathBuf>,

    /// Grafana's home (`--homepath`: holds `conf/defaults.ini` and `public/`);
    /// found next to the binary or in /usr/share/grafana when unset.
    #[arg(long = "grafana-home")]
    pub grafana_home: Option<PathBuf>,

    /// The image for `--grafana shifter`.
    #[arg(long = "grafana-image", default_value = "grafana/grafana-oss:9.4.3")]
    pub grafana_image: String,

    /// The `shifter` executable.
    #[arg(long = "shifter-bin", default_value = "shifter")]
    pub shifter_bin: PathBuf,

    /// Set Grafana's `serve_from_sub_path`: for a reverse proxy behind
    /// `--public-url` that does not strip the path (JupyterHub's does).
    #[arg(long = "grafana-serve-from-sub-path")]
    pub grafana_serve_from_sub_path: bool,

    /// How often raymon scrapes Ray (Ray's own config says 10s); also the
    /// datasource's `timeInterval`.
    #[arg(long = "scrape-interval", default_value = "10s")]
    pub scrape_interval: String,

    /// Forward everything raymon scrapes to a remote write receiver (a
    /// `remote_write` section with Prometheus's defaults in the config `up`
    /// writes): VictoriaMetrics' `/api/v1/write` or a cluster's
    /// `vminsert .../insert/0/prometheus/api/v1/write`, Mimir's
    /// `/api/v1/push`, Thanos Receive's `/api/v1/receive`. Repeatable.
    #[arg(long = "remote-write-url", value_name = "URL", value_parser = remote_write_url)]
    pub remote_write_urls: Vec<String>,

    /// How long each child may take to become ready.
    #[arg(long = "ready-timeout", default_value = "180s", value_parser = parse_secs)]
    pub ready_timeout: Duration,

    /// How long Grafana may take to become ready (default: --ready-timeout).
    /// A first start in a shifter container (image mount, database
    /// migrations on a shared file system) can take minutes.
    #[arg(long = "grafana-timeout", value_parser = parse_secs)]
    pub grafana_timeout: Option<Duration>,

    /// Passwords for raymon's API and Grafana's admin (ignored for raymon's
    /// API when --web.config.file is given: that file decides).
    #[arg(long, value_enum, default_value = "basic")]
    pub auth: AuthMode,

    /// How long a child may take to stop after SIGTERM before SIGKILL.
    #[arg(long = "stop-timeout", default_value = "30s", value_parser = parse_secs)]
    pub stop_timeout: Duration,

    #[command(flatten)]
    pub serve: ServeArgs,

    /// Arguments passed on to `ray start`.
    #[arg(last = true)]
    pub ray_args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// The data dir `raymon up` was started with.
    #[arg(long = "data-dir", env = "RAYMON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// How long to wait for everything to stop before SIGKILL.
    #[arg(long, default_value = "120s", value_parser = parse_secs)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The data dir `raymon up` was started with.
    #[arg(long = "data-dir", env = "RAYMON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    #[arg(long, value_enum, default_value = "text")]
    pub format: StatusFormat,
}

/// How `raymon status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// Lines for people.
    Text,
    /// One JSON object: `raymon_url`, `grafana_url`, `ray_dashboard_url`,
    /// `public_urls`, `credentials_file`, `pids`, `running`, `data_dir`.
    Json,
}

/// How `raymon env` prints the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    /// `export NAME='value'` lines.
    Shell,
    /// One JSON object.
    Json,
    /// `os.environ[...] = ...` lines for a notebook cell.
    Python,
}

#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    /// Where raymon listens (as given to `up`).
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9090")]
    pub listen_address: SocketAddr,

    /// As for `up`: with `basic`, the credentials are made now if `up` has
    /// not made them yet, so that the notebook's Ray gets
    /// `RAY_PROMETHEUS_HEADERS`.
    #[arg(long, value_enum, default_value = "basic")]
    pub auth: AuthMode,

    /// As for `up`, which decides where Ray finds "Grafana" (raymon itself
    /// with `builtin`); `auto` looks at PATH as `up` does.
    #[arg(long, value_enum, default_value = "auto")]
    pub grafana: GrafanaMode,

    #[arg(long, value_enum, default_value = "shell")]
    pub format: EnvFormat,
}

/// A path that may be empty, as Prometheus's `--web.config.file=""`.
fn any_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

/// Durations for launcher flags: Prometheus syntax (`90s`, `2m`).
fn parse_secs(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s).map_err(|e| e.to_string())
}

/// A `--remote-write-url`: an http(s) URL with a host.
fn remote_write_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{s:?} has no host"));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let cli =
            Cli::try_parse_from(std::iter::once("raymon").chain(args.iter().copied())).unwrap();
        cli.serve
    }

    #[test]
    fn timestamp_adjusting_is_on_by_default_and_can_be_turned_off() {
        let d = serve(&[]);
        assert!(d.scrape_adjust_timestamps);
        assert_eq!(d.scrape_timestamp_tolerance, "2ms");
        assert!(!serve(&["--scrape.adjust-timestamps=false"]).scrape_adjust_timestamps);
        assert!(serve(&["--scrape.adjust-timestamps"]).scrape_adjust_timestamps);
        let t = serve(&["--scrape.timestamp-tolerance=5ms"]);
        assert_eq!(t.scrape_timestamp_tolerance, "5ms");
        assert_eq!(
            t.prometheus_flags()["scrape.timestamp-tolerance"],
            "5ms".to_string()
        );
    }
}
