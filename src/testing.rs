//! Helpers for the unit tests inside `src` (compiled only for `cargo test`):
//! where the repo's fixtures are.
//! They mirror `tests/it/support.rs`, which the integration tests use and
//! which the library cannot import.

use std::path::PathBuf;

/// The repo's root.
pub(crate) fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Captured Ray and Prometheus data the tests compare against.
pub(crate) fn fixtures_dir() -> PathBuf {
    manifest_dir().join("tests/data/fixtures")
}
