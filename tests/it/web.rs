//! End-to-end tests of the HTTP API through `web::router(state).oneshot(req)`,
//! checked byte for byte against real Prometheus 2.42 answers where the
//! fixtures allow, with an in-memory store and a fake query engine.

// Test helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod endpoints;
mod harness;
mod query;
mod series;

use harness::*;
use series::{metadata_targets, series_store};
