//! A bounded process-wide cache of compiled regex label matchers.
//!
//! Grafana re-sends the same dashboard queries on every refresh, and
//! compiling their `=~".*"` matchers dominates parse time, so the parser
//! reuses matchers it already built. It knows nothing of PromQL syntax.

use std::sync::{Mutex, OnceLock};

use rustc_hash::FxHashMap;

use crate::model::{MatchOp, Matcher, MatcherError};

/// Entries kept before the cache is emptied; bounds memory on adversarial
/// input while keeping every realistic dashboard's matchers.
const CAPACITY: usize = 4096;

type Key = (MatchOp, String, String);

fn cache() -> &'static Mutex<FxHashMap<Key, Matcher>> {
    static CACHE: OnceLock<Mutex<FxHashMap<Key, Matcher>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(FxHashMap::default()))
}

/// Builds a matcher, reusing a cached compiled one for regex operators.
pub(crate) fn matcher(op: MatchOp, name: &str, value: String) -> Result<Matcher, MatcherError> {
    if matches!(op, MatchOp::Equal | MatchOp::NotEqual) {
        return Matcher::new(op, name, value);
    }
    let key = (op, name.to_string(), value);
    if let Ok(map) = cache().lock()
        && let Some(m) = map.get(&key)
    {
        return Ok(m.clone());
    }
    let (op, name, value) = key;
    // Compile outside the lock so slow patterns do not serialise parsers.
    let m = Matcher::new(op, name.clone(), value.clone())?;
    if let Ok(mut map) = cache().lock() {
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert((op, name, value), m.clone());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_matchers_behave_like_fresh_ones() {
        let a = matcher(MatchOp::Regex, "job", "ray.*".into()).unwrap();
        let b = matcher(MatchOp::Regex, "job", "ray.*".into()).unwrap();
        assert_eq!(a, b);
        assert!(b.matches("raylet") && !b.matches("xray"));
        assert!(matcher(MatchOp::NotRegex, "job", "(".into()).is_err());
    }
}
