//! Which side of a capture is the monitored host: frames towards it go
//! through the XDP program (ingress), frames from it through TC (egress).
//!
//! The rule, in order:
//! 1. `--local CIDR`: addresses in those networks are local;
//! 2. without it, every address that answered a SYN with a SYN-ACK
//!    anywhere in the capture;
//! 3. if nobody answered, every address a SYN was sent to.
//!
//! A frame from a local address is egress; one to a local address is
//! ingress; one between two local addresses (a loopback capture) is both,
//! egress then ingress, as on `lo`. A frame with neither end local is
//! taken as towards its lower port (a server's), and one without ports as
//! ingress.

use std::{collections::HashSet, net::IpAddr};

use monitor_common::classify::tcp_flags::{ACK, SYN};

use crate::mitigation::cidr::Cidr;

const ETH_HLEN: usize = 14;
const VLAN_TPIDS: [u16; 2] = [0x8100, 0x88a8];
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// What the rule needs of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// (source, destination) ports of TCP and UDP.
    pub ports: Option<(u16, u16)>,
    /// TCP flags.
    pub tcp_flags: Option<u8>,
}

/// The addresses and ports of an Ethernet frame (up to two VLAN tags,
/// IPv4 or IPv6 without extension headers for the ports).
pub fn endpoints(frame: &[u8]) -> Option<Endpoints> {
    let be16 = |at: usize| Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?));
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(12)?;
    for _ in 0..2 {
        if !VLAN_TPIDS.contains(&ethertype) {
            break;
        }
        ethertype = be16(l3 + 2)?;
        l3 += 4;
    }
    let ip = frame.get(l3..)?;
    let (src, dst, protocol, l4) = match ethertype {
        0x0800 if ip.len() >= 20 => {
            let src: [u8; 4] = ip[12..16].try_into().ok()?;
            let dst: [u8; 4] = ip[16..20].try_into().ok()?;
            let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
            let protocol = if first_fragment { ip[9] } else { 0 };
            (
                src.into(),
                dst.into(),
                protocol,
                usize::from(ip[0] & 0x0f) * 4,
            )
        }
        0x86dd if ip.len() >= 40 => {
            let src: [u8; 16] = ip[8..24].try_into().ok()?;
            let dst: [u8; 16] = ip[24..40].try_into().ok()?;
            (src.into(), dst.into(), ip[6], 40)
        }
        _ => return None,
    };
    let transport = ip.get(l4..).unwrap_or_default();
    let ports = match protocol {
        IPPROTO_TCP | IPPROTO_UDP if transport.len() >= 4 => Some((
            u16::from_be_bytes([transport[0], transport[1]]),
            u16::from_be_bytes([transport[2], transport[3]]),
        )),
        _ => None,
    };
    let tcp_flags = match protocol {
        IPPROTO_TCP => transport.get(13).copied(),
        _ => None,
    };
    Some(Endpoints {
        src,
        dst,
        ports,
        tcp_flags,
    })
}

/// The program(s) a frame goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ingress,
    Egress,
    /// Sent and received by the local host: TC egress, then XDP.
    Both,
}

/// Where the local addresses came from, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Given,
    AnsweredSyns,
    ReceivedSyns,
    Nobody,
}

impl Source {
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Given => "--local",
            Self::AnsweredSyns => "the addresses that answered SYNs",
            Self::ReceivedSyns => "the addresses SYNs were sent to (nobody answered one)",
            Self::Nobody => {
                "none found (no SYN in the capture): frames go towards their lower port"
            }
        }
    }
}

/// Learns the local side from a first pass over the capture.
#[derive(Debug, Default)]
pub struct Learner {
    answered: HashSet<IpAddr>,
    asked: HashSet<IpAddr>,
}

impl Learner {
    pub fn frame(&mut self, frame: &[u8]) {
        let Some(e) = endpoints(frame) else { return };
        match e.tcp_flags.map(|f| f & (SYN | ACK)) {
            Some(f) if f == SYN | ACK => {
                self.answered.insert(e.src);
            }
            Some(SYN) => {
                self.asked.insert(e.dst);
            }
            _ => {}
        }
    }

    pub fn finish(self) -> LocalSide {
        let (addrs, source) = if !self.answered.is_empty() {
            (self.answered, Source::AnsweredSyns)
        } else if !self.asked.is_empty() {
            (self.asked, Source::ReceivedSyns)
        } else {
            (HashSet::new(), Source::Nobody)
        };
        LocalSide {
            nets: Vec::new(),
            addrs,
            source,
        }
    }
}

/// The local side, decided.
#[derive(Debug)]
pub struct LocalSide {
    nets: Vec<Cidr>,
    addrs: HashSet<IpAddr>,
    source: Source,
}

impl LocalSide {
    pub fn given(nets: Vec<Cidr>) -> Self {
        Self {
            nets,
            addrs: HashSet::new(),
            source: Source::Given,
        }
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// The local addresses learned (empty with `--local`), sorted.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut addrs: Vec<IpAddr> = self.addrs.iter().copied().collect();
        addrs.sort_unstable();
        addrs
    }

    fn is_local(&self, addr: IpAddr) -> bool {
        self.addrs.contains(&addr) || self.nets.iter().any(|n| n.contains(addr))
    }

    /// Which program(s) the frame goes through.
    pub fn route(&self, frame: &[u8]) -> Route {
        let Some(e) = endpoints(frame) else {
            return Route::Ingress;
        };
        match (self.is_local(e.src), self.is_local(e.dst)) {
            (true, true) => Route::Both,
            (false, true) => Route::Ingress,
            (true, false) => Route::Egress,
            (false, false) => match e.ports {
                Some((src, dst)) if src < dst => Route::Egress,
                _ => Route::Ingress,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use monitor_common::{
        classify::tcp_flags::RST,
        frames::{CLIENT_V4, CLIENT_V6, Ip, SERVER_V4, SERVER_V6, TcpFrame},
    };

    use super::*;

    fn v4(src: [u8; 4], dst: [u8; 4], ports: (u16, u16), flags: u8) -> Vec<u8> {
        let mut f = TcpFrame::v4(flags).with_vlans(&[0x8100]);
        f.ip = Ip::V4 {
            src,
            dst,
            options: Vec::new(),
            more_fragments: false,
        };
        (f.src_port, f.dst_port) = ports;
        f.build()
    }

    #[test]
    fn the_syn_ack_sender_is_local() {
        let syn = v4(CLIENT_V4, SERVER_V4, (40_000, 443), SYN);
        let syn_ack = v4(SERVER_V4, CLIENT_V4, (443, 40_000), SYN | ACK);
        let mut learner = Learner::default();
        learner.frame(&syn);
        learner.frame(&syn_ack);
        let local = learner.finish();
        assert_eq!(local.source(), Source::AnsweredSyns);
        assert_eq!(local.addresses(), vec![IpAddr::from(SERVER_V4)]);
        assert_eq!(local.route(&syn), Route::Ingress);
        assert_eq!(local.route(&syn_ack), Route::Egress);
    }

    #[test]
    fn without_answers_the_syn_receiver_is_local() {
        let syn = v4(CLIENT_V4, SERVER_V4, (40_000, 80), SYN);
        let rst = v4(SERVER_V4, CLIENT_V4, (80, 40_000), RST | ACK);
        let mut learner = Learner::default();
        learner.frame(&syn);
        learner.frame(&rst);
        let local = learner.finish();
        assert_eq!(local.source(), Source::ReceivedSyns);
        assert_eq!(local.route(&rst), Route::Egress);
    }

    #[test]
    fn given_networks_decide_and_the_lower_port_breaks_ties() {
        let local = LocalSide::given(vec!["10.0.0.0/8".parse().unwrap()]);
        let inbound = v4([192, 0, 2, 1], [10, 1, 2, 3], (50_000, 22), ACK);
        let outbound = v4([10, 1, 2, 3], [192, 0, 2, 1], (22, 50_000), ACK);
        let elsewhere = v4([192, 0, 2, 1], [192, 0, 2, 2], (443, 50_000), ACK);
        assert_eq!(local.route(&inbound), Route::Ingress);
        assert_eq!(local.route(&outbound), Route::Egress);
        assert_eq!(local.route(&elsewhere), Route::Egress);
        assert_eq!(local.route(&[0u8; 10]), Route::Ingress);
        let looped = v4([10, 0, 0, 1], [10, 0, 0, 2], (50_000, 22), ACK);
        assert_eq!(local.route(&looped), Route::Both);
    }

    #[test]
    fn ipv6_endpoints_are_read() {
        let mut f = TcpFrame::v6(SYN);
        f.ip = Ip::V6 {
            src: CLIENT_V6,
            dst: SERVER_V6,
            ext: Vec::new(),
        };
        let e = endpoints(&f.build()).unwrap();
        assert_eq!(
            (e.src, e.dst, e.ports, e.tcp_flags),
            (
                CLIENT_V6.into(),
                SERVER_V6.into(),
                Some((40_000, 443)),
                Some(SYN)
            )
        );
    }
}
