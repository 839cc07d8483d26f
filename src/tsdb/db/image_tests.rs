//! The head image's tests: a clean close's image gives the head the chunk
//! store would have given, and a damaged, stale or half-written image is
//! refused with a fallback to the chunk store and nothing lost.

use std::path::Path;

use super::tests::{
    IdleStore, dump, expected, ingest, opts, series, store_with_two_idle_series, tmp,
};
use super::*;
use crate::model::{MatchOp, Matcher};
use crate::storage::{Appendable, Queryable};
use crate::tsdb::image::IMAGE_FILE;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The kind in the header of the image in `dir`, if there is one.
fn kind_on_disk(dir: &Path) -> Option<u32> {
    let b = std::fs::read(dir.join(IMAGE_FILE)).ok()?;
    Some(u32::from_le_bytes(b.get(20..24)?.try_into().ok()?))
}

/// Everything a reader can see of the head, and its counts.
type View = (
    Vec<(Labels, Vec<(i64, u64)>)>,
    Vec<String>,
    Vec<String>,
    Vec<Labels>,
    Vec<(SeriesRef, Labels)>,
    [usize; 3],
);

fn view(db: &Db) -> View {
    let q = db.head().querier(i64::MIN, i64::MAX).unwrap();
    let names = q.label_names(&[]).unwrap();
    let values = q.label_values("instance", &[]).unwrap();
    let re = Matcher::new(MatchOp::Regex, "instance", "n1.*").unwrap();
    let some = q.series(&[re]).unwrap();
    drop(q);
    let mut refs = db.head().all_series();
    refs.sort_by_key(|x| x.0);
    let st = db.head().stats();
    (
        dump(db.head()),
        names,
        values,
        some,
        refs,
        [st.num_series, st.num_chunks, st.num_symbols],
    )
}

/// A store closed cleanly with series of every kind: labels in the chunk
/// store or not yet, chunks on disk, in memory, both.
fn closed_store(tag: &str) -> std::path::PathBuf {
    let dir = tmp(tag);
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 60, 0, 400);
    db.flush_closed_chunks().unwrap();
    db.checkpoint().unwrap();
    ingest(db.head(), 80, 400, 50);
    db.close().unwrap();
    drop(db);
    assert!(
        dir.join(IMAGE_FILE).exists(),
        "a clean close writes the image"
    );
    dir
}

#[test]
fn the_image_gives_the_head_the_chunk_store_gives() {
    let dir = closed_store("img-same");
    let plain = tmp("img-same-plain");
    copy_dir(&dir, &plain);
    std::fs::remove_file(plain.join(IMAGE_FILE)).unwrap();
    let (a, sa) = Db::open(&dir, opts()).unwrap();
    let (b, sb) = Db::open(&plain, opts()).unwrap();
    assert!(sa.from_image && !sb.from_image, "{sa:?} {sb:?}");
    assert_eq!(
        kind_on_disk(&dir),
        Some(1),
        "an open keeps a clean close's image as a checkpoint's"
    );
    assert_eq!(sa.stored_series, sb.stored_series);
    assert_eq!(view(&a), view(&b));
    assert_eq!(view(&a).0, {
        let mut want = expected(60, 450);
        want.extend(
            expected(80, 450)
                .into_iter()
                .filter(|(l, _)| (60..80).any(|i| *l == series(i)))
                .map(|(l, s)| (l, s.into_iter().filter(|x| x.0 >= 400_000).collect())),
        );
        want.sort_by(|x, y| x.0.cmp(&y.0));
        want
    });
    // Both go on alike: new series take fresh references, old ones keep
    // theirs, and a crash after that replays the same.
    for db in [&a, &b] {
        ingest(db.head(), 100, 450, 10);
        let mut app = db.head().appender();
        let r = app.append(0, &series(7), 460_000, 1.0).unwrap();
        app.commit().unwrap();
        assert!(db.head().has_series(r));
    }
    assert_eq!(view(&a), view(&b));
    drop((a, b));
    let (a, sa) = Db::open(&dir, opts()).unwrap();
    let (b, _) = Db::open(&plain, opts()).unwrap();
    assert!(sa.from_image, "a crash after it opens from the image kept");
    assert_eq!(view(&a), view(&b));
    drop((a, b));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&plain).unwrap();
}

/// Damages the image of a cleanly closed store, opens it: the chunk store
/// is read instead, nothing is lost, and the image is gone.
fn refused(tag: &str, damage: impl Fn(&Path)) {
    let dir = closed_store(tag);
    damage(&dir);
    let plain = tmp(&format!("{tag}-plain"));
    copy_dir(&dir, &plain);
    let _ = std::fs::remove_file(plain.join(IMAGE_FILE));
    let (a, sa) = Db::open(&dir, opts()).unwrap();
    let (b, _) = Db::open(&plain, opts()).unwrap();
    assert!(!sa.from_image, "{tag}: a bad image was used");
    assert!(!dir.join(IMAGE_FILE).exists());
    assert!(!dir.join("head.image.tmp").exists());
    assert_eq!(view(&a), view(&b), "{tag}");
    drop((a, b));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&plain).unwrap();
}

fn edit(dir: &Path, f: impl Fn(&mut Vec<u8>)) {
    let p = dir.join(IMAGE_FILE);
    let mut b = std::fs::read(&p).unwrap();
    f(&mut b);
    std::fs::write(&p, b).unwrap();
}

#[test]
fn a_truncated_image_is_refused() {
    refused("img-trunc", |d| edit(d, |b| b.truncate(b.len() / 2)));
    refused("img-empty", |d| edit(d, Vec::clear));
}

#[test]
fn a_damaged_image_is_refused() {
    // A flipped bit anywhere: header, symbols, the last series' labels.
    refused("img-flip-head", |d| edit(d, |b| b[12] ^= 1));
    refused("img-flip-mid", |d| {
        edit(d, |b| {
            let i = b.len() / 3;
            b[i] ^= 0x10;
        })
    });
    refused("img-flip-end", |d| {
        edit(d, |b| {
            let i = b.len() - 6;
            b[i] ^= 0x80;
        })
    });
    refused("img-version", |d| edit(d, |b| b[8] = 9));
}

#[test]
fn a_stale_image_is_refused() {
    // The image of one clean close, put back after a later life appended
    // and crashed: its WAL position no longer matches.
    refused("img-stale", |d| {
        let saved = std::fs::read(d.join(IMAGE_FILE)).unwrap();
        let (db, st) = Db::open(d, opts()).unwrap();
        assert!(st.from_image);
        ingest(db.head(), 90, 450, 5);
        drop(db);
        std::fs::write(d.join(IMAGE_FILE), &saved).unwrap();
        assert_stale(d, &saved);
    });
    // Or after a later life that only opened and checkpointed.
    refused("img-stale-ckpt", |d| {
        let saved = std::fs::read(d.join(IMAGE_FILE)).unwrap();
        let (db, _) = Db::open(d, opts()).unwrap();
        db.checkpoint().unwrap();
        drop(db);
        std::fs::write(d.join(IMAGE_FILE), &saved).unwrap();
        assert_stale(d, &saved);
    });
}

/// The image in `dir` is refused as stale, not for any other reason; it
/// is put back for the open that follows.
fn assert_stale(dir: &Path, saved: &[u8]) {
    let newest = wal::list_checkpoints(dir).unwrap().last().copied();
    let got = crate::tsdb::image::take(dir, newest, &dir.join("wal"));
    assert!(
        matches!(got, Err(crate::tsdb::image::ImageError::Stale(_))),
        "{:?}",
        got.map(|x| x.map(|im| im.body().len()))
    );
    assert!(!dir.join(IMAGE_FILE).exists(), "a refused image is removed");
    std::fs::write(dir.join(IMAGE_FILE), saved).unwrap();
}

#[test]
fn a_half_written_image_is_never_read() {
    // A crash while writing leaves the temporary file only.
    refused("img-tmp", |d| {
        std::fs::rename(d.join(IMAGE_FILE), d.join("head.image.tmp")).unwrap();
        edit_tmp(d);
    });
}

fn edit_tmp(dir: &Path) {
    let p = dir.join("head.image.tmp");
    let mut b = std::fs::read(&p).unwrap();
    b.truncate(b.len() - 100);
    std::fs::write(&p, b).unwrap();
}

#[test]
fn an_image_of_a_head_with_cold_series_keeps_them_cold() {
    let IdleStore {
        dir,
        db,
        opts: o,
        now,
        refs,
    } = store_with_two_idle_series("img-cold", 4, |_, k| k as f64);
    assert_eq!(db.age_out(now).unwrap(), 2);
    let before = dump(db.head());
    db.close().unwrap();
    drop(db);
    let (db, st) = Db::open(&dir, o).unwrap();
    assert!(st.from_image);
    assert_eq!(st.cold_series, 2);
    assert_eq!(db.head().stats().num_series, 2);
    assert_eq!(dump(db.head()), before);
    // A cold series comes back with its reference.
    let mut app = db.head().appender();
    assert_eq!(app.append(0, &series(1), now + 1000, 1.0).unwrap(), refs[1]);
    app.commit().unwrap();
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Edits the image's body and writes its checksum anew, as a writer with a
/// bug would: only the image's own consistency checks can catch it.
fn edit_resealed(dir: &Path, f: impl Fn(&mut Vec<u8>)) {
    edit(dir, |b| {
        f(b);
        let end = b.len() - 4;
        let crc = crc32c::crc32c(&b[..end]);
        b[end..].copy_from_slice(&crc.to_le_bytes());
    });
}

/// The image in `dir` passes its checksum and stamp but does not add up.
fn assert_inconsistent(dir: &Path) {
    let saved = std::fs::read(dir.join(IMAGE_FILE)).unwrap();
    let newest = wal::list_checkpoints(dir).unwrap().last().copied();
    let im = crate::tsdb::image::take(dir, newest, &dir.join("wal"))
        .unwrap()
        .unwrap();
    let head = Head::default();
    let got = head.load_image(im.body());
    assert!(
        matches!(got, Err(crate::tsdb::image::ImageError::Invalid(_))),
        "{got:?}"
    );
    assert_eq!(
        head.stats().num_series,
        0,
        "a refused image changed the head"
    );
    std::fs::write(dir.join(IMAGE_FILE), saved).unwrap();
}

#[test]
fn an_image_that_does_not_add_up_is_refused_despite_its_checksum() {
    // The first symbol's reference count (just after the body's index
    // length and the symbol count) one too high.
    refused("img-refs", |d| {
        edit_resealed(d, |b| b[56] = b[56].wrapping_add(1));
        assert_inconsistent(d);
    });
    // The last series' last label names a pair that does not exist.
    refused("img-pair", |d| {
        edit_resealed(d, |b| {
            let at = b.len() - 8;
            b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        });
        assert_inconsistent(d);
    });
}

/// The samples of series `from..to` for scrapes `ks`, as [`dump`] gives them.
fn samples_of(from: usize, to: usize, ks: std::ops::Range<i64>) -> Vec<(Labels, Vec<(i64, u64)>)> {
    expected(to, ks.end)
        .into_iter()
        .filter(|(l, _)| (from..to).any(|i| *l == series(i)))
        .map(|(l, s)| {
            (
                l,
                s.into_iter().filter(|x| x.0 >= ks.start * 1000).collect(),
            )
        })
        .collect()
}

#[test]
fn a_crash_after_a_checkpoint_opens_from_its_image_and_the_wal_after_it() {
    let dir = tmp("img-ckpt-crash");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 40, 0, 200);
    db.checkpoint().unwrap();
    assert!(
        dir.join(IMAGE_FILE).exists(),
        "a checkpoint writes the image"
    );
    // After the image: 20 new series, closed chunks moved to the chunk
    // store with the new series' labels (as every 30 s), then 10 more new
    // series and samples that only the WAL has.
    ingest(db.head(), 60, 200, 200);
    db.flush_closed_chunks().unwrap();
    ingest(db.head(), 70, 400, 30);
    // No close: the process dies here.
    drop(db);
    let plain = tmp("img-ckpt-crash-plain");
    copy_dir(&dir, &plain);
    std::fs::remove_file(plain.join(IMAGE_FILE)).unwrap();
    let (a, sa) = Db::open(&dir, opts()).unwrap();
    let (b, sb) = Db::open(&plain, opts()).unwrap();
    assert!(sa.from_image && !sb.from_image, "{sa:?} {sb:?}");
    assert_eq!(kind_on_disk(&dir), Some(1), "an open keeps the image");
    // Every acknowledged sample is back, once.
    let mut want = samples_of(0, 40, 0..430);
    want.extend(samples_of(40, 60, 200..430));
    want.extend(samples_of(60, 70, 400..430));
    want.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(view(&a).0, want);
    assert_eq!(view(&a), view(&b));
    assert_eq!(sa.stored_series, sb.stored_series);
    assert_eq!(sa.replay.samples, sb.replay.samples);
    // Both go on alike, through a checkpoint (a new image) and a crash.
    for db in [&a, &b] {
        ingest(db.head(), 80, 430, 150);
        db.checkpoint().unwrap();
        ingest(db.head(), 80, 580, 20);
    }
    assert_eq!(view(&a), view(&b));
    drop((a, b));
    let (a, sa) = Db::open(&dir, opts()).unwrap();
    let (b, sb) = Db::open(&plain, opts()).unwrap();
    assert!(sa.from_image && sb.from_image, "{sa:?} {sb:?}");
    assert_eq!(view(&a), view(&b));
    let mut want = samples_of(0, 40, 0..600);
    want.extend(samples_of(40, 60, 200..600));
    want.extend(samples_of(60, 70, 400..600));
    want.extend(samples_of(70, 80, 430..600));
    want.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(view(&a).0, want);
    drop((a, b));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&plain).unwrap();
}

#[test]
fn a_checkpoint_image_is_refused_once_a_later_checkpoint_exists() {
    let dir = tmp("img-ckpt-stale");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    ingest(db.head(), 30, 0, 150);
    db.checkpoint().unwrap();
    let saved = std::fs::read(dir.join(IMAGE_FILE)).unwrap();
    ingest(db.head(), 40, 150, 150);
    db.checkpoint().unwrap();
    ingest(db.head(), 40, 300, 10);
    drop(db);
    std::fs::write(dir.join(IMAGE_FILE), &saved).unwrap();
    assert_stale(&dir, &saved);
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert!(!st.from_image);
    let mut want = samples_of(0, 30, 0..310);
    want.extend(samples_of(30, 40, 150..310));
    want.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(dump(db.head()), want);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn series_leaving_memory_take_the_checkpoint_image_with_them() {
    let IdleStore {
        dir,
        db,
        opts: o,
        now,
        ..
    } = store_with_two_idle_series("img-ckpt-cold", 4, |_, k| k as f64);
    db.flush_closed_chunks().unwrap();
    // Not through `checkpoint`: that sends the idle series cold first.
    db.write_image(image::Kind::Checkpoint).unwrap();
    assert!(dir.join(IMAGE_FILE).exists());
    assert_eq!(db.age_out(now).unwrap(), 2);
    assert!(
        !dir.join(IMAGE_FILE).exists(),
        "an image naming series that left memory is removed"
    );
    let before = dump(db.head());
    drop(db);
    let (db, st) = Db::open(&dir, o).unwrap();
    assert!(!st.from_image);
    assert_eq!(st.cold_series, 2);
    assert_eq!(dump(db.head()), before);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The index loaded from an image knows which label values have a newline,
/// as the one built series by series does: `=~".*"` rejects them.
#[test]
fn an_image_keeps_which_values_have_a_newline() {
    let dir = tmp("img-newline");
    let (db, _) = Db::open(&dir, opts()).unwrap();
    let mut app = db.head().appender();
    for (i, w) in ["x", "a\nb", "y"].into_iter().enumerate() {
        let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string()), ("w", w)]);
        app.append(0, &l, 1_000, 1.0).unwrap();
    }
    app.commit().unwrap();
    db.close().unwrap();
    drop(db);
    let (db, st) = Db::open(&dir, opts()).unwrap();
    assert!(st.from_image, "{st:?}");
    let q = db.head().querier(i64::MIN, i64::MAX).unwrap();
    let all_w = Matcher::new(MatchOp::Regex, "w", ".*").unwrap();
    let got: Vec<String> = q
        .series(&[Matcher::equal("__name__", "m"), all_w])
        .unwrap()
        .iter()
        .map(|l| l.get("w").unwrap_or_default().to_string())
        .collect();
    assert_eq!(got, ["x", "y"]);
    drop(q);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}
