//! The Prometheus text format 0.0.4, line by line, with the leniency of
//! Prometheus 2.42's `promlex.l`: blanks and tabs between any two tokens,
//! blank lines, free comments, optional (and trailing) commas between
//! labels, raw newlines inside label values, and an integer millisecond
//! timestamp. Where Prometheus accepts a line but the scrape then fails
//! (blanks before a sample's name, `__name__` inside the braces, a repeated
//! label name) this parser fails at once.

use super::labels::unescape_cow;
use super::number::{parse_float, parse_timestamp_ms, plain_decimal};
use super::scan::{
    is_label_start, is_metric_start, label_name_end, line_end, metric_name_end, skip_blanks,
    token_end,
};
use super::{Entry, Known, MetricType, ParseError, Parser, SampleEntry};

impl<'a> Parser<'a> {
    /// The next entry, or `None` at the end of the body.
    pub(super) fn next_prom(
        &mut self,
        known: Option<Known<'_>>,
    ) -> Result<Option<Entry<'a>>, ParseError> {
        let b = self.buf;
        loop {
            let i = skip_blanks(b, self.pos);
            let Some(&c) = b.get(i) else {
                self.pos = i;
                return Ok(None);
            };
            match c {
                b'\n' => self.pos = i + 1,
                // Prometheus's lexer reads a NUL where a line may start as
                // the end of the body.
                0 => {
                    self.pos = b.len();
                    return Ok(None);
                }
                b'#' => {
                    if let Some(entry) = self.prom_comment(i)? {
                        return Ok(Some(entry));
                    }
                }
                // Prometheus keeps leading blanks in the metric name, which
                // then fails validation: the scrape fails either way.
                c if is_metric_start(c) && i == self.pos => {
                    return self.prom_sample(i, known).map(Some);
                }
                c if is_metric_start(c) => {
                    return Err(
                        self.error_at(self.pos, "metric name must start the line".to_string())
                    );
                }
                _ => return Err(self.expected(i, "expected metric name or comment")),
            }
        }
    }

    /// A line starting with `#` at `i`: HELP and TYPE become entries, other
    /// comments are skipped.
    fn prom_comment(&mut self, i: usize) -> Result<Option<Entry<'a>>, ParseError> {
        let b = self.buf;
        let end = line_end(b, i);
        self.pos = (end + 1).min(b.len());
        // `#` must be followed by blanks, then HELP or TYPE and blanks, for
        // the line to be metadata.
        let k = skip_blanks(b, i + 1);
        let line = &b[..end];
        let is_help = k > i + 1 && line[k..].starts_with(b"HELP");
        let is_type = k > i + 1 && line[k..].starts_with(b"TYPE");
        if !(is_help || is_type) || !matches!(line.get(k + 4), Some(b' ' | b'\t')) {
            return Ok(None);
        }
        let keyword = if is_help { "HELP" } else { "TYPE" };
        let name_start = skip_blanks(line, k + 4);
        if !line.get(name_start).is_some_and(|&c| is_metric_start(c)) {
            return Err(self.expected(name_start, &format!("expected metric name after {keyword}")));
        }
        let name_end = metric_name_end(line, name_start);
        let metric = self.ascii(name_start, name_end)?;
        // As in Prometheus, the byte after the name, whatever it is, is the
        // separator and the rest of the line is the text, except that a rest
        // of only blanks is no text at all.
        let text_start = if line[name_end..].iter().all(|&c| matches!(c, b' ' | b'\t')) {
            end
        } else {
            name_end + 1
        };
        let Some(text) = self.str_at(text_start, end) else {
            return Err(self.error_at(text_start, format!("{keyword} text is not valid UTF-8")));
        };
        if is_help {
            return Ok(Some(Entry::Help {
                metric,
                text: unescape_cow(text, false),
            }));
        }
        let kind = match text {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Unknown,
            _ => return Err(self.error_at(text_start, format!("invalid metric type {text:?}"))),
        };
        Ok(Some(Entry::Type { metric, kind }))
    }

    /// A sample line whose metric name starts at `start`.
    fn prom_sample(
        &mut self,
        start: usize,
        mut known: Option<Known<'_>>,
    ) -> Result<Entry<'a>, ParseError> {
        let b = self.buf;
        let (name, labels, series_end) = match self.vouched_series(start, &mut known) {
            Some((brace, close)) => (&b[start..brace], &b[brace + 1..close], close + 1),
            None => {
                let name_end = metric_name_end(b, start);
                let i = skip_blanks(b, name_end);
                if b.get(i) == Some(&b'{') {
                    let close = match self.vouched_close(start, i + 1, known) {
                        Some(close) => close,
                        None => self.prom_labels(i + 1)?,
                    };
                    (&b[start..name_end], &b[i + 1..close], close + 1)
                } else {
                    (&b[start..name_end], &b""[..], name_end)
                }
            }
        };
        let mut i = skip_blanks(b, series_end);
        let (value, value_end) = match plain_decimal(b, i) {
            Some((v, end)) if matches!(b.get(end), None | Some(b' ' | b'\t' | b'\n' | b'{')) => {
                (v, end)
            }
            _ => {
                let value_end = token_end(b, i, b" \t\n{");
                if value_end == i {
                    return Err(self.expected(i, "expected value after metric"));
                }
                match parse_float(&b[i..value_end]) {
                    Ok(v) => (v, value_end),
                    Err(e) => return Err(self.number_error(i, value_end, "value", e)),
                }
            }
        };
        i = skip_blanks(b, value_end);
        let mut timestamp_ms = None;
        if b.get(i).is_some_and(u8::is_ascii_digit) {
            let ts_end = token_end(b, i, b" \t\n");
            match parse_timestamp_ms(&b[i..ts_end]) {
                Ok(t) => timestamp_ms = Some(t),
                Err(e) => return Err(self.number_error(i, ts_end, "timestamp", e)),
            }
            i = skip_blanks(b, ts_end);
            if !matches!(b.get(i), None | Some(b'\n')) {
                return Err(self.expected(i, "expected end of line after timestamp"));
            }
        } else if !matches!(b.get(i), None | Some(b'\n')) {
            return Err(self.expected(i, "expected timestamp or end of line"));
        }
        self.pos = (i + 1).min(b.len());
        Ok(Entry::Sample(SampleEntry {
            series: &b[start..series_end],
            name,
            labels,
            value,
            timestamp_ms,
        }))
    }

    /// Checks the label pairs after the `{` at `i - 1`; returns the index of
    /// the closing `}`.
    fn prom_labels(&mut self, mut i: usize) -> Result<usize, ParseError> {
        let b = self.buf;
        self.clear_names();
        let mut sorted = true;
        loop {
            i = skip_blanks(b, i);
            match b.get(i) {
                Some(b'}') => return Ok(i),
                Some(&c) if is_label_start(c) => {}
                _ => return Err(self.expected(i, "expected label name or \"}\"")),
            }
            let name_end = label_name_end(b, i);
            self.check_duplicate((i, name_end), &mut sorted)?;
            i = skip_blanks(b, name_end);
            if b.get(i) != Some(&b'=') {
                return Err(self.expected(i, "expected \"=\" after label name"));
            }
            i = skip_blanks(b, i + 1);
            if b.get(i) != Some(&b'"') {
                return Err(self.expected(i, "expected label value"));
            }
            let q = self.label_value(b, i, true)?;
            i = skip_blanks(b, q.end + 1);
            if b.get(i) == Some(&b',') {
                i += 1;
            }
        }
    }
}
