//! Go's `strconv.ParseFloat(s, 64)`, the one float reader behind every
//! number Prometheus reads with it: PromQL literals, API times and
//! durations, `le` bounds, float flags, and (through
//! [`parse_float_pre_go113`]) the exposition formats.
//!
//! Go's grammar (`strconv/atof.go`): an optional sign, then decimal digits
//! with an optional point and an optional `e` exponent, or `0x` hex digits
//! with an optional point and a required `p` (binary) exponent; `_` may
//! separate digits anywhere a digit follows a digit or the base prefix; and
//! the case-insensitive specials `inf`, `infinity` (either with a sign) and
//! `nan` (without one). A well-formed literal beyond `f64` is a range error,
//! one below the smallest subnormal rounds to zero. Nothing else: no spaces,
//! no trailing text. Decimal digits are converted by Rust's parser, which
//! rounds correctly as Go's does; hex mantissas are rounded here.

/// Why a string is not a float, as Go's `strconv.ErrSyntax` and
/// `strconv.ErrRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatError {
    /// Not a float literal.
    Syntax,
    /// A well-formed literal whose magnitude is beyond `f64`.
    Range,
}

impl FloatError {
    /// Go's `*NumError` text, such as
    /// `strconv.ParseFloat: parsing "x": invalid syntax`.
    pub fn go_message(self, input: &str) -> String {
        let why = match self {
            FloatError::Syntax => "invalid syntax",
            FloatError::Range => "value out of range",
        };
        format!(
            "strconv.ParseFloat: parsing {}: {why}",
            super::gofmt::go_quote(input)
        )
    }
}

/// Go's `strconv.ParseFloat(s, 64)`.
///
/// ```
/// use raymon::model::goparse::{FloatError, parse_float};
/// assert_eq!(parse_float("1_000.5"), Ok(1000.5));
/// assert_eq!(parse_float("0x1.8p1"), Ok(3.0));
/// assert_eq!(parse_float("-Infinity"), Ok(f64::NEG_INFINITY));
/// assert_eq!(parse_float("1e400"), Err(FloatError::Range));
/// assert_eq!(parse_float("+NaN"), Err(FloatError::Syntax));
/// ```
pub fn parse_float(s: &str) -> Result<f64, FloatError> {
    parse_float_bytes(s.as_bytes())
}

/// [`parse_float`] on bytes, which are valid only where they are ASCII.
#[inline]
pub fn parse_float_bytes(s: &[u8]) -> Result<f64, FloatError> {
    if let Some(v) = fast_decimal(s) {
        return Ok(v);
    }
    parse_general(s)
}

/// The exposition formats' rule (Prometheus's `textparse.parseFloat`):
/// [`parse_float`] refusing any `p`, `P` or `_`, so that hex floats and
/// digit separators, which Go accepts only since 1.13, stay out.
#[inline]
pub fn parse_float_pre_go113(s: &[u8]) -> Result<f64, FloatError> {
    if let Some(v) = fast_decimal(s) {
        return Ok(v);
    }
    if s.iter().any(|c| matches!(c, b'p' | b'P' | b'_')) {
        return Err(FloatError::Syntax);
    }
    parse_general(s)
}

/// Plain decimals such as `0.0`, `1516.0` or `-12` with at most 15
/// significant digits, the common case of scraped values: the mantissa and
/// the power of ten are both exact in an `f64`, so one division gives the
/// correctly rounded result. `None` sends anything else to the full parser.
#[inline]
fn fast_decimal(s: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut fraction_digits = 0usize;
    let mut seen_point = false;
    let mut seen_digit = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                seen_digit = true;
                if seen_point {
                    fraction_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if !seen_digit {
        return None;
    }
    // Invariant: at most 16 bytes, so at most 16 digits and 15 after a point.
    let v = mantissa as f64 / *POW10.get(fraction_digits)?;
    if mantissa > (1 << 53) {
        return None;
    }
    Some(if negative { -v } else { v })
}

fn parse_general(s: &[u8]) -> Result<f64, FloatError> {
    if let Some(v) = special(s) {
        return Ok(v);
    }
    let (negative, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let hex = body.len() > 2 && body[0] == b'0' && matches!(body[1], b'x' | b'X');
    let (underscores, v) = if hex {
        parse_hex(&body[2..], negative)?
    } else {
        (check_decimal(body)?, None)
    };
    if underscores && !underscores_separate_digits(s) {
        return Err(FloatError::Syntax);
    }
    let v = match v {
        Some(v) => v,
        None => decimal_value(s, underscores)?,
    };
    if v.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(v)
}

/// `inf`, `infinity` (optionally signed) and `nan`, any case.
fn special(s: &[u8]) -> Option<f64> {
    if s.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    let (sign, word) = match s.first()? {
        b'-' => (-1.0, &s[1..]),
        b'+' => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    (word.eq_ignore_ascii_case(b"inf") || word.eq_ignore_ascii_case(b"infinity"))
        .then_some(sign * f64::INFINITY)
}

/// Checks an unsigned decimal literal; says whether it holds `_`.
fn check_decimal(b: &[u8]) -> Result<bool, FloatError> {
    let mut i = 0;
    let mut digits = false;
    let mut point = false;
    let mut underscores = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => digits = true,
            b'_' => underscores = true,
            b'.' if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    if !digits {
        return Err(FloatError::Syntax);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let (end, u) = exponent_digits(b, i + 1)?;
        underscores |= u;
        i = end;
    }
    if i != b.len() {
        return Err(FloatError::Syntax);
    }
    Ok(underscores)
}

/// The signed decimal digits of an exponent starting at `b[i]`: its end,
/// whether it held `_`, and its value (saturated far beyond any `f64`).
fn exponent(b: &[u8], mut i: usize) -> Result<(usize, bool, i64), FloatError> {
    let negative = match b.get(i) {
        Some(b'+') => {
            i += 1;
            false
        }
        Some(b'-') => {
            i += 1;
            true
        }
        _ => false,
    };
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return Err(FloatError::Syntax);
    }
    let mut e: i64 = 0;
    let mut underscores = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => e = (e * 10 + i64::from(c - b'0')).min(1 << 20),
            b'_' => underscores = true,
            _ => break,
        }
        i += 1;
    }
    Ok((i, underscores, if negative { -e } else { e }))
}

fn exponent_digits(b: &[u8], i: usize) -> Result<(usize, bool), FloatError> {
    exponent(b, i).map(|(end, u, _)| (end, u))
}

/// Go's rule for `_` (`strconv.underscoreOK`): only between two digits, or
/// between the `0x` prefix and a digit.
fn underscores_separate_digits(s: &[u8]) -> bool {
    let s = match s.first() {
        Some(b'+' | b'-') => &s[1..],
        _ => s,
    };
    let hex = s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'x' | b'b' | b'o');
    let (mut after_digit, mut after_underscore) = (hex, false);
    let digits_are_hex = hex && s[1] | 0x20 == b'x';
    for &c in &s[if hex { 2 } else { 0 }..] {
        if c.is_ascii_digit() || (digits_are_hex && c.is_ascii_hexdigit()) {
            (after_digit, after_underscore) = (true, false);
        } else if c == b'_' {
            if !after_digit {
                return false;
            }
            (after_digit, after_underscore) = (false, true);
        } else if after_underscore {
            return false;
        } else {
            after_digit = false;
        }
    }
    !after_underscore
}

/// The value of a checked decimal literal: Rust's parser reads the same
/// grammar once any `_` is gone, and rounds correctly.
fn decimal_value(s: &[u8], underscores: bool) -> Result<f64, FloatError> {
    let text = std::str::from_utf8(s).map_err(|_| FloatError::Syntax)?;
    let parsed = if underscores {
        text.replace('_', "").parse::<f64>()
    } else {
        text.parse::<f64>()
    };
    parsed.map_err(|_| FloatError::Syntax)
}

/// A hex literal after `0x`: mantissa digits with an optional point, then
/// the required `p` exponent. Returns whether it held `_` and its value.
fn parse_hex(b: &[u8], negative: bool) -> Result<(bool, Option<f64>), FloatError> {
    let mut mantissa: u64 = 0;
    // The value is `mantissa * 2^exp2`, with `sticky` for nonzero digits
    // that did not fit in the 64-bit mantissa.
    let mut exp2: i64 = 0;
    let mut sticky = false;
    let mut significant = 0;
    let mut digits = false;
    let mut point = false;
    let mut underscores = false;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        i += 1;
        let d = match c {
            b'_' => {
                underscores = true;
                continue;
            }
            b'.' if !point => {
                point = true;
                continue;
            }
            _ => match (c as char).to_digit(16) {
                Some(d) => u64::from(d),
                None => {
                    i -= 1;
                    break;
                }
            },
        };
        digits = true;
        if mantissa == 0 && d == 0 {
            // A leading zero only moves the point.
            if point {
                exp2 -= 4;
            }
            continue;
        }
        if significant < 16 {
            mantissa = mantissa << 4 | d;
            significant += 1;
            if point {
                exp2 -= 4;
            }
        } else {
            sticky |= d != 0;
            if !point {
                exp2 += 4;
            }
        }
    }
    if !digits || !matches!(b.get(i), Some(b'p' | b'P')) {
        return Err(FloatError::Syntax);
    }
    let (end, u, e) = exponent(b, i + 1)?;
    if end != b.len() {
        return Err(FloatError::Syntax);
    }
    let v = round_binary(mantissa, exp2 + e, sticky);
    Ok((underscores | u, Some(if negative { -v } else { v })))
}

/// `mantissa * 2^exp` (plus a little more when `sticky`) rounded to the
/// nearest `f64`, ties to even, through the subnormals; infinite on
/// overflow.
fn round_binary(mut m: u64, mut exp: i64, sticky: bool) -> f64 {
    const MANT_BITS: u32 = 52;
    if m == 0 {
        return 0.0;
    }
    // Put the leading bit at 54: 53 significant bits and 2 rounding bits
    // below them, the lowest also standing for everything shifted out.
    let lead = 63 - i64::from(m.leading_zeros());
    if lead < 54 {
        m <<= 54 - lead;
        exp -= 54 - lead;
    }
    if sticky {
        m |= 1;
    }
    while m >> 55 != 0 {
        m = m >> 1 | (m & 1);
        exp += 1;
    }
    // Below the normal range (leading bit under 2^-1022), shift into the
    // subnormal position, keeping the lost bits sticky.
    while m > 1 && exp + 54 < -1022 {
        m = m >> 1 | (m & 1);
        exp += 1;
    }
    let round = (m & 3) | ((m >> 2) & 1);
    m >>= 2;
    exp += 2;
    if round == 3 {
        m += 1;
        if m == 1 << (MANT_BITS + 1) {
            m >>= 1;
            exp += 1;
        }
    }
    if m >> MANT_BITS == 0 {
        // Subnormal or zero: the loop above left exp at -1074 (or m at 0),
        // so the value is m * 2^-1074, which is what these bits mean.
        return f64::from_bits(m);
    }
    let biased = exp + i64::from(MANT_BITS) + 1023;
    if biased >= 2047 {
        return f64::INFINITY;
    }
    f64::from_bits((biased as u64) << MANT_BITS | (m & ((1 << MANT_BITS) - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> f64 {
        parse_float(s).unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
    }

    #[test]
    fn decimal_forms() {
        for (s, want) in [
            ("1", 1.0),
            ("0.0", 0.0),
            ("1516.0", 1516.0),
            ("354.33070866141736", 354.330_708_661_417_36),
            ("1.7956641119239135e+09", 1.795_664_111_923_913_5e9),
            ("2E5", 2e5),
            ("1e-3", 1e-3),
            (".5", 0.5),
            ("5.", 5.0),
            ("+3", 3.0),
            ("-12.25", -12.25),
            ("08", 8.0),
            ("1.e5", 1e5),
            ("1e-400", 0.0),
            ("12345678901234567890", 12_345_678_901_234_567_890.0),
            ("0.1000000000000001", 0.100_000_000_000_000_1),
            ("9007199254740993", 9_007_199_254_740_993.0),
            ("1.7976931348623157e308", f64::MAX),
            ("4.9e-324", 5e-324),
            ("0e99999999999999999999", 0.0),
        ] {
            assert_eq!(ok(s), want, "{s}");
        }
        assert!(ok("-0").is_sign_negative());
        assert!(ok("-0.0").is_sign_negative());
    }

    #[test]
    fn specials_in_any_case() {
        for s in ["inf", "+Inf", "INF", "infinity", "+Infinity", "iNfInItY"] {
            assert_eq!(ok(s), f64::INFINITY, "{s}");
        }
        for s in ["-inf", "-Infinity"] {
            assert_eq!(ok(s), f64::NEG_INFINITY, "{s}");
        }
        for s in ["NaN", "nan", "nAN"] {
            assert!(ok(s).is_nan(), "{s}");
        }
    }

    #[test]
    fn underscores_only_between_digits() {
        // Go's own cases (strconv's atof tests).
        assert_eq!(ok("1_23.50_0_0e+1_2"), 1.235e14);
        assert_eq!(ok("0x_1_2.3_4_5p+1_2"), 74565.0);
        for bad in [
            "-_123.5e+12",
            "+_123.5e+12",
            "_123.5e+12",
            "1__23.5e+12",
            "123_.5e+12",
            "123._5e+12",
            "123.5_e+12",
            "123.5__0e+12",
            "123.5e_+12",
            "123.5e+_12",
            "123.5e_-12",
            "123.5e-_12",
            "123.5e+1__2",
            "123.5e+12_",
            "-_0x12.345p+12",
            "_0x12.345p+12",
            "0x__12.345p+12",
            "0x1__2.345p+12",
            "0x12_.345p+12",
            "0x12._345p+12",
            "0x12.3__45p+12",
            "0x12.345_p+12",
            "0x12.345p_+12",
            "0x12.345p+_12",
            "0x12.345p+1__2",
            "0x12.345p+12_",
        ] {
            assert_eq!(parse_float(bad), Err(FloatError::Syntax), "{bad}");
        }
    }

    #[test]
    fn hex_floats_round_like_go() {
        for (s, want) in [
            ("0x1p0", 1.0),
            ("0x1.8p1", 3.0),
            ("-0x1p-2", -0.25),
            ("0X1P+2", 4.0),
            ("0x.8p1", 1.0),
            ("0x1.p1", 2.0),
            ("0x0.01p0", 1.0 / 256.0),
            ("0x001p4", 16.0),
            ("0x1.fffffffffffffp1023", f64::MAX),
            ("0x1.fffffffffffff7fffp1023", f64::MAX),
            ("0x1p-1022", f64::MIN_POSITIVE),
            ("0x1p-1074", 5e-324),
            ("0x1p-1075", 0.0),
            ("0x1.8p-1074", 1e-323),
            ("0x1.00000000000008p0", 1.0),
            ("0x1.000000000000081p0", 1.000_000_000_000_000_2),
            ("0x1.00000000000018p0", 1.000_000_000_000_000_4),
            (
                "0x1.0000000000000800000000000000001p0",
                1.000_000_000_000_000_2,
            ),
            ("0x0p+18446744073709551616", 0.0),
            ("0x1p-18446744073709551616", 0.0),
        ] {
            assert_eq!(ok(s), want, "{s}");
        }
        assert_eq!(
            parse_float("0x1.fffffffffffff8p1023"),
            Err(FloatError::Range)
        );
        assert_eq!(parse_float("-0x1p1024"), Err(FloatError::Range));
        for bad in [
            "0x", "0x1", "0x1e2", "0x1p", "0xp1", "0x1.8", "0x1p1.5", "0x1g",
        ] {
            assert_eq!(parse_float(bad), Err(FloatError::Syntax), "{bad}");
        }
    }

    #[test]
    fn rejected_and_out_of_range() {
        for bad in [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1.2.3",
            "1,5",
            "+NaN",
            "-nan",
            "infi",
            "in",
            "NaNa",
            "infx",
            "infinityx",
            "1 ",
            " 1",
            "--1",
            "1e+",
            "١",
            "1f",
            "0b1",
            "0o7",
            "inf1",
        ] {
            assert_eq!(parse_float(bad), Err(FloatError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_float("1e400"), Err(FloatError::Range));
        assert_eq!(parse_float("-1e400"), Err(FloatError::Range));
        assert_eq!(
            FloatError::Range.go_message("1e400"),
            r#"strconv.ParseFloat: parsing "1e400": value out of range"#
        );
        assert_eq!(
            FloatError::Syntax.go_message("0x1.8"),
            r#"strconv.ParseFloat: parsing "0x1.8": invalid syntax"#
        );
    }

    #[test]
    fn the_exposition_rule_refuses_go_1_13_forms() {
        assert_eq!(parse_float_pre_go113(b"1.5e3"), Ok(1500.0));
        assert_eq!(parse_float_pre_go113(b"-Inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(parse_float_pre_go113(b"1p3"), Err(FloatError::Syntax));
        for bad in ["1_000", "0x1p3", "0x1P3", "-0x_1p-1"] {
            assert_eq!(
                parse_float_pre_go113(bad.as_bytes()),
                Err(FloatError::Syntax)
            );
            assert_ne!(
                parse_float(bad),
                parse_float_pre_go113(bad.as_bytes()),
                "{bad}"
            );
        }
    }

    #[test]
    fn agrees_with_rusts_reader_on_random_decimals() {
        // Every decimal Rust's Display and exponent forms write must read
        // back to the same bits.
        let seed = 0x5eed_u64;
        println!("seed {seed}");
        let mut x = seed;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            for s in [format!("{v}"), format!("{v:e}"), format!("{v:?}")] {
                assert_eq!(ok(&s).to_bits(), v.to_bits(), "{s}");
            }
        }
    }
}
