//! End-to-end tests of the PromQL parser: real dashboard queries, the
//! Prometheus 2.42 test scripts, a corpus of malformed queries with their
//! exact 2.42 errors, printer goldens and a deterministic fuzz run.

use std::fmt::Write as _;
use std::path::PathBuf;

use expect_test::{Expect, expect};

use crate::support::Rng;
use raymon::promql::parser::{
    AtModifier, Cardinality, Expr, MAX_DEPTH, parse_expr, parse_metric_selector,
};

fn manifest_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    let p = manifest_path(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Parses and prints, and checks that the printed form parses and prints
/// the same (the printer sorts matchers, so trees may differ in their order).
fn assert_round_trip(q: &str) -> Expr {
    let e = parse_expr(q).unwrap_or_else(|err| panic!("{q}\n  -> {err}"));
    let printed = e.to_string();
    let again = parse_expr(&printed).unwrap_or_else(|err| panic!("{printed}\n  -> {err}"));
    assert_eq!(printed, again.to_string(), "printing is not stable for {q}");
    e
}

#[test]
fn every_ray_dashboard_query_parses() {
    let text = read("tests/data/fixtures/ray/dashboard-queries-substituted.txt");
    let mut n = 0;
    for q in text.lines().filter(|l| !l.trim().is_empty()) {
        assert_round_trip(q);
        n += 1;
    }
    assert_eq!(n, 397);
}

#[test]
fn every_prometheus_242_eval_expression_parses() {
    let Some(dir) = crate::support::promql_tests_dir() else {
        crate::support::skip(
            "Prometheus's PromQL test scripts are absent (set RAYMON_PROMQL_TESTS)",
        );
        return;
    };
    let dir = dir.join("v2.42");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 11);
    let (mut ok, mut fail_cmds) = (0, 0);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("eval") else {
                continue;
            };
            let expect_fail = rest.starts_with("_fail");
            let rest = rest.trim_start_matches(|c: char| c != ' ' && c != '\t');
            let rest = rest
                .trim_start()
                .strip_prefix("instant")
                .unwrap()
                .trim_start();
            let rest = rest.strip_prefix("at").unwrap().trim_start();
            let (_time, expr) = rest.split_once(char::is_whitespace).unwrap();
            // The 2.42 runner parses `eval_fail` expressions too (they fail
            // at evaluation), so every one must parse.
            assert_round_trip(expr.trim());
            if expect_fail {
                fail_cmds += 1;
            } else {
                ok += 1;
            }
        }
    }
    assert_eq!((ok, fail_cmds), (559, 7));
}

#[test]
fn malformed_queries_fail_with_prometheus_messages() {
    let text = read("tests/data/promql/bad.txt");
    let mut checked = 0;
    let mut mismatches = String::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (q, want) = match line.split_once('\t') {
            Some((q, w)) => (q, Some(w)),
            None => (line, None),
        };
        let err = match parse_expr(q) {
            Ok(e) => panic!("{q} parsed as {e}"),
            Err(e) => e,
        };
        assert!(
            err.pos_start <= err.pos_end && err.pos_end <= q.len(),
            "{q}: {err:?}"
        );
        if let Some(want) = want {
            checked += 1;
            if err.to_string() != want {
                let _ = writeln!(mismatches, "{q}\n  want {want}\n  got  {err}");
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches}");
    assert!(checked >= 50, "{checked}");
}

#[test]
fn error_positions_count_lines() {
    let err = parse_expr("foo # a comment\n  + ").unwrap_err();
    assert_eq!(err.to_string(), "2:5: parse error: unexpected end of input");
    let err = parse_expr("").unwrap_err();
    assert_eq!(
        err.to_string(),
        "1:1: parse error: no expression found in input"
    );
    let err = parse_expr("# just a comment\n\n").unwrap_err();
    assert_eq!(err.msg, "no expression found in input");
    let err = parse_expr("sum(x{a=~\"(\"})").unwrap_err();
    assert!(err.msg.starts_with("error parsing regexp: "), "{err}");
    assert_eq!((err.line, err.col), (1, 7));
}

#[test]
fn grafana_template_variable_requests_parse() {
    let text = read("tests/data/fixtures/ray/template-variable-queries-prom242.json");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let (mut selectors, mut queries) = (0, 0);
    for row in &rows {
        let request = row[3].as_str().unwrap();
        let params = request.split_once('?').map_or("", |(_, p)| p);
        for param in params.split('&') {
            if let Some(sel) = param.strip_prefix("match[]=") {
                let m = parse_metric_selector(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
                assert_eq!(m.last().map(|m| m.name.as_str()), Some("__name__"));
                selectors += 1;
            } else if let Some(q) = param.strip_prefix("query=") {
                assert_round_trip(q);
                queries += 1;
            }
        }
    }
    assert!(selectors > 10 && queries > 2, "{selectors} {queries}");
}

#[test]
fn error_text_matches_a_real_prometheus_response() {
    // A real 2.42 answer to a query that ends inside braces at byte 14.
    let body = read("tests/data/fixtures/prometheus-api-samples/query-error-parse.json");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let real = v["error"].as_str().unwrap();
    let err = parse_expr("up{job=\"rayx\",").unwrap_err();
    assert_eq!(format!("invalid parameter \"query\": {err}"), real);
}

#[test]
fn metric_selector_for_match_params() {
    let m = parse_metric_selector(r#"up{job="ray", instance=~"10\\..*",}"#).unwrap();
    let shown: Vec<String> = m.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        shown,
        [r#"job="ray""#, r#"instance=~"10\\..*""#, r#"__name__="up""#]
    );
    assert!(parse_metric_selector("{}").unwrap().is_empty());
    assert!(parse_metric_selector("sum{a=\"b\"}").is_ok());
    let err = parse_metric_selector("rate(x[5m])").unwrap_err();
    assert_eq!(err.to_string(), "1:5: parse error: unexpected \"(\"");
    let err = parse_metric_selector("up offset 5m").unwrap_err();
    assert_eq!(err.to_string(), "1:4: parse error: unexpected <offset>");
}

/// A fully parenthesised dump that shows the tree's shape.
fn sexpr(e: &Expr) -> String {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::VectorSelector(_) => e.to_string(),
        Expr::MatrixSelector(m) => format!("{m}"),
        Expr::Subquery(s) => format!(
            "(subquery {} {}ms {}ms off={} at={:?})",
            sexpr(&s.expr),
            s.range_ms,
            s.step_ms,
            s.offset,
            s.at
        ),
        Expr::Call(c) => {
            let args: Vec<String> = c.args.iter().map(sexpr).collect();
            format!("({} {})", c.func.name, args.join(" "))
        }
        Expr::Aggregate(a) => format!(
            "({}{} {}{})",
            a.op.as_str(),
            if a.without {
                format!(" without{:?}", a.grouping)
            } else {
                format!(" by{:?}", a.grouping)
            },
            a.param
                .as_ref()
                .map(|p| format!("{} ", sexpr(p)))
                .unwrap_or_default(),
            sexpr(&a.expr)
        ),
        Expr::Binary(b) => {
            let m = match &b.matching {
                None => String::new(),
                Some(vm) => format!(
                    " [{:?} on={} {:?} {:?}]",
                    vm.card, vm.on, vm.labels, vm.include
                ),
            };
            format!(
                "({}{}{} {} {})",
                b.op.as_str(),
                if b.return_bool { " bool" } else { "" },
                m,
                sexpr(&b.lhs),
                sexpr(&b.rhs)
            )
        }
        Expr::Unary { neg, expr } => {
            format!("({} {})", if *neg { "neg" } else { "pos" }, sexpr(expr))
        }
        Expr::Paren(e) => format!("(paren {})", sexpr(e)),
    }
}

fn check_tree(queries: &[&str], want: Expect) {
    let mut out = String::new();
    for q in queries {
        let e = assert_round_trip(q);
        let _ = writeln!(out, "{q}\n  tree:  {}\n  print: {e}", sexpr(&e));
    }
    want.assert_eq(&out);
}

#[test]
fn precedence_and_associativity() {
    check_tree(
        &[
            "-x ^ 2",
            "-1 ^ 2",
            "-1 * 2",
            "-x * 2",
            "2 ^ 3 ^ 2",
            "a - b - c",
            "a + b * c % d",
            "a or b and c unless d",
            "a == bool b + 1",
            "+1 + -2 * 1",
            "a atan2 b * c",
            "- - 1",
            "-a offset 5m",
            "x ^ -y ^ z",
        ],
        expect![[r#"
            -x ^ 2
              tree:  (neg (^ x 2))
              print: -x ^ 2
            -1 ^ 2
              tree:  (neg (^ 1 2))
              print: -1 ^ 2
            -1 * 2
              tree:  (* -1 2)
              print: -1 * 2
            -x * 2
              tree:  (* (neg x) 2)
              print: -x * 2
            2 ^ 3 ^ 2
              tree:  (^ 2 (^ 3 2))
              print: 2 ^ 3 ^ 2
            a - b - c
              tree:  (- [OneToOne on=false [] []] (- [OneToOne on=false [] []] a b) c)
              print: a - b - c
            a + b * c % d
              tree:  (+ [OneToOne on=false [] []] a (% [OneToOne on=false [] []] (* [OneToOne on=false [] []] b c) d))
              print: a + b * c % d
            a or b and c unless d
              tree:  (or [ManyToMany on=false [] []] a (unless [ManyToMany on=false [] []] (and [ManyToMany on=false [] []] b c) d))
              print: a or b and c unless d
            a == bool b + 1
              tree:  (== bool [OneToOne on=false [] []] a (+ b 1))
              print: a == bool b + 1
            +1 + -2 * 1
              tree:  (+ 1 (* -2 1))
              print: 1 + -2 * 1
            a atan2 b * c
              tree:  (* [OneToOne on=false [] []] (atan2 [OneToOne on=false [] []] a b) c)
              print: a atan2 b * c
            - - 1
              tree:  1
              print: 1
            -a offset 5m
              tree:  (neg a offset 5m)
              print: -a offset 5m
            x ^ -y ^ z
              tree:  (^ [OneToOne on=false [] []] x (neg (^ [OneToOne on=false [] []] y z)))
              print: x ^ -y ^ z
        "#]],
    );
}

#[test]
fn printer_goldens() {
    check_tree(
        &[
            r#"sum by(WorkerId) (rate(ray_x_sum{model_name=~".*", WorkerId=~".*"}[5m]))"#,
            "sum(x) without (a, b)",
            "topk(5, x) by (job)",
            r#"count_values("value", x)"#,
            "foo offset 5m @ 100",
            "foo @ 100 offset -1h30m",
            "foo[5m] @ start() offset 1w",
            "rate(foo[90d])",
            "max_over_time(rate(foo[1m])[1h:] offset 2m)",
            "min_over_time((a + b)[1h:5m] @ end())",
            "a * on(job) group_left(instance, node) b",
            "a / ignoring(x) group_right b",
            "a and on() b",
            "a * ignoring() group_left b",
            "1e6 + 0x1F + 017 + .5 + Inf - NaN",
            r#"label_replace(up, "dst", "$1", "src", `(.*)\d`)"#,
            r#"{__name__=~"ray_.*", job!="x", a!~'b\'c'}"#,
            "sum(sum)",
            "by + offset + start",
            "SUM BY (AND) (X)",
            "histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))",
            "holt_winters(x[10m], 0.5, 0.5)",
            "time() - 1",
            "foo{a=\"é\\u00e9\\n\"}",
        ],
        expect![[r#"
            sum by(WorkerId) (rate(ray_x_sum{model_name=~".*", WorkerId=~".*"}[5m]))
              tree:  (sum by["WorkerId"] (rate ray_x_sum{WorkerId=~".*",model_name=~".*"}[5m]))
              print: sum by (WorkerId) (rate(ray_x_sum{WorkerId=~".*",model_name=~".*"}[5m]))
            sum(x) without (a, b)
              tree:  (sum without["a", "b"] x)
              print: sum without (a, b) (x)
            topk(5, x) by (job)
              tree:  (topk by["job"] 5 x)
              print: topk by (job) (5, x)
            count_values("value", x)
              tree:  (count_values by[] "value" x)
              print: count_values("value", x)
            foo offset 5m @ 100
              tree:  foo @ 100.000 offset 5m
              print: foo @ 100.000 offset 5m
            foo @ 100 offset -1h30m
              tree:  foo @ 100.000 offset -1h30m
              print: foo @ 100.000 offset -1h30m
            foo[5m] @ start() offset 1w
              tree:  foo[5m] @ start() offset 1w
              print: foo[5m] @ start() offset 1w
            rate(foo[90d])
              tree:  (rate foo[90d])
              print: rate(foo[90d])
            max_over_time(rate(foo[1m])[1h:] offset 2m)
              tree:  (max_over_time (subquery (rate foo[1m]) 3600000ms 0ms off=120000 at=None))
              print: max_over_time(rate(foo[1m])[1h:] offset 2m)
            min_over_time((a + b)[1h:5m] @ end())
              tree:  (min_over_time (subquery (paren (+ [OneToOne on=false [] []] a b)) 3600000ms 300000ms off=0 at=Some(End)))
              print: min_over_time((a + b)[1h:5m] @ end())
            a * on(job) group_left(instance, node) b
              tree:  (* [ManyToOne on=true ["job"] ["instance", "node"]] a b)
              print: a * on (job) group_left (instance, node) b
            a / ignoring(x) group_right b
              tree:  (/ [OneToMany on=false ["x"] []] a b)
              print: a / ignoring (x) group_right () b
            a and on() b
              tree:  (and [ManyToMany on=true [] []] a b)
              print: a and on () b
            a * ignoring() group_left b
              tree:  (* [ManyToOne on=false [] []] a b)
              print: a * b
            1e6 + 0x1F + 017 + .5 + Inf - NaN
              tree:  (- (+ (+ (+ (+ 1e+06 31) 15) 0.5) +Inf) NaN)
              print: 1e+06 + 31 + 15 + 0.5 + +Inf - NaN
            label_replace(up, "dst", "$1", "src", `(.*)\d`)
              tree:  (label_replace up "dst" "$1" "src" "(.*)\\d")
              print: label_replace(up, "dst", "$1", "src", "(.*)\\d")
            {__name__=~"ray_.*", job!="x", a!~'b\'c'}
              tree:  {__name__=~"ray_.*",a!~"b'c",job!="x"}
              print: {__name__=~"ray_.*",a!~"b'c",job!="x"}
            sum(sum)
              tree:  (sum by[] sum)
              print: sum(sum)
            by + offset + start
              tree:  (+ [OneToOne on=false [] []] (+ [OneToOne on=false [] []] by offset) start)
              print: by + offset + start
            SUM BY (AND) (X)
              tree:  (sum by["AND"] X)
              print: sum by (AND) (X)
            histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))
              tree:  (histogram_quantile 0.99 (sum by["le"] (rate x_bucket[5m])))
              print: histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))
            holt_winters(x[10m], 0.5, 0.5)
              tree:  (holt_winters x[10m] 0.5 0.5)
              print: holt_winters(x[10m], 0.5, 0.5)
            time() - 1
              tree:  (- (time ) 1)
              print: time() - 1
            foo{a="é\u00e9\n"}
              tree:  foo{a="éé\n"}
              print: foo{a="éé\n"}
        "#]],
    );
}

#[test]
fn modifiers_land_in_the_tree() {
    let Expr::VectorSelector(vs) = parse_expr("foo @ -1.5 offset -5m").unwrap() else {
        panic!()
    };
    assert_eq!(vs.offset, -300_000);
    assert_eq!(vs.at, Some(AtModifier::Timestamp(-1500)));
    let Expr::Subquery(sq) = parse_expr("foo[1h:] @ start() offset 1m").unwrap() else {
        panic!()
    };
    assert_eq!(
        (sq.range_ms, sq.step_ms, sq.offset, sq.at),
        (3_600_000, 0, 60_000, Some(AtModifier::Start))
    );
    let Expr::Binary(b) = parse_expr("a + on(x) group_right(y) b").unwrap() else {
        panic!()
    };
    let vm = b.matching.unwrap();
    assert_eq!(
        (vm.card, vm.on, vm.labels, vm.include),
        (
            Cardinality::OneToMany,
            true,
            vec!["x".to_string()],
            vec!["y".to_string()]
        )
    );
    let Expr::Binary(b) = parse_expr("a > 1").unwrap() else {
        panic!()
    };
    assert!(b.matching.is_none());
    let Expr::VectorSelector(vs) = parse_expr(r#"foo{a="b"}"#).unwrap() else {
        panic!()
    };
    assert_eq!(vs.matchers.last().map(|m| m.value.as_str()), Some("foo"));
}

#[test]
fn deep_nesting_errors_instead_of_overflowing() {
    let deep = |open: &str, mid: &str, close: &str, n: usize| {
        format!("{}{}{}", open.repeat(n), mid, close.repeat(n))
    };
    // Run on a small stack, like a server worker thread.
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let ok = deep("(", "1", ")", MAX_DEPTH - 2);
            assert!(parse_expr(&ok).is_ok());
            for q in [
                deep("(", "1", ")", 100_000),
                deep("-", "1", "", 100_000),
                deep("abs(", "x", ")", 50_000),
                deep("sum(", "x", ")", 50_000),
                format!("{}a", "a + ".repeat(100_000)),
                format!("{}a", "a ^ ".repeat(100_000)),
                format!("x{}", "[1m:]".repeat(10_000)),
                deep("{", "", "}", 1000),
                "(".repeat(100_000),
            ] {
                let err = parse_expr(&q).unwrap_err();
                assert!(err.pos_end <= q.len());
            }
            let err = parse_expr(&deep("(", "1", ")", 10_000)).unwrap_err();
            assert!(err.msg.contains("maximum depth"), "{err}");
        })
        .unwrap();
    h.join().unwrap();
}

const SOUP: &[&str] = &[
    "foo",
    "bar",
    "sum",
    "rate",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "@",
    "start",
    "end",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "5m",
    "1h30m",
    "0s",
    "1",
    "-1",
    "0x1F",
    "1e3",
    "Inf",
    "NaN",
    "\"a\"",
    "'b'",
    "`c`",
    "\"\\x\"",
    "=",
    "!=",
    "=~",
    "!~",
    "==",
    "<",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "and",
    "or",
    "unless",
    "atan2",
    "topk",
    "count_values",
    "quantile",
    "histogram_quantile",
    "label_replace",
    "abs",
    "time",
    "# c\n",
    " ",
    "\n",
    "le",
    "__name__",
    "x:y",
    "é",
    ".",
    "!",
    "[5m:]",
    "[1m]",
    "1y2w",
];

#[test]
fn fuzz_never_panics() {
    let seeds: Vec<String> = read("tests/data/fixtures/ray/dashboard-queries-substituted.txt")
        .lines()
        .take(120)
        .map(str::to_string)
        .chain(
            [
                "sum by (a) (rate(x{a=~\"b|c\"}[5m] offset 1m)) / on(a) group_left(b) y @ 100",
                "topk(3, max_over_time(foo[1h:5m]) @ end())",
                "-x ^ 2 > bool 1 unless z",
            ]
            .map(String::from),
        )
        .collect();
    let mut rng = Rng::seeded("parser fuzz", 0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    let charset: Vec<char> = "(){}[],:@=!~<>+-*/%^\"'`#\\ \n0123456789.eExXsmhdwyabc_é"
        .chars()
        .collect();
    for i in 0..4000 {
        let q = if i % 2 == 0 {
            let n = 1 + rng.below(12);
            (0..n)
                .map(|_| SOUP[rng.below(SOUP.len())])
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            let mut chars: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(chars.len() + 1);
                match rng.below(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => chars[at] = charset[rng.below(charset.len())],
                    _ => chars.insert(at, charset[rng.below(charset.len())]),
                }
            }
            chars.into_iter().collect()
        };
        match parse_expr(&q) {
            Ok(e) => {
                parsed += 1;
                let printed = e.to_string();
                if !printed.contains('\u{FFFD}') {
                    assert!(parse_expr(&printed).is_ok(), "{q} printed as {printed}");
                }
            }
            Err(err) => {
                assert!(
                    err.pos_start <= err.pos_end && err.pos_end <= q.len(),
                    "{q}: {err:?}"
                );
                assert!(!err.msg.is_empty());
            }
        }
        let _ = parse_metric_selector(&q);
    }
    assert!(parsed > 100, "{parsed}");
}
