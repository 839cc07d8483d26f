//! Web pages: Grafana-compatible dashboard pages for Ray's dashboard
//! (`/api/health`, `/d/{uid}/{slug}`, `/d-solo/{uid}/{slug}?panelId=N`) and
//! the data routes they call (`/api/dashboards/...`, in `panel_data`);
//! and Prometheus-style pages (`/graph`, `/targets`, `/service-discovery`,
//! `/status`, `/tsdb-status`) over the query API.
//! Pages are a small HTML shell; drawing happens in the browser
//! (`ui/src/*.js` with uPlot). Every link and fetch is relative, through a
//! `<base>` computed from the request's depth, so pages work under a route
//! prefix and behind JupyterHub's proxy.
//!
//! Knows routes and HTML, not PromQL or storage.

mod assets;
pub mod dashboards;
mod panel_data;
pub mod templating;
pub mod timerange;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use dashboards::Dashboards;

use super::Shared;

/// Where the front end's files are served.
const ASSETS: &str = "ui/static/";

/// The routes of the pages and their data.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/dashboards", get(panel_data::list))
        .route("/api/dashboards/uid/{uid}", get(panel_data::dashboard))
        .route(
            "/api/dashboards/uid/{uid}/variables",
            get(panel_data::variables),
        )
        .route(
            "/api/dashboards/uid/{uid}/panels/{id}/query",
            get(panel_data::panel_query),
        )
        .route("/d/{uid}", get(dashboard_page))
        .route("/d/{uid}/", get(dashboard_page))
        .route("/d/{uid}/{slug}", get(dashboard_page))
        .route("/d-solo/{uid}", get(solo_page))
        .route("/d-solo/{uid}/", get(solo_page))
        .route("/d-solo/{uid}/{slug}", get(solo_page))
        .route("/dashboards", get(index_page))
        .route("/graph", get(prom_page))
        .route("/targets", get(prom_page))
        .route("/service-discovery", get(prom_page))
        .route("/status", get(prom_page))
        .route("/tsdb-status", get(prom_page))
        .route("/ui/static/{*path}", get(asset))
}

/// Paths a browser may load without credentials when dashboards are
/// public (`--web.dashboards.anonymous`): the pages, their files, and data
/// routes that run only the dashboards' own queries. Never the query API.
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/api/health"
        || path == "/dashboards"
        || path == "/api/dashboards"
        || path.starts_with("/api/dashboards/uid/")
        || path.starts_with("/d/")
        || path.starts_with("/d-solo/")
        || path.starts_with("/ui/static/")
}

/// [`is_dashboard_path`] for a path that still carries the route prefix
/// (`/` for none); outside the prefix nothing is open.
pub fn is_dashboard_path_under(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('/') && is_dashboard_path(rest))
}

/// Grafana's `GET /api/health`, which Ray's dashboard checks (HTTP 200,
/// `application/json`, `database` = `ok`).
async fn health() -> Response {
    axum::Json(serde_json::json!({
        "commit": concat!("raymon-", env!("CARGO_PKG_VERSION")),
        "database": "ok",
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

/// `../` per directory level of `path`, so that relative URLs resolve
/// against the root the router sees (under any prefix or proxy path).
fn base_of(path: &str) -> String {
    let depth = path.matches('/').count().saturating_sub(1);
    if depth == 0 {
        "./".to_string()
    } else {
        "../".repeat(depth)
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page shell: the base, the styles, uPlot, and our module.
fn shell(path: &str, title: &str, body_attrs: &str, module: &str) -> Response {
    let base = base_of(path);
    let vendor = if assets::have_vendor() {
        format!(
            r#"<link rel="stylesheet" href="{ASSETS}vendor/uPlot.min.css">
<script src="{ASSETS}vendor/uPlot.iife.min.js"></script>"#
        )
    } else {
        String::new()
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<base href="{base}">
<title>{title}</title>
<link rel="stylesheet" href="{ASSETS}style.css">
{vendor}
<script type="module" src="{ASSETS}{module}"></script>
</head>
<body {body_attrs} data-vendor="{have}">
<noscript>These pages need JavaScript.</noscript>
</body>
</html>
"#,
        title = escape_html(title),
        have = assets::have_vendor(),
    );
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn dashboard_page(Path(params): Path<Vec<(String, String)>>, req: Request) -> Response {
    let uid = uid_of(&params);
    shell(
        req.uri().path(),
        &format!("{uid} - raymon"),
        &format!(r#"data-uid="{}" data-mode="dashboard""#, escape_html(&uid)),
        "dashboard.js",
    )
}

async fn solo_page(Path(params): Path<Vec<(String, String)>>, req: Request) -> Response {
    let uid = uid_of(&params);
    shell(
        req.uri().path(),
        &format!("{uid} - raymon"),
        &format!(r#"data-uid="{}" data-mode="solo""#, escape_html(&uid)),
        "dashboard.js",
    )
}

async fn index_page(req: Request) -> Response {
    shell(
        req.uri().path(),
        "Dashboards - raymon",
        r#"data-mode="index""#,
        "dashboard.js",
    )
}

/// The Prometheus-style pages (`ui/src/prom.js`); they read the query API,
/// so with basic auth on the browser asks for the password.
async fn prom_page(State(st): State<Shared>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let page = path.trim_start_matches('/');
    shell(
        &path,
        &st.page_title,
        &format!(r#"data-mode="{}""#, escape_html(page)),
        "prom.js",
    )
}

fn uid_of(params: &[(String, String)]) -> String {
    params
        .iter()
        .find(|(k, _)| k == "uid")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

async fn asset(Path(path): Path<String>) -> Response {
    match assets::get(&path) {
        Some((ctype, body)) => {
            let mut r = (StatusCode::OK, body).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=3600"),
            );
            r
        }
        None if path.starts_with("vendor/") => super::envelope::text(
            StatusCode::NOT_FOUND,
            "uPlot is not built into this raymon: run scripts/setup-deps, then cargo build\n",
        ),
        None => super::envelope::text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_reach_the_root() {
        assert_eq!(base_of("/graph"), "./");
        assert_eq!(base_of("/d/uid/"), "../../");
        assert_eq!(base_of("/d/uid/slug"), "../../");
        assert_eq!(base_of("/d/uid"), "../");
    }

    #[test]
    fn a_route_prefix_is_part_of_the_open_paths() {
        assert!(is_dashboard_path_under("/", "/d/x/"));
        assert!(is_dashboard_path_under("/prom", "/prom/d/x/"));
        assert!(!is_dashboard_path_under("/prom", "/d/x/"));
        assert!(!is_dashboard_path_under("/prom", "/promd/x/"));
        assert!(!is_dashboard_path_under("/prom", "/prom/api/v1/query"));
    }

    #[test]
    fn the_query_api_is_never_a_dashboard_path() {
        assert!(is_dashboard_path("/d-solo/x/y"));
        assert!(!is_dashboard_path("/api/v1/query"));
        assert!(!is_dashboard_path("/api/dashboardsx"));
        assert!(!is_dashboard_path("/graph"));
    }
}
