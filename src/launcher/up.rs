//! `raymon up`, `raymon down` and `raymon env`: the order things start in
//! (collector, Ray, Grafana), the waits between them, what is printed, and
//! the order things stop in (scraping and storage, Grafana, Ray). The pieces
//! live in [`super::ray`], [`super::grafana`], [`super::urls`],
//! [`super::env`] and [`super::supervisor`].

mod dirs;
mod down;
mod plan;
mod run;

pub use dirs::{data_dir, data_dir_from_env};
pub use down::down;
pub use plan::{
    GrafanaChoice, choose_grafana, env_text, grafana_plan, grafana_settings, print_env, urls_for,
};
pub use run::{up, up_until_signal};

use dirs::*;
use plan::*;
