//! Unquoting of PromQL string literals with Go's escapes (`strconv.Unquote`).
//!
//! The other direction, Go's `%q`, and Prometheus durations live in
//! `model::gofmt` and `model::duration`. Knows nothing of PromQL syntax.

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
    fn unquoting() {
        assert_eq!(unquote(r#""\x41\u00e9\101'""#).as_deref(), Ok("AéA'"));
        assert_eq!(unquote(r"'\''").as_deref(), Ok("'"));
    }
}
