//! shifter, as `raymon up --grafana shifter` needs it: the rules shifter
//! applies to a user's `--volume` maps, and which images `shifterimg images`
//! lists as pulled. Pure string work, checked before anything starts so that
//! a map or an image shifter would refuse is a one-line error of ours, not a
//! container that exits with a usage text. Knows nothing of Grafana.

use std::path::Path;

/// shifter's image types (NERSC/shifter `src/ImageData.c`,
/// `allowedImageTypes`); an `--image` without one of them gets the site's
/// default type, `docker` on NERSC systems.
const IMAGE_TYPES: &[&str] = &["docker", "local", "id"];
const DEFAULT_IMAGE_TYPE: &str = "docker";

/// Why shifter would refuse a user volume map `from:to` (no flags), as
/// `validateVolumeMap_userRequest` in `src/VolumeMap.c` decides, plus the
/// characters `userInputPathFilter` (`src/utility.c`) would silently drop
/// (it would then mount another path than the one we name). `None` when
/// shifter accepts it.
pub fn volume_map_problem(from: &Path, to: &str) -> Option<String> {
    let from = from.to_str()?;
    for (what, p) in [("source", from), ("target", to)] {
        if let Some(c) = p
            .chars()
            .find(|c| !kept_by_path_filter(*c) || *c == ':' || *c == ';')
        {
            return Some(format!(
                "the {what} {p} holds {c:?}, which shifter drops or splits on"
            ));
        }
        if !p.starts_with('/') {
            return Some(format!("the {what} {p} is not absolute"));
        }
        if p.contains("..") {
            return Some(format!("the {what} {p} contains \"..\""));
        }
    }
    // Exactly `/var/tmp` is allowed although it starts with `/var`.
    if to == "/var/tmp" {
        return None;
    }
    if let Some(prefix) = ["/etc", "/var", "/opt/udiImage"]
        .into_iter()
        .find(|p| to.starts_with(p))
    {
        return Some(format!(
            "shifter refuses user volume targets starting with {prefix}"
        ));
    }
    if to == "/opt" {
        return Some("shifter refuses /opt as a user volume target".to_string());
    }
    None
}

/// `userInputPathFilter(s, 1)`: the characters that survive.
fn kept_by_path_filter(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_:.+-/".contains(c)
}

/// `(type, tag)` of an `--image` value, as `parse_ImageDescriptor` reads it.
pub fn image_descriptor(image: &str) -> (&str, &str) {
    match image.split_once(':') {
        Some((kind, tag)) if IMAGE_TYPES.contains(&kind) => (kind, tag),
        _ => (DEFAULT_IMAGE_TYPE, image),
    }
}

/// What `shifterimg images` says of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStatus {
    /// Listed and `READY`.
    Ready,
    /// Listed with another status (a pull still under way, or failed).
    Listed(String),
    Missing,
}

/// Finds `image` in the output of `shifterimg images`, whose lines are
/// `system type status id date tag` (`src/shifterimg.c`, `main`, images
/// mode: `"%-10s %-10s %-8s %-.10s   %s %-30s"`).
pub fn image_status(images_output: &str, image: &str) -> ImageStatus {
    let (kind, tag) = image_descriptor(image);
    let mut found = ImageStatus::Missing;
    for line in images_output.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[1] != kind || f[f.len() - 1] != tag {
            continue;
        }
        if f[2] == "READY" {
            return ImageStatus::Ready;
        }
        found = ImageStatus::Listed(f[2].to_string());
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_defaults_to_docker() {
        assert_eq!(
            image_descriptor("grafana/grafana-oss:9.4.3"),
            ("docker", "grafana/grafana-oss:9.4.3")
        );
        assert_eq!(
            image_descriptor("docker:ubuntu:22.04"),
            ("docker", "ubuntu:22.04")
        );
    }
}
