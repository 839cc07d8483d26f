//! Binary operators: arithmetic, comparisons (filtering or `bool`), set
//! operators, and vector matching with `on`/`ignoring` and
//! `group_left`/`group_right` (Prometheus's `VectorBinop`, `VectorAnd`, ...).

use std::collections::HashMap;

use super::{Collector, Error, Evaluator, StepSeries, StepWalker, Val, intern};
use crate::model::{Labels, METRIC_NAME, MatchOp};
use crate::promql::parser::{AggOp, BinOp, Binary, Cardinality, Expr, VectorMatching};

pub(super) fn eval(ev: &mut Evaluator<'_>, b: &Binary) -> Result<Val, Error> {
    let lhs = ev.eval(&b.lhs)?;
    if skips_rhs(b, &lhs) {
        return Ok(Val::Vector(Vec::new()));
    }
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

/// Whether the right-hand side need not be evaluated: a vector-to-vector
/// operator other than `or` whose left-hand side is empty at every step
/// is empty at every step (Prometheus 2.42's `VectorBinop` and `VectorAnd`
/// return nothing for an empty side, before any matching check), so only
/// an error of the right-hand side could tell; skipped only where it cannot
/// raise one (resource limits aside). Ray's vLLM panels join an empty
/// vLLM side to `max by (...) (x * 0 + 1)` over every Serve replica.
fn skips_rhs(b: &Binary, lhs: &Val) -> bool {
    b.matching.is_some()
        && b.op != BinOp::Or
        && matches!(lhs, Val::Vector(l) if l.is_empty())
        && cannot_fail(&b.rhs)
}

/// Whether evaluating `e` can fail only by a resource limit (deadline,
/// samples, cancellation) or storage: literals, selectors, aggregations
/// without a parameter, and vector-scalar operators whose result cannot
/// hold the same label set twice. Conservative: anything else may fail.
fn cannot_fail(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::VectorSelector(_) => true,
        Expr::Paren(e) => cannot_fail(e),
        Expr::Unary { neg, expr } => cannot_fail(expr) && (!neg || unique_without_name(expr)),
        Expr::Aggregate(a) => {
            use AggOp::*;
            a.param.is_none()
                && matches!(
                    a.op,
                    Sum | Avg | Count | Min | Max | Group | Stddev | Stdvar
                )
                && cannot_fail(&a.expr)
        }
        Expr::Binary(b) if b.matching.is_none() => {
            let vector = match (&*b.lhs, &*b.rhs) {
                (Expr::NumberLiteral(_), v) | (v, Expr::NumberLiteral(_)) => v,
                _ => return false,
            };
            if matches!(vector, Expr::NumberLiteral(_)) {
                return true;
            }
            cannot_fail(vector)
                && (!(drops_name(b.op) || b.return_bool) || unique_without_name(vector))
        }
        _ => false,
    }
}

/// Whether the series `e` gives stay distinct without their metric name
/// (so that an operator dropping it raises no duplicate label set): one
/// metric's selector, a parameterless aggregation that keeps no name, or
/// an operator that already dropped it without failing.
fn unique_without_name(e: &Expr) -> bool {
    match e {
        Expr::Paren(e) => unique_without_name(e),
        Expr::VectorSelector(vs) => vs
            .matchers
            .iter()
            .any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal),
        Expr::Aggregate(a) => {
            cannot_fail(e) && (a.without || !a.grouping.iter().any(|g| g == METRIC_NAME))
        }
        Expr::Binary(b) if b.matching.is_none() => {
            cannot_fail(e) && (drops_name(b.op) || b.return_bool)
        }
        _ => false,
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
/// Units of work for a step over `n` series, plus one for the step.
pub(super) fn work(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX).saturating_add(1)
}

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

/// Signature ids of both sides: equal ids mean matching label values.
fn signature_ids(
    lhs: &[StepSeries],
    rhs: &[StepSeries],
    m: &VectorMatching,
) -> (Vec<usize>, Vec<usize>, Vec<Labels>) {
    let (ids, sigs) = intern(lhs.iter().chain(rhs).map(|s| signature(&s.labels, m)));
    let (l, r) = ids.split_at(lhs.len());
    (l.to_vec(), r.to_vec(), sigs)
}

fn set_op(
    ev: &mut Evaluator<'_>,
    op: BinOp,
    m: &VectorMatching,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
) -> Result<Val, Error> {
    let (lsig, rsig, sigs) = signature_ids(&lhs, &rhs, m);
    let mut out = Collector::new();
    let mut lout: Vec<Option<usize>> = vec![None; lhs.len()];
    let mut rout: Vec<Option<usize>> = vec![None; rhs.len()];
    // The last step at which each signature was seen on the deciding side.
    let mut seen: Vec<usize> = vec![usize::MAX; sigs.len()];
    let (mut lw, mut rw) = (StepWalker::new(&lhs), StepWalker::new(&rhs));
    let (mut lnow, mut rnow) = (Vec::new(), Vec::new());
    for step in 0..ev.steps() {
        let ts = ev.ts(step);
        lw.at(&lhs, ts, &mut lnow);
        rw.at(&rhs, ts, &mut rnow);
        ev.tick(work(lnow.len() + rnow.len()))?;
        match op {
            BinOp::And | BinOp::Unless => {
                for (i, _) in &rnow {
                    seen[rsig[*i]] = step;
                }
                for (i, v) in &lnow {
                    if (seen[lsig[*i]] == step) == (op == BinOp::And) {
                        let o = *lout[*i].get_or_insert_with(|| out.index_of(&lhs[*i].labels));
                        out.push_at(o, ts, *v)?;
                    }
                }
            }
            _ => {
                for (i, v) in &lnow {
                    seen[lsig[*i]] = step;
                    let o = *lout[*i].get_or_insert_with(|| out.index_of(&lhs[*i].labels));
                    out.push_at(o, ts, *v)?;
                }
                for (i, v) in &rnow {
                    if seen[rsig[*i]] != step {
                        let o = *rout[*i].get_or_insert_with(|| out.index_of(&rhs[*i].labels));
                        out.push_at(o, ts, *v)?;
                    }
                }
            }
        }
    }
    Ok(Val::Vector(out.finish()))
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
    let (msig, osig, sigs) = signature_ids(&many, &one, m);
    let mut result_idx: HashMap<(usize, usize), usize> = HashMap::new();
    let mut out = Collector::new();
    // Per signature, the "one" side's sample at this step: (step, index, value).
    let mut one_at: Vec<(usize, usize, f64)> = vec![(usize::MAX, 0, 0.0); sigs.len()];
    // Per signature, the step it last matched (one-to-one uniqueness).
    let mut matched_at: Vec<usize> = vec![usize::MAX; sigs.len()];
    // Per output series, the step and signature it was last written with.
    let mut written_at: Vec<(usize, usize)> = Vec::new();
    let (mut mw, mut ow) = (StepWalker::new(&many), StepWalker::new(&one));
    let (mut mnow, mut onow) = (Vec::new(), Vec::new());
    for step in 0..ev.steps() {
        let ts = ev.ts(step);
        mw.at(&many, ts, &mut mnow);
        ow.at(&one, ts, &mut onow);
        ev.tick(work(mnow.len() + onow.len()))?;
        // As 2.42's `VectorBinop`: nothing matches where a side is empty,
        // and the "one" side's duplicates are not looked for there.
        if mnow.is_empty() || onow.is_empty() {
            continue;
        }
        for (i, v) in &onow {
            let slot = &mut one_at[osig[*i]];
            if slot.0 == step {
                let side = if swapped { "left" } else { "right" };
                return Err(Error::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    sigs[osig[*i]].to_braced_string(),
                    one[*i].labels.to_braced_string(),
                    one[slot.1].labels.to_braced_string(),
                )));
            }
            *slot = (step, *i, *v);
        }
        for (i, v) in &mnow {
            let sig = msig[*i];
            let (s, j, ov) = one_at[sig];
            if s != step {
                continue;
            }
            let (l, r) = if swapped { (ov, *v) } else { (*v, ov) };
            let (mut value, keep) = elem(b.op, l, r);
            if b.return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let o = match result_idx.get(&(*i, j)) {
                Some(&o) => o,
                None => {
                    let l = result_metric(&many[*i].labels, &one[j].labels, b.op, m);
                    let l = if b.return_bool { l.without_name() } else { l };
                    let o = out.index_of(&l);
                    result_idx.insert((*i, j), o);
                    o
                }
            };
            if m.card == Cardinality::OneToOne {
                if matched_at[sig] == step {
                    return Err(Error::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                matched_at[sig] = step;
            } else {
                if written_at.len() <= o {
                    written_at.resize(o + 1, (usize::MAX, 0));
                }
                if written_at[o] == (step, sig) {
                    return Err(Error::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
                written_at[o] = (step, sig);
            }
            out.push_at(o, ts, value)?;
        }
    }
    Ok(Val::Vector(out.finish()))
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
