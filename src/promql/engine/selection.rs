//! How a selector's matchers are handed to storage: equalities and other
//! matchers that need a label to be set first, so an unknown metric name
//! ends the index lookup before any other matcher is looked at, and
//! `=~".*"` checked on the selected series instead of over every value of
//! its label.
//!
//! The parser puts the metric name last, and Ray's dashboards add
//! `WorkerId=~".*"` and the like to most selectors. In the index such a
//! matcher walks every value of the label (about 15,000 worker ids on a
//! 50-node cluster) to find the few it rejects (values with a newline); on
//! the handful of selected series it costs one look each. The selected set
//! is the same either way.
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

/// Matchers for storage, and those to check on what it returns.
pub(crate) struct Plan<'a> {
    pub index: Vec<Matcher>,
    pub later: Vec<&'a Matcher>,
}

/// A plan for `matchers`, or `None` when they are best passed as they are.
pub(crate) fn plan(matchers: &[Matcher]) -> Option<Plan<'_>> {
    let deferred = |m: &Matcher| m.op == MatchOp::Regex && m.value == ".*";
    let later: Vec<&Matcher> = matchers.iter().filter(|m| deferred(m)).collect();
    // Storage selects nothing for no matchers, so one must stay.
    let later = if later.len() == matchers.len() {
        Vec::new()
    } else {
        later
    };
    let kept = || matchers.iter().filter(|m| later.is_empty() || !deferred(m));
    if later.is_empty() && kept().map(rank).is_sorted() {
        return None;
    }
    let mut index: Vec<Matcher> = kept().cloned().collect();
    index.sort_by_key(rank);
    Some(Plan { index, later })
}

/// Storage looks matchers up in this order: equalities first (one lookup,
/// and an unknown metric name ends it all), then other matchers that need
/// the label set, then those that accept a missing label.
fn rank(m: &Matcher) -> (bool, bool) {
    (m.matches_empty(), m.op != MatchOp::Equal)
}

/// The names of the labels that the matchers [`plan`] leaves for later
/// look at on the selected series: the labels a caller that asks storage
/// for only some ([`crate::storage::SelectHints::labels`]) must ask for
/// beside its own.
pub(crate) fn checked_after(matchers: &[Matcher]) -> impl Iterator<Item = &String> {
    let later = plan(matchers).map(|p| p.later).unwrap_or_default();
    later.into_iter().map(|m| &m.name)
}

/// Keeps the series whose labels `later` all accept (a missing label as
/// the empty value).
pub(crate) fn check(series: &mut Vec<Series>, later: &[&Matcher]) {
    if later.is_empty() {
        return;
    }
    series.retain(|s| later.iter().all(|m| m.matches_labels(&s.labels)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    #[test]
    fn equalities_first_and_match_all_regexes_later() {
        let ms = [
            m(MatchOp::Regex, "WorkerId", ".*"),
            m(MatchOp::NotEqual, "x", "1"),
            m(MatchOp::Regex, "instance", ".+"),
            m(MatchOp::Equal, "__name__", "up"),
        ];
        let p = plan(&ms).unwrap();
        let index: Vec<String> = p.index.iter().map(ToString::to_string).collect();
        assert_eq!(
            index,
            [r#"__name__="up""#, r#"instance=~".+""#, r#"x!="1""#]
        );
        let later: Vec<String> = p.later.iter().map(ToString::to_string).collect();
        assert_eq!(later, [r#"WorkerId=~".*""#]);
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
        // A selector of match-all regexes alone keeps them for storage.
        let all = [m(MatchOp::Regex, "a", ".*"), m(MatchOp::Regex, "b", ".*")];
        assert!(plan(&all).is_none());
    }

    #[test]
    fn later_matchers_reject_newlines_and_accept_missing_labels() {
        use crate::model::Labels;
        let s = |pairs: &[(&str, &str)]| Series {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: Vec::new(),
        };
        let mut series = vec![s(&[("a", "x")]), s(&[("a", "x\ny")]), s(&[("b", "1")])];
        let all = m(MatchOp::Regex, "a", ".*");
        check(&mut series, &[&all]);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels.get("a"), Some("x"));
        assert_eq!(series[1].labels.get("b"), Some("1"));
    }
}
