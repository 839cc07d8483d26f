//! Reading a Prometheus 2.x data directory, for `raymon import
//! --from-prometheus`: its blocks (`meta.json`, `index`, `chunks/`,
//! `tombstones`) and, when a stopped Prometheus left one, its head (the WAL
//! with its checkpoint, and the head's chunk files in `chunks_head/`).
//!
//! The byte layouts are Prometheus's documented ones (`tsdb/docs/format/`
//! in Prometheus's repository), with what that documentation leaves out
//! or states wrongly written down in `docs/format/prometheus.md`; the code
//! is our own. Samples go through the [`Appendable`](crate::storage::Appendable) seam, as every other
//! write does; the head's XOR chunks are decoded by
//! [`crate::tsdb::chunkenc::XorIter`], which reads Prometheus's encoding
//! bit for bit.
//!
//! What is read is what Prometheus itself would serve after a restart on
//! the same directory: blocks that a later compaction replaced are
//! skipped, the head's samples before the newest block's end are dropped,
//! tombstones delete what they cover, and the WAL is read up to its first
//! corruption. A block that cannot be read whole is reported and skipped
//! before any of its samples is appended; the other blocks go on. Nothing
//! is ever written into the Prometheus directory.
//!
//! Knows nothing of raymon's store beyond [`Appendable`](crate::storage::Appendable), nor of HTTP.

mod block;
mod decode;
mod head_chunks;
mod import;
mod wal;

pub use import::{Event, Options, import};

/// The lock file a running Prometheus holds (`flock`) in its data dir.
pub const LOCK_FILE: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{dir} is in use by a running Prometheus (its lock file is held, or its WAL is open): stop Prometheus first, then import"
    )]
    Locked { dir: String },
    #[error(
        "{dir} is not a Prometheus data directory: it has no block (a directory named by a ULID with meta.json) and no wal/"
    )]
    NotPrometheus { dir: String },
    #[error("{file}: {msg}")]
    Corrupt { file: String, msg: String },
    #[error("{file}: unsupported {what} version {version}")]
    Version {
        file: String,
        what: &'static str,
        version: u64,
    },
    #[error("storage refused the commit: {0}")]
    Commit(#[source] crate::storage::Error),
    #[error("storage refused a sample: {0}")]
    Storage(#[source] crate::storage::Error),
}

impl Error {
    fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    fn corrupt(file: &std::path::Path, msg: impl Into<String>) -> Error {
        Error::Corrupt {
            file: file.display().to_string(),
            msg: msg.into(),
        }
    }
}

/// Takes a shared lock on the directory's `lock` file for as long as the
/// returned file lives, so that a Prometheus cannot start on the directory
/// while it is read, and refuses a directory a running Prometheus holds:
/// its lock file locked (upstream's default), or, as Debian's build makes
/// no lock file unless `--storage.tsdb.use-lockfile` is given, a process
/// with a file of its WAL open (among the processes /proc lets us see).
pub fn lock(dir: &std::path::Path) -> Result<Option<std::fs::File>, Error> {
    let path = dir.join(LOCK_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&path, e)),
    };
    let locked = || Error::Locked {
        dir: dir.display().to_string(),
    };
    if let Some(f) = &file {
        match f.try_lock_shared() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(locked()),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
    }
    if wal_open_elsewhere(&dir.join("wal")) {
        return Err(locked());
    }
    Ok(file)
}

/// Whether another process has a file under `wal` open.
fn wal_open_elsewhere(wal: &std::path::Path) -> bool {
    let Ok(wal) = wal.canonicalize() else {
        return false;
    };
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for p in procs.filter_map(Result::ok) {
        let name = p.file_name();
        let Some(pid) = name.to_str() else { continue };
        if pid == me || !pid.bytes().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok) {
            if std::fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(&wal)) {
                return true;
            }
        }
    }
    false
}
