//! OpenMetrics 1.0 text, line by line, as strict as Prometheus 2.42's
//! `openmetricslex.l`: single spaces, no blank lines or free comments,
//! commas exactly between labels, float-second timestamps, exemplars
//! (checked, then dropped; only on `_total` and `_bucket` samples), `# UNIT`
//! (a suffix of the metric name), and a final `# EOF` with nothing after.

use super::labels::unescape_cow;
use super::number::{parse_float, plain_decimal};
use super::scan::{
    is_label_start, is_metric_start, label_name_end, line_end, metric_name_end, token_end,
};
use super::{Entry, Known, MetricType, ParseError, Parser, SampleEntry};

impl<'a> Parser<'a> {
    /// The next entry, or `None` after `# EOF`.
    pub(super) fn next_openmetrics(
        &mut self,
        known: Option<Known<'_>>,
    ) -> Result<Option<Entry<'a>>, ParseError> {
        let i = self.pos;
        match self.buf.get(i) {
            None => Err(self.error_at(i, "data does not end with \"# EOF\"".to_string())),
            Some(b'#') => self.om_comment(i),
            Some(&c) if is_metric_start(c) => self.om_sample(i, known).map(Some),
            Some(_) => Err(self.expected(i, "expected metric name or \"# \"")),
        }
    }

    /// A `# ` line at `i`: HELP, TYPE, UNIT or EOF.
    fn om_comment(&mut self, i: usize) -> Result<Option<Entry<'a>>, ParseError> {
        let b = self.buf;
        if b.get(i + 1) != Some(&b' ') {
            return Err(self.expected(i + 1, "expected \" \" after \"#\""));
        }
        let k = i + 2;
        let rest = &b[k.min(b.len())..];
        if rest.starts_with(b"EOF") {
            let mut j = k + 3;
            if b.get(j) == Some(&b'\n') {
                j += 1;
            }
            if j < b.len() {
                return Err(self.error_at(j, "unexpected data after \"# EOF\"".to_string()));
            }
            self.pos = j;
            return Ok(None);
        }
        let keyword = match rest.get(..5) {
            Some(b"HELP ") => "HELP",
            Some(b"TYPE ") => "TYPE",
            Some(b"UNIT ") => "UNIT",
            _ => return Err(self.expected(k, "expected HELP, TYPE, UNIT or EOF after \"# \"")),
        };
        let name_start = k + 5;
        if !b.get(name_start).is_some_and(|&c| is_metric_start(c)) {
            return Err(self.expected(name_start, &format!("expected metric name after {keyword}")));
        }
        let name_end = metric_name_end(b, name_start);
        let metric = self.ascii(name_start, name_end)?;
        if b.get(name_end) != Some(&b' ') {
            return Err(self.expected(
                name_end,
                &format!("expected \" \" and text after metric name in {keyword}"),
            ));
        }
        let text_start = name_end + 1;
        let end = line_end(b, text_start);
        if end >= b.len() {
            return Err(self.expected(end, "expected end of line"));
        }
        self.pos = end + 1;
        let Some(text) = self.str_at(text_start, end) else {
            return Err(self.error_at(text_start, format!("{keyword} text is not valid UTF-8")));
        };
        match keyword {
            "HELP" => Ok(Some(Entry::Help {
                metric,
                text: unescape_cow(text, true),
            })),
            "TYPE" => {
                let kind = match text {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "histogram" => MetricType::Histogram,
                    "gaugehistogram" => MetricType::GaugeHistogram,
                    "summary" => MetricType::Summary,
                    "info" => MetricType::Info,
                    "stateset" => MetricType::StateSet,
                    "unknown" => MetricType::Unknown,
                    _ => {
                        return Err(
                            self.error_at(text_start, format!("invalid metric type {text:?}"))
                        );
                    }
                };
                Ok(Some(Entry::Type { metric, kind }))
            }
            _ => {
                // A unit must end the metric name, after an underscore.
                let ok = text.is_empty()
                    || (metric.len() > text.len()
                        && metric.ends_with(text)
                        && metric.as_bytes()[metric.len() - text.len() - 1] == b'_');
                if !ok {
                    return Err(self.error_at(
                        text_start,
                        format!("unit {text:?} is not a suffix of metric {metric:?}"),
                    ));
                }
                Ok(Some(Entry::Unit { metric, unit: text }))
            }
        }
    }

    /// A sample line whose metric name starts at `start`.
    fn om_sample(
        &mut self,
        start: usize,
        mut known: Option<Known<'_>>,
    ) -> Result<Entry<'a>, ParseError> {
        let b = self.buf;
        let (name, labels, series_end) = match self.vouched_series(start, &mut known) {
            Some((brace, close)) => (&b[start..brace], &b[brace + 1..close], close + 1),
            None => {
                let name_end = metric_name_end(b, start);
                if b.get(name_end) == Some(&b'{') {
                    let close = match self.vouched_close(start, name_end + 1, known) {
                        Some(close) => close,
                        None => self.om_labels(name_end + 1, true)?,
                    };
                    (&b[start..name_end], &b[name_end + 1..close], close + 1)
                } else {
                    (&b[start..name_end], &b""[..], name_end)
                }
            }
        };
        let (value, mut i) = self.om_number(series_end, "value")?;
        let mut timestamp_ms = None;
        if b.get(i) == Some(&b' ') && !b[i + 1..].starts_with(b"# {") {
            let (ts, end) = self.om_number(i, "timestamp")?;
            if !ts.is_finite() {
                return Err(self.error_at(i + 1, format!("invalid timestamp {ts}")));
            }
            // Go's int64(ts * 1000): truncation toward zero.
            timestamp_ms = Some((ts * 1000.0) as i64);
            i = end;
        }
        if b.get(i) == Some(&b' ') {
            // An exemplar: ` # {labels} value [timestamp]`, checked and dropped.
            if !b[i + 1..].starts_with(b"# {") {
                return Err(self.expected(i + 1, "expected \"# {\" (an exemplar) after space"));
            }
            // Prometheus 2.42 takes exemplars on counters and buckets only.
            if !(name.ends_with(b"_total") || name.ends_with(b"_bucket")) {
                return Err(self.error_at(
                    i + 1,
                    format!(
                        "metric name {:?} does not support exemplars",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
            let close = self.om_labels(i + 4, false)?;
            let (_, end) = self.om_number(close + 1, "exemplar value")?;
            i = end;
            if b.get(i) == Some(&b' ') {
                let (_, end) = self.om_number(i, "exemplar timestamp")?;
                i = end;
            }
        }
        if b.get(i) != Some(&b'\n') {
            return Err(self.expected(i, "expected end of line"));
        }
        self.pos = i + 1;
        Ok(Entry::Sample(SampleEntry {
            series: &b[start..series_end],
            name,
            labels,
            value,
            timestamp_ms,
        }))
    }

    /// ` number` at `i` (the space included); returns it and where it ends.
    fn om_number(&self, i: usize, what: &str) -> Result<(f64, usize), ParseError> {
        let b = self.buf;
        if b.get(i) != Some(&b' ') {
            return Err(self.expected(i, &format!("expected \" \" and {what}")));
        }
        if let Some((v, end)) = plain_decimal(b, i + 1)
            && matches!(b.get(end), None | Some(b' ' | b'\n'))
        {
            return Ok((v, end));
        }
        let end = token_end(b, i + 1, b" \n");
        if end == i + 1 {
            return Err(self.expected(i + 1, &format!("expected {what}")));
        }
        match parse_float(&b[i + 1..end]) {
            Ok(v) => Ok((v, end)),
            Err(e) => Err(self.number_error(i + 1, end, what, e)),
        }
    }

    /// Checks the label pairs after the `{` at `i - 1`; returns the index of
    /// the closing `}`. Exemplar labels skip the duplicate check.
    fn om_labels(&mut self, mut i: usize, check_duplicates: bool) -> Result<usize, ParseError> {
        let b = self.buf;
        self.clear_names();
        let mut sorted = true;
        if b.get(i) == Some(&b'}') {
            return Ok(i);
        }
        loop {
            if !b.get(i).is_some_and(|&c| is_label_start(c)) {
                return Err(self.expected(i, "expected label name"));
            }
            let name_end = label_name_end(b, i);
            if check_duplicates {
                self.check_duplicate((i, name_end), &mut sorted)?;
            }
            if b.get(name_end) != Some(&b'=') {
                return Err(self.expected(name_end, "expected \"=\" after label name"));
            }
            let open = name_end + 1;
            if b.get(open) != Some(&b'"') {
                return Err(self.expected(open, "expected label value"));
            }
            let q = self.label_value(b, open, false)?;
            i = q.end + 1;
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => return Ok(i),
                _ => return Err(self.expected(i, "expected \",\" or \"}\" after label value")),
            }
        }
    }
}
