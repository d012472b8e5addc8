//! Link-layer headers → Ethernet frames, because the kernel programs parse
//! Ethernet (with up to two VLAN tags) and nothing else.
//!
//! Ethernet frames pass through untouched, VLAN tags included. Every other
//! supported link type is rewritten as a synthesized 14-byte Ethernet header
//! followed by the link layer's payload:
//!
//! - destination MAC [`SYNTH_DST`] `02:00:00:00:00:02`, source MAC
//!   [`SYNTH_SRC`] `02:00:00:00:00:01` (locally administered unicast
//!   addresses, so they can never be mistaken for a real NIC's);
//! - the ethertype from the link header: the protocol field of Linux cooked
//!   captures (any ethertype passes, ARP and VLAN included), the address family
//!   of BSD loopback (IPv4 or IPv6 only), or the version nibble of raw IP.
//!
//! Link types that carry no ethertype-like field give [`Skip::LinkType`].

use super::input::Skip;

/// `LINKTYPE_NULL`: BSD loopback, address family in the capturing host's order.
pub const NULL: u16 = 0;
/// `LINKTYPE_ETHERNET`.
pub const ETHERNET: u16 = 1;
/// `DLT_RAW` as most platforms number it; old files carry it instead of 101.
pub const DLT_RAW: u16 = 12;
/// `DLT_RAW` as OpenBSD numbers it.
pub const DLT_RAW_OPENBSD: u16 = 14;
/// `LINKTYPE_RAW`: the packet starts with an IPv4 or IPv6 header.
pub const RAW: u16 = 101;
/// `LINKTYPE_LOOP`: OpenBSD loopback, address family in network order.
pub const LOOP: u16 = 108;
/// `LINKTYPE_LINUX_SLL`: Linux cooked capture v1 (`tcpdump -i any`).
pub const LINUX_SLL: u16 = 113;
/// `LINKTYPE_IPV4`: raw IPv4.
pub const IPV4: u16 = 228;
/// `LINKTYPE_IPV6`: raw IPv6.
pub const IPV6: u16 = 229;
/// `LINKTYPE_LINUX_SLL2`: Linux cooked capture v2.
pub const LINUX_SLL2: u16 = 276;

/// Destination MAC of synthesized Ethernet headers.
pub const SYNTH_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Source MAC of synthesized Ethernet headers.
pub const SYNTH_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// Length of an Ethernet header without VLAN tags.
pub const ETH_HEADER: usize = 14;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
/// Values below this in an Ethernet type field are 802.3 lengths, and in a
/// cooked header they name non-Ethernet protocols (802.2 LLC, CAN, ...).
const MIN_ETHERTYPE: u16 = 0x0600;
/// In a cooked header, this hardware type means the protocol field is a
/// netlink family, which can collide with real ethertypes.
const ARPHRD_NETLINK: u16 = 824;

const SLL_HEADER: usize = 16;
const SLL2_HEADER: usize = 20;
const LOOPBACK_HEADER: usize = 4;

/// Turns one captured packet of `linktype` into an Ethernet frame.
///
/// Ethernet input is returned as is; other link types are written into
/// `scratch` (cleared first, so one buffer serves every frame without
/// allocating once it has grown to the largest frame).
pub fn to_ethernet<'a>(
    linktype: u16,
    data: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], Skip> {
    let (ethertype, payload) = match linktype {
        ETHERNET if data.len() < ETH_HEADER => return Err(Skip::Short),
        ETHERNET => return Ok(data),
        RAW | DLT_RAW | DLT_RAW_OPENBSD | IPV4 | IPV6 => (ip_version(data)?, data),
        LINUX_SLL => cooked(data, SLL_HEADER, 2, 14)?,
        LINUX_SLL2 => cooked(data, SLL2_HEADER, 8, 0)?,
        NULL => loopback(data, true)?,
        LOOP => loopback(data, false)?,
        _ => return Err(Skip::LinkType),
    };
    scratch.clear();
    scratch.extend_from_slice(&SYNTH_DST);
    scratch.extend_from_slice(&SYNTH_SRC);
    scratch.extend_from_slice(&ethertype.to_be_bytes());
    scratch.extend_from_slice(payload);
    Ok(scratch)
}

/// Which way a cooked capture saw a packet go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Captured {
    /// `PACKET_OUTGOING`: sent by the capturing host.
    Sent,
    /// `PACKET_HOST`, `_BROADCAST`, `_MULTICAST`: received by it.
    Received,
}

/// SLL and SLL2 say, in their packet type, whether the host sent or
/// received the packet (`tcpdump -i any` on `lo` holds each packet twice,
/// once each way); other link types say nothing. A packet seen only in
/// promiscuous mode (`PACKET_OTHERHOST`) is neither.
pub fn captured(linktype: u16, data: &[u8]) -> Option<Captured> {
    let packet_type = match linktype {
        LINUX_SLL if data.len() >= SLL_HEADER => be16(data, 0),
        LINUX_SLL2 if data.len() >= SLL2_HEADER => u16::from(data[10]),
        _ => return None,
    };
    match packet_type {
        0..=2 => Some(Captured::Received),
        4 => Some(Captured::Sent),
        _ => None,
    }
}

fn ip_version(packet: &[u8]) -> Result<u16, Skip> {
    match packet.first().map(|b| b >> 4) {
        None => Err(Skip::Short),
        Some(4) => Ok(ETHERTYPE_IPV4),
        Some(6) => Ok(ETHERTYPE_IPV6),
        Some(_) => Err(Skip::NotIp),
    }
}

/// Both cooked formats carry a big-endian hardware type and protocol at fixed
/// offsets; only their positions and the header length differ.
fn cooked(
    data: &[u8],
    header: usize,
    hatype_at: usize,
    protocol_at: usize,
) -> Result<(u16, &[u8]), Skip> {
    if data.len() < header {
        return Err(Skip::Short);
    }
    let hatype = be16(data, hatype_at);
    let protocol = be16(data, protocol_at);
    if hatype == ARPHRD_NETLINK || protocol < MIN_ETHERTYPE {
        return Err(Skip::NotIp);
    }
    Ok((protocol, &data[header..]))
}

/// `host_order`: the family was written in the capturing machine's byte
/// order, which the file does not record, so either order is accepted.
fn loopback(data: &[u8], host_order: bool) -> Result<(u16, &[u8]), Skip> {
    let Some((family, payload)) = data.split_first_chunk::<LOOPBACK_HEADER>() else {
        return Err(Skip::Short);
    };
    let network = loopback_family(u32::from_be_bytes(*family));
    let ethertype = if host_order {
        network.or_else(|| loopback_family(u32::from_le_bytes(*family)))
    } else {
        network
    };
    ethertype.map(|t| (t, payload)).ok_or(Skip::NotIp)
}

fn loopback_family(family: u32) -> Option<u16> {
    match family {
        // AF_INET is 2 everywhere.
        2 => Some(ETHERTYPE_IPV4),
        // AF_INET6: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, macOS 30.
        10 | 24 | 28 | 30 => Some(ETHERTYPE_IPV6),
        _ => None,
    }
}

fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
