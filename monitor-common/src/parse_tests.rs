use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::classify::tcp_flags::{ACK, FIN, SYN};
use crate::frames::{DOT1AD, DOT1Q, Ip, TcpFrame, arp_request, udp_v4};

fn parse(frame: &[u8]) -> Result<TcpPacket, SkipReason> {
    parse_tcp(frame)
}

#[test]
fn ipv4_syn() {
    let frame = TcpFrame::v4(SYN).with_syn_options().build();
    let p = parse(&frame).unwrap();
    assert_eq!(p.ip_version, 4);
    assert_eq!(p.flags, SYN);
    assert_eq!(p.l3_offset, 14);
    assert_eq!(p.l4_offset, 34);
    assert_eq!(p.payload_offset, 34 + 40);
    assert_eq!(p.payload_len, 0);
}

#[test]
fn ipv4_with_options() {
    let mut f = TcpFrame::v4(ACK).with_payload(b"hello");
    if let Ip::V4 { options, .. } = &mut f.ip {
        // Record route with room for two addresses, then padding.
        *options = vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0];
    }
    let p = parse(&f.build()).unwrap();
    assert_eq!(p.l4_offset, 14 + 32);
    assert_eq!(p.payload_len, 5);
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut frame = TcpFrame::v4(ACK).build();
    assert_eq!(frame.len(), 54);
    frame.resize(60, 0);
    assert_eq!(parse(&frame).unwrap().payload_len, 0);
}

#[test]
fn ipv6_plain_and_with_extension_headers() {
    let p = parse(&TcpFrame::v6(SYN | ACK).build()).unwrap();
    assert_eq!((p.ip_version, p.l4_offset, p.flags), (6, 54, SYN | ACK));

    let mut f = TcpFrame::v6(FIN | ACK).with_payload(b"bye");
    if let Ip::V6 { ext, .. } = &mut f.ip {
        ext.push((0, vec![1, 4, 0, 0, 0, 0])); // hop-by-hop, PadN
        ext.push((43, vec![0; 22])); // routing, 24 bytes
        ext.push((51, vec![0; 10])); // AH, 12 bytes
        ext.push((60, vec![1, 4, 0, 0, 0, 0])); // destination options
    }
    let p = parse(&f.build()).unwrap();
    assert_eq!(p.l4_offset as usize, 54 + 8 + 24 + 12 + 8);
    assert_eq!(p.payload_len, 3);
}

#[test]
fn ipv6_extension_walk_is_bounded() {
    let chain = |n: usize| {
        let mut f = TcpFrame::v6(SYN);
        if let Ip::V6 { ext, .. } = &mut f.ip {
            ext.extend((0..n).map(|_| (60u8, vec![1, 4, 0, 0, 0, 0])));
        }
        f.build()
    };
    assert!(parse(&chain(MAX_IPV6_EXT_HEADERS)).is_ok());
    assert_eq!(
        parse(&chain(MAX_IPV6_EXT_HEADERS + 1)),
        Err(SkipReason::Ipv6ExtLimit)
    );
}

#[test]
fn vlan_tags() {
    let one = TcpFrame::v4(SYN).with_vlans(&[DOT1Q]).build();
    assert_eq!(parse(&one).unwrap().l3_offset, 18);
    let two = TcpFrame::v6(SYN).with_vlans(&[DOT1AD, DOT1Q]).build();
    let p = parse(&two).unwrap();
    assert_eq!((p.l3_offset, p.ip_version), (22, 6));
    let three = TcpFrame::v4(SYN)
        .with_vlans(&[DOT1AD, DOT1Q, DOT1Q])
        .build();
    assert_eq!(parse(&three), Err(SkipReason::VlanDepth));
}

#[test]
fn non_tcp() {
    assert_eq!(parse(&arp_request()), Err(SkipReason::NonIp));
    assert_eq!(parse(&udp_v4()), Err(SkipReason::NonTcp));
    let mut icmp6 = TcpFrame::v6(0);
    icmp6.protocol = 58;
    assert_eq!(parse(&icmp6.build()), Err(SkipReason::NonTcp));
}

#[test]
fn fragments() {
    let mut f = TcpFrame::v4(SYN);
    if let Ip::V4 { more_fragments, .. } = &mut f.ip {
        *more_fragments = true;
    }
    assert_eq!(parse(&f.build()), Err(SkipReason::Fragment));

    let mut later = TcpFrame::v4(SYN).build();
    later[14 + 6] = 0x00;
    later[14 + 7] = 0x10; // offset 16 * 8 bytes, no MF
    assert_eq!(parse(&later), Err(SkipReason::Fragment));

    let mut f6 = TcpFrame::v6(SYN);
    if let Ip::V6 { ext, .. } = &mut f6.ip {
        ext.push((44, vec![0, 1, 0, 0, 0, 1]));
    }
    assert_eq!(parse(&f6.build()), Err(SkipReason::Fragment));
}

/// Every prefix of a valid frame that cuts into a header is truncated,
/// never accepted or misread.
fn assert_truncations(frame: &[u8], headers_end: usize) {
    for len in 0..headers_end {
        assert_eq!(
            parse(&frame[..len]),
            Err(SkipReason::Truncated),
            "prefix of {len} bytes of {frame:02x?}"
        );
    }
}

#[test]
fn truncated_at_every_header_boundary() {
    let cases: Vec<(Vec<u8>, usize)> = vec![
        (TcpFrame::v4(SYN).with_syn_options().build(), 14 + 20 + 40),
        (
            TcpFrame::v4(SYN).with_vlans(&[DOT1AD, DOT1Q]).build(),
            22 + 20 + 20,
        ),
        (TcpFrame::v6(SYN).with_syn_options().build(), 14 + 40 + 40),
        (udp_v4(), 14 + 20),
    ];
    for (frame, headers_end) in cases {
        // Lengths are taken from the IP header, so cutting the frame makes
        // the IP length lie; what must win is the truncation.
        assert_truncations(&frame, headers_end);
    }
}

#[test]
fn malformed_headers() {
    let mut bad_version = TcpFrame::v4(SYN).build();
    bad_version[14] = 0x65;
    assert_eq!(parse(&bad_version), Err(SkipReason::Malformed));

    let mut short_ihl = TcpFrame::v4(SYN).build();
    short_ihl[14] = 0x44;
    assert_eq!(parse(&short_ihl), Err(SkipReason::Malformed));

    let mut short_doff = TcpFrame::v4(SYN).build();
    short_doff[14 + 20 + 12] = 0x40;
    assert_eq!(parse(&short_doff), Err(SkipReason::Malformed));

    let mut v6_in_v4 = TcpFrame::v6(SYN).build();
    v6_in_v4[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
    assert_eq!(parse(&v6_in_v4), Err(SkipReason::Malformed));
}

#[test]
fn lying_lengths() {
    // IPv4 total length beyond the frame.
    let mut long = TcpFrame::v4(ACK).build();
    long[16..18].copy_from_slice(&1500u16.to_be_bytes());
    assert_eq!(parse(&long), Err(SkipReason::Malformed));
    // IPv4 total length shorter than its own headers.
    let mut short = TcpFrame::v4(ACK).build();
    short[16..18].copy_from_slice(&30u16.to_be_bytes());
    assert_eq!(parse(&short), Err(SkipReason::Malformed));
    // IPv6 payload length beyond the frame.
    let mut long6 = TcpFrame::v6(ACK).build();
    long6[18..20].copy_from_slice(&999u16.to_be_bytes());
    assert_eq!(parse(&long6), Err(SkipReason::Malformed));
}

#[test]
fn zero_ip_length_defers_to_the_frame() {
    let mut tso = TcpFrame::v4(ACK).with_payload(&[7; 100]).build();
    tso[16..18].copy_from_slice(&[0, 0]);
    assert_eq!(parse(&tso).unwrap().payload_len, 100);
}

#[test]
fn skip_reason_names_are_unique_and_indexed() {
    for (i, a) in SkipReason::ALL.iter().enumerate() {
        assert_eq!(*a as usize, i);
        for b in &SkipReason::ALL[i + 1..] {
            assert_ne!(a.name(), b.name());
        }
    }
}

#[test]
fn fields_of_ipv4_and_ipv6_segments() {
    let mut f = TcpFrame::v4(SYN | ACK).with_vlans(&[DOT1Q]);
    f.seq = 0xdead_beef;
    f.ack = 7;
    let frame = f.build();
    let p = parse(&frame).unwrap();
    let fields = read_fields(frame.as_slice(), &p).unwrap();
    assert_eq!(&fields.src_addr[..4], &crate::frames::CLIENT_V4);
    assert_eq!(&fields.dst_addr[4..], &[0; 12]);
    assert_eq!((fields.src_port, fields.dst_port), (40000, 443));
    assert_eq!((fields.seq, fields.ack), (0xdead_beef, 7));

    let frame = TcpFrame::v6(SYN).build();
    let fields = read_fields(frame.as_slice(), &parse(&frame).unwrap()).unwrap();
    assert_eq!(fields.src_addr, crate::frames::CLIENT_V6);
    assert_eq!(fields.dst_addr, crate::frames::SERVER_V6);
}
