//! Grafana for `raymon up`: the provisioning written under the data dir
//! (from the repo's `grafana/` templates), the command line for a native
//! binary or a shifter container, and the health wait. Knows Grafana's
//! files and flags; does not start processes itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::auth::{self, Login};

const INI_TEMPLATE: &str = include_str!("../../grafana/grafana.ini");
const DATASOURCE_TEMPLATE: &str = include_str!("../../grafana/provisioning/datasources/raymon.yml");
const DASHBOARDS_TEMPLATE: &str = include_str!("../../grafana/provisioning/dashboards/ray.yml");

/// Where Grafana's files live inside a shifter container: the data dir's
/// `grafana/` mounted as a volume. shifter refuses user volumes under
/// `/var` and `/etc` (NERSC/shifter `src/VolumeMap.c`,
/// `validateVolumeMap_userRequest`), so the image's own `/var/lib/grafana`
/// cannot be one; every `GF_PATHS_*` points here instead.
pub const CONTAINER_DIR: &str = "/grafana";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no grafana or grafana-server on PATH; pass --grafana-bin, or --grafana none")]
    NoBinary,
    #[error("template value {0} was not filled in")]
    Unfilled(String),
    #[error(transparent)]
    Private(#[from] auth::Error),
}

/// Grafana's directory: `host` on this machine, `view` as Grafana sees it
/// (the same, or the container path of the volume).
#[derive(Debug, Clone)]
pub struct Layout {
    pub host: PathBuf,
    pub view: PathBuf,
}

impl Layout {
    pub fn native(data_dir: &Path) -> Layout {
        let host = data_dir.join("grafana");
        Layout {
            view: host.clone(),
            host,
        }
    }

    pub fn container(data_dir: &Path) -> Layout {
        Layout {
            host: data_dir.join("grafana"),
            view: PathBuf::from(CONTAINER_DIR),
        }
    }

    pub fn ini(&self) -> PathBuf {
        self.host.join("grafana.ini")
    }

    pub fn dashboards(&self) -> PathBuf {
        self.host.join("dashboards")
    }

    fn view_of(&self, sub: &str) -> String {
        self.view.join(sub).display().to_string()
    }
}

/// The values the templates take.
#[derive(Debug, Clone)]
pub struct Settings {
    pub datasource_name: String,
    /// raymon as Grafana's server reaches it.
    pub raymon_url: String,
    pub scrape_interval: String,
    pub http_addr: String,
    pub http_port: u16,
    pub root_url: String,
    pub serve_from_sub_path: bool,
    /// raymon's basic-auth user, for the datasource.
    pub raymon_login: Option<Login>,
    /// Grafana's admin, set at its first start.
    pub admin: Option<Login>,
}

fn vars(layout: &Layout, s: &Settings) -> Vec<(&'static str, String)> {
    vec![
        ("RAYMON_GRAFANA_ADDR", s.http_addr.clone()),
        ("RAYMON_GRAFANA_PORT", s.http_port.to_string()),
        ("RAYMON_GRAFANA_ROOT_URL", s.root_url.clone()),
        (
            "RAYMON_GRAFANA_SERVE_FROM_SUB_PATH",
            s.serve_from_sub_path.to_string(),
        ),
        ("RAYMON_GRAFANA_DIR", layout.view.display().to_string()),
        ("RAYMON_DATASOURCE_NAME", yaml_dq(&s.datasource_name)),
        ("RAYMON_URL", yaml_dq(&s.raymon_url)),
        ("RAYMON_SCRAPE_INTERVAL", yaml_dq(&s.scrape_interval)),
    ]
}

/// Escapes for the inside of a double-quoted YAML scalar.
fn yaml_dq(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Replaces every `${NAME}`; a `${RAYMON_...}` left over is an error.
pub fn fill(template: &str, vars: &[(&str, String)]) -> Result<String, Error> {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    if let Some(i) = out.find("${RAYMON_") {
        let end = out[i..].find('}').map_or(out.len(), |e| i + e + 1);
        return Err(Error::Unfilled(out[i..end].to_string()));
    }
    Ok(out)
}

/// The three provisioning files, as (path under `layout.host`, content).
pub fn render(layout: &Layout, s: &Settings) -> Result<Vec<(PathBuf, String)>, Error> {
    let v = vars(layout, s);
    let mut ini = fill(INI_TEMPLATE, &v)?;
    if let Some(admin) = &s.admin {
        // Without them Grafana's first start makes admin/admin, which any
        // user of the node could log in with. Generated passwords are
        // letters and digits, which need no quoting in an ini value.
        ini = ini.replacen(
            "[security]\n",
            &format!(
                "[security]\nadmin_user = {}\nadmin_password = {}\n",
                admin.user, admin.password
            ),
            1,
        );
    }
    let mut datasource = fill(DATASOURCE_TEMPLATE, &v)?;
    if let Some(login) = &s.raymon_login {
        // Keys of the datasource list item in the template (4 spaces).
        datasource.push_str(&format!(
            "    basicAuth: true\n    basicAuthUser: \"{}\"\n    secureJsonData:\n      \
             basicAuthPassword: \"{}\"\n",
            yaml_dq(&login.user),
            yaml_dq(&login.password)
        ));
    }
    Ok(vec![
        (PathBuf::from("grafana.ini"), ini),
        (
            PathBuf::from("provisioning/datasources/raymon.yml"),
            datasource,
        ),
        (
            PathBuf::from("provisioning/dashboards/ray.yml"),
            fill(DASHBOARDS_TEMPLATE, &v)?,
        ),
    ])
}

/// Writes the provisioning and makes Grafana's data, plugins, logs and
/// dashboards directories.
pub fn write(layout: &Layout, s: &Settings) -> Result<(), Error> {
    let mk =
        |p: PathBuf| std::fs::create_dir_all(&p).map_err(|source| Error::Write { path: p, source });
    for d in [
        "data",
        "logs",
        "plugins",
        "dashboards",
        "provisioning/datasources",
        "provisioning/dashboards",
        "provisioning/plugins",
        "provisioning/alerting",
        "provisioning/notifiers",
    ] {
        mk(layout.host.join(d))?;
    }
    // The ini and the datasource may hold passwords: the user's alone.
    for (rel, text) in render(layout, s)? {
        auth::write_private(&layout.host.join(rel), text.as_bytes())?;
    }
    Ok(())
}

/// A program with its arguments and the environment it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl CommandLine {
    pub fn to_command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// The command as a shell line, for printing.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", sh(v)))
            .collect();
        parts.push(sh(&self.program.display().to_string()));
        parts.extend(self.args.iter().map(|a| sh(a)));
        parts.join(" ")
    }
}

fn sh(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `GF_PATHS_*` override both grafana.ini and the image's own `ENV`, so the
/// paths are given here too.
fn paths_env(layout: &Layout) -> Vec<(String, String)> {
    [
        ("GF_PATHS_CONFIG", "grafana.ini"),
        ("GF_PATHS_DATA", "data"),
        ("GF_PATHS_LOGS", "logs"),
        ("GF_PATHS_PLUGINS", "plugins"),
        ("GF_PATHS_PROVISIONING", "provisioning"),
    ]
    .into_iter()
    .map(|(k, sub)| (k.to_string(), layout.view_of(sub)))
    .collect()
}

/// The first `grafana` (then `grafana-server`) in `path` (a PATH value).
pub fn find_binary(path: &str) -> Option<PathBuf> {
    ["grafana", "grafana-server"]
        .into_iter()
        .find_map(|name| which(Path::new(name), path))
}

/// `program` as the shell finds it: itself when it names a directory,
/// else the first file of that name in `path` (a PATH value).
pub fn which(program: &Path, path: &str) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Grafana's home: the binary's `..` when it holds `conf/defaults.ini`
/// (a tarball), else the packages' `/usr/share/grafana`.
pub fn find_home(bin: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.to_path_buf());
    let candidates = [
        real.parent().and_then(Path::parent).map(Path::to_path_buf),
        Some(PathBuf::from("/usr/share/grafana")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|c| c.join("conf/defaults.ini").is_file())
}

/// `grafana server --homepath H --config C` (or `grafana-server ...`).
pub fn native_command(bin: &Path, home: Option<&Path>, layout: &Layout) -> CommandLine {
    let mut args = Vec::new();
    if bin.file_name().is_some_and(|n| n == "grafana") {
        args.push("server".to_string());
    }
    if let Some(h) = home {
        args.push(format!("--homepath={}", h.display()));
    }
    args.push(format!("--config={}", layout.ini().display()));
    CommandLine {
        program: bin.to_path_buf(),
        args,
        env: paths_env(layout),
    }
}

/// `shifter --image=I --volume=<data>/grafana:/grafana --env=GF_PATHS_...
/// /run.sh`: the image's own start script, which runs Grafana from
/// `GF_PATHS_HOME` with the `GF_PATHS_*` given here, whatever its version.
pub fn shifter_command(shifter: &Path, image: &str, layout: &Layout) -> CommandLine {
    let mut args = vec![
        format!("--image={image}"),
        format!(
            "--volume={}:{}",
            layout.host.display(),
            layout.view.display()
        ),
    ];
    args.extend(
        paths_env(layout)
            .into_iter()
            .map(|(k, v)| format!("--env={k}={v}")),
    );
    args.push("/run.sh".to_string());
    CommandLine {
        program: shifter.to_path_buf(),
        args,
        env: Vec::new(),
    }
}

/// Healthy as Ray's dashboard judges it: 200, `application/json`, and
/// `"database": "ok"`.
pub async fn health(client: &reqwest::Client, base: &str) -> Result<(), String> {
    let url = format!("{base}/api/health");
    let r = client
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = r.status();
    let json_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = r.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() || !json_type {
        return Err(format!("{url} answered {status}: {body}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    if v["database"] == "ok" {
        Ok(())
    } else {
        Err(format!("database not ok: {body}"))
    }
}
