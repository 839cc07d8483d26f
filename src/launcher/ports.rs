//! The TCP ports of `raymon up` on a login node that many users share: each
//! is its default when that is free, else the first free one of
//! `--port-range` (or one the kernel hands out), and every move is said. A
//! port the user chose that is taken is an error: a health check would
//! otherwise pass against another user's server. Knows the stack's ports
//! and Ray's names for them, not what will listen on them.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

/// Each error is one line that says what to do: the OS's reason is part of
/// the message rather than a source, which `anyhow` would print on lines of
/// its own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{addr} is not free for {what} ({cause}); choose another with {flag}")]
    Busy {
        addr: SocketAddr,
        what: String,
        flag: String,
        cause: std::io::Error,
    },
    #[error(
        "no free port for {what} in --port-range {low}-{high}; widen the range or choose \
         the port with {flag}"
    )]
    RangeFull {
        what: String,
        flag: String,
        low: u16,
        high: u16,
    },
    #[error(
        "{addr}, the port `raymon env` gave the notebook's Ray for {what}, is not free \
         ({cause}); run `raymon env` again, set what it prints and restart the notebook's Ray"
    )]
    Promised {
        addr: SocketAddr,
        what: String,
        cause: std::io::Error,
    },
    #[error("no free port for {what} ({cause}); choose one with {flag}")]
    NoneFree {
        what: String,
        flag: String,
        cause: std::io::Error,
    },
}

/// A port to settle.
#[derive(Debug, Clone)]
pub struct Need {
    /// What listens there, for messages ("Grafana").
    pub what: String,
    /// The flag or variable that sets it, for messages and for the child.
    pub flag: String,
    /// The address it will be bound on (the wildcard for Ray's ports, which
    /// bind every interface).
    pub ip: IpAddr,
    /// The port asked for.
    pub port: u16,
    /// Its default: only a default may move.
    pub default: u16,
    /// Given to a notebook's Ray by `raymon env`: it may not move either.
    pub promised: bool,
}

impl Need {
    pub fn new(what: &str, flag: &str, ip: IpAddr, port: u16, default: u16) -> Need {
        Need {
            what: what.to_string(),
            flag: flag.to_string(),
            ip,
            port,
            default,
            promised: false,
        }
    }

    /// A port of Ray's: bound on every interface, asked for at its default.
    pub fn ray(what: &str, flag: &str, default: u16) -> Need {
        Need::new(
            what,
            flag,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            default,
            default,
        )
    }
}

/// Where a settled port ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub port: u16,
    /// The taken default it replaces, if it moved.
    pub moved_from: Option<u16>,
}

/// `--port-range`: `LOW-HIGH`, both inclusive, `LOW` at least 1.
pub fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (low, high) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not LOW-HIGH (like 40000-40100)"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
    };
    let (low, high) = (port(low)?, port(high)?);
    if low > high {
        return Err(format!("{low}-{high} is empty: LOW must not be above HIGH"));
    }
    Ok((low, high))
}

/// The ports settled so far, so two needs never get the same one.
#[derive(Debug, Default)]
pub struct Ports {
    taken: BTreeSet<u16>,
    /// Where a taken default moves to; the kernel's pick when unset.
    range: Option<(u16, u16)>,
}

impl Ports {
    /// Moved ports come from `range` (inclusive) when given.
    pub fn within(range: Option<(u16, u16)>) -> Ports {
        Ports {
            taken: BTreeSet::new(),
            range,
        }
    }

    /// The asked-for port when it is free; else, for a default, a free one.
    pub fn settle(&mut self, need: &Need) -> Result<Settled, Error> {
        let addr = SocketAddr::new(need.ip, need.port);
        let busy = match TcpListener::bind(addr) {
            Ok(_) if !self.taken.contains(&need.port) => {
                self.taken.insert(need.port);
                return Ok(Settled {
                    port: need.port,
                    moved_from: None,
                });
            }
            Ok(_) => std::io::Error::new(std::io::ErrorKind::AddrInUse, "given to another part"),
            Err(e) => e,
        };
        if need.promised {
            return Err(Error::Promised {
                addr,
                what: need.what.clone(),
                cause: busy,
            });
        }
        if need.port != need.default {
            return Err(Error::Busy {
                addr,
                what: need.what.clone(),
                flag: need.flag.clone(),
                cause: busy,
            });
        }
        if let Some((low, high)) = self.range {
            // The first free one, so that a user's range is used in order.
            for port in low..=high {
                if !self.taken.contains(&port)
                    && TcpListener::bind(SocketAddr::new(need.ip, port)).is_ok()
                {
                    self.taken.insert(port);
                    return Ok(Settled {
                        port,
                        moved_from: Some(need.port),
                    });
                }
            }
            return Err(Error::RangeFull {
                what: need.what.clone(),
                flag: need.flag.clone(),
                low,
                high,
            });
        }
        // The kernel's pick is free now; nothing holds it until the child
        // binds it, which is as good as any check on a shared node.
        for _ in 0..16 {
            let port = TcpListener::bind(SocketAddr::new(need.ip, 0))
                .and_then(|l| l.local_addr())
                .map_err(|cause| Error::NoneFree {
                    what: need.what.clone(),
                    flag: need.flag.clone(),
                    cause,
                })?
                .port();
            if self.taken.insert(port) {
                return Ok(Settled {
                    port,
                    moved_from: Some(need.port),
                });
            }
        }
        Err(Error::NoneFree {
            what: need.what.clone(),
            flag: need.flag.clone(),
            cause: std::io::Error::new(std::io::ErrorKind::AddrInUse, "every pick was taken"),
        })
    }
}

/// The defaults of `--web.listen-address`, `--grafana-listen-address` and
/// `--dashboard-port` (Prometheus's, Grafana's and Ray's).
pub const DEFAULT_RAYMON_PORT: u16 = 9090;
pub const DEFAULT_GRAFANA_PORT: u16 = 3000;
pub const DEFAULT_DASHBOARD_PORT: u16 = 8265;

/// Ray's ports with defaults, as `ray start` flags: (what, flag, default).
/// Ray's defaults: `ray_constants.DEFAULT_PORT`,
/// `DEFAULT_DASHBOARD_AGENT_LISTEN_PORT`, and `scripts.py`'s 10001 for the
/// client server (which `ray start` binds only when Ray's client is
/// installed; a moved port is passed only when 10001 is taken).
const RAY_PORT_FLAGS: &[(&str, &str, u16)] = &[
    ("Ray's GCS", "--port", 6379),
    (
        "Ray's dashboard agent",
        "--dashboard-agent-listen-port",
        52365,
    ),
    ("Ray's client server", "--ray-client-server-port", 10001),
];

/// Ray's ports set by variables in `ray start`'s environment (`dashboard/consts.py`,
/// `autoscaler/_private/constants.py`).
const RAY_PORT_VARS: &[(&str, &str, u16)] = &[
    ("Ray dashboard's metrics", "DASHBOARD_METRIC_PORT", 44227),
    ("Ray autoscaler's metrics", "AUTOSCALER_METRIC_PORT", 44217),
];

/// What a stack listens on, settled in place by [`settle_stack`].
pub struct StackPorts<'a> {
    /// `--web.listen-address`.
    pub raymon: &'a mut SocketAddr,
    /// `--grafana-listen-address`; `None` without Grafana.
    pub grafana: Option<&'a mut SocketAddr>,
    /// Ray's ports, when `up` starts Ray.
    pub ray: Option<RayPorts<'a>>,
    /// The raymon and Grafana ports were promised by `raymon env`.
    pub promised: (bool, bool),
}

/// The ports of the Ray `up` starts.
pub struct RayPorts<'a> {
    /// `--dashboard-port`.
    pub dashboard: &'a mut u16,
    pub metrics_export: Option<u16>,
    /// `ray start` arguments: moved ports are added as flags, and a port
    /// given here is the user's (Ray says if it is taken).
    pub args: &'a mut Vec<String>,
}

/// Variables for `ray start`'s environment: (name, value).
pub type RayPortVars = Vec<(String, String)>;

/// Settles every port of a stack: moved ones are written back (Ray's as
/// extra `ray start` flags). Returns the variables `ray start` needs for
/// moved ports that are variables, and a line per move.
pub fn settle_stack(
    range: Option<(u16, u16)>,
    stack: StackPorts<'_>,
) -> Result<(RayPortVars, Vec<String>), Error> {
    let mut ports = Ports::within(range);
    let mut said = Vec::new();
    let mut settle = |need: Need| -> Result<u16, Error> {
        let s = ports.settle(&need)?;
        if let Some(from) = s.moved_from {
            said.push(format!(
                "port {from} ({}) is taken; using {} ({})",
                need.what, s.port, need.flag
            ));
        }
        Ok(s.port)
    };
    // A chosen raymon address that is taken stops the collector with its own
    // message; only the default moves.
    let listen = *stack.raymon;
    if listen.port() == DEFAULT_RAYMON_PORT || stack.promised.0 {
        let mut need = Need::new(
            "raymon",
            "--web.listen-address",
            listen.ip(),
            listen.port(),
            DEFAULT_RAYMON_PORT,
        );
        need.promised = stack.promised.0;
        stack.raymon.set_port(settle(need)?);
    }
    if let Some(g) = stack.grafana {
        let mut need = Need::new(
            "Grafana",
            "--grafana-listen-address",
            g.ip(),
            g.port(),
            DEFAULT_GRAFANA_PORT,
        );
        need.promised = stack.promised.1;
        g.set_port(settle(need)?);
    }
    let mut env = Vec::new();
    let Some(ray) = stack.ray else {
        return Ok((env, said));
    };
    *ray.dashboard = settle(Need::new(
        "Ray's dashboard",
        "--dashboard-port",
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        *ray.dashboard,
        DEFAULT_DASHBOARD_PORT,
    ))?;
    if let Some(p) = ray.metrics_export {
        // Unset, Ray binds a free port itself and discovery finds it.
        settle(Need::new(
            "Ray's metrics export",
            "--metrics-export-port",
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            p,
            0,
        ))?;
    }
    for &(what, flag, default) in RAY_PORT_FLAGS {
        if super::ray::flag_value(ray.args, flag).is_some() {
            continue;
        }
        let port = settle(Need::ray(what, flag, default))?;
        if port != default {
            ray.args.push(format!("{flag}={port}"));
        }
    }
    for &(what, var, default) in RAY_PORT_VARS {
        if std::env::var_os(var).is_some() {
            continue;
        }
        let port = settle(Need::ray(what, var, default))?;
        if port != default {
            env.push((var.to_string(), port.to_string()));
        }
    }
    Ok((env, said))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_default_moves_and_a_taken_choice_is_an_error() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut ports = Ports::default();
        let s = ports
            .settle(&Need::new("x", "--x", ip, port, port))
            .unwrap();
        assert_eq!(s.moved_from, Some(port));
        assert_ne!(s.port, port);
        assert!(ports.settle(&Need::new("y", "--y", ip, port, 1)).is_err());
    }

    #[test]
    fn a_moved_port_comes_from_the_range_or_says_it_is_full() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut full = Ports::within(Some((port, port)));
        let e = full
            .settle(&Need::new("Grafana", "--g", ip, port, port))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("--port-range {port}-{port}")), "{e}");
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = free.local_addr().unwrap().port();
        drop(free);
        let mut ports = Ports::within(Some((other, other)));
        let s = ports
            .settle(&Need::new("x", "--x", ip, port, port))
            .unwrap();
        assert_eq!(s.port, other);
        assert_eq!(parse_range("40000-40100"), Ok((40000, 40100)));
        for bad in ["40000", "2-1", "0-5", "1-70000", "a-b"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
