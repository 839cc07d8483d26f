//! The front end's files, embedded at build time by `build.rs`: our own
//! (`ui/src/`) always, and the charting library (uPlot) when
//! `scripts/setup-deps` has installed it from npm into `ui/node_modules/`.
//! A build without it still serves pages, which say how to get it.
//!
//! Knows bytes and content types, not routes.

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The embedded file at `path` (relative to the assets root) and its type.
pub fn get(path: &str) -> Option<(&'static str, &'static [u8])> {
    FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(p, body)| (content_type(p), *body))
}

/// Whether the charting library was built in.
pub fn have_vendor() -> bool {
    VENDOR_BUILT
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map_or("", |(_, e)| e) {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}
