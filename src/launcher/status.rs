//! `raymon status`: where the stack of a running `raymon up` is reached and
//! which processes it has, read from the files `up` keeps in its data dir
//! (the URLs written here once everything is ready, the PIDs in the
//! supervisor's state file). Knows nothing of how the stack starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::supervisor::State;
use crate::cli::flags::StatusFormat;

/// The file under the data dir that `up` writes once the stack is ready.
pub const STACK_FILE: &str = "raymon-stack.json";

/// Where the stack is reached, as `up` printed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// raymon as clients on this host reach it.
    pub raymon_url: String,
    /// Grafana on this host, if `up` runs one.
    pub grafana_url: Option<String>,
    /// Ray's dashboard on this host.
    pub ray_dashboard_url: Option<String>,
    /// What a browser opens (JupyterHub's proxy, `--public-url`).
    pub public_urls: PublicUrls,
    /// The passwords, if `up` made them.
    pub credentials_file: Option<PathBuf>,
    /// Whether raymon's API wants the credentials (Ray got
    /// `RAY_PROMETHEUS_HEADERS`).
    #[serde(default)]
    pub api_auth: bool,
    /// The addresses `up` listens on, after any port moved.
    #[serde(default)]
    pub listen: Option<Listen>,
    /// Ray's temp dir.
    #[serde(default)]
    pub ray_temp_dir: Option<PathBuf>,
    /// The GCS address of the Ray `up` started (none with `--attach`).
    #[serde(default)]
    pub ray_address: Option<String>,
}

/// Where raymon, Grafana and Ray's dashboard listen: what `up` settled, or
/// what `raymon env` promised a notebook's Ray (kept in [`ENV_FILE`] for the
/// `up --attach` that follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listen {
    pub raymon: SocketAddr,
    pub grafana: SocketAddr,
    pub dashboard_port: u16,
}

/// The file under the data dir where `raymon env` keeps the ports it gave a
/// notebook, when no `up` ran yet.
pub const ENV_FILE: &str = "raymon-env.json";

impl Listen {
    pub fn write(&self, data: &Path) -> std::io::Result<()> {
        let tmp = data.join(format!("{ENV_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(&tmp, data.join(ENV_FILE))
    }

    /// What `raymon env` promised, if it did.
    pub fn promised(data: &Path) -> Option<Listen> {
        let text = std::fs::read_to_string(data.join(ENV_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicUrls {
    pub grafana: Option<String>,
    pub ray_dashboard: Option<String>,
}

impl Stack {
    pub fn write(&self, data: &Path) -> std::io::Result<()> {
        let tmp = data.join(format!("{STACK_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(&tmp, data.join(STACK_FILE))
    }

    pub fn read(data: &Path) -> Option<Stack> {
        let text = std::fs::read_to_string(data.join(STACK_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn remove(data: &Path) {
        let _ = std::fs::remove_file(data.join(STACK_FILE));
    }
}

/// `raymon status --format json`: the stack's keys, with `running`,
/// `data_dir` and the live PIDs by name (`up`, then each child).
#[derive(Debug, Serialize)]
pub struct Report {
    pub data_dir: PathBuf,
    pub running: bool,
    #[serde(flatten)]
    pub stack: Stack,
    pub pids: BTreeMap<String, u32>,
}

/// What `raymon status` reports for a data dir; `running` is whether its
/// `up` process is alive and has said its stack is ready.
pub fn report(data: &Path) -> Report {
    let state = State::read(data).unwrap_or_default();
    let up = state.up.filter(|p| p.alive());
    let stack = Stack::read(data);
    let mut pids = BTreeMap::new();
    if let Some(p) = up {
        pids.insert("up".to_string(), p.pid);
    }
    for (name, p) in state.children.iter().filter(|(_, p)| p.alive()) {
        pids.insert(name.clone(), p.pid);
    }
    Report {
        data_dir: data.to_path_buf(),
        running: up.is_some() && stack.is_some(),
        stack: stack.unwrap_or_default(),
        pids,
    }
}

/// The report as `format` prints it, ending with a newline.
pub fn render(r: &Report, format: StatusFormat) -> String {
    match format {
        StatusFormat::Json => {
            format!("{}\n", serde_json::to_string_pretty(r).unwrap_or_default())
        }
        StatusFormat::Text if !r.running => match r.pids.get("up") {
            // Alive, but it has not said its stack is ready yet.
            Some(pid) => format!(
                "raymon up (process {pid}) with data dir {} is starting\n",
                r.data_dir.display()
            ),
            None => format!(
                "no raymon up is running with data dir {}\n",
                r.data_dir.display()
            ),
        },
        StatusFormat::Text => {
            let s = &r.stack;
            let mut out = format!(
                "raymon up is running (data dir {}).\n",
                r.data_dir.display()
            );
            let mut line = |k: &str, v: Option<&String>| {
                if let Some(v) = v {
                    out.push_str(&format!("  {k:<24} {v}\n"));
                }
            };
            line("raymon:", Some(&s.raymon_url));
            line("Grafana:", s.grafana_url.as_ref());
            line("Ray dashboard:", s.ray_dashboard_url.as_ref());
            line("Grafana (browser):", s.public_urls.grafana.as_ref());
            line(
                "Ray dashboard (browser):",
                s.public_urls.ray_dashboard.as_ref(),
            );
            let creds = s.credentials_file.as_ref().map(|p| p.display().to_string());
            line("credentials:", creds.as_ref());
            let pids: Vec<String> = r.pids.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!("  {:<24} {}\n", "processes:", pids.join(", ")));
            out
        }
    }
}
