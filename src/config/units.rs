//! Byte sizes as Prometheus's `units.Base2Bytes` parses and prints them.
//!
//! `KB` and `KiB` both mean 1024; lowercase `kB` is rejected, as upstream.

/// Why a size string was rejected; messages follow `alecthomas/units`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("units: invalid {0}")]
    Invalid(String),
    #[error("units: missing unit in {0}")]
    MissingUnit(String),
    #[error("units: unknown unit {0} in {1}")]
    UnknownUnit(String, String),
}

const PREFIXES: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];

fn unit_factor(unit: &str) -> Option<f64> {
    if unit == "B" {
        return Some(1.0);
    }
    let prefix = unit.strip_suffix("iB").or_else(|| unit.strip_suffix('B'))?;
    let pos = PREFIXES.iter().skip(1).position(|p| *p == prefix)?;
    Some(1024f64.powi(i32::try_from(pos + 1).unwrap_or(0)))
}

/// Parses sizes like `100MB`, `1GiB512MiB`, `0`.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let invalid = || SizeError::Invalid(s.to_string());
    if s == "0" {
        return Ok(0);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(invalid());
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value = crate::model::goparse::parse_float(num).map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .bytes()
            .take_while(|b| !b.is_ascii_digit() && *b != b'.')
            .count();
        if unit_len == 0 {
            return Err(SizeError::MissingUnit(s.to_string()));
        }
        let unit = &rest[..unit_len];
        let factor =
            unit_factor(unit).ok_or_else(|| SizeError::UnknownUnit(unit.into(), s.into()))?;
        total += value * factor;
        rest = &rest[unit_len..];
    }
    if total >= u64::MAX as f64 {
        return Err(invalid());
    }
    // Truncation toward zero matches Go's int64 conversion.
    Ok(total as u64)
}

/// Formats as `Base2Bytes.String()`: `100MiB`, `1KiB512B`, `0B`.
pub fn format_size(mut n: u64) -> String {
    if n == 0 {
        return "0B".to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    for (i, prefix) in PREFIXES.iter().enumerate() {
        let rem = n % 1024;
        if rem != 0 {
            let suffix = if i == 0 { "B" } else { "iB" };
            parts.push(format!("{rem}{prefix}{suffix}"));
        }
        n /= 1024;
        if n == 0 {
            break;
        }
    }
    parts.reverse();
    parts.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("100MB"), Ok(100 * 1024 * 1024));
        assert_eq!(parse_size("100MiB"), Ok(100 * 1024 * 1024));
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("1.5KB"), Ok(1536));
        assert_eq!(
            parse_size("1GB512MB"),
            Ok(1024 * 1024 * 1024 + 512 * 1024 * 1024)
        );
        assert_eq!(parse_size("100"), Err(SizeError::MissingUnit("100".into())));
        assert_eq!(
            parse_size("1kB").unwrap_err().to_string(),
            "units: unknown unit kB in 1kB"
        );
        assert!(parse_size("").is_err());
        assert!(parse_size("MB").is_err());
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(100 * 1024 * 1024), "100MiB");
        assert_eq!(format_size(1536), "1KiB512B");
        assert_eq!(format_size(5), "5B");
    }
}
