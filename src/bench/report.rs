//! The results of a `raymon bench` run: one record per collector, the
//! ratios raymon/other for every figure, a text table for people and JSON
//! for machines. Knows nothing of how the figures were measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The command line that produced the report.
    pub command: String,
    pub machine: Machine,
    pub config: Config,
    pub collectors: Vec<Collector>,
    /// For each other collector, raymon's figure divided by the other's.
    pub ratios: BTreeMap<String, BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_bytes: u64,
    /// Nanoseconds a dependent load from memory took before the run
    /// ([`super::measure::memory_load_ns`]).
    #[serde(default)]
    pub memory_load_ns: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    pub targets: usize,
    pub series_per_target: usize,
    pub interval_seconds: f64,
    pub duration_seconds: f64,
    /// How long each collector ran before the window (`--warmup`).
    #[serde(default)]
    pub warmup_seconds: f64,
    pub churn: f64,
    pub histogram_fraction: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Collector {
    pub name: String,
    pub command: String,
    /// Sample lines the targets served to the collector in the window,
    /// duplicate fetches (see [`Scrapes::duplicates`]) not counted.
    pub samples_ingested: u64,
    /// All sample lines the targets served in the window.
    pub samples_served: u64,
    /// The collector's own count of appended samples in the window (it
    /// includes its per-scrape report series), when its `/metrics` has one.
    pub collector_samples_appended: Option<u64>,
    pub collector_samples_metric: Option<String>,
    /// CPU of the simulated cluster's process in the window, to show it
    /// left the collector room.
    pub targets_cpu_seconds: Option<f64>,
    pub samples_per_second: f64,
    /// User plus system CPU of the collector during the window.
    pub cpu_seconds: f64,
    pub cpu_seconds_per_million_samples: Option<f64>,
    pub peak_rss_bytes: u64,
    /// Resident memory at the end of the window.
    pub steady_rss_bytes: u64,
    pub active_series: u64,
    pub active_series_source: String,
    pub rss_bytes_per_series: Option<f64>,
    pub disk_bytes: u64,
    /// `None` when nothing was written.
    pub disk_bytes_per_sample: Option<f64>,
    pub scrapes: Scrapes,
    /// From the restart to `/-/ready` answering 200 and a query answering.
    pub restart_ready_seconds: Option<f64>,
    /// Head series right after the restart: what survived it.
    pub series_after_restart: Option<u64>,
    /// As `restart_ready_seconds`, after a `kill -9` of the restarted
    /// collector instead of a clean stop.
    #[serde(default)]
    pub kill_restart_ready_seconds: Option<f64>,
    /// Head series right after that restart.
    #[serde(default)]
    pub series_after_kill_restart: Option<u64>,
    pub queries: Queries,
    /// With `--remote-write-url`: samples the receiver took in the window
    /// (its `vm_rows_inserted_total`), and the collector's CPU per million
    /// of them.
    #[serde(default)]
    pub samples_forwarded: Option<u64>,
    #[serde(default)]
    pub cpu_seconds_per_million_forwarded: Option<f64>,
    /// Samples scraped since the collector started and not at the
    /// receiver when the window closed.
    #[serde(default)]
    pub forward_backlog_samples: Option<u64>,
}

/// Scrape timing as the targets saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scrapes {
    /// Requests the targets answered in the window.
    pub count: u64,
    /// Of `count`, requests less than half an interval after the previous
    /// one to the same target.
    pub duplicates: u64,
    /// Sample lines in the requests that were not duplicates.
    pub distinct_samples: u64,
    /// Whole intervals in the window, times targets.
    pub expected: u64,
    /// Fewest requests any one target answered.
    pub min_per_target: u64,
    pub interval_p50_seconds: Option<f64>,
    pub interval_p99_seconds: Option<f64>,
    /// Share of intervals within 1% of the configured one.
    pub within_1pct: Option<f64>,
}

/// Ray dashboard queries over the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Queries {
    /// `ok`, or why the figures are missing (`n/a: ...`).
    pub status: String,
    /// Why fewer queries ran than were given, if they did.
    pub status_note: Option<String>,
    /// Queries run.
    pub count: usize,
    pub ok: usize,
    pub failed: usize,
    pub p50_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    /// Every query's time, in the order run.
    #[serde(default)]
    pub per_query: Vec<QueryTime>,
    /// Resident memory just before the first query (scraping goes on).
    #[serde(default)]
    pub rss_before_bytes: Option<u64>,
    /// The highest resident memory seen while the queries ran (sampled
    /// every 100 ms).
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    /// The highest resident memory over the last minute of scraping alone
    /// before the queries, sampled as often.
    #[serde(default)]
    pub scrape_high_rss_bytes: Option<u64>,
}

/// One query's run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueryTime {
    pub query: String,
    /// HTTP status; 0 when no answer came in time.
    pub status: u16,
    /// `None` when the query failed.
    pub seconds: Option<f64>,
}

impl Queries {
    /// How far the memory rose over its level before the queries, in percent.
    pub fn rss_rise_percent(&self) -> Option<f64> {
        rise(self.rss_before_bytes, self.peak_rss_bytes)
    }

    /// How far the memory's peak while querying rose over its highest point
    /// while only scraping, in percent.
    pub fn rss_rise_over_scrape_high_percent(&self) -> Option<f64> {
        rise(self.scrape_high_rss_bytes, self.peak_rss_bytes)
    }
}

fn rise(from: Option<u64>, to: Option<u64>) -> Option<f64> {
    match (from, to) {
        (Some(a), Some(b)) if a > 0 => Some((b as f64 / a as f64 - 1.0) * 100.0),
        _ => None,
    }
}

impl Collector {
    /// The measured window's length, from the samples and their rate.
    fn scrapes_window_seconds(&self) -> f64 {
        if self.samples_per_second > 0.0 {
            self.samples_ingested as f64 / self.samples_per_second
        } else {
            1.0
        }
    }
}

/// raymon's figures over each other run's, figure by figure, keyed by the
/// other's name (a ratio only where both have the figure and the other's is
/// not zero); empty when raymon did not run.
pub(super) fn ratios_to_raymon<T, U>(
    runs: &[T],
    name: impl Fn(&T) -> &str,
    figures: impl Fn(&T) -> Vec<(&'static str, Option<f64>, U)>,
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let Some(raymon) = runs.iter().find(|r| name(r) == "raymon") else {
        return out;
    };
    let ours = figures(raymon);
    for other in runs.iter().filter(|r| name(r) != "raymon") {
        let mut m = BTreeMap::new();
        for ((figure, a, _), (_, b, _)) in ours.iter().zip(figures(other)) {
            if let (Some(a), Some(b)) = (a, b)
                && b != 0.0
            {
                m.insert((*figure).to_string(), a / b);
            }
        }
        out.insert(name(other).to_string(), m);
    }
    out
}

/// Every figure in the table, by name, with how to print it.
fn figures(c: &Collector) -> Vec<(&'static str, Option<f64>, Unit)> {
    let mib = |b: u64| Some(b as f64);
    vec![
        ("samples/s", Some(c.samples_per_second), Unit::Plain),
        (
            "CPU s per 1M samples",
            c.cpu_seconds_per_million_samples,
            Unit::Fixed3,
        ),
        (
            "forwarded samples/s",
            c.samples_forwarded
                .map(|n| n as f64 / c.scrapes_window_seconds()),
            Unit::Plain,
        ),
        (
            "CPU s per 1M forwarded",
            c.cpu_seconds_per_million_forwarded,
            Unit::Fixed3,
        ),
        (
            "backlog at end (samples)",
            c.forward_backlog_samples.map(|n| n as f64),
            Unit::Plain,
        ),
        (
            "backlog at end (s of scraping)",
            c.forward_backlog_samples
                .filter(|_| c.samples_per_second > 0.0)
                .map(|n| n as f64 / c.samples_per_second),
            Unit::Fixed3,
        ),
        ("peak RSS", mib(c.peak_rss_bytes), Unit::Bytes),
        ("steady RSS", mib(c.steady_rss_bytes), Unit::Bytes),
        ("active series", Some(c.active_series as f64), Unit::Plain),
        ("RSS per active series", c.rss_bytes_per_series, Unit::Bytes),
        (
            "disk bytes per sample",
            c.disk_bytes_per_sample,
            Unit::Fixed3,
        ),
        (
            "scrape interval p50 (s)",
            c.scrapes.interval_p50_seconds,
            Unit::Fixed3,
        ),
        (
            "scrape interval p99 (s)",
            c.scrapes.interval_p99_seconds,
            Unit::Fixed3,
        ),
        (
            "intervals within 1%",
            c.scrapes.within_1pct.map(|f| f * 100.0),
            Unit::Percent,
        ),
        (
            "distinct scrapes / expected",
            (c.scrapes.expected > 0).then(|| {
                (c.scrapes.count - c.scrapes.duplicates) as f64 / c.scrapes.expected as f64
            }),
            Unit::Fixed3,
        ),
        (
            "ready after restart (s)",
            c.restart_ready_seconds,
            Unit::Fixed3,
        ),
        (
            "ready after kill -9 (s)",
            c.kill_restart_ready_seconds,
            Unit::Fixed3,
        ),
        (
            "dashboard query p50 (ms)",
            c.queries.p50_seconds.map(|s| s * 1e3),
            Unit::Fixed3,
        ),
        (
            "dashboard query p99 (ms)",
            c.queries.p99_seconds.map(|s| s * 1e3),
            Unit::Fixed3,
        ),
        (
            "dashboard query max (ms)",
            c.queries
                .per_query
                .iter()
                .filter_map(|q| q.seconds)
                .reduce(f64::max)
                .map(|s| s * 1e3),
            Unit::Fixed3,
        ),
        (
            "RSS before queries",
            c.queries.rss_before_bytes.map(|b| b as f64),
            Unit::Bytes,
        ),
        (
            "RSS while querying (peak)",
            c.queries.peak_rss_bytes.map(|b| b as f64),
            Unit::Bytes,
        ),
        (
            "querying RSS over before",
            c.queries.rss_rise_percent(),
            Unit::Percent,
        ),
        (
            "RSS scraping alone (high, last minute)",
            c.queries.scrape_high_rss_bytes.map(|b| b as f64),
            Unit::Bytes,
        ),
        (
            "querying RSS over scraping's high",
            c.queries.rss_rise_over_scrape_high_percent(),
            Unit::Percent,
        ),
    ]
}

#[derive(Clone, Copy)]
enum Unit {
    Plain,
    Fixed3,
    Bytes,
    Percent,
}

fn show(v: Option<f64>, unit: Unit) -> String {
    let Some(v) = v else {
        return "n/a".to_string();
    };
    match unit {
        Unit::Plain => format!("{v:.0}"),
        Unit::Fixed3 => format!("{v:.3}"),
        Unit::Percent => format!("{v:.1}%"),
        Unit::Bytes => {
            if v >= 1024.0 * 1024.0 {
                format!("{:.1} MiB", v / (1024.0 * 1024.0))
            } else if v >= 1024.0 {
                format!("{:.2} KiB", v / 1024.0)
            } else {
                format!("{v:.0} B")
            }
        }
    }
}

impl Report {
    /// Fills `ratios`: raymon's figure over each other collector's.
    pub fn compute_ratios(&mut self) {
        self.ratios = ratios_to_raymon(&self.collectors, |c| &c.name, figures);
    }

    /// The table printed at the end of a run, as Markdown.
    pub fn table(&self) -> String {
        let mut header = vec!["figure".to_string()];
        header.extend(self.collectors.iter().map(|c| c.name.clone()));
        let others: Vec<&String> = self.ratios.keys().collect();
        header.extend(others.iter().map(|o| format!("raymon/{o}")));
        let mut rows = vec![header];
        let per: Vec<_> = self.collectors.iter().map(figures).collect();
        let n = per.first().map(|f| f.len()).unwrap_or(0);
        for i in 0..n {
            let name = per[0][i].0;
            let mut row = vec![name.to_string()];
            for f in &per {
                row.push(show(f[i].1, f[i].2));
            }
            for o in &others {
                row.push(
                    self.ratios[*o]
                        .get(name)
                        .map(|r| format!("{r:.2}x"))
                        .unwrap_or_else(|| "n/a".to_string()),
                );
            }
            rows.push(row);
        }
        let mut notes = Vec::new();
        if let Some(ns) = self.machine.memory_load_ns {
            notes.push(format!(
                "machine: a load from memory took {ns:.0} ns before the run"
            ));
        }
        for c in &self.collectors {
            if c.queries.status != "ok" {
                notes.push(format!(
                    "{}: dashboard queries {}",
                    c.name, c.queries.status
                ));
            }
            if let (Some(n), Some(m)) = (c.collector_samples_appended, &c.collector_samples_metric)
            {
                notes.push(format!(
                    "{}: its own {m} counted {n} samples against {} served",
                    c.name, c.samples_served
                ));
            }
            if c.scrapes.duplicates > 0 {
                notes.push(format!(
                    "{}: fetched a target again within half an interval {} times (of {} fetches)",
                    c.name, c.scrapes.duplicates, c.scrapes.count
                ));
            }
            if c.disk_bytes == 0 {
                notes.push(format!("{}: wrote nothing to disk", c.name));
            }
            if let Some(n) = c.series_after_restart {
                notes.push(format!(
                    "{}: {n} head series right after the restart (of {})",
                    c.name, c.active_series
                ));
            }
            if let Some(n) = c.series_after_kill_restart {
                notes.push(format!(
                    "{}: {n} head series right after the restart that followed kill -9 (of {})",
                    c.name, c.active_series
                ));
            }
            if let Some(t) = c.targets_cpu_seconds {
                notes.push(format!(
                    "{}: the simulated cluster used {t:.1} CPU s in the window",
                    c.name
                ));
            }
            notes.push(format!(
                "{}: active series from {}",
                c.name, c.active_series_source
            ));
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|j| rows.iter().map(|r| r[j].len()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (i, row) in rows.iter().enumerate() {
            out.push('|');
            for (j, cell) in row.iter().enumerate() {
                let _ = write!(out, " {:w$} |", cell, w = widths[j]);
            }
            out.push('\n');
            if i == 0 {
                out.push('|');
                for w in &widths {
                    let _ = write!(out, "{}|", "-".repeat(w + 2));
                }
                out.push('\n');
            }
        }
        if !notes.is_empty() {
            out.push('\n');
        }
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
        out.push_str(&self.per_query_table());
        out
    }

    /// Every query's time on raymon and on each other collector that ran
    /// the same queries, with the ratio; empty without two such.
    pub fn per_query_table(&self) -> String {
        let Some(raymon) = self.collectors.iter().find(|c| c.name == "raymon") else {
            return String::new();
        };
        let others: Vec<&Collector> = self
            .collectors
            .iter()
            .filter(|c| c.name != "raymon" && !c.queries.per_query.is_empty())
            .collect();
        if raymon.queries.per_query.is_empty() || others.is_empty() {
            return String::new();
        }
        let ms = |s: Option<f64>| s.map_or("failed".to_string(), |s| format!("{:.1}", s * 1e3));
        let mut out = String::from("\n| # | raymon ms |");
        for o in &others {
            let _ = write!(out, " {} ms | raymon/{} |", o.name, o.name);
        }
        out.push_str(" query |\n|---|---|");
        out.push_str(&"---|---|".repeat(others.len()));
        out.push_str("---|\n");
        let mut within = vec![0usize; others.len()];
        let mut compared = vec![0usize; others.len()];
        for (i, q) in raymon.queries.per_query.iter().enumerate() {
            let _ = write!(out, "| {} | {} |", i + 1, ms(q.seconds));
            for (j, o) in others.iter().enumerate() {
                let theirs = o.queries.per_query.get(i).filter(|t| t.query == q.query);
                let t = theirs.and_then(|t| t.seconds);
                let ratio = match (q.seconds, t) {
                    (Some(a), Some(b)) if b > 0.0 => {
                        compared[j] += 1;
                        if a <= b / 10.0 {
                            within[j] += 1;
                        }
                        format!("{:.2}", a / b)
                    }
                    _ => "n/a".to_string(),
                };
                let _ = write!(
                    out,
                    " {} | {ratio} |",
                    theirs.map_or("n/a".into(), |_| ms(t))
                );
            }
            let _ = writeln!(out, " `{}` |", short(&q.query, 100));
        }
        for (j, o) in others.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n- raymon took at most 1/10 of {}'s time on {} of {} queries both answered",
                o.name, within[j], compared[j]
            );
        }
        out
    }
}

/// `s` cut to `n` characters (on a character boundary), `…` when cut; `|`
/// escaped for Markdown tables.
pub fn short(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_divide_raymon_by_the_other() {
        let mut r = Report {
            collectors: vec![
                Collector {
                    name: "raymon".into(),
                    samples_per_second: 100.0,
                    peak_rss_bytes: 50,
                    ..Default::default()
                },
                Collector {
                    name: "prometheus".into(),
                    samples_per_second: 200.0,
                    peak_rss_bytes: 100,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        r.compute_ratios();
        assert_eq!(r.ratios["prometheus"]["samples/s"], 0.5);
        assert_eq!(r.ratios["prometheus"]["peak RSS"], 0.5);
        assert!(!r.ratios["prometheus"].contains_key("ready after restart (s)"));
        assert!(r.table().contains("| raymon/prometheus |"));
    }

    #[test]
    fn querying_rss_rises_over_both_references() {
        let q = Queries {
            rss_before_bytes: Some(800),
            scrape_high_rss_bytes: Some(1000),
            peak_rss_bytes: Some(1100),
            ..Default::default()
        };
        assert!((q.rss_rise_percent().unwrap() - 37.5).abs() < 1e-9);
        assert!((q.rss_rise_over_scrape_high_percent().unwrap() - 10.0).abs() < 1e-9);
        let none = Queries {
            peak_rss_bytes: Some(1100),
            ..Default::default()
        };
        assert_eq!(none.rss_rise_over_scrape_high_percent(), None);
    }
}
