//! The one packet parser: Ethernet, up to two VLAN tags, IPv4 (with
//! options) or IPv6 (with a bounded walk over extension headers), TCP.
//!
//! It reads through [`PacketView`], so the same code runs on host slices in
//! tests and on XDP/TC packet pointers in the kernel, where the view's
//! bounds check is the one the verifier needs to see. Loops are bounded by
//! constants and every offset is checked before use; walks over header
//! chains run through [`PacketView::repeat`].

use core::ops::ControlFlow;

use crate::ipv6_chain::{self, ChainEnd};

/// Byte access to a frame.
pub trait PacketView {
    /// The `N` bytes at `offset`, or `None` when they run past the data.
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;

    /// Length of the whole frame, including any part `bytes` cannot reach
    /// (a non-linear skb at TC).
    fn frame_len(&self) -> usize;

    /// Runs `walk` over this frame for passes `0..passes`, until a pass
    /// breaks. The kernel's views keep the walk in map memory while it
    /// runs, and TC's run it with `bpf_loop`: the verifier then checks a
    /// pass once (or once per pass), where it would check an unrolled loop
    /// once per pass and per combination of what earlier passes read.
    #[inline(always)]
    fn repeat<S: Step>(&self, passes: u32, walk: &mut S) {
        for pass in 0..passes {
            if walk.step(self, pass).is_break() {
                break;
            }
        }
    }
}

/// One pass of a bounded walk over a frame (see [`PacketView::repeat`]);
/// the walk's state, and what it found, are its fields. Those are all
/// `u64` (`#[repr(C)]`, no padding): the kernel keeps a walk in map
/// memory while it runs, so that what it found reaches the program as
/// values the verifier does not follow (one path after the walk, not one
/// per way the walk could have ended).
pub trait Step {
    fn step<V: PacketView + ?Sized>(&mut self, pkt: &V, pass: u32) -> ControlFlow<()>;
}

impl PacketView for [u8] {
    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let end = offset.checked_add(N)?;
        let slice = self.get(offset..end)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Some(out)
    }

    fn frame_len(&self) -> usize {
        self.len()
    }
}

labelled_enum! {
    /// Why the parser stopped following a packet. Such packets pass untouched.
    pub enum SkipReason: u32 {
        /// Ethertype is neither IPv4 nor IPv6 (ARP, LLDP, ...).
        NonIp = 0 => "non_ip",
        /// IP, but the transport is not TCP (UDP, ICMP, ESP, no next header).
        NonTcp = 1 => "non_tcp",
        /// An IPv4 or IPv6 fragment.
        Fragment = 2 => "fragment",
        /// A header runs past the end of the data.
        Truncated = 3 => "truncated",
        /// A header field is impossible (wrong IP version, header length below
        /// the minimum, lengths that contradict each other).
        Malformed = 4 => "malformed",
        /// More than [`MAX_VLAN_TAGS`] VLAN tags.
        VlanDepth = 5 => "vlan_depth",
        /// More than [`MAX_IPV6_EXT_HEADERS`] IPv6 extension headers.
        Ipv6ExtLimit = 6 => "ipv6_ext_limit",
    }
}

pub const ETH_HEADER_LEN: usize = 14;
pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ outer tag, still sent by some switches.
pub const ETH_P_QINQ_LEGACY: u16 = 0x9100;
pub const IPPROTO_TCP: u8 = 6;

pub const MAX_VLAN_TAGS: usize = 2;
pub const MAX_IPV6_EXT_HEADERS: usize = 8;
/// No header of interest starts further in; bounds every offset for the
/// verifier (an IPv6 chain of 8 maximal headers would reach 16 KiB).
pub const MAX_HEADER_OFFSET: usize = 2048;

const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_MIN_HEADER_LEN: usize = 20;

/// Where the TCP segment of a frame is, and its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket {
    /// 4 or 6.
    pub ip_version: u8,
    /// TCP flags byte.
    pub flags: u8,
    /// Offset of the IP header.
    pub l3_offset: u16,
    /// Offset of the TCP header.
    pub l4_offset: u16,
    /// Offset of the TCP payload.
    pub payload_offset: u16,
    /// TCP payload length, from the IP length fields (Ethernet padding of
    /// short frames is not payload).
    pub payload_len: u32,
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Reads `N` bytes or reports the packet as truncated.
#[inline(always)]
pub(crate) fn read<V: PacketView + ?Sized, const N: usize>(
    pkt: &V,
    offset: usize,
) -> Result<[u8; N], SkipReason> {
    if offset > MAX_HEADER_OFFSET {
        return Err(SkipReason::Truncated);
    }
    pkt.bytes::<N>(offset).ok_or(SkipReason::Truncated)
}

/// Parses a frame down to its TCP header.
#[inline(always)]
pub fn parse_tcp<V: PacketView + ?Sized>(pkt: &V) -> Result<TcpPacket, SkipReason> {
    let (ethertype, l3_offset) = parse_ethernet(pkt)?;
    let ip = match ethertype {
        ETH_P_IPV4 => parse_ipv4(pkt, l3_offset)?,
        ETH_P_IPV6 => parse_ipv6(pkt, l3_offset)?,
        _ => return Err(SkipReason::NonIp),
    };
    parse_tcp_header(pkt, l3_offset, ip)
}

/// Ethertype of the payload and its offset, after up to two VLAN tags.
#[inline(always)]
pub(crate) fn parse_ethernet<V: PacketView + ?Sized>(pkt: &V) -> Result<(u16, usize), SkipReason> {
    let mut ethertype = be16(read(pkt, 12)?);
    let mut offset = ETH_HEADER_LEN;
    let mut tags = 0;
    while is_vlan(ethertype) {
        if tags == MAX_VLAN_TAGS {
            return Err(SkipReason::VlanDepth);
        }
        // Tag: TCI (2 bytes), then the inner ethertype.
        ethertype = be16(read(pkt, offset + 2)?);
        offset += 4;
        tags += 1;
    }
    Ok((ethertype, offset))
}

#[inline(always)]
const fn is_vlan(ethertype: u16) -> bool {
    matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_LEGACY)
}

/// What the IP layer says about the transport header.
#[derive(Clone, Copy)]
struct IpLayer {
    version: u8,
    l4_offset: usize,
    /// End of the IP packet by its own length fields; `None` when they
    /// defer to the frame (IPv4 TSO/BIG TCP total length 0, IPv6 jumbo).
    ip_end: Option<usize>,
}

#[inline(always)]
fn parse_ipv4<V: PacketView + ?Sized>(pkt: &V, offset: usize) -> Result<IpLayer, SkipReason> {
    let hdr: [u8; IPV4_MIN_HEADER_LEN] = read(pkt, offset)?;
    if hdr[0] >> 4 != 4 {
        return Err(SkipReason::Malformed);
    }
    let header_len = usize::from(hdr[0] & 0x0f) * 4;
    if header_len < IPV4_MIN_HEADER_LEN {
        return Err(SkipReason::Malformed);
    }
    // More-fragments flag or a non-zero fragment offset.
    if be16([hdr[6], hdr[7]]) & 0x3fff != 0 {
        return Err(SkipReason::Fragment);
    }
    if hdr[9] != IPPROTO_TCP {
        return Err(SkipReason::NonTcp);
    }
    let total_len = usize::from(be16([hdr[2], hdr[3]]));
    let ip_end = match total_len {
        0 => None,
        len if len < header_len => return Err(SkipReason::Malformed),
        len => Some(offset + len),
    };
    Ok(IpLayer {
        version: 4,
        l4_offset: offset + header_len,
        ip_end,
    })
}

#[inline(always)]
fn parse_ipv6<V: PacketView + ?Sized>(pkt: &V, offset: usize) -> Result<IpLayer, SkipReason> {
    let hdr: [u8; 8] = read(pkt, offset)?;
    // The fixed header must be there in full even though only its first
    // 8 bytes are read here.
    read::<V, 1>(pkt, offset + IPV6_HEADER_LEN - 1)?;
    if hdr[0] >> 4 != 6 {
        return Err(SkipReason::Malformed);
    }
    let payload_len = usize::from(be16([hdr[4], hdr[5]]));
    let ip_end = match payload_len {
        0 => None,
        len => Some(offset + IPV6_HEADER_LEN + len),
    };
    // No extension header, the common case, costs no walk (20-35 ns).
    if hdr[6] == IPPROTO_TCP {
        return Ok(IpLayer {
            version: 6,
            l4_offset: offset + IPV6_HEADER_LEN,
            ip_end,
        });
    }
    let l4_offset = match ipv6_chain::walk(pkt, hdr[6], offset + IPV6_HEADER_LEN) {
        ChainEnd::Tcp(l4_offset) => l4_offset,
        ChainEnd::Fragment(_) => return Err(SkipReason::Fragment),
        ChainEnd::Other => return Err(SkipReason::NonTcp),
        ChainEnd::Truncated => return Err(SkipReason::Truncated),
        ChainEnd::TooLong => return Err(SkipReason::Ipv6ExtLimit),
    };
    Ok(IpLayer {
        version: 6,
        l4_offset,
        ip_end,
    })
}

#[inline(always)]
fn parse_tcp_header<V: PacketView + ?Sized>(
    pkt: &V,
    l3_offset: usize,
    ip: IpLayer,
) -> Result<TcpPacket, SkipReason> {
    let l4_offset = ip.l4_offset;
    let hdr: [u8; 2] = read(pkt, l4_offset + 12)?;
    // The fixed header must be complete even where only bytes 12-13 are used.
    read::<V, 1>(pkt, l4_offset + TCP_MIN_HEADER_LEN - 1)?;
    let header_len = usize::from(hdr[0] >> 4) * 4;
    if header_len < TCP_MIN_HEADER_LEN {
        return Err(SkipReason::Malformed);
    }
    let payload_offset = l4_offset + header_len;
    // Options must be present in full (SYNs carry MSS, window scale, ...).
    if header_len > TCP_MIN_HEADER_LEN {
        read::<V, 1>(pkt, payload_offset - 1)?;
    }
    let frame_len = pkt.frame_len();
    let payload_len = match ip.ip_end {
        Some(end) if end < payload_offset || end > frame_len => {
            return Err(SkipReason::Malformed);
        }
        Some(end) => end - payload_offset,
        None if frame_len < payload_offset => return Err(SkipReason::Truncated),
        None => frame_len - payload_offset,
    };
    Ok(TcpPacket {
        ip_version: ip.version,
        flags: hdr[1],
        l3_offset: l3_offset as u16,
        l4_offset: l4_offset as u16,
        payload_offset: payload_offset as u16,
        payload_len: payload_len as u32,
    })
}

/// Addresses, ports and sequence numbers of a parsed TCP segment. IPv4
/// addresses fill the first 4 bytes of the address arrays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFields {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
}

/// Reads the fields the flow table needs from a frame `parse_tcp` accepted.
#[inline(always)]
pub fn read_fields<V: PacketView + ?Sized>(
    pkt: &V,
    tcp: &TcpPacket,
) -> Result<TcpFields, SkipReason> {
    let l3 = usize::from(tcp.l3_offset);
    let mut fields = TcpFields::default();
    if tcp.ip_version == 4 {
        let addrs: [u8; 8] = read(pkt, l3 + 12)?;
        fields.src_addr[..4].copy_from_slice(&addrs[..4]);
        fields.dst_addr[..4].copy_from_slice(&addrs[4..]);
    } else {
        fields.src_addr = read(pkt, l3 + 8)?;
        fields.dst_addr = read(pkt, l3 + 24)?;
    }
    let head: [u8; 12] = read(pkt, usize::from(tcp.l4_offset))?;
    fields.src_port = be16([head[0], head[1]]);
    fields.dst_port = be16([head[2], head[3]]);
    fields.seq = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    fields.ack = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    Ok(fields)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

#[path = "parse_fuzz.rs"]
pub mod fuzz;
