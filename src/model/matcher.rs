//! Label matchers: `=`, `!=`, `=~`, `!~` with fully anchored regexes.

use std::fmt;
use std::sync::Arc;

use regex::Regex;

use super::Labels;

#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error("invalid regular expression {pattern:?}: {source}")]
    Regex {
        pattern: String,
        #[source]
        source: regex::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// Matches one label's value. A missing label matches as the empty string,
/// as in Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub op: MatchOp,
    pub name: String,
    pub value: String,
    re: Option<Pattern>,
}

/// A regex matcher's pattern. The shapes dashboards use most need no regex
/// engine, and compiling even `.*` costs more than a small query.
#[derive(Debug, Clone)]
enum Pattern {
    /// `.*`: any value without a newline (Go's `.` stops at `\n`).
    Any,
    /// `.+`: as [`Pattern::Any`], but not empty.
    NonEmpty,
    /// Plain text alternatives joined by `|` (a single one too), perhaps in
    /// one group: `a|b`, `(a|b)`.
    Literals(Arc<[String]>),
    /// Plain text, then `.*`: the text, then anything without a newline.
    Prefix(Arc<str>),
    /// Shared so that clones (such as the parser's cached matchers) share
    /// the regex's search caches: a cloned `Regex` starts with empty ones
    /// and rebuilds its lazy DFA on every query.
    Regex(Arc<Regex>),
}

impl Pattern {
    fn new(pattern: &str) -> Result<Pattern, MatcherError> {
        // Characters with a meaning in RE2 or Rust regex syntax; without
        // them (but for `|`) a pattern is text.
        const META: &[char] = &[
            '\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$',
        ];
        let text = |p: &str| !p.contains(META);
        let literals = |p: &str| Pattern::Literals(p.split('|').map(str::to_string).collect());
        let group = pattern
            .strip_prefix('(')
            .and_then(|p| p.strip_suffix(')'))
            .filter(|p| text(p));
        let prefix = pattern
            .strip_suffix(".*")
            .filter(|p| !p.is_empty() && text(p) && !p.contains('|'));
        Ok(match (pattern, group, prefix) {
            (".*", _, _) => Pattern::Any,
            (".+", _, _) => Pattern::NonEmpty,
            (p, _, _) if text(p) => literals(p),
            (_, Some(g), _) => literals(g),
            (_, _, Some(p)) => Pattern::Prefix(p.into()),
            (p, _, _) => Pattern::Regex(Arc::new(anchored(p)?)),
        })
    }

    fn is_match(&self, v: &str) -> bool {
        match self {
            Pattern::Any => !v.contains('\n'),
            Pattern::NonEmpty => !v.is_empty() && !v.contains('\n'),
            Pattern::Literals(l) => l.iter().any(|l| l == v),
            Pattern::Prefix(p) => v
                .strip_prefix(&**p)
                .is_some_and(|rest| !rest.contains('\n')),
            Pattern::Regex(re) => re.is_match(v),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && self.name == other.name && self.value == other.value
    }
}

impl Matcher {
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Pattern::new(&value)?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            op,
            name: name.into(),
            value,
            re,
        })
    }

    /// Shorthand for an equality matcher, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            op: MatchOp::Equal,
            name: name.into(),
            value: value.into(),
            re: None,
        }
    }

    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether this matcher accepts a series that lacks the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Whether this matcher accepts `labels` (a missing label counts as
    /// the empty value, as in Prometheus).
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

/// Compiles `pattern` anchored at both ends, as Prometheus does.
pub fn anchored(pattern: &str) -> Result<Regex, MatcherError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|source| MatcherError::Regex {
        pattern: pattern.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_fully_anchored() {
        let m = Matcher::new(MatchOp::Regex, "State", "RUNNING*").unwrap();
        assert!(m.matches("RUNNIN"));
        assert!(m.matches("RUNNINGG"));
        assert!(!m.matches("RUNNING_IN_RAY_GET"));
    }

    #[test]
    fn plain_patterns_match_as_the_regex_would() {
        let patterns = [
            ".*",
            ".+",
            "",
            "a",
            "a|b",
            "a|",
            "|",
            "session_2026-11-26_03-35-11_178048_5703",
            "foo-bar:1/2 x|ä|ö",
            "(head|worker)",
            "(a)",
            "()",
            "/-/.*",
            "ray_node_mem.*",
        ];
        let values = [
            "",
            "a",
            "b",
            "ab",
            "a\n",
            "\n",
            "x\ny",
            "ä",
            "ö",
            "foo-bar:1/2 x",
            "session_2026-11-26_03-35-11_178048_5703",
            "head",
            "worker",
            "head|worker",
            "/-/",
            "/-/healthy",
            "/-/x\ny",
            "/api",
            "ray_node_mem",
            "ray_node_mem_used",
            "xray_node_mem",
        ];
        for p in patterns {
            let fast = Pattern::new(p).unwrap();
            assert!(!matches!(fast, Pattern::Regex(_)), "{p}");
            let re = anchored(p).unwrap();
            for v in values {
                assert_eq!(fast.is_match(v), re.is_match(v), "{p:?} on {v:?}");
            }
        }
        for p in ["(a|b)*", "(a)|(b)", "a|b.*", "a.*b", ".*a", "a\\.b"] {
            assert!(matches!(Pattern::new(p).unwrap(), Pattern::Regex(_)), "{p}");
        }
        assert!(Pattern::new("(").is_err());
    }

    #[test]
    fn missing_label_is_empty() {
        let m = Matcher::new(MatchOp::Regex, "ray_io_cluster", ".*").unwrap();
        assert!(m.matches_empty());
        let m = Matcher::new(MatchOp::NotRegex, "application", "").unwrap();
        assert!(!m.matches_empty());
    }
}
