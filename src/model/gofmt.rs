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
    let mut out = String::new();
    push_f(&mut out, v);
    out
}

/// [`format_f`] appended to `out`, for hot paths that reuse a buffer.
pub fn push_f(out: &mut String, v: f64) {
    render_f(v, &mut |s| out.push_str(s));
}

/// [`format_f`] appended to a byte buffer (JSON bodies).
pub fn push_f_bytes(out: &mut Vec<u8>, v: f64) {
    render_f(v, &mut |s| out.extend_from_slice(s.as_bytes()));
}

fn render_f(v: f64, put: &mut dyn FnMut(&str)) {
    if v.is_nan() {
        return put("NaN");
    } else if v == f64::INFINITY {
        return put("+Inf");
    } else if v == f64::NEG_INFINITY {
        return put("-Inf");
    }
    // A whole number below 2^53 is its own shortest decimal (its
    // neighbours are at most 1 apart, so no shorter digits round to it):
    // written as an integer, without Ryū's search. Most of Ray's values
    // are whole (bytes, counts, histogram buckets). Zero keeps Ryū's path
    // for its sign.
    if v != 0.0 && v.fract() == 0.0 && v.abs() < WHOLE_LIMIT {
        let mut buf = [0u8; 20];
        return put(whole(v, &mut buf));
    }
    // Ryū writes plain decimals (no exponent) for most values, with the
    // digits `Digits` would take from it; they differ from Go's only by a
    // trailing `.0` on whole numbers. Large answers format millions.
    let mut ryu_buf = ryu::Buffer::new();
    let text = ryu_buf.format_finite(v);
    if !text.contains('e') {
        return put(text.strip_suffix(".0").unwrap_or(text));
    }
    render_digits(v, put);
}

/// 2^53: every whole number of smaller magnitude is an `f64` exactly.
const WHOLE_LIMIT: f64 = 9_007_199_254_740_992.0;

/// The decimal digits of whole `v` (`|v| <` [`WHOLE_LIMIT`]), two at a
/// time, written into the end of `buf`.
fn whole(v: f64, buf: &mut [u8; 20]) -> &str {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    // Whole and below 2^53: the cast is exact.
    let mut n = v.abs() as u64;
    let mut i = buf.len();
    while n >= 100 {
        let k = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[k..k + 2]);
    }
    if n >= 10 {
        let k = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[k..k + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    if v < 0.0 {
        i -= 1;
        buf[i] = b'-';
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// [`render_f`] for finite `v` through [`Digits`], whatever form Ryū chose.
fn render_digits(v: f64, put: &mut dyn FnMut(&str)) {
    const ZEROS: &str = "0000000000000000000000000000000000000000";
    let zeros = |mut n: usize, put: &mut dyn FnMut(&str)| {
        while n > 0 {
            let k = n.min(ZEROS.len());
            put(&ZEROS[..k]);
            n -= k;
        }
    };
    let d = Digits::of(v);
    let (digits, point) = (d.digits(), d.point);
    if d.neg {
        put("-");
    }
    if point <= 0 {
        put("0.");
        zeros(point.unsigned_abs() as usize, put);
        put(digits);
    } else if point as usize >= digits.len() {
        put(digits);
        zeros(point as usize - digits.len(), put);
    } else {
        let (int, frac) = digits.split_at(point as usize);
        put(int);
        put(".");
        put(frac);
    }
}

/// The shortest decimal digits that read back as a float and, among those,
/// the closest to it, as Go's `strconv` chooses them: the value is
/// `0.digits × 10^point`, `digits` without leading or trailing zeros (`"0"`,
/// point 1, for zero). Rust's own `Display` picks the shortest digits too,
/// but not always the closest of them: for a few values in ten thousand with
/// 17 significant digits its last digit is one off from Go's
/// (`8915758538727.563` where Go prints `8915758538727.562`). Ryū makes the
/// same choice as Go.
struct Digits {
    neg: bool,
    buf: [u8; 24],
    len: usize,
    point: i32,
}

impl Digits {
    /// `v` must be finite.
    fn of(v: f64) -> Digits {
        let mut ryu_buf = ryu::Buffer::new();
        let text = ryu_buf.format_finite(v);
        let (neg, text) = match text.strip_prefix('-') {
            Some(t) => (true, t),
            None => (false, text),
        };
        let (mantissa, exp) = match text.split_once('e') {
            Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
            None => (text, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let mut d = Digits {
            neg,
            buf: [0; 24],
            len: 0,
            point: exp + int.len() as i32,
        };
        // At most 17 significant digits plus the zeros Ryū writes around
        // the point: 24 bytes hold them all.
        for &c in int.as_bytes().iter().chain(frac.as_bytes()) {
            if d.len == 0 && c == b'0' {
                d.point -= 1;
                continue;
            }
            if d.len < d.buf.len() {
                d.buf[d.len] = c;
                d.len += 1;
            }
        }
        while d.len > 0 && d.buf[d.len - 1] == b'0' {
            d.len -= 1;
        }
        if d.len == 0 {
            d.buf[0] = b'0';
            d.len = 1;
            d.point = 1;
        }
        d
    }

    fn digits(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("0")
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

/// Shortest mantissa digits (with a point when needed, and the sign) and
/// decimal exponent, as Go's 'e' form writes them.
fn split_exp(v: f64) -> (String, i32) {
    let d = Digits::of(v);
    let digits = d.digits();
    let mut m = String::with_capacity(digits.len() + 2);
    if d.neg {
        m.push('-');
    }
    m.push_str(&digits[..1]);
    if digits.len() > 1 {
        m.push('.');
        m.push_str(&digits[1..]);
    }
    (m, d.point - 1)
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
        assert_eq!(format_f(-0.0), "-0");
        assert_eq!(format_f(0.0), "0");
        assert_eq!(format_f(1.5e22), "15000000000000000000000");
        assert_eq!(format_f(0.000123), "0.000123");
        assert_eq!(format_e(0.000123), "1.23e-04");
        assert_eq!(format_f(f64::MIN_POSITIVE).len(), 2 + 307 + 17);
    }

    /// Where two shortest digit strings read back as the same float, Go
    /// prints the closer one; Rust's `Display` sometimes the other. The
    /// expected texts are Go's (`strconv.FormatFloat(v, 'f', -1, 64)`),
    /// which Python's `repr` agrees with.
    #[test]
    fn closest_of_the_shortest_digits_like_go() {
        let cases = [
            (0x42a0_37b9_3dbf_cf20_u64, "8915758538727.562"),
            (0x4318_0467_b3a7_ed6d, "1690060720831323.2"),
            (0xc2e2_9836_995a_3554, "-163559682789802.62"),
            (0x42ea_8090_bb0f_6d84, "233115890514796.12"),
        ];
        for (bits, want) in cases {
            let v = f64::from_bits(bits);
            assert_eq!(format_f(v), want);
            assert_eq!(format_f(v).parse::<f64>().unwrap(), v);
        }
        assert_eq!(
            format_e(f64::from_bits(0x4318_0467_b3a7_ed6d)),
            "1.6900607208313232e+15"
        );
    }

    /// Ryū's plain decimals, taken as they are, give what the digits path
    /// gives for values of every magnitude and for whole numbers.
    #[test]
    fn plain_decimals_match_the_digits_path() {
        let via_digits = |v: f64| {
            let mut s = String::new();
            render_digits(v, &mut |p| s.push_str(p));
            s
        };
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut values = vec![
            0.0, -0.0, 1.0, -1.0, 100.0, 1e15, 1e16, 1e-5, 1e-7, 0.1, 5e-324,
        ];
        // The integer path's digit pairs, and a byte count.
        values.extend([9.0, 10.0, 99.0, 101.0, -1_000.0, 12_479_713_569.0]);
        // Whole numbers about 2^53, where the integer path ends.
        for d in 0..4 {
            let w = WHOLE_LIMIT - 2.0 + f64::from(d);
            values.extend([w, -w, w + 0.5, (w / 2.0) + 0.5]);
        }
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if v.is_finite() {
                values.push(v);
            }
            // Magnitudes a query answers with, whole and fractional.
            let small = (x >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((x % 40) as i32 - 20);
            values.extend([small, small.round(), -small]);
        }
        for v in values {
            assert_eq!(format_f(v), via_digits(v), "{v:e}");
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
