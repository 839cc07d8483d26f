//! The one integration-test binary: every module's end-to-end tests live here.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod support;

mod bench;
mod ray;
mod scrape;
mod scrape_targets;
mod textparse;
mod tsdb;
mod web;
