//! Reading a configuration: the file, its YAML, validation into a
//! [`Config`], and `raymon check config`'s report in promtool's words.

use std::path::Path;

use super::raw::{self, RawConfig};
use super::validate::from_raw;
use super::{Config, glob, unimplemented};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read; worded like Go's `os.ReadFile` error.
    #[error("open {path}: {reason}")]
    Read {
        path: String,
        reason: String,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid configuration.
    #[error("parsing YAML file {file}: {message}")]
    Invalid {
        file: String,
        message: String,
        /// The 1-based line of a YAML-level error, when known.
        line: Option<usize>,
        /// The offending field name of an unknown-field or type error.
        field: Option<String>,
    },
}

/// Reads and validates a configuration file, resolving relative paths in it
/// against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: shown.clone(),
        reason: io_reason(&source),
        source,
    })?;
    let mut cfg = parse(&text, &shown)?;
    if let Some(dir) = path.parent() {
        cfg.set_directory(dir);
    }
    Ok(cfg)
}

/// Go's wording for the common read failures.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => e.to_string(),
    }
}

/// Parses and validates configuration text; `source` names it in errors.
pub fn parse(text: &str, source: &str) -> Result<Config, Error> {
    let invalid = |message: String| Error::Invalid {
        file: source.to_string(),
        message,
        line: None,
        field: None,
    };
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        match serde_norway::from_str::<Option<RawConfig>>(text) {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                let t = raw::translate(&e);
                return Err(Error::Invalid {
                    file: source.to_string(),
                    message: t.message,
                    line: t.line,
                    field: t.field,
                });
            }
        }
    };
    let mut cfg = from_raw(raw).map_err(invalid)?;
    cfg.original_yaml = text.to_string();
    // The text parsed above, so it parses as a plain document too.
    if let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(text) {
        cfg.unimplemented = unimplemented::find(&doc);
    }
    Ok(cfg)
}

/// What `raymon check config` prints, in promtool's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutput {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// Checks configuration files as `promtool check config` does: syntax and
/// validation, plus a warning for `file_sd_configs` files that do not exist
/// and one for each section raymon does not implement.
pub fn check(paths: &[&Path]) -> CheckOutput {
    let mut out = CheckOutput {
        stdout: String::new(),
        stderr: String::new(),
        success: true,
    };
    for path in paths {
        let shown = path.display().to_string();
        out.stdout.push_str(&format!("Checking {shown}\n"));
        match load_file(path) {
            Ok(cfg) => {
                for sc in &cfg.scrape_configs {
                    for f in sc.file_sd_configs.iter().flat_map(|f| &f.files) {
                        if !glob::has_match(f) {
                            out.stdout.push_str(&format!(
                                "  WARNING: file {f:?} for file_sd in scrape job {:?} does not exist\n",
                                sc.job_name
                            ));
                        }
                    }
                }
                for u in &cfg.unimplemented {
                    out.stdout.push_str(&format!("  WARNING: {u}\n"));
                }
                if !cfg.rule_files.is_empty() {
                    out.stdout.push_str(&format!(
                        "  SUCCESS: {} rule files found\n",
                        cfg.rule_files.len()
                    ));
                }
                out.stdout.push_str(&format!(
                    " SUCCESS: {shown} is valid prometheus config file syntax\n"
                ));
            }
            Err(e) => {
                out.stderr.push_str(&format!("  FAILED: {e}\n"));
                out.success = false;
            }
        }
        out.stdout.push('\n');
    }
    out
}
