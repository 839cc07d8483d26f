//! A target group as in Prometheus's `targetgroup.Group`, and its file form.

use serde::Deserialize;

use crate::model::{Labels, LabelsBuilder, is_valid_label_name};

use super::Error;

/// The label that holds a target's `host:port`.
pub const ADDRESS_LABEL: &str = "__address__";

/// Targets that share a set of labels, with where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// One label set per target, each with at least `__address__`.
    pub targets: Vec<Labels>,
    /// Labels common to all targets of the group.
    pub labels: Labels,
    /// A stable identifier of the group, e.g. `file.json:0`.
    pub source: String,
}

/// The on-disk form: `[{"targets": ["h:p"], "labels": {"k": "v"}}]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

impl TargetGroup {
    /// Builds a group from addresses and common labels.
    pub fn new(addresses: &[String], labels: Labels, source: String) -> TargetGroup {
        let targets = addresses
            .iter()
            .map(|a| Labels::from_pairs([(ADDRESS_LABEL, a.as_str())]))
            .collect();
        TargetGroup {
            targets,
            labels,
            source,
        }
    }

    /// Parses a file_sd file (JSON, or YAML when `path` ends in .yml/.yaml).
    /// Each group also gets `__meta_filepath`, as in Prometheus.
    pub fn parse_file(path: &str, text: &str) -> Result<Vec<TargetGroup>, Error> {
        let is_yaml = path.ends_with(".yml") || path.ends_with(".yaml");
        let groups: Vec<FileGroup> = if is_yaml {
            serde_norway::from_str(text).map_err(|e| Error::Parse {
                path: path.to_string(),
                msg: e.to_string(),
            })?
        } else {
            serde_json::from_str(text).map_err(|e| Error::Parse {
                path: path.to_string(),
                msg: e.to_string(),
            })?
        };
        let mut out = Vec::with_capacity(groups.len());
        for (i, g) in groups.into_iter().enumerate() {
            let mut b = LabelsBuilder::with_capacity(g.labels.len() + 1);
            for (name, value) in g.labels {
                if !is_valid_label_name(&name) {
                    return Err(Error::Parse {
                        path: path.to_string(),
                        msg: format!("{name:?} is not a valid label name"),
                    });
                }
                b.set(name, value);
            }
            b.set("__meta_filepath".to_string(), path.to_string());
            for t in &g.targets {
                if t.is_empty() || t.contains('/') {
                    return Err(Error::Parse {
                        path: path.to_string(),
                        msg: format!("{t:?} is not a valid hostname"),
                    });
                }
            }
            out.push(TargetGroup::new(
                &g.targets,
                b.build(),
                format!("{path}:{i}"),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rays_file() {
        let text =
            r#"[{"labels": {"job": "ray"}, "targets": ["192.0.2.2:8080", "192.0.2.2:44217"]}]"#;
        let g = TargetGroup::parse_file("/s/sd.json", text).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].targets.len(), 2);
        assert_eq!(g[0].targets[0].get(ADDRESS_LABEL), Some("192.0.2.2:8080"));
        assert_eq!(g[0].labels.get("job"), Some("ray"));
        assert_eq!(g[0].labels.get("__meta_filepath"), Some("/s/sd.json"));
        assert_eq!(g[0].source, "/s/sd.json:0");
    }

    #[test]
    fn rejects_half_written_json() {
        let err = TargetGroup::parse_file("sd.json", r#"[{"labels": {"job": "ra"#).unwrap_err();
        assert!(err.to_string().starts_with("cannot parse sd.json"), "{err}");
    }

    #[test]
    fn yaml_files_work_too() {
        let g =
            TargetGroup::parse_file("sd.yml", "- targets: ['a:1']\n  labels: {x: y}\n").unwrap();
        assert_eq!(g[0].labels.get("x"), Some("y"));
    }
}
