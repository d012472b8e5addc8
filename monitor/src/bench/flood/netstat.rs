//! Where a real client's request can lose a second in the flood lab: its
//! SYN (or the SYN-ACK) dropped, and retransmitted after the kernel's
//! 1 s initial timeout. Read from the attacker namespace, where both the
//! client and the flood's veth end live: the client's SYN retransmits
//! (`TcpExt: TCPSynRetrans`; the flood's raw socket retransmits nothing)
//! and the frames its veth end dropped because the server end's receive
//! ring was full (`tx drop` in /proc/net/dev), the one place this lab
//! loses frames in every mode, with or without the monitor.

use anyhow::Context as _;

use crate::bench::live::lab::run_in;

#[derive(Clone, Copy, Debug, Default)]
pub struct LossCounters {
    pub client_syn_retransmits: u64,
    pub ring_drops: u64,
}

impl LossCounters {
    /// The counters now, as the namespace `ns` sees them (`ifname` is the
    /// veth end that sends the flood).
    pub fn read(ns: &str, ifname: &str) -> anyhow::Result<Self> {
        let ifname = ifname.to_string();
        run_in(ns, move || -> anyhow::Result<Self> {
            // thread-self: /proc/self/net is the namespace of the
            // process's main thread, not of this one.
            let netstat = std::fs::read_to_string("/proc/thread-self/net/netstat")
                .context("reading /proc/thread-self/net/netstat")?;
            let dev = std::fs::read_to_string("/proc/thread-self/net/dev")
                .context("reading /proc/thread-self/net/dev")?;
            Ok(Self {
                client_syn_retransmits: tcp_ext(&netstat, "TCPSynRetrans")
                    .context("no TcpExt TCPSynRetrans in /proc/net/netstat")?,
                ring_drops: tx_dropped(&dev, &ifname)
                    .with_context(|| format!("no {ifname} in /proc/net/dev"))?,
            })
        })?
    }

    pub fn since(self, before: Self) -> Self {
        Self {
            client_syn_retransmits: self
                .client_syn_retransmits
                .saturating_sub(before.client_syn_retransmits),
            ring_drops: self.ring_drops.saturating_sub(before.ring_drops),
        }
    }
}

/// A `TcpExt:` counter of /proc/net/netstat (a header line of names, then
/// a line of values).
fn tcp_ext(netstat: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let at = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// The transmit `drop` column of `ifname` in /proc/net/dev (after the name:
/// 8 receive columns, then bytes, packets, errs, drop).
fn tx_dropped(dev: &str, ifname: &str) -> Option<u64> {
    dev.lines().find_map(|line| {
        let (name, counters) = line.split_once(':')?;
        (name.trim() == ifname).then(|| counters.split_whitespace().nth(11)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_by_name_and_column() {
        let netstat = "TcpExt: SyncookiesSent TCPSynRetrans\nTcpExt: 7 3\n\
                       IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(tcp_ext(netstat, "TCPSynRetrans"), Some(3));
        assert_eq!(tcp_ext(netstat, "Missing"), None);
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets\n\
                   hmf1a: 10 2 0 0 0 0 0 0 20 4 0 29216 0 0 0 0\n";
        assert_eq!(tx_dropped(dev, "hmf1a"), Some(29216));
        assert_eq!(tx_dropped(dev, "hmf1s"), None);
    }
}
