//! Starting the stack in order (collector, Ray, Grafana, each waited for),
//! the summary printed once it is up, and stopping it in order on a signal
//! or a failure.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::flags::{AuthMode, EnvFormat, GrafanaMode, UpArgs};
use crate::cli::wait_for_termination;
use crate::launcher::auth::{self, Login};
use crate::launcher::env::{ray_env, render};
use crate::launcher::grafana::{self, Layout};
use crate::launcher::ray::{self, SessionFollower};
use crate::launcher::status;
use crate::launcher::supervisor::Supervisor;

use super::*;

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
    let (ray_port_env, moved) = settle_ports(&mut args, choice.mode)?;
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
    let temp_dir = match &args.stack.ray_temp_dir {
        Some(t) => std::path::absolute(t)?,
        None if args.attach => ray::default_temp_dir(true, &user_name()),
        None => {
            let t = ray::default_temp_dir(false, &user_name());
            // Ray makes its temp dir and sessions readable by everyone
            // (`_common/utils.py`, `try_make_directory_shared`), and writes
            // RAY_PROMETHEUS_HEADERS (raymon's password) into the
            // datasource it provisions there: the dir above is the user's
            // alone.
            if let Some(parent) = t.parent() {
                auth::private_dir(parent)?;
            }
            t
        }
    };
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
        ray_bin: args.ray_bin.clone(),
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
    ray::write_prometheus_config(&prom, &temp_dir, &args.scrape_interval)?;

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
pub(super) fn builtin_dashboards(
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
                let (client, url) = (&client, &version_url);
                async move {
                    let session = session.ok_or("no new session yet")?;
                    if !ray::prometheus_yml(&session).exists() {
                        return Err(format!(
                            "{} not written yet",
                            ray::prometheus_yml(&session).display()
                        ));
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

pub(super) fn interrupted_or(cancel: &CancellationToken, e: String) -> anyhow::Result<()> {
    if cancel.is_cancelled() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(e))
    }
}

/// What `raymon status` reports of this stack.
pub(super) fn stack_of(plan: &Plan<'_>) -> status::Stack {
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
    }
}

pub(super) fn print_summary(plan: &Plan<'_>) {
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
        print!(
            "{}",
            render(
                &ray_env(
                    u,
                    &plan.args.stack.datasource_name,
                    plan.prometheus_headers.as_deref()
                ),
                EnvFormat::Python
            )
        );
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
