//! `raymon bench`: runs a collector (raymon itself, and any command given
//! with `--vs`) against a simulated Ray cluster on loopback and measures
//! what it costs: samples per second, CPU per million samples, resident
//! memory, bytes on disk, scrape interval keeping, time to ready after a
//! restart and Ray dashboard query latency.
//!
//! Each collector gets a fresh cluster in a child process
//! (`raymon bench-targets`, see [`cluster`]) so the targets' CPU is not
//! counted as the collector's; the collector itself is a child too, and is
//! measured through `/proc` ([`measure`]) and its HTTP API. Results go to
//! [`report`]. This module knows the collectors only as processes with a
//! Prometheus-compatible HTTP API, never as code.

mod answers;
mod args;
pub mod cluster;
mod collector;
mod error;
pub mod exposition;
mod fetch;
mod forward;
pub mod measure;
pub mod preload;
mod queries;
mod ray_nodes;
pub mod report;
mod run;
pub mod tsdb;

pub use args::{BenchArgs, TargetsArgs};
pub use error::Error;
pub use run::{run, serve_targets, write_json};
