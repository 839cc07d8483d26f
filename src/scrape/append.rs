//! One scrape's body into the store: parse, label, relabel, append, and
//! write staleness markers for series that went away (Prometheus's
//! `scrapeLoop.append`). Synchronous and IO-free, so it is tested directly.

use std::collections::BTreeMap;

use crate::config::{RelabelConfig, process as relabel_process};
use crate::model::{LabelLimits, Labels, LabelsBuilder, LabelsError, METRIC_NAME, STALE_NAN};
use crate::scrape::cache::{Cache, Lookup};
use crate::scrape::status::MetricMetadata;
use crate::storage::{self, Appender, SeriesRef};
use crate::textparse::{Entry, Format, Parser};

/// Appends by reference pass no labels: the store has them.
static NO_LABELS: Labels = Labels::EMPTY;

/// How samples are labeled and limited; from the scrape config.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    /// 0 means no limit.
    pub sample_limit: usize,
    /// `label_limit`, `label_name_length_limit`, `label_value_length_limit`.
    pub label_limits: LabelLimits,
    pub metric_relabel: Vec<RelabelConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Parse(String),
    /// More samples than `sample_limit`; the counts cover the whole body,
    /// as Prometheus reports them for such a scrape.
    #[error("sample limit exceeded")]
    SampleLimit(Stats),
    /// A new series over a label limit fails the whole scrape, as
    /// Prometheus's `verifyLabelLimits`.
    #[error("{0}")]
    LabelLimit(LabelsError),
    #[error("{0}")]
    Storage(#[from] storage::Error),
}

/// Counts that go into the `scrape_*` series.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Samples in the body (`scrape_samples_scraped`).
    pub scraped: usize,
    /// Samples left after metric relabeling (`scrape_samples_post_metric_relabeling`).
    pub post_relabel: usize,
    /// Series new to this target (`scrape_series_added`).
    pub series_added: usize,
    /// Samples the store rejected as out of order or duplicate.
    pub rejected: usize,
}

/// Everything a target remembers between scrapes.
#[derive(Default)]
pub struct TargetState {
    pub cache: Cache,
    /// HELP/TYPE/UNIT by metric family, for `/api/v1/metadata`.
    pub metadata: BTreeMap<String, MetricMetadata>,
    metadata_changed: bool,
    /// Whether `append_body` began a cache iteration that has not ended.
    attempt_open: bool,
    report_refs: [SeriesRef; REPORT_NAMES.len()],
    report_labels: Option<[Labels; REPORT_NAMES.len()]>,
}

pub const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

impl TargetState {
    /// Appends a successful fetch's body at time `t` (ms). On error nothing
    /// of the body is kept: the caller rolls back and calls [`Self::append_failed`].
    pub fn append_body(
        &mut self,
        app: &mut dyn Appender,
        body: &[u8],
        content_type: &str,
        t: i64,
        target: &Labels,
        settings: &Settings,
    ) -> Result<Stats, Error> {
        let format = Format::from_content_type(content_type);
        self.cache.begin();
        self.cache.set_format(format);
        self.attempt_open = true;
        let mut stats = Stats::default();
        let mut builder = LabelsBuilder::with_capacity(16);
        // Past the limit nothing more is appended, but the body is still
        // read to the end so that `scrape_samples_scraped` and
        // `scrape_samples_post_metric_relabeling` count all of it, as
        // Prometheus 2.42's `scrapeLoop.append` keeps parsing on
        // `errSampleLimit`.
        let mut over_limit = false;
        let mut parser = Parser::new(body, format);
        // Series the cache knows from earlier scrapes in this format skip
        // the parser's label checks.
        while let Some(entry) = parser.next_trusting(&mut self.cache) {
            let entry = entry.map_err(|e| Error::Parse(e.to_string()))?;
            let sample = match entry {
                Entry::Sample(s) => s,
                other => {
                    self.note_metadata(other);
                    continue;
                }
            };
            stats.scraped += 1;
            let ts = match (settings.honor_timestamps, sample.timestamp_ms) {
                (true, Some(ts)) => ts,
                _ => t,
            };
            let slot = match self.cache.lookup(sample.series) {
                Lookup::Dropped => continue,
                Lookup::Known(e) => {
                    stats.post_relabel += 1;
                    over_limit |= over(settings, &stats);
                    if over_limit {
                        continue;
                    }
                    // The store knows the series by reference; labels are
                    // only needed if it no longer does (then it says so).
                    match app.append(e.series_ref, &NO_LABELS, ts, sample.value) {
                        Ok(r) => {
                            e.series_ref = r;
                            continue;
                        }
                        Err(storage::Error::EmptyLabelset) => {
                            stats.post_relabel -= 1;
                            e.slot()
                        }
                        Err(err) if err.is_sample_error() => {
                            stats.rejected += 1;
                            continue;
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
                Lookup::Unknown(slot) => slot,
            };
            builder.clear();
            // `add`, not `set`: no search per label, so a sample with many
            // labels costs one sort in `build`, which also keeps the last of
            // a repeated name as `set` would.
            builder.add(METRIC_NAME.to_string(), sample.name().to_string());
            for (name, value) in sample.labels() {
                builder.add(name.to_string(), value.into_owned());
            }
            apply_target_labels(&mut builder, target, settings.honor_labels);
            let labels = builder.build();
            let labels = if settings.metric_relabel.is_empty() {
                Some(labels)
            } else {
                relabel_process(&labels, &settings.metric_relabel)
            };
            let Some(labels) = labels.filter(|l| !l.is_empty()) else {
                self.cache.insert_dropped(slot);
                continue;
            };
            // Only new series are checked: a cached one passed when it was new.
            settings
                .label_limits
                .check(&labels)
                .map_err(Error::LabelLimit)?;
            stats.post_relabel += 1;
            over_limit |= over(settings, &stats);
            if over_limit {
                continue;
            }
            stats.series_added += 1;
            let r = match app.append(0, &labels, ts, sample.value) {
                Ok(r) => r,
                Err(err) if err.is_sample_error() => {
                    stats.rejected += 1;
                    0
                }
                Err(err) => return Err(err.into()),
            };
            let track = sample.timestamp_ms.is_none() || !settings.honor_timestamps;
            self.cache.insert(slot, r, track);
        }
        if over_limit {
            return Err(Error::SampleLimit(stats));
        }
        self.attempt_open = false;
        let mut first_err = None;
        self.cache.commit(|e| mark_stale(app, e, t, &mut first_err));
        match first_err {
            Some(err) => Err(err.into()),
            None => Ok(stats),
        }
    }

    /// A failed scrape: every series of the previous scrape goes stale at `t`.
    pub fn append_failed(&mut self, app: &mut dyn Appender, t: i64) -> Result<(), storage::Error> {
        // A fetch that failed never began an iteration; a body that failed to
        // parse did, and its partial sightings are ignored.
        if !std::mem::take(&mut self.attempt_open) {
            self.cache.begin();
        }
        let mut first_err = None;
        self.cache.fail(|e| mark_stale(app, e, t, &mut first_err));
        first_err.map_or(Ok(()), Err)
    }

    /// The target went away: its current series and its report series go stale at `t`.
    pub fn append_end_of_run(
        &mut self,
        app: &mut dyn Appender,
        t: i64,
        target: &Labels,
    ) -> Result<(), storage::Error> {
        let mut first_err = None;
        self.cache
            .current(|e| mark_stale(app, e, t, &mut first_err));
        if let Some(err) = first_err {
            return Err(err);
        }
        self.append_report_values(app, t, target, [STALE_NAN; 5])
    }

    /// Appends `up` and the `scrape_*` series.
    pub fn append_report(
        &mut self,
        app: &mut dyn Appender,
        t: i64,
        target: &Labels,
        up: bool,
        duration_secs: f64,
        stats: Stats,
    ) -> Result<(), storage::Error> {
        let values = [
            if up { 1.0 } else { 0.0 },
            duration_secs,
            stats.scraped as f64,
            stats.post_relabel as f64,
            stats.series_added as f64,
        ];
        self.append_report_values(app, t, target, values)
    }

    fn append_report_values(
        &mut self,
        app: &mut dyn Appender,
        t: i64,
        target: &Labels,
        values: [f64; 5],
    ) -> Result<(), storage::Error> {
        let labels = self.report_labels.get_or_insert_with(|| {
            REPORT_NAMES.map(|name| {
                let mut b = target.builder();
                b.set(METRIC_NAME.to_string(), name.to_string());
                b.build()
            })
        });
        for (i, v) in values.into_iter().enumerate() {
            match app.append(self.report_refs[i], &labels[i], t, v) {
                Ok(r) => self.report_refs[i] = r,
                Err(err) if err.is_sample_error() => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Whether metadata changed since the last call.
    pub fn metadata_changed(&mut self) -> bool {
        std::mem::take(&mut self.metadata_changed)
    }

    fn note_metadata(&mut self, entry: Entry<'_>) {
        let (metric, update): (&str, &dyn Fn(&mut MetricMetadata) -> bool) = match &entry {
            Entry::Help { metric, text } => (metric, &|m: &mut MetricMetadata| {
                set_if_changed(&mut m.help, text)
            }),
            Entry::Type { metric, kind } => (metric, &|m: &mut MetricMetadata| {
                set_if_changed(&mut m.kind, kind.as_str())
            }),
            Entry::Unit { metric, unit } => (metric, &|m: &mut MetricMetadata| {
                set_if_changed(&mut m.unit, unit)
            }),
            Entry::Sample(_) => return,
        };
        match self.metadata.get_mut(metric) {
            Some(m) => {
                self.metadata_changed |= update(m);
            }
            None => {
                let mut m = MetricMetadata {
                    metric: metric.to_string(),
                    kind: "unknown".to_string(),
                    help: String::new(),
                    unit: String::new(),
                };
                update(&mut m);
                self.metadata.insert(metric.to_string(), m);
                self.metadata_changed = true;
            }
        }
    }
}

/// Whether the samples kept so far exceed the target's `sample_limit`.
fn over(settings: &Settings, stats: &Stats) -> bool {
    settings.sample_limit > 0 && stats.post_relabel > settings.sample_limit
}

/// Appends a staleness marker for a cached series. A rejected sample (the
/// series already has a newer one) is fine; the first store failure is kept.
fn mark_stale(
    app: &mut dyn Appender,
    e: &mut crate::scrape::cache::Entry,
    t: i64,
    first_err: &mut Option<storage::Error>,
) {
    if e.series_ref == 0 {
        return;
    }
    match app.append(e.series_ref, &NO_LABELS, t, STALE_NAN) {
        Ok(r) => e.series_ref = r,
        Err(err) if err.is_sample_error() => {}
        Err(err) => {
            first_err.get_or_insert(err);
        }
    }
}

fn set_if_changed(slot: &mut String, value: &str) -> bool {
    if slot != value {
        slot.clear();
        slot.push_str(value);
        true
    } else {
        false
    }
}

/// Merges the target's labels into a sample's (Prometheus's `mutateSampleLabels`).
/// Without `honor_labels` the target wins and a clashing exposed label is kept
/// as `exported_<name>`; with it, the exposed label wins.
fn apply_target_labels(b: &mut LabelsBuilder, target: &Labels, honor_labels: bool) {
    for l in target {
        match b.get(&l.name).map(str::to_string) {
            None => {
                b.set(l.name.clone(), l.value.clone());
            }
            Some(_) if honor_labels => {}
            Some(exposed) => {
                let mut name = format!("exported_{}", l.name);
                while b.get(&name).is_some() || target.has(&name) {
                    name = format!("exported_{name}");
                }
                b.set(name, exposed);
                b.set(l.name.clone(), l.value.clone());
            }
        }
    }
}
