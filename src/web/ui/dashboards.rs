//! Dashboard JSON files, found by uid in the directories given with
//! `--web.dashboards-dir` (Ray writes its 8 into each session's
//! `metrics/grafana/dashboards`; `raymon up` keeps a copy of the newest
//! session's). Files are parsed once per change (size and mtime) and kept.
//!
//! Knows files and JSON, not HTTP or queries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;

/// A dashboard file larger than this is refused (Ray's largest is ~0.5 MB).
const MAX_FILE_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "no dashboard directory is configured: start raymon with --web.dashboards-dir=<dir of Grafana dashboard JSON files>"
    )]
    NoDirs,
    #[error("dashboard {uid:?} not found in {dirs}{broken}")]
    NotFound {
        uid: String,
        dirs: String,
        broken: String,
    },
    #[error("panel {id} not found in dashboard {uid:?}")]
    NoPanel { uid: String, id: i64 },
}

#[derive(Clone)]
struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    parsed: Result<Arc<Value>, String>,
}

/// The dashboards of some directories, looked up by uid.
pub struct Dashboards {
    dirs: Vec<PathBuf>,
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

/// A dashboard's uid and title, for the index page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub uid: String,
    pub title: String,
}

impl Dashboards {
    pub fn new(dirs: Vec<PathBuf>) -> Dashboards {
        Dashboards {
            dirs,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Every `*.json` file of the directories, sorted per directory.
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in &self.dirs {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            out.extend(files);
        }
        out
    }

    fn load(&self, path: &Path) -> Cached {
        let meta = std::fs::metadata(path);
        let (modified, len) = match &meta {
            Ok(m) => (m.modified().ok(), m.len()),
            Err(_) => (None, 0),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(path)
            && c.modified == modified
            && c.len == len
            && modified.is_some()
        {
            return c.clone();
        }
        let parsed = match meta {
            Err(e) => Err(e.to_string()),
            Ok(_) if len > MAX_FILE_BYTES => Err(format!("larger than {MAX_FILE_BYTES} bytes")),
            Ok(_) => std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
                .and_then(|v| {
                    if v.is_object() {
                        Ok(Arc::new(v))
                    } else {
                        Err("not a JSON object".to_string())
                    }
                }),
        };
        let c = Cached {
            modified,
            len,
            parsed,
        };
        cache.insert(path.to_path_buf(), c.clone());
        c
    }

    /// The dashboard whose `uid` is `uid`. A file that does not parse is
    /// named in the error, since its uid cannot be known.
    pub fn get(&self, uid: &str) -> Result<Arc<Value>, Error> {
        if self.dirs.is_empty() {
            return Err(Error::NoDirs);
        }
        let mut broken = Vec::new();
        for f in self.files() {
            match self.load(&f).parsed {
                Ok(v) if v.get("uid").and_then(Value::as_str) == Some(uid) => return Ok(v),
                Ok(_) => {}
                Err(e) => broken.push(format!("{} does not parse: {e}", f.display())),
            }
        }
        Err(Error::NotFound {
            uid: uid.to_string(),
            dirs: self
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            broken: if broken.is_empty() {
                String::new()
            } else {
                format!("; {}", broken.join("; "))
            },
        })
    }

    /// Every dashboard that parses, by title.
    pub fn list(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .files()
            .iter()
            .filter_map(|f| self.load(f).parsed.ok())
            .filter_map(|v| {
                Some(Entry {
                    uid: v.get("uid")?.as_str()?.to_string(),
                    title: v
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.title.cmp(&b.title));
        out
    }
}

/// The panel with `id`, at the top level or inside a (collapsed) row.
pub fn panel(dashboard: &Value, uid: &str, id: i64) -> Result<Value, Error> {
    fn find(panels: &[Value], id: i64) -> Option<&Value> {
        for p in panels {
            if p.get("id").and_then(Value::as_i64) == Some(id) {
                return Some(p);
            }
            if let Some(inner) = p.get("panels").and_then(Value::as_array)
                && let Some(f) = find(inner, id)
            {
                return Some(f);
            }
        }
        None
    }
    let panels = dashboard
        .get("panels")
        .and_then(Value::as_array)
        .map_or(&[][..], |v| v.as_slice());
    find(panels, id).cloned().ok_or(Error::NoPanel {
        uid: uid.to_string(),
        id,
    })
}
