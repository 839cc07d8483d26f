//! The small glob dialect of `file_sd_configs` file names: `*`, `?` and
//! `[...]` in the last path element only, as Prometheus's `filepath.Glob`
//! use allows. One matcher for discovery and for `check config`, so the two
//! never disagree about which files a pattern names.

use std::path::{Path, PathBuf};

/// Splits a pattern into its directory and the file-name pattern, rejecting
/// wildcards in directory components (the error is the reason).
pub fn split(pattern: &str) -> Result<(PathBuf, String), String> {
    let path = Path::new(pattern);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| "no file name".to_string())?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.to_string_lossy().contains(['*', '?', '[']) {
        return Err("path may contain wildcards only in its last element".to_string());
    }
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    Ok((dir, name.to_string()))
}

/// Whether `pattern` names at least one existing file.
pub fn has_match(pattern: &str) -> bool {
    let Ok((dir, name)) = split(pattern) else {
        return false;
    };
    if !name.contains(['*', '?', '[']) {
        return dir.join(&name).exists();
    }
    std::fs::read_dir(&dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_str().is_some_and(|n| matches(&name, n)))
    })
}

/// Whether `name` matches the file-name pattern `pat`.
pub fn matches(pat: &str, name: &str) -> bool {
    matches_bytes(pat.as_bytes(), name.as_bytes())
}

fn matches_bytes(pat: &[u8], name: &[u8]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|i| matches_bytes(&pat[1..], &name[i..])),
        Some(b'?') => !name.is_empty() && matches_bytes(&pat[1..], &name[1..]),
        Some(b'[') => {
            let Some(end) = pat.iter().position(|&b| b == b']') else {
                return false;
            };
            let Some(&c) = name.first() else {
                return false;
            };
            let class = &pat[1..end];
            let (negate, class) = match class.first() {
                Some(b'^') | Some(b'!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && matches_bytes(&pat[end + 1..], &name[1..])
        }
        Some(&b) => name.first() == Some(&b) && matches_bytes(&pat[1..], &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_cases() {
        assert!(matches("*.json", "prom_metrics_service_discovery.json"));
        assert!(!matches("*.json", "tmp.json.swp"));
        assert!(matches("sd-?.json", "sd-1.json"));
        assert!(matches("sd-[0-9].json", "sd-7.json"));
        assert!(!matches("sd-[!0-9].json", "sd-7.json"));
        assert!(matches("exact.json", "exact.json"));
    }

    #[test]
    fn wildcard_directories_are_rejected() {
        assert!(split("/tmp/*/sd.json").is_err());
        let (dir, pat) = split("/tmp/ray/*.json").unwrap();
        assert_eq!(dir, PathBuf::from("/tmp/ray"));
        assert_eq!(pat, "*.json");
    }

    /// `check config` asks the same matcher discovery uses: a `?` or `[...]`
    /// pattern finds the file discovery would read.
    #[test]
    fn has_match_speaks_the_discovery_dialect() {
        let dir = std::env::temp_dir().join(format!("raymon-glob-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sd-7.json"), "[]").unwrap();
        let at = |p: &str| dir.join(p).display().to_string();
        assert!(has_match(&at("sd-?.json")));
        assert!(has_match(&at("sd-[0-9].json")));
        assert!(has_match(&at("*.json")));
        assert!(has_match(&at("sd-7.json")));
        assert!(!has_match(&at("sd-[!0-9].json")));
        assert!(!has_match(&at("other-*.json")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
