//! Building step-aligned results: [`Collector`] gathers points per output
//! series, `intern` resolves label sets to indexes once, and [`StepWalker`]
//! walks a matrix step by step.

use std::collections::HashMap;

use crate::model::{Labels, Sample};

use super::*;

/// Collects per-step output samples into series, keyed by label set, in the
/// order series first appear (Prometheus's instant results keep it).
///
/// Callers that know which output series a sample belongs to across steps
/// resolve its index once with [`Collector::index_of`] and push by index, so
/// label sets are hashed once per series rather than once per step.
pub(crate) struct Collector {
    pub(super) index: HashMap<Labels, usize>,
    pub(super) series: Vec<StepSeries>,
}

impl Collector {
    pub fn new() -> Collector {
        Collector {
            index: HashMap::new(),
            series: Vec::new(),
        }
    }

    /// The index of the output series with `labels`, created if new.
    pub fn index_of(&mut self, labels: &Labels) -> usize {
        if let Some(&i) = self.index.get(labels) {
            return i;
        }
        self.index.insert(labels.clone(), self.series.len());
        self.series.push(StepSeries {
            labels: labels.clone(),
            points: Vec::new(),
        });
        self.series.len() - 1
    }

    pub fn push_at(&mut self, i: usize, t: i64, v: f64) -> Result<(), Error> {
        let s = &mut self.series[i];
        if s.points.last().is_some_and(|p| p.t == t) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
        s.points.push(Sample { t, v });
        Ok(())
    }

    pub fn push(&mut self, labels: Labels, t: i64, v: f64) -> Result<(), Error> {
        let i = self.index_of(&labels);
        self.push_at(i, t, v)
    }

    /// The collected series that received at least one sample.
    pub fn finish(self) -> Vec<StepSeries> {
        self.series
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .collect()
    }
}

/// Gives each distinct label set an id; returns the id of every input and
/// the distinct sets, in order of first appearance.
pub(crate) fn intern(keys: impl IntoIterator<Item = Labels>) -> (Vec<usize>, Vec<Labels>) {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut uniques = Vec::new();
    let ids = keys
        .into_iter()
        .map(|k| match index.get(&k) {
            Some(&i) => i,
            None => {
                index.insert(k.clone(), uniques.len());
                uniques.push(k);
                uniques.len() - 1
            }
        })
        .collect();
    (ids, uniques)
}

pub(super) fn check_unique_labelsets(m: &[StepSeries]) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::with_capacity(m.len());
    for s in m {
        if !seen.insert(&s.labels) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Walks a step-aligned matrix one step at a time, yielding the samples
/// present at each step.
pub(crate) struct StepWalker {
    pub(super) cursors: Vec<usize>,
}

impl StepWalker {
    pub fn new(m: &[StepSeries]) -> StepWalker {
        StepWalker {
            cursors: vec![0; m.len()],
        }
    }

    /// Indexes into `m` and values of the samples at time `ts`.
    pub fn at(&mut self, m: &[StepSeries], ts: i64, out: &mut Vec<(usize, f64)>) {
        out.clear();
        for (i, s) in m.iter().enumerate() {
            let c = &mut self.cursors[i];
            if let Some(p) = s.points.get(*c)
                && p.t == ts
            {
                out.push((i, p.v));
                *c += 1;
            }
        }
    }
}
