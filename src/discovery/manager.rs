//! Runs the providers of every job and publishes their combined groups.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::file_sd::FileSd;
use super::http_sd::HttpSd;
use super::{TargetGroup, Targets};

/// What one scrape job discovers from.
pub struct JobDiscovery {
    pub job: String,
    pub static_groups: Vec<TargetGroup>,
    pub file_sd: Vec<FileSd>,
    pub http_sd: Vec<HttpSd>,
}

/// Owns the running providers. [`Manager::apply`] replaces them all, e.g. on
/// a config reload; the scrape manager keeps targets whose labels did not change.
pub struct Manager {
    tx: Arc<watch::Sender<Targets>>,
    cancel: CancellationToken,
    state: Arc<Mutex<State>>,
}

/// Every job's groups by provider slot (0: static, then file_sd, then
/// http_sd, in config order), and which `apply` they belong to.
#[derive(Default)]
struct State {
    generation: u64,
    jobs: BTreeMap<String, BTreeMap<usize, Vec<TargetGroup>>>,
}

impl Manager {
    pub fn new() -> (Manager, watch::Receiver<Targets>) {
        let (tx, rx) = watch::channel(Targets::default());
        let m = Manager {
            tx: Arc::new(tx),
            cancel: CancellationToken::new(),
            state: Arc::default(),
        };
        (m, rx)
    }

    /// Stops every provider and starts the given ones. Until a new
    /// provider first reports, its slot keeps what the old one in that
    /// place had found: a reload must not drop every discovered target for
    /// the moment a file takes to read or a URL to answer (their loops
    /// would stop and their series go stale).
    pub fn apply(&mut self, jobs: Vec<JobDiscovery>) {
        self.cancel.cancel();
        self.cancel = CancellationToken::new();
        let generation = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.generation += 1;
            let mut next = BTreeMap::new();
            for job in &jobs {
                let providers = job.file_sd.len() + job.http_sd.len();
                let mut slots = BTreeMap::new();
                slots.insert(0, job.static_groups.clone());
                if let Some(old) = st.jobs.get_mut(&job.job) {
                    for i in 1..=providers {
                        if let Some(groups) = old.remove(&i) {
                            slots.insert(i, groups);
                        }
                    }
                }
                next.insert(job.job.clone(), slots);
            }
            st.jobs = next;
            publish(&self.tx, &st);
            st.generation
        };
        for job in jobs {
            let mut receivers = Vec::new();
            for sd in job.file_sd {
                let (gtx, grx) = mpsc::unbounded_channel();
                tokio::spawn(sd.run(gtx, self.cancel.child_token()));
                receivers.push(grx);
            }
            for sd in job.http_sd {
                let (gtx, grx) = mpsc::unbounded_channel();
                tokio::spawn(sd.run(gtx, self.cancel.child_token()));
                receivers.push(grx);
            }
            for (i, mut grx) in receivers.into_iter().enumerate() {
                let state = self.state.clone();
                let tx = self.tx.clone();
                let name = job.job.clone();
                tokio::spawn(async move {
                    while let Some(groups) = grx.recv().await {
                        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                        // A provider of an earlier `apply` that reports after
                        // it was replaced is not heard.
                        if st.generation != generation {
                            return;
                        }
                        st.jobs
                            .entry(name.clone())
                            .or_default()
                            .insert(i + 1, groups);
                        publish(&tx, &st);
                    }
                });
            }
        }
    }

    /// Stops every provider. `serve` never needs it: the providers end with
    /// the process.
    #[cfg(test)]
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

fn publish(tx: &watch::Sender<Targets>, st: &State) {
    let all: BTreeMap<String, Vec<TargetGroup>> = st
        .jobs
        .iter()
        .map(|(job, providers)| (job.clone(), providers.values().flatten().cloned().collect()))
        .collect();
    tx.send_replace(Arc::new(all));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::ADDRESS_LABEL;

    fn job(dir: &std::path::Path) -> JobDiscovery {
        let pattern = dir.join("*.json").display().to_string();
        JobDiscovery {
            job: "ray".into(),
            static_groups: Vec::new(),
            file_sd: vec![FileSd::new(&[pattern], std::time::Duration::from_secs(60)).unwrap()],
            http_sd: Vec::new(),
        }
    }

    fn addresses(rx: &watch::Receiver<Targets>) -> Vec<String> {
        let t = rx.borrow().clone();
        t.get("ray")
            .into_iter()
            .flatten()
            .flat_map(|g| &g.targets)
            .filter_map(|l| l.get(ADDRESS_LABEL).map(str::to_string))
            .collect()
    }

    #[tokio::test]
    async fn a_reload_keeps_discovered_targets_until_the_new_provider_reports() {
        let dir = std::env::temp_dir().join(format!("raymon-sd-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sd.json"), r#"[{"targets": ["a:1"]}]"#).unwrap();
        let (mut m, rx) = Manager::new();
        m.apply(vec![job(&dir)]);
        for _ in 0..100 {
            if !addresses(&rx).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(addresses(&rx), ["a:1"]);
        // What `apply` publishes before the new provider has read anything.
        m.apply(vec![job(&dir)]);
        assert_eq!(addresses(&rx), ["a:1"]);
        // A job that is gone loses its targets at once.
        m.apply(Vec::new());
        assert!(addresses(&rx).is_empty());
        m.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
