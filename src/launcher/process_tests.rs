//! `raymon env` run for real (issue 6, 17): each output format evaluated by
//! its own interpreter, the ports and credentials it leaves for `up --attach`;
//! and `--grafana auto` choosing among the stand-ins on PATH. These start
//! processes (sh, python3, the shifter stand-ins) and bind ports, so
//! `scripts/test --quick` skips them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;

use crate::cli::{Cli, Command as RaymonCommand, EnvArgs, GrafanaMode};
use crate::launcher::up;
use crate::testing::TempDir;

use super::tests::up_args;

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
    let (vars, _) = crate::launcher::env::env_vars(args, prefix).unwrap();
    crate::launcher::env::render(&vars, args.format)
}

/// Each format, run by its own interpreter, sets exactly the expected
/// variables (the prefix holds a single quote to exercise quoting).
#[test]
fn issue_6_env_formats_set_the_same_variables() {
    let prefix = Some("/user/o'neil/node/");
    let tmp = TempDir::new("env");
    let grafana = crate::testing::free_port();
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
    use crate::launcher::{auth, status};
    let tmp = TempDir::new("envp");
    let data = tmp.path().join("data");
    let port = crate::testing::free_port();
    let flags = [
        format!("--data-dir={}", data.display()),
        format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--grafana=builtin".into(),
        "--format=json".into(),
    ];
    let argv: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (vars, _) = crate::launcher::env::env_vars(&env_args(&argv), None).unwrap();
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

/// `--grafana auto` (the default): a Grafana binary, else shifter, else builtin,
/// with the reason `up` prints.
#[test]
fn issue_17_grafana_auto_prefers_a_binary_then_shifter_then_builtin() {
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

fn stand_ins() -> PathBuf {
    crate::testing::manifest_dir().join("tests/data/stand-ins")
}
