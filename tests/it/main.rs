//! The one integration-test binary: every module's end-to-end tests live here.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod support;

mod config;
mod promql_golden;
mod promql_latest;
mod promql_parser;
mod promql_tests;
mod ray;
mod scrape;
mod scrape_targets;
mod serve;
mod textparse;
mod tsdb;
mod up;
mod web;
