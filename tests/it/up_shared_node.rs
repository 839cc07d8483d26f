//! `raymon up` where it really runs (issue 17): stand-ins as strict as
//! shifter and Grafana, `--grafana auto`, bad input refused before anything
//! starts, credentials by default, and two users' stacks on one node.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{self, TempDir};
use crate::up::*;

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

    // raymon's default port is taken and --port-range has no free port. The
    // default is held here (unless something else holds it already) under
    // RAY_LOCK, which the tests that use default ports hold too.
    {
        let _ray = support::RAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _default = std::net::TcpListener::bind("127.0.0.1:9090");
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = held.local_addr().unwrap().port();
        let data = tmp.path().join("d7");
        let mut args = base(&data);
        args.retain(|a| !a.starts_with("--web.listen-address"));
        args.extend(["--grafana=none".into(), format!("--port-range={p}-{p}")]);
        let mut up = Up::start(&args, &[], tmp.path());
        let e = refused_before_start(&mut up, &data);
        assert!(
            e.contains(&format!("no free port for raymon in --port-range {p}-{p}")),
            "{e}"
        );
        assert!(e.contains("widen the range"), "{e}");
        drop(_default);

        // `raymon env` gave a notebook's Ray a raymon port that is taken by
        // the time `up --attach` runs: Ray's dashboard points there already.
        let data = tmp.path().join("d8");
        let stack = [
            format!("--data-dir={}", data.display()),
            format!("--ray-temp-dir={}", tmp.path().join("ray").display()),
        ];
        let env = Command::new(env!("CARGO_BIN_EXE_raymon"))
            .arg("env")
            .args(&stack)
            .arg("--format=json")
            .env_remove("JUPYTERHUB_SERVICE_PREFIX")
            .output()
            .unwrap();
        assert!(
            env.status.success(),
            "{}",
            String::from_utf8_lossy(&env.stderr)
        );
        let vars: serde_json::Value = serde_json::from_slice(&env.stdout).unwrap();
        let promised = host_port(&vars["RAY_PROMETHEUS_HOST"]);
        let _taken = std::net::TcpListener::bind(&promised).unwrap();
        let mut args = stack.to_vec();
        args.extend(["--attach".into(), "--grafana=none".into()]);
        let mut up = Up::start(&args, &[], tmp.path());
        let e = refused_before_start(&mut up, &data);
        assert!(
            e.contains(&format!(
                "{promised}, the port `raymon env` gave the notebook's Ray"
            )),
            "{e}"
        );
        assert!(e.contains("run `raymon env` again"), "{e}");
    }

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
    let ray = support::RealRayUp::new();
    let (dport, gport) = (ray.dashboard_port, support::free_port());
    let mut flags = vec![
        format!("--grafana={mode}"),
        format!("--grafana-listen-address=127.0.0.1:{gport}"),
    ];
    let mut env = ray.env(&[("RAYMON_STANDIN_RECORD", record.display().to_string())]);
    if mode == "shifter" {
        env.push(("PATH", shifter_path(tmp.path())));
        env.push(("RAYMON_STANDIN_SHIFTER_IMAGES", pulled(tmp.path())));
    } else {
        flags.push(format!(
            "--grafana-bin={}",
            stand_ins().join("grafana").display()
        ));
    }
    let args = ray.args(&data, &temp, &flags);
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
/// strict stand-in (it would have exited otherwise), and every Grafana path
/// is inside the mounted volume. (That raymon's own check passes the volume
/// `up` builds is a unit test in `src/launcher/tests.rs`.)
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
    assert!(Path::new(from).is_absolute(), "{volume}");
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

/// By default `up` makes passwords: raymon's API wants basic auth, Grafana's
/// datasource and Ray (`RAY_PROMETHEUS_HEADERS`) get it, Grafana's admin is
/// not admin/admin, the files holding them are the user's alone, and the
/// admin password is printed once only.
#[test]
fn issue_17_credentials_by_default() {
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
    let creds = credentials(&data);
    let (raymon_user, raymon_password) = login(&creds, "raymon");
    let (admin_user, admin_password) = login(&creds, "grafana_admin");
    assert_eq!(raymon_user, "raymon");
    assert_eq!(admin_user, "admin");
    assert_ne!(admin_password, "admin");
    assert!(raymon_password.len() >= 20);
    assert!(
        stdout.contains(&format!(
            "Grafana admin: user admin, password {admin_password}"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains(&raymon_password), "{stdout}");
    assert_eq!(mode_of(&data.join("web.yml")), 0o600);

    // raymon: 401 without credentials, on every path, and 200 with them.
    let good = authorization(&creds, "raymon");
    let wrong = basic_auth("raymon", "admin");
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
        raymon_password.as_str()
    );
    assert_eq!(d["jsonData"]["httpMethod"], "POST");
    let ini = std::fs::read_to_string(g.join("grafana.ini")).unwrap();
    assert_eq!(mode_of(&g.join("grafana.ini")), 0o600);
    assert_eq!(
        ini_value(&ini, "security", "admin_password").as_deref(),
        Some(admin_password.as_str())
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
    assert!(!text.contains(&raymon_password), "{text}");
    assert!(down(&data).status.success());
    assert!(up.wait_exit(Duration::from_secs(20)).success());

    // A second run keeps the credentials (Grafana keeps its first admin
    // password) and does not print the password again.
    let mut again = Up::start(&args, &[], tmp.path());
    let stdout = again.wait_up(Duration::from_secs(60));
    assert_eq!(credentials(&data), creds);
    assert!(!stdout.contains(&admin_password), "{stdout}");
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

/// Two users' stacks on one login node, both on default flags: the second
/// finds the first's ports taken and moves each to a free one, both are
/// healthy as Ray's backend sees them, each raymon wants its own password
/// (Ray's Data page still answers), and `down` of one leaves the other
/// running.
#[test]
fn issue_17_two_stacks_on_one_node_with_default_ports() {
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
    // What a notebook sets for each: the ports that stack chose.
    for (data, s) in [(&data_a, &sa), (&data_b, &sb)] {
        let out = Command::new(env!("CARGO_BIN_EXE_raymon"))
            .args([
                "env",
                "--format=json",
                &format!("--data-dir={}", data.display()),
            ])
            .env_remove("JUPYTERHUB_SERVICE_PREFIX")
            .output()
            .unwrap();
        let vars: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(vars["RAY_PROMETHEUS_HOST"], s["raymon_url"], "{vars}");
        assert_eq!(vars["RAY_GRAFANA_HOST"], s["grafana_url"], "{vars}");
        assert_eq!(vars["RAY_ADDRESS"], s["ray_address"], "{vars}");
        assert!(vars["RAY_PROMETHEUS_HEADERS"].is_string(), "{vars}");
    }
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
        credentials(file.parent().unwrap())
    };
    let (ca, cb) = (creds(&sa), creds(&sb));
    assert_ne!(login(&ca, "raymon").1, login(&cb, "raymon").1);
    let healthy = |s: &serde_json::Value| {
        let dashboard = host_port(&s["ray_dashboard_url"]);
        for probe in ["/api/grafana_health", "/api/prometheus_health"] {
            let r = support::get(&dashboard, probe).unwrap();
            assert_eq!(r.json()["result"], true, "{probe}: {}", r.body);
        }
    };
    healthy(&sa);
    healthy(&sb);
    // Ray's Data page (the dashboard's Metrics/Data tab) queries raymon with
    // RAY_PROMETHEUS_HEADERS for each dataset of the job; a 401 from raymon
    // would make it answer 503.
    let job = crate::notebook::run_ray_data_job(&data_a, tmp.path());
    let page = format!("/api/data/datasets/{job}");
    let r = support::get(&host_port(&sa["ray_dashboard_url"]), &page).unwrap();
    assert_eq!(r.status, 200, "{page}: {}", r.body);
    let datasets = r.json()["datasets"].clone();
    assert!(
        !datasets.as_array().unwrap().is_empty(),
        "{page}: {datasets}"
    );
    let (ra, rb) = (host_port(&sa["raymon_url"]), host_port(&sb["raymon_url"]));
    let (auth_a, auth_b) = (authorization(&ca, "raymon"), authorization(&cb, "raymon"));
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
