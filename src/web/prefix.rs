//! `--web.external-url` and `--web.route-prefix` as Prometheus 2.42 reads
//! them (`computeExternalURL`, `web.New`): every route served under the
//! prefix, `/` redirected to it, and the home page redirect pointing under
//! the external URL's path, so raymon works behind a reverse proxy that
//! keeps the path (JupyterHub's `/proxy/absolute/<port>/`) or strips it
//! (`/proxy/<port>/`). Knows paths and redirects, not the routes.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::envelope::text;

/// Why an external URL or route prefix cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("can't parse external URL {url:?}: {reason}")]
    ExternalUrl { url: String, reason: String },
}

/// Where raymon is reached from outside and where it serves its routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The external URL without a trailing slash in its path, as Prometheus
    /// keeps it (`http://h/user/x/proxy/9090`).
    pub external_url: String,
    /// The external URL's path without a trailing slash (`""` for none).
    pub external_path: String,
    /// `/`, or a path without a trailing slash (`/prom`).
    pub route_prefix: String,
    /// The port raymon listens on, for `globalUrl`.
    pub listen_port: u16,
}

impl Default for Location {
    fn default() -> Location {
        Location {
            external_url: String::new(),
            external_path: String::new(),
            route_prefix: "/".to_string(),
            listen_port: 0,
        }
    }
}

impl Location {
    /// Prometheus's rules: without `--web.external-url`, `http://<host>:<port>/`
    /// from the listen address; the URL's path loses its trailing slashes and
    /// gains a leading one; the route prefix defaults to that path and is
    /// always `/` followed by itself trimmed of slashes.
    pub fn new(
        external_url: Option<&str>,
        route_prefix: Option<&str>,
        hostname: &str,
        listen_port: u16,
    ) -> Result<Location, Error> {
        let given = match external_url {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => format!("http://{hostname}:{listen_port}/"),
        };
        let bad = |reason: &str| Error::ExternalUrl {
            url: given.clone(),
            reason: reason.to_string(),
        };
        if given.starts_with(['"', '\'']) || given.ends_with(['"', '\'']) {
            return Err(bad("URL must not begin or end with quotes"));
        }
        let uri: Uri = given.parse().map_err(|e| bad(&format!("{e}")))?;
        let mut path = uri.path().trim_end_matches('/').to_string();
        if !path.is_empty() && !path.starts_with('/') {
            path.insert(0, '/');
        }
        let external_url = match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => format!("{s}://{a}{path}"),
            _ => path.clone(),
        };
        let prefix = match route_prefix {
            Some(p) if !p.is_empty() => p,
            _ => path.as_str(),
        };
        Ok(Location {
            external_url,
            external_path: path.clone(),
            route_prefix: format!("/{}", prefix.trim_matches('/')),
            listen_port,
        })
    }

    /// A target's `globalUrl` (Prometheus's `getGlobalURL`): a target on
    /// this machine's loopback is not reachable from elsewhere, so its host
    /// becomes the external URL's; for raymon's own port, scheme and port too.
    pub fn global_url(&self, url: &str) -> String {
        let (Ok(ext), Ok(target)) = (self.external_url.parse::<Uri>(), url.parse::<Uri>()) else {
            return url.to_string();
        };
        let (Some(ext_auth), Some(auth)) = (ext.authority(), target.authority()) else {
            return url.to_string();
        };
        if !matches!(auth.host(), "127.0.0.1" | "localhost" | "[::1]") {
            return url.to_string();
        }
        let rest = target.path_and_query().map(|p| p.as_str()).unwrap_or("");
        let port = auth.port_u16();
        if port == Some(self.listen_port) {
            format!(
                "{}://{}{rest}",
                ext.scheme_str().unwrap_or("http"),
                ext_auth
            )
        } else {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{rest}",
                target.scheme_str().unwrap_or("http"),
                ext_auth.host()
            )
        }
    }
}

/// Outermost layer: requests under the route prefix go on with the prefix
/// cut off; `/` is redirected to the prefix (302); anything else is 404.
pub(crate) async fn route_prefix(
    State(st): State<Shared>,
    mut req: Request,
    next: Next,
) -> Response {
    let prefix = st.location.route_prefix.as_str();
    if prefix == "/" {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if path == "/" {
        return redirect(StatusCode::FOUND, prefix, req.method());
    }
    let Some(rest) = path.strip_prefix(prefix) else {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    };
    if rest.is_empty() {
        // Go's router sends `/prefix` to `/prefix/` (a trailing-slash redirect).
        let code = if req.method() == Method::GET {
            StatusCode::MOVED_PERMANENTLY
        } else {
            StatusCode::PERMANENT_REDIRECT
        };
        return redirect(code, &format!("{prefix}/"), req.method());
    }
    if !rest.starts_with('/') {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    let new_uri = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    match new_uri.parse::<Uri>() {
        Ok(u) => *req.uri_mut() = u,
        Err(_) => return text(StatusCode::BAD_REQUEST, "400 bad request\n"),
    }
    next.run(req).await
}

/// `GET /` (under the prefix): Prometheus sends browsers to its home page,
/// under the external URL's path.
pub(crate) async fn home_redirect(State(st): State<Shared>, method: Method) -> Response {
    redirect(
        StatusCode::FOUND,
        &format!("{}/graph", st.location.external_path),
        &method,
    )
}

/// Go's `http.Redirect`: a `Location` and, for GET and HEAD, a short HTML body.
fn redirect(code: StatusCode, to: &str, method: &Method) -> Response {
    let mut r = if *method == Method::GET || *method == Method::HEAD {
        let mut r = (
            code,
            format!("<a href=\"{}\">{}</a>.\n\n", html_escape(to), reason(code)),
        )
            .into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r
    } else {
        code.into_response()
    };
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn reason(code: StatusCode) -> &'static str {
    code.canonical_reason().unwrap_or("Found")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(ext: Option<&str>, prefix: Option<&str>) -> Location {
        Location::new(ext, prefix, "node1", 9090).unwrap()
    }

    #[test]
    fn defaults_follow_prometheus() {
        let l = loc(None, None);
        assert_eq!(l.external_url, "http://node1:9090");
        assert_eq!(l.route_prefix, "/");
        let l = loc(Some("http://h/user/x/proxy/absolute/9090/"), None);
        assert_eq!(l.external_url, "http://h/user/x/proxy/absolute/9090");
        assert_eq!(l.external_path, "/user/x/proxy/absolute/9090");
        assert_eq!(l.route_prefix, "/user/x/proxy/absolute/9090");
        let l = loc(Some("http://h/user/x/proxy/9090/"), Some("/"));
        assert_eq!(l.route_prefix, "/");
        assert_eq!(l.external_path, "/user/x/proxy/9090");
        assert_eq!(loc(None, Some("prom//")).route_prefix, "/prom");
        assert!(Location::new(Some("\"http://h/\""), None, "n", 1).is_err());
        assert!(Location::new(Some("http://h h/"), None, "n", 1).is_err());
    }

    #[test]
    fn global_urls_replace_loopback_hosts() {
        let l = loc(Some("https://hub.example/user/x/proxy/9090/"), Some("/"));
        assert_eq!(
            l.global_url("http://127.0.0.1:9090/metrics"),
            "https://hub.example/metrics"
        );
        assert_eq!(
            l.global_url("http://localhost:8080/metrics?a=b"),
            "http://hub.example:8080/metrics?a=b"
        );
        assert_eq!(
            l.global_url("http://10.0.0.5:8080/metrics"),
            "http://10.0.0.5:8080/metrics"
        );
        assert_eq!(
            Location::default().global_url("http://127.0.0.1:1/m"),
            "http://127.0.0.1:1/m"
        );
    }
}
