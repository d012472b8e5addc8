//! `NetnsLab`: a hub namespace joined to peer namespaces by veth pairs,
//! deleted again by its guard.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cmd::{ip, output};

/// One veth pair from the hub to a peer namespace, on its own /24 and /64.
#[derive(Debug, Clone)]
pub struct Link {
    pub peer_ns: String,
    pub hub_if: String,
    pub peer_if: String,
    pub hub_addr: Ipv4Addr,
    pub peer_addr: Ipv4Addr,
    pub hub_addr6: Ipv6Addr,
    pub peer_addr6: Ipv6Addr,
}

/// Namespaces that exist only for one test. There is no default route and
/// every address is in 198.18.0.0/15 or 2001:2::/48, so nothing leaves the
/// machine.
#[derive(Debug)]
pub struct NetnsLab {
    pub hub: String,
    pub links: Vec<Link>,
    /// Everything created so far, deleted by Drop even if `new` panics
    /// halfway.
    namespaces: Vec<String>,
}

impl NetnsLab {
    /// A hub and one peer: the classic client/server pair.
    pub fn pair() -> Self {
        Self::with_peers(1)
    }

    /// A hub and `peers` peer namespaces (at most two: each link takes one
    /// of 198.18.X.0/24 and 198.19.X.0/24).
    pub fn with_peers(peers: u8) -> Self {
        assert!((1..=2).contains(&peers), "a lab has one or two peers");
        let n = super::unique();
        // Short and unique across concurrent test processes: interface
        // names have to fit IFNAMSIZ (15 characters).
        let base = format!("hmt-{:x}-{n}", std::process::id());
        let subnet = (n % 250 + 1) as u8;
        let mut lab = Self {
            hub: format!("{base}h"),
            links: Vec::new(),
            namespaces: Vec::new(),
        };
        lab.add_namespace(&lab.hub.clone());
        for i in 0..peers {
            let net6 = u16::from(i) << 8 | u16::from(subnet);
            let v6 = |host| Ipv6Addr::new(0x2001, 2, 0, net6, 0, 0, 0, host);
            let link = Link {
                peer_ns: format!("{base}p{i}"),
                hub_if: format!("{base}h{i}"),
                peer_if: format!("{base}p{i}"),
                hub_addr: Ipv4Addr::new(198, 18 + i, subnet, 1),
                peer_addr: Ipv4Addr::new(198, 18 + i, subnet, 2),
                hub_addr6: v6(1),
                peer_addr6: v6(2),
            };
            assert!(
                link.hub_if.len() <= 15,
                "{} is too long for an ifname",
                link.hub_if
            );
            lab.add_namespace(&link.peer_ns);
            lab.add_link(&link);
            lab.links.push(link);
        }
        lab
    }

    /// The first link: the one a pair lab has.
    pub fn link(&self) -> &Link {
        &self.links[0]
    }

    fn add_namespace(&mut self, ns: &str) {
        ip(&["netns", "add", ns]);
        self.namespaces.push(ns.to_string());
        ip(&["-n", ns, "link", "set", "dev", "lo", "up"]);
    }

    fn add_link(&self, link: &Link) {
        let (hub, peer) = ((&link.hub_if, &self.hub), (&link.peer_if, &link.peer_ns));
        let add = format!(
            "link add {} netns {} type veth peer name {} netns {}",
            hub.0, hub.1, peer.0, peer.1
        );
        ip(&add.split(' ').collect::<Vec<_>>());
        configure(&self.hub, &link.hub_if, link.hub_addr, link.hub_addr6);
        configure(
            &link.peer_ns,
            &link.peer_if,
            link.peer_addr,
            link.peer_addr6,
        );
    }
}

/// Addresses one veth end and brings it up.
fn configure(ns: &str, ifname: &str, addr: Ipv4Addr, addr6: Ipv6Addr) {
    let addr = format!("{addr}/24");
    ip(&["-n", ns, "addr", "add", &addr, "dev", ifname]);
    // nodad: usable at once instead of after a second of duplicate
    // address detection.
    let addr6 = format!("{addr6}/64");
    ip(&["-n", ns, "addr", "add", &addr6, "dev", ifname, "nodad"]);
    ip(&["-n", ns, "link", "set", "dev", ifname, "up"]);
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and with them
        // their peers and any attachment left on them.
        for ns in self.namespaces.iter().rev() {
            let out = output("ip", &["netns", "del", ns]);
            if !out.status.success() {
                eprintln!(
                    "cleanup: `ip netns del {ns}` failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
