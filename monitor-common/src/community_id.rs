//! The Community ID v1 flow hash (github.com/corelight/community-id-spec):
//! the same string Zeek, Suricata and Elastic put on their records of a
//! flow, so ours join with theirs.
//!
//! Both directions of a flow hash alike: the smaller endpoint (address,
//! then port) goes first. ICMP and ICMPv6 carry type and code where the
//! ports would be; a request/reply type pairs with its counterpart, and
//! any other type is one-way, hashed in the direction seen.

use alloc::string::String;
use core::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;
const SCTP: u8 = 132;

/// The flow's Community ID, `1:` and the base64 of the SHA-1.
///
/// For ICMP and ICMPv6, `src_port` is the message type and `dst_port` the
/// code. Protocols other than TCP, UDP, SCTP, ICMP and ICMPv6 have no
/// ports in the hash; theirs are ignored. Both addresses are of one family,
/// as in any flow.
pub fn community_id_v1(
    seed: u16,
    proto: u8,
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
) -> String {
    let (src_port, dst_port, one_way) = match proto {
        ICMP => icmp_ports(src_port, dst_port, icmp_counterpart),
        ICMPV6 => icmp_ports(src_port, dst_port, icmpv6_counterpart),
        // Without ports in the hash, they only order one address's two
        // ends, and those hash alike either way.
        _ => (src_port, dst_port, false),
    };
    let src = Endpoint::new(src, src_port);
    let dst = Endpoint::new(dst, dst_port);
    let (first, second) = if one_way || src.key() <= dst.key() {
        (src, dst)
    } else {
        (dst, src)
    };

    let mut sha = Sha1::new();
    sha.update(seed.to_be_bytes());
    sha.update(first.addr());
    sha.update(second.addr());
    sha.update([proto, 0]);
    if matches!(proto, ICMP | TCP | UDP | ICMPV6 | SCTP) {
        sha.update(first.port.to_be_bytes());
        sha.update(second.port.to_be_bytes());
    }
    let mut id = String::from("1:");
    STANDARD.encode_string(sha.finalize(), &mut id);
    id
}

/// An address in network byte order (4 or 16 of the bytes) and a port.
struct Endpoint {
    octets: [u8; 16],
    len: usize,
    port: u16,
}

impl Endpoint {
    fn new(addr: IpAddr, port: u16) -> Self {
        let mut octets = [0; 16];
        let len = match addr {
            IpAddr::V4(a) => {
                octets[..4].copy_from_slice(&a.octets());
                4
            }
            IpAddr::V6(a) => {
                octets = a.octets();
                16
            }
        };
        Self { octets, len, port }
    }

    fn addr(&self) -> &[u8] {
        &self.octets[..self.len]
    }

    /// Bytewise address, then port: the spec's endpoint order.
    fn key(&self) -> (&[u8], u16) {
        (self.addr(), self.port)
    }
}

/// The port pair of an ICMP message: its type and the counterpart type if
/// it has one, else its type and code, one-way.
fn icmp_ports(kind: u16, code: u16, counterpart: fn(u16) -> Option<u16>) -> (u16, u16, bool) {
    match counterpart(kind) {
        Some(other) => (kind, other, false),
        None => (kind, code, true),
    }
}

fn icmp_counterpart(kind: u16) -> Option<u16> {
    // Echo, router advert/solicit, timestamp, information, address mask.
    Some(match kind {
        0 => 8,
        8 => 0,
        9 => 10,
        10 => 9,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

fn icmpv6_counterpart(kind: u16) -> Option<u16> {
    // Echo, MLD query/report, router and neighbor discovery, who-are-you,
    // home agent address discovery.
    Some(match kind {
        128 => 129,
        129 => 128,
        130 => 131,
        131 => 130,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}

#[cfg(test)]
#[path = "community_id_tests.rs"]
mod tests;
