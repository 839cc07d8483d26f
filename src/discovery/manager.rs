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
}

type Slots = Arc<Mutex<BTreeMap<String, BTreeMap<usize, Vec<TargetGroup>>>>>;

impl Manager {
    pub fn new() -> (Manager, watch::Receiver<Targets>) {
        let (tx, rx) = watch::channel(Targets::default());
        let m = Manager {
            tx: Arc::new(tx),
            cancel: CancellationToken::new(),
        };
        (m, rx)
    }

    /// Stops every provider and starts the given ones.
    pub fn apply(&mut self, jobs: Vec<JobDiscovery>) {
        self.cancel.cancel();
        self.cancel = CancellationToken::new();
        let slots: Slots = Arc::default();
        {
            let mut s = slots.lock().unwrap_or_else(|e| e.into_inner());
            for job in &jobs {
                let mut m = BTreeMap::new();
                m.insert(0, job.static_groups.clone());
                s.insert(job.job.clone(), m);
            }
        }
        publish(&self.tx, &slots);
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
                let slots = slots.clone();
                let tx = self.tx.clone();
                let name = job.job.clone();
                tokio::spawn(async move {
                    while let Some(groups) = grx.recv().await {
                        {
                            let mut s = slots.lock().unwrap_or_else(|e| e.into_inner());
                            s.entry(name.clone()).or_default().insert(i + 1, groups);
                        }
                        publish(&tx, &slots);
                    }
                });
            }
        }
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

fn publish(tx: &watch::Sender<Targets>, slots: &Slots) {
    let s = slots.lock().unwrap_or_else(|e| e.into_inner());
    let all: BTreeMap<String, Vec<TargetGroup>> = s
        .iter()
        .map(|(job, providers)| (job.clone(), providers.values().flatten().cloned().collect()))
        .collect();
    tx.send_replace(Arc::new(all));
}
