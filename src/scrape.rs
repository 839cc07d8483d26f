//! Scraping: manager → pool → loop → client.
//!
//! The manager owns one pool per scrape config; a pool owns one loop per
//! target; a loop fetches, parses and appends through the storage seam.

pub mod status;
