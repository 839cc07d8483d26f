//! Label sets: sorted, deduplicated name/value pairs.

use std::fmt;

use super::gofmt::go_quote;

/// The label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A label set, sorted by name with unique names.
///
/// Ordering compares pair by pair, as Prometheus's `labels.Compare` does, so
/// sorted series come out in the same order as Prometheus returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// The empty label set, usable in statics.
    pub const EMPTY: Labels = Labels(Vec::new());

    pub fn new() -> Labels {
        Labels(Vec::new())
    }

    /// Builds a label set from pairs in any order; a later duplicate name
    /// wins, and a pair with an empty value is dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut b = LabelsBuilder::default();
        for (n, v) in pairs {
            b.add(n.into(), v.into());
        }
        b.build()
    }

    /// Builds a label set from pushed pairs (remote write, import) in any
    /// order, refusing what Prometheus refuses instead of repairing it: a
    /// name given twice (`label name "a" is not unique`), a name that is not
    /// `[a-zA-Z_][a-zA-Z0-9_]*`, a metric name that is not
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, and nothing left once pairs with empty
    /// values are dropped. Sorts once, so it costs O(n log n) in the number
    /// of pairs, however many there are.
    pub fn from_unsorted(mut labels: Vec<Label>) -> Result<Labels, LabelsError> {
        labels.retain(|l| !l.value.is_empty());
        if labels.is_empty() {
            return Err(LabelsError::Empty);
        }
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(LabelsError::Duplicate(w[0].name.clone()));
        }
        if let Some(l) = labels.iter().find(|l| !is_valid_label_name(&l.name)) {
            return Err(LabelsError::InvalidName(l.name.clone()));
        }
        let labels = Labels(labels);
        if let Some(name) = labels.metric_name().filter(|n| !is_valid_metric_name(n)) {
            return Err(LabelsError::InvalidMetricName(name.to_string()));
        }
        Ok(labels)
    }

    /// Wraps pairs that the caller has already sorted by name and deduplicated.
    pub fn from_sorted(labels: Vec<Label>) -> Labels {
        // Invariant: names are strictly increasing.
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels(labels)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// A copy without `__name__`, as PromQL functions return.
    pub fn without_name(&self) -> Labels {
        self.without(&[METRIC_NAME])
    }

    pub fn without(&self, names: &[&str]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| !names.contains(&l.name.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// Keeps only the named labels.
    pub fn keep_only(&self, names: &[&str]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| names.contains(&l.name.as_str()))
                .cloned()
                .collect(),
        )
    }

    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.clone(),
        }
    }

    /// Prometheus's `labels.String()`: every pair, `__name__` included, in
    /// sorted order inside braces, as its error messages print series.
    pub fn to_braced_string(&self) -> String {
        let mut out = String::from("{");
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&l.name);
            out.push('=');
            out.push_str(&format!("{:?}", l.value));
        }
        out.push('}');
        out
    }

    /// A stable 64-bit hash (FNV-1a over name and value bytes with separators).
    ///
    /// Stable across processes and versions, so it may be used for sharding
    /// and scrape offsets.
    pub fn stable_hash(&self) -> u64 {
        let mut h = Fnv64::default();
        self.write_separated(|b| h.write(b));
        h.finish()
    }

    /// A 128-bit XXH3 hash of the same bytes as [`Labels::stable_hash`],
    /// written into `buf` (reused) first: where a collision must be
    /// far rarer than 64 bits give.
    pub fn hash128(&self, buf: &mut Vec<u8>) -> u128 {
        buf.clear();
        self.write_separated(|b| buf.extend_from_slice(b));
        xxhash_rust::xxh3::xxh3_128(buf)
    }

    /// Each name and value followed by 0xff, a byte no UTF-8 text holds,
    /// so two different label sets never give the same bytes.
    fn write_separated(&self, mut w: impl FnMut(&[u8])) {
        for l in &self.0 {
            w(l.name.as_bytes());
            w(&[0xff]);
            w(l.value.as_bytes());
            w(&[0xff]);
        }
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Formats as Prometheus does: `name{a="1", b="2"}`, values escaped.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let rest: Vec<&Label> = self.0.iter().filter(|l| l.name != METRIC_NAME).collect();
        if rest.is_empty() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, l) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// Collects label edits and produces a sorted [`Labels`].
///
/// Setting an empty value deletes the label, as in Prometheus's builder.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    pub fn with_capacity(n: usize) -> LabelsBuilder {
        LabelsBuilder {
            labels: Vec::with_capacity(n),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    /// Adds a pair without looking for an earlier one of the same name, so
    /// that adding n pairs costs O(n) (`set` searches, O(n) per call). If
    /// the name was set or added before, the last one added wins in
    /// [`LabelsBuilder::build`] (an empty value then deletes the label);
    /// until then `get` may find either.
    pub fn add(&mut self, name: String, value: String) -> &mut Self {
        self.labels.push(Label { name, value });
        self
    }

    pub fn set(&mut self, name: String, value: String) -> &mut Self {
        if value.is_empty() {
            return self.del(&name);
        }
        match self.labels.iter_mut().find(|l| l.name == name) {
            Some(l) => l.value = value,
            None => self.labels.push(Label { name, value }),
        }
        self
    }

    pub fn del(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) -> &mut Self {
        self.labels.retain(|l| keep(l));
        self
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    pub fn clear(&mut self) {
        self.labels.clear();
    }

    pub fn build(&self) -> Labels {
        let mut v = self.labels.clone();
        // Stable, so that of a name `add`ed more than once the last one
        // added comes last; the dedup below moves its value forward.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.dedup_by(|later, kept| {
            if later.name != kept.name {
                return false;
            }
            std::mem::swap(&mut later.value, &mut kept.value);
            true
        });
        v.retain(|l| !l.value.is_empty());
        Labels::from_sorted(v)
    }
}

/// The first 8 bytes of `s` as a big-endian number, zeros past its end.
/// Where two strings' keys differ, the strings order as their keys do (a
/// string that ends within its first 8 bytes is padded with zeros, which
/// sort first as its end does); equal keys leave the order to the strings.
/// Sorting many distinct strings by key first compares numbers where it
/// compared bytes, as most differ early (ids, hashes).
pub fn str_prefix_key(s: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = s.len().min(8);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

/// The positions of `strs` in the order of their strings, sorted by each
/// string's first 8 bytes as a number first (`str_prefix_key`).
pub fn string_order<S: AsRef<str>>(strs: &[S]) -> Vec<u32> {
    let mut order: Vec<(u64, u32)> = strs
        .iter()
        .enumerate()
        .map(|(n, s)| (str_prefix_key(s.as_ref()), n as u32))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| strs[a.1 as usize].as_ref().cmp(strs[b.1 as usize].as_ref()))
    });
    order.into_iter().map(|(_, n)| n).collect()
}

/// Puts `items` in the order `order` gives: `order[k]` is the position of
/// the item that goes to position `k` (a sorted list of positions, as
/// [`string_order`] makes). Each cycle of the permutation is walked by
/// swaps, in place, so that a large list is never held twice over.
pub fn put_in_order<T>(items: &mut [T], mut order: Vec<u32>) {
    debug_assert_eq!(items.len(), order.len());
    const DONE: u32 = u32::MAX;
    for start in 0..order.len() {
        let mut k = start;
        while order[k] != DONE {
            let src = order[k] as usize;
            order[k] = DONE;
            if src == start {
                break;
            }
            items.swap(k, src);
            k = src;
        }
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, Prometheus's `LabelName.IsValid`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, Prometheus's `IsValidMetricName`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Why pushed pairs do not make a series, or exceed [`LabelLimits`].
/// Texts follow Prometheus 2.42's head (`tsdb/head_append.go`) and its
/// scrape label limits (`scrape/scrape.go`, `verifyLabelLimits`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    #[error("label name \"{0}\" is not unique")]
    Duplicate(String),
    #[error("invalid label name {}", go_quote(.0))]
    InvalidName(String),
    #[error("invalid metric name {}", go_quote(.0))]
    InvalidMetricName(String),
    #[error("empty labelset")]
    Empty,
    #[error("label_limit exceeded (metric: {metric}, number of labels: {count}, limit: {limit})")]
    TooMany {
        metric: String,
        count: usize,
        limit: usize,
    },
    #[error(
        "label_name_length_limit exceeded (metric: {metric}, label name: {name}, length: {len}, limit: {limit})"
    )]
    NameTooLong {
        metric: String,
        name: String,
        len: usize,
        limit: usize,
    },
    #[error(
        "label_value_length_limit exceeded (metric: {metric}, label name: {name}, value: {}, length: {len}, limit: {limit})",
        go_quote(.value)
    )]
    ValueTooLong {
        metric: String,
        name: String,
        value: String,
        len: usize,
        limit: usize,
    },
}

/// Bounds on one series' labels; 0 means no bound. Lengths are in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelLimits {
    pub max_labels: usize,
    pub max_name_len: usize,
    pub max_value_len: usize,
}

impl LabelLimits {
    /// Checks `labels` (the metric name counts as a label, as in
    /// Prometheus); the error names the first label over a bound.
    pub fn check(&self, labels: &Labels) -> Result<(), LabelsError> {
        let metric = || first_chars(labels.metric_name().unwrap_or(""));
        if self.max_labels > 0 && labels.len() > self.max_labels {
            return Err(LabelsError::TooMany {
                metric: metric(),
                count: labels.len(),
                limit: self.max_labels,
            });
        }
        for l in labels {
            if self.max_name_len > 0 && l.name.len() > self.max_name_len {
                return Err(LabelsError::NameTooLong {
                    metric: metric(),
                    name: first_chars(&l.name),
                    len: l.name.len(),
                    limit: self.max_name_len,
                });
            }
            if self.max_value_len > 0 && l.value.len() > self.max_value_len {
                return Err(LabelsError::ValueTooLong {
                    metric: metric(),
                    name: first_chars(&l.name),
                    value: first_chars(&l.value),
                    len: l.value.len(),
                    limit: self.max_value_len,
                });
            }
        }
        Ok(())
    }
}

/// At most the first 50 characters, as Go's `%.50s` in the limit errors.
fn first_chars(s: &str) -> String {
    s.chars().take(50).collect()
}

#[derive(Clone, Copy)]
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings that share their first 8 bytes, end within them, or hold
    /// zero bytes and bytes above 0x7f.
    fn tricky_strings() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "\0",
            "\0\0",
            "a",
            "a\0",
            "a\0b",
            "ab",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefgha",
            "abcdefghb",
            "abcdefg",
            "abcdefg\u{7f}",
            "abcdefgé",
            "é",
            "zz",
            "Z",
            "~",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for i in 0..200u32 {
            out.push(format!("{:08x}", i.wrapping_mul(2_654_435_761)));
            out.push(format!("worker-{i}"));
        }
        out
    }

    #[test]
    fn prefix_keys_order_as_the_strings_do() {
        let strs = tricky_strings();
        let mut by_str = strs.clone();
        by_str.sort();
        let mut by_key = strs;
        by_key.sort_by(|a, b| {
            str_prefix_key(a)
                .cmp(&str_prefix_key(b))
                .then_with(|| a.cmp(b))
        });
        assert_eq!(by_key, by_str);
    }

    #[test]
    fn builder_sorts_and_empty_value_deletes() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.as_slice()[0].name, "a");
        assert_eq!(l.get("b"), Some("2"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn builder_add_keeps_the_last_value_of_a_name() {
        let l = Labels::from_pairs([("b", "1"), ("a", "x"), ("b", "2"), ("c", "3"), ("c", "")]);
        assert_eq!(l, Labels::from_pairs([("a", "x"), ("b", "2")]));
        let l = Labels::from_pairs([("a", ""), ("a", "1")]);
        assert_eq!(l.get("a"), Some("1"));
    }

    #[test]
    fn issue_16_pushed_labels_refuse_duplicates_and_bad_names() {
        let pairs = |p: &[(&str, &str)]| -> Vec<Label> {
            p.iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect()
        };
        let e = Labels::from_unsorted(pairs(&[("__name__", "x"), ("a", "1"), ("a", "2")]));
        assert_eq!(e.unwrap_err().to_string(), "label name \"a\" is not unique");
        let e = Labels::from_unsorted(pairs(&[("__name__", "x"), ("", "1")]));
        assert_eq!(e.unwrap_err().to_string(), "invalid label name \"\"");
        let e = Labels::from_unsorted(pairs(&[("__name__", "x"), ("a-b", "1")]));
        assert_eq!(e.unwrap_err(), LabelsError::InvalidName("a-b".to_string()));
        let e = Labels::from_unsorted(pairs(&[("__name__", "a b")]));
        assert_eq!(e.unwrap_err().to_string(), "invalid metric name \"a b\"");
        let e = Labels::from_unsorted(pairs(&[("a", "")]));
        assert_eq!(e.unwrap_err(), LabelsError::Empty);
        // An empty value is no label, so it is no duplicate either.
        let l = Labels::from_unsorted(pairs(&[("b", "2"), ("a", "1"), ("a", "")])).unwrap();
        assert_eq!(l, Labels::from_pairs([("a", "1"), ("b", "2")]));
    }

    /// One series with 100k labels used to cost seconds of CPU: the builder
    /// searched its pairs for every one it was given.
    #[test]
    fn issue_16_a_hundred_thousand_labels_build_in_one_sort() {
        let n = 100_000;
        let pairs: Vec<Label> = (0..n)
            .rev()
            .map(|i| Label {
                name: format!("l{i:06}"),
                value: "v".to_string(),
            })
            .collect();
        let checked = Labels::from_unsorted(pairs.clone()).unwrap();
        assert_eq!(checked.len(), n);
        let built = Labels::from_pairs(pairs.iter().map(|l| (l.name.as_str(), "v")));
        assert_eq!(built, checked);
        let limits = LabelLimits {
            max_labels: 512,
            ..LabelLimits::default()
        };
        assert_eq!(
            limits.check(&built).unwrap_err().to_string(),
            "label_limit exceeded (metric: , number of labels: 100000, limit: 512)"
        );
        let limits = LabelLimits {
            max_value_len: 3,
            ..LabelLimits::default()
        };
        let long = Labels::from_pairs([("__name__", "m"), ("a", "\"long\"")]);
        assert_eq!(
            limits.check(&long).unwrap_err().to_string(),
            "label_value_length_limit exceeded (metric: m, label name: a, value: \"\\\"long\\\"\", length: 6, limit: 3)"
        );
    }

    #[test]
    fn display_matches_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "ray"), ("q", "a\"b")]);
        assert_eq!(l.to_string(), r#"up{job="ray", q="a\"b"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::new().to_string(), "{}");
    }
}
