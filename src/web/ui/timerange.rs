//! Grafana's time arithmetic for dashboards: `from`/`to` as Ray's UI sends
//! them (`now-5m`, `now`, epoch milliseconds), the panel interval
//! (`rangeutil.calculateInterval`, `roundInterval`, `secondsToHms`) and the
//! Prometheus datasource's step, `$__rate_interval` and range alignment
//! (Grafana 9.4's `createQuery`, `adjustInterval`, `alignRange`).
//!
//! Pure arithmetic: knows nothing of HTTP, storage or dashboards.

/// Why a time or duration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid time {0:?}: use now, now-5m, now-1h/h or epoch milliseconds")]
    Time(String),
    #[error("invalid interval {0:?}: use a number and a unit, such as 30s or 5m")]
    Interval(String),
}

/// Milliseconds of a Grafana date-math unit.
fn unit_ms(u: char) -> Option<i64> {
    Some(match u {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        'M' => 30 * 86_400_000,
        'y' => 365 * 86_400_000,
        _ => return None,
    })
}

/// A dashboard time (`from`/`to`) in Unix ms at `now_ms`: `now`, with any
/// number of `±N<unit>` steps and an optional `/<unit>` rounding (down for
/// `from`, to the end of the unit for `to`, as Grafana's `dateMath.parse`),
/// or epoch milliseconds. Rounding uses UTC days and larger units as fixed
/// lengths.
pub fn parse_time(s: &str, now_ms: i64, round_up: bool) -> Result<i64, Error> {
    let bad = || Error::Time(s.to_string());
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    let Some(mut rest) = t.strip_prefix("now") else {
        return Err(bad());
    };
    let mut ms = now_ms;
    while let Some(c) = rest.chars().next() {
        match c {
            '+' | '-' => {
                let digits: String = rest[1..].chars().take_while(char::is_ascii_digit).collect();
                let after = &rest[1 + digits.len()..];
                let unit = after.chars().next().ok_or_else(bad)?;
                let n: i64 = if digits.is_empty() {
                    1
                } else {
                    digits.parse().map_err(|_| bad())?
                };
                let d = n
                    .checked_mul(unit_ms(unit).ok_or_else(bad)?)
                    .ok_or_else(bad)?;
                ms = if c == '+' {
                    ms.saturating_add(d)
                } else {
                    ms.saturating_sub(d)
                };
                rest = &after[1..];
            }
            '/' => {
                let unit = rest[1..].chars().next().ok_or_else(bad)?;
                let u = unit_ms(unit).ok_or_else(bad)?;
                let start = ms.div_euclid(u) * u;
                ms = if round_up { start + u - 1 } else { start };
                rest = &rest[2..];
            }
            _ => return Err(bad()),
        }
    }
    Ok(ms)
}

/// Grafana's `rangeutil.roundInterval`: a span in ms snapped to a "nice"
/// interval.
pub fn round_interval(ms: f64) -> i64 {
    const STEPS: &[(f64, i64)] = &[
        (15.0, 10),
        (35.0, 20),
        (75.0, 50),
        (150.0, 100),
        (350.0, 200),
        (750.0, 500),
        (1_500.0, 1_000),
        (3_500.0, 2_000),
        (7_500.0, 5_000),
        (12_500.0, 10_000),
        (17_500.0, 15_000),
        (25_000.0, 20_000),
        (45_000.0, 30_000),
        (90_000.0, 60_000),
        (210_000.0, 120_000),
        (450_000.0, 300_000),
        (750_000.0, 600_000),
        (1_050_000.0, 900_000),
        (1_500_000.0, 1_200_000),
        (2_700_000.0, 1_800_000),
        (5_400_000.0, 3_600_000),
        (9_000_000.0, 7_200_000),
        (16_200_000.0, 10_800_000),
        (32_400_000.0, 21_600_000),
        (86_400_000.0, 43_200_000),
        (604_800_000.0, 86_400_000),
        (1_814_400_000.0, 604_800_000),
        (3_628_800_000.0, 2_592_000_000),
    ];
    STEPS
        .iter()
        .find(|(below, _)| ms < *below)
        .map_or(31_536_000_000, |&(_, v)| v)
}

/// Grafana's `secondsToHms`: the largest whole unit only (90 s is `1m`).
pub fn seconds_to_hms(seconds: f64) -> String {
    let s = seconds.floor() as i64;
    let units = [
        (31_536_000, "y"),
        (86_400, "d"),
        (3_600, "h"),
        (60, "m"),
        (1, "s"),
    ];
    let mut left = s;
    for (size, name) in units {
        let n = left / size;
        if n > 0 {
            return format!("{n}{name}");
        }
        left %= size;
    }
    let ms = (seconds * 1000.0).floor() as i64;
    if ms > 0 {
        format!("{ms}ms")
    } else {
        "less than a millisecond".to_string()
    }
}

/// Grafana's `intervalToSeconds` for `30s`, `5m`, `1h`, `100ms`, `2d`, `1w`,
/// `1y` (a bare number is seconds).
pub fn interval_to_ms(s: &str) -> Result<i64, Error> {
    let t = s.trim();
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    let n: i64 = digits.parse().map_err(|_| Error::Interval(s.to_string()))?;
    let unit = &t[digits.len()..];
    let mul = match unit {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        "y" => 31_536_000_000,
        _ => return Err(Error::Interval(s.to_string())),
    };
    n.checked_mul(mul)
        .ok_or_else(|| Error::Interval(s.to_string()))
}

/// What a panel's Prometheus query is sent with, and the built-in
/// variables its expression sees.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTiming {
    /// `$__interval` as the panel computed it (`calculateInterval`).
    pub interval: String,
    /// The step in seconds after `adjustInterval`.
    pub step_s: f64,
    /// Range start and end in seconds, aligned down to the step.
    pub start_s: f64,
    pub end_s: f64,
    /// `$__interval` and `$__interval_ms` as substituted (the adjusted
    /// interval when it changed, as `createQuery`).
    pub interval_var: String,
    pub interval_ms_var: String,
    /// `$__rate_interval`: max(step + scrape, 4 × scrape), in seconds.
    pub rate_interval: String,
    /// `$__range`, `$__range_s`, `$__range_ms`.
    pub range: String,
    pub range_s: String,
    pub range_ms: String,
}

/// The timing of a panel query over `[from_ms, to_ms]` drawn `width_px`
/// wide (`maxDataPoints`), with the datasource's scrape interval as the
/// lower limit (Grafana's `timeInterval`) and `utc_offset_s` of the
/// dashboard's time zone.
pub fn query_timing(
    from_ms: i64,
    to_ms: i64,
    max_data_points: u32,
    scrape_ms: i64,
    utc_offset_s: i64,
) -> QueryTiming {
    let span_ms = (to_ms - from_ms).max(0);
    // calculateInterval, with the datasource's interval as the low limit.
    let resolution = f64::from(max_data_points.max(1));
    let interval_ms = round_interval(span_ms as f64 / resolution).max(scrape_ms.max(1));
    let interval = seconds_to_hms(interval_ms as f64 / 1000.0);
    // createQuery: seconds, ceil'd as getPrometheusTime does.
    let start = (from_ms as f64 / 1000.0).ceil();
    let end = (to_ms as f64 / 1000.0).ceil();
    let range = (end - start).ceil();
    let interval_s = interval_to_ms(&interval).map_or(interval_ms as f64, |m| m as f64) / 1000.0;
    let scrape_s = if scrape_ms > 0 {
        scrape_ms as f64 / 1000.0
    } else {
        15.0
    };
    // adjustInterval: Prometheus refuses more than 11,000 points.
    let mut safe = range / 11_000.0;
    if safe > 1.0 {
        safe = safe.ceil();
    }
    let step = interval_s.max(safe);
    let (interval_var, interval_ms_var) = if step != interval_s {
        (format!("{}s", js_number(step)), js_number(step * 1000.0))
    } else {
        (interval.clone(), js_number(interval_ms as f64))
    };
    let rate = (step + scrape_s).max(4.0 * scrape_s);
    let offset = utc_offset_s as f64;
    let align = |t: f64| ((t + offset) / step).floor() * step - offset;
    let range_ms = span_ms;
    let range_s = (range_ms as f64 / 1000.0).round();
    QueryTiming {
        interval,
        step_s: step,
        start_s: align(start),
        end_s: align(end),
        interval_var,
        interval_ms_var,
        rate_interval: format!("{}s", js_number(rate)),
        range: format!("{}s", js_number(range_s)),
        range_s: js_number(range_s),
        range_ms: range_ms.to_string(),
    }
}

/// A number as JavaScript prints it: no `.0` on whole numbers.
pub fn js_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_123_456;

    #[test]
    fn relative_times() {
        assert_eq!(parse_time("now", NOW, false), Ok(NOW));
        assert_eq!(parse_time("now-5m", NOW, false), Ok(NOW - 300_000));
        assert_eq!(parse_time("now-1h", NOW, false), Ok(NOW - 3_600_000));
        assert_eq!(
            parse_time("1700000000000", NOW, false),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_time("now/h", NOW, false), Ok(1_699_999_200_000));
        assert_eq!(parse_time("now/h", NOW, true), Ok(1_700_002_799_999));
        assert!(parse_time("yesterday", NOW, false).is_err());
        assert!(parse_time("now-5x", NOW, false).is_err());
        assert!(parse_time("now-", NOW, false).is_err());
    }

    #[test]
    fn grafana_intervals() {
        assert_eq!(round_interval(300_000.0 / 1000.0), 200);
        assert_eq!(round_interval(3_600_000.0 / 1000.0), 5_000);
        assert_eq!(seconds_to_hms(90.0), "1m");
        assert_eq!(seconds_to_hms(0.5), "500ms");
        assert_eq!(interval_to_ms("1m"), Ok(60_000));
        assert_eq!(interval_to_ms("100ms"), Ok(100));
        assert!(interval_to_ms("5x").is_err());
    }

    #[test]
    fn five_minutes_at_600_px_with_a_10s_scrape() {
        // 300 s / 600 px rounds to 0.5 s, below the 10 s low limit.
        let from = 1_700_000_000_000 - 300_000;
        let t = query_timing(from, 1_700_000_000_000, 600, 10_000, 0);
        assert_eq!(t.interval, "10s");
        assert_eq!(t.step_s, 10.0);
        assert_eq!(t.rate_interval, "40s");
        assert_eq!(t.range, "300s");
        assert_eq!((t.start_s, t.end_s), (1_699_999_700.0, 1_700_000_000.0));
    }

    #[test]
    fn a_day_at_100_px_steps_by_the_rounded_interval() {
        let to = 1_700_000_000_000;
        let t = query_timing(to - 86_400_000, to, 100, 15_000, 0);
        // 864 s rounds to 15 m.
        assert_eq!(t.interval, "15m");
        assert_eq!(t.step_s, 900.0);
        assert_eq!(t.rate_interval, "915s");
        assert_eq!(t.end_s % 900.0, 0.0);
    }
}
