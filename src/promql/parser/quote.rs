//! Go-compatible text formatting: `%q` quoting, `%#U`, float `%v` and
//! Prometheus duration strings, plus the inverse (string unquoting and
//! duration parsing).
//!
//! Error messages and printed queries must match Prometheus byte for byte, so
//! these helpers reproduce Go's formatting rules; they know nothing of PromQL
//! syntax.

use std::fmt::Write as _;

/// Whether Go's `unicode.IsPrint` would call `c` printable (close
/// approximation: Unicode letters, marks, numbers, punctuation, symbols and the
/// ASCII space).
fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x2028..=0x202E | 0x2060..=0x206F | 0xD800..=0xF8FF | 0xFEFF
        | 0xFFF9..=0xFFFB | 0xE0000..=0xE007F | 0xF0000..=0x10FFFF)
}

fn escape_into(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0C' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0B' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) <= 0xFFFF => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `strconv.Quote` (`%q` on a string).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_into(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `%q` on a rune.
pub(crate) fn go_quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_into(&mut out, c, '\'');
    out.push('\'');
    out
}

/// Go's `%#U` on a rune: `U+0063 'c'`.
pub(crate) fn go_unicode_point(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// Go's `%v` on a float64 (`strconv.FormatFloat(v, 'g', -1, 64)`), as the
/// Prometheus printer renders number literals.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` yields the shortest round-trip digits, as Go does.
    let sci = format!("{:e}", v.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if v < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.abs());
        return out;
    }
    let dp = exp + 1;
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let dp = dp as usize;
        if digits.len() <= dp {
            out.push_str(&digits);
            for _ in digits.len()..dp {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..dp]);
            out.push('.');
            out.push_str(&digits[dp..]);
        }
    }
    out
}

const MS_PER_SECOND: i64 = 1000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
const MS_PER_WEEK: i64 = 7 * MS_PER_DAY;
const MS_PER_YEAR: i64 = 365 * MS_PER_DAY;

/// Formats milliseconds like Prometheus's `model.Duration.String()`
/// (`1h30m`, `90d`, `0s`). Negative input is formatted by magnitude.
pub fn format_duration(ms: i64) -> String {
    let mut ms = ms.unsigned_abs();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    // Years and weeks only when they divide exactly: `90d` reads better than
    // `12w6d`.
    let units: [(&str, i64, bool); 7] = [
        ("y", MS_PER_YEAR, true),
        ("w", MS_PER_WEEK, true),
        ("d", MS_PER_DAY, false),
        ("h", MS_PER_HOUR, false),
        ("m", MS_PER_MINUTE, false),
        ("s", MS_PER_SECOND, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        let mult = mult as u64;
        if exact && !ms.is_multiple_of(mult) {
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

/// Parses a Prometheus duration (`model.ParseDuration`) into milliseconds.
/// Units must appear in decreasing order, each at most once; `0` alone is
/// allowed.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(s));
    let units: [(&str, i64); 7] = [
        ("y", MS_PER_YEAR),
        ("w", MS_PER_WEEK),
        ("d", MS_PER_DAY),
        ("h", MS_PER_HOUR),
        ("m", MS_PER_MINUTE),
        ("s", MS_PER_SECOND),
        ("ms", 1),
    ];
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
        let Some(idx) = units[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(invalid());
        };
        let idx = next_unit + idx;
        next_unit = idx + 1;
        let mult = units[idx].1;
        match s[num_start..unit_start].parse::<i64>() {
            Ok(n) if n <= i64::MAX / mult => {
                total = total.saturating_add(n * mult);
                if total == i64::MAX {
                    overflow = true;
                }
            }
            _ => overflow = true,
        }
    }
    // Go's `time.Duration` counts nanoseconds, so the real limit is lower.
    if overflow || total > i64::MAX / 1_000_000 {
        return Err("duration out of range".into());
    }
    Ok(total)
}

/// Unquotes a PromQL string literal (`"…"`, `'…'` or `` `…` ``) with Go
/// escapes. Bytes from `\x` and octal escapes that do not form UTF-8 are
/// replaced with U+FFFD.
pub(crate) fn unquote(s: &str) -> Result<String, String> {
    let err = || "invalid syntax".to_string();
    let mut chars = s.chars();
    let quote = chars.next().ok_or_else(err)?;
    if s.len() < 2 || !s.ends_with(quote) {
        return Err(err());
    }
    let body = &s[quote.len_utf8()..s.len() - quote.len_utf8()];
    if quote == '`' {
        if body.contains('`') {
            return Err(err());
        }
        return Ok(body.to_string());
    }
    if quote != '"' && quote != '\'' {
        return Err(err());
    }
    if !body.contains('\\') {
        return Ok(body.to_string());
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut it = body.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = it.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or_else(err)?;
        let simple = match e {
            'a' => Some(0x07u8),
            'b' => Some(0x08),
            'f' => Some(0x0C),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0B),
            '\\' => Some(b'\\'),
            c if c == quote => Some(c as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (n, base, is_byte) = match e {
            '0'..='7' => (2, 8, true),
            'x' => (2, 16, true),
            'u' => (4, 16, false),
            'U' => (8, 16, false),
            _ => return Err(err()),
        };
        let mut v: u32 = if e.is_ascii_digit() {
            e as u32 - '0' as u32
        } else {
            0
        };
        for _ in 0..n {
            let d = it.next().and_then(|c| c.to_digit(base)).ok_or_else(err)?;
            v = v * base + d;
        }
        if is_byte {
            out.push(u8::try_from(v).map_err(|_| err())?);
        } else {
            let ch = char::from_u32(v).ok_or_else(err)?;
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        let cases = [
            (1.0, "1"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (5e-324, "5e-324"),
            (0.1 + 0.2, "0.30000000000000004"),
            (100.0, "100"),
        ];
        for (v, want) in cases {
            assert_eq!(go_float(v), want, "{v}");
        }
    }

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("1h30m"), Ok(90 * 60 * 1000));
        assert_eq!(parse_duration("1m0s"), Ok(60 * 1000));
        assert_eq!(parse_duration("10ms"), Ok(10));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000));
        assert!(parse_duration("5m1h").is_err());
        assert!(parse_duration("5y1hs").is_err());
        assert_eq!(format_duration(90 * 60 * 1000), "1h30m");
        assert_eq!(format_duration(90 * 86_400_000), "90d");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(61_001), "1m1s1ms");
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(go_quote_rune('\''), "'\\''");
        assert_eq!(unquote(r#""\x41\u00e9\101'""#).as_deref(), Ok("AéA'"));
        assert_eq!(unquote(r"'\''").as_deref(), Ok("'"));
    }
}
