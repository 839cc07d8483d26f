//! Binary operators: arithmetic, comparisons (filtering or `bool`), set
//! operators, and vector matching with `on`/`ignoring` and
//! `group_left`/`group_right` (Prometheus's `VectorBinop`, `VectorAnd`, ...).

use std::collections::{HashMap, HashSet};

use super::{Collector, Error, Evaluator, StepSeries, StepWalker, Val};
use crate::model::{Labels, METRIC_NAME};
use crate::promql::parser::{BinOp, Binary, Cardinality, VectorMatching};

pub(super) fn eval(ev: &mut Evaluator<'_>, b: &Binary) -> Result<Val, Error> {
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            let out = l
                .iter()
                .zip(&r)
                .map(|(l, r)| {
                    let (v, keep) = elem(b.op, *l, *r);
                    if b.return_bool {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect();
            Ok(Val::Scalar(out))
        }
        (Val::Vector(l), Val::Scalar(r)) => vector_scalar(ev, b, l, &r, false),
        (Val::Scalar(l), Val::Vector(r)) => vector_scalar(ev, b, r, &l, true),
        (Val::Vector(l), Val::Vector(r)) => {
            let default = VectorMatching {
                card: if b.op.is_set() {
                    Cardinality::ManyToMany
                } else {
                    Cardinality::OneToOne
                },
                on: false,
                labels: Vec::new(),
                include: Vec::new(),
            };
            let matching = b.matching.as_ref().unwrap_or(&default);
            match b.op {
                BinOp::And | BinOp::Or | BinOp::Unless => set_op(ev, b.op, matching, l, r),
                _ => vector_vector(ev, b, matching, l, r),
            }
        }
        _ => Err(Error::Execution(
            "invalid operand types for binary expression".into(),
        )),
    }
}

/// The value of `l op r`, and whether a comparison keeps the sample.
pub(super) fn elem(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eql => (l, l == r),
        BinOp::Neq => (l, l != r),
        BinOp::Gtr => (l, l > r),
        BinOp::Lss => (l, l < r),
        BinOp::Gte => (l, l >= r),
        BinOp::Lte => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
    }
}

/// Arithmetic drops the metric name; comparisons and `atan2` keep it.
fn drops_name(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow | BinOp::Mod
    )
}

fn vector_scalar(
    ev: &mut Evaluator<'_>,
    b: &Binary,
    vec: Vec<StepSeries>,
    scalar: &[f64],
    swap: bool,
) -> Result<Val, Error> {
    let drop = drops_name(b.op) || b.return_bool;
    let mut out = Vec::with_capacity(vec.len());
    for s in vec {
        let labels = if drop {
            s.labels.without_name()
        } else {
            s.labels
        };
        let mut points = Vec::with_capacity(s.points.len());
        for p in s.points {
            let step = ((p.t - ev.start) / ev.interval) as usize;
            let sv = scalar.get(step).copied().unwrap_or(f64::NAN);
            let (l, r) = if swap { (sv, p.v) } else { (p.v, sv) };
            let (mut v, mut keep) = elem(b.op, l, r);
            // A comparison keeps the vector's value even when it is on the right.
            if b.op.is_comparison() && swap {
                v = r;
            }
            if b.return_bool {
                v = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            if keep {
                points.push(crate::model::Sample { t: p.t, v });
            }
        }
        if !points.is_empty() {
            out.push(StepSeries { labels, points });
        }
    }
    if drop {
        super::check_unique_labelsets(&out)?;
    }
    Ok(Val::Vector(out))
}

/// The matching signature of a series: the `on` labels, or all labels but
/// the `ignoring` ones and the metric name.
fn signature(labels: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        let names: Vec<&str> = m.labels.iter().map(String::as_str).collect();
        labels.keep_only(&names)
    } else {
        let mut names: Vec<&str> = m.labels.iter().map(String::as_str).collect();
        names.push(METRIC_NAME);
        labels.without(&names)
    }
}

fn set_op(
    ev: &mut Evaluator<'_>,
    op: BinOp,
    m: &VectorMatching,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
) -> Result<Val, Error> {
    let lsig: Vec<Labels> = lhs.iter().map(|s| signature(&s.labels, m)).collect();
    let rsig: Vec<Labels> = rhs.iter().map(|s| signature(&s.labels, m)).collect();
    let mut out = Collector::new();
    let (mut lw, mut rw) = (StepWalker::new(&lhs), StepWalker::new(&rhs));
    let (mut lnow, mut rnow) = (Vec::new(), Vec::new());
    for step in 0..ev.steps() {
        let ts = ev.ts(step);
        lw.at(&lhs, ts, &mut lnow);
        rw.at(&rhs, ts, &mut rnow);
        match op {
            BinOp::And | BinOp::Unless => {
                let rset: HashSet<&Labels> = rnow.iter().map(|(i, _)| &rsig[*i]).collect();
                for (i, v) in &lnow {
                    if rset.contains(&lsig[*i]) == (op == BinOp::And) {
                        out.push(lhs[*i].labels.clone(), ts, *v)?;
                    }
                }
            }
            _ => {
                let lset: HashSet<&Labels> = lnow.iter().map(|(i, _)| &lsig[*i]).collect();
                for (i, v) in &lnow {
                    out.push(lhs[*i].labels.clone(), ts, *v)?;
                }
                for (i, v) in &rnow {
                    if !lset.contains(&rsig[*i]) {
                        out.push(rhs[*i].labels.clone(), ts, *v)?;
                    }
                }
            }
        }
    }
    Ok(Val::Vector(out.series))
}

fn vector_vector(
    ev: &mut Evaluator<'_>,
    b: &Binary,
    m: &VectorMatching,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
) -> Result<Val, Error> {
    // One-to-many is many-to-one with the sides swapped.
    let swapped = m.card == Cardinality::OneToMany;
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let msig: Vec<Labels> = many.iter().map(|s| signature(&s.labels, m)).collect();
    let osig: Vec<Labels> = one.iter().map(|s| signature(&s.labels, m)).collect();
    let mut result_labels: HashMap<(usize, usize), Labels> = HashMap::new();
    let mut out = Collector::new();
    let (mut mw, mut ow) = (StepWalker::new(&many), StepWalker::new(&one));
    let (mut mnow, mut onow) = (Vec::new(), Vec::new());
    for step in 0..ev.steps() {
        let ts = ev.ts(step);
        mw.at(&many, ts, &mut mnow);
        ow.at(&one, ts, &mut onow);
        let mut one_by_sig: HashMap<&Labels, (usize, f64)> = HashMap::with_capacity(onow.len());
        for (i, v) in &onow {
            if let Some((dup, _)) = one_by_sig.insert(&osig[*i], (*i, *v)) {
                let side = if swapped { "left" } else { "right" };
                return Err(Error::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    osig[*i].to_braced_string(),
                    one[*i].labels.to_braced_string(),
                    one[dup].labels.to_braced_string(),
                )));
            }
        }
        let mut matched: HashMap<&Labels, HashSet<Labels>> = HashMap::new();
        for (i, v) in &mnow {
            let Some(&(j, ov)) = one_by_sig.get(&msig[*i]) else {
                continue;
            };
            let (l, r) = if swapped { (ov, *v) } else { (*v, ov) };
            let (mut value, keep) = elem(b.op, l, r);
            if b.return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let labels = result_labels
                .entry((*i, j))
                .or_insert_with(|| {
                    let l = result_metric(&many[*i].labels, &one[j].labels, b.op, m);
                    if b.return_bool { l.without_name() } else { l }
                })
                .clone();
            let seen = matched.entry(&msig[*i]);
            match m.card {
                Cardinality::OneToOne => {
                    if let std::collections::hash_map::Entry::Occupied(_) = seen {
                        return Err(Error::Execution(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                        ));
                    }
                    seen.or_default();
                }
                _ => {
                    if !seen.or_default().insert(labels.clone()) {
                        return Err(Error::Execution(
                            "multiple matches for labels: grouping labels must ensure unique matches".into(),
                        ));
                    }
                }
            }
            out.push(labels, ts, value)?;
        }
    }
    Ok(Val::Vector(out.series))
}

/// The labels of a result sample (Prometheus's `resultMetric`).
fn result_metric(many: &Labels, one: &Labels, op: BinOp, m: &VectorMatching) -> Labels {
    let mut b = many.builder();
    if drops_name(op) {
        b.del(METRIC_NAME);
    }
    if m.card == Cardinality::OneToOne {
        if m.on {
            b.retain(|l| m.labels.contains(&l.name));
        } else {
            for n in &m.labels {
                b.del(n);
            }
        }
    }
    for n in &m.include {
        match one.get(n) {
            Some(v) => {
                b.set(n.clone(), v.to_string());
            }
            None => {
                b.del(n);
            }
        }
    }
    b.build()
}
