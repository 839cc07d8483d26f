//! The one integration-test binary: every module's end-to-end tests live here.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

#[path = "../../src/testing/golden.rs"]
mod golden;
mod support;
#[path = "../../src/testing/tls.rs"]
mod tls;
#[path = "../../src/testing/wire.rs"]
mod wire;

mod bench;
mod dropin;
mod isolation;
mod notebook;
mod ops;
mod prom_diff;
mod prom_import;
mod prompb;
mod promql_golden;
mod promql_latest;
mod promql_parser;
mod promql_tests;
mod range_cache;
mod ray;
mod remote_write_metadata;
mod remote_write_queue;
mod scrape_auth;
mod serve;
mod textparse;
mod tidy;
mod tsdb;
mod tsdb_durable;
mod tsdb_idle;
mod ui;
mod up;
mod up_run;
mod up_shared_node;
mod web_server;
