//! The durable store's unit tests: open, restart, checkpoints, retention,
//! flushes to the chunk store, cold series and merging.

use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::model::{Matcher, STALE_NAN_BITS};
use crate::storage::{Appendable, Queryable};

pub(super) fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("rm-db-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

pub(super) fn opts() -> DbOptions {
    DbOptions {
        retention_ms: 0,
        segment_size: 64 << 10,
        // Their samples are from 1970: all would be idle.
        series_idle_ms: 0,
        ..DbOptions::default()
    }
}

pub(super) fn series(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "ray_node_cpu"),
        ("instance", format!("n{i}").as_str()),
    ])
}

fn value(i: usize, k: i64) -> f64 {
    match k % 7 {
        6 => f64::from_bits(STALE_NAN_BITS),
        _ => (i as f64 + 0.1) * k as f64 / 3.0,
    }
}

/// Appends `scrapes` batches of `n` series, one commit each.
pub(super) fn ingest(head: &Head, n: usize, from: i64, scrapes: i64) {
    let mut refs = vec![0; n];
    for k in from..from + scrapes {
        let mut app = head.appender();
        for (i, r) in refs.iter_mut().enumerate() {
            *r = app.append(*r, &series(i), k * 1000, value(i, k)).unwrap();
        }
        app.commit().unwrap();
    }
}

pub(super) fn dump(head: &Head) -> Vec<(Labels, Vec<(i64, u64)>)> {
    select_all(head, Matcher::equal("__name__", "ray_node_cpu"))
}

/// Series `n7`'s samples that a query over `[mint, maxt]` returns.
fn n7_between(head: &Head, mint: i64, maxt: i64) -> Vec<(i64, u64)> {
    head.querier(mint, maxt)
        .unwrap()
        .select(&[Matcher::equal("instance", "n7")])
        .unwrap()
        .remove(0)
        .samples
        .iter()
        .map(|s| (s.t, s.v.to_bits()))
        .collect()
}

/// What [`ingest`] appended to series `n7` at scrapes `ks`.
fn n7_expected(ks: std::ops::RangeInclusive<i64>) -> Vec<(i64, u64)> {
    ks.map(|k| (k * 1000, value(7, k).to_bits())).collect()
}

pub(super) fn expected(n: usize, scrapes: i64) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let mut out: Vec<_> = (0..n)
        .map(|i| {
            (
                series(i),
                (0..scrapes)
                    .map(|k| (k * 1000, value(i, k).to_bits()))
                    .collect(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A store whose series `0..n` took a sample a second over the ten minutes
/// before `now`, series 0 and 1 stopping five minutes before it: idle for
/// the 60 s `series_idle_ms` of `opts`, so `age_out(now)` sends them cold.
pub(super) struct IdleStore {
    pub(super) dir: PathBuf,
    pub(super) db: Db,
    pub(super) opts: DbOptions,
    pub(super) now: i64,
    pub(super) refs: Vec<crate::storage::SeriesRef>,
}

pub(super) fn store_with_two_idle_series(
    tag: &str,
    n: usize,
    value: impl Fn(usize, i64) -> f64,
) -> IdleStore {
    let dir = tmp(tag);
    let opts = DbOptions {
        series_idle_ms: 60_000,
        ..opts()
    };
    let (db, _) = Db::open(&dir, opts.clone()).unwrap();
    let now = now_ms() / 1000 * 1000;
    let base = now - 600_000;
    let mut refs = vec![0; n];
    for k in 0..600i64 {
        let mut app = db.head().appender();
        for (i, r) in refs.iter_mut().enumerate() {
            if i < 2 && k >= 300 {
                continue;
            }
            *r = app
                .append(*r, &series(i), base + k * 1000, value(i, k))
                .unwrap();
        }
        app.commit().unwrap();
    }
    IdleStore {
        dir,
        db,
        opts,
        now,
        refs,
    }
}

#[test]
fn a_crash_loses_no_committed_sample() {
    let dir = tmp("crash");
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert_eq!(st.replay.samples, 0);
    ingest(db.head(), 50, 0, 200);
    // No close: the process dies here.
    drop(db);
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert_eq!(st.replay.samples, 50 * 200);
    assert_eq!(dump(db.head()), expected(50, 200));
    // The second life's references differ; a third life still maps them.
    ingest(db.head(), 50, 200, 100);
    drop(db);
    let (db, _) = Db::open(&dir, opts()).unwrap();
    assert_eq!(dump(db.head()), expected(50, 300));
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints_replace_segments_and_reopen_exactly() {
    let dir = tmp("ckpt");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 40, 0, 300);
    let before = wal::list_segments(&dir.join("wal")).unwrap();
    assert!(before.len() >= 2);
    db.checkpoint().unwrap();
    assert_eq!(db.stats().checkpoints, 1);
    let after = wal::list_segments(&dir.join("wal")).unwrap();
    assert_eq!(after, vec![*before.last().unwrap() + 1]);
    // Samples after the checkpoint live in the WAL only.
    ingest(db.head(), 40, 300, 50);
    drop(db);
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert!(st.checkpoint.is_some());
    assert_eq!(st.checkpoint_series, 40);
    assert_eq!(st.replay.samples, 40 * 50);
    assert_eq!(dump(db.head()), expected(40, 350));
    // Appends continue the restored open chunks.
    ingest(db.head(), 40, 350, 10);
    db.close().unwrap();
    drop(db);
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert_eq!(
        st.replay.samples, 0,
        "a clean close leaves nothing to replay"
    );
    assert_eq!(dump(db.head()), expected(40, 360));
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_fails_commits_loudly_and_ingestion_resumes() {
    let dir = tmp("full");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 5, 0, 10);
    db.wal().set_fail_writes(true);
    let mut app = db.head().appender();
    app.append(0, &series(0), 10_000, 1.0).unwrap();
    app.append(0, &series(99), 10_000, 1.0).unwrap();
    assert!(app.commit().is_err());
    assert_eq!(db.stats().wal_write_failures, 1);
    // Nothing of the refused batch is visible; queries keep working.
    assert_eq!(dump(db.head()), expected(5, 10));
    db.wal().set_fail_writes(false);
    ingest(db.head(), 5, 10, 5);
    drop(db);
    let (db, _) = Db::open(&dir, opts()).unwrap();
    assert_eq!(dump(db.head()), expected(5, 15));
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retention_deletes_old_samples_on_disk_too() {
    let dir = tmp("ret");
    let o = DbOptions {
        retention_ms: 100_000,
        ..opts()
    };
    let (db, _) = Db::open(&dir, opts()).unwrap();
    // The last two hours at 1 s: several closed chunks per series.
    let now = now_ms();
    let start = now - 7_200_000;
    let mut refs = [0; 3];
    for k in 0..7200 {
        let mut app = db.head().appender();
        for (i, r) in refs.iter_mut().enumerate() {
            *r = app
                .append(*r, &series(i), start + k * 1000, value(i, k))
                .unwrap();
        }
        app.commit().unwrap();
    }
    drop(db);
    let (db, _) = Db::open(&dir, o.clone()).unwrap();
    let kept = dump(db.head());
    assert_eq!(kept.len(), 3);
    // Whole chunks go: what is left starts at most one chunk before the cut.
    assert!(kept.iter().all(|(_, s)| s[0].0 >= now - 100_000 - 240_000));
    assert!(
        kept.iter()
            .all(|(_, s)| s.last().unwrap().0 == start + 7_199_000)
    );
    drop(db);
    let (db, st) = Db::open(&dir, o).unwrap();
    assert!(st.checkpoint.is_some());
    assert_eq!(dump(db.head()), kept);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn size_retention_keeps_the_directory_under_the_limit() {
    let dir = tmp("size");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 20, 0, 2000);
    let full = db.disk_bytes();
    let o = DbOptions {
        retention_bytes: full / 3,
        ..opts()
    };
    drop(db);
    let (db, _) = Db::open(&dir, o).unwrap();
    db.apply_retention(0).unwrap();
    assert!(
        db.disk_bytes() <= full / 3,
        "{} > {}",
        db.disk_bytes(),
        full / 3
    );
    let kept = dump(db.head());
    assert!(!kept.is_empty() && kept[0].1.last().unwrap().0 == 1_999_000);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_appenders_replay_completely() {
    let dir = tmp("conc");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    let db = Arc::new(db);
    let threads: Vec<_> = (0..4)
        .map(|th| {
            let head = db.head().clone();
            std::thread::spawn(move || {
                let mut refs = [0; 25];
                for k in 0..200i64 {
                    let mut app = head.appender();
                    for (i, r) in refs.iter_mut().enumerate() {
                        let l = series(th * 25 + i);
                        *r = app.append(*r, &l, k * 1000, value(th * 25 + i, k)).unwrap();
                    }
                    app.commit().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(db);
    let (db, _) = Db::open(&dir, opts()).unwrap();
    assert_eq!(dump(db.head()), expected(100, 200));
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn closed_chunks_move_to_disk_and_read_back() {
    let dir = tmp("kv");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 40, 0, 600);
    let before = db.head().stats();
    assert!(before.num_chunks >= 40 * 4, "{before:?}");
    db.checkpoint().unwrap();
    let after = db.head().stats();
    // Only the open chunk of each series stays in memory.
    assert_eq!(after.num_chunks, 40, "{after:?}");
    assert!(after.chunk_bytes * 3 < before.chunk_bytes);
    assert_eq!(dump(db.head()), expected(40, 600));
    // A query over part of the range reads both places and no more.
    assert_eq!(
        n7_between(db.head(), 100_000, 580_000),
        n7_expected(100..=580)
    );
    ingest(db.head(), 40, 600, 30);
    drop(db);
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert_eq!(st.stored_series, 40);
    assert_eq!(dump(db.head()), expected(40, 630));
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Each series' samples (time, value bits) that a select of `m` over
/// `[mint, maxt]` with `hints` hands over.
fn select_hinted(
    head: &Head,
    m: Matcher,
    mint: i64,
    maxt: i64,
    hints: &crate::storage::SelectHints,
) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let q = head.querier(mint, maxt).unwrap();
    let mut out = Vec::new();
    q.select_prepared(&[m], hints, &|_| 0, &mut |s, _| {
        let samples = s.samples.iter().map(|p| (p.t, p.v.to_bits())).collect();
        out.push((s.labels, samples));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    out
}

#[test]
fn a_latest_value_select_leaves_out_what_memory_makes_older_than_needed() {
    use crate::storage::SelectHints;
    let dir = tmp("hints");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 40, 0, 600);
    db.checkpoint().unwrap();
    ingest(db.head(), 40, 600, 300);
    let (mint, maxt) = (300_000, 899_000);
    let cpu = || Matcher::equal("__name__", "ray_node_cpu");
    let all = select_hinted(db.head(), cpu(), mint, maxt, &SelectHints::default());
    assert_eq!(all.len(), 40);
    let mut trimmed = 0;
    for from in [
        mint - 1_000,
        450_000,
        599_000,
        600_000,
        700_000,
        850_000,
        maxt,
    ] {
        let hints = SelectHints {
            latest_from: Some(from),
            ..SelectHints::default()
        };
        let got = select_hinted(db.head(), cpu(), mint, maxt, &hints);
        assert_eq!(got.len(), all.len(), "from {from}");
        for ((la, a), (lg, g)) in all.iter().zip(&got) {
            assert_eq!(la, lg);
            // A tail of every sample, with the same latest one at or before
            // `from` (when there is one): what every step from `from` on
            // looks up is there.
            assert!(a.ends_with(g), "from {from}: {g:?}");
            let latest = |v: &[(i64, u64)]| v.iter().rev().find(|p| p.0 <= from).copied();
            assert_eq!(latest(a), latest(g), "from {from}");
            trimmed += a.len() - g.len();
        }
    }
    // The chunks on disk hold what came before memory's: left out.
    assert!(trimmed > 0);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_flush_hands_series_to_the_chunk_store_in_key_order() {
    let dir = tmp("kvorder");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 100, 0, 300);
    let head = db.head();
    // Every series has labels to store and closed chunks; references
    // interleave the shards, so shard by shard would not be key order.
    let refs = head.flush_refs(true);
    assert_eq!(refs.len(), 100);
    assert!(refs.windows(2).all(|w| w[0] < w[1]), "{refs:?}");
    let shards: FxHashSet<usize> = refs
        .iter()
        .map(|&r| crate::tsdb::head::shard_of(r))
        .collect();
    assert!(shards.len() > 1, "{shards:?}");
    let mut items = Vec::new();
    head.flush_items(&refs, &mut items);
    let got: Vec<SeriesRef> = items.iter().map(|it| it.r).collect();
    assert_eq!(got, refs);
    assert!(
        items
            .iter()
            .all(|it| it.labels.is_some() && !it.chunks.is_empty())
    );
    // Series that only lack their labels count only for a checkpoint (at
    // 301 s: the samples at 300 s are staleness markers, which close their
    // series' chunks).
    ingest(head, 110, 301, 1);
    assert_eq!(head.flush_refs(false).len(), 100);
    db.flush_closed_chunks().unwrap();
    let left = head.flush_refs(true);
    assert_eq!(left.len(), 10, "{left:?}");
    assert!(head.flush_refs(false).is_empty());
    db.checkpoint().unwrap();
    assert!(head.flush_refs(true).is_empty());
    drop(db);
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert_eq!(st.stored_series, 110);
    let mut want: Vec<_> = (0..110)
        .map(|i| {
            let old = if i < 100 { 0..300 } else { 0..0 };
            let mut samples: Vec<(i64, u64)> =
                old.map(|k| (k * 1000, value(i, k).to_bits())).collect();
            samples.push((301_000, value(i, 301).to_bits()));
            (series(i), samples)
        })
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(dump(db.head()), want);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_crash_between_flush_and_checkpoint_counts_every_sample_once() {
    let dir = tmp("kvcrash");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 30, 0, 200);
    db.checkpoint().unwrap();
    ingest(db.head(), 30, 200, 400);
    // Chunks reach disk, but the crash comes before the checkpoint that
    // would retire the WAL and the older checkpoint holding some of them.
    db.flush_chunks(now_ms()).unwrap();
    ingest(db.head(), 30, 600, 25);
    // And more moved without a sync, as the background thread does between
    // checkpoints.
    ingest(db.head(), 30, 625, 300);
    db.flush_closed_chunks().unwrap();
    ingest(db.head(), 30, 925, 10);
    drop(db);
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert!(st.replay.samples > 0);
    assert_eq!(dump(db.head()), expected(30, 935));
    ingest(db.head(), 30, 935, 200);
    db.close().unwrap();
    drop(db);
    let (db, _) = Db::open(&dir, opts()).unwrap();
    assert_eq!(dump(db.head()), expected(30, 1135));
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retention_deletes_persisted_chunks_and_forgets_dead_series() {
    let dir = tmp("kvret");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    // Series 0..4 run for 4000 s; series 4 stops after 1000 s. The data
    // ends ten minutes ahead of the clock: `Db::open` applies retention
    // with the real time, and on a slow machine that cut must stay behind
    // the one this test makes at `base + 4_000_000`.
    let base = now_ms() / 1000 * 1000 - 4_000_000 + 600_000;
    let mut refs = [0; 5];
    for k in 0..4000i64 {
        let mut app = db.head().appender();
        for (i, r) in refs.iter_mut().enumerate() {
            if i == 4 && k >= 1000 {
                continue;
            }
            *r = app
                .append(*r, &series(i), base + k * 1000, value(i, k))
                .unwrap();
        }
        app.commit().unwrap();
    }
    db.checkpoint().unwrap();
    let o = DbOptions {
        retention_ms: 1_500_000,
        ..opts()
    };
    drop(db);
    let (db, _) = Db::open(&dir, o.clone()).unwrap();
    db.apply_retention(base + 4_000_000).unwrap();
    let kept = dump(db.head());
    assert_eq!(
        kept.len(),
        4,
        "the series that ended before the cut is gone"
    );
    for (_, s) in &kept {
        // Whole chunks go: the first kept one may start before the cut.
        let first = s[0].0 - base;
        assert!(
            (2_500_000 - 240_000..=2_500_000).contains(&first),
            "{first}"
        );
        assert_eq!(s.last().unwrap().0, base + 3_999_000);
    }
    drop(db);
    let (db, st) = Db::open(&dir, o).unwrap();
    assert_eq!(st.stored_series, 4, "its labels left the chunk store");
    assert_eq!(dump(db.head()), kept);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn select_all(head: &Head, m: Matcher) -> Vec<(Labels, Vec<(i64, u64)>)> {
    select_hinted(
        head,
        m,
        i64::MIN,
        i64::MAX,
        &crate::storage::SelectHints::default(),
    )
}

#[test]
fn idle_series_leave_memory_and_come_back_with_their_reference() {
    // Series 0 and 1 stop 5 minutes before now; series 2 goes on.
    let IdleStore {
        dir,
        db,
        opts: o,
        now,
        refs,
    } = store_with_two_idle_series("cold", 3, value);
    let base = now - 600_000;
    let all = Matcher::equal("__name__", "ray_node_cpu");
    let before = dump(db.head());
    assert_eq!(before.len(), 3);
    assert_eq!(db.age_out(now).unwrap(), 2);
    assert_eq!(db.head().stats().num_series, 1, "two series left memory");
    assert_eq!(dump(db.head()), before, "queries read them from disk");
    let one = Matcher::equal("instance", "n1");
    assert_eq!(select_all(db.head(), one.clone()), before[1..2].to_vec());
    let re = Matcher::new(crate::model::MatchOp::Regex, "instance", "n[01]").unwrap();
    assert_eq!(select_all(db.head(), re), before[..2].to_vec());
    let q = db.head().querier(base, now).unwrap();
    assert_eq!(q.label_values("instance", &[]).unwrap(), ["n0", "n1", "n2"]);
    assert_eq!(
        q.label_values("instance", std::slice::from_ref(&one))
            .unwrap(),
        ["n1"]
    );
    assert_eq!(q.label_names(&[one]).unwrap(), ["__name__", "instance"]);
    let labels: Vec<Labels> = before.iter().map(|(l, _)| l.clone()).collect();
    assert_eq!(q.series(std::slice::from_ref(&all)).unwrap(), labels);
    drop(q);
    // A query after their last sample does not see them.
    let late = db.head().querier(base + 400_000, now).unwrap();
    assert_eq!(late.select(std::slice::from_ref(&all)).unwrap().len(), 1);
    assert_eq!(late.series(&[all]).unwrap(), labels[2..]);
    drop(late);
    db.close().unwrap();
    drop(db);

    let (db, st) = Db::open(&dir, o.clone()).unwrap();
    assert_eq!(st.cold_series, 2);
    assert_eq!(db.head().stats().num_series, 1);
    assert_eq!(dump(db.head()), before);
    // Series 1 comes back: same reference, old and new samples, once.
    let mut app = db.head().appender();
    let r = app.append(0, &series(1), now + 1000, 7.0).unwrap();
    app.commit().unwrap();
    assert_eq!(r, refs[1]);
    assert_eq!(db.head().stats().num_series, 2);
    let mut want = before.clone();
    want[1].1.push((now + 1000, 7f64.to_bits()));
    assert_eq!(dump(db.head()), want);
    // A crash now: the WAL brings series 1 back, whatever fjall kept.
    drop(db);
    let (db, st) = Db::open(&dir, o).unwrap();
    assert_eq!(db.head().stats().num_series, 2, "{st:?}");
    assert_eq!(dump(db.head()), want);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retention_deletes_cold_series() {
    let dir = tmp("coldret");
    let o = DbOptions {
        series_idle_ms: 60_000,
        retention_ms: 400_000,
        ..opts()
    };
    let (db, _) = Db::open(&dir, o.clone()).unwrap();
    let now = now_ms() / 1000 * 1000;
    let base = now - 600_000;
    // Series 0 ends 500 s before now (expires), series 1 300 s before now
    // (keeps its last 100 s), series 2 goes on.
    let ends = [100, 300, 600];
    let mut refs = [0; 3];
    for k in 0..600i64 {
        let mut app = db.head().appender();
        for (i, r) in refs.iter_mut().enumerate() {
            if k < ends[i] {
                *r = app
                    .append(*r, &series(i), base + k * 1000, value(i, k))
                    .unwrap();
            }
        }
        app.commit().unwrap();
    }
    assert_eq!(db.age_out(now).unwrap(), 2);
    db.apply_retention(now).unwrap();
    let kept = dump(db.head());
    assert_eq!(kept.len(), 2, "the expired cold series is gone");
    assert_eq!(kept[0].0, series(1));
    let first = kept[0].1[0].0 - base;
    // Whole chunks go: the first kept one may start before the cut.
    assert!((200_000 - 240_000..=200_000).contains(&first), "{first}");
    assert_eq!(kept[0].1.last().unwrap().0, base + 299_000);
    drop(db);
    let (db, st) = Db::open(&dir, o).unwrap();
    assert_eq!(st.cold_series, 1);
    assert_eq!(dump(db.head()), kept);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn samples_by_reference_are_checked_at_commit_and_bring_cold_series_back() {
    let dir = tmp("byref");
    let o = DbOptions {
        series_idle_ms: 60_000,
        ..opts()
    };
    let (db, _) = Db::open(&dir, o).unwrap();
    let now = now_ms() / 1000 * 1000;
    let base = now - 600_000;
    let mut app = db.head().appender();
    let r0 = app.append(0, &series(0), base, 1.0).unwrap();
    let r1 = app.append(0, &series(1), base, 1.0).unwrap();
    app.commit().unwrap();
    let none = Labels::default();
    // Out of order, a different value at the same time, the same sample
    // again, and one good sample: only the last is kept.
    let mut app = db.head().appender();
    app.append(r0, &none, base - 1000, 2.0).unwrap();
    app.append(r1, &none, base, 3.0).unwrap();
    let got = app.commit().unwrap();
    assert_eq!(
        got,
        crate::storage::Rejected {
            out_of_order: 1,
            duplicate: 1,
            unknown: 0
        }
    );
    let mut app = db.head().appender();
    app.append(r0, &none, base, 1.0).unwrap();
    app.append(r1, &none, base + 1000, 4.0).unwrap();
    assert_eq!(app.commit().unwrap(), crate::storage::Rejected::default());
    let got = dump(db.head());
    assert_eq!(got[0].1, vec![(base, 1f64.to_bits())]);
    assert_eq!(
        got[1].1,
        vec![(base, 1f64.to_bits()), (base + 1000, 4f64.to_bits())]
    );
    // Both go cold; a sample by reference alone brings one back.
    assert_eq!(db.age_out(now).unwrap(), 2);
    let mut app = db.head().appender();
    app.append(r0, &none, now, 5.0).unwrap();
    app.append(12345 << 8, &none, now, 5.0).unwrap();
    let got = app.commit().unwrap();
    assert_eq!(got.unknown, 1, "a reference that names nothing");
    assert_eq!(db.head().stats().num_series, 1);
    let got = dump(db.head());
    assert_eq!(
        got[0].1,
        vec![(base, 1f64.to_bits()), (now, 5f64.to_bits())]
    );
    assert_eq!(got.len(), 2);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_comes_after_enough_logged_samples() {
    let dir = tmp("by-samples");
    let (db, _) = Db::open(
        &dir,
        DbOptions {
            checkpoint_samples: 1_000,
            checkpoint_every: Duration::from_secs(3600),
            ..opts()
        },
    )
    .unwrap();
    let (mut last_retention, mut last_flush) = (Instant::now(), Instant::now());
    ingest(db.head(), 40, 0, 20);
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 0, "800 samples are not enough");
    ingest(db.head(), 40, 20, 10);
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 1);
    // Counted again from the checkpoint on.
    ingest(db.head(), 40, 30, 20);
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 1);
    drop(db);
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert_eq!(st.replay.samples, 40 * 20);
    assert_eq!(dump(db.head()), expected(40, 50));
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_due_checkpoint_of_an_unchanged_head_is_left_out_until_something_is_logged() {
    let dir = tmp("unchanged");
    let o = DbOptions {
        checkpoint_every: Duration::ZERO,
        ..opts()
    };
    let (db, _) = Db::open(&dir, o.clone()).unwrap();
    let (mut last_retention, mut last_flush) = (Instant::now(), Instant::now());
    // Nothing in the store, nothing logged: nothing to write.
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 0);
    ingest(db.head(), 40, 0, 10);
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 1);
    db.tick(&mut last_retention, &mut last_flush);
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 1, "the head did not change");
    ingest(db.head(), 40, 10, 10);
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 2);
    // Dropped without `close`, as after a kill: the samples after the last
    // checkpoint come back from the WAL, and the first due checkpoint after
    // the open writes them.
    ingest(db.head(), 40, 20, 10);
    drop(db);
    let (db, st) = Db::open(&dir, o.clone()).unwrap();
    assert_eq!(st.replay.samples, 40 * 10);
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 1, "what the WAL replayed");
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 1);
    drop(db);
    let (db, st) = Db::open(&dir, o.clone()).unwrap();
    assert_eq!(st.replay.samples, 0);
    assert_eq!(dump(db.head()), expected(40, 30));
    drop(db);
    // Series going idle still get a checkpoint to leave memory by: one at
    // least every `series_idle_ms`.
    let (db, _) = Db::open(
        &dir,
        DbOptions {
            series_idle_ms: 1,
            ..o.clone()
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    db.tick(&mut last_retention, &mut last_flush);
    assert_eq!(db.stats().checkpoints, 1);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn past_windows_merge_into_one_chunk_each_and_read_back_exactly() {
    let dir = tmp("merge");
    let o = DbOptions {
        head: HeadOptions {
            chunk_range: 200_000,
            samples_per_chunk: 30,
        },
        ..opts()
    };
    let (db, _) = Db::open(&dir, o.clone()).unwrap();
    // One series stops in the middle of the third window: its open chunk
    // stays in memory, so that window of it is left as it is.
    let idle = Labels::from_pairs([("__name__", "ray_node_cpu"), ("instance", "idle")]);
    let mut app = db.head().appender();
    for k in 0..450 {
        app.append(0, &idle, k * 1000, k as f64).unwrap();
    }
    app.commit().unwrap();
    ingest(db.head(), 20, 0, 1000);
    db.checkpoint().unwrap();
    let mut want = expected(20, 1000);
    want.push((
        idle.clone(),
        (0..450).map(|k| (k * 1000, (k as f64).to_bits())).collect(),
    ));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(dump(db.head()), want);

    let st = db.merge_windows().unwrap();
    // Samples reach 999 s, so windows end at 200, 400, 600 and 800 s are
    // complete (the head is half a window past the last one): 20 series in
    // four windows, and the idle series in the two before it stopped.
    assert_eq!(st.series, 20 * 4 + 2, "{st:?}");
    assert_eq!(st.chunks_left, 20 * 4 + 2, "{st:?}");
    assert!(st.chunks_read >= 4 * st.chunks_left, "{st:?}");
    assert_eq!(st.refused, 0);
    assert_eq!(db.stats().compactions, 4);
    assert_eq!(dump(db.head()), want);
    // A query inside merged chunks and across window edges.
    assert_eq!(
        n7_between(db.head(), 150_500, 420_000),
        n7_expected(151..=420)
    );
    // Merged windows hold one chunk a series: a second pass changes nothing.
    let again = db.merge_windows().unwrap();
    assert_eq!(again.chunks_read, again.chunks_left, "{again:?}");
    assert_eq!(dump(db.head()), want);

    // After a restart (and a crash: nothing closed), the same samples.
    drop(db);
    let (db, _) = Db::open(&dir, o).unwrap();
    assert_eq!(dump(db.head()), want);
    ingest(db.head(), 20, 1000, 300);
    db.checkpoint().unwrap();
    // The fifth window is complete now; the first four only read again.
    let st = db.merge_windows().unwrap();
    assert!(st.chunks_read > st.chunks_left, "{st:?}");
    let mut want = expected(20, 1300);
    want.push((
        idle,
        (0..450).map(|k| (k * 1000, (k as f64).to_bits())).collect(),
    ));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(dump(db.head()), want);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Appends 50 series for 600 scrapes without closing (so the WAL keeps
/// every segment), damages segment number `pick(segments)` with `damage`,
/// and checks that the store opens with a prefix of the scrapes, takes new
/// ones, and opens cleanly after that.
fn reopen_after_damage(tag: &str, damage: impl Fn(&mut Vec<u8>)) {
    let dir = tmp(tag);
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 50, 0, 600);
    drop(db);
    let wal_dir = dir.join("wal");
    let segs = wal::list_segments(&wal_dir).unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    let path = wal_dir.join(wal::segment_name(segs[1]));
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();

    let (db, st) = Db::open(&dir, opts()).unwrap();
    let msg = st.replay.corruption.expect("corruption reported");
    assert!(msg.contains(&wal::segment_name(segs[1])), "{msg}");
    // Every commit covers all 50 series: they keep the same scrapes.
    let kept = dump(db.head())[0].1.len() as i64;
    assert!(kept > 0 && kept < 600, "{kept} scrapes kept");
    assert_eq!(dump(db.head()), expected(50, kept));
    ingest(db.head(), 50, kept, 10);
    drop(db);

    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert!(st.replay.corruption.is_none(), "{:?}", st.replay.corruption);
    assert_eq!(dump(db.head()), expected(50, kept + 10));
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A segment whose header is damaged used to stop start-up with an error,
/// with no way on but deleting files by hand.
#[test]
fn issue_16_a_wal_segment_with_a_damaged_header_is_set_aside() {
    reopen_after_damage("bad-header", |b| b[..4].copy_from_slice(b"JUNK"));
}

#[test]
fn issue_16_a_wal_segment_damaged_mid_way_keeps_what_came_before() {
    reopen_after_damage("bad-body", |b| {
        let mid = b.len() / 2;
        for x in &mut b[mid..mid + 16] {
            *x ^= 0x5a;
        }
    });
}
