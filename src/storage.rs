//! The storage seam: traits only.
//!
//! The scraper writes through [`Appendable`]/[`Appender`]; the query engine
//! and the HTTP API read through [`Queryable`]/[`Querier`]. Nothing here knows
//! how samples are kept; `tsdb` implements both sides.
//!
//! ```
//! use raymon::model::{Labels, Matcher};
//! use raymon::storage::{Appendable, Queryable};
//!
//! // Anything that stores samples is used through the two traits alone.
//! fn store_and_read(store: &(impl Appendable + Queryable)) -> usize {
//!     let l = Labels::from_pairs([("__name__", "up"), ("job", "ray")]);
//!     let mut app = store.appender();
//!     app.append(0, &l, 1_000, 1.0).unwrap();
//!     app.commit().unwrap(); // Consumes the appender: it cannot be reused.
//!     let q = store.querier(0, 2_000).unwrap();
//!     q.select(&[Matcher::equal("job", "ray")]).unwrap().len()
//! }
//! assert_eq!(store_and_read(&raymon::tsdb::Head::default()), 1);
//! ```

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use crate::model::{Labels, Matcher, Sample};

/// A handle that the store hands out to refer to a series cheaply.
/// Zero means "not known yet".
pub type SeriesRef = u64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("out of order sample")]
    OutOfOrderSample,
    #[error("duplicate sample for timestamp")]
    DuplicateSampleForTimestamp,
    #[error("out of bounds")]
    OutOfBounds,
    /// A series needs at least one label; also what a store answers for an
    /// append by a reference it does not know, given no labels to fall back on.
    #[error("empty labelset")]
    EmptyLabelset,
    #[error("storage is read-only: {reason}")]
    ReadOnly { reason: String },
    #[error("storage io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage error: {0}")]
    Other(String),
    /// A selection given up because it could not be finished before
    /// [`SelectHints::budget`].
    #[error("selection over its budget")]
    OverBudget,
}

impl Error {
    /// Whether the sample was rejected on its own merits (the scrape goes on)
    /// rather than because the store cannot take writes.
    pub fn is_sample_error(&self) -> bool {
        matches!(
            self,
            Error::OutOfOrderSample
                | Error::DuplicateSampleForTimestamp
                | Error::OutOfBounds
                | Error::EmptyLabelset
        )
    }
}

/// Samples appended by reference alone that a commit refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    pub out_of_order: u64,
    pub duplicate: u64,
    /// The reference named no series, in memory or on disk.
    pub unknown: u64,
}

impl Rejected {
    pub fn total(&self) -> u64 {
        self.out_of_order + self.duplicate + self.unknown
    }
}

/// Something that accepts writes.
pub trait Appendable: Send + Sync {
    fn appender(&self) -> Box<dyn Appender>;
}

/// A batch of appends that becomes visible atomically on [`Appender::commit`].
///
/// `commit` and `rollback` consume the appender: it must not be reused
/// afterwards (Prometheus `storage.Appender`).
pub trait Appender: Send {
    /// Appends a sample. `hint` is the reference an earlier append returned for
    /// the same labels, or 0. Returns the reference for next time.
    ///
    /// With a hint and empty `labels` (a scrape's known series) the store
    /// may check the sample only at commit, which then reports it in
    /// [`Rejected`] instead of here.
    fn append(
        &mut self,
        hint: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Error>;
    /// Makes the batch visible; returns the samples it refused at commit.
    fn commit(self: Box<Self>) -> Result<Rejected, Error>;
    fn rollback(self: Box<Self>);
}

/// One series with its samples in a time range, ascending by time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// What [`Querier::select_prepared`] does to each selected series before
/// handing it over; it may run on another thread than the caller's, and
/// returns a count that is handed over with the series.
pub type Prepare<'a> = &'a (dyn Fn(&mut Series) -> usize + Sync);

/// What a caller of [`Querier::select_prepared`] needs of the range, beyond
/// `[mint, maxt]` itself (Prometheus `storage.SelectHints`). A store may
/// use it to read less and hand over fewer samples; it must not change
/// what a caller that honours it computes. The default asks for everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// Of the samples at or before this time only the latest is needed, and
    /// every one after it: a latest-value selection's first reference time
    /// (its first step less its offset). A store may leave out a series'
    /// earlier samples when it knows a later one at or before this time.
    pub latest_from: Option<i64>,
    /// Of each series' labels only those with these names are looked at,
    /// and never a whole label set: a store may leave the others out of
    /// the labels it hands over (not out of their order, which stays that
    /// of the whole label sets). An aggregation by a few labels over many
    /// series needs 3 or 4 of their 12 (Prometheus `SelectHints.By` and
    /// `Grouping`).
    pub labels: Option<Arc<[String]>>,
    /// When the caller will give up: a query's first try on a thread that
    /// must not be held long. A store may then answer
    /// [`Error::OverBudget`] for a selection it cannot finish by this time,
    /// before doing the work the caller would throw away.
    pub budget: Option<Instant>,
}

/// Something that can be read from.
pub trait Queryable: Send + Sync {
    /// A reader for samples with `mint <= t <= maxt` (milliseconds).
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, Error>;
    /// Whether a reader may have to wait long for the store now (a writer
    /// is growing its index for a burst of new series): a caller on a
    /// thread that must not stall (the one that scrapes) should read from
    /// another thread.
    fn may_block_readers(&self) -> bool {
        false
    }
}

/// A consistent read view over a time range.
pub trait Querier: Send {
    /// Series whose labels satisfy every matcher and that have samples in the
    /// range, sorted by labels. Stale markers are included as samples.
    fn select(&self, matchers: &[Matcher]) -> Result<Vec<Series>, Error>;
    /// The series [`Querier::select`] returns, in its order, handed to `f`
    /// one at a time as they are read, until `f` breaks: a caller that
    /// consumes each series before the next holds one series' samples
    /// instead of all of them. A store that decodes lazily should override
    /// this; the default reads everything first.
    fn select_each(
        &self,
        matchers: &[Matcher],
        f: &mut dyn FnMut(Series) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        for s in self.select(matchers)? {
            if f(s).is_break() {
                break;
            }
        }
        Ok(())
    }
    /// [`Querier::select_each`] with `prep` applied to each series before
    /// `f` gets it, together with what `prep` returned. A store that
    /// decodes on a thread beside the caller may run `prep` there too, so
    /// that the caller's work on one series that needs nothing but that
    /// series (a range function's value at every step) shares the cores;
    /// `f` still gets the series one at a time and in order. `hints` say
    /// what the caller needs; the default reads everything in the range.
    fn select_prepared(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
        prep: Prepare<'_>,
        f: &mut dyn FnMut(Series, usize) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let _ = hints;
        self.select_each(matchers, &mut |mut s| {
            let n = prep(&mut s);
            f(s, n)
        })
    }
    /// The label sets of the series that match and hold data in the range,
    /// sorted, without their samples (`/api/v1/series`). A store may answer
    /// as Prometheus does for that endpoint: by chunk time ranges, without
    /// looking at single samples.
    fn series(&self, matchers: &[Matcher]) -> Result<Vec<Labels>, Error> {
        Ok(self
            .select(matchers)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }
    /// Sorted label names of series that match (all series when `matchers` is empty).
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, Error>;
    /// Sorted values of `name` among series that match.
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, Error>;
}
