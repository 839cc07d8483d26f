//! File-based service discovery, following Ray's atomic rewrites.
//!
//! Ray replaces its discovery JSON every 5 s by writing a temporary file and
//! renaming it over the old one, so a watch on the file's inode is lost at the
//! first rewrite. We watch the *directories* (inotify through `notify`) and
//! also re-read on `refresh_interval`; where a directory cannot be watched
//! (it does not exist yet, say) we poll it every second until it can.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Error, TargetGroup};
use crate::config::glob;
use crate::selfmetrics::SdMetrics;

/// How long to wait after a filesystem event for the writer to finish, so the
/// temporary write and the rename are read as one change.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Poll period for directories that cannot be watched.
const POLL_UNWATCHED: Duration = Duration::from_secs(1);

/// One `file_sd_configs` entry.
pub struct FileSd {
    patterns: Vec<(PathBuf, String)>,
    refresh: Duration,
    /// The last good groups of each file: a file that turns invalid keeps them.
    last_good: BTreeMap<PathBuf, Vec<TargetGroup>>,
    /// Read or parse failures so far (`prometheus_sd_file_read_errors_total`).
    pub read_errors: u64,
    /// Also counts read errors here when set, for `/metrics`.
    metrics: Option<Arc<SdMetrics>>,
}

impl FileSd {
    pub fn new(patterns: &[String], refresh: Duration) -> Result<FileSd, Error> {
        let patterns = patterns
            .iter()
            .map(|p| {
                glob::split(p).map_err(|msg| Error::Pattern {
                    pattern: p.clone(),
                    msg,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FileSd {
            patterns,
            refresh,
            last_good: BTreeMap::new(),
            read_errors: 0,
            metrics: None,
        })
    }

    /// Counts read errors into `metrics` as well.
    pub fn set_metrics(&mut self, metrics: Arc<SdMetrics>) {
        self.metrics = Some(metrics);
    }

    /// Re-reads every matching file and returns all groups. A file that cannot
    /// be read or parsed keeps its last good groups; a file that is gone loses them.
    pub fn refresh(&mut self) -> Vec<TargetGroup> {
        let mut seen = Vec::new();
        for (dir, pat) in &self.patterns {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_str().is_some_and(|n| glob::matches(pat, n)) {
                    seen.push(entry.path());
                }
            }
        }
        seen.sort();
        seen.dedup();
        self.last_good.retain(|p, _| seen.contains(p));
        for path in seen {
            match read_groups(&path) {
                Ok(groups) => {
                    self.last_good.insert(path, groups);
                }
                Err(error) => {
                    self.read_errors += 1;
                    if let Some(m) = &self.metrics {
                        m.file_read_errors.inc();
                    }
                    warn!(%error, "keeping the last good targets of this discovery file");
                }
            }
        }
        self.last_good.values().flatten().cloned().collect()
    }

    /// Runs until `cancel`, sending the full group list whenever it changes.
    pub async fn run(
        mut self,
        tx: mpsc::UnboundedSender<Vec<TargetGroup>>,
        cancel: CancellationToken,
    ) {
        let (ev_tx, mut ev_rx) = mpsc::channel::<()>(1);
        // Only events about files we read count: the watched directory may
        // also hold logs or data that change all the time.
        let names: Vec<String> = self.patterns.iter().map(|(_, p)| p.clone()).collect();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if is_relevant(&event, &names) {
                // A full channel already means "look again"; dropping is fine.
                let _ = ev_tx.try_send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(error) => {
                warn!(%error, "cannot watch discovery files, polling instead");
                None
            }
        };
        let dirs: Vec<PathBuf> = self.patterns.iter().map(|(d, _)| d.clone()).collect();
        let mut unwatched: Vec<PathBuf> = dirs.clone();
        let mut last: Option<Vec<TargetGroup>> = None;
        loop {
            if let Some(w) = watcher.as_mut() {
                unwatched.retain(|d| !try_watch(w, d));
            }
            let groups = self.refresh();
            if last.as_ref() != Some(&groups) {
                debug!(groups = groups.len(), "file_sd targets changed");
                if tx.send(groups.clone()).is_err() {
                    return;
                }
                last = Some(groups);
            }
            let wait = if unwatched.is_empty() && watcher.is_some() {
                self.refresh
            } else {
                POLL_UNWATCHED.min(self.refresh)
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                ev = ev_rx.recv() => {
                    if ev.is_none() {
                        watcher = None;
                    }
                    tokio::time::sleep(DEBOUNCE).await;
                    while ev_rx.try_recv().is_ok() {}
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Whether `event` may have changed a file matching one of `names`.
///
/// Reading a file is an event too (inotify's open and close-without-write),
/// and `refresh` reads every matching file: counting those would make each
/// re-read trigger the next, a busy loop. Prometheus's watch (fsnotify)
/// never asks for them either.
fn is_relevant(event: &notify::Event, names: &[String]) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    if let EventKind::Access(kind) = event.kind
        && kind != AccessKind::Close(AccessMode::Write)
    {
        return false;
    }
    event.paths.is_empty()
        || event.paths.iter().any(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| names.iter().any(|pat| glob::matches(pat, n)))
        })
}

fn try_watch(w: &mut notify::RecommendedWatcher, dir: &Path) -> bool {
    w.watch(dir, notify::RecursiveMode::NonRecursive).is_ok()
}

fn read_groups(path: &Path) -> Result<Vec<TargetGroup>, Error> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: display.clone(),
        source,
    })?;
    TargetGroup::parse_file(&display, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("raymon-filesd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reading_a_file_is_not_a_change() {
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
        use notify::{Event, EventKind};
        let names = vec!["*.json".to_string()];
        let on = |kind| Event::new(kind).add_path(PathBuf::from("/d/sd.json"));
        // What `refresh` itself causes: opening and closing a file it reads.
        assert!(!is_relevant(
            &on(EventKind::Access(AccessKind::Open(AccessMode::Any))),
            &names
        ));
        assert!(!is_relevant(
            &on(EventKind::Access(AccessKind::Close(AccessMode::Read))),
            &names
        ));
        // Real changes: a write that closed, a rename over it, a new file.
        assert!(is_relevant(
            &on(EventKind::Access(AccessKind::Close(AccessMode::Write))),
            &names
        ));
        assert!(is_relevant(
            &on(EventKind::Modify(ModifyKind::Name(RenameMode::To))),
            &names
        ));
        assert!(is_relevant(
            &on(EventKind::Create(CreateKind::File)),
            &names
        ));
        // Other files in the directory, such as logs, do not count.
        let log = Event::new(EventKind::Create(CreateKind::File))
            .add_path(PathBuf::from("/d/collector.log"));
        assert!(!is_relevant(&log, &names));
        // A rescan names no path: look again.
        assert!(is_relevant(&Event::new(EventKind::Other), &names));
    }

    #[test]
    fn invalid_file_keeps_last_good_and_removed_file_drops() {
        let d = tempdir("lastgood");
        let f = d.join("sd.json");
        std::fs::write(
            &f,
            r#"[{"labels": {"job": "ray"}, "targets": ["a:1", "b:2"]}]"#,
        )
        .unwrap();
        let mut sd = FileSd::new(
            &[d.join("*.json").display().to_string()],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(sd.refresh()[0].targets.len(), 2);
        std::fs::write(&f, r#"[{"labels": {"job": "ray"}, "targ"#).unwrap();
        let g = sd.refresh();
        assert_eq!(g[0].targets.len(), 2);
        assert_eq!(sd.read_errors, 1);
        std::fs::remove_file(&f).unwrap();
        assert!(sd.refresh().is_empty());
    }
}
