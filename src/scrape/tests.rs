//! The scrape path from body to appended samples (issue 2): Ray's real
//! scrapes against what Prometheus 2.42 stored, staleness, labels, limits.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::model::{Labels, is_stale_nan};
use crate::scrape::append::{Settings, TargetState};
use crate::storage::{Appendable, Appender, Error, Rejected, SeriesRef};

/// Records every committed append, and like a real store hands out a
/// reference per label set and resolves appends made by reference alone.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    pub(crate) committed: Arc<Mutex<Vec<(Labels, i64, f64)>>>,
    refs: Arc<Mutex<Vec<Labels>>>,
}

struct RecAppender {
    rec: Recorder,
    pending: Vec<(Labels, i64, f64)>,
}

impl Appendable for Recorder {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(RecAppender {
            rec: self.clone(),
            pending: Vec::new(),
        })
    }
}

impl Recorder {
    pub(crate) fn take(&self) -> Vec<(Labels, i64, f64)> {
        std::mem::take(&mut *self.committed.lock().unwrap())
    }
}

impl Appender for RecAppender {
    fn append(
        &mut self,
        hint: SeriesRef,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Error> {
        let mut refs = self.rec.refs.lock().unwrap();
        let known = (hint as usize)
            .checked_sub(1)
            .and_then(|i| refs.get(i))
            .cloned();
        let (r, labels) = match known {
            Some(l) => (hint, l),
            None if labels.is_empty() => return Err(Error::EmptyLabelset),
            None => match refs.iter().position(|l| l == labels) {
                Some(i) => (i as u64 + 1, labels.clone()),
                None => {
                    refs.push(labels.clone());
                    (refs.len() as u64, labels.clone())
                }
            },
        };
        self.pending.push((labels, t, v));
        Ok(r)
    }
    fn commit(self: Box<Self>) -> Result<Rejected, Error> {
        self.rec.committed.lock().unwrap().extend(self.pending);
        Ok(Rejected::default())
    }
    fn rollback(self: Box<Self>) {}
}

fn target(instance: &str) -> Labels {
    Labels::from_pairs([("job", "ray"), ("instance", instance)])
}

fn settings() -> Settings {
    Settings {
        honor_timestamps: true,
        ..Settings::default()
    }
}

fn scrape(
    state: &mut TargetState,
    rec: &Recorder,
    body: &str,
    ct: &str,
    t: i64,
    tl: &Labels,
) -> Result<Vec<(Labels, i64, f64)>, String> {
    let mut app = rec.appender();
    let r = state.append_body(app.as_mut(), body.as_bytes(), ct, t, tl, &settings());
    match r {
        Ok(_) => {
            app.commit().unwrap();
            Ok(rec.take())
        }
        Err(e) => {
            app.rollback();
            Err(e.to_string())
        }
    }
}

const OM: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn golden_series() -> BTreeSet<Labels> {
    crate::testing::golden::real_ray_samples()
        .into_iter()
        .map(|(pairs, _)| Labels::from_pairs(pairs))
        .collect()
}

#[test]
fn issue_2_openmetrics_fixtures_give_the_series_prometheus_stored() {
    let golden = golden_series();
    let dir = crate::testing::fixtures_dir().join("ray/scrapes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".openmetrics.txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "{files:?}");
    let (mut total, mut missing) = (0usize, Vec::new());
    let mut worker_keys: Vec<Labels> = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let port = name.split('-').nth(1).unwrap();
        let body = std::fs::read_to_string(f).unwrap();
        let rec = Recorder::default();
        let mut state = TargetState::default();
        let samples = scrape(
            &mut state,
            &rec,
            &body,
            OM,
            1_000,
            &target(&format!("192.0.2.2:{port}")),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (labels, _, _) in samples {
            let shown = labels.to_string();
            if labels
                .metric_name()
                .is_some_and(|n| n.starts_with("scrape_") || n == "up")
            {
                continue;
            }
            assert!(
                labels.iter().all(|l| !l.value.is_empty()),
                "empty label kept: {labels}"
            );
            total += 1;
            if !golden.contains(&labels) {
                missing.push(format!("{name}: {shown}"));
                worker_keys.push(labels.without(&["WorkerId"]));
            }
        }
    }
    // The fixtures were fetched separately from Prometheus's own scrapes, so a
    // short-lived worker process can appear in a fixture but in none of
    // Prometheus's scrapes. Such a series must still be exactly like a stored
    // one but for its WorkerId.
    let golden_sans_worker: BTreeSet<Labels> =
        golden.iter().map(|l| l.without(&["WorkerId"])).collect();
    let unexplained: Vec<&String> = missing
        .iter()
        .zip(worker_keys.iter())
        .filter(|(m, key)| !(m.contains("WorkerId=") && golden_sans_worker.contains(*key)))
        .map(|(m, _)| m)
        .collect();
    eprintln!(
        "{total} series from {} OpenMetrics bodies; {} not in Prometheus's store, all of them short-lived workers' series ({} unexplained)",
        files.len(),
        missing.len(),
        unexplained.len()
    );
    assert!(total > 5_000, "{total}");
    assert!(
        missing.len() * 100 < total,
        "too many missing: {}",
        missing.len()
    );
    assert!(
        unexplained.is_empty(),
        "series Prometheus did not store: {unexplained:?}"
    );
}

#[test]
fn issue_2_text_and_openmetrics_bodies_both_parse() {
    let dir = crate::testing::fixtures_dir().join("ray/scrapes");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let ct = if name.ends_with(".openmetrics.txt") {
            OM
        } else if name.ends_with(".prom") {
            TEXT
        } else {
            continue;
        };
        let body = std::fs::read_to_string(&p).unwrap();
        let rec = Recorder::default();
        let mut state = TargetState::default();
        let got = scrape(&mut state, &rec, &body, ct, 1_000, &target("h:1"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got.len() > 50, "{name}: {}", got.len());
    }
}

fn find(samples: &[(Labels, i64, f64)], name: &str) -> Vec<(Labels, i64, f64)> {
    samples
        .iter()
        .filter(|(l, _, _)| l.metric_name() == Some(name))
        .cloned()
        .collect()
}

#[test]
fn issue_2_vanished_series_and_failed_scrapes_get_stale_markers() {
    let rec = Recorder::default();
    let mut st = TargetState::default();
    let tl = target("h:1");
    let a = "a 1\nb{x=\"1\"} 2\nc 3 123\n";
    let first = scrape(&mut st, &rec, a, TEXT, 1_000, &tl).unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|(_, _, v)| !v.is_nan()));
    assert_eq!(
        find(&first, "c")[0].1,
        123,
        "an explicit timestamp is honoured"
    );

    // b vanishes: it gets a stale marker at the scrape time; c carries its own
    // timestamp, so it is never marked stale (Prometheus does the same).
    let second = scrape(&mut st, &rec, "a 1\n", TEXT, 2_000, &tl).unwrap();
    let b = find(&second, "b");
    assert_eq!(b.len(), 1);
    assert!(is_stale_nan(b[0].2));
    assert_eq!(b[0].1, 2_000);
    assert!(find(&second, "c").is_empty());

    // A failed scrape marks everything of the last scrape stale, once.
    let mut app = rec.appender();
    st.append_failed(app.as_mut(), 3_000).unwrap();
    app.commit().unwrap();
    let failed = rec.take();
    assert_eq!(failed.len(), 1);
    assert!(is_stale_nan(failed[0].2) && failed[0].0.metric_name() == Some("a"));

    // After a failure nothing is marked again, and returning series are plain.
    let back = scrape(&mut st, &rec, "a 5\n", TEXT, 4_000, &tl).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].2, 5.0);
}

#[test]
fn issue_2_a_malformed_body_fails_the_scrape_with_line_and_column() {
    let rec = Recorder::default();
    let mut st = TargetState::default();
    let tl = target("h:1");
    scrape(&mut st, &rec, "a 1\nb 2\n", TEXT, 1_000, &tl).unwrap();
    let err = scrape(&mut st, &rec, "a 1\nb{x=\"1} 2\n", TEXT, 2_000, &tl).unwrap_err();
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("column"), "{err}");
    let mut app = rec.appender();
    st.append_failed(app.as_mut(), 2_000).unwrap();
    app.commit().unwrap();
    assert_eq!(
        rec.take().len(),
        2,
        "both series of the last good scrape go stale"
    );
}

#[test]
fn issue_2_target_labels_win_and_clashes_become_exported() {
    let rec = Recorder::default();
    let mut st = TargetState::default();
    let tl = target("10.0.0.1:8080");
    let got = scrape(
        &mut st,
        &rec,
        "m{instance=\"inner\",job=\"j\",e=\"\"} 1\n",
        TEXT,
        1_000,
        &tl,
    )
    .unwrap();
    let l = &got[0].0;
    assert_eq!(l.get("instance"), Some("10.0.0.1:8080"));
    assert_eq!(l.get("exported_instance"), Some("inner"));
    assert_eq!(l.get("exported_job"), Some("j"));
    assert_eq!(l.get("e"), None, "empty label values are dropped");

    let mut honor = settings();
    honor.honor_labels = true;
    let mut st = TargetState::default();
    let mut app = rec.appender();
    st.append_body(
        app.as_mut(),
        b"m{instance=\"inner\"} 1\n",
        TEXT,
        1_000,
        &tl,
        &honor,
    )
    .unwrap();
    app.commit().unwrap();
    let got = rec.take();
    assert_eq!(got[0].0.get("instance"), Some("inner"));
    assert_eq!(got[0].0.get("job"), Some("ray"));
}

#[test]
fn issue_2_sample_limit_fails_the_scrape() {
    let rec = Recorder::default();
    let mut st = TargetState::default();
    let mut s = settings();
    s.sample_limit = 2;
    let mut app = rec.appender();
    let err = st
        .append_body(
            app.as_mut(),
            b"a 1\nb 1\nc 1\n",
            TEXT,
            1_000,
            &target("h:1"),
            &s,
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "sample limit exceeded");
}

/// Prometheus 2.42 keeps reading a body past `sample_limit` and reports
/// every sample of it in `scrape_samples_scraped` (and the samples left
/// after relabeling in `scrape_samples_post_metric_relabeling`), while the
/// scrape fails with `up` 0 and keeps none of the body.
#[test]
fn issue_16_sample_limit_reports_the_samples_scraped() {
    let rec = Recorder::default();
    let mut st = TargetState::default();
    let mut s = settings();
    s.sample_limit = 2;
    let tl = target("h:1");
    let mut app = rec.appender();
    let err = st
        .append_body(
            app.as_mut(),
            b"a 1\nb 1\nc 1\nd 1\ne 1\n",
            TEXT,
            1_000,
            &tl,
            &s,
        )
        .unwrap_err();
    let crate::scrape::append::Error::SampleLimit(stats) = err else {
        panic!("{err}");
    };
    assert_eq!((stats.scraped, stats.post_relabel), (5, 5));
    // As the scrape loop does: drop the body, mark staleness, report.
    app.rollback();
    let mut app = rec.appender();
    st.append_failed(app.as_mut(), 1_000).unwrap();
    st.append_report(app.as_mut(), 1_000, &tl, false, 0.1, stats)
        .unwrap();
    app.commit().unwrap();
    let got = rec.take();
    let value = |n: &str| find(&got, n)[0].2;
    assert_eq!(value("up"), 0.0);
    assert_eq!(value("scrape_samples_scraped"), 5.0);
    assert_eq!(value("scrape_samples_post_metric_relabeling"), 5.0);
    assert!(find(&got, "a").is_empty());
}

#[test]
fn issue_2_report_series_carry_target_labels() {
    let rec = Recorder::default();
    let mut st = TargetState::default();
    let tl = target("h:1");
    let mut app = rec.appender();
    let stats = st
        .append_body(app.as_mut(), b"a 1\nb 2\n", TEXT, 1_000, &tl, &settings())
        .unwrap();
    st.append_report(app.as_mut(), 1_000, &tl, true, 0.25, stats)
        .unwrap();
    app.commit().unwrap();
    let got = rec.take();
    let value = |n: &str| {
        let s = find(&got, n);
        assert_eq!(s.len(), 1, "{n}");
        assert_eq!(s[0].0.get("instance"), Some("h:1"));
        assert_eq!(s[0].0.get("job"), Some("ray"));
        s[0].2
    };
    assert_eq!(value("up"), 1.0);
    assert_eq!(value("scrape_duration_seconds"), 0.25);
    assert_eq!(value("scrape_samples_scraped"), 2.0);
    assert_eq!(value("scrape_samples_post_metric_relabeling"), 2.0);
    assert_eq!(value("scrape_series_added"), 2.0);
}

#[test]
fn known_series_skip_label_checks_only_in_the_format_that_accepted_them() {
    let rec = Recorder::default();
    let mut st = TargetState::default();
    let tl = target("h:1");
    // A trailing comma is fine in the text format and an error in OpenMetrics.
    let text = "a{x=\"1\",} 1\nb{v=\"}{\",w=\"2\"} 2\n";
    let first = scrape(&mut st, &rec, text, TEXT, 1_000, &tl).unwrap();
    let second = scrape(&mut st, &rec, text, TEXT, 2_000, &tl).unwrap();
    let labels = |s: &[(Labels, i64, f64)]| s.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&first), labels(&second));
    assert_eq!(
        find(&second, "b")[0].0.get("v"),
        Some("}{"),
        "a brace inside a value is no end of the labels"
    );
    let om = "a{x=\"1\",} 1\n# EOF\n";
    let err = scrape(&mut st, &rec, om, OM, 3_000, &tl).unwrap_err();
    assert!(err.contains("label name"), "{err}");
    // Once OpenMetrics accepted a series, it is trusted in OpenMetrics too.
    let om = "b{v=\"}{\",w=\"2\"} 3\n# EOF\n";
    scrape(&mut st, &rec, om, OM, 4_000, &tl).unwrap();
    let again = scrape(&mut st, &rec, om, OM, 5_000, &tl).unwrap();
    assert_eq!(find(&again, "b")[0].2, 3.0);
}

/// Scrapes whose series change in place (the same length, another text),
/// hold a brace in a value, or give a line whose byte at the expected length
/// is a brace: the samples are those of a first scrape of each body.
#[test]
fn issue_22_known_series_read_at_the_expected_length_match_a_fresh_parse() {
    let tl = target("h:1");
    let bodies = [
        "a{s=\"RUNNING\"} 1\nb{v=\"}{\",w=\"2\"} 2\nc{x=\"1\"} 3\n",
        "a{s=\"RUNNING\"} 4\nb{v=\"}{\",w=\"2\"} 5\nc{x=\"1\"} 6\n",
        "a{s=\"PENDING\"} 7\nb{v=\"}{\",w=\"2\"} 8\nc{x=\"1\"} 9\n",
        "a{s=\"PENDING\"} 1\nb{v=\"}\"} 2\nc{} 3\nc{x=\"1\"} 4\n",
        "a{s=\"PENDING\"} 5\nb{v=\"}{\",w=\"2\"} 6\nc{x=\"1\"} 7\n",
    ];
    for ct in [TEXT, OM] {
        let rec = Recorder::default();
        let mut st = TargetState::default();
        for (i, body) in bodies.iter().enumerate() {
            let body = if ct == OM {
                format!("{body}# EOF\n")
            } else {
                body.to_string()
            };
            let t = 1_000 * (i as i64 + 1);
            let got = scrape(&mut st, &rec, &body, ct, t, &tl).unwrap();
            let fresh_rec = Recorder::default();
            let want = scrape(&mut TargetState::default(), &fresh_rec, &body, ct, t, &tl).unwrap();
            let live = |s: Vec<(Labels, i64, f64)>| {
                s.into_iter()
                    .filter(|x| {
                        !is_stale_nan(x.2) && !x.0.get("__name__").unwrap().starts_with("scrape_")
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(live(got), live(want), "scrape {i} in {ct}");
        }
    }
}

#[test]
fn issue_22_a_new_series_with_invalid_utf8_fails_the_scrape_after_known_ones() {
    let rec = Recorder::default();
    let mut st = TargetState::default();
    let tl = target("h:1");
    let good = "a{v=\"é\"} 1\n# HELP b bee\nb 2\n";
    scrape(&mut st, &rec, good, TEXT, 1_000, &tl).unwrap();
    let mut app = rec.appender();
    let mut body = good.as_bytes().to_vec();
    body.extend_from_slice(b"c{v=\"\xff\"} 3\n");
    let err = st
        .append_body(app.as_mut(), &body, TEXT, 2_000, &tl, &settings())
        .unwrap_err();
    app.rollback();
    assert!(
        err.to_string()
            .contains("line 4, column 6: invalid UTF-8 in label value"),
        "{err}"
    );
    let mut app = rec.appender();
    let body = b"a{v=\"\xc3\xa9\"} 1\n# HELP b b\xffe\nb 2\n";
    let err = st
        .append_body(app.as_mut(), body, TEXT, 3_000, &tl, &settings())
        .unwrap_err();
    app.rollback();
    assert!(
        err.to_string().contains("HELP text is not valid UTF-8"),
        "{err}"
    );
    // The known series still parse and append after the failures.
    let ok = scrape(&mut st, &rec, good, TEXT, 4_000, &tl).unwrap();
    assert_eq!(find(&ok, "a")[0].0.get("v"), Some("é"));
}
