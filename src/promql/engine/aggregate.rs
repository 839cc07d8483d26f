//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, ...) with
//! Prometheus 2.42's arithmetic: incremental means, Welford variance, NaN
//! handling in `min`/`max`, and `topk`'s heap so ties resolve the same way.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::{Collector, Error, Evaluator, StepWalker, Val, intern};
use crate::model::gofmt::{format_f, format_g};
use crate::model::{Labels, METRIC_NAME};
use crate::promql::parser::{AggOp, Aggregate};

/// The scalar or string parameter of an aggregation, per step.
enum Param {
    None,
    Scalar(Vec<f64>),
    Label(String),
}

#[derive(Default)]
struct Group {
    /// The group id, or for count_values the index into this step's keys.
    id: usize,
    value: f64,
    mean: f64,
    count: f64,
    /// Series indexes kept by `topk`/`bottomk`, as a heap.
    heap: Vec<(f64, usize)>,
    /// Values collected by `quantile`.
    values: Vec<f64>,
}

pub(super) fn eval(ev: &mut Evaluator<'_>, a: &Aggregate) -> Result<Val, Error> {
    if let Some(v) = super::fold::try_fold(ev, a)? {
        return Ok(v);
    }
    let param = match (&a.param, a.op) {
        (Some(p), AggOp::CountValues) => match ev.eval(p)? {
            Val::String(s) => {
                if !crate::model::is_valid_label_name(&s) {
                    return Err(Error::Execution(format!("invalid label name {s:?}")));
                }
                Param::Label(s)
            }
            _ => {
                return Err(Error::Execution(
                    "count_values needs a string parameter".into(),
                ));
            }
        },
        (Some(p), _) => Param::Scalar(ev.eval_scalar(p)?),
        (None, _) => Param::None,
    };
    let input = ev.eval_vector(&a.expr)?;
    let mut grouping: Vec<&str> = a.grouping.iter().map(String::as_str).collect();
    if let (Param::Label(name), false) = (&param, a.without) {
        grouping.push(name);
    }
    let group_of = |labels: &Labels| group_labels(labels, &grouping, a.without);
    // The group of a series never changes across steps, except for
    // count_values, whose group depends on the value: ids are resolved once.
    let (group_ids, group_labels) = match &param {
        Param::Label(_) => (Vec::new(), Vec::new()),
        _ => intern(input.iter().map(|s| group_of(&s.labels))),
    };
    let mut out = Collector::new();
    // Output series per group (or per input series for topk/bottomk).
    let mut out_idx: Vec<Option<usize>> = vec![None; group_labels.len().max(input.len())];
    let mut walker = StepWalker::new(&input);
    let mut now = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    // Which slot of `groups` a group id uses at this step, if any.
    let mut slot_of: Vec<(usize, usize)> = vec![(usize::MAX, 0); group_labels.len()];
    let mut cv_index: HashMap<Labels, usize> = HashMap::new();
    let mut cv_keys: Vec<Labels> = Vec::new();
    for step in 0..ev.steps() {
        let ts = ev.ts(step);
        walker.at(&input, ts, &mut now);
        ev.tick(super::binary::work(now.len()))?;
        if now.is_empty() {
            continue;
        }
        groups.clear();
        cv_index.clear();
        cv_keys.clear();
        let k = match (&param, a.op) {
            (Param::Scalar(p), AggOp::Topk | AggOp::Bottomk) => {
                let f = p[step];
                if !(f > -9.223_372_036_854_776e18 && f < 9.223_372_036_854_776e18) {
                    return Err(Error::Execution(format!(
                        "Scalar value {} overflows int64",
                        format_g(f)
                    )));
                }
                let k = f as i64;
                if k < 1 {
                    continue;
                }
                k as usize
            }
            _ => 0,
        };
        for &(i, v) in &now {
            let slot = match &param {
                Param::Label(name) => {
                    let mut b = input[i].labels.builder();
                    b.set(name.clone(), format_f(v));
                    let key = group_of(&b.build());
                    match cv_index.get(&key) {
                        Some(&g) => Some(g),
                        None => {
                            cv_index.insert(key.clone(), groups.len());
                            cv_keys.push(key);
                            None
                        }
                    }
                }
                _ => {
                    let gid = group_ids[i];
                    match slot_of[gid] {
                        (s, slot) if s == step => Some(slot),
                        _ => {
                            slot_of[gid] = (step, groups.len());
                            None
                        }
                    }
                }
            };
            let Some(gi) = slot else {
                let id = match &param {
                    Param::Label(_) => groups.len(),
                    _ => group_ids[i],
                };
                groups.push(Group {
                    id,
                    value: v,
                    mean: v,
                    count: 1.0,
                    ..Group::default()
                });
                let g = groups
                    .last_mut()
                    .ok_or_else(|| Error::Execution("empty group".into()))?;
                match a.op {
                    AggOp::Stddev | AggOp::Stdvar => g.value = 0.0,
                    AggOp::Topk | AggOp::Bottomk => g.heap.push((v, i)),
                    AggOp::Quantile => g.values.push(v),
                    _ => {}
                }
                continue;
            };
            let g = &mut groups[gi];
            match a.op {
                AggOp::Sum => g.value += v,
                AggOp::Avg => {
                    g.count += 1.0;
                    if g.mean.is_infinite() {
                        if v.is_infinite() && (g.mean > 0.0) == (v > 0.0) {
                            continue;
                        }
                        if !v.is_infinite() && !v.is_nan() {
                            continue;
                        }
                    }
                    g.mean += v / g.count - g.mean / g.count;
                }
                AggOp::Count | AggOp::CountValues => g.count += 1.0,
                AggOp::Group => {}
                AggOp::Min => {
                    if g.value > v || g.value.is_nan() {
                        g.value = v;
                    }
                }
                AggOp::Max => {
                    if g.value < v || g.value.is_nan() {
                        g.value = v;
                    }
                }
                AggOp::Stddev | AggOp::Stdvar => {
                    g.count += 1.0;
                    let delta = v - g.mean;
                    g.mean += delta / g.count;
                    g.value += delta * (v - g.mean);
                }
                AggOp::Topk | AggOp::Bottomk => {
                    let top = a.op == AggOp::Topk;
                    if g.heap.len() < k {
                        g.heap.push((v, i));
                        let n = g.heap.len() - 1;
                        heap_up(&mut g.heap, n, top);
                    } else {
                        let h0 = g.heap[0].0;
                        let replace =
                            if top { h0 < v } else { h0 > v } || (h0.is_nan() && !v.is_nan());
                        if replace {
                            g.heap[0] = (v, i);
                            if k > 1 {
                                heap_fix(&mut g.heap, 0, top);
                            }
                        }
                    }
                }
                AggOp::Quantile => g.values.push(v),
            }
        }
        for g in &mut groups {
            match a.op {
                AggOp::Topk | AggOp::Bottomk => {
                    let top = a.op == AggOp::Topk;
                    let mut h = std::mem::take(&mut g.heap);
                    // Reverse of the heap order, stably: the result order of 2.42.
                    h.sort_by(|x, y| {
                        if heap_less(y.0, x.0, top) {
                            Ordering::Less
                        } else if heap_less(x.0, y.0, top) {
                            Ordering::Greater
                        } else {
                            Ordering::Equal
                        }
                    });
                    for (v, i) in h {
                        let o = *out_idx[i].get_or_insert_with(|| out.index_of(&input[i].labels));
                        out.push_at(o, ts, v)?;
                    }
                }
                _ => {
                    let v = match a.op {
                        AggOp::Avg => g.mean,
                        AggOp::Count | AggOp::CountValues => g.count,
                        AggOp::Group => 1.0,
                        AggOp::Stddev => (g.value / g.count).sqrt(),
                        AggOp::Stdvar => g.value / g.count,
                        AggOp::Quantile => {
                            let q = match &param {
                                Param::Scalar(p) => p[step],
                                _ => f64::NAN,
                            };
                            quantile(q, &mut g.values)
                        }
                        _ => g.value,
                    };
                    match &param {
                        Param::Label(_) => out.push(cv_keys[g.id].clone(), ts, v)?,
                        _ => {
                            let o = *out_idx[g.id]
                                .get_or_insert_with(|| out.index_of(&group_labels[g.id]));
                            out.push_at(o, ts, v)?;
                        }
                    }
                }
            }
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// `vectorByValueHeap` (topk) or `vectorByReverseValueHeap` (bottomk) `Less`.
/// The labels of the group a series falls into: `by` keeps the grouping
/// labels, `without` drops them and the metric name.
pub(super) fn group_labels(labels: &Labels, grouping: &[&str], without: bool) -> Labels {
    if without {
        let mut names = grouping.to_vec();
        names.push(METRIC_NAME);
        labels.without(&names)
    } else {
        labels.keep_only(grouping)
    }
}

fn heap_less(a: f64, b: f64, top: bool) -> bool {
    if a.is_nan() {
        return true;
    }
    if top { a < b } else { a > b }
}

fn heap_up(h: &mut [(f64, usize)], mut j: usize, top: bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !heap_less(h[j].0, h[i].0, top) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_down(h: &mut [(f64, usize)], i0: usize, top: bool) -> bool {
    let n = h.len();
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && heap_less(h[j2].0, h[j1].0, top) {
            j = j2;
        }
        if !heap_less(h[j].0, h[i].0, top) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
    i > i0
}

fn heap_fix(h: &mut [(f64, usize)], i: usize, top: bool) {
    if !heap_down(h, i, top) {
        heap_up(h, i, top);
    }
}

/// Prometheus's `quantile`: weighted between the two nearest ranks, NaNs
/// sorting first.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}
