//! Series that left the head (`docs/format/kv.md`, "Cold series"): their
//! postings, their label hashes and their time ranges, so that queries still
//! find them and a series that comes back takes its old reference.
//!
//! This file knows nothing of the head or of queries; it answers with
//! references, labels and ranges.

use std::collections::BTreeSet;

use crate::model::{Label, Labels, Matcher};
use crate::storage::SeriesRef;

use super::{ChunkStore, Error, TimeRange, VERSION, range_from, ref_from, series_key, wal};

/// Separates names, values and references in postings keys: UTF-8 never
/// holds the byte 0xFF.
const SEP: u8 = 0xff;

/// One series going cold: its reference, label hash, labels and range.
#[derive(Debug, Clone)]
pub struct ColdSeries<'a> {
    pub r: SeriesRef,
    pub hash: u64,
    pub labels: &'a Labels,
    pub range: TimeRange,
}

/// A cold series as listed by [`ChunkStore::cold_list`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColdEntry {
    pub r: SeriesRef,
    pub hash: u64,
    pub range: TimeRange,
}

fn posting_prefix(name: &str, value: Option<&str>) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + name.len() + value.map_or(0, str::len) + 1);
    k.push(VERSION);
    k.extend_from_slice(name.as_bytes());
    k.push(SEP);
    if let Some(v) = value {
        k.extend_from_slice(v.as_bytes());
        k.push(SEP);
    }
    k
}

fn posting_key(name: &str, value: &str, r: SeriesRef) -> Vec<u8> {
    let mut k = posting_prefix(name, Some(value));
    k.extend_from_slice(&r.to_be_bytes());
    k
}

/// Splits a postings key into name, value and reference.
fn posting_parts(k: &[u8]) -> Option<(&str, &str, SeriesRef)> {
    let rest = k.strip_prefix(&[VERSION])?;
    let (body, r) = rest.split_at(rest.len().checked_sub(8)?);
    let body = body.strip_suffix(&[SEP])?;
    let at = body.iter().position(|&b| b == SEP)?;
    let name = std::str::from_utf8(&body[..at]).ok()?;
    let value = std::str::from_utf8(&body[at + 1..]).ok()?;
    Some((name, value, u64::from_be_bytes(r.try_into().ok()?)))
}

fn hash_key(hash: u64, r: SeriesRef) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = VERSION;
    k[1..9].copy_from_slice(&hash.to_be_bytes());
    k[9..].copy_from_slice(&r.to_be_bytes());
    k
}

fn cold_value(hash: u64, range: TimeRange) -> [u8; 24] {
    let mut v = [0u8; 24];
    v[..8].copy_from_slice(&hash.to_be_bytes());
    v[8..16].copy_from_slice(&range.0.to_be_bytes());
    v[16..].copy_from_slice(&range.1.to_be_bytes());
    v
}

fn cold_from(k: &[u8], v: &[u8]) -> Option<ColdEntry> {
    Some(ColdEntry {
        r: ref_from(k)?,
        hash: u64::from_be_bytes(v.get(..8)?.try_into().ok()?),
        range: range_from(v.get(8..24)?)?,
    })
}

impl ChunkStore {
    /// Records that `items` left the head: postings, hashes and ranges in one
    /// batch. Their labels, chunks and ranges are already stored.
    pub fn make_cold(&self, items: &[ColdSeries<'_>]) -> Result<(), Error> {
        let mut batch = self.db.batch();
        for s in items {
            for l in s.labels {
                batch.insert(&self.postings, posting_key(&l.name, &l.value, s.r), []);
            }
            batch.insert(&self.hashes, hash_key(s.hash, s.r), []);
            batch.insert(&self.cold, series_key(s.r), cold_value(s.hash, s.range));
        }
        batch.commit().map_err(|e| self.err(e))
    }

    /// Forgets that `r` (with `labels` and `hash`) is cold: it is back in the
    /// head, or gone.
    pub fn forget_cold(&self, r: SeriesRef, hash: u64, labels: &Labels) -> Result<(), Error> {
        let mut batch = self.db.batch();
        for l in labels {
            batch.remove(&self.postings, posting_key(&l.name, &l.value, r));
        }
        batch.remove(&self.hashes, hash_key(hash, r));
        batch.remove(&self.cold, series_key(r));
        batch.commit().map_err(|e| self.err(e))
    }

    /// Every cold series, in reference order.
    pub fn cold_list(&self) -> Result<Vec<ColdEntry>, Error> {
        let mut out = Vec::new();
        for kv in self.cold.iter() {
            let (k, v) = kv.into_inner().map_err(|e| self.err(e))?;
            let Some(e) = cold_from(&k, &v) else {
                return Err(self.corrupt("cold entry", ref_from(&k).unwrap_or(0)));
            };
            out.push(e);
        }
        Ok(out)
    }

    /// Sets the range of a cold series after retention deleted its oldest
    /// chunks.
    pub fn set_cold_range(&self, e: ColdEntry) -> Result<(), Error> {
        self.cold
            .insert(series_key(e.r), cold_value(e.hash, e.range))
            .map_err(|e| self.err(e))
    }

    /// The stored labels of `r`.
    pub fn labels_of(&self, r: SeriesRef) -> Result<Option<Labels>, Error> {
        let Some(v) = self.series.get(series_key(r)).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let mut buf: Vec<Label> = Vec::new();
        if !wal::get_labels_into(&v, &mut buf) {
            return Err(self.corrupt("labels", r));
        }
        Ok(Some(Labels::from_sorted(buf)))
    }

    /// The cold entry of `r`, if it is cold.
    pub fn cold_entry(&self, r: SeriesRef) -> Result<Option<ColdEntry>, Error> {
        let Some(v) = self.cold.get(series_key(r)).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        cold_from(&series_key(r), &v)
            .map(Some)
            .ok_or_else(|| self.corrupt("cold entry", r))
    }

    /// The cold series with exactly `labels` (whose hash is `hash`).
    pub fn find_cold(&self, hash: u64, labels: &Labels) -> Result<Option<ColdEntry>, Error> {
        let mut prefix = vec![VERSION];
        prefix.extend_from_slice(&hash.to_be_bytes());
        for kv in self.hashes.prefix(&prefix) {
            let k = kv.key().map_err(|e| self.err(e))?;
            let Some(r) = k
                .get(9..17)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            if self.labels_of(r)?.as_ref() != Some(labels) {
                continue;
            }
            if let Some(e) = self.cold_entry(r)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Cold series that pass every matcher and have chunks in
    /// `[mint, maxt]`, with their labels and ranges, in reference order.
    pub fn cold_select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(SeriesRef, Labels, TimeRange)>, Error> {
        let mut out = Vec::new();
        for r in self.cold_candidates(matchers)? {
            let Some(e) = self.cold_entry(r)? else {
                continue;
            };
            if e.range.0 > maxt || e.range.1 < mint {
                continue;
            }
            let Some(labels) = self.labels_of(r)? else {
                continue;
            };
            if matchers.iter().all(|m| m.matches_labels(&labels)) {
                out.push((r, labels, e.range));
            }
        }
        Ok(out)
    }

    /// References that may pass `matchers`: the postings of one matcher that
    /// needs its label (an equality first), or every cold series when each
    /// matcher accepts a missing label.
    fn cold_candidates(&self, matchers: &[Matcher]) -> Result<BTreeSet<SeriesRef>, Error> {
        let mut out = BTreeSet::new();
        let pick = matchers
            .iter()
            .filter(|m| !m.matches_empty())
            .min_by_key(|m| !matches!(m.op, crate::model::MatchOp::Equal));
        let Some(m) = pick else {
            for e in self.cold_list()? {
                out.insert(e.r);
            }
            return Ok(out);
        };
        let exact = matches!(m.op, crate::model::MatchOp::Equal);
        let prefix = posting_prefix(&m.name, exact.then_some(m.value.as_str()));
        // Keys come grouped by value: the matcher runs once per value.
        let mut last: Option<(Vec<u8>, bool)> = None;
        for kv in self.postings.prefix(&prefix) {
            let k = kv.key().map_err(|e| self.err(e))?;
            let Some((_, value, r)) = posting_parts(&k) else {
                continue;
            };
            let ok = match &last {
                Some((v, ok)) if v.as_slice() == value.as_bytes() => *ok,
                _ => {
                    let ok = exact || m.matches(value);
                    last = Some((value.as_bytes().to_vec(), ok));
                    ok
                }
            };
            if ok {
                out.insert(r);
            }
        }
        Ok(out)
    }

    /// Label names of cold series (`name` None), or the values of label
    /// `name`; with matchers, only of the series that pass them.
    pub fn cold_labels(
        &self,
        name: Option<&str>,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, Error> {
        let mut found = BTreeSet::new();
        if matchers.is_empty() {
            self.each_posting_group(name, &mut |n, v| {
                found.insert(if name.is_some() { v } else { n }.to_string());
            })?;
        } else {
            for (_, labels, _) in self.cold_select(matchers, mint, maxt)? {
                match name {
                    Some(name) => found.extend(labels.get(name).map(str::to_string)),
                    None => found.extend(labels.iter().map(|l| l.name.clone())),
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Calls `f` once per distinct name and value pair of label `name`, or
    /// once per distinct name (with its first value) when `name` is None,
    /// seeking past the rest instead of reading it.
    fn each_posting_group(
        &self,
        name: Option<&str>,
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), Error> {
        let prefix = match name {
            Some(n) => posting_prefix(n, None),
            None => vec![VERSION],
        };
        let mut from = prefix.clone();
        loop {
            let mut next = None;
            let mut it = self.postings.range(from.clone()..);
            if let Some(kv) = it.next() {
                let k = kv.key().map_err(|e| self.err(e))?;
                if !k.starts_with(&prefix) {
                    break;
                }
                if let Some((n, v, _)) = posting_parts(&k) {
                    f(n, v);
                    // Past every reference of this pair (the pair's prefix
                    // followed by 0xFF sorts after all of them), or, when
                    // only names are wanted, past every value of the name.
                    let mut skip = if name.is_some() {
                        posting_prefix(n, Some(v))
                    } else {
                        posting_prefix(n, None)
                    };
                    skip.extend_from_slice(&[SEP; 9]);
                    next = Some(skip);
                }
            }
            match next {
                Some(k) => from = k,
                None => break,
            }
        }
        Ok(())
    }

    /// Deletes everything of cold series `e`: chunks, range, labels and its
    /// cold entries.
    pub fn delete_cold(&self, e: ColdEntry) -> Result<(), Error> {
        if let Some(labels) = self.labels_of(e.r)? {
            self.forget_cold(e.r, e.hash, &labels)?;
        } else {
            self.cold.remove(series_key(e.r)).map_err(|x| self.err(x))?;
        }
        self.delete_series(e.r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_label_names_and_values_come_from_the_postings() {
        let dir = std::env::temp_dir().join(format!("rm-kv-cold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = ChunkStore::open(&dir).unwrap();
        let sets = [
            Labels::from_pairs([("__name__", "m"), ("a", "1"), ("ab", "x")]),
            Labels::from_pairs([("__name__", "m"), ("a", "2"), ("b", "y")]),
            Labels::from_pairs([("__name__", "n"), ("a", "1")]),
        ];
        let items: Vec<ColdSeries<'_>> = sets
            .iter()
            .enumerate()
            .map(|(i, l)| ColdSeries {
                r: i as u64 + 1,
                hash: 7,
                labels: l,
                range: (0, 10),
            })
            .collect();
        let encoded: Vec<Vec<u8>> = sets
            .iter()
            .map(|l| {
                let mut b = Vec::new();
                wal::put_labels(&mut b, l);
                b
            })
            .collect();
        let stored: Vec<super::super::FlushSeries<'_>> = encoded
            .iter()
            .enumerate()
            .map(|(i, b)| super::super::FlushSeries {
                r: i as u64 + 1,
                labels: Some(b),
                chunks: &[],
                range: None,
            })
            .collect();
        store.flush(&stored).unwrap();
        store.make_cold(&items).unwrap();
        let none: &[Matcher] = &[];
        assert_eq!(
            store.cold_labels(None, none, 0, 10).unwrap(),
            ["__name__", "a", "ab", "b"]
        );
        assert_eq!(
            store.cold_labels(Some("a"), none, 0, 10).unwrap(),
            ["1", "2"]
        );
        let m = [Matcher::equal("__name__", "m")];
        assert_eq!(store.cold_labels(Some("a"), &m, 0, 10).unwrap(), ["1", "2"]);
        assert_eq!(
            store.cold_labels(None, &m, 0, 10).unwrap(),
            ["__name__", "a", "ab", "b"]
        );
        assert!(store.cold_labels(None, &m, 11, 20).unwrap().is_empty());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn postings_keys_split_back_into_their_parts() {
        let k = posting_key("SessionName", "a b,\"c\"", 42);
        assert_eq!(posting_parts(&k), Some(("SessionName", "a b,\"c\"", 42)));
        let k = posting_key("x", "", u64::MAX);
        assert_eq!(posting_parts(&k), Some(("x", "", u64::MAX)));
    }

    #[test]
    fn the_skip_key_passes_every_reference_of_a_pair_and_no_other_pair() {
        let mut skip = posting_prefix("n", Some("a"));
        skip.extend_from_slice(&[SEP; 9]);
        let first = posting_key("n", "a", 0);
        assert!(posting_key("n", "a", u64::MAX) < skip);
        for other in [
            posting_key("n", "ab", 0),
            posting_key("n", "b", 7),
            posting_key("na", "a", 1),
        ] {
            assert!(other < first || other > skip, "{other:?}");
        }
    }
}
