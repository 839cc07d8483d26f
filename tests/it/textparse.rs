//! End-to-end tests of the exposition parser on real Ray scrapes: every
//! fixture parses, counts agree with the fixture summary, tricky label values
//! survive, golden output for a mixed body, and random mutations never panic.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use expect_test::expect;
use raymon::textparse::{Entry, Format, ParseError, Parser};

const SCRAPES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/fixtures/ray/scrapes"
);
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/textparse");

/// The scrape bodies in the fixture folder, each with the format its
/// response's `Content-Type` header names.
fn fixtures() -> Vec<(PathBuf, Format)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SCRAPES).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let headers = if let Some(stem) = name.strip_suffix(".openmetrics.txt") {
            format!("{stem}.openmetrics.headers.txt")
        } else if let Some(stem) = name.strip_suffix(".prom") {
            format!("{stem}.headers.txt")
        } else {
            continue;
        };
        let headers = std::fs::read_to_string(Path::new(SCRAPES).join(headers)).unwrap();
        let ct = headers
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type:"))
            .unwrap();
        out.push((path, Format::from_content_type(ct)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn parse_all(body: &[u8], format: Format) -> Vec<Entry<'_>> {
    Parser::new(body, format)
        .collect::<Result<Vec<_>, ParseError>>()
        .unwrap()
}

#[test]
fn every_ray_fixture_parses() {
    let files = fixtures();
    assert!(files.len() >= 27, "found only {} fixtures", files.len());
    let mut formats = BTreeSet::new();
    for (path, format) in &files {
        let body = std::fs::read(path).unwrap();
        let expected_format = if path.to_str().unwrap().ends_with(".openmetrics.txt") {
            Format::OpenMetrics
        } else {
            Format::PromText
        };
        assert_eq!(*format, expected_format, "{}", path.display());
        formats.insert(format!("{format:?}"));
        let mut samples = 0;
        for entry in Parser::new(&body, *format) {
            match entry {
                Ok(Entry::Sample(s)) => {
                    samples += 1;
                    assert!(s.series.starts_with(s.name().as_bytes()));
                    assert_eq!(s.labels().count(), s.raw_labels().matches("=\"").count());
                }
                Ok(_) => {}
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
        assert!(samples > 0, "{}", path.display());
    }
    assert_eq!(formats.len(), 2, "both formats are covered");
}

/// What the fixture summary records for one file, recomputed from our output.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    sample_lines: u64,
    series: u64,
    families: u64,
    sample_names: u64,
    types: BTreeMap<String, u64>,
    histogram_families: Vec<String>,
    label_names: Vec<String>,
    empty_label_values: u64,
    nan: u64,
    inf: u64,
    with_timestamp: u64,
}

fn counts(body: &[u8], format: Format) -> Counts {
    let mut c = Counts::default();
    let mut series = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut label_names = BTreeSet::new();
    for entry in parse_all(body, format) {
        match entry {
            Entry::Type { metric, kind } => {
                c.families += 1;
                *c.types.entry(kind.as_str().to_string()).or_default() += 1;
                if kind.as_str() == "histogram" {
                    c.histogram_families.push(metric.to_string());
                }
            }
            Entry::Sample(s) => {
                c.sample_lines += 1;
                names.insert(s.name().to_string());
                let mut labels: Vec<(String, String)> = s
                    .labels()
                    .map(|(n, v)| (n.to_string(), v.into_owned()))
                    .collect();
                for (n, v) in &labels {
                    label_names.insert(n.clone());
                    c.empty_label_values += u64::from(v.is_empty());
                }
                labels.sort();
                series.insert((s.name().to_string(), labels));
                c.nan += u64::from(s.value.is_nan());
                c.inf += u64::from(s.value.is_infinite());
                c.with_timestamp += u64::from(s.timestamp_ms.is_some());
            }
            _ => {}
        }
    }
    c.series = series.len() as u64;
    c.sample_names = names.len() as u64;
    c.histogram_families.sort();
    c.label_names = label_names.into_iter().collect();
    c
}

#[test]
fn counts_match_the_fixture_summary() {
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{SCRAPES}/summary.json")).unwrap())
            .unwrap();
    let files = fixtures();
    let mut checked = 0;
    for want in summary.as_array().unwrap() {
        let file = want["file"].as_str().unwrap();
        let (path, format) = files
            .iter()
            .find(|(p, _)| p.file_name().unwrap() == file)
            .unwrap_or_else(|| panic!("{file} is in the summary but not on disk"));
        let body = std::fs::read(path).unwrap();
        assert_eq!(want["bytes"].as_u64().unwrap(), body.len() as u64, "{file}");
        let got = counts(&body, *format);
        let strings = |k: &str| -> Vec<String> {
            want[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let n = |k: &str| want[k].as_u64().unwrap();
        let expected = Counts {
            sample_lines: n("sample_lines"),
            series: n("series"),
            families: n("families"),
            sample_names: n("sample_names"),
            types: want["types"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect(),
            histogram_families: strings("histogram_families"),
            label_names: strings("label_names"),
            empty_label_values: n("empty_label_values"),
            nan: n("nan"),
            inf: n("inf"),
            with_timestamp: n("with_timestamp"),
        };
        assert_eq!(got, expected, "{file}");
        checked += 1;
    }
    assert!(checked >= 27, "checked {checked} files");
}

#[test]
fn ray_serve_namespace_label_round_trips_exactly() {
    const NAMESPACE: &str =
        "(LongPollNamespace.DEPLOYMENT_CONFIG, Deployment(name='Echo', app='echoapp'))";
    for (file, format) in [
        ("target-8080-4-serve-data.prom", Format::PromText),
        (
            "target-8080-4-serve-data.openmetrics.txt",
            Format::OpenMetrics,
        ),
        ("ray-serve-excerpt.prom", Format::PromText),
        ("ray-serve-excerpt.openmetrics.txt", Format::OpenMetrics),
    ] {
        let dir = if file.starts_with("ray-serve-excerpt") {
            DATA
        } else {
            SCRAPES
        };
        let body = std::fs::read(format!("{dir}/{file}")).unwrap();
        let mut found = 0;
        for entry in parse_all(&body, format) {
            let Entry::Sample(s) = entry else { continue };
            if s.name() != "ray_serve_long_poll_latency_ms_bucket" {
                continue;
            }
            let labels: Vec<_> = s.labels().collect();
            let Some((_, ns)) = labels.iter().find(|(n, _)| *n == "namespace") else {
                continue;
            };
            if ns.starts_with("(LongPollNamespace.DEPLOYMENT_CONFIG") {
                assert_eq!(ns, NAMESPACE, "{file}");
                // No escapes, so the value is borrowed straight from the body.
                assert!(matches!(ns, std::borrow::Cow::Borrowed(_)));
                // Nothing after the tricky value was swallowed or invented.
                let names: Vec<_> = labels.iter().map(|(n, _)| *n).collect();
                assert_eq!(
                    names,
                    [
                        "Component",
                        "NodeAddress",
                        "SessionName",
                        "Version",
                        "WorkerId",
                        "le",
                        "namespace",
                        "otel_scope_name",
                        "otel_scope_schema_url",
                        "otel_scope_version"
                    ],
                    "{file}"
                );
                found += 1;
            }
        }
        assert!(found >= 3, "{file}: {found} matching samples");
    }
}

/// One line per entry, for golden comparisons.
fn render(body: &str, format: Format) -> String {
    let mut out = String::new();
    for entry in Parser::new(body.as_bytes(), format) {
        match entry {
            Ok(Entry::Help { metric, text }) => writeln!(out, "HELP {metric} {text:?}"),
            Ok(Entry::Type { metric, kind }) => writeln!(out, "TYPE {metric} {}", kind.as_str()),
            Ok(Entry::Unit { metric, unit }) => writeln!(out, "UNIT {metric} {unit:?}"),
            Ok(Entry::Sample(s)) => {
                let labels: Vec<String> = s.labels().map(|(n, v)| format!("{n}={v:?}")).collect();
                writeln!(
                    out,
                    "SAMPLE {} {{{}}} {:?} ts={:?} series={:?}",
                    s.name(),
                    labels.join(", "),
                    s.value,
                    s.timestamp_ms,
                    String::from_utf8_lossy(s.series)
                )
            }
            Err(e) => writeln!(out, "ERROR {e}"),
        }
        .unwrap();
    }
    out
}

#[test]
fn golden_text_format() {
    let body = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
metric_without_timestamp_and_labels 12.47
something_weird{problem="division by zero"} +Inf 3982045
# HELP help_escapes A \\ backslash, a \n newline and a \"kept\" quote.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5",} 4773
rpc_duration_seconds_sum 1.7560473e+07
nan_value NaN
# TYPE untyped_one untyped
untyped_one{ a = "x" b="y" } -0
"#;
    expect![[r#"
        HELP http_requests_total "The total number of HTTP requests."
        TYPE http_requests_total counter
        SAMPLE http_requests_total {method="post", code="200"} 1027.0 ts=Some(1395066363000) series="http_requests_total{method=\"post\",code=\"200\"}"
        SAMPLE http_requests_total {method="post", code="400"} 3.0 ts=Some(1395066363000) series="http_requests_total{method=\"post\",code=\"400\"}"
        SAMPLE msdos_file_access_time_seconds {path="C:\\DIR\\FILE.TXT", error="Cannot find file:\n\"FILE.TXT\""} 1458255915.0 ts=None series="msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"}"
        SAMPLE metric_without_timestamp_and_labels {} 12.47 ts=None series="metric_without_timestamp_and_labels"
        SAMPLE something_weird {problem="division by zero"} inf ts=Some(3982045) series="something_weird{problem=\"division by zero\"}"
        HELP help_escapes "A \\ backslash, a \n newline and a \\\"kept\\\" quote."
        TYPE rpc_duration_seconds summary
        SAMPLE rpc_duration_seconds {quantile="0.5"} 4773.0 ts=None series="rpc_duration_seconds{quantile=\"0.5\",}"
        SAMPLE rpc_duration_seconds_sum {} 17560473.0 ts=None series="rpc_duration_seconds_sum"
        SAMPLE nan_value {} NaN ts=None series="nan_value"
        TYPE untyped_one unknown
        SAMPLE untyped_one {a="x", b="y"} -0.0 ts=None series="untyped_one{ a = \"x\" b=\"y\" }"
    "#]]
    .assert_eq(&render(body, Format::PromText));
}

#[test]
fn golden_openmetrics() {
    let body = r#"# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0
# TYPE foo histogram
foo_bucket{le="0.01"} 0
foo_bucket{le="+Inf"} 17 1520879607.789 # {trace_id="KOO5S4vxi0o"} 0.67
foo_count 17
# TYPE bar counter
bar_total 3 # {trace_id="oHg5SJYRHA0"} 9.8 1520879607.789
# TYPE state stateset
state{state="a\"b"} 1
# TYPE build info
build_info{version="1.2.3"} 1
# EOF
"#;
    expect![[r#"
        TYPE acme_http_router_request_seconds summary
        UNIT acme_http_router_request_seconds "seconds"
        HELP acme_http_router_request_seconds "Latency though all of ACME's HTTP request router."
        SAMPLE acme_http_router_request_seconds_sum {path="/api/v1", method="GET"} 9036.32 ts=None series="acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"}"
        SAMPLE acme_http_router_request_seconds_count {path="/api/v1", method="GET"} 807283.0 ts=None series="acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"}"
        SAMPLE acme_http_router_request_seconds_created {path="/api/v1", method="GET"} 1605281325.0 ts=None series="acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"}"
        TYPE foo histogram
        SAMPLE foo_bucket {le="0.01"} 0.0 ts=None series="foo_bucket{le=\"0.01\"}"
        SAMPLE foo_bucket {le="+Inf"} 17.0 ts=Some(1520879607789) series="foo_bucket{le=\"+Inf\"}"
        SAMPLE foo_count {} 17.0 ts=None series="foo_count"
        TYPE bar counter
        SAMPLE bar_total {} 3.0 ts=None series="bar_total"
        TYPE state stateset
        SAMPLE state {state="a\"b"} 1.0 ts=None series="state{state=\"a\\\"b\"}"
        TYPE build info
        SAMPLE build_info {version="1.2.3"} 1.0 ts=None series="build_info{version=\"1.2.3\"}"
    "#]]
    .assert_eq(&render(body, Format::OpenMetrics));
}

#[test]
fn golden_error_stops_the_stream() {
    let body = "ok 1\nbad{a=\"1\" b=\"2\"} 1\nnever 3\n# EOF\n";
    expect![[r#"
        SAMPLE ok {} 1.0 ts=None series="ok"
        ERROR line 2, column 10: expected "," or "}" after label value, got " "
    "#]]
    .assert_eq(&render(body, Format::OpenMetrics));
}

/// Bytes that matter to the grammar, so mutations hit interesting paths.
const SPECIAL: &[u8] = b"\"\\{},= \t\n#:_0123456789.eE+-xpPnN\x00\xff\xc3\xa9";

fn mutate(rng: &mut crate::support::Rng, body: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        if body.is_empty() {
            body.push(b'a');
        }
        let at = rng.below(body.len());
        let byte = if rng.below(2) == 0 {
            SPECIAL[rng.below(SPECIAL.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(5) {
            0 => body[at] = byte,
            1 => body.insert(at, byte),
            2 => {
                body.remove(at);
            }
            3 => body.truncate(at),
            _ => {
                // Duplicate a slice, which makes repeated labels and lines.
                let end = (at + 1 + rng.below(40)).min(body.len());
                let piece = body[at..end].to_vec();
                let to = rng.below(body.len());
                body.splice(to..to, piece);
            }
        }
    }
}

/// Parses everything and checks invariants that hold for any input.
fn check_invariants(body: &[u8], format: Format) {
    let lines = body.iter().filter(|&&c| c == b'\n').count() + 1;
    let mut parser = Parser::new(body, format);
    for entry in parser.by_ref() {
        match entry {
            Ok(Entry::Sample(s)) => {
                assert!(s.series.starts_with(s.name().as_bytes()));
                for (name, value) in s.labels() {
                    assert!(!name.is_empty());
                    std::hint::black_box(value);
                }
            }
            Ok(_) => {}
            Err(e) => {
                assert!(e.line >= 1 && e.line <= lines, "{e} (of {lines} lines)");
                assert!(e.column >= 1 && e.column <= body.len() + 1, "{e}");
                assert!(!e.msg.is_empty());
                break;
            }
        }
    }
    assert!(parser.next().is_none(), "the parser ends after an error");
}

#[test]
fn random_mutations_never_panic() {
    let seeds = [
        (
            std::fs::read(format!("{DATA}/ray-serve-excerpt.prom")).unwrap(),
            Format::PromText,
        ),
        (
            std::fs::read(format!("{DATA}/ray-serve-excerpt.openmetrics.txt")).unwrap(),
            Format::OpenMetrics,
        ),
    ];
    let mut rng = crate::support::Rng::seeded("textparse mutation fuzz", 0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    let mut rejected = 0;
    for i in 0..4000 {
        let (seed, format) = &seeds[i % 2];
        let mut body = seed.clone();
        mutate(&mut rng, &mut body);
        // Each mutant is also tried in the other format.
        check_invariants(&body, *format);
        let other = match format {
            Format::PromText => Format::OpenMetrics,
            Format::OpenMetrics => Format::PromText,
        };
        check_invariants(&body, other);
        if Parser::new(&body, *format).all(|r| r.is_ok()) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    // The mutations must exercise both outcomes to be worth anything.
    assert!(
        accepted > 100 && rejected > 100,
        "{accepted} accepted, {rejected} rejected"
    );
}

/// A value's bits, with every NaN the same, for exact comparisons.
fn value_key(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

/// Each case was served to a real Prometheus 2.42 scraper; the file records
/// whether the target came up and, if so, what Prometheus stored. Our parser
/// must accept and reject the same bodies and read the same labels, values
/// and metadata.
#[test]
fn agrees_with_prometheus_2_42_on_edge_cases() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DATA}/prometheus-2.42-verdicts.json")).unwrap(),
    )
    .unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 80);
    let (mut up, mut down) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let body = case["body"].as_str().unwrap().as_bytes();
        let format = match case["format"].as_str().unwrap() {
            "openmetrics" => Format::OpenMetrics,
            _ => Format::PromText,
        };
        let result: Result<Vec<Entry<'_>>, ParseError> = Parser::new(body, format).collect();
        if case["prometheus"] == "down" {
            assert!(
                result.is_err(),
                "{name}: Prometheus failed with {}, we accepted it",
                case["error"]
            );
            down += 1;
            continue;
        }
        let entries =
            result.unwrap_or_else(|e| panic!("{name}: Prometheus accepted it, we say {e}"));
        up += 1;
        // Samples as Prometheus stores them: a label with an empty value is
        // no label at all there.
        let mut ours = Vec::new();
        let mut help = BTreeMap::new();
        let mut kinds = BTreeMap::new();
        for entry in &entries {
            match entry {
                Entry::Sample(s) => {
                    let mut labels = BTreeMap::new();
                    labels.insert("__name__".to_string(), s.name().to_string());
                    for (n, v) in s.labels() {
                        if !v.is_empty() {
                            labels.insert(n.to_string(), v.into_owned());
                        }
                    }
                    ours.push((labels, value_key(s.value)));
                }
                Entry::Help { metric, text } => {
                    help.insert(metric.to_string(), text.to_string());
                }
                Entry::Type { metric, kind } => {
                    kinds.insert(metric.to_string(), kind.as_str());
                }
                Entry::Unit { .. } => {}
            }
        }
        let mut theirs: Vec<_> = case["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(s["labels"].clone()).unwrap();
                let value: f64 = s["value"].as_str().unwrap().parse().unwrap();
                (labels, value_key(value))
            })
            .collect();
        // Prometheus drops samples whose explicit timestamps are too old.
        if !theirs.is_empty() {
            ours.sort();
            theirs.sort();
            assert_eq!(ours, theirs, "{name}");
        }
        for meta in case["metadata"].as_array().unwrap() {
            let metric = meta["metric"].as_str().unwrap();
            let want_help = meta["help"].as_str().unwrap();
            let got_help = help.get(metric).map_or("", String::as_str);
            assert_eq!(got_help, want_help, "{name}: help of {metric}");
            let got_kind = kinds.get(metric).copied().unwrap_or("unknown");
            assert_eq!(
                got_kind,
                meta["type"].as_str().unwrap(),
                "{name}: type of {metric}"
            );
        }
    }
    assert!(up >= 20 && down >= 40, "{up} up, {down} down");
}
