//! [`Supervisor`]: owns the in-process tasks of `raymon up` and every child
//! process (each in its own process group, its output in a log file), and
//! the token that stops them; tracks the processes the children spawn,
//! records them all in a state file for `raymon down`, and stops them:
//! SIGTERM to the group, a grace period, then SIGKILL to whatever is left.
//!
//! Reads Linux's `/proc` to find descendants and to tell a live process
//! from a reused PID. Knows nothing of Ray or Grafana beyond a name and an
//! optional command-line marker per child.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::procfs::Stat;

/// The state file's name under the data dir.
pub const STATE_FILE: &str = "raymon-up.json";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create log file {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {name} ({program})")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write state file {path}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A process, told apart from a later one with the same PID by its start
/// time (clock ticks since boot, `/proc/<pid>/stat` field 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: u32,
    pub start: u64,
}

impl ProcId {
    /// The process `pid` as it is now, if it exists.
    pub fn of(pid: u32) -> Option<ProcId> {
        Stat::of(pid).map(|s| ProcId {
            pid,
            start: s.start,
        })
    }

    /// Still running (not a zombie) and still the same process.
    pub fn alive(&self) -> bool {
        Stat::of(self.pid).is_some_and(|s| s.start == self.start && !s.is_zombie())
    }
}

/// What `raymon down` reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The `raymon up` process itself.
    pub up: Option<ProcId>,
    /// Direct children by name, with their process groups.
    pub children: Vec<(String, ProcId)>,
    /// Every process known to belong to the stack, children included.
    pub pids: Vec<ProcId>,
}

impl State {
    pub fn read(data_dir: &Path) -> Option<State> {
        let text = std::fs::read_to_string(data_dir.join(STATE_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

struct Managed {
    name: String,
    child: tokio::process::Child,
    id: ProcId,
    /// Processes whose command line holds this string belong to the child
    /// even if they left its process tree (Ray's session dir, say).
    marker: Option<String>,
    known: BTreeSet<ProcId>,
    exited: bool,
}

/// An in-process task (the collector), stopped through its own token.
struct Task {
    name: String,
    cancel: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Owns the in-process tasks and the children, and the token that says
/// "stop" (cancelled by a signal, `raymon down`, or a failure). Dropping it
/// SIGKILLs every group it still owns.
pub struct Supervisor {
    data_dir: PathBuf,
    log_dir: PathBuf,
    cancel: CancellationToken,
    tasks: Vec<Task>,
    children: Vec<Managed>,
}

impl Supervisor {
    pub fn new(data_dir: &Path, cancel: CancellationToken) -> Supervisor {
        Supervisor {
            data_dir: data_dir.to_path_buf(),
            log_dir: data_dir.join("logs"),
            cancel,
            tasks: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Cancelled when the whole stack should stop.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Runs `f` as a task with its own token, a child of the stack's.
    pub fn spawn_task<F, Fut>(&mut self, name: &str, f: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(f(cancel.clone()));
        self.tasks.push(Task {
            name: name.to_string(),
            cancel,
            handle: Some(handle),
        });
    }

    /// The first task that ended on its own, if any.
    pub fn finished_task(&self) -> Option<String> {
        self.tasks
            .iter()
            .find(|t| t.handle.as_ref().is_some_and(|h| h.is_finished()))
            .map(|t| t.name.clone())
    }

    /// Stops the tasks in the order they started (each one finishes its own
    /// shutdown, such as flushing storage), then the children, the last
    /// started first. Returns the first task's error.
    pub async fn shutdown(&mut self, grace: Duration) -> anyhow::Result<()> {
        let mut first_err = None;
        for t in &mut self.tasks {
            info!(name = %t.name, "stopping");
            t.cancel.cancel();
            if let Some(h) = t.handle.take() {
                let r = match h.await {
                    Ok(r) => r,
                    Err(e) => Err(anyhow::anyhow!("{} task failed: {e}", t.name)),
                };
                if let Err(e) = r {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.stop_all(grace).await;
        first_err.map_or(Ok(()), Err)
    }

    /// Where `name`'s output goes.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Starts `cmd` as `name` in a new process group, output to its log.
    pub fn spawn(
        &mut self,
        name: &str,
        mut cmd: tokio::process::Command,
        marker: Option<String>,
    ) -> Result<ProcId, Error> {
        let log = self.log_path(name);
        let open = || {
            std::fs::create_dir_all(&self.log_dir)?;
            std::fs::File::create(&log)
        };
        let out = open().map_err(|source| Error::Log {
            path: log.clone(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| Error::Log {
            path: log.clone(),
            source,
        })?;
        let program = format!("{:?}", cmd.as_std().get_program());
        cmd.stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            name: name.to_string(),
            program,
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let id = ProcId::of(pid).unwrap_or(ProcId { pid, start: 0 });
        info!(name, pid, log = %log.display(), "started");
        let mut known = BTreeSet::new();
        known.insert(id);
        self.children.push(Managed {
            name: name.to_string(),
            child,
            id,
            marker,
            known,
            exited: false,
        });
        self.write_state()?;
        Ok(id)
    }

    /// Sets the command-line marker of `name` (known once Ray picked its
    /// session dir).
    pub fn set_marker(&mut self, name: &str, marker: String) {
        if let Some(m) = self.children.iter_mut().find(|m| m.name == name) {
            m.marker = Some(marker);
        }
    }

    /// The last `n` lines of `name`'s log.
    pub fn log_tail(&self, name: &str, n: usize) -> String {
        tail(&self.log_path(name), n)
    }

    /// The first child that exited since the last call, with its status.
    pub fn exited_child(&mut self) -> Option<(String, String)> {
        for m in &mut self.children {
            if m.exited {
                continue;
            }
            if let Ok(Some(status)) = m.child.try_wait() {
                m.exited = true;
                return Some((m.name.clone(), status.to_string()));
            }
        }
        None
    }

    /// Re-reads `/proc` for the processes each child owns and records them.
    pub fn refresh(&mut self) -> Result<(), Error> {
        let table = ProcTable::read();
        for m in &mut self.children {
            if m.exited && m.known.iter().all(|p| !p.alive()) {
                continue;
            }
            m.known
                .extend(table.owned_by(m.id.pid, m.marker.as_deref()));
            m.known.retain(|p| p.alive() || *p == m.id);
        }
        self.write_state()
    }

    /// Every process the children own, as last seen.
    pub fn known_pids(&self) -> Vec<ProcId> {
        self.children
            .iter()
            .flat_map(|m| m.known.iter().copied())
            .collect()
    }

    fn write_state(&self) -> Result<(), Error> {
        let state = State {
            up: ProcId::of(std::process::id()),
            children: self
                .children
                .iter()
                .map(|m| (m.name.clone(), m.id))
                .collect(),
            pids: self.known_pids(),
        };
        let path = self.data_dir.join(STATE_FILE);
        let tmp = self.data_dir.join(format!("{STATE_FILE}.tmp"));
        let write = || {
            std::fs::create_dir_all(&self.data_dir)?;
            std::fs::write(&tmp, serde_json::to_vec_pretty(&state).unwrap_or_default())?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| Error::State { path, source })
    }

    /// Stops every child, the last started first.
    pub async fn stop_all(&mut self, grace: Duration) {
        let _ = self.refresh();
        while let Some(mut m) = self.children.pop() {
            stop_one(&mut m, grace).await;
            let _ = self.write_state();
        }
        let _ = std::fs::remove_file(self.data_dir.join(STATE_FILE));
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for m in &self.children {
            signal_group(m.id.pid, "KILL");
            for p in &m.known {
                if p.alive() {
                    signal(p.pid, "KILL");
                }
            }
        }
    }
}

/// SIGTERM to the child alone first: `ray start --block` then drains the
/// node and stops its processes in order (a SIGTERM to the whole group ends
/// the GCS under the raylet, which then hangs). Whatever is left after
/// `grace` gets SIGTERM as a group, then SIGKILL.
async fn stop_one(m: &mut Managed, grace: Duration) {
    let started = Instant::now();
    // The freshest view of what the child owns, before its tree unravels.
    let table = ProcTable::read();
    m.known
        .extend(table.owned_by(m.id.pid, m.marker.as_deref()));
    info!(name = %m.name, processes = m.known.len(), "stopping");
    signal(m.id.pid, "TERM");
    let _ = tokio::time::timeout(grace, m.child.wait()).await;
    let remaining = grace.saturating_sub(started.elapsed());
    if wait_gone_vec(&m.known, remaining).await {
        info!(name = %m.name, elapsed = ?started.elapsed(), "stopped");
        return;
    }
    let left: Vec<ProcId> = m.known.iter().copied().filter(|p| p.alive()).collect();
    warn!(name = %m.name, left = left.len(), "still running after SIGTERM, terminating the rest");
    signal_group(m.id.pid, "TERM");
    for p in &left {
        signal(p.pid, "TERM");
    }
    if wait_gone(&left, Duration::from_secs(5)).await {
        return;
    }
    warn!(name = %m.name, "did not stop in time, killing");
    signal_group(m.id.pid, "KILL");
    for p in left.iter().filter(|p| p.alive()) {
        signal(p.pid, "KILL");
    }
    let _ = m.child.wait().await;
    wait_gone(&left, Duration::from_secs(5)).await;
}

async fn wait_gone_vec(pids: &BTreeSet<ProcId>, timeout: Duration) -> bool {
    let pids: Vec<ProcId> = pids.iter().copied().collect();
    wait_gone(&pids, timeout).await
}

/// Polls until none of `pids` is alive, or `timeout`.
pub async fn wait_gone(pids: &[ProcId], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|p| !p.alive()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `kill -s SIG -- -PGID`. A helper process rather than `libc::kill`, which
/// would need `unsafe`.
pub fn signal_group(pgid: u32, sig: &str) {
    if pgid > 1 {
        run_kill(sig, &format!("-{pgid}"));
    }
}

pub fn signal(pid: u32, sig: &str) {
    if pid > 1 {
        run_kill(sig, &pid.to_string());
    }
}

fn run_kill(sig: &str, target: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", sig, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last `n` lines of a file (empty if it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A snapshot of this user's processes.
struct ProcTable {
    procs: Vec<(ProcId, Stat)>,
}

impl ProcTable {
    fn read() -> ProcTable {
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        let mut procs = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if uid.is_some() && e.metadata().map(|m| m.uid()).ok() != uid {
                    continue;
                }
                if let Some(s) = Stat::of(pid).filter(|s| !s.is_zombie()) {
                    procs.push((
                        ProcId {
                            pid,
                            start: s.start,
                        },
                        s,
                    ));
                }
            }
        }
        ProcTable { procs }
    }

    /// The descendants of `root`, the members of its process group, and the
    /// orphaned processes whose command line holds `marker`.
    fn owned_by(&self, root: u32, marker: Option<&str>) -> Vec<ProcId> {
        let mut owned: BTreeSet<u32> = BTreeSet::new();
        owned.insert(root);
        loop {
            let before = owned.len();
            for (id, s) in &self.procs {
                if owned.contains(&s.ppid) || s.pgrp == root {
                    owned.insert(id.pid);
                }
            }
            if owned.len() == before {
                break;
            }
        }
        if let Some(marker) = marker.filter(|m| !m.is_empty()) {
            // Only orphans (reparented to init, or to a process of another
            // user): a `tail -f` of a Ray log from the user's shell also
            // names the session dir, and is not Ray's to stop.
            let mine: BTreeSet<u32> = self.procs.iter().map(|(id, _)| id.pid).collect();
            for (id, s) in &self.procs {
                let orphan = s.ppid <= 1 || !mine.contains(&s.ppid);
                if !orphan || owned.contains(&id.pid) || id.pid == std::process::id() {
                    continue;
                }
                let cmdline =
                    std::fs::read(format!("/proc/{}/cmdline", id.pid)).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(marker) {
                    owned.insert(id.pid);
                }
            }
        }
        self.procs
            .iter()
            .filter(|(id, _)| owned.contains(&id.pid))
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_made_up_one_is_not() {
        let me = ProcId::of(std::process::id()).unwrap();
        assert!(me.alive());
        let other = ProcId {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(!other.alive());
    }
}
