//! `raymon up`, `down` and `env` (issue 6): URLs, the notebook environment,
//! Grafana's provisioning and command lines, end to end with stand-in
//! `grafana`/`shifter` executables, and with real Ray.

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

fn up_args(extra: &[&str]) -> UpArgs {
    let mut argv = vec!["raymon", "up"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Some(RaymonCommand::Up(a)) => *a,
        other => panic!("not up: {other:?}"),
    }
}

fn expected_env() -> BTreeMap<String, String> {
    [
        ("RAY_GRAFANA_HOST", "http://127.0.0.1:3000"),
        (
            "RAY_GRAFANA_IFRAME_HOST",
            "https://jupyter.nersc.gov/user/o'neil/node/proxy/3000",
        ),
        ("RAY_PROMETHEUS_HOST", "http://127.0.0.1:9191"),
        ("RAY_PROMETHEUS_NAME", "raymon"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Each format, run by its own interpreter, sets exactly the expected
/// variables (the prefix holds a single quote to exercise quoting).
#[test]
fn issue_6_env_formats_set_the_same_variables() {
    let prefix = Some("/user/o'neil/node/");
    let tmp = TempDir::new("env");
    let want = expected_env();

    let json = up::env_text(
        &env_args(&["--format=json", "--web.listen-address=127.0.0.1:9191"]),
        prefix,
    );
    let got: BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
    assert_eq!(got, want);

    let shell = up::env_text(
        &env_args(&["--format=shell", "--web.listen-address=127.0.0.1:9191"]),
        prefix,
    );
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

    let python = up::env_text(
        &env_args(&["--format=python", "--web.listen-address=127.0.0.1:9191"]),
        prefix,
    );
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

fn ini_value(ini: &str, section: &str, key: &str) -> Option<String> {
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
    let dir = support::shared_dir().join("fixtures/ray/session_latest/metrics/grafana/dashboards");
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

fn stand_ins() -> PathBuf {
    support::manifest_dir().join("tests/data/stand-ins")
}

/// A `raymon up` child in its own process group, stdout and stderr in files.
pub(crate) struct Up {
    child: KillOnDrop,
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

    fn stdout(&self) -> String {
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

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

fn recorded(path: &Path) -> serde_json::Value {
    support::wait_for(Duration::from_secs(20), "the stand-in's record", || {
        std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    })
}

/// A Ray temp dir as Ray leaves it: `session_latest` pointing at a session
/// with generated dashboards.
fn fake_ray_temp(dir: &Path) -> PathBuf {
    let temp = dir.join("ray");
    let session = temp.join("session_2026-11-26_00-00-00_000000_1");
    let dashboards = session.join("metrics/grafana/dashboards");
    std::fs::create_dir_all(&dashboards).unwrap();
    let from = support::shared_dir().join("fixtures/ray/session_latest/metrics/grafana/dashboards");
    for name in [
        "default_grafana_dashboard.json",
        "serve_grafana_dashboard.json",
    ] {
        std::fs::copy(from.join(name), dashboards.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(&session, temp.join("session_latest")).unwrap();
    temp
}

#[test]
fn issue_6_up_attach_with_native_grafana_behind_jupyterhub_then_down() {
    let tmp = TempDir::new("upn");
    let data = tmp.path().join("data");
    let temp = fake_ray_temp(tmp.path());
    let record = tmp.path().join("record.json");
    let (gport, rport, dport) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            "--grafana=native".into(),
            "--auth=none".into(),
            format!("--grafana-bin={}", stand_ins().join("grafana").display()),
            "--grafana-home=/opt/grafana-home".into(),
            format!("--grafana-listen-address=127.0.0.1:{gport}"),
            format!("--web.listen-address=127.0.0.1:{rport}"),
            format!("--dashboard-port={dport}"),
        ],
        &[
            ("RAYMON_STANDIN_RECORD", record.display().to_string()),
            (
                "JUPYTERHUB_SERVICE_PREFIX",
                "/user/alice/perlmutter/".into(),
            ),
        ],
        tmp.path(),
    );
    let stdout = up.wait_up(Duration::from_secs(60));
    let hub = "https://jupyter.nersc.gov/user/alice/perlmutter";
    assert!(
        stdout.contains(&format!("Grafana:        {hub}/proxy/{gport}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Ray dashboard:  {hub}/proxy/{dport}/\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "os.environ[\"RAY_GRAFANA_IFRAME_HOST\"] = \"{hub}/proxy/{gport}\""
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("None"));

    let rec = recorded(&record);
    let g = data.join("grafana");
    assert_eq!(rec["name"], "grafana");
    assert_eq!(
        rec["argv"],
        serde_json::json!([
            "server",
            "--homepath=/opt/grafana-home",
            format!("--config={}", g.join("grafana.ini").display())
        ])
    );
    for (k, sub) in [
        ("GF_PATHS_CONFIG", "grafana.ini"),
        ("GF_PATHS_DATA", "data"),
        ("GF_PATHS_PLUGINS", "plugins"),
        ("GF_PATHS_PROVISIONING", "provisioning"),
        ("GF_PATHS_LOGS", "logs"),
    ] {
        assert_eq!(rec["env"][k], g.join(sub).display().to_string(), "{k}");
    }
    let ini = std::fs::read_to_string(g.join("grafana.ini")).unwrap();
    assert_eq!(
        ini_value(&ini, "server", "root_url").unwrap(),
        format!("{hub}/proxy/{gport}/")
    );
    assert_eq!(
        ini_value(&ini, "server", "http_port").unwrap(),
        gport.to_string()
    );
    let ds = std::fs::read_to_string(g.join("provisioning/datasources/raymon.yml")).unwrap();
    assert!(
        ds.contains(&format!("url: \"http://127.0.0.1:{rport}\"")),
        "{ds}"
    );
    // Ray's dashboards were copied for Grafana.
    assert!(
        g.join("dashboards/default_grafana_dashboard.json")
            .is_file()
    );
    assert!(g.join("dashboards/serve_grafana_dashboard.json").is_file());
    // raymon's own config follows the temp dir's discovery file.
    let prom = std::fs::read_to_string(data.join("prometheus.yml")).unwrap();
    assert!(
        prom.contains(
            &temp
                .join("prom_metrics_service_discovery.json")
                .display()
                .to_string()
        )
    );
    // Grafana answers as Ray's backend wants, and raymon is ready.
    let h = support::get(&format!("127.0.0.1:{gport}"), "/api/health").unwrap();
    assert_eq!(h.json()["database"], "ok");
    assert_eq!(
        support::get(&format!("127.0.0.1:{rport}"), "/-/ready")
            .unwrap()
            .status,
        200
    );
    // Grafana's output goes to its log.
    let log = std::fs::read_to_string(data.join("logs/grafana.log")).unwrap();
    assert!(log.contains("stand-in grafana started"), "{log}");

    let grafana_pid = rec["pid"].as_u64().unwrap() as u32;
    let up_pid = up.child.pid();
    assert!(alive(grafana_pid));
    let out = down(&data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!alive(grafana_pid), "Grafana survived raymon down");
    let status = up.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", up.stderr());
    assert!(!alive(up_pid));
    assert!(!data.join("raymon-up.json").exists());
    // A second `down` finds nothing to do.
    assert!(down(&data).status.success());
}

#[test]
fn issue_6_up_with_shifter_runs_the_image_start_script_and_stops_on_sigterm() {
    let tmp = TempDir::new("ups");
    let data = tmp.path().join("data");
    let temp = tmp.path().join("ray");
    let record = tmp.path().join("record.json");
    let (gport, rport) = (support::free_port(), support::free_port());
    let path = format!(
        "{}:{}",
        stand_ins().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            "--grafana=shifter".into(),
            format!("--grafana-listen-address=127.0.0.1:{gport}"),
            format!("--web.listen-address=127.0.0.1:{rport}"),
            "--public-url=https://example.org/proxy/{port}".into(),
        ],
        &[
            ("RAYMON_STANDIN_RECORD", record.display().to_string()),
            ("RAYMON_STANDIN_SHIFTER_IMAGES", pulled(tmp.path())),
            ("PATH", path),
        ],
        tmp.path(),
    );
    let stdout = up.wait_up(Duration::from_secs(60));
    assert!(stdout.contains(&format!(
        "Grafana:        https://example.org/proxy/{gport}\n"
    )));
    let rec = recorded(&record);
    assert_eq!(rec["name"], "shifter");
    let g = data.join("grafana").display().to_string();
    assert_eq!(
        rec["argv"],
        serde_json::json!([
            "--image=grafana/grafana-oss:9.4.3",
            format!("--volume={g}:/grafana"),
            "--env=GF_PATHS_CONFIG=/grafana/grafana.ini",
            "--env=GF_PATHS_DATA=/grafana/data",
            "--env=GF_PATHS_LOGS=/grafana/logs",
            "--env=GF_PATHS_PLUGINS=/grafana/plugins",
            "--env=GF_PATHS_PROVISIONING=/grafana/provisioning",
            "/run.sh"
        ])
    );
    let prov =
        std::fs::read_to_string(data.join("grafana/provisioning/dashboards/ray.yml")).unwrap();
    assert!(prov.contains("path: \"/grafana/dashboards\""), "{prov}");
    let h = support::get(&format!("127.0.0.1:{gport}"), "/api/health").unwrap();
    assert!(
        h.headers
            .to_lowercase()
            .contains("content-type: application/json")
    );

    // Ctrl-C's path: SIGTERM to `up` alone stops its children too.
    let pid = rec["pid"].as_u64().unwrap() as u32;
    Command::new("kill")
        .arg(up.child.pid().to_string())
        .status()
        .unwrap();
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}: {}", up.stderr());
    assert!(!alive(pid), "shifter stand-in survived");
    assert!(up.stderr().contains("stopping the collector"));
}

#[test]
fn issue_6_grafana_that_fails_stops_up_with_its_log() {
    let tmp = TempDir::new("upf");
    let data = tmp.path().join("data");
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!(
                "--grafana-bin={}",
                stand_ins().join("grafana-server").display()
            ),
            format!(
                "--grafana-listen-address=127.0.0.1:{}",
                support::free_port()
            ),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[("RAYMON_STANDIN_FAIL", "1".into())],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    let err = up.stderr();
    assert!(err.contains("grafana exited"), "{err}");
    assert!(err.contains("stand-in failing on purpose"), "{err}");
    assert!(!up.stdout().contains("raymon is up"));
    assert!(!data.join("raymon-up.json").exists());
}

#[test]
fn issue_6_no_grafana_binary_is_a_clear_error_before_anything_starts() {
    let tmp = TempDir::new("upb");
    let data = tmp.path().join("data");
    let mut up = Up::start(
        &[
            "--attach".into(),
            "--grafana=native".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[("PATH", "/nonexistent".into())],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(up.stderr().contains("--grafana-bin"), "{}", up.stderr());
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

fn processes_naming(needle: &str) -> Vec<(u32, String)> {
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

#[test]
fn issue_6_up_starts_real_ray_and_raymon_and_down_leaves_no_process() {
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("upr");
    let data = tmp.path().join("d");
    let temp = tmp.path().join("r");
    let _leftovers = Leftovers {
        data: data.clone(),
        temp: temp.clone(),
    };
    let (rport, dport, gcs) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let raymon_addr = format!("127.0.0.1:{rport}");
    let mut up = Up::start(
        &[
            "--grafana=none".into(),
            "--auth=none".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            format!("--ray-bin={}", support::ray_bin().display()),
            format!("--web.listen-address={raymon_addr}"),
            format!("--dashboard-port={dport}"),
            "--ready-timeout=240s".into(),
            "--".into(),
            format!("--port={gcs}"),
            "--num-cpus=1".into(),
            "--dashboard-host=127.0.0.1".into(),
            "--disable-usage-stats".into(),
        ],
        &[
            ("AUTOSCALER_METRIC_PORT", support::free_port().to_string()),
            ("DASHBOARD_METRIC_PORT", support::free_port().to_string()),
            ("RAY_USAGE_STATS_ENABLED", "0".into()),
        ],
        tmp.path(),
    );
    let stdout = up.wait_up(Duration::from_secs(300));
    assert!(
        stdout.contains(&format!("Ray dashboard:  http://127.0.0.1:{dport}/")),
        "{stdout}"
    );
    assert!(!stdout.contains("Grafana:"), "{stdout}");

    // Ray's processes are known to `up`, and got the environment.
    let state: raymon::launcher::supervisor::State =
        serde_json::from_str(&std::fs::read_to_string(data.join("raymon-up.json")).unwrap())
            .unwrap();
    let ray_start = state
        .children
        .iter()
        .find(|(n, _)| n == "ray")
        .map(|(_, p)| p.pid)
        .unwrap();
    let environ =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{ray_start}/environ")).unwrap())
            .replace('\0', "\n");
    assert!(environ.contains(&format!("RAY_PROMETHEUS_HOST=http://{raymon_addr}\n")));
    assert!(environ.contains("RAY_PROMETHEUS_NAME=raymon\n"));
    let ray_datasource = std::fs::read_to_string(
        temp.join("session_latest/metrics/grafana/provisioning/datasources/default.yml"),
    )
    .unwrap();
    assert!(ray_datasource.contains(&format!("url: http://{raymon_addr}")));

    // raymon scrapes Ray through the temp dir's discovery file.
    let n = support::wait_for(Duration::from_secs(90), "ray_* series", || {
        let r = support::get(
            &raymon_addr,
            &format!(
                "/federate?match[]={}",
                support::enc(r#"{__name__=~"ray_.+"}"#)
            ),
        )
        .map_err(|e| e.to_string())?;
        let n = r.body.lines().filter(|l| l.starts_with("ray_")).count();
        if n > 20 {
            Ok(n)
        } else {
            Err(format!("{n} ray_ series"))
        }
    });
    eprintln!("{n} ray_* series scraped");

    // Ray's backend asks raymon for `vector(1)` and finds it healthy.
    let engine = support::get(&raymon_addr, "/api/v1/query?query=vector(1)").unwrap();
    assert_eq!(engine.json()["status"], "success", "{}", engine.body);
    let health = support::get(&format!("127.0.0.1:{dport}"), "/api/prometheus_health").unwrap();
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["result"], true, "{}", health.body);
    // And the head node's series answer through PromQL.
    support::wait_for(Duration::from_secs(60), "ray_node_cpu_count", || {
        let q = support::get(
            &raymon_addr,
            &format!(
                "/api/v1/query?query={}",
                support::enc("count(ray_node_cpu_count)")
            ),
        )
        .map_err(|e| e.to_string())?;
        if q.json()["data"]["result"][0]["value"][1] == "1" {
            Ok(())
        } else {
            Err(q.body)
        }
    });

    // Everything `up` started, Ray's workers included, ends with `down`.
    let state: raymon::launcher::supervisor::State =
        serde_json::from_str(&std::fs::read_to_string(data.join("raymon-up.json")).unwrap())
            .unwrap();
    assert!(
        state.pids.len() >= 5,
        "Ray's processes not tracked: {state:?}"
    );
    let stopping = std::time::Instant::now();
    // A user's `tail -f` of a Ray log names the session dir but is not Ray's.
    let session = std::fs::read_link(temp.join("session_latest")).unwrap();
    let mut bystander = KillOnDrop(
        // In its own process group, so the sleep dies with it, and without
        // the test's output pipe, which a leftover would hold open.
        Command::new("sh")
            .args(["-c", "sleep 300", &session.display().to_string()])
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let naming_temp: Vec<_> = processes_naming(&temp.display().to_string())
        .into_iter()
        .filter(|(pid, _)| *pid != bystander.pid())
        .collect();
    assert!(!naming_temp.is_empty());
    let out = down(&data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "raymon down took {:?}; up's log:\n{}",
        stopping.elapsed(),
        up.stderr()
    );
    let left: Vec<_> = state.pids.iter().filter(|p| p.alive()).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    assert!(alive(bystander.pid()), "raymon down stopped a bystander");
    let group = format!("-{}", bystander.pid());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    bystander.terminate(Duration::from_secs(5));
    let left = processes_naming(&temp.display().to_string());
    assert!(left.is_empty(), "Ray processes left behind: {left:?}");
    for (pid, _) in &naming_temp {
        assert!(!alive(*pid), "{pid} survived");
    }
    let status = up.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", up.stderr());
}

/// Targets raymon scrapes, as `instance` labels.
fn target_instances(addr: &str) -> Result<Vec<String>, String> {
    let r = support::get(addr, "/api/v1/targets").map_err(|e| e.to_string())?;
    let v = r.json();
    Ok(v["data"]["activeTargets"]
        .as_array()
        .ok_or("no activeTargets")?
        .iter()
        .map(|t| t["labels"]["instance"].as_str().unwrap_or("").to_string())
        .collect())
}

/// A notebook that restarts Ray gets a new session: `up --attach` scrapes
/// its targets and hands its dashboards to Grafana.
#[test]
fn issue_6_attach_follows_a_new_ray_session() {
    let tmp = TempDir::new("upa");
    let data = tmp.path().join("data");
    let temp = tmp.path().join("ray");
    let rport = support::free_port();
    let addr = format!("127.0.0.1:{rport}");
    // Ray's writer: the session's file, and the temp dir's link to it.
    let session = |name: &str, target: &str, dashboard: &str| {
        let s = temp.join(name);
        let d = s.join("metrics/grafana/dashboards");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(dashboard), r#"{"panels":[]}"#).unwrap();
        let sd = s.join("prom_metrics_service_discovery.json");
        std::fs::write(
            &sd,
            format!(r#"[{{"labels": {{"job": "ray"}}, "targets": ["{target}"]}}]"#),
        )
        .unwrap();
        for (link, to) in [
            (temp.join("session_latest"), s.clone()),
            (temp.join("prom_metrics_service_discovery.json"), sd),
        ] {
            let tmp_link = link.with_extension("new");
            let _ = std::fs::remove_file(&tmp_link);
            std::os::unix::fs::symlink(&to, &tmp_link).unwrap();
            std::fs::rename(&tmp_link, &link).unwrap();
        }
    };
    session("session_a", &addr, "a.json");
    let mut up = Up::start(
        &[
            "--attach".into(),
            "--grafana=none".into(),
            "--auth=none".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            format!("--web.listen-address={addr}"),
        ],
        &[],
        tmp.path(),
    );
    up.wait_up(Duration::from_secs(60));
    let dashboards = data.join("grafana/dashboards");
    assert!(dashboards.join("a.json").is_file());
    support::wait_for(Duration::from_secs(20), "session a's target", || {
        let t = target_instances(&addr)?;
        if t == [addr.clone()] {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    });

    let other = format!("127.0.0.1:{}", support::free_port());
    session("session_b", &other, "b.json");
    support::wait_for(Duration::from_secs(30), "session b's target", || {
        let t = target_instances(&addr)?;
        if t == [other.clone()] {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    });
    support::wait_for(Duration::from_secs(15), "session b's dashboards", || {
        if dashboards.join("b.json").is_file() {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    assert!(down(&data).status.success());
    assert!(up.wait_exit(Duration::from_secs(10)).success());
}

/// `up` killed hard cannot stop its children; `down` does, from the state file.
#[test]
fn issue_6_down_stops_children_of_an_up_that_was_killed() {
    let tmp = TempDir::new("upk");
    let data = tmp.path().join("data");
    let record = tmp.path().join("record.json");
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--grafana-bin={}", stand_ins().join("grafana").display()),
            format!(
                "--grafana-listen-address=127.0.0.1:{}",
                support::free_port()
            ),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[("RAYMON_STANDIN_RECORD", record.display().to_string())],
        tmp.path(),
    );
    up.wait_up(Duration::from_secs(60));
    let grafana_pid = recorded(&record)["pid"].as_u64().unwrap() as u32;
    let _ = up.child.0.kill();
    let _ = up.child.0.wait();
    assert!(alive(grafana_pid), "Grafana should outlive a SIGKILLed up");
    // A new `up` on the same data dir would lose track of it: refused.
    let again = Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args([
            "up",
            "--attach",
            "--grafana=none",
            &format!("--data-dir={}", data.display()),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("raymon down"));
    let out = down(&data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("raymon up is gone"));
    assert!(!alive(grafana_pid), "Grafana survived raymon down");
    assert!(!data.join("raymon-up.json").exists());
}

/// With Grafana (a stand-in) and behind JupyterHub, Ray's own backend finds
/// Grafana healthy and hands the browser the proxied Grafana URL.
#[test]
fn issue_6_real_ray_reports_grafana_at_the_public_url() {
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("upg");
    let data = tmp.path().join("d");
    let temp = tmp.path().join("r");
    let _leftovers = Leftovers {
        data: data.clone(),
        temp: temp.clone(),
    };
    let (rport, dport, gport, gcs) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let mut up = Up::start(
        &[
            format!(
                "--grafana-bin={}",
                stand_ins().join("grafana-server").display()
            ),
            format!("--grafana-listen-address=127.0.0.1:{gport}"),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", temp.display()),
            format!("--ray-bin={}", support::ray_bin().display()),
            format!("--web.listen-address=127.0.0.1:{rport}"),
            format!("--dashboard-port={dport}"),
            "--ready-timeout=240s".into(),
            "--".into(),
            format!("--port={gcs}"),
            "--num-cpus=1".into(),
            "--dashboard-host=127.0.0.1".into(),
            "--disable-usage-stats".into(),
        ],
        &[
            ("AUTOSCALER_METRIC_PORT", support::free_port().to_string()),
            ("DASHBOARD_METRIC_PORT", support::free_port().to_string()),
            ("RAY_USAGE_STATS_ENABLED", "0".into()),
            ("JUPYTERHUB_SERVICE_PREFIX", "/user/bob/shared-node/".into()),
        ],
        tmp.path(),
    );
    let stdout = up.wait_up(Duration::from_secs(300));
    let hub = "https://jupyter.nersc.gov/user/bob/shared-node";
    assert!(
        stdout.contains(&format!("Ray dashboard:  {hub}/proxy/{dport}/\n")),
        "{stdout}"
    );
    let r = support::get(&format!("127.0.0.1:{dport}"), "/api/grafana_health").unwrap();
    let v = r.json();
    assert_eq!(v["result"], true, "{}", r.body);
    assert_eq!(
        v["data"]["grafanaHost"],
        format!("{hub}/proxy/{gport}"),
        "{}",
        r.body
    );
    assert_eq!(v["data"]["dashboardDatasource"], "raymon");
    // Grafana got Ray's dashboards of this session.
    assert!(
        data.join("grafana/dashboards/default_grafana_dashboard.json")
            .is_file()
    );
    assert!(down(&data).status.success());
    assert!(up.wait_exit(Duration::from_secs(10)).success());
    assert!(processes_naming(&temp.display().to_string()).is_empty());
}

/// Another user's Grafana on the port would pass the health check: refuse.
#[test]
fn issue_6_a_busy_grafana_port_is_refused() {
    let tmp = TempDir::new("upp");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let mut up = Up::start(
        &[
            "--attach".into(),
            format!("--data-dir={}", tmp.path().join("data").display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--grafana-bin={}", stand_ins().join("grafana").display()),
            format!("--grafana-listen-address=127.0.0.1:{port}"),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(
        up.stderr().contains("--grafana-listen-address"),
        "{}",
        up.stderr()
    );
}

/// A Grafana that never becomes healthy stops `up` after the ready timeout,
/// with the end of its log, and is not left running.
#[test]
fn issue_6_grafana_that_never_answers_times_out_with_its_log() {
    let tmp = TempDir::new("uph");
    let data = tmp.path().join("data");
    let record = tmp.path().join("record.json");
    let mut up = Up::start(
        &[
            "--attach".into(),
            "--ready-timeout=3s".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--grafana-bin={}", stand_ins().join("grafana").display()),
            format!(
                "--grafana-listen-address=127.0.0.1:{}",
                support::free_port()
            ),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[
            ("RAYMON_STANDIN_HANG", "1".into()),
            ("RAYMON_STANDIN_RECORD", record.display().to_string()),
        ],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    let err = up.stderr();
    assert!(err.contains("Grafana not ready after 3s"), "{err}");
    assert!(err.contains("stand-in hanging before it listens"), "{err}");
    let pid = recorded(&record)["pid"].as_u64().unwrap() as u32;
    assert!(!alive(pid), "Grafana left running");
}

/// The collector cannot listen: `up` stops and says why.
#[test]
fn issue_6_collector_that_cannot_listen_stops_up() {
    let tmp = TempDir::new("upl");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut up = Up::start(
        &[
            "--attach".into(),
            "--grafana=none".into(),
            format!("--data-dir={}", tmp.path().join("data").display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--web.listen-address={}", busy.local_addr().unwrap()),
        ],
        &[],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    let err = up.stderr();
    assert!(err.contains("the collector stopped"), "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
}

/// The file the `shifterimg` stand-in reads its pulled images from, holding
/// the default image.
fn pulled(dir: &Path) -> String {
    let path = dir.join("pulled-images");
    std::fs::write(&path, "docker:grafana/grafana-oss:9.4.3\n").unwrap();
    path.display().to_string()
}

/// Makes `dir` unwritable even for root (tests may run as root, for whom
/// mode bits do not count): mode 0555, and the immutable attribute when
/// that is not enough. Undone on drop.
struct Unwritable(PathBuf);

impl Unwritable {
    fn new(dir: &Path) -> Unwritable {
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

/// Each stand-in refuses what the real tool refuses, with the real tool's
/// words, so a command line shifter or Grafana would reject cannot pass a
/// test. Sources read (NERSC/shifter): `src/VolumeMap.c`
/// `_parseVolumeMap` (the "Invalid Volume Map: <map>, aborting! <code>"
/// line, "Invalid mount flags specified"), `validateVolumeMap_userRequest`
/// and `_validateVolumeMap` (absolute paths, no "..", targets under `/etc`,
/// `/var`, `/opt/udiImage` or exactly `/opt` refused with code 1, except
/// exactly `/var/tmp`; only `ro` and `perNodeCache` flags, else code 2;
/// a repeated flag code 3), `src/shifter_core.c` `setupUserMounts` (the
/// source must be an existing directory), `src/shifter.c` `parse_options`
/// and `src/ImageData.c` `lookup_ImageIdentifier` ("FAILED to lookup docker
/// image ..." for an image `shifterimg` does not know), `src/shifterimg.c`
/// `main` (the `images` columns). Grafana: `packaging/docker/run.sh` (the
/// image's start script names an unwritable `GF_PATHS_DATA`) and
/// `pkg/services/sqlstore/sqlstore.go` `buildConnectionString` (the
/// database is created in the data dir, so it must be writable).
#[test]
fn issue_17_stand_ins_refuse_what_the_real_tools_refuse() {
    let tmp = TempDir::new("sti");
    let g = tmp.path().join("g");
    std::fs::create_dir_all(g.join("data")).unwrap();
    std::fs::write(g.join("grafana.ini"), "[server]\nhttp_port = 1\n").unwrap();
    let ro = tmp.path().join("ro");
    let _ro = Unwritable::new(&ro);
    let images = pulled(tmp.path());
    let gs = g.display().to_string();

    // (what, program, args, environment, exits 0, a line of its output)
    type Row = (
        &'static str,
        &'static str,
        Vec<String>,
        Vec<(&'static str, String)>,
        bool,
        String,
    );
    let shifter = |image: &str, map: Option<&str>, target: &str| -> Vec<String> {
        let mut a = vec![format!("--image={image}")];
        a.extend(map.map(|m| format!("--volume={m}")));
        a.push(format!("--env=GF_PATHS_CONFIG={target}/grafana.ini"));
        a.push(format!("--env=GF_PATHS_DATA={target}/data"));
        a.push("/run.sh".into());
        a
    };
    let img = "grafana/grafana-oss:9.4.3";
    let invalid = |map: &str, code: u8| format!("Invalid Volume Map: {map}, aborting! {code}");
    let mut rows: Vec<Row> = Vec::new();
    for (what, map, target, ok, says) in [
        (
            "a volume at /grafana",
            format!("{gs}:/grafana"),
            "/grafana",
            true,
            String::new(),
        ),
        (
            "under /opt but not /opt",
            format!("{gs}:/opt/grafana"),
            "/opt/grafana",
            true,
            String::new(),
        ),
        (
            "exactly /var/tmp",
            format!("{gs}:/var/tmp"),
            "/var/tmp",
            true,
            String::new(),
        ),
        (
            "a target under /var",
            format!("{gs}:/var/lib/grafana"),
            "/var/lib/grafana",
            false,
            invalid(&format!("{gs}:/var/lib/grafana"), 1),
        ),
        (
            "a target under /etc",
            format!("{gs}:/etc/grafana"),
            "/etc/grafana",
            false,
            invalid(&format!("{gs}:/etc/grafana"), 1),
        ),
        (
            "exactly /opt",
            format!("{gs}:/opt"),
            "/opt",
            false,
            invalid(&format!("{gs}:/opt"), 1),
        ),
        (
            "under /opt/udiImage",
            format!("{gs}:/opt/udiImage/g"),
            "/opt/udiImage/g",
            false,
            invalid(&format!("{gs}:/opt/udiImage/g"), 1),
        ),
        (
            "a relative source",
            "g:/grafana".to_string(),
            "/grafana",
            false,
            invalid("g:/grafana", 1),
        ),
        (
            "a relative target",
            format!("{gs}:grafana"),
            "/grafana",
            false,
            invalid(&format!("{gs}:grafana"), 1),
        ),
        (
            "a source with ..",
            format!("{gs}/../g:/grafana"),
            "/grafana",
            false,
            invalid(&format!("{gs}/../g:/grafana"), 1),
        ),
        (
            "the rec flag",
            format!("{gs}:/grafana:rec"),
            "/grafana",
            false,
            invalid(&format!("{gs}:/grafana:rec"), 2),
        ),
        (
            "ro twice",
            format!("{gs}:/grafana:ro:ro"),
            "/grafana",
            false,
            invalid(&format!("{gs}:/grafana:ro:ro"), 3),
        ),
        (
            "an unknown flag",
            format!("{gs}:/grafana:rw"),
            "/grafana",
            false,
            "Invalid mount flags specified: rw".into(),
        ),
        (
            "a missing source",
            format!("{}/missing:/grafana", tmp.path().display()),
            "/grafana",
            false,
            format!(
                "FAILED to find real path for volume \"from\": {}/missing",
                tmp.path().display()
            ),
        ),
        // shifter accepts `ro`, but then Grafana cannot write its database.
        (
            "a read-only volume",
            format!("{gs}:/grafana:ro"),
            "/grafana",
            false,
            "GF_PATHS_DATA='/grafana/data' is not writable.".into(),
        ),
    ] {
        rows.push((
            what,
            "shifter",
            shifter(img, Some(&map), target),
            vec![],
            ok,
            says,
        ));
    }
    rows.push((
        "an image that is not pulled",
        "shifter",
        shifter(
            "grafana/grafana-oss:10.0.0",
            Some(&format!("{gs}:/grafana")),
            "/grafana",
        ),
        vec![],
        false,
        "FAILED to lookup docker image grafana/grafana-oss:10.0.0".into(),
    ));
    rows.push((
        "paths nothing mounts",
        "shifter",
        shifter(img, None, "/grafana"),
        vec![],
        false,
        "GF_PATHS_CONFIG='/grafana/grafana.ini' is not readable.".into(),
    ));
    // The image's own /var/lib/grafana is part of the read-only image.
    rows.push((
        "the image's data dir",
        "shifter",
        vec![format!("--image={img}"), "/run.sh".into()],
        vec![],
        false,
        "GF_PATHS_DATA='/var/lib/grafana' is not writable.".into(),
    ));
    let ini = format!("--config={gs}/grafana.ini");
    rows.push((
        "native with a writable data dir",
        "grafana",
        vec!["server".into(), ini.clone()],
        vec![("GF_PATHS_DATA", format!("{gs}/data"))],
        true,
        String::new(),
    ));
    rows.push((
        "native with an unwritable data dir",
        "grafana-server",
        vec![ini.clone()],
        vec![("GF_PATHS_DATA", ro.display().to_string())],
        false,
        format!("failed to open database {}/grafana.db", ro.display()),
    ));
    rows.push((
        "shifterimg images",
        "shifterimg",
        vec!["images".into()],
        vec![],
        true,
        "docker     READY".into(),
    ));
    rows.push((
        "shifterimg lookup of an image not pulled",
        "shifterimg",
        vec!["lookup".into(), "docker:grafana/grafana-oss:10.0.0".into()],
        vec![],
        false,
        String::new(),
    ));

    for (what, program, args, env, ok, says) in rows {
        let out = Command::new(stand_ins().join(program))
            .args(&args)
            .envs(env)
            .env("RAYMON_STANDIN_SHIFTER_IMAGES", &images)
            .env("RAYMON_STANDIN_CHECK_ONLY", "1")
            .env_remove("RAYMON_STANDIN_RECORD")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.success(),
            ok,
            "{what}: {program} {args:?}\n{text}"
        );
        assert!(
            says.is_empty() || text.lines().any(|l| l.contains(says.as_str())),
            "{what}: wanted {says:?} in\n{text}"
        );
        if !ok && program == "shifter" {
            assert_eq!(out.status.code(), Some(1), "{what}: {text}");
        }
    }

    // raymon's own check agrees with shifter's on every plain map above.
    use raymon::launcher::shifter::volume_map_problem;
    for (to, ok) in [
        ("/grafana", true),
        ("/opt/grafana", true),
        ("/var/tmp", true),
        ("/var/lib/grafana", false),
        ("/etc/grafana", false),
        ("/opt", false),
        ("/opt/udiImage/g", false),
        ("grafana", false),
    ] {
        assert_eq!(volume_map_problem(&g, to).is_none(), ok, "{to}");
    }
    assert!(volume_map_problem(Path::new("g"), "/grafana").is_some());
    assert!(volume_map_problem(&g.join("../g"), "/grafana").is_some());
    // `shifterimg images` columns (src/shifterimg.c, main): system, type,
    // status, id, pull time, tag.
    use raymon::launcher::shifter::{ImageStatus, image_status};
    let listing = "perlmutter docker     READY    3b2f1a9c4d   2026-11-01T10:00:00 grafana/grafana-oss:9.4.3     \n\
                   perlmutter docker     PULLING  7c1d2e3f4a   2026-11-02T10:00:00 grafana/grafana-oss:10.0.0    \n";
    assert_eq!(image_status(listing, img), ImageStatus::Ready);
    assert_eq!(
        image_status(listing, &format!("docker:{img}")),
        ImageStatus::Ready
    );
    assert_eq!(
        image_status(listing, "grafana/grafana-oss:10.0.0"),
        ImageStatus::Listed("PULLING".into())
    );
    assert_eq!(
        image_status(listing, "grafana/grafana-oss:9.4"),
        ImageStatus::Missing
    );

    // shifter's path filter would drop the space and mount another path.
    assert!(volume_map_problem(Path::new("/tmp/my data"), "/grafana").is_some());
}

/// `--grafana auto` (the default): a Grafana binary, else shifter, else builtin,
/// with the reason `up` prints.
#[test]
fn issue_17_grafana_auto_prefers_a_binary_then_shifter_then_builtin() {
    use raymon::cli::GrafanaMode;
    let tmp = TempDir::new("auto");
    let (native, shift, empty) = (
        tmp.path().join("native"),
        tmp.path().join("shifter"),
        tmp.path().join("empty"),
    );
    for d in [&native, &shift, &empty] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::os::unix::fs::symlink(stand_ins().join("grafana"), native.join("grafana-server")).unwrap();
    for n in ["shifter", "shifterimg"] {
        std::os::unix::fs::symlink(stand_ins().join(n), shift.join(n)).unwrap();
    }
    let path = |dirs: &[&PathBuf]| {
        std::env::join_paths(dirs.iter().map(|d| d.as_path()))
            .unwrap()
            .into_string()
            .unwrap()
    };
    let args = up_args(&[]);
    assert_eq!(args.grafana, GrafanaMode::Auto);
    let c = up::choose_grafana(&args, &path(&[&empty, &shift, &native]));
    assert_eq!(c.mode, GrafanaMode::Native);
    assert!(c.why.contains("grafana-server is on PATH"), "{}", c.why);
    let c = up::choose_grafana(&args, &path(&[&empty, &shift]));
    assert_eq!(c.mode, GrafanaMode::Shifter);
    assert!(c.why.contains("shifter"), "{}", c.why);
    assert!(c.why.contains("grafana/grafana-oss:9.4.3"), "{}", c.why);
    let c = up::choose_grafana(&args, &path(&[&empty]));
    assert_eq!(c.mode, GrafanaMode::Builtin);
    assert!(c.why.contains("nor shifter"), "{}", c.why);
    let with_bin = up_args(&["--grafana-bin=/opt/g/bin/grafana"]);
    assert_eq!(
        up::choose_grafana(&with_bin, &path(&[&shift])).mode,
        GrafanaMode::Native
    );
    let forced = up_args(&["--grafana=shifter"]);
    assert_eq!(
        up::choose_grafana(&forced, &path(&[&native])).mode,
        GrafanaMode::Shifter
    );
}

/// Stand-ins for shifter and shifterimg only (no `grafana` beside them).
fn shifter_path(dir: &Path) -> String {
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
fn refused_before_start(up: &mut Up, data: &Path) -> String {
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

#[test]
fn issue_17_bad_input_is_a_one_line_error_before_anything_starts() {
    let tmp = TempDir::new("bad");
    let base = |data: &Path| -> Vec<String> {
        vec![
            "--attach".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
            format!(
                "--grafana-listen-address=127.0.0.1:{}",
                support::free_port()
            ),
        ]
    };
    let empty = tmp.path().join("no-images");
    std::fs::write(&empty, "").unwrap();

    // The image was never pulled: the exact command to run.
    let data = tmp.path().join("d1");
    let mut args = base(&data);
    args.push("--grafana=shifter".into());
    let mut up = Up::start(
        &args,
        &[
            ("PATH", shifter_path(tmp.path())),
            ("RAYMON_STANDIN_SHIFTER_IMAGES", empty.display().to_string()),
        ],
        tmp.path(),
    );
    let e = refused_before_start(&mut up, &data);
    assert!(
        e.contains("run `shifterimg pull grafana/grafana-oss:9.4.3`"),
        "{e}"
    );

    // shifter is not installed.
    let data = tmp.path().join("d2");
    let mut args = base(&data);
    args.push("--grafana=shifter".into());
    let mut up = Up::start(&args, &[("PATH", "/nonexistent".into())], tmp.path());
    let e = refused_before_start(&mut up, &data);
    assert!(e.contains("shifter not found"), "{e}");

    // The data dir cannot be written.
    let data = tmp.path().join("d3");
    let _guard = Unwritable::new(&data);
    let mut args = base(&data);
    args.push("--grafana=none".into());
    let mut up = Up::start(&args, &[], tmp.path());
    let e = refused_before_start(&mut up, &data);
    assert!(e.contains("is not writable"), "{e}");
    assert!(e.contains("--data-dir"), "{e}");

    // Flags of an `up` that starts Ray itself under `temp`.
    let starting_ray = |data: &Path, temp: &Path| {
        let mut args = base(data);
        args.retain(|a| a != "--attach" && !a.starts_with("--ray-temp-dir"));
        args.extend([
            "--grafana=none".into(),
            format!("--ray-temp-dir={}", temp.display()),
        ]);
        args
    };

    // Ray's unix sockets would not fit under this temp dir (Ray's
    // `_private/utils.py`, `validate_socket_filepath`: 107 bytes).
    let data = tmp.path().join("d5");
    let long = tmp
        .path()
        .join("a-temp-dir-name-long-enough-for-ray-sockets");
    let mut up = Up::start(&starting_ray(&data, &long), &[], tmp.path());
    let e = refused_before_start(&mut up, &data);
    assert!(e.contains("too long for Ray's unix sockets"), "{e}");
    assert!(!long.exists());
    use raymon::launcher::ray::{check_socket_room, default_temp_dir};
    assert_eq!(
        default_temp_dir(false, "alice"),
        Path::new("/tmp/raymon-alice/ray")
    );
    assert!(check_socket_room(&default_temp_dir(false, "a-long-user-name-x")).is_ok());
    assert_eq!(default_temp_dir(true, "alice"), Path::new("/tmp/ray"));

    // Another up's Ray uses the temp dir: its lock, held here.
    let data = tmp.path().join("d6");
    let shared = tmp.path().join("shared-ray");
    std::fs::create_dir_all(&shared).unwrap();
    let held = std::fs::File::create(shared.join("raymon-up.lock")).unwrap();
    held.lock().unwrap();
    let mut up = Up::start(&starting_ray(&data, &shared), &[], tmp.path());
    let e = refused_before_start(&mut up, &data);
    assert!(e.contains("is used by another raymon up"), "{e}");
    drop(held);

    // Another live `up` owns the data dir.
    let data = tmp.path().join("d4");
    let mut args = base(&data);
    args.push("--grafana=none".into());
    let first_dir = tmp.path().join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    let mut first = Up::start(&args, &[], &first_dir);
    first.wait_up(Duration::from_secs(60));
    let mut args = base(&data);
    args.push("--grafana=none".into());
    let mut second = Up::start(&args, &[], tmp.path());
    let status = second.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    let err = second.stderr();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("Error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("still running"), "{err}");
    assert!(errors[0].contains(&format!("raymon down --data-dir {}", data.display())));
    assert!(!err.contains("collector ready"), "{err}");
    // The first one is untouched.
    assert!(first.child.0.try_wait().unwrap().is_none());
    assert!(down(&data).status.success());
    assert!(first.wait_exit(Duration::from_secs(20)).success());
}

/// `up` with real Ray and a Grafana stand-in run as `mode` says: Ray's own
/// backend finds both Grafana and raymon healthy. Returns what the stand-in
/// recorded.
fn real_ray_with_grafana(mode: &str) -> serde_json::Value {
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new(&format!("rg{}", &mode[..1]));
    let data = tmp.path().join("d");
    let temp = tmp.path().join("r");
    let _leftovers = Leftovers {
        data: data.clone(),
        temp: temp.clone(),
    };
    let record = tmp.path().join("record.json");
    let (rport, dport, gport, gcs) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let mut args = vec![
        format!("--grafana={mode}"),
        format!("--grafana-listen-address=127.0.0.1:{gport}"),
        format!("--data-dir={}", data.display()),
        format!("--ray-temp-dir={}", temp.display()),
        format!("--ray-bin={}", support::ray_bin().display()),
        format!("--web.listen-address=127.0.0.1:{rport}"),
        format!("--dashboard-port={dport}"),
        "--ready-timeout=240s".into(),
    ];
    let mut env = vec![
        ("AUTOSCALER_METRIC_PORT", support::free_port().to_string()),
        ("DASHBOARD_METRIC_PORT", support::free_port().to_string()),
        ("RAY_USAGE_STATS_ENABLED", "0".into()),
        ("RAYMON_STANDIN_RECORD", record.display().to_string()),
    ];
    if mode == "shifter" {
        env.push(("PATH", shifter_path(tmp.path())));
        env.push(("RAYMON_STANDIN_SHIFTER_IMAGES", pulled(tmp.path())));
    } else {
        args.push(format!(
            "--grafana-bin={}",
            stand_ins().join("grafana").display()
        ));
    }
    args.extend([
        "--".into(),
        format!("--port={gcs}"),
        "--num-cpus=1".into(),
        "--dashboard-host=127.0.0.1".into(),
        "--disable-usage-stats".into(),
    ]);
    let mut up = Up::start(&args, &env, tmp.path());
    let stdout = up.wait_up(Duration::from_secs(300));
    assert!(
        stdout.contains(&format!("Grafana:        http://127.0.0.1:{gport}\n")),
        "{stdout}"
    );
    let dashboard = format!("127.0.0.1:{dport}");
    let r = support::get(&dashboard, "/api/grafana_health").unwrap();
    assert_eq!(r.json()["result"], true, "{}", r.body);
    // Ray's probe of raymon answers once raymon has been asked `vector(1)`;
    // nothing else needs to have been scraped.
    let r = support::get(&dashboard, "/api/prometheus_health").unwrap();
    assert_eq!(r.json()["result"], true, "{}", r.body);
    let rec = recorded(&record);
    // Why `up`'s default temp dir sits in a closed directory of the user's.
    assert_eq!(mode_of(&temp), 0o777, "Ray opens its temp dir to everyone");
    assert!(down(&data).status.success());
    assert!(up.wait_exit(Duration::from_secs(30)).success());
    assert!(processes_naming(&temp.display().to_string()).is_empty());
    rec
}

/// With shifter, the command line `up` builds passes every rule of the
/// strict stand-in (it would have exited otherwise) and of raymon's own
/// check, and every Grafana path is inside the mounted volume.
#[test]
fn issue_17_real_ray_with_shifter_grafana_is_healthy() {
    let rec = real_ray_with_grafana("shifter");
    assert_eq!(rec["name"], "shifter");
    let argv: Vec<String> = serde_json::from_value(rec["argv"].clone()).unwrap();
    let volume = argv
        .iter()
        .find_map(|a| a.strip_prefix("--volume="))
        .unwrap();
    let (from, to) = volume.split_once(':').unwrap();
    assert_eq!(to, "/grafana");
    assert!(
        raymon::launcher::shifter::volume_map_problem(Path::new(from), to).is_none(),
        "{volume}"
    );
    let paths: Vec<&String> = argv
        .iter()
        .filter(|a| a.starts_with("--env=GF_PATHS_"))
        .collect();
    assert_eq!(paths.len(), 5, "{argv:?}");
    for p in paths {
        let value = p.split_once('=').unwrap().1.split_once('=').unwrap().1;
        assert!(value.starts_with("/grafana/"), "{p}");
    }
}

#[test]
fn issue_17_real_ray_with_native_grafana_is_healthy() {
    let rec = real_ray_with_grafana("native");
    assert_eq!(rec["name"], "grafana");
    assert_eq!(rec["argv"][0], "server");
}

/// The status of `GET path` on `addr`, with an `Authorization` header when
/// given (`support::get` sends none).
fn status_with(addr: &str, path: &str, authorization: Option<&str>) -> u16 {
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

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// By default `up` makes passwords: raymon's API wants basic auth, Grafana's
/// datasource and Ray (`RAY_PROMETHEUS_HEADERS`) get it, Grafana's admin is
/// not admin/admin, the files holding them are the user's alone, and the
/// admin password is printed once only.
#[test]
fn issue_17_credentials_by_default() {
    use raymon::launcher::auth;
    let tmp = TempDir::new("cred");
    let data = tmp.path().join("data");
    let rport = support::free_port();
    let raymon_addr = format!("127.0.0.1:{rport}");
    let args = [
        "--attach".into(),
        format!("--data-dir={}", data.display()),
        format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
        format!("--grafana-bin={}", stand_ins().join("grafana").display()),
        format!(
            "--grafana-listen-address=127.0.0.1:{}",
            support::free_port()
        ),
        format!("--web.listen-address={raymon_addr}"),
    ];
    let mut up = Up::start(&args, &[], tmp.path());
    let stdout = up.wait_up(Duration::from_secs(60));
    let file = data.join("credentials.json");
    assert_eq!(mode_of(&file), 0o600);
    let creds = auth::load(&data).unwrap().unwrap();
    assert_eq!(creds.raymon.user, "raymon");
    assert_eq!(creds.grafana_admin.user, "admin");
    assert_ne!(creds.grafana_admin.password, "admin");
    assert!(creds.raymon.password.len() >= 20);
    assert!(
        stdout.contains(&format!(
            "Grafana admin: user admin, password {}",
            creds.grafana_admin.password
        )),
        "{stdout}"
    );
    assert!(!stdout.contains(&creds.raymon.password), "{stdout}");
    assert_eq!(mode_of(&data.join("web.yml")), 0o600);

    // raymon: 401 without credentials, on every path, and 200 with them.
    let good = auth::authorization(&creds.raymon);
    let wrong = auth::authorization(&auth::Login {
        user: "raymon".into(),
        password: "admin".into(),
    });
    for path in ["/api/v1/query?query=vector(1)", "/-/healthy"] {
        assert_eq!(status_with(&raymon_addr, path, None), 401, "{path}");
        assert_eq!(status_with(&raymon_addr, path, Some(&wrong)), 401, "{path}");
        assert_eq!(status_with(&raymon_addr, path, Some(&good)), 200, "{path}");
    }

    // Grafana's datasource authenticates; its admin is ours.
    let g = data.join("grafana");
    let ds_path = g.join("provisioning/datasources/raymon.yml");
    assert_eq!(mode_of(&ds_path), 0o600);
    let ds: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(&ds_path).unwrap()).unwrap();
    let d = &ds["datasources"][0];
    assert_eq!(d["basicAuth"], true);
    assert_eq!(d["basicAuthUser"], "raymon");
    assert_eq!(
        d["secureJsonData"]["basicAuthPassword"],
        creds.raymon.password.as_str()
    );
    assert_eq!(d["jsonData"]["httpMethod"], "POST");
    let ini = std::fs::read_to_string(g.join("grafana.ini")).unwrap();
    assert_eq!(mode_of(&g.join("grafana.ini")), 0o600);
    assert_eq!(
        ini_value(&ini, "security", "admin_password").as_deref(),
        Some(creds.grafana_admin.password.as_str())
    );
    assert_eq!(
        ini_value(&ini, "security", "allow_embedding").as_deref(),
        Some("true")
    );

    // What a notebook sets for Ray, in Ray's format for the variable.
    let env = Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args([
            "env",
            "--format=json",
            &format!("--data-dir={}", data.display()),
        ])
        .output()
        .unwrap();
    let vars: serde_json::Value = serde_json::from_slice(&env.stdout).unwrap();
    let headers: serde_json::Value =
        serde_json::from_str(vars["RAY_PROMETHEUS_HEADERS"].as_str().unwrap()).unwrap();
    assert_eq!(headers, serde_json::json!({ "Authorization": good }));
    let status = Command::new(env!("CARGO_BIN_EXE_raymon"))
        .args(["status", &format!("--data-dir={}", data.display())])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains(&format!("raymon:                  http://{raymon_addr}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("credentials:             {}\n", file.display())),
        "{text}"
    );
    assert!(!text.contains(&creds.raymon.password), "{text}");
    assert!(down(&data).status.success());
    assert!(up.wait_exit(Duration::from_secs(20)).success());

    // A second run keeps the credentials (Grafana keeps its first admin
    // password) and does not print the password again.
    let mut again = Up::start(&args, &[], tmp.path());
    let stdout = again.wait_up(Duration::from_secs(60));
    assert_eq!(auth::load(&data).unwrap().unwrap(), creds);
    assert!(!stdout.contains(&creds.grafana_admin.password), "{stdout}");
    assert!(stdout.contains("Grafana admin: user admin, password in"));
    assert!(down(&data).status.success());
    assert!(again.wait_exit(Duration::from_secs(20)).success());

    // A Grafana database from before the credentials keeps its admin
    // password: said, not hidden.
    let old = tmp.path().join("old");
    std::fs::create_dir_all(old.join("grafana/data")).unwrap();
    std::fs::write(old.join("grafana/data/grafana.db"), b"").unwrap();
    let mut moved = args.to_vec();
    moved[1] = format!("--data-dir={}", old.display());
    let mut up = Up::start(&moved, &[], tmp.path());
    up.wait_up(Duration::from_secs(60));
    assert!(
        up.stderr().contains("predates the new credentials"),
        "{}",
        up.stderr()
    );
    assert!(down(&old).status.success());
    assert!(up.wait_exit(Duration::from_secs(20)).success());

    // --auth none: no password asked.
    let mut open = Up::start(
        &[&args[..], &["--auth=none".to_string()]].concat(),
        &[],
        tmp.path(),
    );
    open.wait_up(Duration::from_secs(60));
    assert_eq!(status_with(&raymon_addr, "/-/healthy", None), 200);
    assert!(down(&data).status.success());
    assert!(open.wait_exit(Duration::from_secs(20)).success());
}

/// `raymon status --format json` for a data dir, and whether it exited 0.
fn status_json(data: &Path) -> (serde_json::Value, bool) {
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
fn host_port(url: &serde_json::Value) -> String {
    let u = url.as_str().unwrap();
    u.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Two users' stacks on one login node, both on default flags: the second
/// finds the first's ports taken and moves each to a free one, both are
/// healthy as Ray's backend sees them, each raymon wants its own password,
/// and `down` of one leaves the other running.
#[test]
fn issue_17_two_stacks_on_one_node_with_default_ports() {
    use raymon::launcher::auth;
    let _guard = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("two");
    let start = |name: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("d");
        let temp = dir.join("r");
        let guard = Leftovers {
            data: data.clone(),
            temp: temp.clone(),
        };
        let mut up = Up::start(
            &[
                format!("--data-dir={}", data.display()),
                format!("--ray-temp-dir={}", temp.display()),
                format!("--ray-bin={}", support::ray_bin().display()),
                format!("--grafana-bin={}", stand_ins().join("grafana").display()),
                "--ready-timeout=240s".into(),
                "--".into(),
                "--num-cpus=1".into(),
                "--dashboard-host=127.0.0.1".into(),
                "--disable-usage-stats".into(),
            ],
            &[("RAY_USAGE_STATS_ENABLED", "0".into())],
            &dir,
        );
        up.wait_up(Duration::from_secs(300));
        (up, data, guard)
    };
    let (mut a, data_a, _ga) = start("a");
    let (mut b, data_b, _gb) = start("b");
    assert!(b.stderr().contains("is taken; using"), "{}", b.stderr());

    let (sa, ok_a) = status_json(&data_a);
    let (sb, ok_b) = status_json(&data_b);
    assert!(ok_a && ok_b, "{sa}\n{sb}");
    for s in [&sa, &sb] {
        assert_eq!(s["running"], true);
        for k in ["up", "ray", "grafana"] {
            assert!(s["pids"][k].as_u64().is_some(), "{k}: {s}");
        }
        assert!(s["public_urls"]["grafana"].is_string(), "{s}");
        assert!(s["public_urls"]["ray_dashboard"].is_string(), "{s}");
    }
    for k in ["raymon_url", "grafana_url", "ray_dashboard_url"] {
        assert_ne!(host_port(&sa[k]), host_port(&sb[k]), "{k}");
    }

    let creds = |s: &serde_json::Value| {
        let file = PathBuf::from(s["credentials_file"].as_str().unwrap());
        auth::load(file.parent().unwrap()).unwrap().unwrap()
    };
    let (ca, cb) = (creds(&sa), creds(&sb));
    assert_ne!(ca.raymon.password, cb.raymon.password);
    let healthy = |s: &serde_json::Value| {
        let dashboard = host_port(&s["ray_dashboard_url"]);
        for probe in ["/api/grafana_health", "/api/prometheus_health"] {
            let r = support::get(&dashboard, probe).unwrap();
            assert_eq!(r.json()["result"], true, "{probe}: {}", r.body);
        }
    };
    healthy(&sa);
    healthy(&sb);
    let (ra, rb) = (host_port(&sa["raymon_url"]), host_port(&sb["raymon_url"]));
    let (auth_a, auth_b) = (
        auth::authorization(&ca.raymon),
        auth::authorization(&cb.raymon),
    );
    let q = "/api/v1/query?query=vector(1)";
    assert_eq!(status_with(&ra, q, None), 401);
    assert_eq!(status_with(&ra, q, Some(&auth_a)), 200);
    assert_eq!(status_with(&rb, q, Some(&auth_a)), 401);
    assert_eq!(status_with(&rb, q, Some(&auth_b)), 200);

    // `down` of the first stops only the first.
    let pids_a: Vec<u32> = sa["pids"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    assert!(down(&data_a).status.success());
    assert!(a.wait_exit(Duration::from_secs(60)).success());
    for p in pids_a {
        assert!(!alive(p), "{p} of the first stack survived its down");
    }
    let (after, ok) = status_json(&data_a);
    assert!(!ok);
    assert_eq!(after["running"], false);
    let (still, ok) = status_json(&data_b);
    assert!(ok, "{still}");
    assert_eq!(still["pids"], sb["pids"]);
    healthy(&sb);
    assert_eq!(status_with(&rb, q, Some(&auth_b)), 200);
    assert!(down(&data_b).status.success());
    assert!(b.wait_exit(Duration::from_secs(60)).success());
}

/// The directory around `up`'s default Ray temp dir is the user's alone,
/// and one that another user made first is refused.
#[test]
fn issue_17_private_dir_is_closed_and_must_be_ours() {
    use raymon::launcher::auth::private_dir;
    let tmp = TempDir::new("priv");
    let mine = tmp.path().join("raymon-me");
    std::fs::create_dir_all(&mine).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    private_dir(&mine).unwrap();
    assert_eq!(mode_of(&mine), 0o700);
    private_dir(&tmp.path().join("new/deeper")).unwrap();
    assert_eq!(mode_of(&tmp.path().join("new/deeper")), 0o700);
    // Only root can give a directory away; elsewhere the check above is
    // what runs.
    let theirs = tmp.path().join("raymon-them");
    std::fs::create_dir_all(&theirs).unwrap();
    if std::os::unix::fs::chown(&theirs, Some(65534), None).is_ok() {
        let e = private_dir(&theirs).unwrap_err().to_string();
        assert!(e.contains("belongs to another user"), "{e}");
        assert_ne!(mode_of(&theirs), 0o700);
    }
}

/// A Grafana container that is slow to answer: `up` says it is waiting,
/// and when `--grafana-timeout` runs out it names the flag to raise.
#[test]
fn issue_17_slow_grafana_shows_progress_and_names_its_timeout() {
    let tmp = TempDir::new("slow");
    let data = tmp.path().join("data");
    let mut up = Up::start(
        &[
            "--attach".into(),
            "--grafana=shifter".into(),
            "--grafana-timeout=7s".into(),
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
            format!(
                "--grafana-listen-address=127.0.0.1:{}",
                support::free_port()
            ),
            format!("--web.listen-address=127.0.0.1:{}", support::free_port()),
        ],
        &[
            ("PATH", shifter_path(tmp.path())),
            ("RAYMON_STANDIN_SHIFTER_IMAGES", pulled(tmp.path())),
            ("RAYMON_STANDIN_HANG", "1".into()),
        ],
        tmp.path(),
    );
    let status = up.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    let err = up.stderr();
    assert!(
        err.contains("waiting up to 7s for Grafana (--grafana-timeout)"),
        "{err}"
    );
    assert!(err.contains("raymon up: waiting for Grafana (5s)"), "{err}");
    assert!(err.contains("Grafana not ready after 7s"), "{err}");
    assert!(err.contains("raise --grafana-timeout"), "{err}");
    // The stand-in passed shifter's checks before it hung.
    assert!(err.contains("stand-in hanging before it listens"), "{err}");
}
