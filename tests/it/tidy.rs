//! Rules of the layout that check themselves (no sockets, no processes):
//! every `.rs` file opens with a `//!` doc; the core modules (`model`,
//! `textparse`, `tsdb`, `promql`) never import `web`, `config`, axum or
//! hyper; only `tsdb/kv*` uses fjall; no file has more than 1,000 lines of
//! code (lines that are neither blank nor comments); tests and benches use
//! only the library's surface, and only the library's modules are public.

use std::path::{Path, PathBuf};

/// The most lines of code a file may have.
const MAX_CODE_LINES: usize = 1000;

/// Modules that must stay free of the HTTP layer and of the config.
const CORE: &[&str] = &["model", "textparse", "tsdb", "promql"];

/// What a core module must not name in code.
const FORBIDDEN_IN_CORE: &[&str] = &["crate::web", "crate::config", "axum::", "hyper::"];

/// The library's surface: what tests and benches may import.
const LIBRARY: &[&str] = &["model", "textparse", "storage", "tsdb", "promql"];

/// Public for the binary's `main`, not for tests.
const FOR_MAIN: &str = "cli";

/// The crate's name, split so that this file does not name it in code.
const FJALL: &str = concat!("fj", "all");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                // Front-end dependencies may ship Rust-looking files.
                if p.file_name().is_some_and(|n| n == "node_modules") {
                    continue;
                }
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn all_files() -> Vec<PathBuf> {
    ["src", "tests", "benches"]
        .iter()
        .flat_map(|d| rust_files(&root().join(d)))
        .collect()
}

fn relative(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// Lines that are code: not blank and not a comment.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter(|(_, l)| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with("//")
    })
}

/// Whether `file` (relative to the repo) belongs to core module `m`.
fn in_module(file: &str, m: &str) -> bool {
    file == format!("src/{m}.rs") || file.starts_with(&format!("src/{m}/"))
}

#[test]
fn every_file_opens_with_a_module_doc() {
    let files = all_files();
    assert!(files.len() > 100, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text.starts_with("//!")
        })
        .map(|p| relative(p))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` opening: {missing:#?}"
    );
}

#[test]
fn core_modules_never_import_web_config_axum_or_hyper() {
    let mut bad = Vec::new();
    for p in all_files() {
        let file = relative(&p);
        if !CORE.iter().any(|m| in_module(&file, m)) {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, line) in code_lines(&text) {
            for word in FORBIDDEN_IN_CORE {
                if line.contains(word)
                    || line
                        .trim_start()
                        .starts_with(&format!("use {}", word.trim_end_matches("::")))
                {
                    bad.push(format!("{file}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "core modules name the HTTP layer or the config: {bad:#?}"
    );
}

#[test]
fn only_the_chunk_store_uses_fjall() {
    let mut bad = Vec::new();
    for p in all_files() {
        let file = relative(&p);
        if file == "src/tsdb/kv.rs" || file.starts_with("src/tsdb/kv/") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, line) in code_lines(&text) {
            if line.contains(&format!("{FJALL}::"))
                || line.trim_start().starts_with(&format!("use {FJALL}"))
            {
                bad.push(format!("{file}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(bad.is_empty(), "fjall outside src/tsdb/kv*: {bad:#?}");
}

#[test]
fn no_file_has_more_than_a_thousand_lines_of_code() {
    let long: Vec<String> = all_files()
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let n = code_lines(&text).count();
            (n > MAX_CODE_LINES).then(|| format!("{}: {n}", relative(p)))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_CODE_LINES} lines of code: {long:#?}"
    );
}

/// The crate's modules named as `raymon::<module>` (or inside
/// `raymon::{...}`) in the code of `text`, outside [`LIBRARY`].
fn private_modules(text: &str) -> Vec<String> {
    let prefix = concat!("ray", "mon::");
    let code: String = code_lines(text)
        .map(|(_, l)| l.split(" //").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first path segment of each top-level item of the group.
            let (mut depth, mut item_start) = (0, true);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        names.push(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(ident(rest));
        }
    }
    let mut found: Vec<String> = Vec::new();
    for n in names {
        if !n.is_empty() && n != "self" && !LIBRARY.contains(&n.as_str()) && !found.contains(&n) {
            found.push(n);
        }
    }
    found
}

#[test]
fn tests_and_benches_use_only_the_library_surface() {
    let reaching_in: Vec<String> = ["tests", "benches"]
        .iter()
        .flat_map(|d| rust_files(&root().join(d)))
        .filter_map(|p| {
            let modules = private_modules(&std::fs::read_to_string(&p).unwrap());
            (!modules.is_empty()).then(|| format!("{}: {modules:?}", relative(&p)))
        })
        .collect();
    assert!(
        reaching_in.is_empty(),
        "test through the binary (HTTP, the CLI) or as a unit test in src \
         instead of importing the binary's modules: {reaching_in:#?}"
    );
    // Only the library's modules (and `cli`, for `main`) are public.
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let public: Vec<&str> = code_lines(&lib)
        .filter_map(|(_, l)| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .filter(|m| !LIBRARY.contains(m) && *m != FOR_MAIN)
        .collect();
    assert!(
        public.is_empty(),
        "make these pub(crate) in src/lib.rs: {public:?}"
    );
}

/// The rules above must be able to fail: each one trips on a sample.
#[test]
fn the_rules_catch_what_they_forbid() {
    let sample = "//! doc\n\nuse axum::Router;\n// axum:: in a comment\nfn f() {}\n";
    let code: Vec<&str> = code_lines(sample).map(|(_, l)| l).collect();
    assert_eq!(code, ["use axum::Router;", "fn f() {}"]);
    assert!(code.iter().any(|l| l.contains("axum::")));
    assert!(in_module("src/tsdb/head/series.rs", "tsdb"));
    assert!(in_module("src/tsdb.rs", "tsdb"));
    assert!(!in_module("src/tsdbx.rs", "tsdb"));
    let uses = concat!(
        "use ray",
        "mon::model::Labels;\n",
        "use ray",
        "mon::{web::router, tsdb};\n",
        "let x = ray",
        "mon::scrape::f(); // ray",
        "mon::launcher\n",
        "use not_ray",
        "mon::bench;\n",
    );
    assert_eq!(private_modules(uses), ["web", "scrape"]);
    let grouped = concat!(
        "use ray",
        "mon::{\n    model::Labels,\n    cli::{Cli, Command},\n};\n"
    );
    assert_eq!(private_modules(grouped), ["cli"]);
}
