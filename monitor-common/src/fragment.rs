//! IP fragments, as far as the mitigation needs them: whose they are, and
//! whether a first fragment carries a TCP SYN. The parser skips every
//! fragment (a TCP header split over fragments cannot be followed), which
//! left a way around a block: a SYN sent in fragments. No real stack
//! fragments a SYN, so a first fragment that carries one, or whose TCP
//! header is too short to show its flags (RFC 1858's tiny fragment), is
//! refused like a SYN from a blocked source.

use crate::{
    classify::tcp_flags::SYN,
    ipv6_chain::{self, ChainEnd},
    parse::{ETH_P_IPV4, ETH_P_IPV6, IPPROTO_TCP, PacketView, parse_ethernet, read},
};

/// An IPv4 or IPv6 fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// 4 or 6.
    pub ip_version: u8,
    /// Source address; IPv4 in the first 4 bytes.
    pub src_addr: [u8; 16],
    /// A first fragment of a TCP segment that carries a SYN, or too short
    /// to tell.
    pub syn: bool,
}

/// The frame's fragment, if it is one.
#[inline(always)]
pub fn parse_fragment<V: PacketView + ?Sized>(pkt: &V) -> Option<Fragment> {
    let (ethertype, l3) = parse_ethernet(pkt).ok()?;
    match ethertype {
        ETH_P_IPV4 => ipv4(pkt, l3),
        ETH_P_IPV6 => ipv6(pkt, l3),
        _ => None,
    }
}

/// Whether the TCP header at `l4` is a SYN, or too short to show flags.
/// (Two bytes are read where one would do: LLVM turns a one-byte bounds
/// check into `data_end > ptr`, from which the verifier learns no range.)
#[inline(always)]
fn syn_at<V: PacketView + ?Sized>(pkt: &V, l4: usize) -> bool {
    match read::<V, 2>(pkt, l4 + 12) {
        Ok([_, flags]) => flags & SYN != 0,
        Err(_) => true,
    }
}

#[inline(always)]
fn ipv4<V: PacketView + ?Sized>(pkt: &V, l3: usize) -> Option<Fragment> {
    let hdr: [u8; 20] = read(pkt, l3).ok()?;
    let frag = u16::from_be_bytes([hdr[6], hdr[7]]);
    if hdr[0] >> 4 != 4 || frag & 0x3fff == 0 {
        return None;
    }
    let mut src_addr = [0u8; 16];
    src_addr[..4].copy_from_slice(&hdr[12..16]);
    let first = frag & 0x1fff == 0;
    let header_len = usize::from(hdr[0] & 0x0f) * 4;
    Some(Fragment {
        ip_version: 4,
        src_addr,
        syn: first && hdr[9] == IPPROTO_TCP && syn_at(pkt, l3 + header_len),
    })
}

#[inline(always)]
fn ipv6<V: PacketView + ?Sized>(pkt: &V, l3: usize) -> Option<Fragment> {
    let hdr: [u8; 8] = read(pkt, l3).ok()?;
    let src_addr: [u8; 16] = read(pkt, l3 + 8).ok()?;
    if hdr[0] >> 4 != 6 {
        return None;
    }
    let ChainEnd::Fragment(at) = ipv6_chain::walk(pkt, hdr[6], l3 + 40) else {
        return None;
    };
    let ext: [u8; 4] = read(pkt, at).ok()?;
    let first = u16::from_be_bytes([ext[2], ext[3]]) & 0xfff8 == 0;
    Some(Fragment {
        ip_version: 6,
        src_addr,
        syn: first && ext[0] == IPPROTO_TCP && syn_at(pkt, at + 8),
    })
}

#[cfg(test)]
mod tests {
    use alloc::{vec, vec::Vec};

    use super::*;
    use crate::{
        classify::tcp_flags::ACK,
        frames::{Ip, TcpFrame},
        parse::{MAX_IPV6_EXT_HEADERS, SkipReason, parse_tcp},
    };

    /// `frame` (Ethernet + IPv4 + TCP) turned into the first fragment of
    /// its datagram, cut after `keep` bytes of IP payload.
    fn v4_first_fragment(frame: &[u8], keep: usize) -> Vec<u8> {
        let mut f = frame[..14 + 20 + keep].to_vec();
        f[14 + 6] = 0x20; // MF, offset 0
        let total = (20 + keep) as u16;
        f[14 + 2..14 + 4].copy_from_slice(&total.to_be_bytes());
        f
    }

    #[test]
    fn a_first_fragment_with_a_syn_is_a_syn_fragment() {
        let syn = TcpFrame::v4(SYN).build();
        let frag = v4_first_fragment(&syn, 20);
        assert_eq!(parse_tcp(&frag[..]), Err(SkipReason::Fragment));
        let f = parse_fragment(&frag[..]).unwrap();
        assert!(f.syn);
        assert_eq!(f.ip_version, 4);
        assert_eq!(&f.src_addr[..4], &syn[14 + 12..14 + 16]);
    }

    #[test]
    fn a_tiny_first_fragment_counts_as_a_syn() {
        let ack = TcpFrame::v4(ACK).build();
        assert!(parse_fragment(&v4_first_fragment(&ack, 8)[..]).unwrap().syn);
        assert!(
            !parse_fragment(&v4_first_fragment(&ack, 20)[..])
                .unwrap()
                .syn
        );
    }

    #[test]
    fn later_fragments_carry_no_syn_but_name_their_source() {
        let syn = TcpFrame::v4(SYN).build();
        let mut frag = v4_first_fragment(&syn, 16);
        frag[14 + 6] = 0x00;
        frag[14 + 7] = 0x02; // offset 16 bytes, last fragment
        let f = parse_fragment(&frag[..]).unwrap();
        assert!(!f.syn);
        assert_eq!(&f.src_addr[..4], &syn[14 + 12..14 + 16]);
    }

    #[test]
    fn unfragmented_packets_are_not_fragments() {
        assert_eq!(parse_fragment(&TcpFrame::v4(SYN).build()[..]), None);
        assert_eq!(parse_fragment(&TcpFrame::v6(SYN).build()[..]), None);
    }

    /// `frame` (Ethernet + IPv6 + TCP) with a fragment header before its
    /// TCP header, at fragment offset `offset` (8-byte units).
    fn v6_fragment(frame: &[u8], offset: u16) -> Vec<u8> {
        let mut f = frame[..14 + 40].to_vec();
        f[14 + 6] = 44;
        let payload = (frame.len() - 54 + 8) as u16;
        f[14 + 4..14 + 6].copy_from_slice(&payload.to_be_bytes());
        f.extend_from_slice(&[IPPROTO_TCP, 0]);
        f.extend_from_slice(&(offset << 3 | 1).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(&frame[54..]);
        f
    }

    #[test]
    fn ipv6_fragments_are_found_behind_their_header() {
        let syn = TcpFrame::v6(SYN).build();
        let first = v6_fragment(&syn, 0);
        assert_eq!(parse_tcp(&first[..]), Err(SkipReason::Fragment));
        let f = parse_fragment(&first[..]).unwrap();
        assert!(f.syn);
        assert_eq!(f.ip_version, 6);
        assert_eq!(f.src_addr[..], syn[14 + 8..14 + 24]);
        assert!(!parse_fragment(&v6_fragment(&syn, 3)[..]).unwrap().syn);
        let ack = TcpFrame::v6(ACK).build();
        assert!(!parse_fragment(&v6_fragment(&ack, 0)[..]).unwrap().syn);
    }

    /// A first fragment of a SYN behind `n` Destination Options headers.
    fn v6_fragment_behind(n: usize) -> Vec<u8> {
        let mut f = TcpFrame::v6(SYN);
        if let Ip::V6 { ext, .. } = &mut f.ip {
            ext.extend((0..n).map(|_| (60u8, vec![1, 4, 0, 0, 0, 0])));
            // Offset 0, more fragments, identification 1.
            ext.push((44u8, vec![0, 1, 0, 0, 0, 1]));
        }
        f.build()
    }

    #[test]
    fn the_fragment_check_follows_a_chain_as_far_as_the_parser() {
        let deepest = v6_fragment_behind(MAX_IPV6_EXT_HEADERS);
        assert_eq!(parse_tcp(&deepest[..]), Err(SkipReason::Fragment));
        assert!(parse_fragment(&deepest[..]).unwrap().syn);
        let beyond = v6_fragment_behind(MAX_IPV6_EXT_HEADERS + 1);
        assert_eq!(parse_tcp(&beyond[..]), Err(SkipReason::Ipv6ExtLimit));
        assert_eq!(parse_fragment(&beyond[..]), None);
    }
}
