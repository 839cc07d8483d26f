//! What the operating system says about a process and a directory: CPU
//! time and resident memory from `/proc/<pid>/{stat,status}`, bytes on disk
//! from a directory walk, and the percentiles the report quotes. Linux only;
//! knows nothing of HTTP or collectors.

use std::path::Path;

use crate::procfs::{Stat, status_kib};

/// One look at a process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// User plus system CPU of all the process's threads, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory now (`VmRSS`), in bytes.
    pub rss_bytes: u64,
    /// Peak resident memory (`VmHWM`), in bytes.
    pub peak_rss_bytes: u64,
}

/// Reads `/proc/<pid>`; `None` once the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = Stat::of(pid)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_seconds: stat.cpu_seconds(),
        rss_bytes: status_kib(&status, "VmRSS:").unwrap_or(0) * 1024,
        peak_rss_bytes: status_kib(&status, "VmHWM:").unwrap_or(0) * 1024,
    })
}

/// Bytes the files under `dir` occupy on disk (allocated blocks, as `du`).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        let Ok(md) = e.metadata() else { continue };
        if md.is_dir() {
            total += disk_usage(&e.path());
        } else {
            total += md.blocks() * 512;
        }
    }
    total
}

/// The `q` quantile (0 to 1) of `v`, by nearest rank; sorts `v`.
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// Total physical memory and online CPUs of this machine.
pub fn machine() -> (u64, usize) {
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| status_kib(&s, "MemTotal:"))
        .unwrap_or(0)
        * 1024;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (mem, cpus)
}

/// Nanoseconds a dependent load takes from memory, by a pointer chase
/// through 64 MiB (past any cache of this class of machine). Much of the
/// store's per-sample work waits for such loads, and on a shared VM the
/// same build's CPU per sample moved by 3x from one hour to the next with
/// nothing else running: the report keeps what the machine was like.
pub fn memory_load_ns() -> f64 {
    const SLOTS: usize = 1 << 24;
    const LOADS: u32 = 2_000_000;
    // A full-period step over a power of two (odd increment, multiplier
    // 1 mod 4): one cycle through every slot, jumping far each time, built
    // in one sequential pass instead of a shuffle's random writes.
    let next: Vec<u32> = (0..SLOTS as u32)
        .map(|i| chase_next(i, SLOTS as u32 - 1))
        .collect();
    let mut p = 0u32;
    let t = std::time::Instant::now();
    for _ in 0..LOADS {
        p = next[p as usize];
    }
    std::hint::black_box(p);
    t.elapsed().as_nanos() as f64 / f64::from(LOADS)
}

/// The slot after `i` in a chase over `mask + 1` slots (a power of two).
fn chase_next(i: u32, mask: u32) -> u32 {
    i.wrapping_mul(0x0019_660D).wrapping_add(0x3C6E_F35F) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chase visits every slot once per cycle: a shorter cycle would
    /// stay in cache and read low.
    #[test]
    fn the_chase_is_one_cycle_through_every_slot() {
        let slots = 1u32 << 16;
        let mut seen = vec![false; slots as usize];
        let mut p = 0u32;
        for _ in 0..slots {
            assert!(!seen[p as usize], "slot {p} visited twice");
            seen[p as usize] = true;
            p = chase_next(p, slots - 1);
        }
        assert_eq!(p, 0);
    }

    #[test]
    fn own_process_is_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), Some(50.0));
        assert_eq!(quantile(&mut v, 0.99), Some(99.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
