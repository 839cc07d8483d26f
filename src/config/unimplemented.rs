//! The one table of what a Prometheus 2.42 config may hold and raymon reads
//! without doing, and the search of a config for it. serve warns about
//! each finding at start-up and on every reload, `raymon check config`
//! prints it, and `raymon_config_unimplemented_sections` counts it, so
//! nothing in a config is accepted and ignored without a word.
//!
//! Implementing a section means deleting its row in [`NOT_IMPLEMENTED`].

use std::fmt;

use serde_norway::Value;

/// When a row applies to a field that is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Any value but null, an empty list or map, or an empty string.
    Present,
    /// The value written this way (`scheme: https`, `follow_redirects: true`).
    Is(&'static str),
}

/// One row: a field path and why raymon does not act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `section`, `section.field`, or `scrape_configs[].field` for a field
    /// of any scrape job.
    pub path: &'static str,
    pub when: When,
    pub why: &'static str,
}

const fn row(path: &'static str, when: When, why: &'static str) -> Entry {
    Entry { path, when, why }
}

/// What raymon does not implement, in the order warnings are given.
pub const NOT_IMPLEMENTED: &[Entry] = &[
    row(
        "global.query_log_file",
        When::Present,
        "raymon writes no query log",
    ),
    row(
        "rule_files",
        When::Present,
        "raymon evaluates no recording or alerting rules",
    ),
    row(
        "alerting",
        When::Present,
        "raymon sends no alerts to Alertmanager",
    ),
    row(
        "remote_read",
        When::Present,
        "raymon answers queries from its own store only",
    ),
    row(
        "storage.tsdb",
        When::Present,
        "raymon's store refuses out-of-order samples (out_of_order_time_window is not implemented)",
    ),
    row(
        "storage.exemplars",
        When::Present,
        "raymon stores no exemplars",
    ),
    row("tracing", When::Present, "raymon exports no traces"),
    row(
        "scrape_configs[].oauth2",
        When::Present,
        "raymon's HTTP client has no OAuth 2.0; such scrapes fail",
    ),
    row(
        "scrape_configs[].enable_http2",
        When::Is("true"),
        "raymon's HTTP client speaks HTTP/1.1",
    ),
];

/// One row found in a config: the section, the scrape jobs that have it
/// (for `scrape_configs[]` rows), and why it has no effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unimplemented {
    pub section: &'static str,
    pub jobs: Vec<String>,
    pub why: &'static str,
}

impl fmt::Display for Unimplemented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not implemented by raymon", self.section)?;
        if !self.jobs.is_empty() {
            write!(f, " (scrape jobs: {})", self.jobs.join(", "))?;
        }
        write!(f, " and has no effect: {}", self.why)
    }
}

/// The rows of [`NOT_IMPLEMENTED`] that `doc` (a whole config) has, one
/// finding per row.
pub fn find(doc: &Value) -> Vec<Unimplemented> {
    let mut out = Vec::new();
    for e in NOT_IMPLEMENTED {
        let jobs = match e.path.strip_prefix("scrape_configs[].") {
            Some(field) => {
                let jobs: Vec<String> = doc
                    .get("scrape_configs")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .filter(|job| job.get(field).is_some_and(|v| applies(e.when, v)))
                    .map(|job| {
                        job.get("job_name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    })
                    .collect();
                if jobs.is_empty() {
                    continue;
                }
                jobs
            }
            None => {
                let v = e.path.split('.').try_fold(doc, |v, key| v.get(key));
                if !v.is_some_and(|v| applies(e.when, v)) {
                    continue;
                }
                Vec::new()
            }
        };
        out.push(Unimplemented {
            section: e.path,
            jobs,
            why: e.why,
        });
    }
    out
}

fn applies(when: When, v: &Value) -> bool {
    match when {
        When::Present => match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Sequence(s) => !s.is_empty(),
            Value::Mapping(m) => !m.is_empty(),
            _ => true,
        },
        When::Is(want) => match v {
            Value::String(s) => s == want,
            Value::Bool(b) => b.to_string() == want,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(yaml: &str) -> Vec<Unimplemented> {
        find(&serde_norway::from_str(yaml).unwrap())
    }

    #[test]
    fn empty_and_default_values_are_not_findings() {
        let f = found(
            "rule_files: []\nalerting: {}\nscrape_configs:\n- job_name: a\n  scheme: http\n  \
             enable_http2: false\n",
        );
        assert_eq!(f, []);
    }

    #[test]
    fn scrape_rows_name_their_jobs_once() {
        let f = found(
            "scrape_configs:\n- job_name: a\n  oauth2: {client_id: c}\n- job_name: b\n  \
             oauth2: {client_id: c}\n  enable_http2: true\n",
        );
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].section, "scrape_configs[].oauth2");
        assert_eq!(f[0].jobs, ["a", "b"]);
        assert_eq!(f[1].jobs, ["b"]);
        assert!(f[0].to_string().contains("(scrape jobs: a, b)"));
    }

    #[test]
    fn table_paths_are_unique() {
        let mut p: Vec<_> = NOT_IMPLEMENTED.iter().map(|e| e.path).collect();
        p.sort();
        p.dedup();
        assert_eq!(p.len(), NOT_IMPLEMENTED.len());
    }
}
