//! The one integration-test binary: every module's end-to-end tests live here.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod support;

mod config;
mod promql_golden;
mod promql_parser;
mod promql_tests;
mod ray;
mod scrape;
mod scrape_targets;
mod textparse;
mod tsdb;
mod tsdb_durable;
mod web;
