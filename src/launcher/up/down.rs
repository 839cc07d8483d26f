//! `raymon down`: stops the stack a running `up` recorded, and waits until
//! every recorded process is gone.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::cli::flags::DownArgs;
use crate::launcher::supervisor::{self, ProcId, State};

use super::*;

/// `raymon down`: SIGTERM to `up`, then wait until every recorded process
/// is gone; SIGKILL what is left after `timeout`.
pub async fn down(args: DownArgs) -> anyhow::Result<()> {
    let data = data_dir_from_env(args.data_dir.as_deref());
    let Some(state) = State::read(&data) else {
        println!(
            "raymon down: no raymon up is running with data dir {}",
            data.display()
        );
        return Ok(());
    };
    let mut pids: BTreeSet<ProcId> = state.pids.iter().copied().collect();
    let groups: Vec<u32> = state.children.iter().map(|(_, p)| p.pid).collect();
    match state.up {
        Some(up) if up.alive() => {
            pids.insert(up);
            supervisor::signal(up.pid, "TERM");
        }
        _ => {
            // `up` itself is gone (killed hard): stop what it left directly.
            eprintln!("raymon down: raymon up is gone; stopping what it left running");
            for g in &groups {
                supervisor::signal_group(*g, "TERM");
            }
            for p in pids.iter().filter(|p| p.alive()) {
                supervisor::signal(p.pid, "TERM");
            }
        }
    }
    eprintln!(
        "raymon down: stopping raymon up (data dir {}), {} processes",
        data.display(),
        pids.len()
    );
    let started = Instant::now();
    let mut last_report = started;
    loop {
        // `up` records processes as it finds them; take the newest list.
        if let Some(s) = State::read(&data) {
            pids.extend(s.pids);
        }
        let left: Vec<ProcId> = pids.iter().copied().filter(ProcId::alive).collect();
        if left.is_empty() {
            let _ = std::fs::remove_file(data.join(supervisor::STATE_FILE));
            println!(
                "raymon down: stopped after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() >= args.timeout {
            eprintln!(
                "raymon down: {} processes still running after {}s; killing them",
                left.len(),
                args.timeout.as_secs()
            );
            for g in &groups {
                supervisor::signal_group(*g, "KILL");
            }
            for p in &left {
                supervisor::signal(p.pid, "KILL");
            }
            if supervisor::wait_gone(&left, Duration::from_secs(10)).await {
                let _ = std::fs::remove_file(data.join(supervisor::STATE_FILE));
                return Ok(());
            }
            let still: Vec<u32> = left.iter().filter(|p| p.alive()).map(|p| p.pid).collect();
            anyhow::bail!("processes still running: {still:?}");
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "raymon down: waiting for {} processes ({}s)",
                left.len(),
                started.elapsed().as_secs()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
