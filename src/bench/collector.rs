//! The collectors under measurement as child processes: which ones to run,
//! their command lines and configs, starting them with a log and stopping
//! them in order.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::args::{BenchArgs, PROMETHEUS_COMMAND};
use super::{Error, cluster};

/// One collector to measure.
pub(super) struct Spec {
    pub(super) name: String,
    /// `None` for raymon itself.
    pub(super) template: Option<String>,
}

pub(super) fn specs(args: &BenchArgs) -> Vec<Spec> {
    let mut v = Vec::new();
    if !args.no_raymon {
        v.push(Spec {
            name: "raymon".into(),
            template: None,
        });
    }
    for cmd in &args.vs {
        let (base, template) = if cmd.trim() == "prometheus" {
            ("prometheus".to_string(), PROMETHEUS_COMMAND.to_string())
        } else {
            let first = cmd.split_whitespace().next().unwrap_or("cmd");
            let base = Path::new(first)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "cmd".into());
            (base, cmd.clone())
        };
        let mut name = base.clone();
        let mut n = 2;
        while v.iter().any(|s: &Spec| s.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        v.push(Spec {
            name,
            template: Some(template),
        });
    }
    v
}

/// A running child with its command, so it can be restarted.
pub(super) struct Running {
    pub(super) child: Child,
    pub(super) pid: u32,
}

/// Ray's prometheus.yml, with the interval of the run.
pub(super) fn write_config(
    path: &Path,
    dir: &Path,
    interval: Duration,
    remote_write: Option<&str>,
) -> Result<(), Error> {
    let ms = interval.as_millis().max(1);
    let timeout = ms.min(10_000);
    let mut yml = format!(
        "# my global config\nglobal:\n  scrape_interval: {ms}ms\n  evaluation_interval: {ms}ms\n  scrape_timeout: {timeout}ms\n\nscrape_configs:\n# Scrape from each Ray node as defined in the service_discovery.json provided by Ray.\n- job_name: 'ray'\n  file_sd_configs:\n  - files:\n    - '{}'\n",
        dir.join(cluster::SD_FILE).display()
    );
    if let Some(url) = remote_write {
        yml.push_str(&format!("\nremote_write:\n- url: '{url}'\n"));
    }
    std::fs::write(path, yml).map_err(|e| Error::io("write prometheus.yml", e))
}

pub(super) fn free_port() -> Result<u16, Error> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("find a free port", e))?;
    Ok(l.local_addr()
        .map_err(|e| Error::io("find a free port", e))?
        .port())
}

pub(super) fn collector_argv(
    spec: &Spec,
    config: &Path,
    data: &Path,
    port: u16,
    agent: bool,
) -> Result<Vec<String>, Error> {
    match &spec.template {
        None => {
            let exe =
                std::env::current_exe().map_err(|e| Error::io("find the raymon binary", e))?;
            let storage = if agent {
                vec![
                    "--enable-feature=agent".to_string(),
                    format!("--storage.agent.path={}", data.display()),
                ]
            } else {
                vec![format!("--storage.tsdb.path={}", data.display())]
            };
            let mut v = vec![
                exe.display().to_string(),
                "serve".into(),
                format!("--config.file={}", config.display()),
            ];
            v.extend(storage);
            v.push(format!("--web.listen-address=127.0.0.1:{port}"));
            v.push("--log.level=warn".into());
            Ok(v)
        }
        Some(t) => {
            let cmd = t
                .replace("{config}", &config.display().to_string())
                .replace("{data}", &data.display().to_string())
                .replace("{port}", &port.to_string());
            // `exec` makes the measured pid the collector's, not the shell's.
            Ok(vec!["sh".into(), "-c".into(), format!("exec {cmd}")])
        }
    }
}

pub(super) fn spawn_logged(argv: &[String], log: &Path) -> Result<Running, Error> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io("open the collector log", e))?;
    let f2 = f
        .try_clone()
        .map_err(|e| Error::io("open the collector log", e))?;
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io("start the collector", e))?;
    let pid = child
        .id()
        .ok_or_else(|| Error::Setup("the collector exited at once".into()))?;
    Ok(Running { child, pid })
}

/// Asks for an orderly shutdown (SIGTERM), then kills after 60 s.
pub(super) async fn stop(r: &mut Running) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(r.pid.to_string())
        .status()
        .await;
    if tokio::time::timeout(Duration::from_secs(60), r.child.wait())
        .await
        .is_err()
    {
        let _ = r.child.kill().await;
    }
}
