//! Label sets: sorted, deduplicated name/value pairs.

use std::fmt;

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

    /// Builds a label set from pairs in any order; a later duplicate name wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut b = LabelsBuilder::default();
        for (n, v) in pairs {
            b.set(n.into(), v.into());
        }
        b.build()
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
        for l in &self.0 {
            h.write(l.name.as_bytes());
            h.write(&[0xff]);
            h.write(l.value.as_bytes());
            h.write(&[0xff]);
        }
        h.finish()
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
        v.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Labels(v)
    }
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

    #[test]
    fn builder_sorts_and_empty_value_deletes() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.as_slice()[0].name, "a");
        assert_eq!(l.get("b"), Some("2"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn display_matches_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "ray"), ("q", "a\"b")]);
        assert_eq!(l.to_string(), r#"up{job="ray", q="a\"b"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::new().to_string(), "{}");
    }
}
