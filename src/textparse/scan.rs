//! Byte-level scanning shared by both formats: character classes and the
//! search for the end of a quoted label value. Knows nothing of lines or
//! entries.

const METRIC_START: u8 = 1;
const METRIC_CONT: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CONT: u8 = 8;

/// Character classes of every byte, so each test is one load.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut v = 0;
        if alpha || b == b':' {
            v |= METRIC_START | METRIC_CONT;
        }
        if digit {
            v |= METRIC_CONT | LABEL_CONT;
        }
        if alpha {
            v |= LABEL_START | LABEL_CONT;
        }
        t[c] = v;
        c += 1;
    }
    t
};

/// `[a-zA-Z_:]`
#[inline]
pub(super) fn is_metric_start(c: u8) -> bool {
    CLASS[c as usize] & METRIC_START != 0
}

/// `[a-zA-Z_]`
#[inline]
pub(super) fn is_label_start(c: u8) -> bool {
    CLASS[c as usize] & LABEL_START != 0
}

/// The end of the metric name that starts at `i`: `[a-zA-Z0-9_:]*`.
#[inline]
pub(super) fn metric_name_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && CLASS[b[i] as usize] & METRIC_CONT != 0 {
        i += 1;
    }
    i
}

/// The end of the label name that starts at `i`: `[a-zA-Z0-9_]*`.
#[inline]
pub(super) fn label_name_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && CLASS[b[i] as usize] & LABEL_CONT != 0 {
        i += 1;
    }
    i
}

/// Skips spaces and tabs.
#[inline]
pub(super) fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// The end of the token at `i`: the first byte in `stops`, or the end.
#[inline]
pub(super) fn token_end(b: &[u8], mut i: usize, stops: &[u8]) -> usize {
    while i < b.len() && !stops.contains(&b[i]) {
        i += 1;
    }
    i
}

/// The end of the line that contains `i`: the index of its `\n`, or the end.
#[inline]
pub(super) fn line_end(b: &[u8], i: usize) -> usize {
    match b.get(i..) {
        Some(rest) => rest
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |n| i + n),
        None => b.len(),
    }
}

/// Why a quoted value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QuoteError {
    /// The input (or, where raw newlines are not allowed, the line) ended first.
    Unterminated,
    /// A backslash at the end of the line or input: nothing to escape.
    BadEscape,
}

/// A closing quote was found at `end`; `escaped` says whether the value
/// holds a backslash and so needs unescaping.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quoted {
    pub end: usize,
    pub escaped: bool,
}

/// Finds the quote that closes a value whose first byte is at `i`.
///
/// As in Prometheus's lexers, a backslash escapes any byte but a newline,
/// and the text format allows raw newlines inside the quotes while
/// OpenMetrics does not.
#[inline]
pub(super) fn quoted_end(
    b: &[u8],
    mut i: usize,
    raw_newlines: bool,
) -> Result<Quoted, (usize, QuoteError)> {
    let mut escaped = false;
    loop {
        // Skip ordinary bytes eight at a time.
        while let Some(chunk) = b.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let w = u64::from_le_bytes(w);
            if has_byte(w, b'"') | has_byte(w, b'\\') | has_byte(w, b'\n') {
                break;
            }
            i += 8;
        }
        let Some(&c) = b.get(i) else {
            return Err((i, QuoteError::Unterminated));
        };
        match c {
            b'"' => return Ok(Quoted { end: i, escaped }),
            b'\\' => match b.get(i + 1) {
                None | Some(b'\n') => return Err((i, QuoteError::BadEscape)),
                Some(_) => {
                    escaped = true;
                    i += 2;
                }
            },
            b'\n' if !raw_newlines => return Err((i, QuoteError::Unterminated)),
            _ => i += 1,
        }
    }
}

/// The index of the first `c` at or after `i`: `memchr`, which compares 16
/// or 32 bytes at a time where our word-at-a-time loop compared eight (the
/// closing brace of a Ray series lies 200-400 bytes on).
#[inline]
pub(super) fn find_byte(b: &[u8], i: usize, c: u8) -> Option<usize> {
    memchr::memchr(c, b.get(i..)?).map(|n| i + n)
}

/// Whether any byte of `w` equals `c`: the classic has-zero-byte test on
/// `w ^ c…c`, which is exact as a yes/no answer.
#[inline]
fn has_byte(w: u64, c: u8) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let x = w ^ (LO * c as u64);
    x.wrapping_sub(LO) & !x & HI != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_metric_start(b':') && !is_label_start(b':'));
        assert!(is_label_start(b'_') && !is_label_start(b'0'));
        assert_eq!(metric_name_end(b"a:b_1{", 0), 5);
        assert_eq!(label_name_end(b"a:b", 0), 1);
        assert_eq!(skip_blanks(b" \t x", 0), 3);
        assert_eq!(line_end(b"ab\ncd", 1), 2);
        assert_eq!(line_end(b"ab\ncd", 3), 5);
    }

    #[test]
    fn quoted_values() {
        let q = quoted_end(b"abc\" x", 0, false).unwrap();
        assert_eq!((q.end, q.escaped), (3, false));
        let long = b"0123456789abcdefghij\\\"klmn\" rest";
        let q = quoted_end(long, 0, false).unwrap();
        assert_eq!((q.end, q.escaped), (26, true));
        assert_eq!(
            quoted_end(b"ab", 0, false).unwrap_err(),
            (2, QuoteError::Unterminated)
        );
        assert_eq!(
            quoted_end(b"a\\", 0, false).unwrap_err(),
            (1, QuoteError::BadEscape)
        );
        assert_eq!(
            quoted_end(b"a\\\nb\"", 0, true).unwrap_err(),
            (1, QuoteError::BadEscape)
        );
        assert_eq!(
            quoted_end(b"a\nb\"", 0, false).unwrap_err(),
            (1, QuoteError::Unterminated)
        );
        assert_eq!(quoted_end(b"a\nb\"", 0, true).unwrap().end, 3);
        // Non-ASCII bytes are ordinary content.
        let q = quoted_end("héllo wörld, ça va\"".as_bytes(), 0, false).unwrap();
        assert_eq!(q.end, "héllo wörld, ça va".len());
    }

    #[test]
    fn find_byte_finds_the_first() {
        let b = b"0123456789abcdef}x}";
        assert_eq!(find_byte(b, 0, b'}'), Some(16));
        assert_eq!(find_byte(b, 17, b'}'), Some(18));
        assert_eq!(find_byte(b, 0, b'0'), Some(0));
        assert_eq!(find_byte(b, 3, b'0'), None);
        assert_eq!(find_byte(b, 40, b'}'), None);
    }

    #[test]
    fn has_byte_is_exact() {
        for c in 0u8..=255 {
            let w = u64::from_le_bytes([b'a', b'b', c, b'd', b'e', b'f', b'g', b'h']);
            assert_eq!(has_byte(w, b'"'), c == b'"', "{c}");
        }
    }
}
