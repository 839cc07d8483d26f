//! `--enable-feature=expand-external-labels`: `${VAR}` and `$VAR` in
//! `global.external_labels` values replaced from the environment with Go's
//! `os.Expand` rules, as Prometheus 2.42 does at every load. Knows strings
//! and the environment, nothing of the rest of the config.

use crate::model::{Label, Labels};

use super::Config;

impl Config {
    /// Expands the external labels' values with `env`; returns the names
    /// of variables that were unset or empty (Prometheus warns about each).
    pub fn expand_external_labels(&mut self, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
        let mut empty = Vec::new();
        let expanded: Vec<Label> = self
            .global
            .external_labels
            .iter()
            .map(|l| Label {
                name: l.name.clone(),
                value: os_expand(&l.value, |name| {
                    if name == "$" {
                        return "$".to_string();
                    }
                    match env(name) {
                        Some(v) if !v.is_empty() => v,
                        _ => {
                            empty.push(name.to_string());
                            String::new()
                        }
                    }
                }),
            })
            .collect();
        // Names are unchanged, so they stay sorted and unique.
        self.global.external_labels =
            Labels::from_pairs(expanded.into_iter().map(|l| (l.name, l.value)));
        empty
    }
}

/// Go's `os.Expand`.
pub fn os_expand(s: &str, mut mapping: impl FnMut(&str) -> String) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            out.push_str(&s[start..i]);
            let (name, width) = shell_name(&s[i + 1..]);
            if name.is_empty() && width > 0 {
                // Bad syntax (`${}`, `${`): eat the characters.
            } else if name.is_empty() {
                // A `$` not followed by a name stays.
                out.push('$');
            } else {
                out.push_str(&mapping(name));
            }
            i += 1 + width;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[start..]);
    out
}

/// Go's `getShellName`: the name after `$` and how many bytes it took.
fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && is_special(b[1]) && b[2] == b'}' {
            return (&s[1..2], 3);
        }
        for i in 1..b.len() {
            if b[i] == b'}' {
                if i == 1 {
                    return ("", 2);
                }
                return (&s[1..i], i + 1);
            }
        }
        return ("", 1);
    }
    if is_special(b[0]) {
        return (&s[0..1], 1);
    }
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (&s[..n], n)
}

fn is_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> String {
        match name {
            "HOST" => "node1".into(),
            "$" => "$".into(),
            "1" => "one".into(),
            _ => String::new(),
        }
    }

    #[test]
    fn expands_as_go_os_expand() {
        for (input, want) in [
            ("${HOST}", "node1"),
            ("$HOST-x", "node1-x"),
            ("a$$b", "a$b"),
            ("$", "$"),
            ("x$ y", "x$ y"),
            ("${}", ""),
            ("${HOST", "HOST"),
            ("$1x", "onex"),
            ("$UNSET.", "."),
        ] {
            assert_eq!(os_expand(input, env), want, "{input}");
        }
    }

    #[test]
    fn external_labels_expand_and_name_empty_variables() {
        let mut cfg = super::super::parse(
            "global:\n  external_labels:\n    node: ${HOST}\n    zone: $ZONE\n",
            "p.yml",
        )
        .unwrap();
        let empty = cfg.expand_external_labels(|n| (n == "HOST").then(|| "node1".to_string()));
        assert_eq!(empty, ["ZONE"]);
        assert_eq!(cfg.global.external_labels.get("node"), Some("node1"));
        // An empty value is no label, as everywhere in Prometheus.
        assert_eq!(cfg.global.external_labels.get("zone"), None);
    }
}
