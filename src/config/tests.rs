//! Configuration loading end to end: real files, Prometheus's error wording,
//! `check config` output and every relabel action.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{self, Action, Regexp, RelabelConfig};
use crate::model::Labels;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name)
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn err_text(text: &str) -> String {
    config::parse(text, "test.yml")
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn ray_generated_config() {
    let path = fixture("fixtures/ray/session_latest/metrics/prometheus/prometheus.yml");
    let cfg = config::load_file(&path).unwrap();
    assert_eq!(cfg.global.scrape_interval, secs(10));
    assert_eq!(cfg.global.scrape_timeout, secs(10));
    assert_eq!(cfg.global.evaluation_interval, secs(10));
    assert_eq!(cfg.scrape_configs.len(), 1);
    let job = &cfg.scrape_configs[0];
    assert_eq!(job.job_name, "ray");
    assert_eq!(job.scrape_interval, secs(10));
    assert_eq!(job.scrape_timeout, secs(10));
    assert_eq!(job.metrics_path, "/metrics");
    assert_eq!(job.scheme, "http");
    assert!(job.honor_timestamps);
    assert!(!job.honor_labels);
    assert_eq!(job.file_sd_configs.len(), 1);
    assert_eq!(
        job.file_sd_configs[0].files,
        ["/tmp/ray/session_2026-11-26_03-35-11_178048_5703/prom_metrics_service_discovery.json"]
    );
    assert_eq!(job.file_sd_configs[0].refresh_interval, secs(300));
    assert!(job.relabel_configs.is_empty());
    assert_eq!(cfg.original_yaml, std::fs::read_to_string(&path).unwrap());
}

#[test]
fn ray_config_marshals_like_prometheus_status_api() {
    let path = fixture("fixtures/ray/session_latest/metrics/prometheus/prometheus.yml");
    let cfg = config::load_file(&path).unwrap();
    let sample = std::fs::read_to_string(fixture(
        "fixtures/prometheus-api-samples/status-config.json",
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&sample).unwrap();
    assert_eq!(cfg.to_yaml(), v["data"]["yaml"].as_str().unwrap());
}

#[test]
fn every_field() {
    let path = data("every_field.yml");
    let cfg = config::load_file(&path).unwrap();
    let dir = path.parent().unwrap();
    let g = &cfg.global;
    assert_eq!(g.scrape_interval, secs(30));
    assert_eq!(g.scrape_timeout, secs(20));
    assert_eq!(g.evaluation_interval, secs(5400));
    assert_eq!(
        g.query_log_file,
        dir.join("queries.log").display().to_string()
    );
    assert_eq!(
        g.external_labels,
        Labels::from_pairs([("cluster", "ray-prod"), ("region", "eu")])
    );
    assert_eq!(
        cfg.rule_files,
        [dir.join("rules/*.yml").display().to_string()]
    );
    assert!(cfg.alerting.is_some());

    let ray = cfg.scrape_config("ray").unwrap();
    assert!(ray.honor_labels);
    assert!(!ray.honor_timestamps);
    assert_eq!(ray.params["module"], ["http_2xx", "tcp"]);
    assert_eq!(ray.scrape_interval, secs(15));
    assert_eq!(ray.scrape_timeout, secs(5));
    assert_eq!(ray.metrics_path, "/custom/metrics");
    assert_eq!(ray.scheme, "https");
    assert_eq!(ray.body_size_limit, 100 * 1024 * 1024);
    assert_eq!(ray.sample_limit, 5000);
    assert_eq!(ray.target_limit, 10);
    assert_eq!(ray.label_limit, 30);
    assert_eq!(ray.label_name_length_limit, 128);
    assert_eq!(ray.label_value_length_limit, 2048);
    let http = &ray.http_client;
    let basic = http.basic_auth.as_ref().unwrap();
    assert_eq!(
        (basic.username.as_str(), basic.password.as_str()),
        ("admin", "hunter2")
    );
    assert_eq!(
        http.tls_config.ca_file,
        dir.join("certs/ca.pem").display().to_string()
    );
    assert_eq!(http.tls_config.server_name, "ray.internal");
    assert!(http.tls_config.insecure_skip_verify);
    assert!(!http.follow_redirects);
    assert!(!http.enable_http2);
    assert_eq!(ray.static_configs.len(), 1);
    assert_eq!(
        ray.static_configs[0].targets,
        ["10.0.0.1:8080", "10.0.0.2:8080"]
    );
    assert_eq!(
        ray.static_configs[0].labels,
        Labels::from_pairs([("env", "prod")])
    );
    assert_eq!(ray.file_sd_configs.len(), 2);
    assert_eq!(
        ray.file_sd_configs[0].files,
        [
            dir.join("sd/*.json").display().to_string(),
            "/abs/targets.yaml".to_string()
        ]
    );
    assert_eq!(ray.file_sd_configs[0].refresh_interval, secs(60));
    assert_eq!(ray.file_sd_configs[1].refresh_interval, secs(300));

    let actions: Vec<Action> = ray.relabel_configs.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            Action::Replace,
            Action::HashMod,
            Action::LabelMap,
            Action::LabelDrop
        ]
    );
    let first = &ray.relabel_configs[0];
    assert_eq!(first.source_labels, ["__address__"]);
    assert_eq!(first.regex.as_str(), r"([^:]+):\d+");
    assert_eq!(first.separator, ";");
    assert_eq!(first.replacement, "${1}");
    assert_eq!(ray.relabel_configs[1].modulus, 4);
    assert_eq!(ray.relabel_configs[2].replacement, "$1");
    let m = &ray.metric_relabel_configs[0];
    assert_eq!((m.action, m.separator.as_str()), (Action::Drop, "@"));

    // Target relabeling as the scrape manager would run it.
    let target = Labels::from_pairs([
        ("__address__", "10.0.0.1:8080"),
        ("__meta_ray_node", "head"),
        ("junk_x", "1"),
    ]);
    let out = config::process(&target, &ray.relabel_configs).unwrap();
    assert_eq!(out.get("host"), Some("10.0.0.1"));
    assert_eq!(out.get("node"), Some("head"));
    assert_eq!(out.get("junk_x"), None);
    // md5("10.0.0.1:8080") = 05ef642f508b1e5b 76612ddbd5f89a4c; 0x76612ddbd5f89a4c % 4 = 0.
    assert_eq!(out.get("__tmp_hash"), Some("0"));

    let sample = Labels::from_pairs([("__name__", "go_gc_duration_seconds"), ("job", "ray")]);
    assert!(config::process(&sample, &ray.metric_relabel_configs).is_none());

    let defaults = cfg.scrape_config("defaults").unwrap();
    assert_eq!(defaults.scrape_interval, secs(30));
    assert_eq!(defaults.scrape_timeout, secs(20));
    assert_eq!(defaults.metrics_path, "/metrics");
    assert_eq!(defaults.scheme, "http");
    assert!(defaults.honor_timestamps);
    assert_eq!(defaults.body_size_limit, 0);
    assert!(defaults.http_client.follow_redirects);
    assert!(defaults.http_client.enable_http2);
    let auth = defaults.http_client.authorization.as_ref().unwrap();
    assert_eq!(
        (auth.kind.as_str(), auth.credentials.as_str()),
        ("Bearer", "secret-token")
    );

    assert_eq!(cfg.remote_write.len(), 1);
    let rw = &cfg.remote_write[0];
    assert_eq!(rw.url, "http://remote.example/api/v1/write");
    assert_eq!(rw.name, "backup");
    assert_eq!(rw.remote_timeout, secs(60));
    assert_eq!(rw.headers["X-Scope-OrgID"], "tenant-1");
    assert_eq!(
        rw.http_client.basic_auth.as_ref().unwrap().password_file,
        "/etc/rw-pass"
    );
    assert_eq!(rw.write_relabel_configs[0].action, Action::Keep);
    assert_eq!(rw.queue_config.max_shards, 10);
    assert_eq!(rw.queue_config.capacity, 2500);

    // Marshalled YAML hides secrets and parses back to the same values.
    let yaml = cfg.to_yaml();
    assert!(yaml.contains("password: <secret>"), "{yaml}");
    assert!(!yaml.contains("hunter2"));
    assert!(yaml.contains("body_size_limit: 100MiB"), "{yaml}");
    assert!(
        yaml.contains("  - source_labels: [__name__, job]\n    separator: '@'\n"),
        "{yaml}"
    );
    let back = config::parse(&yaml, "marshalled.yml").unwrap();
    assert_eq!(back.scrape_configs[0].relabel_configs, ray.relabel_configs);
    assert_eq!(back.scrape_configs[0].scrape_timeout, secs(5));
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let path = data("unknown_field.yml");
    let err = config::load_file(&path).unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text,
        format!(
            "parsing YAML file {}: yaml: unmarshal errors:\n  line 5: field scrape_intervall not found in type config.ScrapeConfig",
            path.display()
        )
    );
    match err {
        config::Error::Invalid { line, field, .. } => {
            assert_eq!(line, Some(5));
            assert_eq!(field.as_deref(), Some("scrape_intervall"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unknown_fields_in_nested_sections() {
    assert_eq!(
        err_text("global:\n  scrape_interval: 1m\n  bogus: 1\n"),
        "parsing YAML file test.yml: yaml: unmarshal errors:\n  line 3: field bogus not found in type config.plain"
    );
    assert_eq!(
        err_text(
            "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - action: keep\n    regexp: x\n"
        ),
        "parsing YAML file test.yml: yaml: unmarshal errors:\n  line 5: field regexp not found in type relabel.plain"
    );
    assert_eq!(
        err_text("scrape_configs:\n- job_name: a\n  file_sd_configs:\n  - file: [a.json]\n"),
        "parsing YAML file test.yml: yaml: unmarshal errors:\n  line 4: field file not found in type file.plain"
    );
    assert_eq!(
        err_text("scrape_configs:\n- job_name: a\n  kubernetes_sd_configs:\n  - role: pod\n"),
        "parsing YAML file test.yml: yaml: unmarshal errors:\n  line 3: field kubernetes_sd_configs not found in type config.ScrapeConfig (raymon supports only static_configs, file_sd_configs and http_sd_configs)"
    );
    assert_eq!(
        err_text("scrape_configs:\n- job_name: a\n  sample_limit: lots\n"),
        "parsing YAML file test.yml: yaml: unmarshal errors:\n  line 3: cannot unmarshal !!str `lots` into uint"
    );
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        err_text("global:\n\tscrape_interval: 1s\n"),
        "parsing YAML file test.yml: yaml: line 2: found character that cannot start any token"
    );
}

#[test]
fn bad_duration() {
    let path = data("bad_duration.yml");
    assert_eq!(
        config::load_file(&path).unwrap_err().to_string(),
        format!(
            "parsing YAML file {}: not a valid duration string: \"10x\"",
            path.display()
        )
    );
    assert_eq!(
        err_text(
            "scrape_configs:\n- job_name: a\n  file_sd_configs:\n  - files: [a.json]\n    refresh_interval: 5 m\n"
        ),
        "parsing YAML file test.yml: not a valid duration string: \"5 m\""
    );
}

#[test]
fn timeout_greater_than_interval() {
    let path = data("timeout_over_interval.yml");
    assert_eq!(
        config::load_file(&path).unwrap_err().to_string(),
        format!(
            "parsing YAML file {}: scrape timeout greater than scrape interval for scrape config with job name \"slow\"",
            path.display()
        )
    );
    assert_eq!(
        err_text("global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n"),
        "parsing YAML file test.yml: global scrape timeout greater than scrape interval"
    );
    // An inherited timeout is capped at the job's shorter interval instead.
    let cfg = config::parse(
        "global:\n  scrape_timeout: 10s\nscrape_configs:\n- job_name: fast\n  scrape_interval: 2s\n",
        "t.yml",
    )
    .unwrap();
    assert_eq!(cfg.scrape_configs[0].scrape_timeout, secs(2));
}

#[test]
fn duplicate_job_name() {
    let path = data("duplicate_job.yml");
    assert_eq!(
        config::load_file(&path).unwrap_err().to_string(),
        format!(
            "parsing YAML file {}: found multiple scrape configs with job name \"ray\"",
            path.display()
        )
    );
}

#[test]
fn other_validation_messages() {
    let cases = [
        (
            "scrape_configs:\n- scrape_interval: 1s\n",
            "job_name is empty",
        ),
        (
            "scrape_configs:\n-\n",
            "empty or null scrape config section",
        ),
        (
            "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['http://a:1/metrics']\n",
            "\"http://a:1/metrics\" is not a valid hostname",
        ),
        (
            "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: [a]\n    labels: {bad-name: x}\n",
            "\"bad-name\" is not a valid label name",
        ),
        (
            "scrape_configs:\n- job_name: a\n  file_sd_configs:\n  - files: [targets.txt]\n",
            "path name \"targets.txt\" is not valid for file discovery",
        ),
        (
            "scrape_configs:\n- job_name: a\n  file_sd_configs:\n  - refresh_interval: 1m\n",
            "file service discovery config must contain at least one path name",
        ),
        (
            "scrape_configs:\n- job_name: a\n  body_size_limit: 10kB\n",
            "units: unknown unit kB in 10kB",
        ),
        (
            "scrape_configs:\n- job_name: a\n  bearer_token: x\n  basic_auth: {username: u}\n",
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
        ),
        (
            "rule_files: ['a/*/b.yml']\n",
            "invalid rule file path \"a/*/b.yml\"",
        ),
        (
            "remote_write:\n- name: x\n",
            "url for remote_write is empty",
        ),
        (
            "remote_write:\n- url: http://x\n  headers: {Content-Type: x}\n",
            "Content-Type is a reserved header. It must not be changed",
        ),
        (
            "global:\n  external_labels: {0bad: x}\n",
            "\"0bad\" is not a valid label name",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            err_text(text),
            format!("parsing YAML file test.yml: {want}"),
            "{text}"
        );
    }
}

#[test]
fn relabel_validation_messages() {
    let cases = [
        (
            "action: replace",
            "relabel configuration for replace action requires 'target_label' value",
        ),
        (
            "action: hashmod\n    target_label: x",
            "relabel configuration for hashmod requires non-zero modulus",
        ),
        (
            "action: hashmod\n    modulus: 2\n    target_label: 1x",
            "\"1x\" is invalid 'target_label' for hashmod action",
        ),
        (
            "target_label: 'a-b'",
            "\"a-b\" is invalid 'target_label' for replace action",
        ),
        (
            "target_label: '${1'",
            "\"${1\" is invalid 'target_label' for replace action",
        ),
        (
            "action: lowercase\n    target_label: x\n    replacement: y",
            "'replacement' can not be set for lowercase action",
        ),
        (
            "action: uppercase",
            "relabel configuration for uppercase action requires 'target_label' value",
        ),
        (
            "action: keepequal\n    target_label: x\n    regex: a",
            "keepequal action requires only 'source_labels' and `target_label`, and no other fields",
        ),
        (
            "action: dropequal\n    target_label: x\n    separator: ','",
            "dropequal action requires only 'source_labels' and `target_label`, and no other fields",
        ),
        (
            "action: labeldrop\n    source_labels: [a]",
            "labeldrop action requires only 'regex', and no other fields",
        ),
        (
            "action: labelkeep\n    target_label: a",
            "labelkeep action requires only 'regex', and no other fields",
        ),
        (
            "action: labelmap\n    replacement: '-'",
            "\"-\" is invalid 'replacement' for labelmap action",
        ),
        ("action: explode", "unknown relabel action \"explode\""),
        ("action: ''", "relabel action cannot be empty"),
        (
            "source_labels: [a-b]\n    target_label: x",
            "\"a-b\" is not a valid label name",
        ),
        (
            "regex: '(a'\n    target_label: x",
            "error parsing regexp: unclosed group: `^(?:(a)$`",
        ),
    ];
    for (rule, want) in cases {
        let text = format!("scrape_configs:\n- job_name: a\n  relabel_configs:\n  - {rule}\n");
        assert_eq!(
            err_text(&text),
            format!("parsing YAML file test.yml: {want}"),
            "{rule}"
        );
    }
}

#[test]
fn check_config_output() {
    let good = fixture("fixtures/ray/session_latest/metrics/prometheus/prometheus.yml");
    let out = config::check(&[good.as_path()]);
    assert!(out.success);
    assert!(out.stderr.is_empty());
    let shown = good.display();
    // The session's SD file is from another machine, so promtool warns.
    assert_eq!(
        out.stdout,
        format!(
            "Checking {shown}\n  WARNING: file \"/tmp/ray/session_2026-11-26_03-35-11_178048_5703/prom_metrics_service_discovery.json\" for file_sd in scrape job \"ray\" does not exist\n SUCCESS: {shown} is valid prometheus config file syntax\n\n"
        )
    );

    let bad = data("duplicate_job.yml");
    let out = config::check(&[bad.as_path()]);
    assert!(!out.success);
    assert_eq!(out.stdout, format!("Checking {}\n\n", bad.display()));
    assert_eq!(
        out.stderr,
        format!(
            "  FAILED: parsing YAML file {}: found multiple scrape configs with job name \"ray\"\n",
            bad.display()
        )
    );

    let missing = data("does_not_exist.yml");
    let out = config::check(&[missing.as_path()]);
    assert!(!out.success);
    assert_eq!(
        out.stderr,
        format!(
            "  FAILED: open {}: no such file or directory\n",
            missing.display()
        )
    );
}

// Relabel behaviour, with cases modelled on Prometheus's relabel tests.

fn rule(yaml: &str) -> Vec<RelabelConfig> {
    let text = format!("scrape_configs:\n- job_name: t\n  relabel_configs:\n{yaml}");
    config::parse(&text, "rule.yml")
        .expect("rule should parse")
        .scrape_configs
        .remove(0)
        .relabel_configs
}

fn abc() -> Labels {
    Labels::from_pairs([("a", "foo"), ("b", "bar"), ("c", "baz")])
}

fn with(base: &Labels, extra: &[(&str, &str)]) -> Labels {
    let mut b = base.builder();
    for (n, v) in extra {
        b.set(n.to_string(), v.to_string());
    }
    b.build()
}

#[test]
fn relabel_replace() {
    let cfgs = rule(
        "  - source_labels: [a]\n    regex: 'f(.*)'\n    target_label: d\n    replacement: 'ch${1}-ch${1}'\n",
    );
    assert_eq!(
        config::process(&abc(), &cfgs),
        Some(with(&abc(), &[("d", "choo-choo")]))
    );

    // Several sources joined by the separator, then a second rule.
    let cfgs = rule(
        "  - source_labels: [a, b]\n    regex: 'f(.*);(.*)r'\n    target_label: a\n    replacement: 'b${1}${2}m'\n  - source_labels: [c, a]\n    regex: '(b).*b(.*)ba(.*)'\n    target_label: d\n    replacement: '$1$2$2$3'\n",
    );
    assert_eq!(
        config::process(&abc(), &cfgs),
        Some(with(&abc(), &[("a", "boobam"), ("d", "boooom")]))
    );

    // The regex is anchored: `f` does not match `foo`.
    let cfgs =
        rule("  - source_labels: [a]\n    regex: f\n    target_label: d\n    replacement: x\n");
    assert_eq!(config::process(&abc(), &cfgs), Some(abc()));

    // A missing source label reads as empty; default regex and `$1` delete the target.
    let cfgs = rule("  - source_labels: [missing]\n    target_label: a\n");
    assert_eq!(
        config::process(&abc(), &cfgs),
        Some(Labels::from_pairs([("b", "bar"), ("c", "baz")]))
    );

    // No source labels: set a constant.
    let cfgs = rule("  - target_label: env\n    replacement: prod\n");
    assert_eq!(
        config::process(&abc(), &cfgs),
        Some(with(&abc(), &[("env", "prod")]))
    );

    // `$1x` names group "1x" as in Go, which does not exist: empty, so no label.
    let cfgs = rule(
        "  - source_labels: [a]\n    regex: '(f)oo'\n    target_label: d\n    replacement: '$1x'\n",
    );
    assert_eq!(config::process(&abc(), &cfgs), Some(abc()));
    let cfgs = rule(
        "  - source_labels: [a]\n    regex: '(f)oo'\n    target_label: d\n    replacement: '${1}x'\n",
    );
    assert_eq!(
        config::process(&abc(), &cfgs),
        Some(with(&abc(), &[("d", "fx")]))
    );

    // Templated target labels; an invalid expanded name leaves labels alone.
    let input = Labels::from_pairs([("a", "some-name-value")]);
    let cfgs = rule(
        "  - source_labels: [a]\n    regex: 'some-([^-]+)-([^,]+)'\n    target_label: '${1}'\n    replacement: '${2}'\n",
    );
    assert_eq!(
        config::process(&input, &cfgs),
        Some(with(&input, &[("name", "value")]))
    );
    let input = Labels::from_pairs([("a", "some-1-value")]);
    assert_eq!(config::process(&input, &cfgs), Some(input.clone()));

    // Named groups.
    let input = Labels::from_pairs([("__address__", "host.example:9100")]);
    let cfgs = rule(
        "  - source_labels: [__address__]\n    regex: '(?P<host>[^:]+):(?P<port>\\d+)'\n    target_label: instance\n    replacement: '$host'\n",
    );
    assert_eq!(
        config::process(&input, &cfgs),
        Some(with(&input, &[("instance", "host.example")]))
    );
}

#[test]
fn relabel_keep_and_drop() {
    let drop = rule("  - source_labels: [a]\n    regex: '.*o.*'\n    action: drop\n");
    assert_eq!(config::process(&abc(), &drop), None);
    let drop = rule("  - source_labels: [a]\n    regex: 'f|o'\n    action: drop\n");
    assert_eq!(config::process(&abc(), &drop), Some(abc()));
    let keep = rule("  - source_labels: [a]\n    regex: 'no-match'\n    action: keep\n");
    assert_eq!(config::process(&abc(), &keep), None);
    let keep = rule("  - source_labels: [a]\n    regex: 'f.*'\n    action: keep\n");
    assert_eq!(config::process(&abc(), &keep), Some(abc()));
    // Keeping on a missing label tests the empty string.
    let keep = rule("  - source_labels: [missing]\n    regex: ''\n    action: keep\n");
    assert_eq!(config::process(&abc(), &keep), Some(abc()));
    // Later rules do not run once a label set is dropped.
    let both = rule(
        "  - source_labels: [b]\n    regex: bar\n    action: drop\n  - target_label: x\n    replacement: y\n",
    );
    assert_eq!(config::process(&abc(), &both), None);
}

#[test]
fn relabel_keepequal_dropequal() {
    let same = Labels::from_pairs([("a", "foo"), ("b", "foo")]);
    let keep = rule("  - source_labels: [a]\n    target_label: b\n    action: keepequal\n");
    assert_eq!(config::process(&same, &keep), Some(same.clone()));
    assert_eq!(config::process(&abc(), &keep), None);
    let drop = rule("  - source_labels: [a]\n    target_label: b\n    action: dropequal\n");
    assert_eq!(config::process(&same, &drop), None);
    assert_eq!(config::process(&abc(), &drop), Some(abc()));
}

#[test]
fn relabel_hashmod() {
    // md5("baz") = 73feffa4b7f6bb68 e44cf984c85f6e88, computed with another
    // MD5 implementation; Prometheus takes the last 8 bytes big-endian.
    let want = 0xe44c_f984_c85f_6e88u64 % 1000;
    assert_eq!(want, 976);
    let cfgs = rule(
        "  - source_labels: [c]\n    target_label: d\n    modulus: 1000\n    action: hashmod\n",
    );
    assert_eq!(
        config::process(&abc(), &cfgs),
        Some(with(&abc(), &[("d", &want.to_string())]))
    );
    assert_eq!(config::relabel::hashmod("baz", 1000), 976);
}

#[test]
fn relabel_labelmap() {
    let input = Labels::from_pairs([
        ("__meta_ray_node", "head"),
        ("__meta_ray_port", "8080"),
        ("a", "foo"),
    ]);
    let cfgs = rule("  - action: labelmap\n    regex: '__meta_ray_(.+)'\n");
    assert_eq!(
        config::process(&input, &cfgs),
        Some(with(&input, &[("node", "head"), ("port", "8080")]))
    );
    let cfgs = rule("  - action: labelmap\n    regex: '(b)'\n    replacement: '${1}_new'\n");
    assert_eq!(
        config::process(&abc(), &cfgs),
        Some(with(&abc(), &[("b_new", "bar")]))
    );
    // A mapped name that already exists is overwritten.
    let cfgs = rule("  - action: labelmap\n    regex: 'a'\n    replacement: 'b'\n");
    assert_eq!(
        config::process(&abc(), &cfgs),
        Some(with(&abc(), &[("b", "foo")]))
    );
}

#[test]
fn relabel_labeldrop_labelkeep() {
    let drop = rule("  - action: labeldrop\n    regex: '(b|c)'\n");
    assert_eq!(
        config::process(&abc(), &drop),
        Some(Labels::from_pairs([("a", "foo")]))
    );
    let keep = rule("  - action: labelkeep\n    regex: '(b|c)'\n");
    assert_eq!(
        config::process(&abc(), &keep),
        Some(Labels::from_pairs([("b", "bar"), ("c", "baz")]))
    );
    // Anchored: `b` does not match `bb`.
    let input = Labels::from_pairs([("bb", "1"), ("b", "2")]);
    let drop = rule("  - action: labeldrop\n    regex: b\n");
    assert_eq!(
        config::process(&input, &drop),
        Some(Labels::from_pairs([("bb", "1")]))
    );
}

#[test]
fn relabel_lowercase_uppercase() {
    let input = Labels::from_pairs([("foo", "bAr123Foo")]);
    let lower =
        rule("  - source_labels: [foo]\n    target_label: foo_lower\n    action: lowercase\n");
    assert_eq!(
        config::process(&input, &lower),
        Some(with(&input, &[("foo_lower", "bar123foo")]))
    );
    let upper =
        rule("  - source_labels: [foo]\n    target_label: foo_upper\n    action: uppercase\n");
    assert_eq!(
        config::process(&input, &upper),
        Some(with(&input, &[("foo_upper", "BAR123FOO")]))
    );
}

#[test]
fn relabel_built_in_code() {
    // Rules built without YAML get the same defaults and checks.
    let mut r = RelabelConfig::new(Action::Replace).unwrap();
    assert_eq!(
        r.validate().unwrap_err().to_string(),
        "relabel configuration for replace action requires 'target_label' value"
    );
    r.source_labels = vec!["a".into()];
    r.regex = Regexp::new("(.)(.)(.)").unwrap();
    r.target_label = "rev".into();
    r.replacement = "$3$2$1".into();
    r.validate().unwrap();
    assert_eq!(
        config::process(&abc(), &[r]),
        Some(with(&abc(), &[("rev", "oof")]))
    );
}

#[test]
fn yaml_1_1_booleans() {
    let cfg = config::parse(
        "scrape_configs:\n- job_name: a\n  honor_labels: yes\n  honor_timestamps: off\n  enable_http2: False\n",
        "b.yml",
    )
    .unwrap();
    let sc = &cfg.scrape_configs[0];
    assert!(sc.honor_labels);
    assert!(!sc.honor_timestamps);
    assert!(!sc.http_client.enable_http2);
    assert!(sc.http_client.follow_redirects);
    assert_eq!(
        err_text("scrape_configs:\n- job_name: a\n  honor_labels: maybe\n"),
        "parsing YAML file test.yml: yaml: unmarshal errors:\n  line 3: cannot unmarshal !!str `maybe` into bool"
    );
}

/// What `promtool check config` (2.42) says of `path`: `Ok` or the text
/// after `FAILED: `.
fn promtool_verdict(path: &Path) -> Result<(), String> {
    let out = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(path)
        .output()
        .expect("promtool is not installed: run scripts/setup-deps");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match stderr.split_once("FAILED: ") {
        Some((_, msg)) => Err(msg.trim_end().to_string()),
        None if out.status.success() => Ok(()),
        None => Err(format!("promtool failed without a message: {stderr}")),
    }
}

#[test]
fn issue_19_http_client_settings_are_judged_as_promtool_judges_them() {
    let dir = crate::testing::TempDir::new("http-client-config");
    let cases = [
        "  bearer_token: a\n  bearer_token_file: b",
        "  basic_auth: {username: u}\n  bearer_token: a",
        "  basic_auth: {username: u, password: p, password_file: f}",
        "  authorization: {credentials: c}\n  bearer_token: a",
        "  authorization: {credentials: c, credentials_file: f}",
        "  authorization: {type: Basic, credentials: c}",
        "  authorization: {credentials: c}\n  basic_auth: {username: u}",
        "  oauth2: {client_secret: s, token_url: t}",
        "  oauth2: {client_id: i, token_url: t}",
        "  oauth2: {client_id: i, client_secret: s}",
        "  oauth2: {client_id: i, client_secret: s, token_url: t}\n  basic_auth: {username: u}",
        "  oauth2: {client_id: i, client_secret: s, token_url: t}",
        "  proxy_connect_header: {X: [v]}",
        "  proxy_url: '::bad'",
        "  proxy_url: 'socks5://h:1'",
        "  proxy_url: 'http://u:p@h:3128'\n  proxy_connect_header: {X-A: [v]}",
        "  tls_config: {min_version: TLS14}",
        "  tls_config: {ca: x}",
        "  tls_config: {ca_file: /nonexistent/ca.pem, server_name: s, insecure_skip_verify: true, min_version: TLS13, max_version: TLS13}",
        "  scheme: https\n  follow_redirects: false\n  enable_http2: false",
        "  target_limit: 1\n  label_limit: 2\n  label_name_length_limit: 3\n  label_value_length_limit: 4",
        "  http_sd_configs: [{refresh_interval: 1m}]",
        "  http_sd_configs: [{url: 'ftp://h/sd'}]",
        "  http_sd_configs: [{url: 'http:///sd'}]",
        "  http_sd_configs: [{url: 'http://h/sd', bogus: 1}]",
        "  http_sd_configs: [{url: 'http://h/sd', refresh_interval: 1x}]",
        "  http_sd_configs: [{url: 'http://h/sd', bearer_token: a, bearer_token_file: b}]",
        "  http_sd_configs: [{url: 'http://h/sd', authorization: {type: basic, credentials: c}}]",
        "  http_sd_configs: [{url: 'https://h:8265/api/prometheus/sd', refresh_interval: 5s, tls_config: {insecure_skip_verify: true}}]",
        "  http_sd_configs: [{url: 'http://h/sd', tls_config: {min_version: TLS9}}]",
    ];
    let mut compared = 0;
    for (i, case) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yml"));
        std::fs::write(&path, format!("scrape_configs:\n- job_name: a\n{case}\n")).unwrap();
        let want = promtool_verdict(&path);
        let got = config::load_file(&path)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(got, want, "case {i}: {case}");
        compared += 1;
    }
    eprintln!("{compared} configs judged as promtool 2.42 judges them");
}

#[test]
fn issue_19_a_typo_inside_a_section_is_an_error() {
    for (yaml, field) in [
        ("storage:\n  tdsb: {}\n", "tdsb"),
        ("tracing:\n  endpoints: x\n", "endpoints"),
        (
            "remote_read:\n- url: http://h/\n  read_recnt: true\n",
            "read_recnt",
        ),
        ("alerting:\n  alertmanager: []\n", "alertmanager"),
    ] {
        let err = crate::config::parse(yaml, "p.yml").unwrap_err().to_string();
        assert!(
            err.contains(&format!("field {field} not found")),
            "{yaml}: {err}"
        );
    }
}

/// The config `tests/it/dropin.rs` starts raymon with holds every row of the
/// not-implemented table once, so its warnings are the whole table.
#[test]
fn issue_19_the_fixture_has_every_unimplemented_row() {
    let text = std::fs::read_to_string(data("every-unimplemented.yml")).unwrap();
    let cfg = config::parse(&text, "every-unimplemented.yml").unwrap();
    let found: Vec<&str> = cfg.unimplemented.iter().map(|u| u.section).collect();
    let table: Vec<&str> = crate::config::unimplemented::NOT_IMPLEMENTED
        .iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(found, table);
}
