//! How a selector's matchers are handed to storage: equalities and other
//! matchers that need a label to be set first, so an unknown metric name
//! ends the index lookup before any other matcher is looked at.
//!
//! The parser puts the metric name last, and Ray's dashboards add
//! `WorkerId=~".*"` and the like to most selectors; the index accepts such
//! a matcher without a look at the label's values when none of them has a
//! newline (`crate::tsdb::index`), so it is handed over like any other.
//!
//! Also keeps the read that took a budgeted first try over its budget, for
//! the retry.
//!
//! Knows matchers and series, not how storage indexes them.

use std::cell::RefCell;

use crate::model::{MatchOp, Matcher};
use crate::storage::Series;

/// One storage read kept for a retry.
pub(crate) struct Stashed {
    matchers: Vec<Matcher>,
    mint: i64,
    maxt: i64,
    series: Vec<Series>,
}

thread_local! {
    /// The read that took a budgeted try over its budget. The retry runs
    /// right after (on this thread, or on another that it is handed to)
    /// and takes it instead of reading again, so running over wastes at
    /// most the budget, not a large read.
    static STASH: RefCell<Option<Stashed>> = const { RefCell::new(None) };
}

/// Keeps `series`, read for `matchers` over `[mint, maxt]`, for the retry.
pub(crate) fn stash(matchers: &[Matcher], mint: i64, maxt: i64, series: Vec<Series>) {
    STASH.with(|s| {
        *s.borrow_mut() = Some(Stashed {
            matchers: matchers.to_vec(),
            mint,
            maxt,
            series,
        });
    });
}

/// The stashed read, if it is for exactly this selection.
pub(crate) fn take_stash(matchers: &[Matcher], mint: i64, maxt: i64) -> Option<Vec<Series>> {
    STASH.with(|s| {
        let mut s = s.borrow_mut();
        let hit = s
            .as_ref()
            .is_some_and(|k| k.mint == mint && k.maxt == maxt && k.matchers == matchers);
        if hit {
            s.take().map(|k| k.series)
        } else {
            None
        }
    })
}

/// Takes whatever is stashed, to move it to another thread.
pub(crate) fn take_any_stash() -> Option<Stashed> {
    STASH.with(|s| s.borrow_mut().take())
}

/// Stashes what [`take_any_stash`] took on another thread.
pub(crate) fn put_stash(stashed: Stashed) {
    STASH.with(|s| *s.borrow_mut() = Some(stashed));
}

/// Whether a read is stashed on this thread.
pub(crate) fn has_stash() -> bool {
    STASH.with(|s| s.borrow().is_some())
}

/// Drops whatever is stashed.
pub(crate) fn clear_stash() {
    STASH.with(|s| s.borrow_mut().take());
}

/// `matchers` in the order storage should look them up, or `None` when
/// they are in that order already.
pub(crate) fn plan(matchers: &[Matcher]) -> Option<Vec<Matcher>> {
    if matchers.iter().map(rank).is_sorted() {
        return None;
    }
    let mut index = matchers.to_vec();
    index.sort_by_key(rank);
    Some(index)
}

/// Storage looks matchers up in this order: equalities first (one lookup,
/// and an unknown metric name ends it all), then other matchers that need
/// the label set, then those that accept a missing label.
fn rank(m: &Matcher) -> (bool, bool) {
    (m.matches_empty(), m.op != MatchOp::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    #[test]
    fn equalities_first_then_matchers_of_set_labels() {
        let ms = [
            m(MatchOp::Regex, "WorkerId", ".*"),
            m(MatchOp::NotEqual, "x", "1"),
            m(MatchOp::Regex, "instance", ".+"),
            m(MatchOp::Equal, "__name__", "up"),
        ];
        let index: Vec<String> = plan(&ms).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(
            index,
            [
                r#"__name__="up""#,
                r#"instance=~".+""#,
                r#"WorkerId=~".*""#,
                r#"x!="1""#
            ]
        );
    }

    #[test]
    fn plain_selectors_pass_as_they_are() {
        assert!(plan(&[m(MatchOp::Equal, "__name__", "up")]).is_none());
        assert!(
            plan(&[
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::NotEqual, "job", "x"),
            ])
            .is_none()
        );
        let all = [m(MatchOp::Regex, "a", ".*"), m(MatchOp::Regex, "b", ".*")];
        assert!(plan(&all).is_none());
    }
}
