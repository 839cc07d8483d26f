//! Request parameters the way Prometheus 2.42 reads them: Go's
//! `r.FormValue` over the URL query and a form body, times as Unix seconds or
//! RFC 3339, durations as seconds or `1h30m`.
//!
//! Also the matching output format, Go's RFC 3339 with nanoseconds.
//! Prometheus durations and Go's `%q` come from `model`. Knows nothing of
//! endpoints.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;

use super::Shared;
use super::envelope::text;
use crate::model::civil::{civil_from_days, days_from_civil};
use crate::model::duration::parse_duration_ms;
use crate::model::gofmt::go_quote;
use crate::model::goparse::parse_float;

/// `minTime` of the API, in milliseconds: the default `start`.
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974_000;
/// `maxTime` of the API, in milliseconds: the default `end`.
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;

const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_TEXT: &str = "292277025-08-18T07:12:54.999999999Z";

/// Parameters from the URL query and, for POST/PUT/PATCH with a
/// `application/x-www-form-urlencoded` body, from the body. Body values come
/// first, so [`Form::value`] prefers them, as Go's `r.FormValue` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
    /// The first error `url.ParseQuery` would report; bad pairs are skipped.
    pub error: Option<String>,
}

impl Form {
    /// Parses a raw query string as Go's `url.ParseQuery`, appending pairs.
    pub fn parse(&mut self, raw: &[u8]) {
        for pair in raw.split(|&b| b == b'&') {
            if pair.contains(&b';') {
                self.error
                    .get_or_insert_with(|| "invalid semicolon separator in query".to_string());
                continue;
            }
            if pair.is_empty() {
                continue;
            }
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[..0]),
            };
            match (unescape(k), unescape(v)) {
                (Ok(k), Ok(v)) => self.pairs.push((k, v)),
                (Err(e), _) | (_, Err(e)) => {
                    self.error.get_or_insert(e);
                }
            }
        }
    }

    /// Builds a form from a raw query string alone.
    #[cfg(test)]
    pub fn from_query(raw: &str) -> Form {
        let mut f = Form::default();
        f.parse(raw.as_bytes());
        f
    }

    /// The first value of `key`, or `""`.
    pub fn value(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `key`, body values first.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte.
fn unescape(s: &[u8]) -> Result<String, String> {
    if !s.iter().any(|&b| b == b'%' || b == b'+') {
        return Ok(String::from_utf8_lossy(s).into_owned());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    s.get(i + 1).copied().and_then(hex),
                    s.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        // Both digits are below 16, so the byte cannot overflow.
                        out.push(((h << 4) | l) as u8);
                        i += 3;
                    }
                    _ => {
                        let end = (i + 3).min(s.len());
                        let bad = String::from_utf8_lossy(&s[i..end]);
                        return Err(format!("invalid URL escape {}", go_quote(&bad)));
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

impl FromRequest<Shared> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Shared) -> Result<Form, Response> {
        let (parts, body) = req.into_parts();
        let mut form = Form::default();
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if is_form && matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
            let bytes = axum::body::to_bytes(body, state.max_body_bytes)
                .await
                .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "http: POST too large\n"))?;
            form.parse(&bytes);
        }
        if let Some(q) = parts.uri.query() {
            form.parse(q.as_bytes());
        }
        Ok(form)
    }
}

/// Parses a timestamp parameter into Unix milliseconds, as `parseTime`:
/// float seconds (rounded to milliseconds), RFC 3339, or the two boundary
/// strings.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = parse_float(s) {
        if t.is_finite() {
            let whole = t.trunc();
            let frac = ((t - whole) * 1000.0).round();
            return Ok(sat_ms(whole * 1000.0 + frac));
        }
    } else if let Some(ms) = parse_rfc3339(s) {
        return Ok(ms);
    }
    match s {
        MIN_TIME_TEXT => Ok(MIN_TIME_MS),
        MAX_TIME_TEXT => Ok(MAX_TIME_MS),
        _ => Err(format!("cannot parse {} to a valid timestamp", go_quote(s))),
    }
}

/// `parseTimeParam`: `default` when absent, else [`parse_time`] with the
/// parameter named in the error.
pub fn parse_time_param(form: &Form, name: &str, default: i64) -> Result<i64, String> {
    let v = form.value(name);
    if v.is_empty() {
        return Ok(default);
    }
    parse_time(v).map_err(|e| format!("Invalid time value for '{name}': {e}"))
}

fn sat_ms(v: f64) -> i64 {
    // `as` saturates, which stands in for Go's undefined overflow.
    v as i64
}

/// Parses a duration parameter into nanoseconds, as `parseDuration`: float
/// seconds or a Prometheus duration string.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(d) = parse_float(s) {
        let ns = d * 1e9;
        if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&ns) {
            return Err(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                go_quote(s)
            ));
        }
        return Ok(ns as i64);
    }
    match parse_duration_ms(s) {
        Ok(ms) => Ok(ms.saturating_mul(1_000_000)),
        Err(_) => Err(format!("cannot parse {} to a valid duration", go_quote(s))),
    }
}

/// Parses Go's `time.RFC3339Nano` layout into Unix milliseconds (truncating
/// sub-millisecond digits, as `timestamp.FromTime`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    // Go accepts a one- or two-digit hour for the `15` layout element.
    let hour_len = if b.get(12).is_some_and(u8::is_ascii_digit) {
        2
    } else {
        1
    };
    let hour = num(11, hour_len)?;
    let mut i = 11 + hour_len;
    if b.get(i) != Some(&b':') || b.get(i + 3) != Some(&b':') {
        return None;
    }
    let min = num(i + 1, 2)?;
    let sec = num(i + 4, 2)?;
    i += 6;
    let mut nanos: i64 = 0;
    if matches!(b.get(i), Some(b'.' | b',')) && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        let mut digits = 0;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if digits < 9 {
                nanos = nanos * 10 + i64::from(d - b'0');
                digits += 1;
            }
            i += 1;
        }
        while digits < 9 {
            nanos *= 10;
            digits += 1;
        }
    }
    let offset_s = match b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1, 2)?;
            let om = num(i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > mdays[usize::try_from(month - 1).ok()?]
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    Some(secs * 1000 + nanos / 1_000_000)
}

/// Formats as Go's `time.Time` JSON (RFC 3339 with trailing-zero-trimmed
/// nanoseconds, UTC as `Z`). `None` is Go's zero time.
pub fn format_rfc3339_nano(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "0001-01-01T00:00:00Z".to_string();
    };
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    };
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn go_query_parsing() {
        let f = Form::from_query("query=vector(1)&a=1+1&b=%7Bx%7D&a=2&&c&bad=%zz&d=x;y");
        assert_eq!(f.value("query"), "vector(1)");
        assert_eq!(f.value("a"), "1 1");
        assert_eq!(f.values("a").collect::<Vec<_>>(), ["1 1", "2"]);
        assert_eq!(f.value("b"), "{x}");
        assert_eq!(f.value("c"), "");
        assert_eq!(f.value("bad"), "");
        assert_eq!(f.value("d"), "");
        assert_eq!(f.error.as_deref(), Some(r#"invalid URL escape "%zz""#));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1795664538.302"), Ok(1_795_664_538_302));
        assert_eq!(parse_time("1795664538"), Ok(1_795_664_538_000));
        assert_eq!(parse_time("1.0016"), Ok(1002));
        assert_eq!(parse_time("-1.0016"), Ok(-1002));
        assert_eq!(parse_time("1e3"), Ok(1_000_000));
        // Go's ParseFloat forms since 1.13, which Prometheus's parseTime takes.
        assert_eq!(parse_time("1_795_664_538"), Ok(1_795_664_538_000));
        assert_eq!(parse_time("0x1p4"), Ok(16_000));
        assert!(parse_time("1e400").is_err());
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51+02:00"),
            Ok(1_435_781_451_000)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00.0009Z"), Ok(0));
        assert_eq!(parse_time(MIN_TIME_TEXT), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME_TEXT), Ok(MAX_TIME_MS));
        assert_eq!(
            parse_time("x"),
            Err(r#"cannot parse "x" to a valid timestamp"#.to_string())
        );
        assert!(parse_time("2015-02-30T00:00:00Z").is_err());
        assert!(parse_time("2015-07-01 20:10:51Z").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15"), Ok(15_000_000_000));
        assert_eq!(parse_duration("0.5"), Ok(500_000_000));
        assert_eq!(parse_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("10ms"), Ok(10_000_000));
        assert_eq!(parse_duration("1m5ms"), Ok(60_005_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("1_0"), Ok(10_000_000_000));
        assert_eq!(parse_duration("0x1p-1"), Ok(500_000_000));
        assert!(parse_duration("30m1h").is_err());
        assert!(parse_duration("1.5m").is_err());
        assert!(parse_duration("5mm").is_err());
        assert_eq!(
            parse_duration(""),
            Err(r#"cannot parse "" to a valid duration"#.to_string())
        );
        assert!(
            parse_duration("1e300")
                .unwrap_err()
                .contains("overflows int64")
        );
        assert!(parse_duration("300000y").is_err());
    }

    #[test]
    fn rfc3339_output() {
        let t = UNIX_EPOCH + Duration::new(1_795_664_531, 133_910_241);
        assert_eq!(
            format_rfc3339_nano(Some(t)),
            "2026-11-26T03:42:11.133910241Z"
        );
        let t = UNIX_EPOCH + Duration::new(1_795_664_264, 0);
        assert_eq!(format_rfc3339_nano(Some(t)), "2026-11-26T03:37:44Z");
        let t = UNIX_EPOCH + Duration::new(0, 500_000_000);
        assert_eq!(format_rfc3339_nano(Some(t)), "1970-01-01T00:00:00.5Z");
        assert_eq!(format_rfc3339_nano(None), "0001-01-01T00:00:00Z");
    }
}
