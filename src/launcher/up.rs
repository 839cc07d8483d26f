//! `raymon up`, `raymon down` and `raymon env`: the order things start in
//! (collector, Ray, Grafana), the waits between them, what is printed, and
//! the order things stop in (scraping and storage, Grafana, Ray). The pieces
//! live in [`super::ray`], [`super::grafana`], [`super::urls`],
//! [`super::env`] and [`super::supervisor`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Credentials, Login};
use super::env::{ray_env, render};
use super::grafana::{self, CommandLine, Layout};
use super::ports;
use super::ray::{self, SessionFollower};
use super::shifter;
use super::status;
use super::supervisor::{self, ProcId, State, Supervisor};
use super::urls::{UrlInputs, Urls};
use crate::cli::flags::{AuthMode, DownArgs, EnvFormat, GrafanaMode, StackArgs, UpArgs};
use crate::cli::wait_for_termination;

/// The data dir: the flag, else `$SCRATCH/raymon`, else `./raymon-data`;
/// made absolute, since Grafana's files name it.
pub fn data_dir(flag: Option<&Path>, scratch: Option<&str>) -> PathBuf {
    let p = match (flag, scratch.filter(|s| !s.is_empty())) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(s)) => Path::new(s).join("raymon"),
        (None, None) => PathBuf::from("raymon-data"),
    };
    std::path::absolute(&p).unwrap_or(p)
}

/// [`data_dir`] with `SCRATCH` from the environment.
pub fn data_dir_from_env(flag: Option<&Path>) -> PathBuf {
    data_dir(flag, std::env::var("SCRATCH").ok().as_deref())
}

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

fn service_prefix() -> Option<String> {
    std::env::var("JUPYTERHUB_SERVICE_PREFIX").ok()
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
    resolve_grafana(
        args.grafana,
        args.grafana_bin.as_deref(),
        &args.shifter_bin,
        &args.grafana_image,
        path_env,
    )
}

/// [`choose_grafana`] from the flags themselves (`raymon env` has only
/// `--grafana`).
pub fn resolve_grafana(
    mode: GrafanaMode,
    grafana_bin: Option<&Path>,
    shifter_bin: &Path,
    grafana_image: &str,
    path_env: &str,
) -> GrafanaChoice {
    let choice = |mode, why: String| GrafanaChoice { mode, why };
    match mode {
        GrafanaMode::Auto => {
            if let Some(bin) = grafana_bin {
                choice(
                    GrafanaMode::Native,
                    format!("--grafana-bin {}", bin.display()),
                )
            } else if let Some(bin) = grafana::find_binary(path_env) {
                choice(GrafanaMode::Native, format!("{} is on PATH", bin.display()))
            } else if let Some(shifter) = grafana::which(shifter_bin, path_env) {
                choice(
                    GrafanaMode::Shifter,
                    format!(
                        "no grafana or grafana-server on PATH, {} is; image {grafana_image}",
                        shifter.display(),
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
fn shifterimg_for(shifter_bin: &Path, path_env: &str) -> Option<PathBuf> {
    let sibling = shifter_bin.parent().map(|d| d.join("shifterimg"));
    sibling
        .filter(|p| p.is_file())
        .or_else(|| grafana::which(Path::new("shifterimg"), path_env))
}

/// Refuses an image `shifterimg images` does not list as ready: shifter
/// would stop at once with `FAILED to lookup docker image ...`
/// (NERSC/shifter `src/shifter.c`, `parse_options`).
async fn ensure_image_pulled(
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

/// Runs `up` until SIGINT/SIGTERM (what `raymon down` sends).
pub async fn up_until_signal(args: UpArgs) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        wait_for_termination().await;
        eprintln!("raymon up: stopping");
        c.cancel();
    });
    up(args, cancel).await
}

/// Starts the stack, runs it until `cancel` or a child fails, then stops it
/// in order.
pub async fn up(mut args: UpArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let data = data_dir_from_env(args.stack.data_dir.as_deref());
    let _owner = claim_data_dir(&data)?;
    let path_env = std::env::var("PATH").unwrap_or_default();
    let choice = choose_grafana(&args, &path_env);
    eprintln!(
        "raymon up: Grafana: {} ({})",
        choice.mode.name(),
        choice.why
    );
    // Everything that can be checked is checked before anything starts.
    let (ray_port_env, moved) = settle_ports(&mut args, choice.mode, &data)?;
    for line in &moved {
        eprintln!("raymon up: {line}");
    }
    let builtin = choice.mode == GrafanaMode::Builtin;
    if builtin {
        // Ray's backend checks, and its UI embeds, "Grafana" at raymon.
        args.stack.grafana_listen = args.serve.listen_address;
    }
    let urls = urls_for(
        &args.stack,
        args.serve.listen_address,
        service_prefix().as_deref(),
    );
    let temp_dir = temp_dir(&args.stack)?;
    // With --attach the temp dir is the notebook's Ray's, which up only reads.
    let _temp_owner = if args.attach {
        std::fs::create_dir_all(&temp_dir)
            .with_context(|| format!("cannot create Ray temp dir {}", temp_dir.display()))?;
        None
    } else {
        ray::check_socket_room(&temp_dir)?;
        Some(claim_temp_dir(&temp_dir)?)
    };
    let ray_spec = ray::StartSpec {
        temp_dir: temp_dir.clone(),
        dashboard_port: args.stack.dashboard_port,
        metrics_export_port: args.metrics_export_port,
        extra: args.ray_args.clone(),
    };
    let ray_start = if args.attach {
        None
    } else {
        Some(ray::start_args(&ray_spec)?)
    };
    let (layout, grafana_cmd) = grafana_plan(&args, choice.mode, &data, &path_env)?;
    if let (GrafanaMode::Shifter, Some(cmd)) = (choice.mode, &grafana_cmd) {
        ensure_image_pulled(&cmd.program, &args.grafana_image, &path_env).await?;
    }
    let creds = match args.auth {
        AuthMode::Basic => Some(auth::load_or_create(&data)?),
        AuthMode::None => None,
    };
    // Grafana sets its admin password at its first start only.
    if matches!(creds, Some((_, true))) && layout.host.join("data/grafana.db").exists() {
        eprintln!(
            "raymon up: Grafana's database in {} predates the new credentials: its admin \
             password stays as it was (`grafana cli admin reset-admin-password` changes it)",
            layout.host.display()
        );
    }
    // A web config of the user's decides who may query raymon; up cannot
    // know its passwords.
    let api_login = match (&creds, &args.serve.web_config_file) {
        (Some((c, _)), None) => Some(c.raymon.clone()),
        (Some(_), Some(f)) => {
            eprintln!(
                "raymon up: {} decides raymon's API auth; Grafana and Ray get no \
                 credentials from up",
                f.display()
            );
            None
        }
        (None, _) => None,
    };
    grafana::write(
        &layout,
        &grafana_settings(
            &args,
            &urls,
            api_login.as_ref(),
            creds.as_ref().map(|(c, _)| &c.grafana_admin),
        ),
    )?;
    let prom = data.join("prometheus.yml");
    ray::write_prometheus_config(
        &prom,
        &temp_dir,
        &args.scrape_interval,
        &args.remote_write_urls,
    )?;

    let mut serve_args = args.serve.clone();
    if serve_args.config_file != Path::new("prometheus.yml") {
        eprintln!(
            "raymon up: ignoring --config.file: up writes its own ({})",
            prom.display()
        );
    }
    serve_args.config_file = prom;
    if let Some(login) = &api_login {
        let path = data.join(auth::WEB_CONFIG_FILE);
        auth::write_private(&path, auth::web_config(login)?.as_bytes())?;
        serve_args.web_config_file = Some(path);
    }
    if serve_args.storage_path == Path::new("data/") {
        serve_args.storage_path = data.join("tsdb");
    }
    if builtin {
        builtin_dashboards(
            &mut serve_args,
            &layout,
            &args.stack.datasource_name,
            &api_login,
        );
    }
    let mut sup = Supervisor::new(&data, cancel);
    sup.refresh()?;
    sup.spawn_task("collector", |c| crate::cli::serve(serve_args, c));

    let plan = Plan {
        args: &args,
        data: &data,
        urls: &urls,
        temp_dir: &temp_dir,
        ray_start,
        layout: &layout,
        grafana_cmd: grafana_cmd.as_ref(),
        ray_port_env: &ray_port_env,
        authorization: api_login.as_ref().map(auth::authorization),
        prometheus_headers: api_login.as_ref().map(auth::ray_prometheus_headers),
        credentials: creds.as_ref().map(|(c, created)| (c, *created)),
        builtin,
    };
    let result = run(&plan, &mut sup).await;

    // Scraping stops and storage flushes before the children go, so the
    // last scrapes of Ray are not cut short; Grafana goes before Ray.
    eprintln!("raymon up: stopping the collector, then Grafana and Ray");
    status::Stack::remove(&data);
    let stopped = sup.shutdown(args.stop_timeout).await;
    if !args.attach {
        // As `ray stop` does: a notebook's `ray.init()` (RAY_TMPDIR from
        // `raymon env`) would otherwise try to join the Ray that is gone.
        ray::forget_cluster(&temp_dir);
    }
    eprintln!("raymon up: stopped");
    match (result, stopped) {
        (Err(why), Err(task)) => Err(task.context(why)),
        (result, stopped) => result.and(stopped),
    }
}

/// `--grafana builtin`: raymon serves the dashboards `up` copies from
/// Ray's session, under the datasource name Ray is given. With credentials
/// on the API, the pages stay open as Grafana's anonymous viewers are for
/// Ray's iframes (they run only their dashboards' own queries).
fn builtin_dashboards(
    serve: &mut crate::cli::ServeArgs,
    layout: &Layout,
    datasource_name: &str,
    api_login: &Option<Login>,
) {
    if serve.dashboards_dirs.is_empty() {
        serve.dashboards_dirs.push(layout.dashboards());
    }
    serve.dashboards_datasource_name = datasource_name.to_string();
    if api_login.is_some() {
        serve.dashboards_anonymous = true;
    }
}

/// Makes the data dir and makes it ours: it must be writable, no other
/// live `up` may hold its lock, and no process a dead `up` left may still
/// run (a new `up` would lose track of them). The lock is held as long as
/// the returned file is open, and the kernel drops it when `up` dies.
fn claim_data_dir(data: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data dir {}", data.display()))?;
    let probe = data.join(".raymon-write-probe");
    if let Err(e) = std::fs::write(&probe, b"") {
        anyhow::bail!(
            "data dir {} is not writable ({e}); choose another with --data-dir",
            data.display()
        );
    }
    let _ = std::fs::remove_file(&probe);
    let running = |pids: String| {
        anyhow::anyhow!(
            "a raymon up with data dir {} is still running{pids}; stop it with \
             `raymon down --data-dir {}`, or choose another --data-dir",
            data.display(),
            data.display()
        )
    };
    let Some(lock) = try_lock(&data.join(LOCK_FILE))? else {
        let up = State::read(data).and_then(|s| s.up).map(|p| p.pid);
        return Err(running(
            up.map_or(String::new(), |p| format!(" (process {p})")),
        ));
    };
    if let Some(state) = State::read(data) {
        let alive: Vec<u32> = state
            .up
            .iter()
            .chain(&state.pids)
            .filter(|p| p.alive())
            .map(|p| p.pid)
            .collect();
        if !alive.is_empty() {
            return Err(running(format!(" (processes {alive:?})")));
        }
    }
    Ok(lock)
}

/// Held by the `up` that owns a data dir or a Ray temp dir (`flock`,
/// released when it exits).
const LOCK_FILE: &str = "raymon-up.lock";

/// An exclusive lock on `path` (made if missing), or `None` when another
/// process holds it.
fn try_lock(path: &Path) -> anyhow::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Makes Ray's temp dir and makes it this `up`'s: two Rays under one temp
/// dir share `session_latest` and the discovery file, so each raymon would
/// scrape whichever started last.
fn claim_temp_dir(temp_dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(temp_dir)
        .with_context(|| format!("cannot create Ray temp dir {}", temp_dir.display()))?;
    try_lock(&temp_dir.join(LOCK_FILE))?.ok_or_else(|| {
        anyhow::anyhow!(
            "Ray temp dir {} is used by another raymon up; choose another with --ray-temp-dir",
            temp_dir.display()
        )
    })
}

/// Ray's temp dir: the flag, else the user's own
/// ([`ray::default_temp_dir`]), whose parent is made the user's alone: Ray
/// makes its temp dir and sessions readable by everyone
/// (`_common/utils.py`, `try_make_directory_shared`) and writes
/// RAY_PROMETHEUS_HEADERS (raymon's password) into the datasource it
/// provisions there.
pub fn temp_dir(stack: &StackArgs) -> anyhow::Result<PathBuf> {
    Ok(match &stack.ray_temp_dir {
        Some(t) => std::path::absolute(t)?,
        None => {
            let t = ray::default_temp_dir(&user_name());
            if let Some(parent) = t.parent() {
                auth::private_dir(parent)?;
            }
            t
        }
    })
}

/// Settles the ports of `up` ([`ports::settle_stack`]) into `args`. With
/// `--attach`, the raymon and Grafana ports that `raymon env` gave the
/// notebook's Ray are kept (when their flags are at their defaults), or
/// refused if taken: Ray's dashboard already points there. On a shared
/// login node another user's Grafana or Ray may hold a port; the health
/// checks would then pass against the wrong server.
fn settle_ports(
    args: &mut UpArgs,
    grafana: GrafanaMode,
    data: &Path,
) -> anyhow::Result<(EnvVars, Vec<String>)> {
    let mut promised = (false, false);
    if let Some(p) = args
        .attach
        .then(|| status::Listen::promised(data))
        .flatten()
    {
        if args.serve.listen_address.port() == ports::DEFAULT_RAYMON_PORT {
            args.serve.listen_address.set_port(p.raymon.port());
            promised.0 = true;
        }
        if args.stack.grafana_listen.port() == ports::DEFAULT_GRAFANA_PORT {
            args.stack.grafana_listen.set_port(p.grafana.port());
            promised.1 = true;
        }
    }
    let ray = (!args.attach).then_some(ports::RayPorts {
        dashboard: &mut args.stack.dashboard_port,
        metrics_export: args.metrics_export_port,
        args: &mut args.ray_args,
    });
    Ok(ports::settle_stack(
        args.stack.port_range,
        ports::StackPorts {
            raymon: &mut args.serve.listen_address,
            grafana: (!matches!(grafana, GrafanaMode::None | GrafanaMode::Builtin))
                .then_some(&mut args.stack.grafana_listen),
            ray,
            promised,
        },
    )?)
}

/// The user's name, for per-user defaults: `$USER`, else the uid.
fn user_name() -> String {
    use std::os::unix::fs::MetadataExt;
    match std::env::var("USER") {
        Ok(u) if !u.is_empty() && !u.contains('/') => u,
        _ => std::fs::metadata("/proc/self")
            .map_or_else(|_| "unknown".to_string(), |m| m.uid().to_string()),
    }
}

/// Variables for a child's environment.
type EnvVars = Vec<(String, String)>;

struct Plan<'a> {
    args: &'a UpArgs,
    data: &'a Path,
    urls: &'a Urls,
    temp_dir: &'a Path,
    ray_start: Option<Vec<String>>,
    layout: &'a Layout,
    grafana_cmd: Option<&'a CommandLine>,
    /// Ray's moved ports that are variables.
    ray_port_env: &'a [(String, String)],
    /// The `Authorization` header raymon wants, if any.
    authorization: Option<String>,
    /// `RAY_PROMETHEUS_HEADERS`, if raymon wants credentials.
    prometheus_headers: Option<String>,
    /// The credentials, and whether this run made them.
    credentials: Option<(&'a Credentials, bool)>,
    /// `--grafana builtin` (given, or what `auto` chose).
    builtin: bool,
}

/// From the collector's start to `cancel`.
async fn run(plan: &Plan<'_>, sup: &mut Supervisor) -> anyhow::Result<()> {
    let args = plan.args;
    let client = reqwest::Client::new();
    let cancel = &sup.cancel_token().clone();
    let stopped = |sup: &mut Supervisor| -> Option<String> {
        if cancel.is_cancelled() {
            return Some("interrupted".to_string());
        }
        if let Some(task) = sup.finished_task() {
            return Some(format!("the {task} stopped"));
        }
        sup.exited_child().map(|(name, status)| {
            format!(
                "{name} exited ({status}); last lines of {}:\n{}",
                sup.log_path(&name).display(),
                sup.log_tail(&name, 20)
            )
        })
    };

    let ready_url = format!("{}/-/ready", plan.urls.raymon);
    let waited = wait_until(
        "raymon",
        args.ready_timeout,
        || probe_ok(&client, &ready_url, plan.authorization.as_deref()),
        || stopped(sup),
    )
    .await;
    if let Err(e) = waited {
        return interrupted_or(cancel, e);
    }
    eprintln!("raymon up: collector ready at {}", plan.urls.raymon);

    let mut follower = SessionFollower::new(plan.temp_dir, &plan.layout.dashboards());
    if let Some(start) = &plan.ray_start {
        let before = ray::session_latest(plan.temp_dir);
        // This `up` owns the temp dir: an address left there is stale.
        ray::forget_cluster(plan.temp_dir);
        let mut cmd = tokio::process::Command::new(&args.ray_bin);
        cmd.args(start);
        for (k, v) in ray_env(
            plan.urls,
            &args.stack.datasource_name,
            plan.prometheus_headers.as_deref(),
        ) {
            cmd.env(k, v);
        }
        cmd.envs(plan.ray_port_env.iter().map(|(k, v)| (k, v)));
        eprintln!(
            "raymon up: starting Ray: {} {}",
            args.ray_bin.display(),
            start.join(" ")
        );
        sup.spawn("ray", cmd, None)?;
        let host = ray::dashboard_host(&args.ray_args);
        let version_url = format!("http://{host}:{}/api/version", args.stack.dashboard_port);
        let temp_dir = plan.temp_dir.to_path_buf();
        let waited = wait_until(
            "Ray",
            args.ready_timeout,
            || {
                let session = ray::session_latest(&temp_dir).filter(|s| Some(s) != before.as_ref());
                let address = ray::current_cluster(&temp_dir);
                let (client, url) = (&client, &version_url);
                async move {
                    let session = session.ok_or("no new session yet")?;
                    if !ray::prometheus_yml(&session).exists() {
                        return Err(format!(
                            "{} not written yet",
                            ray::prometheus_yml(&session).display()
                        ));
                    }
                    // What `raymon env` gives a notebook as RAY_ADDRESS.
                    if address.is_none() {
                        return Err("Ray's address (ray_current_cluster) not written yet".into());
                    }
                    probe_ok(client, url, None).await
                }
            },
            || stopped(sup),
        )
        .await;
        if let Err(e) = waited {
            if e.contains("last lines of") || cancel.is_cancelled() {
                return interrupted_or(cancel, e);
            }
            anyhow::bail!(
                "{e}\nlast lines of {}:\n{}",
                sup.log_path("ray").display(),
                sup.log_tail("ray", 20)
            );
        }
        if let Some(session) = ray::session_latest(plan.temp_dir) {
            sup.set_marker("ray", session.display().to_string());
            eprintln!("raymon up: Ray is up, session {}", session.display());
        }
        sup.refresh()?;
    }
    if let Some(session) = follower.poll() {
        eprintln!(
            "raymon up: Grafana gets Ray's dashboards from {}",
            ray::dashboards_dir(&session).display()
        );
    }

    match plan.grafana_cmd {
        Some(cmd) => {
            eprintln!("raymon up: starting Grafana: {}", cmd.display());
            sup.spawn("grafana", cmd.to_command(), None)?;
            let timeout = args.grafana_timeout.unwrap_or(args.ready_timeout);
            eprintln!(
                "raymon up: waiting up to {}s for Grafana (--grafana-timeout); a first start \
                 in a container can take minutes",
                timeout.as_secs()
            );
            let waited = wait_until(
                "Grafana",
                timeout,
                || grafana::health(&client, &plan.urls.grafana_local),
                || stopped(sup),
            )
            .await;
            if let Err(e) = waited {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                if e.contains("last lines of") {
                    anyhow::bail!("{e}");
                }
                anyhow::bail!(
                    "{e}; if Grafana is only slow, raise --grafana-timeout\n\
                     last lines of {}:\n{}",
                    sup.log_path("grafana").display(),
                    sup.log_tail("grafana", 20)
                );
            }
            sup.refresh()?;
        }
        None if plan.builtin => {
            eprintln!(
                "raymon up: Grafana is built in: raymon serves Ray's dashboards at {}/d/",
                plan.urls.grafana_public
            );
        }
        None => {
            let native = grafana::native_command(
                Path::new("grafana-server"),
                None,
                &Layout::native(plan.data),
            );
            eprintln!(
                "raymon up: not starting Grafana; to run one yourself with these settings:\n  {}",
                native.display()
            );
        }
    }

    print_summary(plan);
    let stack = stack_of(plan);
    if let Err(e) = stack.write(plan.data) {
        eprintln!("raymon up: cannot write {}: {e}", status::STACK_FILE);
    }

    let mut tick: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Some(reason) = stopped(sup) {
            if cancel.is_cancelled() {
                return Ok(());
            }
            anyhow::bail!("{reason}");
        }
        tick += 1;
        if tick.is_multiple_of(5) {
            if let Some(session) = follower.poll() {
                eprintln!(
                    "raymon up: new Ray session {}; dashboards updated",
                    session.display()
                );
                if plan.ray_start.is_some() {
                    sup.set_marker("ray", session.display().to_string());
                }
            }
            sup.refresh()?;
        }
    }
}

fn interrupted_or(cancel: &CancellationToken, e: String) -> anyhow::Result<()> {
    if cancel.is_cancelled() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(e))
    }
}

/// What `raymon status` reports of this stack.
fn stack_of(plan: &Plan<'_>) -> status::Stack {
    let u = plan.urls;
    let grafana = plan.grafana_cmd.is_some() || plan.builtin;
    status::Stack {
        raymon_url: u.raymon.clone(),
        grafana_url: grafana.then(|| u.grafana_local.clone()),
        ray_dashboard_url: Some(format!(
            "http://{}:{}",
            ray::dashboard_host(&plan.args.ray_args),
            plan.args.stack.dashboard_port
        )),
        public_urls: status::PublicUrls {
            grafana: grafana.then(|| u.grafana_public.clone()),
            ray_dashboard: Some(u.dashboard.clone()),
        },
        credentials_file: plan.credentials.map(|_| auth::credentials_path(plan.data)),
        api_auth: plan.authorization.is_some(),
        listen: Some(status::Listen {
            raymon: plan.args.serve.listen_address,
            grafana: plan.args.stack.grafana_listen,
            dashboard_port: plan.args.stack.dashboard_port,
        }),
        ray_temp_dir: Some(plan.temp_dir.to_path_buf()),
        ray_address: plan
            .ray_start
            .as_ref()
            .and_then(|_| ray::current_cluster(plan.temp_dir)),
    }
}

fn print_summary(plan: &Plan<'_>) {
    let u = plan.urls;
    println!("raymon is up (data dir {}).", plan.data.display());
    println!("  Ray dashboard:  {}", u.dashboard);
    if plan.grafana_cmd.is_some() {
        println!("  Grafana:        {}", u.grafana_public);
    }
    if plan.builtin {
        println!(
            "  Ray's dashboards (built in): {}/d/rayDefaultDashboard/",
            u.grafana_public
        );
    }
    if plan.grafana_cmd.is_some() {
        println!(
            "  Ray's dashboard in Grafana: {}/d/rayDefaultDashboard/?orgId=1",
            u.grafana_public
        );
    }
    println!("  raymon (Prometheus API): {}", u.raymon);
    if let Some((c, created)) = plan.credentials {
        let file = auth::credentials_path(plan.data);
        if plan.authorization.is_some() {
            println!(
                "  raymon's API wants basic auth: user {}, password in {}",
                c.raymon.user,
                file.display()
            );
        }
        if plan.grafana_cmd.is_some() && created {
            // Shown this once; the file keeps it.
            println!(
                "  Grafana admin: user {}, password {} (also in {})",
                c.grafana_admin.user,
                c.grafana_admin.password,
                file.display()
            );
        } else if plan.grafana_cmd.is_some() {
            println!(
                "  Grafana admin: user {}, password in {}",
                c.grafana_admin.user,
                file.display()
            );
        }
    }
    if let Some(h) = u.hint() {
        println!("{h}");
    }
    if plan.args.attach {
        println!(
            "Attached to the Ray sessions under {}. Before ray.init(), set:",
            plan.temp_dir.display()
        );
        let mut vars = ray_env(
            u,
            &plan.args.stack.datasource_name,
            plan.prometheus_headers.as_deref(),
        );
        if let Some(dir) = ray::ray_tmpdir(plan.temp_dir) {
            vars.push(("RAY_TMPDIR", dir.display().to_string()));
        }
        print!("{}", render(&vars, EnvFormat::Python));
    }
    println!(
        "Stop with Ctrl-C or `raymon down --data-dir {}`.",
        plan.data.display()
    );
}

async fn probe_ok(
    client: &reqwest::Client,
    url: &str,
    authorization: Option<&str>,
) -> Result<(), String> {
    let mut req = client.get(url).timeout(Duration::from_secs(5));
    if let Some(a) = authorization {
        req = req.header(reqwest::header::AUTHORIZATION, a);
    }
    let r = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", r.status()))
    }
}

/// Polls until `probe` succeeds, `failed` gives a reason to stop, or
/// `timeout`; prints a progress line every 5 s.
async fn wait_until<P, F>(
    what: &str,
    timeout: Duration,
    mut probe: P,
    mut failed: impl FnMut() -> Option<String>,
) -> Result<(), String>
where
    P: FnMut() -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let mut last_report = started;
    loop {
        let last = match probe().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if let Some(reason) = failed() {
            return Err(reason);
        }
        if started.elapsed() >= timeout {
            return Err(format!(
                "{what} not ready after {}s (last: {last})",
                timeout.as_secs()
            ));
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "raymon up: waiting for {what} ({}s): {last}",
                started.elapsed().as_secs()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `raymon down`: SIGTERM to `up`, then wait until every recorded process
/// is gone; SIGKILL what is left after `timeout`.
pub async fn down(args: DownArgs) -> anyhow::Result<()> {
    let data = data_dir_from_env(args.data_dir.as_deref());
    let Some(state) = State::read(&data) else {
        println!(
            "raymon down: no raymon up is running with data dir {}",
            data.display()
        );
        return Ok(());
    };
    let mut pids: BTreeSet<ProcId> = state.pids.iter().copied().collect();
    let groups: Vec<u32> = state.children.iter().map(|(_, p)| p.pid).collect();
    match state.up {
        Some(up) if up.alive() => {
            pids.insert(up);
            supervisor::signal(up.pid, "TERM");
        }
        _ => {
            // `up` itself is gone (killed hard): stop what it left directly.
            eprintln!("raymon down: raymon up is gone; stopping what it left running");
            for g in &groups {
                supervisor::signal_group(*g, "TERM");
            }
            for p in pids.iter().filter(|p| p.alive()) {
                supervisor::signal(p.pid, "TERM");
            }
        }
    }
    eprintln!(
        "raymon down: stopping raymon up (data dir {}), {} processes",
        data.display(),
        pids.len()
    );
    let started = Instant::now();
    let mut last_report = started;
    loop {
        // `up` records processes as it finds them; take the newest list.
        if let Some(s) = State::read(&data) {
            pids.extend(s.pids);
        }
        let left: Vec<ProcId> = pids.iter().copied().filter(ProcId::alive).collect();
        if left.is_empty() {
            let _ = std::fs::remove_file(data.join(supervisor::STATE_FILE));
            println!(
                "raymon down: stopped after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() >= args.timeout {
            eprintln!(
                "raymon down: {} processes still running after {}s; killing them",
                left.len(),
                args.timeout.as_secs()
            );
            for g in &groups {
                supervisor::signal_group(*g, "KILL");
            }
            for p in &left {
                supervisor::signal(p.pid, "KILL");
            }
            if supervisor::wait_gone(&left, Duration::from_secs(10)).await {
                let _ = std::fs::remove_file(data.join(supervisor::STATE_FILE));
                return Ok(());
            }
            let still: Vec<u32> = left.iter().filter(|p| p.alive()).map(|p| p.pid).collect();
            anyhow::bail!("processes still running: {still:?}");
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "raymon down: waiting for {} processes ({}s)",
                left.len(),
                started.elapsed().as_secs()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
