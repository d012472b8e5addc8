//! The flood lab: an attacker namespace and a server namespace joined by
//! one veth pair, deleted by a guard on every exit path. The server end is
//! the monitored one; the attacker end runs an empty native XDP program
//! so frames the server side sends back with XDP_TX (cookie SYN-ACKs) are
//! delivered. Addresses: the link is 198.19.254.0/24; the flood's spoofed
//! sources are 198.18.0.0/16, routed back to the attacker, which does not
//! forward: every reply stays in the lab. No default route anywhere.

use std::net::Ipv4Addr;

use crate::bench::live::lab::ip;

pub const ATTACKER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 1);
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 2);
/// Where the flood's random sources come from (first two octets fixed).
pub const SPOOFED_PREFIX: [u8; 2] = [198, 18];

pub struct FloodLab {
    pub attacker_ns: String,
    pub server_ns: String,
    pub attacker_if: String,
    pub server_if: String,
    created: Vec<String>,
}

impl FloodLab {
    pub fn new() -> anyhow::Result<Self> {
        let id = std::process::id();
        let mut lab = Self {
            attacker_ns: format!("hmf-{id}-a"),
            server_ns: format!("hmf-{id}-s"),
            // IFNAMSIZ: at most 15 characters.
            attacker_if: format!("hmf{id}a"),
            server_if: format!("hmf{id}s"),
            created: Vec::new(),
        };
        for ns in [lab.attacker_ns.clone(), lab.server_ns.clone()] {
            ip(&["netns", "add", &ns])?;
            lab.created.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
        }
        let (a, s) = (&lab.attacker_ns, &lab.server_ns);
        ip(&[
            "-n",
            a,
            "link",
            "add",
            &lab.attacker_if,
            "type",
            "veth",
            "peer",
            "name",
            &lab.server_if,
            "netns",
            s,
        ])?;
        for (ns, ifname, addr) in [
            (a, &lab.attacker_if, ATTACKER_ADDR),
            (s, &lab.server_if, SERVER_ADDR),
        ] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                ifname,
            ])?;
            ip(&["-n", ns, "link", "set", "dev", ifname, "up"])?;
        }
        let spoofed = format!("{}.{}.0.0/16", SPOOFED_PREFIX[0], SPOOFED_PREFIX[1]);
        ip(&[
            "-n",
            s,
            "route",
            "add",
            &spoofed,
            "via",
            &ATTACKER_ADDR.to_string(),
        ])?;
        Ok(lab)
    }

    /// Kernel id of the XDP program attached to the server end (whoever
    /// attached it), from `ip -d -j link show`.
    pub fn server_xdp_prog_id(&self) -> anyhow::Result<u32> {
        use anyhow::Context as _;
        let out = std::process::Command::new("ip")
            .args(["-n", &self.server_ns, "-d", "-j", "link", "show", "dev"])
            .arg(&self.server_if)
            .output()
            .context("running `ip link show`")?;
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("parsing `ip -j link show`")?;
        let xdp = &json[0]["xdp"];
        xdp["prog"]["id"]
            .as_u64()
            .or_else(|| xdp["attached"][0]["prog"]["id"].as_u64())
            .map(|id| id as u32)
            .with_context(|| format!("no XDP program attached to {}: {xdp}", self.server_if))
    }
}

impl Drop for FloodLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, and with it the pair.
        for ns in self.created.iter().rev() {
            if let Err(err) = ip(&["netns", "del", ns]) {
                eprintln!("handshake-monitor-bench: cleanup: {err:#}");
            }
        }
    }
}
