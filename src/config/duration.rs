//! Durations in the configuration file and command-line flags: Prometheus
//! durations as [`std::time::Duration`].
//!
//! The parsing and formatting rules are `model::duration`'s; this file only
//! adds what YAML unmarshalling does on top (an empty value is zero). Knows
//! nothing of YAML or of where the text came from.

use std::time::Duration;

use crate::model::duration::parse_duration_ms;
pub use crate::model::duration::{DurationError, format_duration};

/// Parses a duration as `model.ParseDuration` does, except that the empty
/// string is zero, as in Prometheus 2.42's configuration file.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    let ms = parse_duration_ms(s)?;
    // Never negative: the parser reads no sign.
    Ok(Duration::from_millis(ms.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const DAY: u64 = 86_400_000;

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
            Ok(ms(365 * DAY
                + 14 * DAY
                + 3 * DAY
                + 4 * 3_600_000
                + 5 * 60_000
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
        // Years and weeks only when exact, as `model.Duration.String`.
        assert_eq!(format_duration(ms(7 * DAY + 1)), "7d1ms");
        assert_eq!(format_duration(ms(365 * DAY * 2 + DAY)), "731d");
        assert_eq!(format_duration(ms(365 * DAY * 2)), "2y");
        assert_eq!(format_duration(ms(90 * DAY)), "90d");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1ms");
        assert_eq!(format_duration(Duration::from_micros(500)), "0s");
    }

    #[test]
    fn round_trips() {
        for s in [
            "1y",
            "2w",
            "3d4h5m6s7ms",
            "5m",
            "15s",
            "2h",
            "1d12h",
            "250ms",
        ] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
