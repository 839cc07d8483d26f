//! What `up` decides before starting anything: public URLs, the notebook
//! environment, which Grafana runs and how (native, shifter, none, with its
//! image pulled), and the ports each part gets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::flags::{EnvArgs, GrafanaMode, StackArgs, UpArgs};
use crate::launcher::auth::{self, Credentials, Login};
use crate::launcher::env::{ray_env, render};
use crate::launcher::grafana::{self, CommandLine, Layout};
use crate::launcher::ports::{Need, Ports};
use crate::launcher::ray::{self};
use crate::launcher::shifter;
use crate::launcher::urls::{UrlInputs, Urls};

use super::*;

/// The URLs for these flags, with `JUPYTERHUB_SERVICE_PREFIX` as given.
pub fn urls_for(stack: &StackArgs, raymon: SocketAddr, service_prefix: Option<&str>) -> Urls {
    Urls::build(&UrlInputs {
        public_url: stack.public_url.as_deref(),
        jupyterhub_url: &stack.jupyterhub_url,
        service_prefix,
        raymon,
        grafana: stack.grafana_listen,
        dashboard_port: stack.dashboard_port,
    })
}

pub(super) fn service_prefix() -> Option<String> {
    std::env::var("JUPYTERHUB_SERVICE_PREFIX").ok()
}

/// `raymon env`'s output.
/// With the data dir's credentials, if `up` made some there.
pub fn env_text(args: &EnvArgs, service_prefix: Option<&str>) -> String {
    let urls = urls_for(&args.stack, args.listen_address, service_prefix);
    let data = data_dir_from_env(args.stack.data_dir.as_deref());
    let headers = auth::load(&data)
        .ok()
        .flatten()
        .map(|c| auth::ray_prometheus_headers(&c.raymon));
    render(
        &ray_env(&urls, &args.stack.datasource_name, headers.as_deref()),
        args.format,
    )
}

/// Prints `raymon env`'s output for the process environment.
pub fn print_env(args: &EnvArgs) {
    print!("{}", env_text(args, service_prefix().as_deref()));
}

/// The Grafana settings `up` writes for these flags and credentials.
pub fn grafana_settings(
    args: &UpArgs,
    urls: &Urls,
    raymon_login: Option<&Login>,
    admin: Option<&Login>,
) -> grafana::Settings {
    grafana::Settings {
        raymon_login: raymon_login.cloned(),
        admin: admin.cloned(),
        datasource_name: args.stack.datasource_name.clone(),
        raymon_url: urls.raymon.clone(),
        scrape_interval: args.scrape_interval.clone(),
        http_addr: args.stack.grafana_listen.ip().to_string(),
        http_port: args.stack.grafana_listen.port(),
        root_url: urls.grafana_root_url(),
        serve_from_sub_path: args.grafana_serve_from_sub_path,
    }
}

/// How Grafana will run, and why: `--grafana auto` resolved against PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrafanaChoice {
    pub mode: GrafanaMode,
    pub why: String,
}

/// Resolves `--grafana` (never `Auto` in the answer).
pub fn choose_grafana(args: &UpArgs, path_env: &str) -> GrafanaChoice {
    let choice = |mode, why: String| GrafanaChoice { mode, why };
    match args.grafana {
        GrafanaMode::Auto => {
            if let Some(bin) = &args.grafana_bin {
                choice(
                    GrafanaMode::Native,
                    format!("--grafana-bin {}", bin.display()),
                )
            } else if let Some(bin) = grafana::find_binary(path_env) {
                choice(GrafanaMode::Native, format!("{} is on PATH", bin.display()))
            } else if let Some(shifter) = grafana::which(&args.shifter_bin, path_env) {
                choice(
                    GrafanaMode::Shifter,
                    format!(
                        "no grafana or grafana-server on PATH, {} is; image {}",
                        shifter.display(),
                        args.grafana_image
                    ),
                )
            } else {
                choice(
                    GrafanaMode::Builtin,
                    "neither grafana, grafana-server nor shifter is on PATH; raymon serves \
                     Ray's dashboards itself"
                        .to_string(),
                )
            }
        }
        mode => choice(mode, "--grafana given".to_string()),
    }
}

/// Grafana's directory layout and command for this mode (`None` for
/// `GrafanaMode::None`).
pub fn grafana_plan(
    args: &UpArgs,
    mode: GrafanaMode,
    data: &Path,
    path_env: &str,
) -> anyhow::Result<(Layout, Option<CommandLine>)> {
    Ok(match mode {
        GrafanaMode::Native => {
            let layout = Layout::native(data);
            let bin = match &args.grafana_bin {
                Some(b) => b.clone(),
                None => grafana::find_binary(path_env).ok_or(grafana::Error::NoBinary)?,
            };
            let home = args
                .grafana_home
                .clone()
                .or_else(|| grafana::find_home(&bin));
            let cmd = grafana::native_command(&bin, home.as_deref(), &layout);
            (layout, Some(cmd))
        }
        GrafanaMode::Shifter => {
            let layout = Layout::container(data);
            let Some(bin) = grafana::which(&args.shifter_bin, path_env) else {
                anyhow::bail!(
                    "{} not found (on PATH): --grafana shifter needs it; use --grafana native \
                     with --grafana-bin, or --grafana none",
                    args.shifter_bin.display()
                );
            };
            if let Some(why) =
                shifter::volume_map_problem(&layout.host, &layout.view.display().to_string())
            {
                anyhow::bail!(
                    "shifter cannot mount {} into the container: {why}; choose another --data-dir",
                    layout.host.display()
                );
            }
            let cmd = grafana::shifter_command(&bin, &args.grafana_image, &layout);
            (layout, Some(cmd))
        }
        GrafanaMode::Builtin | GrafanaMode::None | GrafanaMode::Auto => {
            (Layout::native(data), None)
        }
    })
}

/// `shifterimg` next to `shifter` (both come with a shifter installation),
/// else on PATH.
pub(super) fn shifterimg_for(shifter_bin: &Path, path_env: &str) -> Option<PathBuf> {
    let sibling = shifter_bin.parent().map(|d| d.join("shifterimg"));
    sibling
        .filter(|p| p.is_file())
        .or_else(|| grafana::which(Path::new("shifterimg"), path_env))
}

/// Refuses an image `shifterimg images` does not list as ready: shifter
/// would stop at once with `FAILED to lookup docker image ...`
/// (NERSC/shifter `src/shifter.c`, `parse_options`).
pub(super) async fn ensure_image_pulled(
    shifter_bin: &Path,
    image: &str,
    path_env: &str,
) -> anyhow::Result<()> {
    let pull = format!("shifterimg pull {image}");
    let Some(bin) = shifterimg_for(shifter_bin, path_env) else {
        anyhow::bail!(
            "shifterimg not found next to {} or on PATH, so cannot check that {image} is pulled",
            shifter_bin.display()
        );
    };
    let run = tokio::process::Command::new(&bin)
        .arg("images")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    // `shifterimg images` asks the image gateway, which may not answer.
    let out = match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(Ok(out)) if out.status.success() => out,
        Ok(Ok(out)) => anyhow::bail!(
            "`{} images` failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(Err(e)) => anyhow::bail!("cannot run {}: {e}", bin.display()),
        Err(_) => anyhow::bail!("`{} images` did not answer within 60s", bin.display()),
    };
    match shifter::image_status(&String::from_utf8_lossy(&out.stdout), image) {
        shifter::ImageStatus::Ready => Ok(()),
        shifter::ImageStatus::Listed(status) => anyhow::bail!(
            "image {image} is {status} in `shifterimg images`, not READY; wait for `{pull}` to finish"
        ),
        shifter::ImageStatus::Missing => {
            anyhow::bail!("image {image} is not pulled for shifter; run `{pull}` first")
        }
    }
}

/// Ray's ports with defaults, as `ray start` flags: (what, flag, default).
/// Ray's defaults: `ray_constants.DEFAULT_PORT`,
/// `DEFAULT_DASHBOARD_AGENT_LISTEN_PORT`, and `scripts.py`'s 10001 for the
/// client server (which `ray start` binds only when Ray's client is
/// installed; a moved port is passed only when 10001 is taken).
pub(super) const RAY_PORT_FLAGS: &[(&str, &str, u16)] = &[
    ("Ray's GCS", "--port", 6379),
    (
        "Ray's dashboard agent",
        "--dashboard-agent-listen-port",
        52365,
    ),
    ("Ray's client server", "--ray-client-server-port", 10001),
];

/// Ray's ports set by variables in `ray start`'s environment (`dashboard/consts.py`,
/// `autoscaler/_private/constants.py`).
pub(super) const RAY_PORT_VARS: &[(&str, &str, u16)] = &[
    ("Ray dashboard's metrics", "DASHBOARD_METRIC_PORT", 44227),
    ("Ray autoscaler's metrics", "AUTOSCALER_METRIC_PORT", 44217),
];

/// Settles every port `up` needs ([`Ports`]): moved ones are written into
/// `args` (Ray's as extra `ray start` flags). Returns the variables `ray
/// start` needs for moved ports that are variables, and a line per move.
/// On a shared login node another user's Grafana or Ray may hold a port;
/// the health checks would then pass against the wrong server.
pub(super) fn settle_ports(
    args: &mut UpArgs,
    grafana: GrafanaMode,
) -> anyhow::Result<(EnvVars, Vec<String>)> {
    let mut ports = Ports::default();
    let mut said = Vec::new();
    let mut settle = |need: Need| -> anyhow::Result<u16> {
        let s = ports.settle(&need)?;
        if let Some(from) = s.moved_from {
            said.push(format!(
                "port {from} ({}) is taken; using {} ({})",
                need.what, s.port, need.flag
            ));
        }
        Ok(s.port)
    };
    // A chosen raymon address that is taken stops the collector with its own
    // message; only the default moves.
    let listen = args.serve.listen_address;
    if listen.port() == DEFAULT_RAYMON_PORT {
        let need = Need::new(
            "raymon",
            "--web.listen-address",
            listen.ip(),
            DEFAULT_RAYMON_PORT,
            DEFAULT_RAYMON_PORT,
        );
        args.serve.listen_address.set_port(settle(need)?);
    }
    if !matches!(grafana, GrafanaMode::None | GrafanaMode::Builtin) {
        let g = args.stack.grafana_listen;
        let need = Need::new(
            "Grafana",
            "--grafana-listen-address",
            g.ip(),
            g.port(),
            DEFAULT_GRAFANA_PORT,
        );
        args.stack.grafana_listen.set_port(settle(need)?);
    }
    let mut env = Vec::new();
    if args.attach {
        return Ok((env, said));
    }
    let need = Need::new(
        "Ray's dashboard",
        "--dashboard-port",
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        args.stack.dashboard_port,
        DEFAULT_DASHBOARD_PORT,
    );
    args.stack.dashboard_port = settle(need)?;
    if let Some(p) = args.metrics_export_port {
        // Unset, Ray binds a free port itself and discovery finds it.
        settle(Need::new(
            "Ray's metrics export",
            "--metrics-export-port",
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            p,
            0,
        ))?;
    }
    for &(what, flag, default) in RAY_PORT_FLAGS {
        // A port given after `--` is the user's; Ray says if it is taken.
        if ray::flag_value(&args.ray_args, flag).is_some() {
            continue;
        }
        let port = settle(Need::ray(what, flag, default))?;
        if port != default {
            args.ray_args.push(format!("{flag}={port}"));
        }
    }
    for &(what, var, default) in RAY_PORT_VARS {
        if std::env::var_os(var).is_some() {
            continue;
        }
        let port = settle(Need::ray(what, var, default))?;
        if port != default {
            env.push((var.to_string(), port.to_string()));
        }
    }
    Ok((env, said))
}

/// Variables for a child's environment.
pub(super) type EnvVars = Vec<(String, String)>;

/// The defaults of `--web.listen-address`, `--grafana-listen-address` and
/// `--dashboard-port` (Prometheus's, Grafana's and Ray's).
pub(super) const DEFAULT_RAYMON_PORT: u16 = 9090;
pub(super) const DEFAULT_GRAFANA_PORT: u16 = 3000;
pub(super) const DEFAULT_DASHBOARD_PORT: u16 = 8265;

pub(super) struct Plan<'a> {
    pub(super) args: &'a UpArgs,
    pub(super) data: &'a Path,
    pub(super) urls: &'a Urls,
    pub(super) temp_dir: &'a Path,
    pub(super) ray_start: Option<Vec<String>>,
    pub(super) layout: &'a Layout,
    pub(super) grafana_cmd: Option<&'a CommandLine>,
    /// Ray's moved ports that are variables.
    pub(super) ray_port_env: &'a [(String, String)],
    /// The `Authorization` header raymon wants, if any.
    pub(super) authorization: Option<String>,
    /// `RAY_PROMETHEUS_HEADERS`, if raymon wants credentials.
    pub(super) prometheus_headers: Option<String>,
    /// The credentials, and whether this run made them.
    pub(super) credentials: Option<(&'a Credentials, bool)>,
    /// `--grafana builtin` (given, or what `auto` chose).
    pub(super) builtin: bool,
}
