//! Numbers as Prometheus reads them: Go's `strconv.ParseFloat` without the
//! Go 1.13 forms (Prometheus rejects any `p`, `P` or `_`, so hex floats and
//! digit separators are out), and the text format's integer timestamps.

use crate::model::goparse::{self, FloatError};

/// Why a number was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NumberError {
    Invalid,
    /// Well-formed but beyond `f64`/`i64`; Go reports `ErrRange`.
    OutOfRange,
}

/// Parses a sample value, an exemplar value or an OpenMetrics timestamp
/// with Prometheus's `textparse.parseFloat` rule
/// ([`goparse::parse_float_pre_go113`]).
#[inline]
pub(super) fn parse_float(s: &[u8]) -> Result<f64, NumberError> {
    goparse::parse_float_pre_go113(s).map_err(|e| match e {
        FloatError::Syntax => NumberError::Invalid,
        FloatError::Range => NumberError::OutOfRange,
    })
}

/// A sample value in the common plain form (`0.0`, `1516.0`, `-12`: an
/// optional `-`, digits and at most one point, 16 bytes after the sign at
/// most, the mantissa within 2^53) at `b[i..]`, read in the same pass that
/// finds its end: the value and the index of the first byte that is not
/// part of it. `None` for any other form, which the caller then delimits
/// and reads with [`parse_float`]; when the byte at the end is one that
/// ends the token, the result is exactly [`parse_float`]'s on it (one
/// correctly rounded division, as in its own fast path).
#[inline]
pub(super) fn plain_decimal(b: &[u8], i: usize) -> Option<(f64, usize)> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let negative = b.get(i) == Some(&b'-');
    let start = i + usize::from(negative);
    let mut j = start;
    let mut mantissa: u64 = 0;
    let mut point = None;
    while let Some(&c) = b.get(j) {
        match c {
            // At most 16 digits: no overflow.
            b'0'..=b'9' => mantissa = mantissa * 10 + u64::from(c - b'0'),
            b'.' if point.is_none() => point = Some(j),
            _ => break,
        }
        j += 1;
        if j - start > 16 {
            return None;
        }
    }
    let digits = j - start - usize::from(point.is_some());
    if digits == 0 || mantissa > 1 << 53 {
        return None;
    }
    let fraction = point.map_or(0, |p| j - p - 1);
    let v = mantissa as f64 / *POW10.get(fraction)?;
    Some((if negative { -v } else { v }, j))
}

/// Parses the text format's timestamp: ASCII digits only (the lexer has no
/// sign), base 10, within `i64`.
#[inline]
pub(super) fn parse_timestamp_ms(s: &[u8]) -> Result<i64, NumberError> {
    if s.is_empty() {
        return Err(NumberError::Invalid);
    }
    let mut v: i64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return Err(NumberError::Invalid);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
            .ok_or(NumberError::OutOfRange)?;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Result<f64, NumberError> {
        parse_float(s.as_bytes())
    }

    #[test]
    fn go_parse_float_forms() {
        assert_eq!(f("1"), Ok(1.0));
        assert_eq!(f("0.0"), Ok(0.0));
        assert_eq!(f("1516.0"), Ok(1516.0));
        assert_eq!(f("354.33070866141736"), Ok(354.330_708_661_417_36));
        assert_eq!(f("1.389969408e+09"), Ok(1.389_969_408e9));
        assert_eq!(f("1.7956641119239135e+09"), Ok(1.795_664_111_923_913_5e9));
        assert_eq!(f("2E5"), Ok(2e5));
        assert_eq!(f("1e-3"), Ok(1e-3));
        assert_eq!(f(".5"), Ok(0.5));
        assert_eq!(f("5."), Ok(5.0));
        assert_eq!(f("+3"), Ok(3.0));
        assert_eq!(f("-12.25"), Ok(-12.25));
        assert!(f("-0").unwrap().is_sign_negative());
        assert!(f("-0.0").unwrap().is_sign_negative());
        assert_eq!(f("+Inf"), Ok(f64::INFINITY));
        assert_eq!(f("-Inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(f("Inf"), Ok(f64::INFINITY));
        assert_eq!(f("inf"), Ok(f64::INFINITY));
        assert_eq!(f("+infinity"), Ok(f64::INFINITY));
        assert!(f("NaN").unwrap().is_nan());
        assert!(f("nan").unwrap().is_nan());
        assert_eq!(f("1e-400"), Ok(0.0));
        // The fast path's limits fall back to the full parser.
        assert_eq!(f("12345678901234567890"), Ok(12_345_678_901_234_567_890.0));
        assert_eq!(f("0.1000000000000001"), Ok(0.100_000_000_000_000_1));
        assert_eq!(f("9007199254740993"), Ok(9_007_199_254_740_993.0));
    }

    #[test]
    fn rejected_forms() {
        for bad in [
            "", "+", "-", ".", "e5", "1e", "1.2.3", "1,5", "0x10", "0x1p3", "1p3", "1_000", "+NaN",
            "-nan", "infi", "in", "NaNa", "1 ", " 1", "--1", "1e+", "١",
        ] {
            assert_eq!(f(bad), Err(NumberError::Invalid), "{bad:?}");
        }
        assert_eq!(f("1e400"), Err(NumberError::OutOfRange));
        assert_eq!(f("-1e400"), Err(NumberError::OutOfRange));
    }

    /// Every token of digits, points and signs up to 18 bytes long that the
    /// fast path reads gives [`parse_float`]'s value, sign of zero included.
    #[test]
    fn plain_decimals_read_as_parse_float_reads_them() {
        let mut rng = crate::testing::Rng::seeded(
            "plain_decimals_read_as_parse_float_reads_them",
            0x9E37_79B9_7F4A_7C15,
        );
        let mut next = || rng.next();
        let alphabet = b"0123456789.-+e";
        let mut fast = 0;
        for n in 0..200_000 {
            let len = 1 + (next() % 18) as usize;
            let mut tok: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if n % 2 == 0 {
                // Mostly digits, as real values are.
                tok.retain(|&c| c != b'+' && c != b'e' && c != b'-');
            }
            let mut line = tok.clone();
            line.extend_from_slice(b" 1\n");
            let want = parse_float(&tok);
            match plain_decimal(&line, 0) {
                Some((v, end)) if end == tok.len() => {
                    fast += 1;
                    let want = want.unwrap_or_else(|e| panic!("{tok:?}: {e:?}"));
                    assert_eq!(
                        v.to_bits(),
                        want.to_bits(),
                        "{:?}",
                        String::from_utf8_lossy(&tok)
                    );
                }
                // Stopped inside the token: the caller reads it in full.
                Some((_, end)) => assert!(end < tok.len()),
                None => {}
            }
        }
        assert!(fast > 50_000, "{fast}");
        for (s, v) in [
            ("0", 0.0),
            ("-0", -0.0),
            ("1516.0", 1516.0),
            ("9007199254740992", 9_007_199_254_740_992.0),
        ] {
            let (got, end) = plain_decimal(s.as_bytes(), 0).unwrap();
            assert_eq!((got.to_bits(), end), (f64::to_bits(v), s.len()), "{s}");
        }
        for s in [
            "9007199254740993",
            "12345678901234567",
            "-",
            ".",
            "+1",
            "NaN",
            "1e5",
        ] {
            assert!(
                plain_decimal(s.as_bytes(), 0).is_none_or(|(_, end)| end < s.len()),
                "{s}"
            );
        }
    }

    #[test]
    fn text_timestamps() {
        assert_eq!(parse_timestamp_ms(b"1520879607789"), Ok(1_520_879_607_789));
        assert_eq!(parse_timestamp_ms(b"0"), Ok(0));
        assert_eq!(parse_timestamp_ms(b"-1"), Err(NumberError::Invalid));
        assert_eq!(parse_timestamp_ms(b"1.5"), Err(NumberError::Invalid));
        assert_eq!(parse_timestamp_ms(b""), Err(NumberError::Invalid));
        assert_eq!(
            parse_timestamp_ms(b"99999999999999999999"),
            Err(NumberError::OutOfRange)
        );
    }
}
