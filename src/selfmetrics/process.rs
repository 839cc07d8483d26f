//! `process_*` metrics from `/proc/self`, as client_golang's process
//! collector exposes them on Linux. On other systems, or when `/proc`
//! cannot be read, the families are left out.

use super::text::Writer;
use crate::procfs::{self, Stat, TICKS_PER_SECOND};

#[derive(Debug, Default, PartialEq)]
struct Process {
    cpu_seconds: f64,
    start_time_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
    open_fds: f64,
    max_fds: Option<f64>,
}

pub(crate) fn write(w: &mut Writer) {
    let Some(p) = read() else {
        return;
    };
    w.family(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        "counter",
    );
    w.sample("process_cpu_seconds_total", &[], p.cpu_seconds);
    if let Some(max) = p.max_fds {
        w.family(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
        );
        w.sample("process_max_fds", &[], max);
    }
    w.family(
        "process_open_fds",
        "Number of open file descriptors.",
        "gauge",
    );
    w.sample("process_open_fds", &[], p.open_fds);
    w.family(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        "gauge",
    );
    w.sample("process_resident_memory_bytes", &[], p.resident_bytes);
    w.family(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
    );
    w.sample("process_start_time_seconds", &[], p.start_time_seconds);
    w.family(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        "gauge",
    );
    w.sample("process_virtual_memory_bytes", &[], p.virtual_bytes);
}

fn read() -> Option<Process> {
    let stat = Stat::read("/proc/self/stat")?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let mut p = parse(&stat, &status, &boot)?;
    p.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    p.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| parse_max_fds(&l));
    Some(p)
}

/// Combines `/proc/self/stat` with `/proc/self/status` and `/proc/stat`.
fn parse(stat: &Stat, status: &str, proc_stat: &str) -> Option<Process> {
    let btime: f64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let rss_kib = procfs::status_kib(status, "VmRSS:").unwrap_or(0);
    Some(Process {
        cpu_seconds: stat.cpu_seconds(),
        start_time_seconds: btime + stat.start as f64 / TICKS_PER_SECOND,
        virtual_bytes: stat.vsize as f64,
        resident_bytes: rss_kib as f64 * 1024.0,
        open_fds: 0.0,
        max_fds: None,
    })
}

fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_seconds() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    #[test]
    fn parses_proc_files() {
        let stat = "1234 (ray mon) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 500 104857600 2000 18446744073709551615";
        let status = "Name:\traymon\nVmRSS:\t    8000 kB\n";
        let proc_stat = "cpu  1 2 3\nbtime 1700000000\n";
        let p = parse(&Stat::parse(stat.as_bytes()).unwrap(), status, proc_stat).unwrap();
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.start_time_seconds, 1_700_000_005.0);
        assert_eq!(p.virtual_bytes, 104_857_600.0);
        assert_eq!(p.resident_bytes, 8_192_000.0);
        let limits = "Limit Soft Hard Units\nMax open files            1024                 4096                 files\n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
    }

    #[test]
    fn reads_this_process() {
        let p = read().unwrap();
        assert!(p.resident_bytes > 0.0);
        assert!(p.open_fds >= 3.0);
        assert!(p.start_time_seconds <= now_seconds() + 1.0);
        assert!(p.start_time_seconds > now_seconds() - 86_400.0 * 365.0);
    }
}
