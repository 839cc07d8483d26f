//! Backfilling: OpenMetrics text with a timestamp on every sample (what
//! `promtool tsdb create-blocks-from openmetrics` takes) into any
//! [`Appendable`].
//!
//! Input is read in pieces of about a megabyte cut at line ends, so a file
//! of any size streams through in constant memory; each piece is parsed by
//! [`crate::textparse`] in its OpenMetrics mode with line numbers counted
//! from the start of the whole input. Samples are appended in input order
//! and committed in batches; each series' samples must come in time order
//! (the store refuses the rest), but series may interleave. On the first bad
//! line the samples before it are committed and the error names that line:
//! an import is not all-or-nothing, and the progress callback tells how far
//! it got. Knows nothing of HTTP or files.

use std::io::BufRead;

use rustc_hash::FxHashMap;

use crate::model::{Label, LabelLimits, Labels, LabelsError, METRIC_NAME};
use crate::storage::{self, Appendable, Appender, SeriesRef};
use crate::textparse::{Entry, Format, Parser, SampleEntry};

/// Bytes of input parsed at a time.
const PIECE_BYTES: usize = 1 << 20;
/// Series remembered by their raw text; the cache starts over beyond this.
const CACHE_SERIES: usize = 1 << 16;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read input: {0}")]
    Read(#[from] std::io::Error),
    #[error("line {line}, column {column}: {msg}")]
    Parse {
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("line {line}: sample has no timestamp; every backfilled sample needs one")]
    MissingTimestamp { line: usize },
    #[error(
        "line {line}: out of order sample for {series} at {t_ms} ms: the store already has a later one"
    )]
    OutOfOrder {
        line: usize,
        series: String,
        t_ms: i64,
    },
    #[error(
        "line {line}: sample for {series} at {t_ms} ms repeats a timestamp with a different value"
    )]
    Duplicate {
        line: usize,
        series: String,
        t_ms: i64,
    },
    #[error("line {line}: sample for {series} at {t_ms} ms is older than the store keeps")]
    OutOfBounds {
        line: usize,
        series: String,
        t_ms: i64,
    },
    #[error(
        "line {line}: sample for {series} at {t_ms} ms is too old: the oldest accepted is {min_ms} ms"
    )]
    TooOld {
        line: usize,
        series: String,
        t_ms: i64,
        min_ms: i64,
    },
    #[error(
        "line {line}: sample for {series} at {t_ms} ms is too far in the future: the newest accepted is {max_ms} ms"
    )]
    TooNew {
        line: usize,
        series: String,
        t_ms: i64,
        max_ms: i64,
    },
    #[error("line {line}: {source}")]
    Labels {
        line: usize,
        #[source]
        source: LabelsError,
    },
    #[error("line {line}: storage refused the sample: {source}")]
    Storage {
        line: usize,
        #[source]
        source: storage::Error,
    },
    #[error("line {line}: storage refused the commit: {source}")]
    Commit {
        line: usize,
        #[source]
        source: storage::Error,
    },
    #[error("line {line}: input does not end with \"# EOF\"")]
    MissingEof { line: usize },
    #[error("line {line}: unexpected data after \"# EOF\"")]
    AfterEof { line: usize },
}

impl Error {
    /// The input line the error is about, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Read(_) => None,
            Error::Parse { line, .. }
            | Error::MissingTimestamp { line }
            | Error::OutOfOrder { line, .. }
            | Error::Duplicate { line, .. }
            | Error::OutOfBounds { line, .. }
            | Error::TooOld { line, .. }
            | Error::TooNew { line, .. }
            | Error::Labels { line, .. }
            | Error::Storage { line, .. }
            | Error::Commit { line, .. }
            | Error::MissingEof { line }
            | Error::AfterEof { line } => Some(*line),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Samples per commit.
    pub batch_samples: usize,
    /// The number of the input's first line, for input that continues an
    /// earlier piece (1 for a whole file).
    pub first_line: usize,
    /// Whether the input must end with `# EOF`. A piece of a larger file
    /// that is not its end has none.
    pub require_eof: bool,
    /// Bounds on each series' labels (none by default).
    pub label_limits: LabelLimits,
    /// The oldest and newest sample times accepted, in milliseconds (any
    /// by default).
    pub min_time_ms: i64,
    pub max_time_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_samples: 100_000,
            first_line: 1,
            require_eof: true,
            label_limits: LabelLimits::default(),
            min_time_ms: i64::MIN,
            max_time_ms: i64::MAX,
        }
    }
}

/// How far an import got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Samples committed.
    pub samples: u64,
    /// Lines read, `# EOF` included.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Oldest and newest committed sample, in milliseconds.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
}

/// Appends every sample of `input` to `store`, committing every
/// `opts.batch_samples` samples and calling `progress` after each commit.
/// On error the samples before the bad line are committed (and reported to
/// `progress`) and the rest of the input is not read.
pub fn import_openmetrics(
    store: &dyn Appendable,
    mut input: impl BufRead,
    opts: &Options,
    progress: &mut dyn FnMut(&ImportStats),
) -> Result<ImportStats, Error> {
    let mut run = Run {
        store,
        app: Some(store.appender()),
        opts,
        stats: ImportStats::default(),
        pending: Pending::default(),
        cache: FxHashMap::default(),
        progress,
    };
    let mut piece: Vec<u8> = Vec::with_capacity(PIECE_BYTES + 4096);
    // Lines consumed before the current piece.
    let mut before = opts.first_line.saturating_sub(1);
    let mut seen_eof = false;
    loop {
        piece.clear();
        let mut lines = 0usize;
        let mut at_end = false;
        while piece.len() < PIECE_BYTES {
            let start = piece.len();
            let n = match input.read_until(b'\n', &mut piece) {
                Ok(n) => n,
                Err(e) => return run.fail(Error::Read(e)),
            };
            if n == 0 {
                at_end = true;
                break;
            }
            lines += 1;
            run.stats.lines += 1;
            run.stats.bytes += n as u64;
            let line = &piece[start..];
            if line == b"# EOF\n" || line == b"# EOF" {
                piece.truncate(start);
                seen_eof = true;
                let mut probe = [0u8; 1];
                match input.read(&mut probe) {
                    Ok(0) => {}
                    Ok(_) => {
                        run.process(&mut piece, before)?;
                        return run.fail(Error::AfterEof {
                            line: before + lines + 1,
                        });
                    }
                    Err(e) => return run.fail(Error::Read(e)),
                }
                at_end = true;
                break;
            }
        }
        run.process(&mut piece, before)?;
        before += lines;
        if at_end {
            break;
        }
    }
    if !seen_eof && opts.require_eof {
        return run.fail(Error::MissingEof { line: before + 1 });
    }
    run.commit(before)?;
    Ok(run.stats)
}

/// Counts of the uncommitted batch.
#[derive(Default)]
struct Pending {
    samples: u64,
    min_time: i64,
    max_time: i64,
}

struct Run<'a, 'p> {
    store: &'a dyn Appendable,
    app: Option<Box<dyn Appender>>,
    opts: &'a Options,
    stats: ImportStats,
    pending: Pending,
    // Raw `name{labels}` text to the parsed labels and the store's reference.
    cache: FxHashMap<Box<[u8]>, (Labels, SeriesRef)>,
    progress: &'p mut dyn FnMut(&ImportStats),
}

impl Run<'_, '_> {
    /// Parses and appends one piece of whole lines, whose first line is
    /// line `before + 1` of the input.
    fn process(&mut self, piece: &mut Vec<u8>, before: usize) -> Result<(), Error> {
        if piece.is_empty() {
            return Ok(());
        }
        if piece.last() != Some(&b'\n') {
            piece.push(b'\n');
        }
        // The parser wants a whole OpenMetrics body; the real `# EOF` has
        // been taken off, so every piece gets one.
        piece.extend_from_slice(b"# EOF\n");
        let body: &[u8] = piece;
        for entry in Parser::new(body, Format::OpenMetrics) {
            let sample = match entry {
                Ok(Entry::Sample(s)) => s,
                Ok(_) => continue,
                Err(e) => {
                    return self.fail(Error::Parse {
                        line: before + e.line,
                        column: e.column,
                        msg: e.msg,
                    });
                }
            };
            if let Err(e) = self.append(&sample) {
                let line = before + line_of(body, sample.series);
                return self.fail(e.at(line));
            }
            if self.pending.samples >= self.opts.batch_samples as u64 {
                self.commit(before + line_of(body, sample.series))?;
            }
        }
        Ok(())
    }

    fn append(&mut self, s: &SampleEntry<'_>) -> Result<(), LineError> {
        let t = s.timestamp_ms.ok_or(LineError::MissingTimestamp)?;
        if !self.cache.contains_key(s.series) {
            if self.cache.len() >= CACHE_SERIES {
                self.cache.clear();
            }
            // The parser has refused repeated and malformed names; sorting
            // once keeps this linear-logarithmic in the number of labels.
            let mut pairs = vec![Label {
                name: METRIC_NAME.to_string(),
                value: s.name().to_string(),
            }];
            pairs.extend(s.labels().map(|(name, value)| Label {
                name: name.to_string(),
                value: value.into_owned(),
            }));
            let labels = Labels::from_unsorted(pairs).map_err(LineError::Labels)?;
            self.opts
                .label_limits
                .check(&labels)
                .map_err(LineError::Labels)?;
            self.cache.insert(s.series.into(), (labels, 0));
        }
        let Some((labels, r)) = self.cache.get_mut(s.series) else {
            return Ok(());
        };
        if t < self.opts.min_time_ms {
            return Err(LineError::TooOld(
                labels.to_string(),
                t,
                self.opts.min_time_ms,
            ));
        }
        if t > self.opts.max_time_ms {
            return Err(LineError::TooNew(
                labels.to_string(),
                t,
                self.opts.max_time_ms,
            ));
        }
        let Some(app) = self.app.as_mut() else {
            return Ok(());
        };
        match app.append(*r, labels, t, s.value) {
            Ok(nr) => *r = nr,
            Err(e) => {
                let series = labels.to_string();
                return Err(match e {
                    storage::Error::OutOfOrderSample => LineError::OutOfOrder(series, t),
                    storage::Error::DuplicateSampleForTimestamp => LineError::Duplicate(series, t),
                    storage::Error::OutOfBounds => LineError::OutOfBounds(series, t),
                    other => LineError::Storage(other),
                });
            }
        }
        let p = &mut self.pending;
        if p.samples == 0 {
            p.min_time = t;
            p.max_time = t;
        } else {
            p.min_time = p.min_time.min(t);
            p.max_time = p.max_time.max(t);
        }
        p.samples += 1;
        Ok(())
    }

    /// Commits the batch, reports progress and starts the next batch.
    fn commit(&mut self, line: usize) -> Result<(), Error> {
        let Some(app) = self.app.take() else {
            return Ok(());
        };
        app.commit()
            .map_err(|source| Error::Commit { line, source })?;
        let p = std::mem::take(&mut self.pending);
        if p.samples > 0 {
            let s = &mut self.stats;
            s.samples += p.samples;
            s.min_time = Some(s.min_time.map_or(p.min_time, |m| m.min(p.min_time)));
            s.max_time = Some(s.max_time.map_or(p.max_time, |m| m.max(p.max_time)));
        }
        (self.progress)(&self.stats);
        self.app = Some(self.store.appender());
        Ok(())
    }

    /// Commits what came before the error, then returns it.
    fn fail<T>(&mut self, e: Error) -> Result<T, Error> {
        let line = e.line().unwrap_or(0);
        self.commit(line)?;
        Err(e)
    }
}

/// An append error before its line number is known.
enum LineError {
    MissingTimestamp,
    OutOfOrder(String, i64),
    Duplicate(String, i64),
    OutOfBounds(String, i64),
    TooOld(String, i64, i64),
    TooNew(String, i64, i64),
    Labels(LabelsError),
    Storage(storage::Error),
}

impl LineError {
    fn at(self, line: usize) -> Error {
        match self {
            LineError::MissingTimestamp => Error::MissingTimestamp { line },
            LineError::OutOfOrder(series, t_ms) => Error::OutOfOrder { line, series, t_ms },
            LineError::Duplicate(series, t_ms) => Error::Duplicate { line, series, t_ms },
            LineError::OutOfBounds(series, t_ms) => Error::OutOfBounds { line, series, t_ms },
            LineError::TooOld(series, t_ms, min_ms) => Error::TooOld {
                line,
                series,
                t_ms,
                min_ms,
            },
            LineError::TooNew(series, t_ms, max_ms) => Error::TooNew {
                line,
                series,
                t_ms,
                max_ms,
            },
            LineError::Labels(source) => Error::Labels { line, source },
            LineError::Storage(source) => Error::Storage { line, source },
        }
    }
}

/// The 1-based line of `body` on which `part` (a slice of it) starts. Only
/// called on errors and commits, so counting is fine.
fn line_of(body: &[u8], part: &[u8]) -> usize {
    let offset = (part.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    let offset = offset.min(body.len());
    1 + body[..offset].iter().filter(|&&c| c == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::{Head, HeadOptions};

    /// What the module does, in one import.
    #[test]
    fn two_samples_of_one_series_are_imported() {
        let head = Head::new(HeadOptions::default());
        let text =
            b"# TYPE up gauge\nup{job=\"a\"} 1 1700000000\nup{job=\"a\"} 0 1700000015.5\n# EOF\n";
        let stats = import_openmetrics(&head, &text[..], &Options::default(), &mut |_| {}).unwrap();
        assert_eq!(stats.samples, 2);
        assert_eq!(
            (stats.min_time, stats.max_time),
            (Some(1_700_000_000_000), Some(1_700_000_015_500))
        );
    }

    fn run(text: &str, opts: &Options) -> (Head, Result<ImportStats, Error>, Vec<ImportStats>) {
        let head = Head::new(HeadOptions::default());
        let mut seen = Vec::new();
        let r = import_openmetrics(&head, text.as_bytes(), opts, &mut |s| seen.push(*s));
        (head, r, seen)
    }

    #[test]
    fn batches_commit_and_report_progress() {
        let mut text = String::new();
        for i in 0..25 {
            text.push_str(&format!("a {i} {}\n", 1000 + i));
        }
        text.push_str("# EOF\n");
        let opts = Options {
            batch_samples: 10,
            ..Options::default()
        };
        let (_, r, seen) = run(&text, &opts);
        let st = r.unwrap();
        assert_eq!(st.samples, 25);
        assert_eq!(st.lines, 26);
        let counts: Vec<u64> = seen.iter().map(|s| s.samples).collect();
        assert_eq!(counts, [10, 20, 25]);
    }

    #[test]
    fn line_numbers_count_from_first_line() {
        let opts = Options {
            first_line: 101,
            ..Options::default()
        };
        let (_, r, _) = run("a 1 1\na 2\n# EOF\n", &opts);
        let e = r.unwrap_err();
        assert_eq!(e.line(), Some(102), "{e}");
        assert!(matches!(e, Error::MissingTimestamp { .. }), "{e}");
    }

    /// A series with 100k labels: accepted without limits, refused with the
    /// limit's error with them. Either way one sort, not a search per label.
    #[test]
    fn issue_16_a_hundred_thousand_labels_cost_one_sort() {
        let pairs: Vec<String> = (0..100_000).rev().map(|i| format!("l{i}=\"v\"")).collect();
        let line = format!("wide{{{}}} 1 1\n# EOF\n", pairs.join(","));
        let (head, r, _) = run(&line, &Options::default());
        assert_eq!(r.unwrap().samples, 1);
        assert_eq!(head.stats().num_series, 1);
        let opts = Options {
            label_limits: LabelLimits {
                max_labels: 256,
                ..LabelLimits::default()
            },
            ..Options::default()
        };
        let (head, r, _) = run(&line, &opts);
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: label_limit exceeded (metric: wide, number of labels: 100001, limit: 256)"
        );
        assert_eq!(head.stats().num_series, 0);
    }

    #[test]
    fn samples_outside_the_window_are_refused() {
        let opts = Options {
            min_time_ms: 10_000,
            max_time_ms: 20_000,
            ..Options::default()
        };
        let (_, r, _) = run("a 1 10\na 1 9.999\n# EOF\n", &opts);
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: sample for a at 9999 ms is too old: the oldest accepted is 10000 ms"
        );
        let (_, r, _) = run("a 1 20\na 1 20.001\n# EOF\n", &opts);
        assert!(matches!(r, Err(Error::TooNew { line: 2, .. })));
    }

    #[test]
    fn pieces_split_at_line_ends_keep_line_numbers() {
        // More than one piece: the error is on the last line.
        let mut text = String::new();
        let n = PIECE_BYTES / 20 + 10;
        for i in 0..n {
            text.push_str(&format!("metric_{:08} 1 {}\n", i % 7, 1000 + i));
        }
        text.push_str("bad line\n# EOF\n");
        let (head, r, _) = run(&text, &Options::default());
        let e = r.unwrap_err();
        assert_eq!(e.line(), Some(n + 1), "{e}");
        assert_eq!(head.stats().num_series, 7);
    }
}
