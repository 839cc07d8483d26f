//! The rest of Prometheus 2.42's command line: flags raymon acts on as
//! Prometheus does (external URL, route prefix, admin API, CORS, log format,
//! `--enable-feature`), and the table of flags it accepts without acting on
//! them, each warned about once at start-up with the reason. A Prometheus
//! command line (a container image's, a notebook's) thus starts raymon
//! unchanged. Knows flags and their words, not what serve does with them.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, ValueEnum};

/// Prometheus's default `--web.page-title`.
pub const DEFAULT_PAGE_TITLE: &str = "Prometheus Time Series Collection and Processing Server";

/// The Prometheus flags raymon implements besides its own set.
#[derive(Debug, Clone, Args)]
pub struct PromFlags {
    /// The URL under which raymon is reached from outside (through a reverse
    /// proxy such as JupyterHub's `/proxy/<port>/`). Its path, if any, is the
    /// default `--web.route-prefix`, and redirects point under it.
    #[arg(long = "web.external-url", value_name = "URL")]
    pub external_url: Option<String>,

    /// Path under which every endpoint is served (`<prefix>/api/v1/...`,
    /// `<prefix>/-/ready`, ...). Defaults to the path of --web.external-url;
    /// `/` when the proxy strips the path (JupyterHub's `/proxy/<port>/`).
    #[arg(long = "web.route-prefix", value_name = "PATH")]
    pub route_prefix: Option<String>,

    /// Enable `/api/v1/admin/tsdb/{snapshot,delete_series,clean_tombstones}`.
    #[arg(
        long = "web.enable-admin-api",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = ArgAction::Set
    )]
    pub enable_admin_api: bool,

    /// Title of raymon's HTML page (`<prefix>/graph`).
    #[arg(long = "web.page-title", default_value = DEFAULT_PAGE_TITLE)]
    pub page_title: String,

    /// Regex (fully anchored) of the `Origin`s whose pages may read API
    /// answers (CORS); `.*` allows any.
    #[arg(long = "web.cors.origin", default_value = ".*")]
    pub cors_origin: String,

    // Prometheus's help text opens with "[DEPRECATED]", which rustdoc would
    // read as a link, so it is given as `help` rather than a doc comment.
    #[arg(
        long = "storage.tsdb.retention",
        value_name = "DURATION",
        help = "[DEPRECATED] How long to keep samples; use --storage.tsdb.retention.time, \
                which wins when both are given."
    )]
    pub retention_deprecated: Option<String>,

    /// Log line format: `logfmt` or `json`, as Prometheus writes them.
    /// Default: raymon's human-readable lines.
    #[arg(long = "log.format", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Do not lock the data directory (`<path>/lock`), which otherwise keeps
    /// a second process from opening it.
    #[arg(
        long = "storage.tsdb.no-lockfile",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = ArgAction::Set
    )]
    pub no_lockfile: bool,

    /// Lock the data directory (Debian's spelling; raymon locks it unless
    /// --storage.tsdb.no-lockfile).
    #[arg(
        long = "storage.tsdb.use-lockfile",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = true,
        action = ArgAction::Set
    )]
    pub use_lockfile: bool,

    /// Comma-separated Prometheus feature names (repeatable). Each is either
    /// implemented, always on in raymon, or warned about at start-up.
    #[arg(long = "enable-feature", value_delimiter = ',', action = ArgAction::Append)]
    pub features: Vec<String>,
}

impl Default for PromFlags {
    fn default() -> PromFlags {
        PromFlags {
            external_url: None,
            route_prefix: None,
            enable_admin_api: false,
            page_title: DEFAULT_PAGE_TITLE.to_string(),
            cors_origin: ".*".to_string(),
            retention_deprecated: None,
            log_format: None,
            no_lockfile: false,
            use_lockfile: true,
            features: Vec::new(),
        }
    }
}

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// What `--enable-feature=<name>` does in raymon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Agent mode: scrape and forward only (serve sees
    /// [`Features::agent`]).
    Agent,
    /// `remote-write-receiver` (deprecated in 2.42): the same as
    /// `--web.enable-remote-write-receiver`.
    RemoteWriteReceiver,
    /// `${VAR}` in `global.external_labels` values from the environment.
    ExpandExternalLabels,
    /// On in raymon without the flag (in Prometheus 2.42 too, for the PromQL
    /// ones); the log line says so.
    AlwaysOn(&'static str),
    /// Not done by raymon: warned about with the reason.
    NotImplemented(&'static str),
    /// Not a 2.42 feature name (Prometheus warns too).
    Unknown,
}

/// Every feature name of Prometheus 2.42's `--enable-feature`, and what
/// raymon does with it.
pub fn feature(name: &str) -> Feature {
    match name {
        "agent" => Feature::Agent,
        "remote-write-receiver" => Feature::RemoteWriteReceiver,
        "promql-at-modifier" | "promql-negative-offset" => Feature::AlwaysOn(
            "permanently enabled (as in Prometheus 2.42), so the option is a no-op",
        ),
        "memory-snapshot-on-shutdown" => Feature::AlwaysOn(
            "raymon always writes a checkpoint of memory on shutdown, so a restart replays little",
        ),
        "new-service-discovery-manager" => {
            Feature::AlwaysOn("raymon has one discovery manager, which applies updates at once")
        }
        "exemplar-storage" => Feature::NotImplemented("raymon stores no exemplars"),
        "expand-external-labels" => Feature::ExpandExternalLabels,
        "promql-per-step-stats" => {
            Feature::NotImplemented("raymon's query answers carry no statistics")
        }
        "extra-scrape-metrics" => Feature::NotImplemented(
            "raymon does not write scrape_timeout_seconds, scrape_sample_limit or scrape_body_size_bytes",
        ),
        "auto-gomaxprocs" => Feature::NotImplemented(
            "raymon is not a Go program; TOKIO_WORKER_THREADS sets its scrape and HTTP threads",
        ),
        "no-default-scrape-port" => Feature::NotImplemented(
            "raymon adds the scheme's default port to target addresses without one",
        ),
        "native-histograms" => Feature::NotImplemented(
            "raymon scrapes the text formats, which carry no native histograms",
        ),
        _ => Feature::Unknown,
    }
}

/// The features given, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// `--enable-feature=agent`.
    pub agent: bool,
    /// `--enable-feature=remote-write-receiver`.
    pub remote_write_receiver: bool,
    /// `--enable-feature=expand-external-labels`.
    pub expand_external_labels: bool,
}

impl PromFlags {
    /// The features given, and the start-up lines they call for:
    /// `(is_warning, line)`.
    pub fn features(&self) -> (Features, Vec<(bool, String)>) {
        let mut f = Features::default();
        let mut lines = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for name in self.features.iter().map(|s| s.trim()) {
            if name.is_empty() || !seen.insert(name) {
                continue;
            }
            match feature(name) {
                Feature::Agent => {
                    f.agent = true;
                    lines.push((
                        false,
                        "--enable-feature=agent: agent mode, scraping and forwarding to \
                         remote_write only (the API refuses queries)"
                            .to_string(),
                    ));
                }
                Feature::RemoteWriteReceiver => {
                    f.remote_write_receiver = true;
                    lines.push((
                        true,
                        "--enable-feature=remote-write-receiver is deprecated; \
                         use --web.enable-remote-write-receiver"
                            .to_string(),
                    ));
                }
                Feature::ExpandExternalLabels => {
                    f.expand_external_labels = true;
                    lines.push((
                        false,
                        "--enable-feature=expand-external-labels: ${VAR} in external label values \
                         is replaced from the environment"
                            .to_string(),
                    ));
                }
                Feature::AlwaysOn(why) => {
                    lines.push((false, format!("--enable-feature={name}: {why}")))
                }
                Feature::NotImplemented(why) => lines.push((
                    true,
                    format!("--enable-feature={name} is accepted but has no effect: {why}"),
                )),
                Feature::Unknown => lines.push((
                    true,
                    format!("unknown option for --enable-feature: {name:?}"),
                )),
            }
        }
        (f, lines)
    }
}

/// What kind of value a flag takes, so that a bad one is refused as
/// Prometheus refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A switch (`--flag`, `--flag=true|false`).
    Bool,
    /// A Prometheus duration (`1m`, `2h`).
    Duration,
    /// A size with a unit (`512MB`).
    Bytes,
    /// An integer.
    Int,
    /// A float, as `5e7`.
    Float,
    /// Any text (a path).
    Text,
}

/// One Prometheus flag raymon accepts without acting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub name: &'static str,
    pub kind: Kind,
    /// Why it has no effect; the start-up warning says this.
    pub why: &'static str,
}

const fn accepted(name: &'static str, kind: Kind, why: &'static str) -> Accepted {
    Accepted { name, kind, why }
}

const NO_UI: &str = "raymon has no console templates or web UI assets";
const BLOCKS: &str =
    "raymon's store has no Prometheus blocks; it keeps a WAL, checkpoints and merged chunks";
const AGENT: &str = "raymon's agent mode does not use it (unsent segments are kept for --storage.remote.wal-retention)";
const NO_RULES: &str = "raymon evaluates no rules and sends no alerts";
const NO_REMOTE_READ: &str = "raymon does not serve the remote read API";

/// The one table of Prometheus 2.42 flags raymon accepts and does nothing
/// with (the visible flags of `prometheus --help-long`, Debian's
/// `use-lockfile` spellings and upstream's hidden ones). Implementing one
/// means moving it from here to a real flag.
pub const ACCEPTED: &[Accepted] = &[
    accepted("web.console.templates", Kind::Text, NO_UI),
    accepted("web.console.libraries", Kind::Text, NO_UI),
    accepted("web.local-assets", Kind::Text, NO_UI),
    accepted("web.user-assets", Kind::Text, NO_UI),
    accepted(
        "storage.tsdb.head-chunks-write-queue-size",
        Kind::Int,
        "raymon's head writes no chunks through a queue",
    ),
    accepted("storage.tsdb.min-block-duration", Kind::Duration, BLOCKS),
    accepted("storage.tsdb.max-block-duration", Kind::Duration, BLOCKS),
    accepted(
        "storage.tsdb.max-block-chunk-segment-size",
        Kind::Bytes,
        BLOCKS,
    ),
    accepted(
        "storage.tsdb.wal-segment-size",
        Kind::Bytes,
        "raymon's WAL sizes its own segments",
    ),
    accepted(
        "storage.tsdb.wal-compression",
        Kind::Bool,
        "raymon's WAL packs samples in its own format and is not snappy-compressed",
    ),
    accepted(
        "storage.tsdb.allow-overlapping-blocks",
        Kind::Bool,
        "deprecated in Prometheus, and raymon has no blocks",
    ),
    accepted("storage.agent.wal-compression", Kind::Bool, AGENT),
    accepted("storage.agent.wal-segment-size", Kind::Bytes, AGENT),
    accepted("storage.agent.retention.min-time", Kind::Duration, AGENT),
    accepted("storage.agent.retention.max-time", Kind::Duration, AGENT),
    accepted("storage.agent.use-lockfile", Kind::Bool, AGENT),
    accepted("storage.agent.no-lockfile", Kind::Bool, AGENT),
    accepted(
        "storage.remote.read-sample-limit",
        Kind::Float,
        NO_REMOTE_READ,
    ),
    accepted(
        "storage.remote.read-concurrent-limit",
        Kind::Int,
        NO_REMOTE_READ,
    ),
    accepted(
        "storage.remote.read-max-bytes-in-frame",
        Kind::Int,
        NO_REMOTE_READ,
    ),
    accepted("rules.alert.for-outage-tolerance", Kind::Duration, NO_RULES),
    accepted("rules.alert.for-grace-period", Kind::Duration, NO_RULES),
    accepted("rules.alert.resend-delay", Kind::Duration, NO_RULES),
    accepted(
        "alertmanager.notification-queue-capacity",
        Kind::Int,
        NO_RULES,
    ),
    accepted(
        "scrape.discovery-reload-interval",
        Kind::Duration,
        "raymon applies discovery updates to scraping at once",
    ),
];

/// The flags of [`ACCEPTED`] that were given on the command line, with
/// their values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptedFlags {
    pub given: Vec<(&'static Accepted, String)>,
}

impl AcceptedFlags {
    /// One start-up warning per flag given.
    pub fn warnings(&self) -> Vec<String> {
        self.given
            .iter()
            .map(|(a, _)| {
                format!(
                    "flag --{} is accepted for compatibility with Prometheus but has no effect: {}",
                    a.name, a.why
                )
            })
            .collect()
    }
}

const ACCEPTED_HEADING: &str = "Prometheus flags accepted without effect (each warned at start-up)";

fn check_value(kind: Kind) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync {
    move |s: &str| {
        let ok = match kind {
            Kind::Bool => matches!(s, "true" | "false"),
            Kind::Duration => crate::config::parse_duration(s).is_ok(),
            Kind::Bytes => crate::config::parse_size(s).is_ok(),
            Kind::Int => s.parse::<i64>().is_ok(),
            Kind::Float => crate::model::goparse::parse_float(s).is_ok(),
            Kind::Text => true,
        };
        if ok {
            Ok(s.to_string())
        } else {
            Err(format!("invalid {kind:?} value {s:?}").to_lowercase())
        }
    }
}

impl Args for AcceptedFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for a in ACCEPTED {
            let mut arg = Arg::new(a.name)
                .long(a.name)
                .help(format!("No effect in raymon: {}.", a.why))
                .help_heading(ACCEPTED_HEADING)
                .hide_short_help(true)
                .value_name(match a.kind {
                    Kind::Bool => "BOOL",
                    Kind::Duration => "DURATION",
                    Kind::Bytes => "BYTES",
                    Kind::Int | Kind::Float => "NUMBER",
                    Kind::Text => "PATH",
                })
                .value_parser(clap::builder::ValueParser::new(check_value(a.kind)))
                .action(ArgAction::Set);
            if a.kind == Kind::Bool {
                arg = arg
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true");
            }
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for AcceptedFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut s = AcceptedFlags::default();
        s.update_from_arg_matches(m)?;
        Ok(s)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        for a in ACCEPTED {
            if m.value_source(a.name) != Some(ValueSource::CommandLine) {
                continue;
            }
            let v = m.get_one::<String>(a.name).cloned().unwrap_or_default();
            self.given.retain(|(g, _)| g.name != a.name);
            self.given.push((a, v));
        }
        Ok(())
    }
}

/// kingpin's extra help flags, which Prometheus documents (`--help-long`,
/// `--help-man`), mean `--help` here.
pub fn normalize_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| {
            if a == "--help-long" || a == "--help-man" {
                "--help".into()
            } else {
                a
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_of_2_42_are_all_known() {
        for name in [
            "agent",
            "exemplar-storage",
            "expand-external-labels",
            "memory-snapshot-on-shutdown",
            "promql-at-modifier",
            "promql-negative-offset",
            "promql-per-step-stats",
            "remote-write-receiver",
            "extra-scrape-metrics",
            "new-service-discovery-manager",
            "auto-gomaxprocs",
            "no-default-scrape-port",
            "native-histograms",
        ] {
            assert_ne!(feature(name), Feature::Unknown, "{name}");
        }
        assert_eq!(feature("warp-drive"), Feature::Unknown);
    }

    #[test]
    fn features_split_dedupe_and_resolve() {
        let p = PromFlags {
            features: vec![
                "agent".into(),
                "remote-write-receiver".into(),
                "agent".into(),
                "exemplar-storage".into(),
                "".into(),
            ],
            ..PromFlags::default()
        };
        let (f, lines) = p.features();
        assert!(f.agent && f.remote_write_receiver);
        assert_eq!(lines.len(), 3, "{lines:?}");
        // Agent mode is implemented: said, not warned about.
        assert!(!lines[0].0 && lines[0].1.contains("agent mode"));
        assert!(lines[1..].iter().all(|(warn, _)| *warn));
        assert!(lines[2].1.contains("exemplar-storage"));
    }

    #[test]
    fn accepted_table_has_no_duplicates() {
        let mut names: Vec<_> = ACCEPTED.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ACCEPTED.len());
    }
}
