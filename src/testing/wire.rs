//! Test helpers that speak plain wire formats: a raw HTTP/1.0 exchange,
//! the basic-auth header, a key of an INI file. The unit tests in `src`
//! reach them as `crate::testing::wire`; the integration tests include this
//! file by path (`tests/it/main.rs`), because they cannot import the
//! library's test-only code. It names nothing of the crate, so it compiles
//! in both.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A raw HTTP/1.0 `GET` over any stream; returns (status, head, body).
pub(crate) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<(u16, String, String)> {
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n");
    if let Some((u, p)) = auth {
        req.push_str(&format!("Authorization: {}\r\n", basic_auth(u, p)));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    // A peer that closes without TLS close_notify still sent a full answer.
    if let Err(e) = s.read_to_end(&mut raw).await
        && raw.is_empty()
    {
        return Err(e);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}

/// The `Authorization` header's value for basic auth as `user:password`.
pub(crate) fn basic_auth(user: &str, password: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::from("Basic ");
    for c in format!("{user}:{password}").as_bytes().chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The value of `key` in `[section]` of an INI file (Grafana's).
pub(crate) fn ini_value(ini: &str, section: &str, key: &str) -> Option<String> {
    let mut cur = String::new();
    for line in ini.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            cur = s.to_string();
        } else if let Some((k, v)) = line.split_once('=')
            && cur == section
            && k.trim() == key
        {
            return Some(v.trim().to_string());
        }
    }
    None
}
