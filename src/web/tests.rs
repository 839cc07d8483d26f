//! End-to-end tests of the HTTP API through `web::router(state).oneshot(req)`,
//! checked byte for byte against real Prometheus 2.42 answers where the
//! fixtures allow, with an in-memory store and a fake query engine; and
//! Grafana's traffic against the real engine (`grafana`).

mod endpoints;
mod grafana;
mod harness;
mod isolation;
mod ops;
mod query;
mod series;
mod tsdb_status;

use harness::*;
use series::{metadata_targets, series_store};
