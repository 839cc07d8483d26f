//! Prometheus durations: `1y2w3d4h5m6s7ms` parsing and formatting.
//!
//! Shared by the configuration file, PromQL and the HTTP API. Knows nothing of
//! YAML or of where the text came from.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("not a valid duration string: {0:?}")]
    Invalid(String),
    #[error("duration out of range")]
    OutOfRange,
}

const MS_PER_SECOND: u64 = 1000;
const MS_PER_MINUTE: u64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: u64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;
const MS_PER_WEEK: u64 = 7 * MS_PER_DAY;
const MS_PER_YEAR: u64 = 365 * MS_PER_DAY;

/// Units in the only order Prometheus accepts them, with their length in ms.
const UNITS: [(&str, u64); 7] = [
    ("y", MS_PER_YEAR),
    ("w", MS_PER_WEEK),
    ("d", MS_PER_DAY),
    ("h", MS_PER_HOUR),
    ("m", MS_PER_MINUTE),
    ("s", MS_PER_SECOND),
    ("ms", 1),
];

/// Go's `time.Duration` holds signed nanoseconds; longer durations overflow there.
const MAX_MS: u64 = i64::MAX as u64 / 1_000_000;

/// Parses a duration as `model.ParseDuration` does.
///
/// Units must come in decreasing order, each at most once, with integer
/// counts; a year is 365 days. A bare `0` is allowed, and so is the empty
/// string (zero), as in Prometheus 2.42.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || DurationError::Invalid(s.to_string());
    let mut rest = s.as_bytes();
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(invalid());
        }
        let (num, tail) = rest.split_at(digits);
        // Longest unit first, so `ms` is not read as `m` followed by `s`.
        let unit = UNITS[next_unit..]
            .iter()
            .enumerate()
            .filter(|(_, (u, _))| tail.starts_with(u.as_bytes()))
            .max_by_key(|(_, (u, _))| u.len())
            .map(|(i, u)| (next_unit + i, *u));
        let Some((idx, (unit, mult))) = unit else {
            return Err(invalid());
        };
        let n = std::str::from_utf8(num)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or(DurationError::OutOfRange)?;
        if n > MAX_MS / mult {
            return Err(DurationError::OutOfRange);
        }
        total = total
            .checked_add(n * mult)
            .filter(|t| *t <= MAX_MS)
            .ok_or(DurationError::OutOfRange)?;
        rest = &tail[unit.len()..];
        next_unit = idx + 1;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration as `model.Duration.String()` does: largest units first,
/// zero parts left out, sub-millisecond precision dropped, `0s` for zero.
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, mult) in UNITS {
        let v = ms / mult;
        if v > 0 {
            out.push_str(&v.to_string());
            out.push_str(unit);
            ms -= v * mult;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_prometheus_forms() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(""), Ok(Duration::ZERO));
        assert_eq!(parse_duration("10s"), Ok(ms(10_000)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
        assert_eq!(parse_duration("5ms"), Ok(ms(5)));
        assert_eq!(parse_duration("1h30m"), Ok(ms(90 * 60_000)));
        assert_eq!(
            parse_duration("1y2w3d4h5m6s7ms"),
            Ok(ms(MS_PER_YEAR
                + 2 * MS_PER_WEEK
                + 3 * MS_PER_DAY
                + 4 * MS_PER_HOUR
                + 5 * MS_PER_MINUTE
                + 6000
                + 7))
        );
        assert_eq!(parse_duration("1m1ms"), Ok(ms(60_001)));
        assert_eq!(parse_duration("90s"), Ok(ms(90_000)));
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "10x", "1", "s", "1m1h", "1s1s", "-1s", "1.5s", " 1s", "1s ", "1S", "1msm", "1sms",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert_eq!(err, DurationError::Invalid(bad.to_string()), "{bad}");
        }
        assert_eq!(
            parse_duration("10x").unwrap_err().to_string(),
            r#"not a valid duration string: "10x""#
        );
        assert_eq!(
            parse_duration("300y").unwrap_err(),
            DurationError::OutOfRange
        );
        assert_eq!(
            parse_duration("99999999999999999999999s").unwrap_err(),
            DurationError::OutOfRange
        );
    }

    #[test]
    fn formats_like_prometheus() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(10_000)), "10s");
        assert_eq!(format_duration(ms(60_000)), "1m");
        assert_eq!(format_duration(ms(90 * 60_000)), "1h30m");
        assert_eq!(format_duration(ms(MS_PER_WEEK + 1)), "1w1ms");
        assert_eq!(format_duration(ms(MS_PER_YEAR * 2 + MS_PER_DAY)), "2y1d");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1ms");
        assert_eq!(format_duration(Duration::from_micros(500)), "0s");
    }

    #[test]
    fn round_trips() {
        for s in ["1y2w3d4h5m6s7ms", "5m", "15s", "2h", "1d12h", "250ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
