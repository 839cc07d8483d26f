//! Where a stack lives: the data dir (flag, `$SCRATCH`, or the working
//! directory), and the lock files that give a data dir and a Ray temp dir to
//! one live `up` each.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::launcher::supervisor::State;

/// The data dir: the flag, else `$SCRATCH/raymon`, else `./raymon-data`;
/// made absolute, since Grafana's files name it.
pub fn data_dir(flag: Option<&Path>, scratch: Option<&str>) -> PathBuf {
    let p = match (flag, scratch.filter(|s| !s.is_empty())) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(s)) => Path::new(s).join("raymon"),
        (None, None) => PathBuf::from("raymon-data"),
    };
    std::path::absolute(&p).unwrap_or(p)
}

/// [`data_dir`] with `SCRATCH` from the environment.
pub fn data_dir_from_env(flag: Option<&Path>) -> PathBuf {
    data_dir(flag, std::env::var("SCRATCH").ok().as_deref())
}

/// Makes the data dir and makes it ours: it must be writable, no other
/// live `up` may hold its lock, and no process a dead `up` left may still
/// run (a new `up` would lose track of them). The lock is held as long as
/// the returned file is open, and the kernel drops it when `up` dies.
pub(super) fn claim_data_dir(data: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data dir {}", data.display()))?;
    let probe = data.join(".raymon-write-probe");
    if let Err(e) = std::fs::write(&probe, b"") {
        anyhow::bail!(
            "data dir {} is not writable ({e}); choose another with --data-dir",
            data.display()
        );
    }
    let _ = std::fs::remove_file(&probe);
    let running = |pids: String| {
        anyhow::anyhow!(
            "a raymon up with data dir {} is still running{pids}; stop it with \
             `raymon down --data-dir {}`, or choose another --data-dir",
            data.display(),
            data.display()
        )
    };
    let Some(lock) = try_lock(&data.join(LOCK_FILE))? else {
        let up = State::read(data).and_then(|s| s.up).map(|p| p.pid);
        return Err(running(
            up.map_or(String::new(), |p| format!(" (process {p})")),
        ));
    };
    if let Some(state) = State::read(data) {
        let alive: Vec<u32> = state
            .up
            .iter()
            .chain(&state.pids)
            .filter(|p| p.alive())
            .map(|p| p.pid)
            .collect();
        if !alive.is_empty() {
            return Err(running(format!(" (processes {alive:?})")));
        }
    }
    Ok(lock)
}

/// Held by the `up` that owns a data dir or a Ray temp dir (`flock`,
/// released when it exits).
pub(super) const LOCK_FILE: &str = "raymon-up.lock";

/// An exclusive lock on `path` (made if missing), or `None` when another
/// process holds it.
pub(super) fn try_lock(path: &Path) -> anyhow::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Makes Ray's temp dir and makes it this `up`'s: two Rays under one temp
/// dir share `session_latest` and the discovery file, so each raymon would
/// scrape whichever started last.
pub(super) fn claim_temp_dir(temp_dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(temp_dir)
        .with_context(|| format!("cannot create Ray temp dir {}", temp_dir.display()))?;
    try_lock(&temp_dir.join(LOCK_FILE))?.ok_or_else(|| {
        anyhow::anyhow!(
            "Ray temp dir {} is used by another raymon up; choose another with --ray-temp-dir",
            temp_dir.display()
        )
    })
}

/// The user's name, for per-user defaults: `$USER`, else the uid.
pub(super) fn user_name() -> String {
    use std::os::unix::fs::MetadataExt;
    match std::env::var("USER") {
        Ok(u) if !u.is_empty() && !u.contains('/') => u,
        _ => std::fs::metadata("/proc/self")
            .map_or_else(|_| "unknown".to_string(), |m| m.uid().to_string()),
    }
}
