//! Embeds the web UI's files: `ui/src/*` (ours) and, when installed by
//! `scripts/setup-deps`, uPlot's built files from `ui/node_modules/uplot/dist/`.
//! Writes `$OUT_DIR/ui_assets.rs` for `src/web/ui/assets.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Third-party files taken from npm packages: (package file, served name).
const VENDOR: &[(&str, &str)] = &[
    ("uplot/dist/uPlot.iife.min.js", "vendor/uPlot.iife.min.js"),
    ("uplot/dist/uPlot.min.css", "vendor/uPlot.min.css"),
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let src = root.join("ui/src");
    let modules = root.join("ui/node_modules");
    println!("cargo:rerun-if-changed=ui/src");
    println!("cargo:rerun-if-changed=ui/node_modules/uplot/dist");
    println!("cargo:rerun-if-changed=build.rs");
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&src) {
        let mut own: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        own.sort();
        for p in own.into_iter().filter(|p| p.is_file()) {
            println!("cargo:rerun-if-changed={}", p.display());
            if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                files.push((name.to_string(), p.clone()));
            }
        }
    }
    let vendor: Vec<(String, PathBuf)> = VENDOR
        .iter()
        .map(|(from, to)| (to.to_string(), modules.join(from)))
        .collect();
    let vendor_built = vendor.iter().all(|(_, p)| p.is_file());
    if vendor_built {
        files.extend(vendor);
    }
    let mut out = String::from("/// (served path, bytes) of every embedded file.\n");
    out.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        let _ = writeln!(out, "    ({name:?}, include_bytes!({:?})),", abs(path));
    }
    out.push_str("];\n");
    let _ = writeln!(
        out,
        "/// Whether uPlot was installed when this binary was built.\npub const VENDOR_BUILT: bool = {vendor_built};"
    );
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("ui_assets.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}

fn abs(p: &Path) -> String {
    p.display().to_string()
}
