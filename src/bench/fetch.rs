//! One exchange of the benchmark's own HTTP client: send with a timeout,
//! read the whole body, and decode it as JSON or keep it as text. The error
//! is the client's own text, for the caller to put in context.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// The body of the answer to `req` as JSON.
pub(super) async fn json<T: DeserializeOwned>(
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<T, String> {
    let body = req
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// The body of the answer to `req` as text.
pub(super) async fn text(
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<String, String> {
    req.timeout(timeout)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())
}
