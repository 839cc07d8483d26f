//! Linux's `/proc`, read in one place: a process's `stat` line, the
//! `kB` figures of its `status` file and whether it holds a listening TCP
//! socket. The self-metrics, the stack
//! supervisor (is this PID still the child we started?) and the benchmarks
//! all read processes through here. Knows the file formats (proc(5)), not
//! what the numbers are used for; `None` wherever a file is missing or
//! malformed, which on Linux means the process is gone.

use std::path::Path;

/// Linux's `USER_HZ`: `/proc` counts CPU time in these ticks, and it is 100
/// on every architecture Linux supports for user space.
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of `/proc/<pid>/stat` raymon reads (proc(5) numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z`, ...
    pub state: u8,
    /// Field 4.
    pub ppid: u32,
    /// Field 5: the process group.
    pub pgrp: u32,
    /// Field 14: user CPU, in ticks.
    pub utime: u64,
    /// Field 15: system CPU, in ticks.
    pub stime: u64,
    /// Field 22: start time, in ticks since boot; with the PID it names one
    /// process, since PIDs are reused.
    pub start: u64,
    /// Field 23: virtual memory size, in bytes.
    pub vsize: u64,
}

impl Stat {
    /// Parses a `stat` line. Field 2, the command name in parentheses, may
    /// itself hold spaces, parentheses and bytes that are not UTF-8, so the
    /// other fields count from after its last `)`.
    pub fn parse(line: &[u8]) -> Option<Stat> {
        let close = line.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(&line[close + 1..]).ok()?;
        let mut f = rest.split_ascii_whitespace();
        // `f` starts at field 3; `nth(k)` skips k fields.
        let state = f.next()?;
        if state.len() != 1 {
            return None;
        }
        let ppid = f.next()?.parse().ok()?;
        let pgrp = f.next()?.parse().ok()?;
        let utime = f.nth(8)?.parse().ok()?; // field 14
        let stime = f.next()?.parse().ok()?;
        let start = f.nth(6)?.parse().ok()?; // field 22
        let vsize = f.next()?.parse().ok()?;
        Some(Stat {
            state: state.as_bytes()[0],
            ppid,
            pgrp,
            utime,
            stime,
            start,
            vsize,
        })
    }

    /// Reads and parses a `stat` file (`/proc/<pid>/stat`,
    /// `/proc/self/stat`, `/proc/thread-self/stat`).
    pub fn read(path: impl AsRef<Path>) -> Option<Stat> {
        Stat::parse(&std::fs::read(path).ok()?)
    }

    /// The process `pid` as it is now.
    pub fn of(pid: u32) -> Option<Stat> {
        Stat::read(format!("/proc/{pid}/stat"))
    }

    /// User plus system CPU, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        (self.utime + self.stime) as f64 / TICKS_PER_SECOND
    }

    /// A zombie has exited and waits for its parent to reap it.
    pub fn is_zombie(&self) -> bool {
        self.state == b'Z'
    }
}

/// A `kB` line of a `status` file (`VmRSS:`, `VmHWM:`) or of
/// `/proc/meminfo` (`MemTotal:`), in KiB; `key` includes the colon.
pub(crate) fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads `key` from the `status` file at `path` (such as
/// `/proc/self/status`), in bytes.
pub(crate) fn read_status_bytes(path: impl AsRef<Path>, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    Some(status_kib(&status, key)? * 1024)
}

/// Whether process `pid` holds a TCP socket that listens on `port` (any
/// address, IPv4 or IPv6): the socket's inode in its `net/tcp` tables is
/// among its open files. Tells a child that serves a port apart from
/// another process that took the port while the child was starting.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            inodes.extend(listening_inodes(&t, port));
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|l| socket_inode(l.to_str()?))
            .is_some_and(|i| inodes.contains(&i))
    })
}

/// The inodes of the sockets of a `net/tcp` table that listen (state `0A`)
/// on `port`.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            if p != port || *state != "0A" {
                return None;
            }
            inode.parse().ok()
        })
        .collect()
}

/// The inode of an open file's link text `socket:[N]`.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_found_by_port_and_state() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:8CA3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:8CA3 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening_inodes(table, 0x8ca3), vec![4242]);
        assert_eq!(listening_inodes(table, 80), vec![4444]);
        assert!(listening_inodes(table, 81).is_empty());
        assert!(listening_inodes("header only", 80).is_empty());
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
    }

    #[test]
    fn this_process_listens_only_while_it_holds_the_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id();
        assert!(listens_on(me, port));
        // The parent sees the same table but does not hold the socket.
        assert!(!listens_on(std::os::unix::process::parent_id(), port));
        drop(l);
        assert!(!listens_on(me, port));
    }

    const LINE: &str = "1234 (ray mon) S 1 1234 1235 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 500 104857600 2000 18446744073709551615";

    #[test]
    fn fields_are_counted_after_the_command() {
        let s = Stat::parse(LINE.as_bytes()).unwrap();
        let want = Stat {
            state: b'S',
            ppid: 1,
            pgrp: 1234,
            utime: 250,
            stime: 50,
            start: 500,
            vsize: 104_857_600,
        };
        assert_eq!(s, want);
        assert_eq!(s.cpu_seconds(), 3.0);
        assert!(!s.is_zombie());
    }

    #[test]
    fn command_names_with_spaces_parentheses_and_odd_bytes() {
        let tail = " Z 7 8 8 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        for comm in [
            &b"a) b (c)"[..],
            b") ) S 9 9 9 (",
            b"(",
            b"",
            b"new\nline",
            b"\xff\xfe not utf-8",
        ] {
            let mut line = b"4242 (".to_vec();
            line.extend_from_slice(comm);
            line.push(b')');
            line.extend_from_slice(tail.as_bytes());
            let s = Stat::parse(&line).unwrap_or_else(|| panic!("{comm:?}"));
            assert_eq!((s.state, s.ppid, s.pgrp), (b'Z', 7, 8), "{comm:?}");
            assert_eq!((s.utime, s.stime, s.start, s.vsize), (250, 50, 1, 2));
            assert!(s.is_zombie());
        }
    }

    #[test]
    fn truncated_or_garbled_lines_are_none() {
        assert_eq!(Stat::parse(b""), None);
        assert_eq!(Stat::parse(b"1234 (no close paren S 1 2 3"), None);
        // Cut before field 23.
        let cut = &LINE[..LINE.rfind(" 104857600").unwrap()];
        assert_eq!(Stat::parse(cut.as_bytes()), None);
        assert_eq!(Stat::parse(LINE.replace(" 250 ", " x ").as_bytes()), None);
        assert_eq!(Stat::parse(LINE.replace(") S ", ") SS ").as_bytes()), None);
    }

    #[test]
    fn this_process_and_thread_read_from_proc() {
        let me = Stat::of(std::process::id()).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.start > 0 && me.vsize > 0);
        let again = Stat::read("/proc/self/stat").unwrap();
        assert_eq!(again.start, me.start, "the start time names the process");
        // This thread is the one reading, so it runs.
        assert_eq!(Stat::read("/proc/thread-self/stat").unwrap().state, b'R');
        let rss = read_status_bytes("/proc/self/status", "VmRSS:").unwrap();
        let peak = read_status_bytes("/proc/self/status", "VmHWM:").unwrap();
        assert!(rss > 0 && peak >= rss);
        assert!(read_status_bytes("/proc/meminfo", "MemTotal:").unwrap() > rss);
        assert_eq!(read_status_bytes("/proc/self/status", "NoSuchKey:"), None);
    }

    #[test]
    fn a_child_is_told_apart_from_its_zombie() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: once it exits it stays a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !Stat::of(pid).unwrap().is_zombie() {
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(Stat::of(pid).unwrap().ppid, std::process::id());
        child.wait().unwrap();
        assert_eq!(Stat::of(pid), None);
    }
}
