//! The TCP ports of `raymon up` on a login node that many users share: each
//! is its default when that is free, else one the kernel hands out, and
//! every move is said. A port the user chose that is taken is an error: a
//! health check would otherwise pass against another user's server. Knows
//! nothing of what will listen on the ports.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{addr} is not free for {what} ({source}); choose another with {flag}")]
    Busy {
        addr: SocketAddr,
        what: String,
        flag: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no free port for {what}")]
    NoneFree {
        what: String,
        #[source]
        source: std::io::Error,
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
}

impl Need {
    pub fn new(what: &str, flag: &str, ip: IpAddr, port: u16, default: u16) -> Need {
        Need {
            what: what.to_string(),
            flag: flag.to_string(),
            ip,
            port,
            default,
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

/// The ports settled so far, so two needs never get the same one.
#[derive(Debug, Default)]
pub struct Ports {
    taken: BTreeSet<u16>,
}

impl Ports {
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
        if need.port != need.default {
            return Err(Error::Busy {
                addr,
                what: need.what.clone(),
                flag: need.flag.clone(),
                source: busy,
            });
        }
        // The kernel's pick is free now; nothing holds it until the child
        // binds it, which is as good as any check on a shared node.
        for _ in 0..16 {
            let port = TcpListener::bind(SocketAddr::new(need.ip, 0))
                .and_then(|l| l.local_addr())
                .map_err(|source| Error::NoneFree {
                    what: need.what.clone(),
                    source,
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
            source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "every pick was taken"),
        })
    }
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
}
