//! What the parser yields: [`Entry`] (a sample, a type, help or unit line),
//! [`SampleEntry`] borrowing the body, [`Format`], [`MetricType`] and
//! [`ParseError`] with its line and column.

use std::borrow::Cow;

use super::*;

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4.
    PromText,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// Picks the parser for a response's `Content-Type`, as Prometheus does:
    /// `application/openmetrics-text` is OpenMetrics, anything else (missing,
    /// `text/plain`, unknown) is the text format.
    pub fn from_content_type(ct: &str) -> Format {
        let media_type = ct.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::PromText
        }
    }
}

/// A metric family's type as given by `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `untyped` in the text format, `unknown` in OpenMetrics.
    Unknown,
}

impl MetricType {
    /// The name Prometheus reports in `/api/v1/metadata`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// One meaningful line of a body. Plain comments and `# EOF` are skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP metric text`, with the text unescaped.
    Help { metric: &'a str, text: Cow<'a, str> },
    /// `# TYPE metric kind`.
    Type { metric: &'a str, kind: MetricType },
    /// `# UNIT metric unit` (OpenMetrics only).
    Unit { metric: &'a str, unit: &'a str },
    /// A sample line.
    Sample(SampleEntry<'a>),
}

/// One sample line, borrowing the body.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleEntry<'a> {
    /// The raw bytes of `name{labels}` exactly as in the body, from the first
    /// byte of the name to the closing brace (or the end of the name). The
    /// scrape cache keys on it, so it must not be normalised.
    pub series: &'a [u8],
    /// The metric name's bytes: ASCII name characters, which the parser
    /// checked byte by byte. [`Self::name`] reads them as text; keeping
    /// bytes spares a sample of a known series a UTF-8 check, as only a new
    /// series needs its name as text.
    pub(super) name: &'a [u8],
    /// The text between the braces, already checked by the parser (or
    /// vouched for as text it accepted before), so valid UTF-8. It is kept
    /// as bytes so that a sample whose series the caller knows costs no
    /// UTF-8 check: only [`Self::labels`] reads it as text.
    pub(super) labels: &'a [u8],
    /// The value. A NaN is `f64::NAN`, never the staleness marker.
    pub value: f64,
    /// Milliseconds since the epoch; OpenMetrics' float seconds are converted.
    pub timestamp_ms: Option<i64>,
}

impl<'a> SampleEntry<'a> {
    /// The metric name.
    pub fn name(&self) -> &'a str {
        // The parser took only `[a-zA-Z0-9_:]` bytes into the name, so this
        // check cannot fail.
        std::str::from_utf8(self.name).unwrap_or_default()
    }

    /// The label pairs in the order they appear, without `__name__`. Values
    /// are borrowed from the body unless they contain an escape.
    pub fn labels(&self) -> LabelIter<'a> {
        LabelIter::new(self.raw_labels())
    }

    /// The raw text between the braces (empty without braces).
    pub fn raw_labels(&self) -> &'a str {
        // The parser checked these bytes (each label value as it was read,
        // the names and separators being ASCII) or was told they are a
        // series text it accepted before, so this check cannot fail.
        std::str::from_utf8(self.labels).unwrap_or_default()
    }
}

/// A malformed body. Lines and columns count from 1; columns count bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub msg: String,
}
