//! Aggregations folded one input series at a time: `sum`, `avg`, `count`,
//! `min`, `max`, `group`, `stddev` and `stdvar` over a vector selector or a
//! range function of a matrix selector (`sum by (State) (rate(x[1m]))`,
//! most of Ray's dashboards). The input vector is never held whole: each
//! series, as it is made, is added into its group's running value at every
//! step and dropped, so such a query holds its groups and one series.
//!
//! Per step, a group receives its series in input order, as the per-step
//! loop in `aggregate` adds them, so the floating-point results are the
//! same bit for bit; groups come out in the order that loop creates them
//! (first step with a value, then first series at that step).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet, FxHasher};

use super::aggregate::group_labels;
use super::functions::unwrap_parens;
use super::{Error, Evaluator, StepSeries, Val, range};
use crate::model::{Labels, METRIC_NAME, Sample};
use crate::promql::parser::{AggOp, Aggregate, Expr};

/// A step slot that holds no value yet: no step is at this time.
const ABSENT: i64 = i64::MIN;

/// The end of a chain of groups with one hash.
const NO_GROUP: u32 = u32::MAX;

/// One group's running values, one slot per step.
///
/// The slots are the group's answer in the making: a slot's time is its
/// step's once the group has a value there ([`ABSENT`] before), and the
/// slots without one are dropped in place at the end, so the answer is
/// not copied out of the running values into an allocation of its own.
struct Running {
    labels: Labels,
    /// (step, input series) that created the group's first value: the
    /// order in which the per-step loop would have output it.
    first: (usize, usize),
    /// Per step: the sum, minimum, maximum or count; the running mean
    /// (`avg`); the running squares (`stddev`, `stdvar`).
    points: Vec<Sample>,
    /// The next group whose labels hash as this one's, `NO_GROUP` at the
    /// end of the chain.
    same: u32,
    /// Values added at each step (`avg`, `stddev`, `stdvar` only), then
    /// the running mean at each step (`stddev`, `stdvar` only): one
    /// allocation rather than two keeps a group 24 bytes smaller, 83 k
    /// groups times the doubling of their list.
    extra: Vec<f64>,
}

/// The aggregation `a` folded over its input series as they are made, or
/// `None` when its operator or input is not one that folds.
pub(super) fn try_fold(ev: &mut Evaluator<'_>, a: &Aggregate) -> Result<Option<Val>, Error> {
    use AggOp::*;
    if a.param.is_some()
        || !matches!(
            a.op,
            Sum | Avg | Count | Min | Max | Group | Stddev | Stdvar
        )
    {
        return Ok(None);
    }
    let grouping: Vec<&str> = a.grouping.iter().map(String::as_str).collect();
    // Whether a series' label belongs to its group's labels, as
    // `group_labels` decides.
    let kept = |name: &str| {
        if a.without {
            name != METRIC_NAME && !grouping.contains(&name)
        } else {
            grouping.contains(&name)
        }
    };
    let steps = ev.steps();
    let with_mean = matches!(a.op, Stddev | Stdvar);
    let with_count = matches!(a.op, Avg | Stddev | Stdvar);
    let extra = steps * (usize::from(with_count) + usize::from(with_mean));
    let mut groups: Vec<Running> = Vec::new();
    // Groups by a hash of their labels, found without building the labels
    // of each series' group: most series join a group that exists. The map
    // holds the first group of a hash and the groups chain the rest: a
    // list per hash was an allocation per group, 2.5 MiB at 83 k groups.
    let mut index: FxHashMap<u64, u32> = FxHashMap::default();
    let mut next = 0usize;
    let mut add =
        |ev: &mut Evaluator<'_>, labels: &Labels, points: &[Sample]| -> Result<(), Error> {
            let i = next;
            next += 1;
            let mut h = FxHasher::default();
            for l in labels.iter().filter(|l| kept(&l.name)) {
                l.hash(&mut h);
            }
            let head = index.entry(h.finish()).or_insert(NO_GROUP);
            let mut found = None;
            let mut g = *head;
            while g != NO_GROUP {
                let r = &groups[g as usize];
                if r.labels.iter().eq(labels.iter().filter(|l| kept(&l.name))) {
                    found = Some(g as usize);
                    break;
                }
                g = r.same;
            }
            let gi = match found {
                Some(g) => g,
                None => {
                    // A group holds a value per step until the answer is made.
                    ev.add_samples(steps)?;
                    let key = group_labels(labels, &grouping, a.without);
                    let Ok(new) = u32::try_from(groups.len()) else {
                        return Err(Error::TooManySamples("query execution"));
                    };
                    let same = std::mem::replace(head, new);
                    groups.push(Running {
                        labels: key,
                        first: (usize::MAX, usize::MAX),
                        same,
                        points: vec![Sample { t: ABSENT, v: 0.0 }; steps],
                        extra: vec![0.0; extra],
                    });
                    groups.len() - 1
                }
            };
            let g = &mut groups[gi];
            if a.op == Sum {
                sum_into(g, i, points, ev.start, ev.interval);
                ev.samples -= points.len();
                return Ok(());
            }
            // Points are at step times, ascending: most are at the step
            // after the last one, which a multiplication confirms.
            let mut next = 0usize;
            for p in points {
                let k = if ev.ts(next) == p.t {
                    next
                } else {
                    ((p.t - ev.start) / ev.interval) as usize
                };
                next = k + 1;
                let v = p.v;
                let slot = &mut g.points[k];
                if slot.t == ABSENT {
                    slot.t = ev.ts(k);
                    slot.v = match a.op {
                        Stddev | Stdvar => 0.0,
                        Count => 1.0,
                        _ => v,
                    };
                    if with_count {
                        g.extra[k] = 1.0;
                    }
                    if with_mean {
                        g.extra[steps + k] = v;
                    }
                    g.first = g.first.min((k, i));
                    continue;
                }
                if with_count {
                    g.extra[k] += 1.0;
                }
                match a.op {
                    Sum => slot.v += v,
                    Count => slot.v += 1.0,
                    Avg => {
                        let (mean, count) = (slot.v, g.extra[k]);
                        if mean.is_infinite() {
                            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                                continue;
                            }
                            if !v.is_infinite() && !v.is_nan() {
                                continue;
                            }
                        }
                        slot.v = mean + (v / count - mean / count);
                    }
                    Min if slot.v > v || slot.v.is_nan() => slot.v = v,
                    Max if slot.v < v || slot.v.is_nan() => slot.v = v,
                    Stddev | Stdvar => {
                        let delta = v - g.extra[steps + k];
                        g.extra[steps + k] += delta / g.extra[k];
                        slot.v += delta * (v - g.extra[steps + k]);
                    }
                    _ => {}
                }
            }
            // Folded in: the series' points are dropped now.
            ev.samples -= points.len();
            Ok(())
        };
    // Grouping by labels looks at those of each series alone: storage
    // copies out just these, 1 or 2 of Ray's 12 a series, where copying
    // them all was a tenth of a large aggregation (docs/performance.md).
    // `without` keeps the labels not named.
    let keep =
        || -> Option<Arc<[String]>> { (!a.without).then(|| a.grouping.iter().cloned().collect()) };
    match unwrap_parens(&a.expr) {
        Expr::VectorSelector(vs) => {
            let keep = keep();
            ev.latest_each(vs, false, keep, |ev, s| add(ev, &s.labels, &s.points))?
        }
        Expr::Call(c) => {
            let Some(idx) = c
                .args
                .iter()
                .position(|e| matches!(unwrap_parens(e), Expr::MatrixSelector(_)))
            else {
                return Ok(None);
            };
            if c.func.name == "absent_over_time" {
                return Ok(None);
            }
            // Results that drop the metric name may collide; the check the
            // whole result would get is made as they come, by a 128-bit
            // hash of each series' labels rather than the labels: holding
            // every input series' labels to the end raised the peak of
            // `sum by (deployment, replica) (rate({__name__=~…}[5m]))` over
            // Ray's Serve counters at 500 nodes by tens of MiB
            // (docs/performance.md).
            // Prometheus makes the same check by a 64-bit hash
            // (`Matrix.ContainsSameLabelset`, docs/decisions.md).
            let mut seen: Option<(FxHashSet<u128>, Vec<u8>)> =
                range::may_collide(c, idx).then(|| (FxHashSet::default(), Vec::new()));
            // Only the labels `keep` names are copied out of storage; the
            // check for colliding label sets looks at all of them.
            let keep: Option<Arc<[String]>> = match unwrap_parens(&c.args[idx]) {
                Expr::MatrixSelector(_) if seen.is_none() => keep(),
                _ => None,
            };
            range::each(ev, c, idx, &mut [], keep, |ev, labels, points| {
                let Some((seen, buf)) = &mut seen else {
                    return add(ev, &labels, points);
                };
                if !seen.insert(labels.hash128(buf)) {
                    return Err(range::duplicate());
                }
                add(ev, &labels, points)
            })?;
        }
        _ => return Ok(None),
    }
    drop(index);
    // The groups in the order the per-step loop makes them, by a sorted
    // list of their places: a stable sort of the groups themselves took a
    // scratch copy of up to 8 MiB of them at the query's peak.
    let mut order: Vec<u32> = (0..groups.len() as u32).collect();
    order.sort_by_key(|&g| groups[g as usize].first);
    let mut out = Vec::with_capacity(groups.len());
    for g in order {
        let g = &mut groups[g as usize];
        let (labels, mut points) = (std::mem::take(&mut g.labels), std::mem::take(&mut g.points));
        let count = std::mem::take(&mut g.extra);
        if matches!(a.op, Group | Stddev | Stdvar) {
            for (k, p) in points.iter_mut().enumerate() {
                if p.t == ABSENT {
                    continue;
                }
                p.v = match a.op {
                    Group => 1.0,
                    Stddev => (p.v / count[k]).sqrt(),
                    _ => p.v / count[k],
                };
            }
        }
        drop(count);
        points.retain(|p| p.t != ABSENT);
        out.push(StepSeries { labels, points });
    }
    Ok(Some(Val::Vector(out)))
}

/// Adds the points of input series `i` into the running sums of group
/// `g`: the fold of `sum`, Ray's most common aggregation, with nothing
/// looked up per point but its step.
fn sum_into(g: &mut Running, i: usize, points: &[Sample], start: i64, interval: i64) {
    let Running {
        first,
        points: slots,
        ..
    } = g;
    // Points are at step times, ascending: most are at the step after the
    // last one, which a multiplication confirms.
    let mut next = 0usize;
    for p in points {
        let t = start + next as i64 * interval;
        let k = if t == p.t {
            next
        } else {
            ((p.t - start) / interval) as usize
        };
        next = k + 1;
        let slot = &mut slots[k];
        if slot.t == ABSENT {
            // The first value is taken as it is: `0 + -0` would be `0`.
            slot.t = start + k as i64 * interval;
            slot.v = p.v;
            *first = (*first).min((k, i));
        } else {
            slot.v += p.v;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Labels;
    use crate::promql::engine::{Engine, Value};
    use crate::promql::parser::parse_expr;
    use crate::storage::Appendable;
    use crate::tsdb::{Head, HeadOptions};

    /// Series `f{g, i}` and `h{g, i}` with values that include NaN, ±Inf,
    /// resets and gaps, at uneven times.
    fn head(seed: u64) -> Head {
        let mut rng = crate::testing::Rng(seed.max(1));
        let mut rnd = move || rng.next();
        let h = Head::new(HeadOptions::default());
        let mut app = h.appender();
        for name in ["f", "h"] {
            for i in 0..40 {
                let g = (i % 4).to_string();
                let l = Labels::from_pairs([("__name__", name), ("g", &g), ("i", &i.to_string())]);
                let mut t = (rnd() % 20_000) as i64;
                let mut v = 0.0;
                while t < 600_000 {
                    v = match rnd() % 50 {
                        0 => f64::NAN,
                        1 => f64::INFINITY,
                        2 => f64::NEG_INFINITY,
                        3 => 0.0,
                        _ => v + (rnd() % 1000) as f64 / 7.0,
                    };
                    app.append(0, &l, t, v).unwrap();
                    // Gaps longer than the lookback now and then.
                    t += if rnd() % 40 == 0 {
                        400_000
                    } else {
                        5_000 + (rnd() % 20_000) as i64
                    };
                }
            }
        }
        app.commit().unwrap();
        h
    }

    /// A value's bits, every NaN as one: its sign and payload depend on
    /// the order the compiler gives an addition's operands, and the API
    /// writes every NaN as `NaN`.
    fn canon(v: f64) -> u64 {
        if v.is_nan() {
            f64::NAN.to_bits()
        } else {
            v.to_bits()
        }
    }

    /// A result as labels and value bits, in its order.
    fn bits(v: Value) -> Vec<(String, Vec<(i64, u64)>)> {
        match v {
            Value::Matrix(m) => m
                .into_iter()
                .map(|s| {
                    let p = s.samples.iter().map(|p| (p.t, canon(p.v))).collect();
                    (s.labels.to_string(), p)
                })
                .collect(),
            Value::Vector(v) => v
                .into_iter()
                .map(|s| (s.labels.to_string(), vec![(s.t, canon(s.v))]))
                .collect(),
            other => vec![(format!("{other:?}"), Vec::new())],
        }
    }

    #[test]
    fn folded_aggregations_equal_the_per_step_loop_bit_for_bit() {
        let seed = 22;
        println!("seed {seed}");
        let h = head(seed);
        let e = Engine::default();
        let ops = [
            "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar",
        ];
        let inputs = [
            "{__name__=~\"f|h\"}",
            "f",
            "rate(f[1m])",
            "max_over_time(f[2m])",
            "last_over_time({__name__=~\"f|h\"}[1m])",
            "increase(f[5m] offset 1m)",
            // A match-all matcher checked on the selected series, whose
            // label the grouping may not keep.
            "rate(f{i=~\".*\"}[1m])",
        ];
        let groupings = ["", " by (g)", " without (i)", " by (i)", " by (__name__)"];
        for op in ops {
            for input in inputs {
                for grouping in groupings {
                    let folded = format!("{op}{grouping} ({input})");
                    // A label_replace that changes nothing stops the fold.
                    let looped = format!(
                        "{op}{grouping} (label_replace({input}, \"z\", \"\", \"z\", \"\"))"
                    );
                    let (f, l) = (parse_expr(&folded).unwrap(), parse_expr(&looped).unwrap());
                    let a = e.range(&h, &f, 30_000, 600_000, 15_000).map(bits);
                    let b = e.range(&h, &l, 30_000, 600_000, 15_000).map(bits);
                    assert_eq!(a, b, "{folded}");
                    for t in [0, 100_000, 333_000, 700_000] {
                        let a = e.instant(&h, &f, t).map(bits);
                        let b = e.instant(&h, &l, t).map(bits);
                        assert_eq!(a, b, "{folded} at {t}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_folded_range_function_still_refuses_colliding_labelsets() {
        let h = head(7);
        let e = Engine::default();
        let expr = parse_expr("sum(rate({__name__=~\"f|h\"}[1m]))").unwrap();
        assert_eq!(
            e.instant(&h, &expr, 300_000).unwrap_err().to_string(),
            "vector cannot contain metrics with the same labelset"
        );
    }
}
