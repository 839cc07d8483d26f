//! `raymon up`, `down` and `env` (issue 6) as plans: URLs, Grafana's
//! provisioning, the repo's Grafana folder, the command lines of Grafana and
//! Ray, the data dir; and the pieces of issue 17 that are pure functions:
//! shifter's volume rules, `shifterimg images`, Ray's temp dir, the private
//! directory.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::cli::{Cli, Command as RaymonCommand, UpArgs};
use crate::launcher::grafana::{self, Layout, Settings};
use crate::launcher::up;
use crate::launcher::urls::{UrlInputs, UrlSource, Urls, jupyterhub_proxy};
use crate::testing::TempDir;
use crate::testing::wire::ini_value;

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
    let root = crate::testing::manifest_dir().join("grafana");
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
    let dir = crate::testing::fixtures_dir().join("ray/session_latest/metrics/grafana/dashboards");
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
        if let Err(e) = crate::promql::parser::parse_expr(&q) {
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
    assert_eq!(a.grafana, crate::cli::GrafanaMode::None);
    let spec = crate::launcher::ray::StartSpec {
        temp_dir: "/tmp/r".into(),
        dashboard_port: 8265,
        metrics_export_port: Some(8080),
        extra: a.ray_args.clone(),
    };
    assert_eq!(
        crate::launcher::ray::start_args(&spec).unwrap(),
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

/// raymon's own check of a shifter volume map (issue 17), on the maps the
/// shifter stand-in is tried with in `tests/it/up_shared_node.rs`
/// (`issue_17_stand_ins_refuse_what_the_real_tools_refuse`): both agree on
/// every plain map there. And `shifterimg images` as raymon reads it.
#[test]
fn issue_17_shifter_volume_maps_and_image_listing() {
    let tmp = TempDir::new("sti");
    let g = tmp.path().join("g");
    std::fs::create_dir_all(g.join("data")).unwrap();
    let img = "grafana/grafana-oss:9.4.3";
    use crate::launcher::shifter::volume_map_problem;
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
    use crate::launcher::shifter::{ImageStatus, image_status};
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

/// The volume `up` builds for a shifter Grafana passes raymon's own check
/// (the end-to-end test sees the strict stand-in accept it).
#[test]
fn issue_17_the_shifter_volume_up_builds_passes_the_check() {
    let shifter = grafana::shifter_command(
        Path::new("shifter"),
        "grafana/grafana-oss:9.4.3",
        &Layout::container(Path::new("/scratch/u/raymon")),
    );
    let volume = shifter
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--volume="))
        .unwrap();
    let (from, to) = volume.split_once(':').unwrap();
    assert_eq!(to, "/grafana");
    assert!(
        crate::launcher::shifter::volume_map_problem(Path::new(from), to).is_none(),
        "{volume}"
    );
}

/// `up`'s default Ray temp dir (issue 17): short enough for Ray's unix
/// sockets, and found by a notebook through RAY_TMPDIR.
#[test]
fn issue_17_default_ray_temp_dir_fits_ray_sockets() {
    use crate::launcher::ray::{check_socket_room, default_temp_dir, ray_tmpdir};
    assert_eq!(
        default_temp_dir("alice"),
        Path::new("/tmp/raymon-alice/ray")
    );
    assert!(check_socket_room(&default_temp_dir("a-long-user-name-x")).is_ok());
    // A notebook's `ray.init()` finds it through RAY_TMPDIR.
    assert_eq!(
        ray_tmpdir(&default_temp_dir("alice")),
        Some(Path::new("/tmp/raymon-alice"))
    );
    assert_eq!(ray_tmpdir(Path::new("/x/sessions")), None);
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The directory around `up`'s default Ray temp dir is the user's alone,
/// and one that another user made first is refused.
#[test]
fn issue_17_private_dir_is_closed_and_must_be_ours() {
    use crate::launcher::auth::private_dir;
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
