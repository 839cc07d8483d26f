//! Relabeling: the `relabel_configs` rules and the function that applies them.
//!
//! Mirrors Prometheus 2.42's `model/relabel`: every action, its validation
//! messages and Go's `$1`/`${name}` template expansion. Runs per target and,
//! through `metric_relabel_configs`, per sample, so it borrows the input and
//! only builds a new label set once a rule actually changes something. Knows
//! nothing of YAML or scraping.

use std::borrow::Cow;
use std::fmt;

use crate::model::{Label, Labels, expand};

/// Why a relabel rule is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    #[error("unknown relabel action {0:?}")]
    UnknownAction(String),
    #[error("relabel action cannot be empty")]
    EmptyAction,
    #[error("relabel configuration for hashmod requires non-zero modulus")]
    ZeroModulus,
    #[error("relabel configuration for {0} action requires 'target_label' value")]
    MissingTarget(Action),
    #[error("{0:?} is invalid 'target_label' for {1} action")]
    InvalidTarget(String, Action),
    #[error("'replacement' can not be set for {0} action")]
    ReplacementSet(Action),
    #[error("{0:?} is invalid 'replacement' for {1} action")]
    InvalidReplacement(String, Action),
    #[error("{0} action requires only 'source_labels' and `target_label`, and no other fields")]
    EqualExtraFields(Action),
    #[error("{0} action requires only 'regex', and no other fields")]
    LabelDropKeepExtraFields(Action),
    #[error("error parsing regexp: {0}")]
    Regex(String),
    #[error("{0:?} is not a valid label name")]
    InvalidLabelName(String),
}

/// What a rule does; names as written in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    /// Parses an action name case-insensitively, as Prometheus does.
    pub fn parse(s: &str) -> Result<Action, RelabelError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            "" => return Err(RelabelError::EmptyAction),
            _ => return Err(RelabelError::UnknownAction(s.to_string())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The regex written in a rule, compiled fully anchored as `^(?:re)$`.
#[derive(Clone)]
pub struct Regexp {
    source: String,
    re: regex::Regex,
}

impl Regexp {
    pub fn new(source: &str) -> Result<Regexp, RelabelError> {
        let anchored = format!("^(?:{})$", go_compat(source));
        let re = regex::Regex::new(&anchored)
            .map_err(|e| RelabelError::Regex(regex_error_text(&e, &anchored)))?;
        Ok(Regexp {
            source: source.to_string(),
            re,
        })
    }

    /// The text as written in the configuration, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    pub fn regex(&self) -> &regex::Regex {
        &self.re
    }
}

/// Rewrites RE2 syntax whose meaning differs in the regex crate.
///
/// Go's `\d`, `\w`, `\s` and `\b` are ASCII-only, while the regex crate's
/// are Unicode; and inside a Go character class `[`, `&&` and `~~` are
/// literal, while the regex crate reads nested classes and set operations.
fn go_compat(pattern: &str) -> Cow<'_, str> {
    if !pattern.contains(['\\', '[']) {
        return Cow::Borrowed(pattern);
    }
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Position inside a class: None outside, Some(n) after n characters.
    let mut class: Option<usize> = None;
    while let Some(c) = chars.next() {
        match (c, class) {
            ('\\', _) => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let ascii = match e {
                    'd' => Some(("0-9", false)),
                    'D' => Some(("0-9", true)),
                    'w' => Some(("0-9A-Za-z_", false)),
                    'W' => Some(("0-9A-Za-z_", true)),
                    's' => Some(("\\t\\n\\x0C\\r ", false)),
                    'S' => Some(("\\t\\n\\x0C\\r ", true)),
                    _ => None,
                };
                match (ascii, class) {
                    (Some((set, false)), Some(_)) => out.push_str(set),
                    (Some((set, negated)), _) => {
                        out.push_str(if negated { "[^" } else { "[" });
                        out.push_str(set);
                        out.push(']');
                    }
                    (None, None) if e == 'b' || e == 'B' => {
                        out.push_str("(?-u:\\");
                        out.push(e);
                        out.push(')');
                    }
                    (None, _) => {
                        out.push('\\');
                        out.push(e);
                    }
                }
                class = class.map(|n| n + 1);
            }
            ('[', None) => {
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                class = Some(0);
            }
            ('[', Some(n)) => {
                if chars.peek() == Some(&':') {
                    // A POSIX class such as `[:alpha:]`: copy it whole.
                    out.push('[');
                    for p in chars.by_ref() {
                        out.push(p);
                        if p == ']' {
                            break;
                        }
                    }
                } else {
                    out.push_str("\\[");
                }
                class = Some(n + 1);
            }
            (']', Some(n)) if n > 0 => {
                out.push(']');
                class = None;
            }
            ('&' | '~', Some(n)) => {
                out.push('\\');
                out.push(c);
                class = Some(n + 1);
            }
            (c, _) => {
                out.push(c);
                class = class.map(|n| n + 1);
            }
        }
    }
    Cow::Owned(out)
}

/// The regex crate's message in Go's shape: ``what: `pattern` ``.
fn regex_error_text(e: &regex::Error, pattern: &str) -> String {
    let text = e.to_string();
    let what = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.as_str())
        .to_string();
    format!("{what}: `{pattern}`")
}

impl fmt::Debug for Regexp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regexp({:?})", self.source)
    }
}

impl PartialEq for Regexp {
    fn eq(&self, other: &Regexp) -> bool {
        self.source == other.source
    }
}

pub const DEFAULT_SEPARATOR: &str = ";";
pub const DEFAULT_REGEX: &str = "(.*)";
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// One relabel rule with Prometheus's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: Regexp,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

impl RelabelConfig {
    /// A rule with Prometheus's defaults: `;`, `(.*)`, `$1`, no labels.
    pub fn new(action: Action) -> Result<RelabelConfig, RelabelError> {
        Ok(RelabelConfig {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_string(),
            regex: Regexp::new(DEFAULT_REGEX)?,
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_string(),
            action,
        })
    }

    /// Checks the rule as `relabel.Config.Validate` does, with its messages.
    pub fn validate(&self) -> Result<(), RelabelError> {
        use Action::*;
        let a = self.action;
        let target = self.target_label.as_str();
        if a == HashMod && self.modulus == 0 {
            return Err(RelabelError::ZeroModulus);
        }
        if matches!(
            a,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && target.is_empty()
        {
            return Err(RelabelError::MissingTarget(a));
        }
        let invalid_target = || RelabelError::InvalidTarget(target.to_string(), a);
        if a == Replace {
            let ok = if target.contains('$') {
                is_valid_target_template(target)
            } else {
                is_valid_label_name(target)
            };
            if !ok {
                return Err(invalid_target());
            }
        }
        if matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual) {
            if !is_valid_label_name(target) {
                return Err(invalid_target());
            }
            if self.replacement != DEFAULT_REPLACEMENT {
                return Err(RelabelError::ReplacementSet(a));
            }
        }
        if a == LabelMap && !is_valid_target_template(&self.replacement) {
            return Err(RelabelError::InvalidReplacement(
                self.replacement.clone(),
                a,
            ));
        }
        if a == HashMod && !is_valid_label_name(target) {
            return Err(invalid_target());
        }
        if matches!(a, KeepEqual | DropEqual)
            && (self.regex.as_str() != DEFAULT_REGEX
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(RelabelError::EqualExtraFields(a));
        }
        if matches!(a, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty()
                || !target.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(RelabelError::LabelDropKeepExtraFields(a));
        }
        for name in &self.source_labels {
            if !is_valid_label_name(name) {
                return Err(RelabelError::InvalidLabelName(name.clone()));
            }
        }
        Ok(())
    }
}

pub use crate::model::is_valid_label_name;

/// Whether `s` matches `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`, the
/// shape Prometheus allows for templated target labels.
///
/// That pattern is a sequence of items, each either a letter/underscore, a
/// `$name`/`${name}` reference, or a word character following an earlier item.
fn is_valid_target_template(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    let mut started = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            i += 1;
        } else if c == b'$' {
            if b.get(i + 1) == Some(&b'{') {
                let n = b[i + 2..].iter().take_while(|c| word(**c)).count();
                if n == 0 || b.get(i + 2 + n) != Some(&b'}') {
                    return false;
                }
                i += n + 3;
            } else {
                let n = b[i + 1..].iter().take_while(|c| word(**c)).count();
                if n == 0 {
                    return false;
                }
                i += n + 1;
            }
        } else if c.is_ascii_digit() && started {
            i += 1;
        } else {
            return false;
        }
        started = true;
    }
    started
}

/// Applies `cfgs` in order; `None` means a rule dropped the label set.
pub fn process(labels: &Labels, cfgs: &[RelabelConfig]) -> Option<Labels> {
    process_cow(labels, cfgs).map(Cow::into_owned)
}

/// Like [`process`], but borrows `labels` back when no rule changed them, so
/// the common keep/drop-only case allocates nothing.
pub fn process_cow<'a>(labels: &'a Labels, cfgs: &[RelabelConfig]) -> Option<Cow<'a, Labels>> {
    let mut work = CopyOnWrite {
        orig: labels,
        owned: None,
    };
    for cfg in cfgs {
        if !apply(&mut work, cfg) {
            return None;
        }
    }
    Some(match work.finish() {
        None => Cow::Borrowed(labels),
        Some(l) => Cow::Owned(l),
    })
}

/// The label set a rule reads and edits.
trait Work {
    /// The value of `name`, empty when absent.
    fn get(&self, name: &str) -> &str;
    fn labels(&self) -> std::slice::Iter<'_, Label>;
    /// Sets a non-empty value, unconditionally.
    fn put(&mut self, name: &str, value: &str);
    /// Removes a label known to be present.
    fn remove(&mut self, name: &str);
    fn retain(&mut self, keep: &dyn Fn(&Label) -> bool);

    /// Sets `name`; an empty value deletes it, as in Prometheus's builder.
    fn set(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.del(name);
        } else if self.get(name) != value {
            self.put(name, value);
        }
    }

    fn del(&mut self, name: &str) {
        if !self.get(name).is_empty() {
            self.remove(name);
        }
    }
}

/// The caller's labels until the first change, then a private copy, sorted
/// once at the end.
struct CopyOnWrite<'a> {
    orig: &'a Labels,
    owned: Option<Vec<Label>>,
}

impl CopyOnWrite<'_> {
    fn owned(&mut self) -> &mut Vec<Label> {
        let orig = self.orig;
        self.owned.get_or_insert_with(|| orig.as_slice().to_vec())
    }

    fn finish(self) -> Option<Labels> {
        let mut v = self.owned?;
        v.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Some(Labels::from_sorted(v))
    }
}

impl Work for CopyOnWrite<'_> {
    fn get(&self, name: &str) -> &str {
        match &self.owned {
            Some(v) => v.iter().find(|l| l.name == name).map(|l| l.value.as_str()),
            None => self.orig.get(name),
        }
        .unwrap_or("")
    }

    fn labels(&self) -> std::slice::Iter<'_, Label> {
        match &self.owned {
            Some(v) => v.iter(),
            None => self.orig.iter(),
        }
    }

    fn put(&mut self, name: &str, value: &str) {
        let v = self.owned();
        match v.iter_mut().find(|l| l.name == name) {
            Some(l) => value.clone_into(&mut l.value),
            None => v.push(Label {
                name: name.to_string(),
                value: value.to_string(),
            }),
        }
    }

    fn remove(&mut self, name: &str) {
        self.owned().retain(|l| l.name != name);
    }

    fn retain(&mut self, keep: &dyn Fn(&Label) -> bool) {
        self.owned().retain(|l| keep(l));
    }
}

/// Applies one rule; false when it drops the label set.
fn apply<W: Work>(w: &mut W, cfg: &RelabelConfig) -> bool {
    let joined;
    let val: &str = match cfg.source_labels.as_slice() {
        [] => "",
        [one] => w.get(one),
        many => {
            let mut s = String::new();
            for (i, n) in many.iter().enumerate() {
                if i > 0 {
                    s.push_str(&cfg.separator);
                }
                s.push_str(w.get(n));
            }
            joined = s;
            &joined
        }
    };
    match cfg.action {
        Action::Drop => return !cfg.regex.is_match(val),
        Action::Keep => return cfg.regex.is_match(val),
        Action::DropEqual => return w.get(&cfg.target_label) != val,
        Action::KeepEqual => return w.get(&cfg.target_label) == val,
        Action::Replace => match replace_outcome(cfg, val) {
            Edit::None => {}
            Edit::Del => w.del(&cfg.target_label),
            Edit::Set(name, value) => w.set(&name, &value),
        },
        Action::Lowercase => {
            let v = val.to_lowercase();
            w.set(&cfg.target_label, &v);
        }
        Action::Uppercase => {
            let v = val.to_uppercase();
            w.set(&cfg.target_label, &v);
        }
        Action::HashMod => {
            let v = hashmod(val, cfg.modulus).to_string();
            w.set(&cfg.target_label, &v);
        }
        Action::LabelMap => {
            let mut sets: Vec<(String, String)> = Vec::new();
            for l in w.labels() {
                if let Some(caps) = cfg.regex.regex().captures(&l.name) {
                    let mut name = String::new();
                    expand(&cfg.replacement, &caps, cfg.regex.regex(), &mut name);
                    sets.push((name, l.value.clone()));
                }
            }
            for (n, v) in sets {
                w.set(&n, &v);
            }
        }
        Action::LabelDrop | Action::LabelKeep => {
            let drop_matching = cfg.action == Action::LabelDrop;
            let doomed = |l: &Label| cfg.regex.is_match(&l.name) == drop_matching;
            if w.labels().any(doomed) {
                w.retain(&|l| !doomed(l));
            }
        }
    }
    true
}

/// What a `replace` rule does to the label set.
enum Edit<'c> {
    None,
    Del,
    Set(Cow<'c, str>, Cow<'c, str>),
}

fn replace_outcome<'c>(cfg: &'c RelabelConfig, val: &str) -> Edit<'c> {
    let re = cfg.regex.regex();
    let templated = cfg.target_label.contains('$') || cfg.replacement.contains('$');
    if !templated {
        // No group references: a match is all that matters.
        if !re.is_match(val) {
            return Edit::None;
        }
        if cfg.replacement.is_empty() {
            return Edit::Del;
        }
        return Edit::Set(
            Cow::Borrowed(&cfg.target_label),
            Cow::Borrowed(&cfg.replacement),
        );
    }
    let Some(caps) = re.captures(val) else {
        return Edit::None;
    };
    let mut target = String::new();
    expand(&cfg.target_label, &caps, re, &mut target);
    if !is_valid_label_name(&target) {
        // Prometheus 2.42 deletes the unexpanded name here, which only exists
        // when it has no `$`, i.e. never once the rule is validated.
        return Edit::Del;
    }
    let mut value = String::new();
    expand(&cfg.replacement, &caps, re, &mut value);
    if value.is_empty() {
        // As in 2.42: the unexpanded target label is the one deleted.
        return Edit::Del;
    }
    Edit::Set(Cow::Owned(target), Cow::Owned(value))
}

/// Prometheus's hashmod: MD5 of the value, the big-endian u64 of bytes 8..16,
/// modulo `modulus`.
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    let digest = md5::compute(value.as_bytes()).0;
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..]);
    u64::from_be_bytes(tail) % modulus.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_character_classes_are_ascii() {
        let re = |p: &str| Regexp::new(p).unwrap();
        assert!(re(r"\d+").is_match("123"));
        assert!(!re(r"\d+").is_match("١٢٣"));
        assert!(!re(r"\w+").is_match("é"));
        assert!(re(r"\W").is_match("é"));
        assert!(re(r"[\w-]+").is_match("a-b_c"));
        assert!(!re(r"[\w-]+").is_match("a-é"));
        assert!(re(r"[^\d]").is_match("x"));
        assert!(re(r"[\D]").is_match("é"));
        assert!(!re(r"\s").is_match("\u{a0}"));
        assert!(re(r"[[]").is_match("["));
        assert!(re(r"[a&&b]+").is_match("a&b"));
        assert!(re(r"[[:alpha:]]+").is_match("abc"));
        assert!(re(r"[]a]+").is_match("]a"));
        assert!(re(r"\bfoo\b.*").is_match("foo bar"));
        assert!(re(r"a\\d").is_match("a\\d"));
        assert_eq!(re(r"\d").as_str(), r"\d");
    }

    #[test]
    fn target_template_shapes() {
        for ok in [
            "a", "_", "$1", "${1}", "a$1", "a_${1}_b", "$1$2", "x9", "$name",
        ] {
            assert!(is_valid_target_template(ok), "{ok}");
        }
        for bad in ["", "1a", "$", "${}", "${1", "a-b", "a$", "$-"] {
            assert!(!is_valid_target_template(bad), "{bad}");
        }
    }

    #[test]
    fn action_names() {
        assert_eq!(Action::parse("LabelMap"), Ok(Action::LabelMap));
        assert_eq!(Action::parse("KEEPEQUAL"), Ok(Action::KeepEqual));
        assert_eq!(
            Action::parse("foo").unwrap_err().to_string(),
            r#"unknown relabel action "foo""#
        );
    }

    #[test]
    fn process_cow_borrows_when_unchanged() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "ray")]);
        let mut keep = RelabelConfig::new(Action::Keep).unwrap();
        keep.source_labels = vec!["job".into()];
        keep.regex = Regexp::new("ray").unwrap();
        let mut same = RelabelConfig::new(Action::Replace).unwrap();
        same.source_labels = vec!["job".into()];
        same.target_label = "job".into();
        let out = process_cow(&l, &[keep, same]).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
    }
}
