//! JSON output byte-compatible with Prometheus 2.42 (Go 1.19 `encoding/json`
//! and jsoniter): HTML-safe string escapes, Go float formats, and the special
//! sample encodings of `util/jsonutil`.
//!
//! Knows nothing of HTTP or of which endpoint writes what.

use std::io::{self, Write as _};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

use crate::model::Labels;
use crate::model::gofmt::{format_e, format_f, push_f_bytes};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Serializes `value` as Go's `json.Marshal` would.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// The bytes that may start something [`push_str`] escapes: ASCII controls,
/// `"`, `\`, `<`, `>`, `&`, and the first byte of U+2028 and U+2029.
const MAY_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xe2] = true;
    t
};

/// Appends `s` as a quoted JSON string with Go's escapes.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Label names and values almost never need an escape; a table lookup
    // per byte finds that faster than decoding characters.
    if !bytes.iter().any(|&b| MAY_ESCAPE[usize::from(b)]) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '<' => Some(b"\\u003c"),
            '>' => Some(b"\\u003e"),
            '&' => Some(b"\\u0026"),
            '\u{2028}' => Some(b"\\u2028"),
            '\u{2029}' => Some(b"\\u2029"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => push_control(out, c as u8),
        }
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn push_control(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(b"\\u00");
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

/// Appends a label set as a JSON object; keys come out sorted because
/// [`Labels`] is sorted, matching Go's map marshaling.
pub fn push_labels(out: &mut Vec<u8>, labels: &Labels) {
    out.push(b'{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, &l.name);
        out.push(b':');
        push_str(out, &l.value);
    }
    out.push(b'}');
}

/// Appends a sample timestamp as `jsonutil.MarshalTimestamp` does: whole
/// seconds, then `.` and exactly three digits when there are milliseconds.
pub fn push_timestamp(out: &mut Vec<u8>, t_ms: i64) {
    // Writing through `io::Write` keeps this free of allocations.
    let t = t_ms.unsigned_abs();
    if t_ms < 0 {
        out.push(b'-');
    }
    let _ = write!(out, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        // The three digits are each below ten, so the casts cannot truncate.
        out.extend_from_slice(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ]);
    }
}

/// Appends a sample value as `jsonutil.MarshalValue` does: a quoted Go float,
/// in exponent form when tiny or huge.
pub fn push_value(out: &mut Vec<u8>, v: f64) {
    out.push(b'"');
    let abs = v.abs();
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        out.extend_from_slice(format_e(v).as_bytes());
    } else {
        push_f_bytes(out, v);
    }
    out.push(b'"');
}

/// Appends a scalar or string result's timestamp: Go `encoding/json` of
/// `float64(t) / 1000`.
pub fn push_scalar_time(out: &mut Vec<u8>, t_ms: i64) {
    out.extend_from_slice(go_json_float(t_ms as f64 / 1000.0).as_bytes());
}

/// Go `encoding/json` for a float64: 'f' unless tiny or huge, then 'e' with
/// a two-digit negative exponent shortened (`1e-07` becomes `1e-7`).
pub fn go_json_float(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && abs.is_finite() && !(1e-6..1e21).contains(&abs) {
        let mut s = format_e(v);
        let n = s.len();
        if n >= 4 && &s[n - 4..n - 1] == "e-0" {
            s.remove(n - 2);
        }
        s
    } else {
        format_f(v)
    }
}

/// A `serde_json` formatter with Go's string escapes and float formats.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(go_json_float(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc: &[u8] = match c {
                '<' => b"\\u003c",
                '>' => b"\\u003e",
                '&' => b"\\u0026",
                '\u{2028}' => b"\\u2028",
                '\u{2029}' => b"\\u2029",
                _ => continue,
            };
            w.write_all(&bytes[start..i])?;
            w.write_all(esc)?;
            start = i + c.len_utf8();
        }
        w.write_all(&bytes[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(b) => {
                let mut buf = Vec::with_capacity(6);
                push_control(&mut buf, b);
                return w.write_all(&buf);
            }
        };
        w.write_all(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: i64) -> String {
        let mut v = Vec::new();
        push_timestamp(&mut v, ms);
        String::from_utf8(v).unwrap()
    }

    fn val(v: f64) -> String {
        let mut out = Vec::new();
        push_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_like_jsonutil() {
        assert_eq!(ts(1_795_664_538_000), "1795664538");
        assert_eq!(ts(1_795_664_538_302), "1795664538.302");
        assert_eq!(ts(1_435_781_451_050), "1435781451.050");
        assert_eq!(ts(1_500), "1.500");
        assert_eq!(ts(5), "0.005");
        assert_eq!(ts(-1_500), "-1.500");
        assert_eq!(ts(0), "0");
    }

    #[test]
    fn values_like_jsonutil() {
        assert_eq!(val(1.0), r#""1""#);
        assert_eq!(val(0.5), r#""0.5""#);
        assert_eq!(val(98.62897090787493), r#""98.62897090787493""#);
        assert_eq!(val(1e-7), r#""1e-07""#);
        assert_eq!(val(1e21), r#""1e+21""#);
        assert_eq!(val(1.5e300), r#""1.5e+300""#);
        assert_eq!(val(1e20), r#""100000000000000000000""#);
        assert_eq!(val(f64::NAN), r#""NaN""#);
        assert_eq!(val(f64::INFINITY), r#""+Inf""#);
        assert_eq!(val(f64::NEG_INFINITY), r#""-Inf""#);
        assert_eq!(val(0.0), r#""0""#);
        assert_eq!(val(-0.0), r#""-0""#);
    }

    #[test]
    fn scalar_formats() {
        assert_eq!(go_json_float(1_795_664_538.312), "1795664538.312");
        assert_eq!(go_json_float(1e-7), "1e-7");
        assert_eq!(go_json_float(1e21), "1e+21");
        assert_eq!(go_json_float(0.097866721), "0.097866721");
    }

    #[test]
    fn strings_escape_like_go() {
        let mut out = Vec::new();
        push_str(&mut out, "a\"b\\<c>&\n\u{1}\u{2028}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b\\\u003cc\u003e\u0026\n\u0001\u2028é""#
        );
        let v = to_vec(&serde_json::json!({"k": "x->y\u{8}", "f": 0.5})).unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            r#"{"f":0.5,"k":"x-\u003ey\u0008"}"#
        );
    }
}
