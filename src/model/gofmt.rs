//! Go's text formats that Prometheus output depends on: `strconv.Quote`
//! (`%q`), `%#U`, and `strconv.FormatFloat` in the 'f', 'e' and 'g' forms.
//!
//! Error messages, printed queries and API bodies must match Prometheus byte
//! for byte, so these reproduce Go's rules. Knows nothing of PromQL, JSON or
//! HTTP.

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
pub fn go_quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_into(&mut out, c, '\'');
    out.push('\'');
    out
}

/// Go's `%#U` on a rune: `U+0063 'c'`.
pub fn go_unicode_point(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, no exponent.
pub fn format_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's `Display` prints the shortest round-tripping digits without
        // an exponent, which is exactly Go's 'f' with precision -1.
        format!("{v}")
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, e.g. `1e-07`, `1.5e+21`.
pub fn format_e(v: f64) -> String {
    if !v.is_finite() {
        return format_f(v);
    }
    let (mantissa, exp) = split_exp(v);
    let mut s = String::with_capacity(mantissa.len() + 5);
    s.push_str(&mantissa);
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(s, "{:02}", exp.unsigned_abs());
    s
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which is also `%v` on a
/// float64: how the text exposition format writes values and the PromQL
/// printer writes number literals.
pub fn format_g(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format_f(v);
    }
    // With the shortest precision Go switches to the exponent form outside
    // 1e-4 <= |v| < 1e6.
    let (_, exp) = split_exp(v);
    if (-4..6).contains(&exp) {
        format_f(v)
    } else {
        format_e(v)
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input: optional sign,
/// digits with an optional point and exponent, and the case-insensitive
/// specials `Inf`, `Infinity` and `NaN`, which is also Rust's grammar.
///
/// Unlike Go, hex floats are not read, and a literal beyond `f64` is an
/// infinity rather than an error.
pub fn parse_float(s: &str) -> Option<f64> {
    s.parse().ok()
}

/// Shortest mantissa digits (with a point when needed) and decimal exponent.
fn split_exp(v: f64) -> (String, i32) {
    let e = format!("{v:e}");
    match e.split_once('e') {
        Some((m, x)) => (m.to_string(), x.parse().unwrap_or(0)),
        None => (e, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_like_go() {
        let cases = [
            (1.0, "1"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (2.5, "2.5"),
            (-3.0, "-3"),
            (1e21, "1e+21"),
            (5e-324, "5e-324"),
            (0.1 + 0.2, "0.30000000000000004"),
            (100.0, "100"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(format_g(v), want, "{v}");
        }
    }

    #[test]
    fn f_and_e_like_go() {
        assert_eq!(format_f(1e-7), "0.0000001");
        assert_eq!(format_f(100.0), "100");
        assert_eq!(format_e(1e-7), "1e-07");
        assert_eq!(format_e(-1.5e300), "-1.5e+300");
    }

    #[test]
    fn parses_go_decimal_floats() {
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("-.5"), Some(-0.5));
        assert_eq!(parse_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("-infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_float("NaN").is_some_and(f64::is_nan));
        for bad in ["", "1_000", "0x10", "1.2.3", " 1", "inf1"] {
            assert_eq!(parse_float(bad), None, "{bad}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(go_quote("a\"b\n\u{1}é"), r#""a\"b\n\x01é""#);
        assert_eq!(go_quote("\u{200b}\u{10ffff}"), r#""\u200b\U0010ffff""#);
        assert_eq!(go_quote_rune('\''), "'\\''");
        assert_eq!(go_unicode_point('c'), "U+0063 'c'");
        assert_eq!(go_unicode_point('\n'), "U+000A");
    }
}
