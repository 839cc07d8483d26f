//! Deleted time ranges of series (`/api/v1/admin/tsdb/delete_series`), as
//! Prometheus's tombstones: a deletion hides the matching series' samples
//! in the range at once, is clamped to the samples each series had then
//! (later samples stay visible), and survives restarts (`tombstones.json`
//! in the data directory, replaced atomically). [`Tombstoned`] applies
//! them to any [`Queryable`]; label names and values still list deleted
//! series, as Prometheus's index does until its blocks are rewritten.
//! Knows series and time ranges, not how samples are stored.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use crate::model::{Labels, MatchOp, Matcher};
use crate::storage::{self, Querier, Queryable, Series};

/// The file name in the data directory.
pub const FILE: &str = "tombstones.json";

/// Why tombstones could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a tombstones file: {reason}")]
    Parse { path: String, reason: String },
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

/// Deleted ranges per series: inclusive `(mint, maxt)` pairs, sorted and
/// merged.
#[derive(Debug, Default)]
pub struct Tombstones {
    path: Option<PathBuf>,
    stones: RwLock<HashMap<Labels, Vec<(i64, i64)>>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    labels: std::collections::BTreeMap<String, String>,
    intervals: Vec<(i64, i64)>,
}

impl Tombstones {
    /// Tombstones kept in memory only.
    pub fn in_memory() -> Tombstones {
        Tombstones::default()
    }

    /// The tombstones of the data directory `dir` (none when it has no file).
    pub fn open(dir: &Path) -> Result<Tombstones, Error> {
        let path = dir.join(FILE);
        let shown = path.display().to_string();
        let mut stones = HashMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let stored: Vec<Stored> =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Parse {
                        path: shown.clone(),
                        reason: e.to_string(),
                    })?;
                for s in stored {
                    stones.insert(Labels::from_pairs(s.labels), s.intervals);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Read {
                    path: shown,
                    source,
                });
            }
        }
        Ok(Tombstones {
            path: Some(path),
            stones: RwLock::new(stones),
        })
    }

    /// Whether nothing is deleted (queries then pass through untouched).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Number of series with deleted ranges.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Labels, Vec<(i64, i64)>>> {
        self.stones.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes the samples in `[mint, maxt]` of every series of `storage`
    /// that matches one of `sets`, as Prometheus's `DB.Delete`: each range
    /// is clamped to the samples the series has now. Returns the number of
    /// series touched.
    pub fn delete(
        &self,
        storage: &dyn Queryable,
        sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Result<usize, Error> {
        let q = storage.querier(mint, maxt)?;
        let mut found = Vec::new();
        for set in sets {
            for s in q.select(set)? {
                let live: Vec<i64> = s
                    .samples
                    .iter()
                    .map(|p| p.t)
                    .filter(|t| !self.deleted(&s.labels, *t))
                    .collect();
                if let (Some(first), Some(last)) = (live.first(), live.last()) {
                    found.push((s.labels, (*first, *last)));
                }
            }
        }
        drop(q);
        let n = found.len();
        if n == 0 {
            return Ok(0);
        }
        let mut stones = self.stones.write().unwrap_or_else(PoisonError::into_inner);
        for (labels, iv) in found {
            let list = stones.entry(labels).or_default();
            list.push(iv);
            merge(list);
        }
        self.persist(&stones)?;
        Ok(n)
    }

    /// Forgets deleted ranges that retention has since removed (everything
    /// before `oldest_ms`), and merges the rest, as a rewrite of
    /// Prometheus's blocks does; the samples themselves stay hidden.
    pub fn clean(&self, oldest_ms: i64) -> Result<(), Error> {
        let mut stones = self.stones.write().unwrap_or_else(PoisonError::into_inner);
        stones.retain(|_, list| {
            list.retain(|&(_, maxt)| maxt >= oldest_ms);
            merge(list);
            !list.is_empty()
        });
        self.persist(&stones)
    }

    fn deleted(&self, labels: &Labels, t: i64) -> bool {
        self.read()
            .get(labels)
            .is_some_and(|l| l.iter().any(|&(a, b)| a <= t && t <= b))
    }

    /// Drops the deleted samples of `s`; `false` when none are left.
    fn apply(stones: &HashMap<Labels, Vec<(i64, i64)>>, s: &mut Series) -> bool {
        if let Some(list) = stones.get(&s.labels) {
            s.samples
                .retain(|p| !list.iter().any(|&(a, b)| a <= p.t && p.t <= b));
        }
        !s.samples.is_empty()
    }

    fn persist(&self, stones: &HashMap<Labels, Vec<(i64, i64)>>) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut stored: Vec<Stored> = stones
            .iter()
            .map(|(l, iv)| Stored {
                labels: l
                    .iter()
                    .map(|x| (x.name.clone(), x.value.clone()))
                    .collect(),
                intervals: iv.clone(),
            })
            .collect();
        stored.sort_by(|a, b| a.labels.cmp(&b.labels));
        let werr = |source| Error::Write {
            path: path.display().to_string(),
            source,
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| werr(std::io::Error::other(e)))?;
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(werr)?;
        f.write_all(&bytes).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        std::fs::rename(&tmp, path).map_err(werr)?;
        if let Some(dir) = path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Sorts and merges overlapping or touching ranges.
fn merge(list: &mut Vec<(i64, i64)>) {
    list.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(list.len());
    for &(a, b) in list.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *list = out;
}

/// A [`Queryable`] without the deleted samples.
pub struct Tombstoned {
    inner: Arc<dyn Queryable>,
    stones: Arc<Tombstones>,
}

impl Tombstoned {
    pub fn new(inner: Arc<dyn Queryable>, stones: Arc<Tombstones>) -> Tombstoned {
        Tombstoned { inner, stones }
    }
}

impl Queryable for Tombstoned {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, storage::Error> {
        let inner = self.inner.querier(mint, maxt)?;
        if self.stones.is_empty() {
            return Ok(inner);
        }
        Ok(Box::new(TombstonedQuerier {
            inner,
            stones: &self.stones,
        }))
    }

    fn may_block_readers(&self) -> bool {
        self.inner.may_block_readers()
    }
}

struct TombstonedQuerier<'a> {
    inner: Box<dyn Querier + 'a>,
    stones: &'a Tombstones,
}

impl Querier for TombstonedQuerier<'_> {
    fn select(&self, matchers: &[Matcher]) -> Result<Vec<Series>, storage::Error> {
        let mut out = self.inner.select(matchers)?;
        let stones = self.stones.read();
        out.retain_mut(|s| Tombstones::apply(&stones, s));
        Ok(out)
    }

    fn series(&self, matchers: &[Matcher]) -> Result<Vec<Labels>, storage::Error> {
        let mut out = self.inner.series(matchers)?;
        let stones = self.stones.read();
        // Only series with deleted ranges need their samples looked at.
        let mut gone = Vec::new();
        for l in out.iter().filter(|l| stones.contains_key(*l)) {
            let exact: Vec<Matcher> = l
                .iter()
                .filter_map(|x| {
                    Matcher::new(MatchOp::Equal, x.name.as_str(), x.value.as_str()).ok()
                })
                .collect();
            let left = self
                .inner
                .select(&exact)?
                .into_iter()
                .any(|mut s| s.labels == *l && Tombstones::apply(&stones, &mut s));
            if !left {
                gone.push(l.clone());
            }
        }
        out.retain(|l| !gone.contains(l));
        Ok(out)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, storage::Error> {
        self.inner.label_names(matchers)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, storage::Error> {
        self.inner.label_values(name, matchers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deletion over the memory's latest samples makes older ones the
    /// latest: a latest-value select through the tombstones must hand them
    /// over, whatever the store would leave out for its hint.
    #[test]
    fn a_latest_value_select_sees_past_deleted_samples() {
        use crate::storage::{Appendable, SelectHints};
        let head = Arc::new(crate::tsdb::Head::default());
        let l = Labels::from_pairs([("__name__", "x")]);
        let mut app = head.appender();
        // Many chunks' worth, all in memory.
        for k in 0..600 {
            app.append(0, &l, k * 1000, k as f64).unwrap();
        }
        app.commit().unwrap();
        let stones = Arc::new(Tombstones::in_memory());
        let visible = Tombstoned::new(head.clone(), stones.clone());
        let sets = [vec![Matcher::equal("__name__", "x")]];
        stones.delete(&visible, &sets, 400_000, 600_000).unwrap();
        let hints = SelectHints {
            latest_from: Some(599_000),
            ..SelectHints::default()
        };
        let first_and_last = |q: Box<dyn Querier + '_>| {
            let mut got = None;
            q.select_prepared(&sets[0], &hints, &|_| 0, &mut |s, _| {
                got = s
                    .samples
                    .first()
                    .zip(s.samples.last())
                    .map(|(a, b)| (a.t, b.t));
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
            got
        };
        // The head alone leaves out the samples before its last chunk.
        let alone = first_and_last(head.querier(100_000, 599_000).unwrap());
        assert!(alone.is_some_and(|(a, _)| a > 399_000), "{alone:?}");
        let seen = first_and_last(visible.querier(100_000, 599_000).unwrap());
        assert_eq!(seen.map(|(_, b)| b), Some(399_000));
    }

    #[test]
    fn ranges_merge() {
        let mut l = vec![(10, 20), (0, 5), (21, 30), (40, 50), (45, 46)];
        merge(&mut l);
        assert_eq!(l, [(0, 5), (10, 30), (40, 50)]);
    }
}
