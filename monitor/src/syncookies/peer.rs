//! Whether a veth's peer can receive what XDP sends back. A veth hands
//! XDP_TX frames to its peer's receive ring, which exists only while the
//! peer runs NAPI (a native XDP program on it, or GRO since Linux 5.13);
//! without it every frame is dropped (the veth's
//! `rx_queue_N_xdp_tx_errors`), every SYN-cookie SYN-ACK with it. GRO is
//! not enough either: after XDP_TX the veth wakes the peer's NAPI only if
//! the peer runs an XDP program (`veth_xdp_flush` checks `xdp_prog`), so
//! with GRO alone the frames wait in the ring, undelivered, until other
//! traffic polls it (measured on 6.18: a client's SYN-ACKs never arrive).
//! Only a native XDP program on the peer will do.
//!
//! The peer may be in another namespace: the veth names it by an id
//! (`IFLA_LINK_NETNSID`) that this namespace gives it, and the namespace
//! is found by asking that id of every one reachable through /run/netns
//! and /proc/PID/ns/net. Sockets made inside it once (at start, while the
//! daemon may still enter namespaces) answer later questions without any
//! capability.

use std::{
    fs::File,
    io,
    os::{
        fd::{AsFd as _, AsRawFd as _},
        unix::fs::MetadataExt as _,
    },
    path::PathBuf,
};

use thiserror::Error;

use super::{ethtool::Ethtool, rtnl::Route};

/// Processes looked at for namespaces: a bound on the walk of /proc.
const MAX_PROCS: usize = 65_536;

#[derive(Debug, Error)]
pub enum PeerError {
    #[error("reading {what} of {iface}: {source}")]
    Query {
        what: &'static str,
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "its peer (ifindex {ifindex}) is in the namespace with id {nsid}, which none of \
         /run/netns/* and /proc/*/ns/net is"
    )]
    NamespaceNotFound { ifindex: u32, nsid: i32 },
    #[error("entering the peer's namespace {netns}: {source}")]
    Enter {
        netns: String,
        #[source]
        source: io::Error,
    },
}

/// What the peer looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFacts {
    pub name: String,
    /// Where it is: `this namespace`, or the namespace file found for it.
    pub netns: String,
    pub native_xdp: bool,
    pub gro: bool,
}

impl PeerFacts {
    /// Whether XDP_TX frames of its veth reach it (GRO alone does not
    /// wake it for them: see the module's comment).
    pub fn receives(&self) -> bool {
        self.native_xdp
    }

    /// `veth1 in /run/netns/blue`.
    pub fn describe(&self) -> String {
        format!("{} in {}", self.name, self.netns)
    }

    /// The command that makes the peer receive: a native XDP program on
    /// it (one that passes everything will do), in its namespace.
    pub fn fix(&self) -> String {
        let attach = format!(
            "ip link set dev {} xdpdrv obj XDP_PASS_OBJECT.o sec xdp",
            self.name
        );
        if let Some(name) = self.netns.strip_prefix("/run/netns/") {
            format!("ip netns exec {name} {attach}")
        } else if let Some(pid) = self
            .netns
            .strip_prefix("/proc/")
            .and_then(|p| p.strip_suffix("/ns/net"))
        {
            format!("nsenter -t {pid} -n {attach}")
        } else {
            attach
        }
    }
}

/// Sockets in the peer's namespace, to look at it again later.
pub struct PeerProbe {
    route: Route,
    ethtool: Ethtool,
    ifindex: u32,
    netns: String,
}

impl PeerProbe {
    /// The probe of `iface`'s peer; `None` if `iface` is no veth.
    pub fn find(iface: &str, ifindex: u32) -> Result<Option<Self>, PeerError> {
        let query = |what| {
            let iface = iface.to_string();
            move |source| PeerError::Query {
                what,
                iface,
                source,
            }
        };
        let mut route = Route::open().map_err(query("a route socket"))?;
        let link = route.link(ifindex).map_err(query("the link"))?;
        if link.kind.as_deref() != Some("veth") {
            return Ok(None);
        }
        let peer = link
            .link
            .filter(|&i| i != 0)
            .ok_or_else(|| PeerError::Query {
                what: "the veth's peer (IFLA_LINK)",
                iface: iface.to_string(),
                source: io::Error::new(io::ErrorKind::NotFound, "not reported"),
            })?;
        let Some(nsid) = link.link_netnsid else {
            let ethtool = Ethtool::open().map_err(query("an ethtool socket"))?;
            return Ok(Some(Self {
                route,
                ethtool,
                ifindex: peer,
                netns: "this namespace".into(),
            }));
        };
        let (path, file) =
            find_namespace(&mut route, nsid)?.ok_or(PeerError::NamespaceNotFound {
                ifindex: peer,
                nsid,
            })?;
        let netns = path.display().to_string();
        let (route, ethtool) = sockets_in(&file).map_err(|source| PeerError::Enter {
            netns: netns.clone(),
            source,
        })?;
        Ok(Some(Self {
            route,
            ethtool,
            ifindex: peer,
            netns,
        }))
    }

    /// The peer as it is now.
    pub fn inspect(&mut self) -> Result<PeerFacts, PeerError> {
        let what = |what, name: &str| {
            let iface = name.to_string();
            move |source| PeerError::Query {
                what,
                iface,
                source,
            }
        };
        let peer_name = format!("ifindex {} in {}", self.ifindex, self.netns);
        let link = self
            .route
            .link(self.ifindex)
            .map_err(what("the veth's peer", &peer_name))?;
        let gro = self
            .ethtool
            .gro(&link.name)
            .map_err(what("the GRO setting", &link.name))?;
        Ok(PeerFacts {
            name: link.name,
            netns: self.netns.clone(),
            native_xdp: link.native_xdp,
            gro,
        })
    }
}

/// The namespace file whose id (in ours) is `nsid`.
fn find_namespace(route: &mut Route, nsid: i32) -> Result<Option<(PathBuf, File)>, PeerError> {
    let mut seen = std::collections::HashSet::new();
    if let Ok(own) = std::fs::metadata("/proc/thread-self/ns/net") {
        seen.insert((own.dev(), own.ino()));
    }
    for path in candidates() {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let Ok(meta) = file.metadata() else { continue };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        if route.nsid(file.as_fd()).ok().flatten() == Some(nsid) {
            return Ok(Some((path, file)));
        }
    }
    Ok(None)
}

/// Named namespaces first (what `ip netns` shows), then every process's.
fn candidates() -> impl Iterator<Item = PathBuf> {
    let named = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    let procs = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .take(MAX_PROCS)
        .map(|e| e.path().join("ns/net"));
    named.chain(procs)
}

/// A route and an ethtool socket made inside `netns`, by a thread that
/// enters it (setns changes only the calling thread) and then ends.
fn sockets_in(netns: &File) -> io::Result<(Route, Ethtool)> {
    let fd = netns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns on a namespace fd; only this thread moves.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((Route::open()?, Ethtool::open()?))
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(netns: &str) -> PeerFacts {
        PeerFacts {
            name: "veth1".into(),
            netns: netns.into(),
            native_xdp: false,
            gro: false,
        }
    }

    #[test]
    fn the_fix_runs_in_the_peers_namespace() {
        let attach = "ip link set dev veth1 xdpdrv obj XDP_PASS_OBJECT.o sec xdp";
        assert_eq!(
            facts("/run/netns/blue").fix(),
            format!("ip netns exec blue {attach}")
        );
        assert_eq!(
            facts("/proc/42/ns/net").fix(),
            format!("nsenter -t 42 -n {attach}")
        );
        assert_eq!(facts("this namespace").fix(), attach);
    }

    #[test]
    fn only_native_xdp_receives_gro_is_not_enough() {
        let mut f = facts("x");
        assert!(!f.receives());
        f.gro = true;
        assert!(!f.receives());
        f = PeerFacts {
            native_xdp: true,
            ..facts("x")
        };
        assert!(f.receives());
    }
}
