//! Range-vector functions (`rate`, `increase`, `*_over_time`, ...) evaluated
//! one series at a time: a matrix selector's series are decoded, walked by a
//! sliding window over all steps and dropped before the next is read, so a
//! function over a hundred thousand series holds one series' samples and
//! its results, never every sample of every series.

use std::collections::HashSet;

use super::aggregate::quantile;
use super::functions::{
    absent_labels, absent_result, avg_over_time, changes, extrapolated_rate, holt_winters,
    instant_value, linear_regression, unwrap_parens, variance,
};
use super::sliding::{Extreme, SlidingWindow, fold_extreme};
use super::{Error, Evaluator, RangeArg, StepSeries, Val};
use crate::model::{Labels, METRIC_NAME, MatchOp, Sample, is_stale_nan};
use crate::promql::parser::{Call, Expr};

/// Where a range function's windows sit relative to the steps.
struct Windows {
    range: i64,
    offset: i64,
    at: Option<i64>,
}

/// Evaluates the range function `c` whose range argument is `args[idx]`.
pub(super) fn range_function(ev: &mut Evaluator<'_>, c: &Call, idx: usize) -> Result<Val, Error> {
    let name = c.func.name;
    // Only `absent_over_time` needs to know the steps that had a value.
    let mut present = if name == "absent_over_time" {
        vec![false; ev.reserve_steps()?]
    } else {
        Vec::new()
    };
    let mut out: Vec<StepSeries> = Vec::new();
    each(ev, c, idx, &mut present, |_, s| {
        out.push(s);
        Ok(())
    })?;
    if name == "absent_over_time" {
        let labels = match unwrap_parens(&c.args[idx]) {
            e @ Expr::MatrixSelector(_) => absent_labels(e),
            _ => Labels::new(),
        };
        return Ok(absent_result(ev, &present, labels));
    }
    let mut seen = HashSet::with_capacity(out.len());
    for s in &out {
        if !seen.insert(&s.labels) {
            return Err(duplicate());
        }
    }
    Ok(Val::Vector(out))
}

pub(super) fn duplicate() -> Error {
    Error::Execution("vector cannot contain metrics with the same labelset".into())
}

/// Whether the range function `c` over `args[idx]` can hand out two
/// results with the same labels: it drops the metric name, and its
/// selector does not fix one.
pub(super) fn may_collide(c: &Call, idx: usize) -> bool {
    if c.func.name == "last_over_time" {
        return false;
    }
    match unwrap_parens(&c.args[idx]) {
        Expr::MatrixSelector(ms) => !ms
            .vs
            .matchers
            .iter()
            .any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal),
        _ => true,
    }
}

/// Hands `f` each result series of the range function `c` (range argument
/// `args[idx]`) as it is made, in the order of the input series; marks in
/// `present` the steps that had a window with samples.
pub(super) fn each(
    ev: &mut Evaluator<'_>,
    c: &Call,
    idx: usize,
    present: &mut [bool],
    mut f: impl FnMut(&mut Evaluator<'_>, StepSeries) -> Result<(), Error>,
) -> Result<(), Error> {
    let name = c.func.name;
    let mut scalars: Vec<Vec<f64>> = Vec::new();
    for (i, a) in c.args.iter().enumerate() {
        if i != idx {
            scalars.push(ev.eval_scalar(a)?);
        }
    }
    let keep_name = name == "last_over_time";
    // The series' own labels, without the name: nothing is copied.
    let labels_of = |l: Labels| {
        if keep_name {
            return l;
        }
        let mut pairs = l.into_vec();
        pairs.retain(|p| p.name != METRIC_NAME);
        Labels::from_sorted(pairs)
    };
    match unwrap_parens(&c.args[idx]) {
        Expr::MatrixSelector(ms) => {
            let at = ev.at_time(ms.vs.at);
            let (lo, hi) = ev.ref_span(at, ms.vs.offset);
            let w = Windows {
                range: ms.range_ms,
                offset: ms.vs.offset,
                at,
            };
            ev.each_series(&ms.vs.matchers, lo - ms.range_ms, hi, |ev, mut s| {
                s.samples.retain(|p| !is_stale_nan(p.v));
                // The decoded samples are held while the points are made.
                let raw = s.samples.len();
                ev.add_samples(raw)?;
                let (points, _) = points(ev, name, &scalars, &w, &s.samples, present)?;
                ev.samples -= raw;
                if points.is_empty() {
                    return Ok(());
                }
                ev.add_samples(points.len())?;
                f(
                    ev,
                    StepSeries {
                        labels: labels_of(s.labels),
                        points,
                    },
                )
            })
        }
        Expr::Subquery(sq) => {
            let input = ev.range_input(&RangeArg::Subquery(sq))?;
            let w = Windows {
                range: input.range,
                offset: input.offset,
                at: input.at,
            };
            let mut loaded = 0usize;
            for (labels, samples) in input.series {
                let (points, most) = points(ev, name, &scalars, &w, &samples, present)?;
                loaded = loaded.max(most);
                if points.is_empty() {
                    continue;
                }
                ev.add_samples(points.len())?;
                f(
                    ev,
                    StepSeries {
                        labels: labels_of(labels),
                        points,
                    },
                )?;
            }
            // The largest window looked at, as Prometheus counts it.
            ev.add_samples(loaded)
        }
        _ => Err(Error::Execution(format!(
            "expected range vector in call to {name}"
        ))),
    }
}

/// The points of `name` over one series' samples at every step, and the
/// most samples one window held.
fn points(
    ev: &mut Evaluator<'_>,
    name: &str,
    scalars: &[Vec<f64>],
    input: &Windows,
    samples: &[Sample],
    present: &mut [bool],
) -> Result<(Vec<Sample>, usize), Error> {
    let mut points = Vec::new();
    let mut loaded = 0usize;
    let mut win = SlidingWindow::default();
    // Windows that overlap keep a running extreme across steps.
    let overlap = ev.steps() > 1 && input.range > ev.interval;
    let mut extreme = match name {
        "max_over_time" if overlap => Some(Extreme::new(true)),
        "min_over_time" if overlap => Some(Extreme::new(false)),
        _ => None,
    };
    for step in 0..ev.steps() {
        ev.tick(1)?;
        let ts = ev.ts(step);
        let refr = input.at.unwrap_or(ts) - input.offset;
        let span = win.slide(samples, refr - input.range, refr);
        let w = &samples[span.clone()];
        if w.is_empty() {
            continue;
        }
        loaded = loaded.max(w.len());
        if let Some(p) = present.get_mut(step) {
            *p = true;
        }
        let arg = |i: usize| scalars.get(i).map_or(f64::NAN, |s| s[step]);
        let v = match name {
            "rate" => extrapolated_rate(w, refr - input.range, refr, true, true, input.range),
            "increase" => extrapolated_rate(w, refr - input.range, refr, true, false, input.range),
            "delta" => extrapolated_rate(w, refr - input.range, refr, false, false, input.range),
            "irate" => instant_value(w, true),
            "idelta" => instant_value(w, false),
            "changes" => Some(changes(w)),
            "resets" => Some(w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64),
            "deriv" => (w.len() >= 2).then(|| linear_regression(w, w[0].t).0),
            "predict_linear" => (w.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(w, ts);
                slope * arg(0) + intercept
            }),
            "holt_winters" => holt_winters(w, arg(0), arg(1))?,
            "avg_over_time" => Some(avg_over_time(w)),
            "count_over_time" => Some(w.len() as f64),
            "last_over_time" => w.last().map(|p| p.v),
            "present_over_time" | "absent_over_time" => Some(1.0),
            "max_over_time" | "min_over_time" => Some(match extreme.as_mut() {
                Some(e) => e.value(samples, span),
                None => fold_extreme(w, name == "max_over_time"),
            }),
            "sum_over_time" => Some(w.iter().map(|p| p.v).sum()),
            "quantile_over_time" => {
                let mut vals: Vec<f64> = w.iter().map(|p| p.v).collect();
                Some(quantile(arg(0), &mut vals))
            }
            "stddev_over_time" => Some(variance(w).sqrt()),
            "stdvar_over_time" => Some(variance(w)),
            other => {
                return Err(Error::Execution(format!(
                    "function {other} is not implemented"
                )));
            }
        };
        if let Some(v) = v {
            points.push(Sample { t: ts, v });
        }
    }
    Ok((points, loaded))
}
