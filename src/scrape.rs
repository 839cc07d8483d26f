//! Scraping: manager → pool → loop → client.
//!
//! The manager owns one pool per scrape config; a pool owns one loop per
//! target; a loop fetches with [`client`], and [`append`] parses the body and
//! appends through the storage seam. This module never reads files or knows
//! how samples are stored.

pub mod append;
pub mod buffers;
pub(crate) mod cache;
pub mod client;
pub mod manager;
pub mod scrape_loop;
pub mod status;
pub mod target;

pub use manager::{Command, Manager, ScrapeStatus};

#[cfg(test)]
mod tests;

// Tests that open loopback sockets; `scripts/test --quick` skips them.
#[cfg(test)]
mod loopback_tests;
