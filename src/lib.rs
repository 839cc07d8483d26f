//! raymon: one binary that replaces the Prometheus container in a Ray cluster's
//! monitoring stack.
//!
//! Data flows through the modules in the order they are declared below:
//! configuration and discovery decide *what* to scrape, the scraper pulls
//! exposition text and parses it with [`textparse`], samples go through the
//! [`storage`] seam into [`tsdb`], and [`promql`] plus [`web`] answer queries.
//!
//! The library's surface is [`model`], [`textparse`], [`storage`], [`tsdb`]
//! and [`promql`]; [`cli`] is public for the binary's `main`. The other
//! modules are the binary's own: those still public are so only while the
//! integration tests listed in `tests/it/tidy.rs` reach into them, and that
//! list only shrinks.
//!
//! ```no_run
//! use raymon::model::Labels;
//! let labels = Labels::from_pairs([("job", "ray"), ("instance", "10.0.0.1:8080")]);
//! assert_eq!(labels.get("job"), Some("ray"));
//! ```

pub(crate) mod backfill;
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
pub mod scrape;
pub(crate) mod selfmetrics;
pub mod storage;
pub mod textparse;
pub mod tsdb;
pub mod web;

#[cfg(test)]
pub(crate) mod testing;

pub(crate) mod bench;
