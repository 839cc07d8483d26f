//! `raymon up`, `down` and `env` (issue 6): URLs, the notebook environment,
//! Grafana's provisioning and command lines, end to end with stand-in
//! `grafana`/`shifter` executables, and with real Ray.

mod harness;
mod issue_17;
mod plan;
mod real_ray;
mod stand_in_stack;

use harness::*;
pub(crate) use harness::{Leftovers, Up, down};
use plan::*;
