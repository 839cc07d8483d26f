//! Ray for `raymon up`: the `ray start --head --block` command line, the
//! files Ray writes under its temp dir (sessions, generated dashboards, the
//! discovery file), and the scrape config that follows them. Knows Ray's
//! layout and flags; does not start processes itself.

use std::path::{Path, PathBuf};

/// The discovery file Ray keeps in its temp dir as a link to (or a copy of)
/// the current session's file, repaired on every rewrite and re-pointed when
/// a new session starts.
pub const DISCOVERY_FILE: &str = "prom_metrics_service_discovery.json";

/// Flags that `up` sets itself and that may not come after `--`.
const OWNED_FLAGS: &[&str] = &[
    "--head",
    "--block",
    "--address",
    "--temp-dir",
    "--dashboard-port",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{0}` is set by raymon up; use raymon's own flag instead of passing it after --")]
    OwnedFlag(String),
    #[error(
        "Ray temp dir {path} is too long for Ray's unix sockets (at most {max} bytes); \
         choose a shorter --ray-temp-dir"
    )]
    TempDirTooLong { path: PathBuf, max: usize },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `ray start` gets.
#[derive(Debug, Clone)]
pub struct StartSpec {
    pub temp_dir: PathBuf,
    pub dashboard_port: u16,
    pub metrics_export_port: Option<u16>,
    /// Passed through from after `--`.
    pub extra: Vec<String>,
}

/// The arguments of `ray start` (without the program).
pub fn start_args(spec: &StartSpec) -> Result<Vec<String>, Error> {
    for a in &spec.extra {
        let name = a.split('=').next().unwrap_or(a);
        if OWNED_FLAGS.contains(&name) {
            return Err(Error::OwnedFlag(name.to_string()));
        }
    }
    let mut args = vec![
        "start".to_string(),
        "--head".to_string(),
        "--block".to_string(),
        format!("--temp-dir={}", spec.temp_dir.display()),
        format!("--dashboard-port={}", spec.dashboard_port),
    ];
    if let Some(p) = spec.metrics_export_port {
        args.push(format!("--metrics-export-port={p}"));
    }
    args.extend(spec.extra.iter().cloned());
    Ok(args)
}

/// The last value of `flag` (`--flag=v` or `--flag v`) in `ray start`
/// arguments, as click reads them.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let mut it = args.iter();
    let mut value = None;
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            value = Some(v.to_string());
        } else if a == flag {
            value = it.next().cloned();
        }
    }
    value
}

/// The host to probe Ray's dashboard on: `--dashboard-host` from the extra
/// arguments unless it is a wildcard, else loopback.
pub fn dashboard_host(extra: &[String]) -> String {
    match flag_value(extra, "--dashboard-host").as_deref() {
        None | Some("0.0.0.0") | Some("::") | Some("") | Some("localhost") => {
            "127.0.0.1".to_string()
        }
        Some(h) => h.to_string(),
    }
}

/// Ray's temp dir when none is given: one per user (`/tmp/raymon-<user>/ray`),
/// so that users of one login node do not share sessions and sockets (Ray's
/// own `/tmp/ray` is shared, and `session_latest` there is whoever started
/// last). Ray opens its temp dir to everyone, so it sits in a directory of
/// the user's that `up` and `env` keep closed; a notebook's `ray.init()`
/// uses it when `RAY_TMPDIR` names that directory ([`ray_tmpdir`]).
pub fn default_temp_dir(user: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/raymon-{user}/ray"))
}

/// `RAY_TMPDIR` for a temp dir: Ray's default temp dir is `$RAY_TMPDIR/ray`
/// (`_common/utils.py`, `get_default_ray_temp_dir`), which is where
/// `ray.init()` starts its sessions and where `ray.init(address="auto")`
/// reads `ray_current_cluster`. `None` when the dir is not named `ray`.
pub fn ray_tmpdir(temp_dir: &Path) -> Option<&Path> {
    (temp_dir.file_name()? == "ray")
        .then(|| temp_dir.parent())
        .flatten()
}

/// The GCS address `ray start` wrote to `ray_current_cluster` in its temp
/// dir (`scripts.py`, `write_ray_address`): what `ray.init(address="auto")`
/// connects to.
pub fn current_cluster(temp_dir: &Path) -> Option<String> {
    let s = std::fs::read_to_string(temp_dir.join("ray_current_cluster")).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Longest unix socket path Ray accepts on Linux (`_private/utils.py`,
/// `validate_socket_filepath`: 108 - 1).
const SOCKET_PATH_MAX: usize = 107;

/// What Ray puts after the temp dir in its longest socket path
/// (`_private/node.py`: the session dir `session_<date>_<time>_<usec>_<pid>`,
/// then `sockets/plasma_store` from `_prepare_socket_file`), with a 7-digit
/// PID.
const SOCKET_SUFFIX: &str = "/session_2026-11-26_03-35-11_178048_1234567/sockets/plasma_store";

/// Refuses a temp dir under which Ray's socket paths would be too long: Ray
/// would fail only after its GCS started.
pub fn check_socket_room(temp_dir: &Path) -> Result<(), Error> {
    let len = temp_dir.as_os_str().len();
    if len + SOCKET_SUFFIX.len() > SOCKET_PATH_MAX {
        return Err(Error::TempDirTooLong {
            path: temp_dir.to_path_buf(),
            max: SOCKET_PATH_MAX - SOCKET_SUFFIX.len(),
        });
    }
    Ok(())
}

/// The session `session_latest` points at, as an absolute path.
pub fn session_latest(temp_dir: &Path) -> Option<PathBuf> {
    let link = temp_dir.join("session_latest");
    let target = std::fs::read_link(&link).ok()?;
    let abs = if target.is_absolute() {
        target
    } else {
        temp_dir.join(target)
    };
    abs.is_dir().then_some(abs)
}

/// Removes `ray_current_cluster` from a temp dir whose Ray has stopped
/// (`ray stop` does so for Ray's default temp dir, `scripts.py`,
/// `reset_ray_address`).
pub fn forget_cluster(temp_dir: &Path) {
    let _ = std::fs::remove_file(temp_dir.join("ray_current_cluster"));
}

/// Where Ray writes its generated `grafana/` and `prometheus/` trees:
/// `RAY_METRICS_OUTPUT_ROOT` when set (Ray reads it from the environment
/// `ray start` inherits from us), else the session's `metrics/`.
fn metrics_root(session: &Path) -> PathBuf {
    match std::env::var_os("RAY_METRICS_OUTPUT_ROOT") {
        Some(root) if !root.is_empty() => PathBuf::from(root),
        _ => session.join("metrics"),
    }
}

/// Ray's generated dashboards in a session
/// (`RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR` overrides, as in Ray).
pub fn dashboards_dir(session: &Path) -> PathBuf {
    match std::env::var_os("RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => metrics_root(session).join("grafana/dashboards"),
    }
}

/// Ray's generated Prometheus config in a session (written with the
/// dashboards, when Ray's dashboard is up).
pub fn prometheus_yml(session: &Path) -> PathBuf {
    metrics_root(session).join("prometheus/prometheus.yml")
}

/// Copies `*.json` from `from` to `to`, replacing what was there; returns
/// how many were copied.
pub fn copy_dashboards(from: &Path, to: &Path) -> std::io::Result<usize> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(".json")) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Ok(0);
    }
    std::fs::create_dir_all(to)?;
    for name in &names {
        // Copy then rename, so Grafana never reads half a dashboard.
        let tmp = to.join(format!(".{}.tmp", name.to_string_lossy()));
        std::fs::copy(from.join(name), &tmp)?;
        std::fs::rename(&tmp, to.join(name))?;
    }
    Ok(names.len())
}

/// raymon's scrape config for Ray: Ray's own (job `ray`, its scrape
/// interval), but with file_sd on the temp dir's discovery file, which
/// follows every new session, where Ray's names one session's file.
pub fn prometheus_config(
    temp_dir: &Path,
    scrape_interval: &str,
    remote_write: &[String],
) -> String {
    let file = temp_dir.join(DISCOVERY_FILE);
    let mut s = format!(
        "# Written by raymon up: Ray's scrape config, following the newest session.\n\
         global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n\
         scrape_configs:\n- job_name: ray\n  file_sd_configs:\n  - files:\n    - '{}'\n    refresh_interval: 5s\n",
        file.display().to_string().replace('\'', "''")
    );
    if !remote_write.is_empty() {
        s.push_str("remote_write:\n");
        for url in remote_write {
            s.push_str(&format!("- url: '{}'\n", url.replace('\'', "''")));
        }
    }
    s
}

/// Writes [`prometheus_config`] to `path`.
pub fn write_prometheus_config(
    path: &Path,
    temp_dir: &Path,
    scrape_interval: &str,
    remote_write: &[String],
) -> Result<(), Error> {
    std::fs::write(
        path,
        prometheus_config(temp_dir, scrape_interval, remote_write),
    )
    .map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Follows `session_latest`: copies each new session's dashboards once
/// they exist.
pub struct SessionFollower {
    temp_dir: PathBuf,
    dest: PathBuf,
    /// The session whose dashboards were copied last.
    copied: Option<PathBuf>,
}

impl SessionFollower {
    pub fn new(temp_dir: &Path, dest: &Path) -> SessionFollower {
        SessionFollower {
            temp_dir: temp_dir.to_path_buf(),
            dest: dest.to_path_buf(),
            copied: None,
        }
    }

    /// Checks for a new session; returns it when its dashboards were copied.
    pub fn poll(&mut self) -> Option<PathBuf> {
        let session = session_latest(&self.temp_dir)?;
        if self.copied.as_ref() == Some(&session) {
            return None;
        }
        match copy_dashboards(&dashboards_dir(&session), &self.dest) {
            Ok(n) if n > 0 => {
                self.copied = Some(session.clone());
                Some(session)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_write_urls_become_sections_prometheus_parses() {
        let urls = vec![
            "http://vminsert:8480/insert/0/prometheus/api/v1/write".to_string(),
            "https://mimir.example/api/v1/push".to_string(),
        ];
        let text = prometheus_config(Path::new("/tmp/ray"), "10s", &urls);
        let cfg = crate::config::parse(&text, "up.yml").unwrap();
        let got: Vec<&str> = cfg.remote_write.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(got, urls.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            cfg.remote_write[0].queue_config,
            crate::config::QueueConfig::default()
        );
        let none = prometheus_config(Path::new("/tmp/ray"), "10s", &[]);
        assert!(
            crate::config::parse(&none, "up.yml")
                .unwrap()
                .remote_write
                .is_empty()
        );
    }

    #[test]
    fn owned_flags_are_refused() {
        let spec = StartSpec {
            temp_dir: "/tmp/ray".into(),
            dashboard_port: 8265,
            metrics_export_port: None,
            extra: vec!["--temp-dir=/x".into()],
        };
        assert!(matches!(start_args(&spec), Err(Error::OwnedFlag(f)) if f == "--temp-dir"));
    }

    #[test]
    fn dashboard_host_defaults_to_loopback() {
        assert_eq!(dashboard_host(&[]), "127.0.0.1");
        assert_eq!(
            dashboard_host(&["--dashboard-host=0.0.0.0".into()]),
            "127.0.0.1"
        );
        assert_eq!(
            dashboard_host(&["--dashboard-host".into(), "10.0.0.5".into()]),
            "10.0.0.5"
        );
    }
}
