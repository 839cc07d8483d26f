//! The parser's cross-format behaviour: entries, errors and their positions.

use std::borrow::Cow;

use super::parser::ascending;
use super::*;

fn entries(body: &str, format: Format) -> Vec<Entry<'_>> {
    Parser::new(body.as_bytes(), format)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn samples(body: &str, format: Format) -> Vec<SampleEntry<'_>> {
    entries(body, format)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Sample(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// The error a body fails with, as "line:column: message".
fn fails(body: &str, format: Format) -> String {
    let mut p = Parser::new(body.as_bytes(), format);
    let err = p
        .by_ref()
        .find_map(|r| r.err())
        .unwrap_or_else(|| panic!("{body:?} parsed without error"));
    // The iterator ends after its first error.
    assert!(p.next().is_none());
    format!("{}:{}: {}", err.line, err.column, err.msg)
}

const T: Format = Format::PromText;
const OM: Format = Format::OpenMetrics;

#[test]
fn vouched_series_names_end_at_their_brace() {
    for (format, body) in [
        (T, "a_b:c{x=\"1\"} 1\nd\t{y=\"2\"} 2\ne 3\nf {} 4\n"),
        (OM, "a_b:c{x=\"1\"} 1\ne 3\nf{} 4\n# EOF\n"),
    ] {
        let mut asked = Vec::new();
        let mut known = |raw: &[u8]| {
            asked.push(String::from_utf8(raw.to_vec()).unwrap());
            true
        };
        let mut p = Parser::new(body.as_bytes(), format);
        let mut got = Vec::new();
        while let Some(e) = p.next_trusting(&mut known) {
            if let Entry::Sample(s) = e.unwrap() {
                let series = String::from_utf8(s.series.to_vec()).unwrap();
                got.push((s.name(), series, s.raw_labels(), s.value));
            }
        }
        // The same entries as without a voucher, each text asked about once.
        let plain: Vec<_> = samples(body, format)
            .into_iter()
            .map(|s| {
                let series = String::from_utf8(s.series.to_vec()).unwrap();
                (s.name(), series, s.raw_labels(), s.value)
            })
            .collect();
        assert_eq!(got, plain);
        assert_eq!(got[0].0, "a_b:c");
        let with_braces: Vec<_> = got
            .iter()
            .filter(|g| g.1.contains('{'))
            .map(|g| g.1.clone())
            .collect();
        assert_eq!(asked, with_braces);
        if format == T {
            // A blank before the brace: the name stops before it.
            assert_eq!((got[1].0, got[1].1.as_str()), ("d", "d\t{y=\"2\"}"));
        }
    }
}

#[test]
fn vouched_series_skip_label_checks_and_others_do_not() {
    for (format, body) in [
        (T, "a {x=\"1\"} 1\nb{y=\"}\"} 2\nc{z=\"1\",z=\"2\"} 3\n"),
        (
            OM,
            "a{x=\"1\"} 1\nb{y=\"}\"} 2\nc{z=\"1\",z=\"2\"} 3\n# EOF\n",
        ),
    ] {
        let mut asked = Vec::new();
        let mut p = Parser::new(body.as_bytes(), format);
        let mut known = |raw: &[u8]| {
            let raw = String::from_utf8(raw.to_vec()).unwrap();
            let vouched = raw.starts_with('a') || raw.starts_with('c');
            asked.push(raw);
            vouched
        };
        let mut got = Vec::new();
        while let Some(e) = p.next_trusting(&mut known) {
            if let Entry::Sample(s) = e.unwrap() {
                let labels: Vec<_> = s.labels().map(|(n, v)| format!("{n}={v}")).collect();
                got.push((String::from_utf8(s.series.to_vec()).unwrap(), labels));
            }
        }
        // Asked with the series text up to the first closing brace; a
        // brace inside a value is not vouched for and is read as usual.
        let a = if format == T {
            "a {x=\"1\"}"
        } else {
            "a{x=\"1\"}"
        };
        assert_eq!(asked, [a, "b{y=\"}", "c{z=\"1\",z=\"2\"}"]);
        assert_eq!(got[0], (a.to_string(), vec!["x=1".to_string()]));
        assert_eq!(got[1].1, ["y=}"]);
        // Vouched for, so not checked: only text a parser accepted
        // before may be vouched for.
        assert_eq!(got[2].1, ["z=1", "z=2"]);
        // Without the voucher the same body fails.
        assert!(Parser::new(body.as_bytes(), format).any(|e| e.is_err()));
    }
}

/// A voucher as a scrape cache is one: it knows series texts and the order
/// they came in, and records what it was asked.
struct Expecting<'t> {
    known: &'t [&'t str],
    /// The lengths it expects, one a sample line, in order.
    expect: Vec<Option<usize>>,
    asked: Vec<String>,
}

impl Vouch for Expecting<'_> {
    fn vouch(&mut self, raw: &[u8]) -> bool {
        let raw = String::from_utf8_lossy(raw).into_owned();
        let yes = self.known.contains(&raw.as_str());
        self.asked.push(raw);
        yes
    }

    fn expected_len(&mut self) -> Option<usize> {
        (!self.expect.is_empty())
            .then(|| self.expect.remove(0))
            .flatten()
    }
}

#[test]
fn issue_22_a_vouched_series_is_read_at_the_expected_length() {
    // A brace inside a value, a text followed by another line whose byte at
    // the expected length is a brace, and a blank before the brace.
    let body = "b{y=\"}\",z=\"1\"} 1\nm{a=\"1\"} 7\nnn{} 2\nq {r=\"}\"} 3\n";
    let known = ["b{y=\"}\",z=\"1\"}", "m{a=\"1\"}", "nn{}", "q {r=\"}\"}"];
    let plain: Vec<_> = samples(body, T)
        .into_iter()
        .map(|s| (s.series.to_vec(), s.raw_labels(), s.value))
        .collect();
    let run = |expect: Vec<Option<usize>>, known: &[&str]| {
        let mut v = Expecting {
            known,
            expect,
            asked: Vec::new(),
        };
        let mut p = Parser::new(body.as_bytes(), T);
        let mut got = Vec::new();
        while let Some(e) = p.next_trusting(&mut v) {
            if let Entry::Sample(s) = e.unwrap() {
                got.push((s.series.to_vec(), s.raw_labels(), s.value));
            }
        }
        (got, v.asked)
    };
    // Every length right: each text is asked about once, at its full
    // length, the brace inside a value included. The blank before `q`'s
    // brace leaves it to the first `}`, which is inside its value, so it
    // is parsed as usual.
    let lens = known.iter().map(|k| Some(k.len())).collect();
    let (got, asked) = run(lens, &known);
    assert_eq!(got, plain);
    assert_eq!(
        asked,
        ["b{y=\"}\",z=\"1\"}", "m{a=\"1\"}", "nn{}", "q {r=\"}"]
    );
    // The second line expected 15 bytes long: they end in a brace (on the
    // next line) and are refused, then the first `}` is asked about.
    let (got, asked) = run(vec![None, Some(15), None, None], &known);
    assert_eq!(got, plain);
    assert_eq!(asked[1..3], ["m{a=\"1\"} 7\nnn{}", "m{a=\"1\"}"]);
    // A text refused at the expected length is not asked about again at
    // the first `}` when that is the same text; without a voucher the
    // brace in the value closes `b`'s labels at the right place anyway.
    let (got, asked) = run(vec![Some(6), Some(7)], &["m{a=\"1\"}"]);
    assert_eq!(got, plain);
    assert_eq!(asked, ["b{y=\"}", "m{a=\"1\"}", "nn{}", "q {r=\"}"]);
    // A length that ends in no brace is not asked about.
    let (got, asked) = run(vec![Some(3)], &known);
    assert_eq!(got, plain);
    assert_eq!(asked[0], "b{y=\"}");
}

#[test]
fn malformed_missing_value() {
    assert_eq!(
        fails("a 1\nfoo{a=\"b\"}\n", T),
        "2:11: expected value after metric, got end of line"
    );
    assert_eq!(
        fails("foo", T),
        "1:4: expected value after metric, got end of input"
    );
    assert_eq!(
        fails("foo{a=\"b\"}\n# EOF\n", OM),
        "1:11: expected \" \" and value, got end of line"
    );
}

#[test]
fn malformed_bad_value() {
    assert_eq!(fails("foo 1.2.3\n", T), "1:5: invalid value \"1.2.3\"");
    assert_eq!(fails("foo abc\n", T), "1:5: invalid value \"abc\"");
    assert_eq!(fails("foo 1e999\n", T), "1:5: value \"1e999\" out of range");
    // Go's ParseFloat takes hex floats, but Prometheus refuses any `p`.
    assert_eq!(fails("foo 0x1p3\n", T), "1:5: invalid value \"0x1p3\"");
    assert_eq!(
        fails("foo 1_000\n# EOF\n", OM),
        "1:5: invalid value \"1_000\""
    );
}

#[test]
fn malformed_unterminated_label_value() {
    assert_eq!(fails("foo{a=\"b} 1\n", T), "1:7: unterminated label value");
    // OpenMetrics label values end at the line.
    assert_eq!(
        fails("foo{a=\"b\n\"} 1\n# EOF\n", OM),
        "1:7: unterminated label value"
    );
}

#[test]
fn malformed_bad_escape() {
    assert_eq!(
        fails("foo{a=\"b\\\n\"} 1\n", T),
        "1:9: invalid escape sequence in label value"
    );
    assert_eq!(
        fails("foo{a=\"b\\", T),
        "1:9: invalid escape sequence in label value"
    );
}

#[test]
fn malformed_bad_label_name() {
    assert_eq!(
        fails("foo{1a=\"b\"} 1\n", T),
        "1:5: expected label name or \"}\", got \"1a=\\\"b\\\"}\""
    );
    assert_eq!(
        fails("foo{a-b=\"c\"} 1\n", T),
        "1:6: expected \"=\" after label name, got \"-b=\\\"c\\\"}\""
    );
    assert_eq!(
        fails("foo{,a=\"b\"} 1\n", T),
        "1:5: expected label name or \"}\", got \",a=\\\"b\\\"}\""
    );
}

#[test]
fn malformed_missing_equals() {
    assert_eq!(
        fails("foo{a \"b\"} 1\n", T),
        "1:7: expected \"=\" after label name, got \"\\\"b\\\"}\""
    );
    assert_eq!(
        fails("foo{a=b} 1\n", T),
        "1:7: expected label value, got \"b}\""
    );
}

#[test]
fn malformed_missing_closing_brace() {
    assert_eq!(
        fails("foo{a=\"b\" 1\n", T),
        "1:11: expected label name or \"}\", got \"1\""
    );
    assert_eq!(
        fails("foo{a=\"b\" 1\n# EOF\n", OM),
        "1:10: expected \",\" or \"}\" after label value, got \" \""
    );
}

#[test]
fn malformed_garbage_after_value() {
    assert_eq!(
        fails("foo 1 x\n", T),
        "1:7: expected timestamp or end of line, got \"x\""
    );
    assert_eq!(
        fails("foo 1 2 3\n", T),
        "1:9: expected end of line after timestamp, got \"3\""
    );
    assert_eq!(
        fails("foo{} 1{\n", T),
        "1:8: expected timestamp or end of line, got \"{\""
    );
    assert_eq!(
        fails("foo 1 # {a=\"b\"} 1\n", T),
        "1:7: expected timestamp or end of line, got \"#\""
    );
}

#[test]
fn malformed_bad_timestamp() {
    assert_eq!(fails("foo 1 12x\n", T), "1:7: invalid timestamp \"12x\"");
    assert_eq!(
        fails("foo 1 -5\n", T),
        "1:7: expected timestamp or end of line, got \"-5\""
    );
    assert_eq!(fails("foo 1 1.5\n", T), "1:7: invalid timestamp \"1.5\"");
    assert_eq!(
        fails("foo 1 99999999999999999999\n", T),
        "1:7: timestamp \"99999999999999999999\" out of range"
    );
    assert_eq!(
        fails("foo 1 NaN\n# EOF\n", OM),
        "1:7: invalid timestamp NaN"
    );
    assert_eq!(
        fails("foo 1 abc\n# EOF\n", OM),
        "1:7: invalid timestamp \"abc\""
    );
}

#[test]
fn malformed_openmetrics_without_eof() {
    assert_eq!(
        fails("foo 1\n", OM),
        "2:1: data does not end with \"# EOF\""
    );
    assert_eq!(fails("", OM), "1:1: data does not end with \"# EOF\"");
    assert_eq!(
        fails("foo 1", OM),
        "1:6: expected end of line, got end of input"
    );
}

#[test]
fn malformed_content_after_eof() {
    assert_eq!(
        fails("foo 1\n# EOF\nbar 2\n", OM),
        "3:1: unexpected data after \"# EOF\""
    );
    assert_eq!(
        fails("# EOF\n\n", OM),
        "2:1: unexpected data after \"# EOF\""
    );
    assert_eq!(fails("# EOFX", OM), "1:6: unexpected data after \"# EOF\"");
}

#[test]
fn malformed_duplicate_label() {
    assert_eq!(
        fails("foo{a=\"1\",b=\"2\",a=\"3\"} 1\n", T),
        "1:17: duplicate label name \"a\""
    );
    assert_eq!(
        fails("foo{b=\"1\",a=\"2\",a=\"3\"} 1\n# EOF\n", OM),
        "1:17: duplicate label name \"a\""
    );
    assert_eq!(
        fails("foo{__name__=\"bar\"} 1\n", T),
        "1:5: duplicate label name \"__name__\""
    );
    // Names sort the same way in each sample: no false positives.
    assert_eq!(
        samples("foo{b=\"1\",a=\"2\",c=\"3\"} 1\nfoo{a=\"1\"} 2\n", T).len(),
        2
    );
}

/// Past `HASHED_FROM` unsorted names, repeats are found in a hash set:
/// same error, same column, and the set starts empty for each sample.
#[test]
fn issue_16_many_unsorted_labels_find_repeats_in_a_set() {
    let names: Vec<String> = (0..100).rev().map(|i| format!("l{i:03}=\"v\"")).collect();
    let wide = format!("foo{{{}}}", names.join(","));
    let twice = format!("{wide} 1\n{wide} 2\n");
    assert_eq!(samples(&twice, T).len(), 2);
    let repeated = format!("foo{{{},l050=\"w\"}} 1\n", names.join(","));
    let column = repeated.find(",l050=\"w\"").unwrap() + 2;
    assert_eq!(
        fails(&repeated, T),
        format!("1:{column}: duplicate label name \"l050\"")
    );
}

#[test]
fn malformed_invalid_metric_name() {
    assert_eq!(
        fails("1foo 1\n", T),
        "1:1: expected metric name or comment, got \"1foo\""
    );
    assert_eq!(
        fails("{a=\"b\"} 1\n", T),
        "1:1: expected metric name or comment, got \"{a=\\\"b\\\"}\""
    );
    assert_eq!(
        fails("# HELP 1foo x\n", T),
        "1:8: expected metric name after HELP, got \"1foo\""
    );
    assert_eq!(
        fails("-foo 1\n# EOF\n", OM),
        "1:1: expected metric name or \"# \", got \"-foo\""
    );
}

#[test]
fn malformed_bad_type() {
    assert_eq!(
        fails("# TYPE foo bar\n", T),
        "1:12: invalid metric type \"bar\""
    );
    // Only OpenMetrics knows these, and only the text format says untyped.
    assert_eq!(
        fails("# TYPE foo info\n", T),
        "1:12: invalid metric type \"info\""
    );
    assert_eq!(
        fails("# TYPE foo untyped\n# EOF\n", OM),
        "1:12: invalid metric type \"untyped\""
    );
    assert_eq!(
        fails("# TYPE foo  gauge\n", T),
        "1:12: invalid metric type \" gauge\""
    );
    assert_eq!(fails("# TYPE foo\n", T), "1:11: invalid metric type \"\"");
}

#[test]
fn malformed_openmetrics_whitespace() {
    assert_eq!(
        fails("foo 1\n\nbar 1\n# EOF\n", OM),
        "2:1: expected metric name or \"# \", got end of line"
    );
    assert_eq!(
        fails(" foo 1\n# EOF\n", OM),
        "1:1: expected metric name or \"# \", got \" \""
    );
    assert_eq!(
        fails("foo  1\n# EOF\n", OM),
        "1:5: expected value, got \" \""
    );
    assert_eq!(
        fails("foo{a=\"b\", c=\"d\"} 1\n# EOF\n", OM),
        "1:11: expected label name, got \" \""
    );
    assert_eq!(
        fails("foo{a=\"b\",} 1\n# EOF\n", OM),
        "1:11: expected label name, got \"}\""
    );
    assert_eq!(
        fails("# a comment\n# EOF\n", OM),
        "1:3: expected HELP, TYPE, UNIT or EOF after \"# \", got \"a\""
    );
    assert_eq!(
        fails("#TYPE foo gauge\n# EOF\n", OM),
        "1:2: expected \" \" after \"#\", got \"TYPE\""
    );
    assert_eq!(
        fails("# HELP foo\n# EOF\n", OM),
        "1:11: expected \" \" and text after metric name in HELP, got end of line"
    );
}

#[test]
fn malformed_unit_and_exemplar() {
    assert_eq!(
        fails("# UNIT foo_seconds bytes\n# EOF\n", OM),
        "1:20: unit \"bytes\" is not a suffix of metric \"foo_seconds\""
    );
    assert_eq!(
        fails("# UNIT seconds seconds\n# EOF\n", OM),
        "1:16: unit \"seconds\" is not a suffix of metric \"seconds\""
    );
    assert_eq!(
        fails("foo_total 1 # {a=\"b\"}\n# EOF\n", OM),
        "1:22: expected \" \" and exemplar value, got end of line"
    );
    assert_eq!(
        fails("foo_total 1 # {a=b} 1\n# EOF\n", OM),
        "1:18: expected label value, got \"b}\""
    );
    assert_eq!(
        fails("foo_total 1 1 #x\n# EOF\n", OM),
        "1:15: expected \"# {\" (an exemplar) after space, got \"#x\""
    );
}

#[test]
fn malformed_utf8() {
    let mut body = b"foo{a=\"".to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(b"\"} 1\n");
    let err = Parser::new(&body, T).find_map(|r| r.err()).unwrap();
    assert_eq!(
        err.to_string(),
        "line 1, column 8: invalid UTF-8 in label value"
    );
    // Bad bytes in a plain comment do not matter.
    let mut body = b"# \xff\xfe\nfoo{a=\"\xc3\xa9\"} 1\n".to_vec();
    body.extend_from_slice(b"bar 2\n");
    let got: Vec<_> = Parser::new(&body, T).collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), 2);
    let Entry::Sample(s) = &got[0] else { panic!() };
    assert_eq!(s.labels().next().unwrap().1, "é");
}

#[test]
fn malformed_prometheus_rejects_too() {
    // Prometheus keeps the blanks in the name, which then fails checks.
    assert_eq!(
        fails("  foo 1\n", T),
        "1:1: metric name must start the line"
    );
    // Prometheus 2.42 takes exemplars on counters and buckets only.
    assert_eq!(
        fails("foo_count 1 # {a=\"b\"} 1\n# EOF\n", OM),
        "1:13: metric name \"foo_count\" does not support exemplars"
    );
}

#[test]
fn text_format_whitespace_is_lenient() {
    let body = "\n  \t\nfoo { a = \"1\" , b=\"2\"c=\"3\", }  7 \t 123 \t\n\
                bar{}1\nbaz+Inf\n#\n#comment\n# UNIT x y\n#  HELP  m  a\\\\b\\nc\\\"d \n";
    let got = entries(body, T);
    let Entry::Sample(foo) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(foo.series, b"foo { a = \"1\" , b=\"2\"c=\"3\", }");
    assert_eq!(foo.value, 7.0);
    assert_eq!(foo.timestamp_ms, Some(123));
    let labels: Vec<_> = foo.labels().map(|(n, v)| format!("{n}={v}")).collect();
    assert_eq!(labels, ["a=1", "b=2", "c=3"]);
    let Entry::Sample(bar) = &got[1] else {
        panic!()
    };
    assert_eq!(
        (bar.name(), bar.series, bar.value),
        ("bar", &b"bar{}"[..], 1.0)
    );
    let Entry::Sample(baz) = &got[2] else {
        panic!()
    };
    assert_eq!((baz.name(), baz.value), ("baz", f64::INFINITY));
    assert_eq!(
        got[3],
        Entry::Help {
            metric: "m",
            text: Cow::Borrowed(" a\\b\nc\\\"d ")
        }
    );
    assert_eq!(got.len(), 4);
}

#[test]
fn text_format_stops_at_a_nul_where_a_line_starts() {
    let got = samples("foo{a=\"x\0y\"} 1\n  \0bar 2\n", T);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels().next().unwrap().1, "x\0y");
}

#[test]
fn blank_only_help_text_is_empty() {
    let got = entries("# HELP foo  \t \n# HELP bar \t x\n", T);
    assert_eq!(
        got[0],
        Entry::Help {
            metric: "foo",
            text: Cow::Borrowed("")
        }
    );
    assert_eq!(
        got[1],
        Entry::Help {
            metric: "bar",
            text: Cow::Borrowed("\t x")
        }
    );
}

#[test]
fn text_format_allows_raw_newlines_in_label_values() {
    let got = samples("foo{a=\"x\ny\"} 1\nbar 2\n", T);
    assert_eq!(got[0].labels().next().unwrap().1, "x\ny");
    assert_eq!(got[1].name(), "bar");
}

#[test]
fn openmetrics_features() {
    let body = "# TYPE a info\n# TYPE b stateset\n# TYPE c gaugehistogram\n# TYPE d unknown\n\
                # UNIT d_seconds seconds\n# UNIT e \n# HELP e a \\\"q\\\" \\\\ \\n\n\
                a_info{v=\"1\"} 1\nc_bucket{le=\"+Inf\"} 3 1520879607.789 # {trace_id=\"x\"} 0.67 1520879607.7\n\
                c_total 4 # {} 1\nd_created 1.7e9\nd -0 -1.5\n# EOF";
    let got = entries(body, OM);
    let kinds: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            Entry::Type { kind, .. } => Some(kind.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["info", "stateset", "gaugehistogram", "unknown"]);
    assert!(got.contains(&Entry::Unit {
        metric: "d_seconds",
        unit: "seconds"
    }));
    assert!(got.contains(&Entry::Unit {
        metric: "e",
        unit: ""
    }));
    assert!(got.contains(&Entry::Help {
        metric: "e",
        text: Cow::Owned("a \"q\" \\ \n".into())
    }));
    let s: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            Entry::Sample(s) => Some((s.name(), s.value, s.timestamp_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(
        s,
        [
            ("a_info", 1.0, None),
            ("c_bucket", 3.0, Some(1_520_879_607_789)),
            ("c_total", 4.0, None),
            ("d_created", 1.7e9, None),
            ("d", -0.0, Some(-1500)),
        ]
    );
}

#[test]
fn text_format_ends_without_newline_and_ignores_eof_comment() {
    let got = samples("foo 1\n# EOF\nbar 2", T);
    assert_eq!(
        got.iter().map(|s| s.name()).collect::<Vec<_>>(),
        ["foo", "bar"]
    );
}

#[test]
fn ascending_is_bytewise_less_than() {
    for (a, b) in [
        ("a", "b"),
        ("a", "ab"),
        ("le", "namespace"),
        ("otel_a", "otel_b"),
    ] {
        assert!(ascending(a.as_bytes(), b.as_bytes()), "{a} < {b}");
        assert!(!ascending(b.as_bytes(), a.as_bytes()), "{b} > {a}");
    }
    assert!(!ascending(b"same", b"same"));
}

#[test]
fn content_type_picks_the_format() {
    let om = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores";
    assert_eq!(Format::from_content_type(om), Format::OpenMetrics);
    assert_eq!(
        Format::from_content_type("Application/OpenMetrics-Text"),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type("text/plain; version=0.0.4; charset=utf-8"),
        Format::PromText
    );
    assert_eq!(Format::from_content_type(""), Format::PromText);
    assert_eq!(
        Format::from_content_type("application/json"),
        Format::PromText
    );
}

#[test]
fn metric_type_names_match_prometheus() {
    assert_eq!(MetricType::Unknown.as_str(), "unknown");
    assert_eq!(MetricType::GaugeHistogram.as_str(), "gaugehistogram");
    assert_eq!(MetricType::StateSet.as_str(), "stateset");
}

#[test]
fn error_position_counts_lines_and_columns_from_one() {
    let p = Parser::new(b"a 1\nbc 2\n", Format::PromText);
    let e = p.error_at(5, "boom".to_string());
    assert_eq!((e.line, e.column), (2, 2));
    assert_eq!(e.to_string(), "line 2, column 2: boom");
    assert_eq!(p.describe(9), "end of input");
    assert_eq!(p.describe(3), "end of line");
    assert_eq!(p.describe(4), "\"bc\"");
}

/// The body is not checked for UTF-8 as a whole: text is checked where it
/// is read, so series text vouched for costs no check, while new series
/// text and HELP text fail as they did when the whole body was checked.
#[test]
fn issue_22_utf8_is_checked_where_new_text_is_read() {
    let known = b"ok{a=\"\xc3\xa9\"}";
    let mut body = known.to_vec();
    body.extend_from_slice(b" 1\nnew{a=\"x\xff\"} 2\n");
    for format in [T, OM] {
        let mut body = body.clone();
        if format == OM {
            body.extend_from_slice(b"# EOF\n");
        }
        let mut vouch = |raw: &[u8]| raw == known;
        let mut p = Parser::new(&body, format);
        let Some(Ok(Entry::Sample(ok))) = p.next_trusting(&mut vouch) else {
            panic!("the known series parses")
        };
        assert_eq!(ok.labels().next().unwrap().1, "é");
        let err = p.next_trusting(&mut vouch).unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column 8: invalid UTF-8 in label value"
        );
        assert!(p.next_trusting(&mut vouch).is_none());
        // Without a voucher the new series fails the same way.
        let err = Parser::new(&body, format).find_map(|r| r.err()).unwrap();
        assert_eq!(
            err.to_string(),
            "line 2, column 8: invalid UTF-8 in label value"
        );
    }
    let err = Parser::new(b"# HELP m a\xffb\nm 1\n", T)
        .find_map(|r| r.err())
        .unwrap();
    assert_eq!(
        err.to_string(),
        "line 1, column 10: HELP text is not valid UTF-8"
    );
    let err = Parser::new(b"# HELP m a\xffb\nm 1\n# EOF\n", OM)
        .find_map(|r| r.err())
        .unwrap();
    assert_eq!(
        err.to_string(),
        "line 1, column 10: HELP text is not valid UTF-8"
    );
    // Invalid bytes after a valid value (an exemplar's label) fail too.
    let err = Parser::new(b"c_total 1 # {t=\"\xfe\"} 1\n# EOF\n", OM)
        .find_map(|r| r.err())
        .unwrap();
    assert!(err.to_string().contains("invalid UTF-8"), "{err}");
}
