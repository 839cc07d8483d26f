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
