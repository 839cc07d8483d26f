//! The router: `/api/v1` (in [`v1`]), the `/-/` lifecycle endpoints,
//! `/federate`, `/metrics`, `/version`, and the layers around them
//! (readiness, CORS, gzip, body limit, request timeout).
//!
//! Knows the routes and their plumbing, not the endpoint logic.

pub mod answer;
pub mod v1;

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio::sync::oneshot;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::envelope::text;
use super::federate;
use super::gzip;
use super::json;
use super::prefix;
use super::{AppState, Shared};

/// The whole HTTP surface, ready to serve.
pub fn router(state: AppState) -> Router {
    let state: Shared = std::sync::Arc::new(state);
    let ready = middleware::from_fn_with_state(state.clone(), require_ready);
    let routes = Router::new()
        .route("/", get(prefix::home_redirect))
        .nest("/api/v1", v1::routes(state.clone()))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready_probe).route_layer(ready.clone()))
        .route("/-/reload", any(reload))
        .route("/-/quit", any(quit))
        .route("/federate", get(federate::handler).route_layer(ready))
        .route("/metrics", get(metrics))
        .route("/version", get(version))
        .merge(super::ui::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), api_plumbing))
        .layer(middleware::map_response(fill_method_not_allowed))
        .layer(middleware::from_fn(gzip::buffered))
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(state.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.request_timeout,
        ))
        .with_state(state.clone());
    if state.location.route_prefix == "/" {
        return routes;
    }
    // Middleware on a router runs after routing: the prefix is cut by an
    // outer router whose only route is the inner one.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn_with_state(state, prefix::route_prefix))
}

/// `testReady`: 503 `Service Unavailable` until the store is open.
pub(crate) async fn require_ready(State(st): State<Shared>, req: Request, next: Next) -> Response {
    if st.ready.load(Ordering::Acquire) {
        next.run(req).await
    } else {
        not_ready()
    }
}

/// Prometheus 2.42's answer in agent mode for the endpoints that read
/// stored data.
pub(crate) async fn refuse_in_agent(
    State(st): State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    if st.agent {
        crate::web::envelope::ApiError::execution("unavailable with Prometheus Agent")
            .into_response()
    } else {
        next.run(req).await
    }
}

fn not_ready() -> Response {
    text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
}

/// CORS headers for `/api/v1` requests with an `Origin`, and `204` for
/// `OPTIONS` on any API path, as `httputil.SetCORS` and `api.options`;
/// but never for writes, so that no web page can pass a preflight for them
/// or read their answers.
async fn api_plumbing(State(st): State<Shared>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/v1/") {
        return next.run(req).await;
    }
    let cors = req.headers().contains_key(header::ORIGIN) && !is_write(&req);
    // `httputil.SetCORS`: `*` for the default `.*`; else the request's
    // origin when `--web.cors.origin` matches it, and no allow-origin at all
    // when it does not.
    let allow_origin = st.cors_origin.as_ref().map(|re| {
        req.headers()
            .get(header::ORIGIN)
            .filter(|o| o.to_str().is_ok_and(|o| re.is_match(o)))
            .cloned()
    });
    let mut resp = if req.method() == Method::OPTIONS {
        if st.ready.load(Ordering::Acquire) {
            StatusCode::NO_CONTENT.into_response()
        } else {
            not_ready()
        }
    } else {
        next.run(req).await
    };
    if cors {
        let h = resp.headers_mut();
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("Accept, Authorization, Content-Type, Origin"),
        );
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("Date"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        match &allow_origin {
            None => {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            Some(Some(origin)) => {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            }
            Some(None) => {}
        }
    }
    resp
}

/// Whether a request to an `/api/v1` path may change what is stored; for a
/// preflight (`OPTIONS`), whether the request it asks about may.
fn is_write(req: &Request) -> bool {
    let path = req.uri().path();
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let method = match asked {
        Some(m) if req.method() == Method::OPTIONS => m,
        _ => req.method().clone(),
    };
    matches!(path, "/api/v1/import" | "/api/v1/write")
        || path.starts_with("/api/v1/admin/")
        || method == Method::DELETE
}

/// 415 for a body whose type a web page may send to any site without a
/// CORS preflight (`text/plain`, `application/x-www-form-urlencoded`,
/// `multipart/form-data`, or no type at all): a page that a user opens
/// could otherwise write through the user's browser to a server only their
/// machine can reach. `want` names the type real clients send.
pub(crate) fn refuse_simple_request(headers: &HeaderMap, want: &str) -> Option<Response> {
    let got = match headers.get(header::CONTENT_TYPE) {
        None => "",
        // Not text, so not one of the types a page may send unasked.
        Some(v) => v.to_str().ok()?,
    };
    let essence = got
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(
        essence.as_str(),
        "" | "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
    ) {
        return None;
    }
    let shown = if got.is_empty() { "(none)" } else { got };
    Some(text(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "unsupported Content-Type {shown}: any web page can send that without a CORS preflight; send Content-Type: {want}\n"
        ),
    ))
}

/// Go's router answers a wrong method with a text body; axum's is empty.
async fn fill_method_not_allowed(resp: Response) -> Response {
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED
        || resp.headers().contains_key(header::CONTENT_TYPE)
    {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    if let Some(a) = allow {
        r.headers_mut().insert(header::ALLOW, a);
    }
    r
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

async fn healthy() -> Response {
    text(StatusCode::OK, "Prometheus Server is Healthy.\n")
}

async fn ready_probe() -> Response {
    text(StatusCode::OK, "Prometheus Server is Ready.\n")
}

fn lifecycle_method(method: &Method) -> Option<Response> {
    match *method {
        Method::POST | Method::PUT => None,
        Method::GET => Some(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only POST or PUT requests allowed",
        )),
        _ => Some(StatusCode::METHOD_NOT_ALLOWED.into_response()),
    }
}

fn lifecycle_disabled() -> Response {
    text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.")
}

async fn reload(State(st): State<Shared>, method: Method) -> Response {
    if let Some(r) = lifecycle_method(&method) {
        return r;
    }
    let Some(tx) = st.reload.clone() else {
        return lifecycle_disabled();
    };
    let (done_tx, done_rx) = oneshot::channel();
    let result = match tx.send(done_tx).await {
        Ok(()) => done_rx
            .await
            .unwrap_or_else(|_| Err("reload handler went away".to_string())),
        Err(_) => Err("reload handler went away".to_string()),
    };
    if let Ok(mut s) = st.config_status.write() {
        s.success = result.is_ok();
        if result.is_ok() {
            s.last_time = std::time::SystemTime::now();
        }
    }
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        ),
    }
}

async fn quit(State(st): State<Shared>, method: Method) -> Response {
    if let Some(r) = lifecycle_method(&method) {
        return r;
    }
    let Some(token) = st.quit.as_ref() else {
        return lifecycle_disabled();
    };
    if token.is_cancelled() {
        return text(StatusCode::OK, "Termination already in progress.");
    }
    token.cancel();
    text(StatusCode::OK, "Requesting termination... Goodbye!")
}

async fn metrics(State(st): State<Shared>) -> Response {
    // Gathering walks every head series (~0.1 s at a million): off the
    // runtime's worker, which also runs every scrape.
    let body = match st.self_metrics.clone() {
        Some(f) => tokio::task::spawn_blocking(move || f())
            .await
            .unwrap_or_default(),
        None => String::new(),
    };
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn version(State(st): State<Shared>) -> Response {
    // Go's json.Encoder ends the document with a newline, and Go sniffs the
    // content type of an unlabeled JSON body as plain text.
    match json::to_vec(&st.build_info) {
        Ok(mut body) => {
            body.push(b'\n');
            text(StatusCode::OK, String::from_utf8_lossy(&body))
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("error encoding JSON: {e}\n"),
        ),
    }
}
