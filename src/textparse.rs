//! The exposition parser: a scrape body (`&[u8]`) in, borrowed [`Entry`]s out.
//!
//! It reads the Prometheus text format 0.0.4 and OpenMetrics 1.0, following
//! the lexers of Prometheus 2.42 (`model/textparse/promlex.l` and
//! `openmetricslex.l`) for what is accepted and what is an error. It knows
//! nothing of scraping, relabeling or storage: it does no IO and keeps no
//! state between bodies.
//!
//! Entries borrow the body, so they cannot outlive it, and the common path
//! (no escapes in label values) allocates nothing per sample. Label pairs are
//! checked while parsing and decoded lazily by [`SampleEntry::labels`].
//!
//! Choices where the formats leave room, each checked against a real
//! Prometheus 2.42 scraper (`tests/data/textparse/prometheus-2.42-verdicts.json`):
//! - Values are Go's `ParseFloat` without hex floats or `_` (Prometheus
//!   refuses any `p`, `P` or `_`); overflow is an error; `NaN` takes no sign.
//! - Text-format timestamps are unsigned integer milliseconds; OpenMetrics
//!   ones are float seconds, truncated to milliseconds.
//! - An unknown escape such as `\t` is kept as written; a backslash before
//!   the end of the line is an error.
//! - What Prometheus only rejects after parsing (blanks before a sample's
//!   name, `__name__` or a repeated name inside the braces) fails here.
//!
//! ```
//! use raymon::textparse::{Entry, Format, Parser};
//!
//! let body = b"# TYPE up gauge\nup{job=\"ray\"} 1\n";
//! let mut values = Vec::new();
//! for entry in Parser::new(body, Format::PromText) {
//!     if let Entry::Sample(s) = entry.unwrap() {
//!         let labels: Vec<_> = s.labels().collect();
//!         values.push((s.name(), labels[0].1.to_string(), s.value));
//!     }
//! }
//! assert_eq!(values, [("up", "ray".to_string(), 1.0)]);
//! ```

mod entry;
mod labels;
mod number;
mod openmetrics;
mod parser;
mod prom;
mod scan;
#[cfg(test)]
mod tests;

pub use entry::{Entry, Format, MetricType, ParseError, SampleEntry};
pub use labels::LabelIter;
pub use parser::{Known, Parser, Vouch};
