//! Prometheus durations (`model.ParseDuration`, `model.Duration.String`):
//! `1y2w3d4h5m6s7ms`, counted in milliseconds.
//!
//! The one implementation behind the configuration file, PromQL and the HTTP
//! API; each caller adds its own rules on top (the API also takes float
//! seconds, PromQL rejects a zero range). Knows nothing of where the text came
//! from.

use std::fmt::Write as _;

use super::gofmt::go_quote;

/// Why a duration string was rejected, with `model.ParseDuration`'s messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration string")]
    Empty,
    #[error("not a valid duration string: {}", go_quote(.0))]
    Invalid(String),
    #[error("duration out of range")]
    OutOfRange,
}

const MS_PER_SECOND: i64 = 1000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
const MS_PER_WEEK: i64 = 7 * MS_PER_DAY;
const MS_PER_YEAR: i64 = 365 * MS_PER_DAY;

/// Units in the only order Prometheus accepts them, with their length in ms.
const UNITS: [(&str, i64); 7] = [
    ("y", MS_PER_YEAR),
    ("w", MS_PER_WEEK),
    ("d", MS_PER_DAY),
    ("h", MS_PER_HOUR),
    ("m", MS_PER_MINUTE),
    ("s", MS_PER_SECOND),
    ("ms", 1),
];

/// Go's `time.Duration` holds signed nanoseconds; longer durations overflow
/// there.
pub const MAX_DURATION_MS: i64 = i64::MAX / 1_000_000;

/// Parses a duration into milliseconds as `model.ParseDuration` does.
///
/// Units must come in decreasing order, each at most once, with integer
/// counts; a year is 365 days. A bare `0` is allowed, the empty string is not.
/// A malformed string is [`DurationError::Invalid`] even where a count also
/// overflows, as the whole string is matched before anything is added up.
pub fn parse_duration_ms(s: &str) -> Result<i64, DurationError> {
    match s {
        "0" => return Ok(0),
        "" => return Err(DurationError::Empty),
        _ => {}
    }
    let invalid = || DurationError::Invalid(s.to_string());
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    let mut overflow = false;
    while i < bytes.len() {
        let num_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == num_start {
            return Err(invalid());
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let Some(idx) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(invalid());
        };
        let idx = next_unit + idx;
        next_unit = idx + 1;
        let mult = UNITS[idx].1;
        match s[num_start..unit_start].parse::<i64>() {
            Ok(n) if n <= MAX_DURATION_MS / mult => {
                total = total.saturating_add(n * mult);
            }
            _ => overflow = true,
        }
    }
    if overflow || total > MAX_DURATION_MS {
        return Err(DurationError::OutOfRange);
    }
    Ok(total)
}

/// Formats milliseconds as `model.Duration.String()` does: largest units
/// first, zero parts left out, `0s` for zero. Years and weeks are used only
/// when they divide exactly (`90d`, not `12w6d`).
pub fn format_duration_ms(ms: u64) -> String {
    let mut ms = ms;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, mult) in UNITS {
        let mult = mult.unsigned_abs();
        let exact_only = matches!(unit, "y" | "w");
        if exact_only && !ms.is_multiple_of(mult) {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            let _ = write!(out, "{v}{unit}");
            ms -= v * mult;
        }
    }
    out
}

/// [`format_duration_ms`] for a [`std::time::Duration`]; sub-millisecond
/// precision is dropped.
pub fn format_duration(d: std::time::Duration) -> String {
    format_duration_ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_forms() {
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        assert_eq!(parse_duration_ms("1h30m"), Ok(90 * MS_PER_MINUTE));
        assert_eq!(parse_duration_ms("1m0s"), Ok(MS_PER_MINUTE));
        assert_eq!(parse_duration_ms("1m1ms"), Ok(60_001));
        assert_eq!(parse_duration_ms("2w"), Ok(2 * MS_PER_WEEK));
        assert_eq!(parse_duration_ms("10ms"), Ok(10));
        assert_eq!(
            parse_duration_ms("1y2w3d4h5m6s7ms"),
            Ok(MS_PER_YEAR
                + 2 * MS_PER_WEEK
                + 3 * MS_PER_DAY
                + 4 * MS_PER_HOUR
                + 5 * MS_PER_MINUTE
                + 6000
                + 7)
        );
    }

    #[test]
    fn rejects_like_prometheus() {
        assert_eq!(parse_duration_ms(""), Err(DurationError::Empty));
        for bad in [
            "10x", "1", "s", "1m1h", "1s1s", "-1s", "1.5s", " 1s", "1s ", "1S", "1msm", "1sms",
            "5y1hs",
        ] {
            assert_eq!(
                parse_duration_ms(bad),
                Err(DurationError::Invalid(bad.to_string())),
                "{bad}"
            );
        }
        assert_eq!(
            parse_duration_ms("1\u{1}s").unwrap_err().to_string(),
            r#"not a valid duration string: "1\x01s""#
        );
        assert_eq!(parse_duration_ms("300y"), Err(DurationError::OutOfRange));
        assert_eq!(
            parse_duration_ms("99999999999999999999999s"),
            Err(DurationError::OutOfRange)
        );
        // The whole string is matched first, as Go's regular expression does.
        assert_eq!(
            parse_duration_ms("300y1x"),
            Err(DurationError::Invalid("300y1x".into()))
        );
    }

    #[test]
    fn formats_like_prometheus() {
        assert_eq!(format_duration_ms(0), "0s");
        assert_eq!(format_duration_ms(61_001), "1m1s1ms");
        assert_eq!(format_duration_ms(90 * 60_000), "1h30m");
        assert_eq!(format_duration_ms(90 * 86_400_000), "90d");
        assert_eq!(format_duration_ms(14 * 86_400_000), "2w");
        assert_eq!(format_duration_ms(2 * MS_PER_YEAR as u64), "2y");
        assert_eq!(format_duration_ms(MS_PER_WEEK as u64 + 1), "7d1ms");
        let d = std::time::Duration::from_micros(1500);
        assert_eq!(format_duration(d), "1ms");
        assert_eq!(format_duration(std::time::Duration::from_micros(500)), "0s");
        for (secs, want) in [
            (10, "10s"),
            (90, "1m30s"),
            (86_400, "1d"),
            (14 * 86_400, "2w"),
            (15 * 86_400, "15d"),
        ] {
            assert_eq!(format_duration(std::time::Duration::from_secs(secs)), want);
        }
        assert_eq!(
            format_duration(std::time::Duration::from_millis(1500)),
            "1s500ms"
        );
    }
}
