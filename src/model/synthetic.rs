//! Synthetic label sets shaped like Ray's, for benchmarks and tests that
//! need many series without serving exposition text.
//!
//! ```
//! use raymon::model::synthetic::ray_like_labels;
//! let a = ray_like_labels(0, 64, 16);
//! assert_eq!(a.len(), 12);
//! assert_eq!(a.get("instance"), Some("10.0.0.0:8080"));
//! // Series 64 lives on the same node as series 0.
//! assert_eq!(ray_like_labels(64, 64, 16).get("instance"), a.get("instance"));
//! ```

use crate::model::Labels;

/// Labels shaped like Ray's: 12 labels whose values repeat across series as
/// Ray's do. Series `i` lives on node `i % nodes`; node addresses fill
/// `per_octet` hosts per third octet (`10.0.<node / per_octet>.<node % per_octet>`).
pub fn ray_like_labels(i: usize, nodes: usize, per_octet: usize) -> Labels {
    let node = i % nodes.max(1);
    let per_octet = per_octet.max(1);
    let addr = format!("10.0.{}.{}", node / per_octet, node % per_octet);
    Labels::from_pairs([
        ("__name__", format!("ray_metric_{}", i % 97)),
        (
            "Component",
            ["raylet", "core_worker", "gcs"][i % 3].to_string(),
        ),
        ("JobId", format!("{:02}000000", i % 8)),
        ("NodeAddress", addr.clone()),
        (
            "SessionName",
            "session_2026-11-26_03-35-11_178048_5703".to_string(),
        ),
        (
            "State",
            ["RUNNING", "FINISHED", "PENDING_NODE_ASSIGNMENT", "FAILED"][i % 4].to_string(),
        ),
        ("Version", "2.40.0".to_string()),
        ("WorkerId", format!("{:056x}", i / 24)),
        ("instance", format!("{addr}:8080")),
        ("job", "ray".to_string()),
        ("ray_io_cluster", "raycluster-kuberay".to_string()),
        (
            "RayNodeType",
            if node == 0 { "head" } else { "worker" }.to_string(),
        ),
    ])
}
