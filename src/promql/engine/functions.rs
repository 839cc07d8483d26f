//! PromQL functions of Prometheus 2.42: range-vector functions (`rate`,
//! `*_over_time`, ...), per-sample math, label functions, dates, and
//! `histogram_quantile` over classic buckets.

use std::collections::HashMap;

use super::{Collector, Error, Evaluator, StepSeries, StepWalker, Val, intern};
use crate::model::goparse::parse_float;
use crate::model::{Labels, METRIC_NAME, MatchOp, Matcher, Sample};
use crate::promql::parser::{Call, Expr};

pub(super) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(inner) = e {
        e = inner;
    }
    e
}

pub(super) fn call(ev: &mut Evaluator<'_>, c: &Call) -> Result<Val, Error> {
    let name = c.func.name;
    // Range-vector functions take a matrix selector or a subquery.
    if let Some(idx) = c.args.iter().position(|a| {
        matches!(
            unwrap_parens(a),
            Expr::MatrixSelector(_) | Expr::Subquery(_)
        )
    }) {
        return super::range::range_function(ev, c, idx);
    }
    match name {
        "time" => Ok(Val::Scalar(
            (0..ev.reserve_steps()?)
                .map(|i| ev.ts(i) as f64 / 1000.0)
                .collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; ev.reserve_steps()?])),
        "vector" => {
            let s = ev.eval_scalar(&c.args[0])?;
            let points = s
                .iter()
                .enumerate()
                .map(|(i, v)| Sample { t: ev.ts(i), v: *v })
                .collect();
            Ok(Val::Vector(vec![StepSeries {
                labels: Labels::new(),
                points,
            }]))
        }
        "scalar" => {
            let m = ev.eval_vector(&c.args[0])?;
            let mut walker = StepWalker::new(&m);
            let mut now = Vec::new();
            let out = (0..ev.reserve_steps()?)
                .map(|i| {
                    walker.at(&m, ev.ts(i), &mut now);
                    if now.len() == 1 { now[0].1 } else { f64::NAN }
                })
                .collect();
            Ok(Val::Scalar(out))
        }
        "timestamp" => match unwrap_parens(&c.args[0]) {
            Expr::VectorSelector(vs) => Ok(Val::Vector(ev.vector_selector_times(vs)?)),
            other => {
                let m = ev.eval_vector(other)?;
                map_samples(m, true, |p| Some(p.t as f64 / 1000.0))
            }
        },
        "absent" => {
            let m = ev.eval_vector(&c.args[0])?;
            let labels = absent_labels(unwrap_parens(&c.args[0]));
            let mut present = vec![false; ev.reserve_steps()?];
            for s in &m {
                for p in &s.points {
                    present[((p.t - ev.start) / ev.interval) as usize] = true;
                }
            }
            Ok(absent_result(ev, &present, labels))
        }
        "sort" | "sort_desc" => {
            let mut m = ev.eval_vector(&c.args[0])?;
            if ev.steps() == 1 {
                let desc = name == "sort_desc";
                // NaN last either way; stable for ties, as Go's insertion sort
                // for small inputs.
                m.sort_by(|a, b| {
                    let (x, y) = (a.points[0].v, b.points[0].v);
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ => {
                            let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                            if desc { o.reverse() } else { o }
                        }
                    }
                });
            }
            Ok(Val::Vector(m))
        }
        "label_replace" => label_replace(ev, c),
        "label_join" => label_join(ev, c),
        "histogram_quantile" => histogram_quantile(ev, c),
        // Native histograms do not exist in raymon's store: no results.
        "histogram_count" | "histogram_sum" | "histogram_fraction" => {
            for a in &c.args {
                ev.eval(a)?;
            }
            Ok(Val::Vector(Vec::new()))
        }
        "clamp" | "clamp_max" | "clamp_min" | "round" => clamp_round(ev, c),
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => date_function(ev, c),
        _ => {
            let f = math_function(name)
                .ok_or_else(|| Error::Execution(format!("function {name} is not implemented")))?;
            let m = ev.eval_vector(&c.args[0])?;
            map_samples(m, true, |p| Some(f(p.v)))
        }
    }
}

/// Applies `f` to every sample, dropping the metric name when asked.
fn map_samples(
    m: Vec<StepSeries>,
    drop_name: bool,
    mut f: impl FnMut(&Sample) -> Option<f64>,
) -> Result<Val, Error> {
    let mut out = Vec::with_capacity(m.len());
    for s in m {
        let points: Vec<Sample> = s
            .points
            .iter()
            .filter_map(|p| f(p).map(|v| Sample { t: p.t, v }))
            .collect();
        if points.is_empty() {
            continue;
        }
        let labels = if drop_name {
            s.labels.without_name()
        } else {
            s.labels
        };
        out.push(StepSeries { labels, points });
    }
    Ok(Val::Vector(merge_same_labels(out)?))
}

/// Series that came to share a label set are merged; two samples at one
/// step are Prometheus's "same labelset" error.
fn merge_same_labels(m: Vec<StepSeries>) -> Result<Vec<StepSeries>, Error> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(m.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(m.len());
    let mut merged = false;
    for s in m {
        match index.get(&s.labels) {
            Some(&i) => {
                merged = true;
                let dst = &mut out[i];
                dst.points.extend(s.points);
                dst.points.sort_by_key(|p| p.t);
                if dst.points.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(Error::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    let _ = merged;
    Ok(out)
}

fn math_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
        "rad" => |v: f64| v * std::f64::consts::PI / 180.0,
        _ => return None,
    })
}

/// Go's `math.Max`: NaN wins, and +0 beats -0.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: NaN wins, and -0 beats +0.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

fn clamp_round(ev: &mut Evaluator<'_>, c: &Call) -> Result<Val, Error> {
    let mut scalars = Vec::new();
    for a in &c.args[1..] {
        scalars.push(ev.eval_scalar(a)?);
    }
    let m = ev.eval_vector(&c.args[0])?;
    let (start, interval) = (ev.start, ev.interval);
    let name = c.func.name;
    map_samples(m, true, |p| {
        let step = ((p.t - start) / interval) as usize;
        let arg = |i: usize| scalars.get(i).and_then(|s| s.get(step)).copied();
        match name {
            "clamp" => {
                let (min, max) = (arg(0)?, arg(1)?);
                if max < min {
                    return None;
                }
                Some(go_max(min, go_min(max, p.v)))
            }
            "clamp_max" => Some(go_min(arg(0)?, p.v)),
            "clamp_min" => Some(go_max(arg(0)?, p.v)),
            _ => {
                let to_nearest = arg(0).unwrap_or(1.0);
                let inv = 1.0 / to_nearest;
                Some((p.v * inv + 0.5).floor() / inv)
            }
        }
    })
}

fn date_function(ev: &mut Evaluator<'_>, c: &Call) -> Result<Val, Error> {
    let f: fn(i64) -> f64 = match c.func.name {
        "days_in_month" => |t| {
            let (y, m, _) = civil(t);
            days_in_month(y, m) as f64
        },
        "day_of_month" => |t| civil(t).2 as f64,
        "day_of_week" => |t| (t.div_euclid(86_400) + 4).rem_euclid(7) as f64,
        "day_of_year" => |t| {
            let (y, m, d) = civil(t);
            (1..m).map(|mm| days_in_month(y, mm)).sum::<i64>() as f64 + d as f64
        },
        "hour" => |t| t.rem_euclid(86_400).div_euclid(3600) as f64,
        "minute" => |t| t.rem_euclid(3600).div_euclid(60) as f64,
        "month" => |t| civil(t).1 as f64,
        _ => |t| civil(t).0 as f64,
    };
    if c.args.is_empty() {
        let points = (0..ev.reserve_steps()?)
            .map(|i| {
                let ts = ev.ts(i);
                Sample {
                    t: ts,
                    v: f(ts.div_euclid(1000)),
                }
            })
            .collect();
        return Ok(Val::Vector(vec![StepSeries {
            labels: Labels::new(),
            points,
        }]));
    }
    let m = ev.eval_vector(&c.args[0])?;
    map_samples(m, true, |p| {
        if p.v.is_nan() || p.v.is_infinite() {
            return Some(f64::NAN);
        }
        Some(f(p.v as i64))
    })
}

/// Year, month, day of a Unix time in seconds (UTC).
fn civil(t: i64) -> (i64, i64, i64) {
    crate::model::civil::civil_from_days(t.div_euclid(86_400))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn string_arg(ev: &mut Evaluator<'_>, e: &Expr) -> Result<String, Error> {
    match ev.eval(e)? {
        Val::String(s) => Ok(s),
        _ => Err(Error::Execution("expected a string argument".into())),
    }
}

fn label_replace(ev: &mut Evaluator<'_>, c: &Call) -> Result<Val, Error> {
    let dst = string_arg(ev, &c.args[1])?;
    let repl = string_arg(ev, &c.args[2])?;
    let src = string_arg(ev, &c.args[3])?;
    let re_src = string_arg(ev, &c.args[4])?;
    // Prometheus 2.42 names the expression but not the compiler's complaint.
    let re = crate::model::anchored(&re_src).map_err(|_| {
        Error::Execution(format!(
            "invalid regular expression in label_replace(): {re_src}"
        ))
    })?;
    if !crate::model::is_valid_label_name(&dst) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut m = ev.eval_vector(&c.args[0])?;
    for s in &mut m {
        let value = s.labels.get(&src).unwrap_or("");
        if let Some(caps) = re.captures(value) {
            let mut res = String::new();
            crate::model::expand(&repl, &caps, &re, &mut res);
            let mut b = s.labels.builder();
            b.set(dst.clone(), res);
            s.labels = b.build();
        }
    }
    Ok(Val::Vector(merge_same_labels(m)?))
}

fn label_join(ev: &mut Evaluator<'_>, c: &Call) -> Result<Val, Error> {
    let dst = string_arg(ev, &c.args[1])?;
    let sep = string_arg(ev, &c.args[2])?;
    let mut srcs = Vec::new();
    for a in &c.args[3..] {
        let s = string_arg(ev, a)?;
        if !crate::model::is_valid_label_name(&s) {
            return Err(Error::Execution(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !crate::model::is_valid_label_name(&dst) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut m = ev.eval_vector(&c.args[0])?;
    for s in &mut m {
        let joined = srcs
            .iter()
            .map(|n| s.labels.get(n).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&sep);
        let mut b = s.labels.builder();
        b.set(dst.clone(), joined);
        s.labels = b.build();
    }
    Ok(Val::Vector(merge_same_labels(m)?))
}

fn histogram_quantile(ev: &mut Evaluator<'_>, c: &Call) -> Result<Val, Error> {
    let q = ev.eval_scalar(&c.args[0])?;
    let m = ev.eval_vector(&c.args[1])?;
    // Each input series' group and upper bound never change across steps.
    // Groups keep the metric name, so two histograms that differ only in
    // name collide in the output (prometheus/prometheus#9910).
    let bounds: Vec<Option<f64>> = m
        .iter()
        .map(|s| s.labels.get("le").and_then(|le| parse_float(le).ok()))
        .collect();
    let (group_ids, groups) = intern(m.iter().map(|s| s.labels.without(&["le"])));
    let mut out = Collector::new();
    let mut out_idx: Vec<Option<usize>> = vec![None; groups.len()];
    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); groups.len()];
    let mut touched: Vec<usize> = Vec::new();
    let mut walker = StepWalker::new(&m);
    let mut now = Vec::new();
    for (step, q) in q.iter().enumerate() {
        let ts = ev.ts(step);
        walker.at(&m, ts, &mut now);
        touched.clear();
        for &(i, v) in &now {
            let Some(ub) = bounds[i] else { continue };
            let g = group_ids[i];
            if buckets[g].is_empty() {
                touched.push(g);
            }
            buckets[g].push((ub, v));
        }
        for &g in &touched {
            let o = *out_idx[g].get_or_insert_with(|| out.index_of(&groups[g].without_name()));
            let v = bucket_quantile(*q, &mut buckets[g]);
            buckets[g].clear();
            out.push_at(o, ts, v)?;
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// Prometheus's `bucketQuantile` over (upper bound, cumulative count) pairs.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce buckets with the same bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, count) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += count,
            _ => merged.push((ub, count)),
        }
    }
    // Counts must not decrease with the bound.
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = merged.len() - 1;
    let b = merged[..n].partition_point(|b| b.1 < rank);
    if b == n {
        return merged[n - 1].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let mut start = 0.0;
    let end = merged[b].0;
    let mut count = merged[b].1;
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// `absent` and `absent_over_time`: 1 at every step where the input had
/// nothing.
pub(super) fn absent_result(ev: &Evaluator<'_>, present: &[bool], labels: Labels) -> Val {
    let points: Vec<Sample> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(i, _)| Sample {
            t: ev.ts(i),
            v: 1.0,
        })
        .collect();
    Val::Vector(if points.is_empty() {
        vec![]
    } else {
        vec![StepSeries { labels, points }]
    })
}

/// Labels `absent()` gives its result: the selector's equality matchers.
pub(super) fn absent_labels(e: &Expr) -> Labels {
    let matchers: &[Matcher] = match e {
        Expr::VectorSelector(vs) => &vs.matchers,
        Expr::MatrixSelector(ms) => &ms.vs.matchers,
        _ => return Labels::new(),
    };
    let mut b = crate::model::LabelsBuilder::default();
    let mut empty = Vec::new();
    let mut set: Vec<&str> = Vec::new();
    for m in matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !set.contains(&m.name.as_str()) {
            b.set(m.name.clone(), m.value.clone());
            set.push(&m.name);
        } else {
            empty.push(m.name.clone());
        }
    }
    for n in empty {
        b.del(&n);
    }
    b.build()
}

/// The part of an extrapolation that depends on a window's times alone:
/// every series sampled at the same times (all of one scrape target's)
/// shares it, and the divisions behind a factor were most of `rate`'s
/// cost. Made for one function and one range only.
#[derive(Clone, Copy, Default)]
pub(super) struct RateShape {
    duration_to_start: f64,
    sampled: f64,
    /// The factor when the extrapolation to zero does not shorten the
    /// start.
    factor: f64,
}

/// `rate`, `increase` and `delta` of one window from scratch, with
/// Prometheus 2.x's extrapolation: what the range functions' planned
/// windows ([`window_shape`], [`rate_of_shape`]) are tested against.
/// `counter` is `None` for `delta`, else whether the window may hold a
/// counter reset to look for.
#[cfg(test)]
pub(super) fn extrapolated_rate(
    w: &[Sample],
    range_start: i64,
    range_end: i64,
    counter: Option<bool>,
    rate: bool,
    range: i64,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let shape = window_shape(w, range_start, range_end, rate, range);
    Some(rate_of_shape(
        w,
        range_start,
        range_end,
        counter,
        rate,
        range,
        &shape,
    ))
}

/// The times-only part of `rate`, `increase` and `delta` over the window
/// `w` (at least two samples): every series sampled at the same times
/// shares it.
pub(super) fn window_shape(
    w: &[Sample],
    range_start: i64,
    range_end: i64,
    rate: bool,
    range: i64,
) -> RateShape {
    rate_shape(w, range_start, range_end, rate, range, None)
}

/// `rate`, `increase` or `delta` of the window `w` (at least two samples)
/// whose [`window_shape`] is `shape`, with Prometheus 2.x's extrapolation.
/// `counter` is `None` for `delta`, else whether the window may hold a
/// counter reset (a value below the one before it) to look for.
#[inline]
pub(super) fn rate_of_shape(
    w: &[Sample],
    range_start: i64,
    range_end: i64,
    counter: Option<bool>,
    rate: bool,
    range: i64,
    shape: &RateShape,
) -> f64 {
    debug_assert!(w.len() >= 2);
    let (resets, counter) = (counter == Some(true), counter.is_some());
    let first = w[0];
    let last = w[w.len() - 1];
    let mut result = last.v - first.v;
    if resets {
        let mut prev = first.v;
        for p in &w[1..] {
            if p.v < prev {
                result += prev;
            }
            prev = p.v;
        }
    }
    if counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = shape.sampled * (first.v / result);
        if to_zero < shape.duration_to_start {
            let s = rate_shape(w, range_start, range_end, rate, range, Some(to_zero));
            return result * s.factor;
        }
    }
    result * shape.factor
}

/// The times-only part of [`rate_of_shape`], with the start shortened
/// to `to_zero` where the counter would reach zero before it.
fn rate_shape(
    w: &[Sample],
    range_start: i64,
    range_end: i64,
    rate: bool,
    range: i64,
    to_zero: Option<f64>,
) -> RateShape {
    let first = w[0];
    let last = w[w.len() - 1];
    let mut duration_to_start = (first.t - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg_between = sampled / (w.len() - 1) as f64;
    let unshortened = duration_to_start;
    if let Some(z) = to_zero {
        duration_to_start = z;
    }
    let threshold = avg_between * 1.1;
    let mut interval = sampled;
    interval += if duration_to_start < threshold {
        duration_to_start
    } else {
        avg_between / 2.0
    };
    interval += if duration_to_end < threshold {
        duration_to_end
    } else {
        avg_between / 2.0
    };
    let mut factor = interval / sampled;
    if rate {
        factor /= range as f64 / 1000.0;
    }
    RateShape {
        duration_to_start: unshortened,
        sampled,
        factor,
    }
}

/// `irate` and `idelta`: the last two samples.
pub(super) fn instant_value(w: &[Sample], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let last = w[w.len() - 1];
    let prev = w[w.len() - 2];
    let mut v = if rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let dt = last.t - prev.t;
    if dt == 0 {
        return None;
    }
    if rate {
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

pub(super) fn changes(w: &[Sample]) -> f64 {
    let mut n = 0.0;
    let mut prev = w[0].v;
    for p in &w[1..] {
        if p.v != prev && !(p.v.is_nan() && prev.is_nan()) {
            n += 1.0;
        }
        prev = p.v;
    }
    n
}

/// Least squares with x in seconds relative to `intercept_time`.
pub(super) fn linear_regression(w: &[Sample], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = w[0].v;
    let mut const_y = true;
    for (i, p) in w.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_time) as f64 / 1e3;
        sum_x += x;
        sum_y += p.v;
        sum_xy += x * p.v;
        sum_x2 += x * x;
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

pub(super) fn holt_winters(w: &[Sample], sf: f64, tf: f64) -> Result<Option<f64>, Error> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(Error::Execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(Error::Execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        )));
    }
    if w.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, w[0].v);
    let mut b = w[1].v - w[0].v;
    for (i, p) in w.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

pub(super) fn avg_over_time(w: &[Sample]) -> f64 {
    let (mut mean, mut count) = (0.0f64, 0.0);
    for p in w {
        count += 1.0;
        if mean.is_infinite() {
            if p.v.is_infinite() && (mean > 0.0) == (p.v > 0.0) {
                continue;
            }
            if !p.v.is_infinite() && !p.v.is_nan() {
                continue;
            }
        }
        mean += p.v / count - mean / count;
    }
    mean
}

pub(super) fn variance(w: &[Sample]) -> f64 {
    let (mut count, mut mean, mut aux) = (0.0, 0.0, 0.0);
    for p in w {
        count += 1.0;
        let delta = p.v - mean;
        mean += delta / count;
        aux += delta * (p.v - mean);
    }
    aux / count
}
