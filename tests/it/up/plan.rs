//! What `up` plans without starting anything: public URLs behind JupyterHub,
//! the notebook environment in each shell format, Grafana's provisioning
//! and command lines, and flags passed on to `ray start`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use raymon::cli::{Cli, Command as RaymonCommand, EnvArgs, UpArgs};
use raymon::launcher::grafana::{self, Layout, Settings};
use raymon::launcher::up;
use raymon::launcher::urls::{UrlInputs, UrlSource, Urls, jupyterhub_proxy};

use crate::support::{self, TempDir};

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

pub(super) fn up_args(extra: &[&str]) -> UpArgs {
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

pub(super) fn ini_value(ini: &str, section: &str, key: &str) -> Option<String> {
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
