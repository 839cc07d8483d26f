//! raymon: one binary that replaces the Prometheus container in a Ray cluster's
//! monitoring stack.
//!
//! Data flows from configuration and discovery, which decide *what* to
//! scrape, to the scraper, which pulls exposition text and parses it with
//! [`textparse`]; samples go through the [`storage`] seam into [`tsdb`], and
//! [`promql`] plus the HTTP layer answer queries.
//!
//! The library's surface is [`model`], [`textparse`], [`storage`], [`tsdb`]
//! and [`promql`]; [`cli`] is public only for the binary's `main`. Every
//! other module is the binary's own (`pub(crate)`): tests reach it through
//! the binary (HTTP, the CLI) or as unit tests beside the code, and
//! `tests/it/tidy.rs` checks that it stays so.
//!
//! ```
//! use raymon::model::Labels;
//! let labels = Labels::from_pairs([("job", "ray"), ("instance", "10.0.0.1:8080")]);
//! assert_eq!(labels.get("job"), Some("ray"));
//! ```

pub(crate) mod backfill;
pub(crate) mod bench;
pub mod cli;
pub(crate) mod config;
pub(crate) mod discovery;
pub(crate) mod http_client;
pub(crate) mod launcher;
pub mod model;
pub(crate) mod procfs;
pub(crate) mod promdata;
pub mod promql;
pub(crate) mod remote;
pub(crate) mod scrape;
pub(crate) mod selfmetrics;
pub(crate) mod sizeclass;
pub mod storage;
pub mod textparse;
pub mod tsdb;
pub(crate) mod web;

#[cfg(test)]
pub(crate) mod testing;
