//! `raymon up`, `down` and `env` (issue 6) as plans: URLs, the notebook
//! environment, Grafana's provisioning and command lines; and the helpers
//! of the end-to-end tests (`up_run`, `up_shared_node`, `notebook`): a
//! `raymon up` child, the stand-ins, what a failed test leaves behind.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;
use raymon::cli::{Cli, Command as RaymonCommand, EnvArgs, UpArgs};
use raymon::launcher::grafana::{self, Layout, Settings};
use raymon::launcher::up;
use raymon::launcher::urls::{UrlInputs, UrlSource, Urls, jupyterhub_proxy};

use crate::support::{self, KillOnDrop, TempDir};

fn url_inputs<'a>(public: Option<&'a str>, hub: &'a str, prefix: Option<&'a str>) -> UrlInputs<'a> {
    UrlInputs {
        public_url: public,
        jupyterhub_url: hub,
        service_prefix: prefix,
        raymon: "127.0.0.1:9090".parse().unwrap(),
        grafana: "127.0.0.1:3000".parse().unwrap(),
        dashboard_port: 8265,
    }
}

#[test]
fn issue_6_jupyterhub_urls_join_slashes_and_never_say_none() {
    for (hub, prefix) in [
        (
            "https://jupyter.nersc.gov",
            "/user/alice/perlmutter-login-node-base/",
        ),
        (
            "https://jupyter.nersc.gov/",
            "/user/alice/perlmutter-login-node-base/",
        ),
        (
            "https://jupyter.nersc.gov//",
            "user/alice/perlmutter-login-node-base",
        ),
        (
            "https://jupyter.nersc.gov",
            "/user/alice/perlmutter-login-node-base",
        ),
    ] {
        let u = Urls::build(&url_inputs(None, hub, Some(prefix)));
        assert_eq!(u.source, UrlSource::JupyterHub);
        assert_eq!(
            u.grafana_public,
            "https://jupyter.nersc.gov/user/alice/perlmutter-login-node-base/proxy/3000",
            "{hub} + {prefix}"
        );
        assert_eq!(
            u.dashboard,
            "https://jupyter.nersc.gov/user/alice/perlmutter-login-node-base/proxy/8265/"
        );
        assert_eq!(
            u.grafana_root_url(),
            "https://jupyter.nersc.gov/user/alice/perlmutter-login-node-base/proxy/3000/"
        );
        // Ray's backend and Grafana's server stay on loopback.
        assert_eq!(u.grafana_local, "http://127.0.0.1:3000");
        assert_eq!(u.raymon, "http://127.0.0.1:9090");
        assert!(u.hint().is_none());
    }
    assert_eq!(
        jupyterhub_proxy("https://hub.example/", "/", 3000),
        "https://hub.example/proxy/3000"
    );

    // The notebook's defect: an unset prefix became "None" in the URL.
    for prefix in [None, Some(""), Some("None"), Some("  ")] {
        let u = Urls::build(&url_inputs(None, "https://jupyter.nersc.gov", prefix));
        assert_eq!(u.source, UrlSource::Localhost, "{prefix:?}");
        assert_eq!(u.grafana_public, "http://127.0.0.1:3000");
        assert_eq!(u.dashboard, "http://127.0.0.1:8265/");
        assert!(!format!("{u:?}").contains("None"));
        assert!(u.hint().unwrap().contains("--public-url"));
    }
}

#[test]
fn issue_6_public_url_wins_and_may_be_a_port_pattern() {
    let u = Urls::build(&url_inputs(
        Some("https://grafana.example/g/"),
        "https://jupyter.nersc.gov",
        Some("/user/a/"),
    ));
    assert_eq!(u.source, UrlSource::PublicUrl);
    assert_eq!(u.grafana_public, "https://grafana.example/g");
    assert_eq!(u.grafana_root_url(), "https://grafana.example/g/");
    assert_eq!(u.dashboard, "http://127.0.0.1:8265/");

    let u = Urls::build(&url_inputs(
        Some("https://login.example/proxy/{port}/"),
        "https://jupyter.nersc.gov",
        None,
    ));
    assert_eq!(u.grafana_public, "https://login.example/proxy/3000");
    assert_eq!(u.dashboard, "https://login.example/proxy/8265/");

    // A wildcard listen address is reached over loopback.
    let mut inp = url_inputs(None, "https://jupyter.nersc.gov", None);
    inp.raymon = "0.0.0.0:9091".parse().unwrap();
    inp.grafana = "[::]:3001".parse().unwrap();
    let u = Urls::build(&inp);
    assert_eq!(u.raymon, "http://127.0.0.1:9091");
    assert_eq!(u.grafana_local, "http://127.0.0.1:3001");
}

fn env_args(extra: &[&str]) -> EnvArgs {
    let mut argv = vec!["raymon", "env"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Some(RaymonCommand::Env(a)) => a,
        other => panic!("not env: {other:?}"),
    }
}

fn expected_env(tmp: &Path, grafana: u16) -> BTreeMap<String, String> {
    [
        ("RAY_GRAFANA_HOST", format!("http://127.0.0.1:{grafana}")),
        (
            "RAY_GRAFANA_IFRAME_HOST",
            format!("https://jupyter.nersc.gov/user/o'neil/node/proxy/{grafana}"),
        ),
        ("RAY_PROMETHEUS_HOST", "http://127.0.0.1:9191".into()),
        ("RAY_PROMETHEUS_NAME", "raymon".into()),
        ("RAY_TMPDIR", tmp.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `raymon env`'s output for these flags.
fn env_text(args: &EnvArgs, prefix: Option<&str>) -> String {
    let (vars, _) = raymon::launcher::env::env_vars(args, prefix).unwrap();
    raymon::launcher::env::render(&vars, args.format)
}

/// Each format, run by its own interpreter, sets exactly the expected
/// variables (the prefix holds a single quote to exercise quoting).
#[test]
fn issue_6_env_formats_set_the_same_variables() {
    let prefix = Some("/user/o'neil/node/");
    let tmp = TempDir::new("env");
    let grafana = support::free_port();
    let want = expected_env(tmp.path(), grafana);
    let flags = [
        format!("--data-dir={}", tmp.path().join("data").display()),
        format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
        format!("--grafana-listen-address=127.0.0.1:{grafana}"),
        "--grafana=native".into(),
        "--web.listen-address=127.0.0.1:9191".into(),
        "--auth=none".into(),
    ];
    let env_args = |format: &str| {
        let mut argv: Vec<&str> = flags.iter().map(String::as_str).collect();
        argv.push(format);
        env_args(&argv)
    };

    let json = env_text(&env_args("--format=json"), prefix);
    let got: BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
    assert_eq!(got, want);

    let shell = env_text(&env_args("--format=shell"), prefix);
    let script = tmp.path().join("env.sh");
    std::fs::write(&script, &shell).unwrap();
    let keys: Vec<&String> = want.keys().collect();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". {}; for k in {}; do eval \"printf '%s=%s\\n' $k \\\"\\$$k\\\"\"; done",
            script.display(),
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ))
        .output()
        .unwrap();
    let got: BTreeMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(got, want, "shell output:\n{shell}");

    let python = env_text(&env_args("--format=python"), prefix);
    let prog = format!(
        "{python}\nimport json\nprint(json.dumps({{k: os.environ[k] for k in {keys:?}}}))\n"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&prog)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, want, "python output:\n{python}");
}

/// With no `up` running, `raymon env` keeps the ports it printed in the data
/// dir for the `up --attach` that follows, makes the credentials Ray needs,
/// and with built-in dashboards names raymon as Ray's Grafana.
#[test]
fn issue_17_env_before_up_attach_keeps_its_ports() {
    use raymon::launcher::{auth, status};
    let tmp = TempDir::new("envp");
    let data = tmp.path().join("data");
    let port = support::free_port();
    let flags = [
        format!("--data-dir={}", data.display()),
        format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--grafana=builtin".into(),
        "--format=json".into(),
    ];
    let argv: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (vars, _) = raymon::launcher::env::env_vars(&env_args(&argv), None).unwrap();
    let vars: BTreeMap<&str, String> = vars.into_iter().collect();
    let raymon = format!("http://127.0.0.1:{port}");
    assert_eq!(vars["RAY_PROMETHEUS_HOST"], raymon);
    assert_eq!(vars["RAY_GRAFANA_HOST"], raymon);
    assert!(!vars.contains_key("RAY_ADDRESS"), "{vars:?}");
    let promised = status::Listen::promised(&data).unwrap();
    assert_eq!(promised.raymon.port(), port);
    let creds = auth::load(&data).unwrap().unwrap();
    assert_eq!(
        vars["RAY_PROMETHEUS_HEADERS"],
        auth::ray_prometheus_headers(&creds.raymon)
    );
}

fn settings() -> Settings {
    Settings {
        datasource_name: "raymon".into(),
        raymon_url: "http://127.0.0.1:9090".into(),
        scrape_interval: "10s".into(),
        http_addr: "127.0.0.1".into(),
        http_port: 3000,
        root_url: "https://jupyter.nersc.gov/user/a/proxy/3000/".into(),
        serve_from_sub_path: false,
        raymon_login: None,
        admin: None,
    }
}

#[test]
fn issue_6_provisioning_files_point_grafana_at_raymon() {
    let tmp = TempDir::new("prov");
    let layout = Layout::native(tmp.path());
    grafana::write(&layout, &settings()).unwrap();
    let g = tmp.path().join("grafana");

    let ds: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(g.join("provisioning/datasources/raymon.yml")).unwrap(),
    )
    .unwrap();
    let d = &ds["datasources"][0];
    assert_eq!(ds["apiVersion"], 1);
    assert_eq!(d["name"], "raymon");
    assert_eq!(d["type"], "prometheus");
    assert_eq!(d["access"], "proxy");
    assert_eq!(d["url"], "http://127.0.0.1:9090");
    assert_eq!(d["isDefault"], true);
    assert_eq!(d["jsonData"]["timeInterval"], "10s");
    assert_eq!(d["jsonData"]["httpMethod"], "POST");

    let prov: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(g.join("provisioning/dashboards/ray.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        prov["providers"][0]["options"]["path"],
        g.join("dashboards").display().to_string()
    );
    assert_eq!(prov["providers"][0]["type"], "file");

    let ini = std::fs::read_to_string(g.join("grafana.ini")).unwrap();
    let want = [
        ("server", "http_addr", "127.0.0.1".to_string()),
        ("server", "http_port", "3000".to_string()),
        (
            "server",
            "root_url",
            "https://jupyter.nersc.gov/user/a/proxy/3000/".to_string(),
        ),
        ("server", "serve_from_sub_path", "false".to_string()),
        ("security", "allow_embedding", "true".to_string()),
        ("auth.anonymous", "enabled", "true".to_string()),
        ("auth.anonymous", "org_role", "Viewer".to_string()),
        ("paths", "data", g.join("data").display().to_string()),
        ("paths", "plugins", g.join("plugins").display().to_string()),
        (
            "paths",
            "provisioning",
            g.join("provisioning").display().to_string(),
        ),
    ];
    for (section, key, value) in want {
        assert_eq!(
            ini_value(&ini, section, key).as_deref(),
            Some(value.as_str()),
            "[{section}] {key} in\n{ini}"
        );
    }
    assert!(
        !ini.contains("${RAYMON_"),
        "unfilled template value:\n{ini}"
    );
    for d in ["data", "plugins", "logs", "dashboards"] {
        assert!(g.join(d).is_dir(), "{d}");
    }

    // In a container every path is the volume's.
    let c = Layout::container(tmp.path());
    let files = grafana::render(&c, &settings()).unwrap();
    let ini = &files[0].1;
    assert_eq!(
        ini_value(ini, "paths", "data").as_deref(),
        Some("/grafana/data")
    );
    assert!(files[2].1.contains("/grafana/dashboards"));
}

/// The repo's `grafana/` templates, as a user running Grafana themselves
/// gets them: YAML with `${...}` that Grafana expands, and Ray's dashboards.
#[test]
fn issue_6_repo_grafana_folder_validates() {
    let root = support::manifest_dir().join("grafana");
    for f in [
        "provisioning/datasources/raymon.yml",
        "provisioning/dashboards/ray.yml",
    ] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        let v: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(v["apiVersion"], 1, "{f}");
    }
    assert!(root.join("README.md").exists());
    let filled = grafana::fill("${RAYMON_URL}", &[("RAYMON_URL", "x".into())]).unwrap();
    assert_eq!(filled, "x");
    assert!(grafana::fill("${RAYMON_NOPE}", &[]).is_err());

    // Every dashboard Ray generates parses as JSON, and every expr in it
    // parses with raymon's PromQL parser once Grafana has substituted its
    // variables.
    let dir = support::fixtures_dir().join("ray/session_latest/metrics/grafana/dashboards");
    let mut exprs = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        collect_exprs(&v, &mut exprs);
    }
    assert_eq!(exprs.len(), 403);
    for expr in &exprs {
        let q = substitute_grafana_variables(expr);
        if let Err(e) = raymon::promql::parser::parse_expr(&q) {
            panic!("{expr}\n  as {q}\n  -> {e}");
        }
    }
}

/// What Grafana sends for Ray's dashboard variables (as in the shared
/// research notes): range variables become durations, the rest match all.
fn substitute_grafana_variables(expr: &str) -> String {
    let mut q = expr.to_string();
    for (var, value) in [
        ("$__rate_interval", "1m0s"),
        ("$__range", "1800s"),
        ("$interval", "5m"),
        ("$window", "1m"),
    ] {
        q = q.replace(var, value);
    }
    let var = regex::Regex::new(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?").unwrap();
    var.replace_all(&q, ".*").into_owned()
}

/// The `expr` of every target in panels and in rows' panels.
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    for p in v["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
        collect_exprs(p, out);
    }
}

#[test]
fn issue_6_native_and_shifter_command_lines() {
    let data = Path::new("/scratch/u/raymon");
    let native = grafana::native_command(
        Path::new("/opt/grafana/bin/grafana"),
        Some(Path::new("/opt/grafana")),
        &Layout::native(data),
    );
    assert_eq!(native.program, PathBuf::from("/opt/grafana/bin/grafana"));
    assert_eq!(
        native.args,
        [
            "server",
            "--homepath=/opt/grafana",
            "--config=/scratch/u/raymon/grafana/grafana.ini"
        ]
    );
    let old = grafana::native_command(
        Path::new("/usr/sbin/grafana-server"),
        None,
        &Layout::native(data),
    );
    assert_eq!(old.args, ["--config=/scratch/u/raymon/grafana/grafana.ini"]);
    assert!(native.env.contains(&(
        "GF_PATHS_PROVISIONING".into(),
        "/scratch/u/raymon/grafana/provisioning".into()
    )));

    let shifter = grafana::shifter_command(
        Path::new("shifter"),
        "grafana/grafana-oss:9.4.3",
        &Layout::container(data),
    );
    assert_eq!(
        shifter.display(),
        "shifter --image=grafana/grafana-oss:9.4.3 \
         --volume=/scratch/u/raymon/grafana:/grafana \
         --env=GF_PATHS_CONFIG=/grafana/grafana.ini \
         --env=GF_PATHS_DATA=/grafana/data \
         --env=GF_PATHS_LOGS=/grafana/logs \
         --env=GF_PATHS_PLUGINS=/grafana/plugins \
         --env=GF_PATHS_PROVISIONING=/grafana/provisioning \
         /run.sh"
    );
    // The defect of the notebook this replaces: a bare `--entrypoint` last.
    assert_ne!(shifter.args.last().unwrap(), "--entrypoint");
}

#[test]
fn issue_6_up_flags_pass_extra_args_to_ray_start() {
    let a = up_args(&["--grafana=none", "--", "--num-cpus=1", "--port=7000"]);
    assert_eq!(a.ray_args, ["--num-cpus=1", "--port=7000"]);
    assert_eq!(a.grafana, raymon::cli::GrafanaMode::None);
    let spec = raymon::launcher::ray::StartSpec {
        ray_bin: "ray".into(),
        temp_dir: "/tmp/r".into(),
        dashboard_port: 8265,
        metrics_export_port: Some(8080),
        extra: a.ray_args.clone(),
    };
    assert_eq!(
        raymon::launcher::ray::start_args(&spec).unwrap(),
        [
            "start",
            "--head",
            "--block",
            "--temp-dir=/tmp/r",
            "--dashboard-port=8265",
            "--metrics-export-port=8080",
            "--num-cpus=1",
            "--port=7000"
        ]
    );
    assert_eq!(
        up::data_dir(None, Some("/scratch/u")),
        PathBuf::from("/scratch/u/raymon")
    );
    assert!(up::data_dir(None, None).ends_with("raymon-data"));
    assert!(up::data_dir(None, None).is_absolute());
}

pub(crate) fn up_args(extra: &[&str]) -> UpArgs {
    let mut argv = vec!["raymon", "up"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Some(RaymonCommand::Up(a)) => *a,
        other => panic!("not up: {other:?}"),
    }
}

pub(crate) fn ini_value(ini: &str, section: &str, key: &str) -> Option<String> {
    let mut cur = String::new();
    for line in ini.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            cur = s.to_string();
        } else if let Some((k, v)) = line.split_once('=')
            && cur == section
            && k.trim() == key
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

pub(crate) fn stand_ins() -> PathBuf {
    support::manifest_dir().join("tests/data/stand-ins")
}

/// A `raymon up` child in its own process group, stdout and stderr in files.
pub(crate) struct Up {
    pub(crate) child: KillOnDrop,
    out: PathBuf,
    err: PathBuf,
}

impl Up {
    pub(crate) fn start(args: &[String], env: &[(&str, String)], dir: &Path) -> Up {
        let out = dir.join("up.out");
        let err = dir.join("up.err");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raymon"));
        cmd.arg("up")
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .stdin(Stdio::null())
            .env_remove("JUPYTERHUB_SERVICE_PREFIX")
            .env_remove("SCRATCH")
            .env("HOME", support::ray_home())
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Up {
            child: KillOnDrop(cmd.spawn().unwrap()),
            out,
            err,
        }
    }

    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub(crate) fn wait_up(&mut self, timeout: Duration) -> String {
        support::wait_for(timeout, "raymon up to print its URLs", || {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!("raymon up exited ({status}):\n{}", self.stderr());
            }
            let s = self.stdout();
            if s.contains("Stop with") {
                Ok(s)
            } else {
                Err(self.stderr().lines().last().unwrap_or("").to_string())
            }
        })
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        support::wait_for(timeout, "raymon up to exit", || {
            match self.child.0.try_wait() {
                Ok(Some(s)) => Ok(s),
                _ => Err(self.stderr().lines().last().unwrap_or("").to_string()),
            }
        })
    }
}

pub(crate) fn down(data: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args(["down", &format!("--data-dir={}", data.display())])
        .output()
        .unwrap()
}

pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

pub(crate) fn recorded(path: &Path) -> serde_json::Value {
    support::wait_for(Duration::from_secs(20), "the stand-in's record", || {
        std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    })
}

/// A Ray temp dir as Ray leaves it: `session_latest` pointing at a session
/// with generated dashboards.
pub(crate) fn fake_ray_temp(dir: &Path) -> PathBuf {
    let temp = dir.join("ray");
    let session = temp.join("session_2026-11-26_00-00-00_000000_1");
    let dashboards = session.join("metrics/grafana/dashboards");
    std::fs::create_dir_all(&dashboards).unwrap();
    let from = support::fixtures_dir().join("ray/session_latest/metrics/grafana/dashboards");
    for name in [
        "default_grafana_dashboard.json",
        "serve_grafana_dashboard.json",
    ] {
        std::fs::copy(from.join(name), dashboards.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(&session, temp.join("session_latest")).unwrap();
    temp
}

/// Kills whatever a failed real-Ray test left behind: every PID `up`
/// recorded, and stragglers naming the temp dir.
pub(crate) struct Leftovers {
    pub(crate) data: PathBuf,
    pub(crate) temp: PathBuf,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let state = std::fs::read_to_string(self.data.join("raymon-up.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<raymon::launcher::supervisor::State>(&s).ok());
        for p in state.iter().flat_map(|s| &s.pids).filter(|p| p.alive()) {
            let _ = Command::new("kill")
                .args(["-KILL", &p.pid.to_string()])
                .status();
        }
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.temp.display().to_string()])
            .status();
    }
}

pub(crate) fn processes_naming(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && alive(*pid))
        .filter_map(|pid| {
            let c = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            c.contains(needle).then_some((pid, c))
        })
        .collect()
}

/// The file the `shifterimg` stand-in reads its pulled images from, holding
/// the default image.
pub(crate) fn pulled(dir: &Path) -> String {
    let path = dir.join("pulled-images");
    std::fs::write(&path, "docker:grafana/grafana-oss:9.4.3\n").unwrap();
    path.display().to_string()
}

/// Makes `dir` unwritable even for root (tests may run as root, for whom
/// mode bits do not count): mode 0555, and the immutable attribute when
/// that is not enough. Undone on drop.
pub(crate) struct Unwritable(PathBuf);

impl Unwritable {
    pub(crate) fn new(dir: &Path) -> Unwritable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let writable = |d: &Path| {
            let p = d.join(".probe");
            let ok = std::fs::write(&p, b"").is_ok();
            let _ = std::fs::remove_file(&p);
            ok
        };
        if writable(dir) {
            let _ = Command::new("chattr").arg("+i").arg(dir).status();
        }
        assert!(!writable(dir), "cannot make {} unwritable", dir.display());
        Unwritable(dir.to_path_buf())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

/// Stand-ins for shifter and shifterimg only (no `grafana` beside them).
pub(crate) fn shifter_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for n in ["shifter", "shifterimg"] {
        let _ = std::os::unix::fs::symlink(stand_ins().join(n), bin.join(n));
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `up`'s output once it exited: it failed, said why in one line, and
/// started nothing (no collector, no child, no state file).
pub(crate) fn refused_before_start(up: &mut Up, data: &Path) -> String {
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "{}", up.stderr());
    let err = up.stderr();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("Error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(!err.contains("Caused by"), "{err}");
    assert!(!err.contains("collector ready"), "{err}");
    assert!(!data.join("logs").exists(), "{err}");
    assert!(!data.join("raymon-up.json").exists(), "{err}");
    errors[0].to_string()
}

/// The status of `GET path` on `addr`, with an `Authorization` header when
/// given (`support::get` sends none).
pub(crate) fn status_with(addr: &str, path: &str, authorization: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut head = String::new();
    let _ = s.read_to_string(&mut head);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `raymon status --format json` for a data dir, and whether it exited 0.
pub(crate) fn status_json(data: &Path) -> (serde_json::Value, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args([
            "status",
            "--format=json",
            &format!("--data-dir={}", data.display()),
        ])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (v, out.status.success())
}

/// `host:port` of an `http://host:port[/]` URL.
pub(crate) fn host_port(url: &serde_json::Value) -> String {
    let u = url.as_str().unwrap();
    u.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}
