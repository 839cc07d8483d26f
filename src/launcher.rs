//! The stack supervisor: `up` starts raymon's collector, Ray and Grafana
//! (native, shifter, or none) as supervised children and records them;
//! `down`, `status` and `env` read what a running `up` recorded. Flags live
//! in [`crate::cli::flags`]; this module knows them only as parsed arguments.

pub mod auth;
pub mod env;
pub mod grafana;
pub mod ports;
pub mod ray;
pub mod shifter;
pub mod status;
pub mod supervisor;
pub mod up;
pub mod urls;

#[cfg(test)]
mod tests;

// Tests that run `sh`, `python3` and the stand-ins, and bind ports;
// `scripts/test --quick` skips them.
#[cfg(test)]
mod process_tests;
