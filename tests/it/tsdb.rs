//! End-to-end tests of the in-memory head through the storage seam:
//! visibility, order errors, concurrency, matcher semantics, time ranges, gc.

use std::collections::BTreeSet;

use raymon::model::{Labels, MatchOp, Matcher, STALE_NAN_BITS, Sample};
use raymon::storage::{Appendable, Error, Queryable, SelectHints, Series};
use raymon::tsdb::{Head, HeadOptions};

fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
    Matcher::new(op, n, v).unwrap()
}

fn eq(n: &str, v: &str) -> Matcher {
    Matcher::equal(n, v)
}

fn lbls(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn select(head: &Head, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<Series> {
    head.querier(mint, maxt).unwrap().select(ms).unwrap()
}

fn all(head: &Head, ms: &[Matcher]) -> Vec<Series> {
    select(head, i64::MIN, i64::MAX, ms)
}

fn samples(pairs: &[(i64, f64)]) -> Vec<Sample> {
    pairs.iter().map(|&(t, v)| Sample { t, v }).collect()
}

#[test]
fn commit_makes_samples_visible_and_rollback_discards() {
    let head = Head::default();
    let up = lbls(&[("__name__", "up"), ("job", "ray")]);
    let mut app = head.appender();
    let r = app.append(0, &up, 1000, 1.0).unwrap();
    assert_ne!(r, 0);
    assert_eq!(app.append(r, &up, 2000, 2.0).unwrap(), r);
    assert!(
        all(&head, &[eq("job", "ray")]).is_empty(),
        "visible before commit"
    );
    app.commit().unwrap();
    let got = all(&head, &[eq("job", "ray")]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels, up);
    assert_eq!(got[0].samples, samples(&[(1000, 1.0), (2000, 2.0)]));

    let mut app = head.appender();
    app.append(r, &up, 3000, 3.0).unwrap();
    app.rollback();
    // A dropped appender rolls back too.
    let mut app = head.appender();
    app.append(r, &up, 4000, 4.0).unwrap();
    drop(app);
    assert_eq!(all(&head, &[eq("job", "ray")])[0].samples.len(), 2);

    // After a rollback the same timestamps are appendable again.
    let mut app = head.appender();
    app.append(r, &up, 3000, 30.0).unwrap();
    app.commit().unwrap();
    assert_eq!(
        all(&head, &[eq("job", "ray")])[0].samples.last(),
        Some(&Sample { t: 3000, v: 30.0 })
    );
}

#[test]
fn out_of_order_and_duplicate_samples() {
    let head = Head::default();
    let s = lbls(&[("__name__", "x")]);
    let mut app = head.appender();
    let r = app.append(0, &s, 100, 1.0).unwrap();
    app.commit().unwrap();

    let mut app = head.appender();
    assert!(matches!(
        app.append(r, &s, 50, 1.0),
        Err(Error::OutOfOrderSample)
    ));
    assert!(matches!(
        app.append(0, &s, 50, 1.0),
        Err(Error::OutOfOrderSample)
    ));
    assert!(matches!(
        app.append(r, &s, 100, 2.0),
        Err(Error::DuplicateSampleForTimestamp)
    ));
    // The identical sample is accepted and not stored twice.
    assert_eq!(app.append(r, &s, 100, 1.0).unwrap(), r);
    // Order errors within one batch.
    app.append(r, &s, 200, 5.0).unwrap();
    assert!(matches!(
        app.append(r, &s, 150, 1.0),
        Err(Error::OutOfOrderSample)
    ));
    assert!(matches!(
        app.append(0, &s, 200, 6.0),
        Err(Error::DuplicateSampleForTimestamp)
    ));
    app.append(0, &s, 200, 5.0).unwrap();
    assert!(Error::OutOfOrderSample.is_sample_error());
    app.commit().unwrap();
    assert_eq!(
        all(&head, &[eq("__name__", "x")])[0].samples,
        samples(&[(100, 1.0), (200, 5.0)])
    );

    // NaNs compare by bits: the stale marker is not the same as another NaN.
    let mut app = head.appender();
    app.append(r, &s, 300, f64::from_bits(STALE_NAN_BITS))
        .unwrap();
    app.commit().unwrap();
    let mut app = head.appender();
    app.append(r, &s, 300, f64::from_bits(STALE_NAN_BITS))
        .unwrap();
    assert!(matches!(
        app.append(r, &s, 300, f64::NAN),
        Err(Error::DuplicateSampleForTimestamp)
    ));
    app.commit().unwrap();
    assert_eq!(all(&head, &[eq("__name__", "x")])[0].samples.len(), 3);
}

#[test]
fn empty_label_set_is_refused() {
    let head = Head::default();
    let mut app = head.appender();
    assert!(app.append(0, &Labels::new(), 1, 1.0).is_err());
}

#[test]
fn stale_nan_and_special_values_round_trip_bit_exactly() {
    let head = Head::default();
    let s = lbls(&[("__name__", "g"), ("instance", "a")]);
    let values = [
        1.5,
        f64::from_bits(STALE_NAN_BITS),
        -0.0,
        f64::INFINITY,
        f64::from_bits(STALE_NAN_BITS),
        f64::NEG_INFINITY,
        f64::NAN,
        2.5,
    ];
    // Spread over several chunks and a chunk range boundary.
    let mut r = 0;
    let mut want = Vec::new();
    for i in 0..1000i64 {
        let mut app = head.appender();
        let v = values[i as usize % values.len()];
        r = app.append(r, &s, i * 15_000, v).unwrap();
        app.commit().unwrap();
        want.push((i * 15_000, v.to_bits()));
    }
    assert!(head.stats().num_chunks > 4);
    let got: Vec<(i64, u64)> = all(&head, &[eq("instance", "a")])[0]
        .samples
        .iter()
        .map(|s| (s.t, s.v.to_bits()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn concurrent_appenders() {
    let head = Head::default();
    let threads = 4;
    let per_thread = 500;
    let scrapes = 20;
    std::thread::scope(|scope| {
        for th in 0..threads {
            let head = head.clone();
            scope.spawn(move || {
                let sets: Vec<Labels> = (0..per_thread)
                    .map(|i| {
                        Labels::from_pairs([
                            ("__name__", format!("m{}", i % 7)),
                            ("thread", th.to_string()),
                            ("i", i.to_string()),
                        ])
                    })
                    .collect();
                let mut refs = vec![0; per_thread];
                for k in 0..scrapes {
                    let mut app = head.appender();
                    for (i, l) in sets.iter().enumerate() {
                        refs[i] = app
                            .append(refs[i], l, k * 1000, (k + i as i64) as f64)
                            .unwrap();
                    }
                    // Every thread also races to create the same shared series.
                    app.append(
                        0,
                        &Labels::from_pairs([("__name__", "shared"), ("k", &k.to_string())]),
                        5,
                        1.0,
                    )
                    .unwrap();
                    app.commit().unwrap();
                }
            });
        }
    });
    let got = all(&head, &[m(MatchOp::Regex, "__name__", "m.*")]);
    assert_eq!(got.len(), threads * per_thread);
    for s in &got {
        assert_eq!(s.samples.len(), scrapes as usize);
        assert!(s.samples.windows(2).all(|w| w[0].t < w[1].t));
    }
    let shared = all(&head, &[eq("__name__", "shared")]);
    assert_eq!(shared.len(), scrapes as usize);
    assert!(shared.iter().all(|s| s.samples == samples(&[(5, 1.0)])));
    assert_eq!(
        head.stats().num_series,
        threads * per_thread + scrapes as usize
    );
}

/// Series for the matcher table: names are `s0`..`s5`.
fn matcher_head() -> (Head, Vec<Labels>) {
    let sets = vec![
        lbls(&[("__name__", "s0"), ("a", "1"), ("b", "x")]),
        lbls(&[("__name__", "s1"), ("a", "2"), ("b", "x")]),
        lbls(&[("__name__", "s2"), ("a", "1")]),
        lbls(&[("__name__", "s3"), ("b", "y")]),
        lbls(&[("__name__", "s4"), ("a", "10"), ("c", "")]),
        lbls(&[("__name__", "s5"), ("a", "x|y"), ("b", "foo\nbar")]),
    ];
    let head = Head::default();
    let mut app = head.appender();
    for l in &sets {
        app.append(0, l, 1000, 1.0).unwrap();
    }
    app.commit().unwrap();
    (head, sets)
}

#[test]
fn matcher_semantics_table() {
    use MatchOp::*;
    let (head, sets) = matcher_head();
    let table: Vec<(Vec<Matcher>, &[&str])> = vec![
        (vec![eq("a", "1")], &["s0", "s2"]),
        (vec![eq("a", "1"), eq("b", "x")], &["s0"]),
        (vec![m(NotEqual, "a", "1")], &["s1", "s3", "s4", "s5"]),
        (vec![m(NotEqual, "a", "")], &["s0", "s1", "s2", "s4", "s5"]),
        (vec![eq("a", "")], &["s3"]),
        (vec![eq("c", "")], &["s0", "s1", "s2", "s3", "s4", "s5"]),
        (
            vec![m(Regex, "a", ".*")],
            &["s0", "s1", "s2", "s3", "s4", "s5"],
        ),
        (vec![m(Regex, "a", ".+")], &["s0", "s1", "s2", "s4", "s5"]),
        (vec![m(Regex, "a", "1|2")], &["s0", "s1", "s2"]),
        (vec![m(Regex, "a", "1.*")], &["s0", "s2", "s4"]),
        (vec![m(Regex, "a", "1|")], &["s0", "s2", "s3"]),
        (vec![m(NotRegex, "a", "1")], &["s1", "s3", "s4", "s5"]),
        (vec![m(NotRegex, "a", "1|2")], &["s3", "s4", "s5"]),
        (vec![m(NotRegex, "a", ".+")], &["s3"]),
        (vec![m(NotRegex, "a", ".*")], &[]),
        (vec![m(NotRegex, "a", "")], &["s0", "s1", "s2", "s4", "s5"]),
        (vec![m(Regex, "a", "x\\|y")], &["s5"]),
        (vec![m(Regex, "b", ".*")], &["s0", "s1", "s2", "s3", "s4"]),
        (
            vec![m(Regex, "b", "(?s).*")],
            &["s0", "s1", "s2", "s3", "s4", "s5"],
        ),
        (
            vec![m(Regex, "a", ".+"), m(NotEqual, "a", "1")],
            &["s1", "s4", "s5"],
        ),
        (
            vec![m(Regex, "a", ".*"), m(NotEqual, "a", "")],
            &["s0", "s1", "s2", "s4", "s5"],
        ),
        (vec![eq("a", ""), m(Regex, "a", ".+")], &[]),
        (vec![eq("a", "1"), m(NotRegex, "b", "x")], &["s2"]),
        (vec![eq("b", ""), m(NotEqual, "a", "1")], &["s4"]),
        (vec![eq("nope", "")], &["s0", "s1", "s2", "s3", "s4", "s5"]),
        (vec![eq("nope", "1")], &[]),
        (
            vec![m(NotEqual, "nope", "1")],
            &["s0", "s1", "s2", "s3", "s4", "s5"],
        ),
        (vec![eq("a", "3")], &[]),
    ];
    for (ms, want) in table {
        let got: Vec<String> = all(&head, &ms)
            .iter()
            .map(|s| s.labels.metric_name().unwrap().to_string())
            .collect();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want, "matchers {ms:?}");
        // The same as filtering every series, a missing label being "".
        let brute: Vec<&str> = sets
            .iter()
            .filter(|l| ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
            .map(|l| l.metric_name().unwrap())
            .collect();
        assert_eq!(brute, want, "brute force {ms:?}");
    }
    // No matchers select nothing.
    assert!(all(&head, &[]).is_empty());
}

#[test]
fn results_are_sorted_by_labels() {
    let head = Head::default();
    let mut app = head.appender();
    for i in (0..50).rev() {
        let l = Labels::from_pairs([("__name__", "z"), ("i", &format!("{i:03}"))]);
        app.append(0, &l, 1, i as f64).unwrap();
        let l = Labels::from_pairs([("__name__", "a"), ("i", &format!("{i:03}"))]);
        app.append(0, &l, 1, i as f64).unwrap();
    }
    app.commit().unwrap();
    let got = all(&head, &[m(MatchOp::Regex, "i", ".+")]);
    assert_eq!(got.len(), 100);
    assert!(got.windows(2).all(|w| w[0].labels < w[1].labels));
    assert_eq!(got[0].labels.metric_name(), Some("a"));
}

/// A selection's labels are held as ranks in a table of its distinct
/// strings until they are handed out: series of random label sets (names
/// and values that are prefixes of each other, multi-byte and NUL
/// characters, different label counts, spread over every shard) come out
/// in the order and with the labels that sorting their `Labels` gives.
#[test]
fn issue_22_selection_ranks_order_as_labels() {
    let mut rng =
        crate::support::Rng::seeded("issue_22_selection_ranks_order_as_labels", 0x22_5e1e);
    let words = [
        "a", "ab", "abc", "b", "ba", "z", "\u{e9}", "a\u{0}", "10", "9",
    ];
    for round in 0..6 {
        let head = Head::default();
        let mut want = BTreeSet::new();
        let mut app = head.appender();
        for _ in 0..600 {
            let mut pairs = vec![("__name__".to_string(), "m".to_string())];
            for name in ["a", "ab", "b", "job", "z"] {
                if rng.below(3) > 0 {
                    let v = format!(
                        "{}{}",
                        words[rng.below(words.len())],
                        words[rng.below(words.len())]
                    );
                    pairs.push((name.to_string(), v));
                }
            }
            let l = Labels::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            app.append(0, &l, 1_000 + round, 1.0).unwrap();
            want.insert(l);
        }
        app.commit().unwrap();
        let want: Vec<Labels> = want.into_iter().collect();
        let got: Vec<Labels> = all(&head, &[eq("__name__", "m")])
            .into_iter()
            .map(|s| s.labels)
            .collect();
        assert_eq!(got, want, "round {round}");
    }
}

/// Large selections are decoded beside the caller: the series still come
/// in label order, a series whose chunk spans the range without a sample in
/// it is left out, and a caller that stops gets nothing after that.
#[test]
fn large_selections_stream_in_order_and_stop_when_asked() {
    let head = Head::default();
    let n = 1500;
    let mut want = Vec::new();
    let mut app = head.appender();
    // Appended in an order unlike the labels' so that sorting matters.
    for i in (0..n).map(|i| (i * 7919) % n) {
        let l = lbls(&[("__name__", "big"), ("i", &format!("{i:05}"))]);
        let ts: Vec<i64> = match i % 3 {
            // Before and after the range, in one chunk that overlaps it.
            0 => vec![1_000, 50_000],
            1 => (0..40).map(|k| k * 1_000 + i as i64 % 7).collect(),
            _ => vec![20_000 + i as i64],
        };
        for &t in &ts {
            app.append(0, &l, t, t as f64 * 0.5 + i as f64).unwrap();
        }
        let kept: Vec<(i64, f64)> = ts
            .iter()
            .filter(|&&t| (10_000..=30_000).contains(&t))
            .map(|&t| (t, t as f64 * 0.5 + i as f64))
            .collect();
        if !kept.is_empty() {
            want.push((l, samples(&kept)));
        }
    }
    app.commit().unwrap();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(want.len(), 1000);
    let q = head.querier(10_000, 30_000).unwrap();
    let ms = [eq("__name__", "big")];
    let got: Vec<(Labels, Vec<Sample>)> = q
        .select(&ms)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect();
    assert_eq!(got, want);
    for stop in [1, 16, 17, 333, 999, 1000] {
        let mut seen = Vec::new();
        q.select_each(&ms, &mut |s| {
            seen.push(s.labels);
            if seen.len() == stop {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
        let first: Vec<Labels> = want[..stop].iter().map(|w| w.0.clone()).collect();
        assert_eq!(seen, first, "stopping after {stop}");
    }
}

/// A large selection is decoded and prepared on two threads: every series
/// is prepared once, with what its preparation returned beside it, in label
/// order, as a small selection of the same series gives them; a caller that
/// stops gets nothing after that.
#[test]
fn large_selections_are_prepared_in_order_on_either_thread() {
    let head = Head::default();
    let n = 2000;
    let mut app = head.appender();
    for i in (0..n).map(|i| (i * 7919) % n) {
        let l = lbls(&[("__name__", "prep"), ("i", &format!("{i:05}"))]);
        for k in 0..(1 + i % 50) {
            app.append(0, &l, k as i64 * 1_000, (i * k) as f64 * 0.25)
                .unwrap();
        }
    }
    app.commit().unwrap();
    let q = head.querier(0, 60_000).unwrap();
    let ms = [eq("__name__", "prep")];
    let want = q.select(&ms).unwrap();
    assert_eq!(want.len(), n);
    // The samples' sum and times' sum, so that no sample is missed,
    // and their count handed over beside it.
    let prep = |s: &mut Series| {
        let n = s.samples.len();
        let v = s.samples.iter().map(|p| p.v).sum();
        let t = s.samples.iter().map(|p| p.t).sum();
        s.samples = vec![Sample { t, v }];
        n
    };
    for stop in [1, 15, 16, 17, 100, 1999, 2000, usize::MAX] {
        let mut got = Vec::new();
        q.select_prepared(&ms, &SelectHints::default(), &prep, &mut |s, k| {
            got.push((s, k));
            if got.len() == stop {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(got.len(), stop.min(n), "stopping after {stop}");
        for ((s, k), w) in got.iter().zip(&want) {
            let mut w = w.clone();
            assert_eq!(*k, w.samples.len(), "{}", w.labels);
            prep(&mut w);
            assert_eq!(s, &w);
        }
    }
}

/// A large selection takes each series' chunks when its batch is decoded,
/// not all at once: samples appended while the caller works through the
/// first series, and chunks that close meanwhile, lose nothing that was
/// there when the select began, and every series still comes once, in
/// label order.
#[test]
fn issue_22_large_selections_take_chunks_batch_by_batch() {
    let head = Head::default();
    let n = 600;
    let name = |i: usize| lbls(&[("__name__", "late"), ("i", &format!("{i:05}"))]);
    // Samples `ks` of every series, value `i * 1000 + k`, in one commit.
    let append = |ks: std::ops::Range<i64>| {
        let mut app = head.appender();
        for i in 0..n {
            for k in ks.clone() {
                app.append(0, &name(i), k * 1_000, (i * 1000 + k as usize) as f64)
                    .unwrap();
            }
        }
        app.commit().unwrap();
    };
    append(0..100);
    let q = head.querier(0, 1_000_000).unwrap();
    let ms = [eq("__name__", "late")];
    let mut got: Vec<Series> = Vec::new();
    q.select_each(&ms, &mut |s| {
        if got.is_empty() {
            // 100 more samples a series: every open chunk (120 samples at
            // most) closes and a new one opens, before most batches are taken.
            append(100..200);
        }
        got.push(s);
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(got.len(), n);
    for (i, s) in got.iter().enumerate() {
        assert_eq!(s.labels, name(i));
        // The first 100 samples, then whichever later ones the series'
        // batch found, without a gap.
        assert!(s.samples.len() >= 100, "{}: {}", s.labels, s.samples.len());
        for (k, p) in s.samples.iter().enumerate() {
            assert_eq!(p.t, k as i64 * 1_000, "{}", s.labels);
            assert_eq!(p.v, (i * 1000 + k) as f64, "{}", s.labels);
        }
    }
    // The batches after the first few found the new samples.
    assert_eq!(got[n - 1].samples.len(), 200);
}

/// A preparation that panics ends a large select with that panic, on
/// whichever of the two threads it ran, instead of leaving the caller
/// waiting for a batch that will not come.
#[test]
fn a_panicking_preparation_ends_a_large_select() {
    let head = Head::default();
    let mut app = head.appender();
    for i in 0..2000 {
        let l = lbls(&[("__name__", "boom"), ("i", &format!("{i:05}"))]);
        app.append(0, &l, 1_000, i as f64).unwrap();
    }
    app.commit().unwrap();
    let q = head.querier(0, 60_000).unwrap();
    for bad in [0, 17, 900, 1999] {
        let name = format!("{bad:05}");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.select_prepared(
                &[eq("__name__", "boom")],
                &SelectHints::default(),
                &|s| {
                    assert_ne!(s.labels.get("i"), Some(name.as_str()), "the bad series");
                    0
                },
                &mut |_, _| std::ops::ControlFlow::Continue(()),
            )
        }));
        assert!(r.is_err(), "series {bad}: {r:?}");
    }
}

#[test]
fn time_range_restricts_samples_series_and_labels() {
    let head = Head::default();
    let early = lbls(&[("__name__", "m"), ("when", "early"), ("only_early", "1")]);
    let late = lbls(&[("__name__", "m"), ("when", "late")]);
    let mut app = head.appender();
    let (mut re, mut rl) = (0, 0);
    for i in 0..100 {
        re = app.append(re, &early, i * 1000, i as f64).unwrap();
        rl = app.append(rl, &late, 200_000 + i * 1000, i as f64).unwrap();
    }
    app.commit().unwrap();
    assert_eq!(head.time_bounds(), Some((0, 299_000)));

    let got = select(&head, 10_000, 20_000, &[eq("__name__", "m")]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels, early);
    assert_eq!(got[0].samples.len(), 11);
    assert_eq!(got[0].samples[0], Sample { t: 10_000, v: 10.0 });
    assert_eq!(got[0].samples[10], Sample { t: 20_000, v: 20.0 });

    // Inclusive at both ends.
    let got = select(&head, 99_000, 200_000, &[eq("__name__", "m")]);
    assert_eq!(
        got.iter().map(|s| s.samples.len()).collect::<Vec<_>>(),
        vec![1, 1]
    );
    assert!(select(&head, 100_000, 199_999, &[eq("__name__", "m")]).is_empty());

    let q = head.querier(250_000, 260_000).unwrap();
    assert_eq!(q.label_names(&[]).unwrap(), vec!["__name__", "when"]);
    assert_eq!(q.label_values("when", &[]).unwrap(), vec!["late"]);
    assert!(q.label_values("only_early", &[]).unwrap().is_empty());
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    assert_eq!(
        q.label_names(&[]).unwrap(),
        vec!["__name__", "only_early", "when"]
    );
    assert_eq!(q.label_values("when", &[]).unwrap(), vec!["early", "late"]);
    assert_eq!(
        q.label_names(&[eq("when", "late")]).unwrap(),
        vec!["__name__", "when"]
    );
    assert_eq!(
        q.label_values("when", &[eq("only_early", "1")]).unwrap(),
        vec!["early"]
    );
    assert!(q.label_values("missing", &[]).unwrap().is_empty());
    assert!(
        head.querier(400_000, 500_000)
            .unwrap()
            .label_names(&[])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn gc_drops_old_chunks_series_and_postings() {
    let head = Head::new(HeadOptions::default());
    let old = lbls(&[("__name__", "m"), ("pod", "old"), ("gone", "yes")]);
    let live = lbls(&[("__name__", "m"), ("pod", "live")]);
    let hour = 3_600_000;
    let mut app = head.appender();
    let mut r_old = 0;
    for i in 0..240 {
        r_old = app.append(r_old, &old, i * 15_000, 1.0).unwrap();
    }
    let mut r_live = 0;
    for i in 0..(4 * 240) {
        r_live = app.append(r_live, &live, i * 15_000, i as f64).unwrap();
    }
    app.commit().unwrap();
    let before = head.stats();
    assert_eq!(before.num_series, 2);

    let st = head.gc(2 * hour);
    assert_eq!(st.removed_series, 1);
    assert!(st.removed_chunks >= 2 + 4);
    assert_eq!(head.stats().num_series, 1);
    assert!(head.stats().num_symbols < before.num_symbols);
    let got = all(&head, &[eq("__name__", "m")]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels, live);
    assert_eq!(got[0].samples[0].t, 2 * hour);
    assert_eq!(head.time_bounds(), Some((2 * hour, (4 * 240 - 1) * 15_000)));
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    assert_eq!(q.label_values("pod", &[]).unwrap(), vec!["live"]);
    assert!(!q.label_names(&[]).unwrap().contains(&"gone".to_string()));
    assert!(all(&head, &[eq("gone", "yes")]).is_empty());
    assert!(head.series_labels(r_old).is_none());
    assert_eq!(head.series_labels(r_live), Some(live.clone()));

    // Samples older than the gc bound are out of bounds now.
    let mut app = head.appender();
    assert!(matches!(
        app.append(0, &old, hour, 1.0),
        Err(Error::OutOfBounds)
    ));
    // A stale hint falls back to the labels and makes a new series.
    let r_new = app.append(r_old, &old, 5 * hour, 1.0).unwrap();
    assert_ne!(r_new, r_old);
    app.commit().unwrap();
    assert_eq!(all(&head, &[eq("gone", "yes")]).len(), 1);

    // A series with only uncommitted samples survives gc.
    let pending = lbls(&[("__name__", "pending")]);
    let mut app = head.appender();
    app.append(0, &pending, 6 * hour, 1.0).unwrap();
    head.gc(2 * hour);
    app.commit().unwrap();
    assert_eq!(all(&head, &[eq("__name__", "pending")]).len(), 1);

    // Everything gone.
    head.gc(i64::MAX);
    assert_eq!(head.stats().num_series, 0);
    assert_eq!(head.stats().num_symbols, 0);
    assert_eq!(head.time_bounds(), None);
}

/// Ray-like labels over 64 nodes.
fn ray_labels(i: usize) -> Labels {
    raymon::model::synthetic::ray_like_labels(i, 64, 16)
}

#[test]
fn memory_per_series_at_ray_like_labels() {
    let head = Head::default();
    let n = 20_000;
    let sets: Vec<Labels> = (0..n).map(ray_labels).collect();
    assert_eq!(sets[0].len(), 12);
    let mut refs = vec![0; n];
    // Half an hour of 15 s scrapes: one open chunk per series.
    for k in 0..120 {
        let mut app = head.appender();
        for (i, l) in sets.iter().enumerate() {
            refs[i] = app
                .append(refs[i], l, k * 15_000, (k as usize * (i % 5)) as f64)
                .unwrap();
        }
        app.commit().unwrap();
    }
    let st = head.stats();
    assert_eq!(st.num_series, n);
    let per_series = (st.heap_bytes - st.chunk_bytes) / n;
    let chunk_per_series = st.chunk_bytes / n;
    eprintln!(
        "head memory: {per_series} B/series without samples, {chunk_per_series} B/series of chunks (120 samples)"
    );
    assert!(per_series <= 1024, "{per_series} bytes per series");
    assert!(
        st.heap_bytes / n <= 1024 + 256,
        "{} bytes per series",
        st.heap_bytes / n
    );
    let distinct: BTreeSet<&str> = sets
        .iter()
        .flat_map(|l| l.iter().map(|l| l.value.as_str()))
        .collect();
    assert!(st.num_symbols <= distinct.len() + 12);
}

#[test]
fn appends_queries_and_gc_race_without_deadlock_or_loss() {
    let head = Head::default();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let scrapes = 200i64;
    std::thread::scope(|scope| {
        let mut writers = Vec::new();
        for th in 0..3 {
            let head = head.clone();
            writers.push(scope.spawn(move || {
                let sets: Vec<Labels> = (0..200)
                    .map(|i| {
                        Labels::from_pairs([("__name__", format!("w{th}")), ("i", i.to_string())])
                    })
                    .collect();
                let mut refs = vec![0; sets.len()];
                for k in 0..scrapes {
                    let mut app = head.appender();
                    for (i, l) in sets.iter().enumerate() {
                        refs[i] = app.append(refs[i], l, k * 15_000, k as f64).unwrap();
                    }
                    if k % 3 == 0 {
                        app.rollback();
                    } else {
                        app.commit().unwrap();
                    }
                }
            }));
        }
        let reader = scope.spawn(|| {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let q = head.querier(0, i64::MAX).unwrap();
                for s in q.select(&[m(MatchOp::Regex, "__name__", "w.")]).unwrap() {
                    assert!(s.samples.windows(2).all(|w| w[0].t < w[1].t));
                }
                q.label_values("i", &[eq("__name__", "w1")]).unwrap();
                q.label_names(&[]).unwrap();
                // Nothing is old enough to go, but gc walks every shard.
                head.gc(-1);
                rounds += 1;
            }
            rounds
        });
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    let got = all(&head, &[m(MatchOp::Regex, "__name__", "w.")]);
    assert_eq!(got.len(), 600);
    let committed = (0..scrapes).filter(|k| k % 3 != 0).count();
    assert!(got.iter().all(|s| s.samples.len() == committed));
}

/// Every raw sample Prometheus 2.42 stored from a real Ray cluster.
fn real_ray_series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    crate::golden::real_ray_samples()
        .into_iter()
        .map(|(pairs, values)| (Labels::from_pairs(pairs), values))
        .collect()
}

#[test]
fn real_ray_samples_round_trip_and_select_like_brute_force() {
    let data = real_ray_series();
    assert_eq!(data.len(), 5336);
    let head = Head::default();
    // Replay in time order, one appender per scrape timestamp, as the scraper would.
    let mut events: Vec<(i64, usize, f64)> = data
        .iter()
        .enumerate()
        .flat_map(|(i, (_, vs))| vs.iter().map(move |&(t, v)| (t, i, v)))
        .collect();
    assert_eq!(events.len(), 76912);
    events.sort_by_key(|e| (e.0, e.1));
    let mut refs = vec![0; data.len()];
    for batch in events.chunk_by(|a, b| a.0 == b.0) {
        let mut app = head.appender();
        for &(t, i, v) in batch {
            refs[i] = app.append(refs[i], &data[i].0, t, v).unwrap();
        }
        app.commit().unwrap();
    }
    let st = head.stats();
    assert_eq!(st.num_series, data.len());
    eprintln!(
        "real Ray data: {:.2} chunk bytes/sample, {} heap bytes/series",
        st.chunk_bytes as f64 / events.len() as f64,
        st.heap_bytes / data.len()
    );

    // Encoded size on real values, excluding each chunk's first sample
    // (header, varint timestamp and raw value).
    let (mut bytes, mut n) = (0usize, 0usize);
    for (_, vs) in data.iter().filter(|(_, vs)| vs.len() > 1) {
        let mut c = raymon::tsdb::chunkenc::XorChunk::new();
        let mut first = raymon::tsdb::chunkenc::XorChunk::new();
        first.append(vs[0].0, vs[0].1).unwrap();
        for &(t, v) in vs {
            c.append(t, v).unwrap();
        }
        bytes += c.bytes().len() - first.bytes().len();
        n += vs.len() - 1;
    }
    let per_sample = bytes as f64 / n as f64;
    eprintln!("real Ray data: {per_sample:.2} encoded bytes/sample after the first");
    assert!(per_sample < 2.0, "{per_sample}");

    let everything = all(&head, &[m(MatchOp::Regex, "__name__", ".+")]);
    assert_eq!(everything.len(), data.len());
    let mut want: Vec<&(Labels, Vec<(i64, f64)>)> = data.iter().collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    for (got, want) in everything.iter().zip(want) {
        assert_eq!(got.labels, want.0);
        let got: Vec<(i64, u64)> = got.samples.iter().map(|s| (s.t, s.v.to_bits())).collect();
        let want: Vec<(i64, u64)> = want.1.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, want);
    }

    // Dashboard-style selectors agree with filtering every series.
    use MatchOp::*;
    let selectors = vec![
        vec![
            m(Regex, "instance", ".+"),
            m(
                Regex,
                "SessionName",
                "session_2026-11-26_03-35-11_178048_5703",
            ),
            m(Regex, "ray_io_cluster", ".*"),
        ],
        vec![
            eq("__name__", "ray_tasks"),
            m(NotEqual, "State", "FINISHED"),
        ],
        vec![
            m(Regex, "__name__", "ray_node_.*"),
            m(Regex, "instance", "192.0.2.2:8080|192.0.2.2:8081"),
        ],
        vec![
            m(Regex, "model_name", ".*"),
            m(Regex, "WorkerId", ".*"),
            eq("ReplicaId", ""),
        ],
        vec![
            m(Regex, "__name__", "ray_.*"),
            m(NotRegex, "Component", "raylet|core_worker"),
        ],
    ];
    for ms in selectors {
        let got: Vec<Labels> = all(&head, &ms).into_iter().map(|s| s.labels).collect();
        let mut brute: Vec<Labels> = data
            .iter()
            .filter(|(l, _)| ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
            .map(|(l, _)| l.clone())
            .collect();
        brute.sort();
        assert!(!brute.is_empty(), "{ms:?} selects nothing");
        assert_eq!(got, brute, "{ms:?}");
    }
    let names: BTreeSet<String> = data
        .iter()
        .map(|(l, _)| l.metric_name().unwrap().to_string())
        .collect();
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    assert_eq!(
        q.label_values("__name__", &[]).unwrap(),
        names.into_iter().collect::<Vec<_>>()
    );
}

/// Every series Prometheus 2.42 stored from a real Ray cluster (golden data,
/// 10 s scrapes), as XOR chunks and in the form the chunk store keeps.
#[test]
fn real_ray_chunks_are_stored_smaller_and_bit_exact() {
    use raymon::tsdb::chunkenc::{SampleIter, XorChunk, compact};
    let path = crate::support::fixtures_dir().join("ray/golden-prom-2.42/raw-samples.json.gz");
    let gz = std::fs::File::open(path).unwrap();
    let raw: serde_json::Value = serde_json::from_reader(flate2::read::GzDecoder::new(gz)).unwrap();
    let (mut xor_bytes, mut stored_bytes, mut samples, mut series) = (0, 0, 0, 0);
    let mut out = Vec::new();
    for s in raw["data"]["result"].as_array().unwrap() {
        let points: Vec<(i64, u64)> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                let v: f64 = match p[1].as_str().unwrap() {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    x => x.parse().unwrap(),
                };
                (t, v.to_bits())
            })
            .collect();
        let mut chunk = XorChunk::new();
        for &(t, v) in &points {
            chunk.append(t, f64::from_bits(v)).unwrap();
        }
        let encoding = compact(chunk.bytes(), &mut out);
        let back: Vec<(i64, u64)> = SampleIter::new(encoding, &out)
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        assert_eq!(back, points, "{}", s["metric"]);
        xor_bytes += chunk.bytes().len();
        stored_bytes += out.len();
        samples += points.len();
        series += 1;
    }
    let per = |b: usize| b as f64 / samples as f64;
    eprintln!(
        "{series} series, {samples} samples: XOR {:.3} bytes per sample, stored {:.3}",
        per(xor_bytes),
        per(stored_bytes)
    );
    assert!(series > 5_000);
    // Real Ray values are mostly integers and short decimals.
    assert!(
        stored_bytes * 10 < xor_bytes * 8,
        "stored {stored_bytes} bytes against XOR's {xor_bytes}"
    );
}

#[test]
fn series_labels_without_samples_agree_with_select() {
    let data = real_ray_series();
    let head = Head::default();
    for (labels, vs) in &data {
        let mut app = head.appender();
        let mut r = 0;
        for &(t, v) in vs {
            r = app.append(r, labels, t, v).unwrap();
        }
        app.commit().unwrap();
    }
    let (lo, hi) = head.time_bounds().unwrap();
    let sets = [
        vec![m(MatchOp::Regex, "__name__", ".+")],
        vec![
            eq("__name__", "ray_tasks"),
            m(MatchOp::NotEqual, "State", "FINISHED"),
        ],
        vec![
            m(MatchOp::Regex, "__name__", "ray_node_.*"),
            m(MatchOp::Regex, "instance", ".+"),
        ],
    ];
    for ms in &sets {
        for (mint, maxt) in [
            (lo, hi),
            (lo, lo + (hi - lo) / 3),
            (hi - 1000, hi),
            (hi + 1, hi + 1000),
        ] {
            let q = head.querier(mint, maxt).unwrap();
            let selected: Vec<Labels> = q
                .select(ms)
                .unwrap()
                .into_iter()
                .map(|s| s.labels)
                .collect();
            let listed = q.series(ms).unwrap();
            // Chunk ranges may overlap a window between two samples, so
            // the listing may hold more, never less.
            assert!(
                selected.iter().all(|l| listed.binary_search(l).is_ok()),
                "{ms:?} {mint}..{maxt}"
            );
            assert!(listed.windows(2).all(|w| w[0] < w[1]));
            if (mint, maxt) == (lo, hi) {
                assert_eq!(listed, selected, "{ms:?}");
                assert!(!listed.is_empty());
            }
        }
    }
}

#[test]
fn order_errors_within_one_batch_of_samples_by_reference() {
    // A scrape appends the series it knows by reference alone (no labels):
    // a series exposed twice in one body meets the batch's earlier sample.
    let head = Head::default();
    let s = lbls(&[("__name__", "y")]);
    let mut app = head.appender();
    let r = app.append(0, &s, 100, 1.0).unwrap();
    app.commit().unwrap();

    let none = Labels::default();
    let mut app = head.appender();
    assert_eq!(app.append(r, &none, 200, 2.0).unwrap(), r);
    assert!(matches!(
        app.append(r, &none, 200, 3.0),
        Err(Error::DuplicateSampleForTimestamp)
    ));
    assert!(matches!(
        app.append(r, &none, 150, 3.0),
        Err(Error::OutOfOrderSample)
    ));
    // The identical sample is accepted and kept once; a later one follows.
    assert_eq!(app.append(r, &none, 200, 2.0).unwrap(), r);
    assert_eq!(app.append(r, &none, 300, 4.0).unwrap(), r);
    app.commit().unwrap();
    assert_eq!(
        all(&head, &[eq("__name__", "y")])[0].samples,
        samples(&[(100, 1.0), (200, 2.0), (300, 4.0)])
    );
}
