//! [`Parser`]: picks the format's line parser (`prom`, `openmetrics`),
//! checks what spans lines (metric families, label order, repeated series),
//! and lets callers skip the checks for series text they have seen before.

use rustc_hash::FxHashSet;

use super::number::NumberError;

use super::*;

/// Iterates over the entries of one body. After the first error it yields
/// that error and then ends.
#[derive(Debug, Clone)]
pub struct Parser<'a> {
    /// The body. It is never checked as a whole for UTF-8: a scraper already
    /// knows nearly every series text of it, and those bytes were checked
    /// when the series was new. Text is checked where it is read instead
    /// (names, label values of series not vouched for, HELP and TYPE text),
    /// while it is still in cache: a separate pass over a cold body cost
    /// more than a tenth of parsing it.
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) format: Format,
    pub(super) done: bool,
    /// Spans of the current sample's label names, reused across samples to
    /// find duplicates without allocating.
    pub(super) names: Vec<(usize, usize)>,
    /// The current sample's label names once it has more than
    /// [`HASHED_FROM`] unsorted ones: searching `names` for each would cost
    /// O(n²), seconds for one series with 100k labels.
    pub(super) seen: FxHashSet<&'a [u8]>,
}

/// Unsorted label names a sample may have before duplicates are looked up
/// in a hash set instead of by searching the earlier names.
pub(super) const HASHED_FROM: usize = 32;

impl<'a> Parser<'a> {
    pub fn new(body: &'a [u8], format: Format) -> Parser<'a> {
        Parser {
            buf: body,
            pos: 0,
            format,
            done: false,
            names: Vec::with_capacity(16),
            seen: FxHashSet::default(),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// `buf[a..b]` as text, or `None` if it is not UTF-8 (or out of range).
    #[inline]
    pub(super) fn str_at(&self, a: usize, b: usize) -> Option<&'a str> {
        std::str::from_utf8(self.buf.get(a..b)?).ok()
    }

    /// `buf[a..b]` known to hold ASCII name characters, as text.
    #[inline]
    pub(super) fn ascii(&self, a: usize, b: usize) -> Result<&'a str, ParseError> {
        self.str_at(a, b)
            .ok_or_else(|| self.error_at(a, "invalid name".to_string()))
    }

    #[cold]
    pub(super) fn number_error(
        &self,
        a: usize,
        b: usize,
        what: &str,
        e: NumberError,
    ) -> ParseError {
        let raw = String::from_utf8_lossy(&self.buf[a..b]);
        let msg = match e {
            NumberError::Invalid => format!("invalid {what} {raw:?}"),
            NumberError::OutOfRange => format!("{what} {raw:?} out of range"),
        };
        self.error_at(a, msg)
    }

    /// An error at byte `at`, with its line and column worked out here: the
    /// happy path never counts lines.
    #[cold]
    pub(super) fn error_at(&self, at: usize, msg: String) -> ParseError {
        let at = at.min(self.buf.len());
        let before = &self.buf[..at];
        let line = 1 + before.iter().filter(|&&c| c == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        ParseError {
            line,
            column: at - line_start + 1,
            msg,
        }
    }

    /// Reads the label value whose opening quote is at `open`: where it
    /// closes, or the error both formats report for it. `raw_newlines` is as
    /// in [`scan::quoted_end`].
    #[inline]
    pub(super) fn label_value(
        &self,
        b: &[u8],
        open: usize,
        raw_newlines: bool,
    ) -> Result<scan::Quoted, ParseError> {
        let q = match scan::quoted_end(b, open + 1, raw_newlines) {
            Ok(q) => q,
            Err((_, scan::QuoteError::Unterminated)) => {
                return Err(self.error_at(open, "unterminated label value".to_string()));
            }
            Err((at, scan::QuoteError::BadEscape)) => {
                return Err(self.error_at(at, "invalid escape sequence in label value".to_string()));
            }
        };
        if self.str_at(open + 1, q.end).is_none() {
            return Err(self.error_at(open + 1, "invalid UTF-8 in label value".to_string()));
        }
        Ok(q)
    }

    /// "`what`, got `<what is at byte at>`".
    #[cold]
    pub(super) fn expected(&self, at: usize, what: &str) -> ParseError {
        let got = self.describe(at);
        self.error_at(at, format!("{what}, got {got}"))
    }

    /// A short, quoted description of the input at byte `at`.
    #[cold]
    pub(super) fn describe(&self, at: usize) -> String {
        match self.buf.get(at) {
            None => "end of input".to_string(),
            Some(b'\n') => "end of line".to_string(),
            Some(_) => {
                let rest = &self.buf[at..];
                let mut end = rest
                    .iter()
                    .position(|&c| matches!(c, b' ' | b'\t' | b'\n'))
                    .unwrap_or(rest.len())
                    .clamp(1, 24);
                // Show at least the whole first character of the token.
                while end < rest.len() && (rest[end] & 0xc0) == 0x80 && end < 28 {
                    end += 1;
                }
                format!("{:?}", String::from_utf8_lossy(&rest[..end]))
            }
        }
    }

    /// Checks that the name at `span` differs from the sample's earlier label
    /// names. Exporters usually sort label names, so a name greater than the
    /// previous one needs no search.
    #[inline]
    pub(super) fn check_duplicate(
        &mut self,
        span: (usize, usize),
        sorted: &mut bool,
    ) -> Result<(), ParseError> {
        let buf = self.buf;
        let name = &buf[span.0..span.1];
        // The metric name is the `__name__` label, so spelling it out again
        // is a duplicate too.
        if name == b"__name__" {
            return Err(self.error_at(span.0, "duplicate label name \"__name__\"".to_string()));
        }
        if let Some(&(a, b)) = self.names.last() {
            if !ascending(&buf[a..b], name) {
                *sorted = false;
            }
            if !*sorted && self.seen_before(name) {
                let name = String::from_utf8_lossy(name).into_owned();
                return Err(self.error_at(span.0, format!("duplicate label name {name:?}")));
            }
        }
        self.names.push(span);
        Ok(())
    }

    /// Whether `name` is among the current sample's earlier label names:
    /// a search while they are few, a hash set (filled on first use) after.
    #[inline]
    fn seen_before(&mut self, name: &'a [u8]) -> bool {
        let buf = self.buf;
        if self.names.len() < HASHED_FROM {
            return self.names.iter().any(|&(a, b)| &buf[a..b] == name);
        }
        if self.seen.is_empty() {
            self.seen
                .extend(self.names.iter().map(|&(a, b)| &buf[a..b]));
        }
        !self.seen.insert(name)
    }

    /// Starts the label names of a new sample.
    #[inline]
    pub(super) fn clear_names(&mut self) {
        self.names.clear();
        if !self.seen.is_empty() {
            self.seen.clear();
        }
    }
}

/// Whether `a < b` bytewise. Label names are short and usually differ early,
/// so a plain loop beats a call to `memcmp`.
#[inline]
pub(super) fn ascending(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// Vouches for a sample's series text (`name{...}`, up to the brace that
/// closes its labels): true only for exactly the text of a series that a
/// parser of the same format accepted before. Any `FnMut(&[u8]) -> bool`
/// is one.
pub trait Vouch {
    /// Whether `raw` is exactly such a text.
    fn vouch(&mut self, raw: &[u8]) -> bool;

    /// The length of the series text the caller expects next, if it
    /// expects one (a scrape cache knows the order its target lists series
    /// in). The parser then asks about that many bytes first, when they end
    /// in a brace, instead of searching for the first `}`: a text vouched
    /// for is one the parser accepted, so its labels close at its end.
    fn expected_len(&mut self) -> Option<usize> {
        None
    }
}

impl<F: FnMut(&[u8]) -> bool> Vouch for F {
    fn vouch(&mut self, raw: &[u8]) -> bool {
        self(raw)
    }
}

/// What [`Parser::next_trusting`] asks about series texts.
pub type Known<'k> = &'k mut dyn Vouch;

impl<'a> Parser<'a> {
    /// The next entry, like [`Iterator::next`], but the labels of a sample
    /// whose series text `known` vouches for are not checked again.
    ///
    /// Checking labels is most of the parsing, and a scraper already knows
    /// nearly every series of a body from the previous scrape. Text that was
    /// accepted once is accepted again: the checks look at nothing but those
    /// bytes, and the parser would close the labels at the same brace (a
    /// valid series text ends at its closing brace, so no shorter piece of
    /// it is a valid series text). What follows the labels is parsed as usual.
    pub fn next_trusting(&mut self, known: Known<'_>) -> Option<Result<Entry<'a>, ParseError>> {
        self.advance(Some(known))
    }

    fn advance(&mut self, known: Option<Known<'_>>) -> Option<Result<Entry<'a>, ParseError>> {
        if self.done {
            return None;
        }
        let next = match self.format {
            Format::PromText => self.next_prom(known),
            Format::OpenMetrics => self.next_openmetrics(known),
        };
        match next {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// For a sample line at `start` whose series text `known` vouches for:
    /// the `{` that ends its name and the `}` that closes its labels.
    ///
    /// A vouched text is one a parser of this format accepted before, so
    /// its name ends at its first `{` unless a blank comes first (the text
    /// format allows blanks before the brace): the name needs no scan by
    /// character class. Its labels close at its end, so when `known`
    /// expects a length and vouches for that many bytes, that is the `}`;
    /// otherwise it is the first `}` (a brace inside a label value is then
    /// left to the usual path). `known` is taken once it is asked, so that
    /// a text it refused is not asked about again; it stays for the usual
    /// path when a blank (or a line without labels) comes before any `{`.
    #[inline]
    pub(super) fn vouched_series(
        &self,
        start: usize,
        known: &mut Option<Known<'_>>,
    ) -> Option<(usize, usize)> {
        let vouch = known.as_mut()?;
        let rest = self.buf.get(start..)?;
        let name_len = memchr::memchr3(b'{', b' ', b'\t', rest)?;
        if rest.get(name_len) != Some(&b'{') {
            return None;
        }
        let brace = start + name_len;
        // The text expected next, when it could be this one: asked first,
        // it needs no search for its closing brace.
        let expected = vouch
            .expected_len()
            .filter(|&n| n > name_len + 1 && rest.get(n - 1) == Some(&b'}'));
        if let Some(n) = expected
            && vouch.vouch(&rest[..n])
        {
            known.take();
            return Some((brace, start + n - 1));
        }
        let known = known.take()?;
        let close = scan::find_byte(self.buf, brace + 1, b'}')?;
        // A text refused at the expected length is not asked about again.
        if expected == Some(close + 1 - start) {
            return None;
        }
        known
            .vouch(&self.buf[start..=close])
            .then_some((brace, close))
    }

    /// The closing brace of labels that open at `open` (the byte after the
    /// `{`), if `known` vouches for the series text `buf[start..=brace]`.
    #[inline]
    pub(super) fn vouched_close(
        &self,
        start: usize,
        open: usize,
        known: Option<Known<'_>>,
    ) -> Option<usize> {
        let known = known?;
        let close = scan::find_byte(self.buf, open, b'}')?;
        known.vouch(&self.buf[start..=close]).then_some(close)
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.advance(None)
    }
}
