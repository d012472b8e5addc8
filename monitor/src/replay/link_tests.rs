use super::*;

const IPV4_PACKET: [u8; 4] = [0x45, 0x00, 0x00, 0x14];
const IPV6_PACKET: [u8; 4] = [0x60, 0x00, 0x00, 0x00];

fn synthesized(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = [SYNTH_DST, SYNTH_SRC].concat();
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn convert(linktype: u16, data: &[u8]) -> Result<Vec<u8>, Skip> {
    let mut scratch = Vec::new();
    to_ethernet(linktype, data, &mut scratch).map(<[u8]>::to_vec)
}

#[test]
fn ethernet_passes_through_the_same_slice() {
    let frame = [0xaa; 18];
    let mut scratch = Vec::new();
    let out = to_ethernet(ETHERNET, &frame, &mut scratch).unwrap();
    assert_eq!(out.as_ptr(), frame.as_ptr());
    assert_eq!(out.len(), 18);
    assert!(scratch.is_empty());
}

#[test]
fn ethernet_shorter_than_a_header_is_short() {
    assert_eq!(convert(ETHERNET, &[0; 13]), Err(Skip::Short));
    assert_eq!(convert(ETHERNET, &[0; 14]), Ok(vec![0; 14]));
}

#[test]
fn raw_ip_gets_an_ethertype_from_the_version_nibble() {
    for linktype in [RAW, DLT_RAW, DLT_RAW_OPENBSD, IPV4, IPV6] {
        assert_eq!(
            convert(linktype, &IPV4_PACKET),
            Ok(synthesized(0x0800, &IPV4_PACKET))
        );
        assert_eq!(
            convert(linktype, &IPV6_PACKET),
            Ok(synthesized(0x86DD, &IPV6_PACKET))
        );
        assert_eq!(convert(linktype, &[0x50, 0]), Err(Skip::NotIp));
        assert_eq!(convert(linktype, &[]), Err(Skip::Short));
    }
}

#[test]
fn sll_uses_its_protocol_field() {
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&IPV4_PACKET);
    assert_eq!(
        convert(LINUX_SLL, &sll),
        Ok(synthesized(0x0800, &IPV4_PACKET))
    );

    // VLAN and ARP are ethertypes too: the kernel programs decide.
    let vlan = [&sll[..14], &[0x81, 0x00, 0x00, 0x05, 0x86, 0xdd]].concat();
    assert_eq!(
        convert(LINUX_SLL, &vlan),
        Ok(synthesized(0x8100, &[0x00, 0x05, 0x86, 0xdd]))
    );
    let arp = [&sll[..14], &[0x08, 0x06, 0xff]].concat();
    assert_eq!(convert(LINUX_SLL, &arp), Ok(synthesized(0x0806, &[0xff])));

    let llc = [&sll[..14], &[0x00, 0x04, 0xff]].concat();
    assert_eq!(convert(LINUX_SLL, &llc), Err(Skip::NotIp));
    let mut netlink = sll.clone();
    netlink[2..4].copy_from_slice(&824u16.to_be_bytes());
    assert_eq!(convert(LINUX_SLL, &netlink), Err(Skip::NotIp));
    assert_eq!(convert(LINUX_SLL, &sll[..15]), Err(Skip::Short));
}

#[test]
fn sll2_uses_its_leading_protocol_field() {
    let mut sll2 = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6];
    sll2.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]);
    sll2.extend_from_slice(&IPV6_PACKET);
    assert_eq!(
        convert(LINUX_SLL2, &sll2),
        Ok(synthesized(0x86DD, &IPV6_PACKET))
    );
    assert_eq!(convert(LINUX_SLL2, &sll2[..19]), Err(Skip::Short));
}

#[test]
fn null_accepts_either_byte_order_and_every_inet6_value() {
    let cases: [([u8; 4], u16); 6] = [
        (2u32.to_le_bytes(), 0x0800),
        (2u32.to_be_bytes(), 0x0800),
        (10u32.to_le_bytes(), 0x86DD),
        (24u32.to_le_bytes(), 0x86DD),
        (28u32.to_be_bytes(), 0x86DD),
        (30u32.to_le_bytes(), 0x86DD),
    ];
    for (family, ethertype) in cases {
        let packet = [&family[..], &IPV4_PACKET].concat();
        assert_eq!(
            convert(NULL, &packet),
            Ok(synthesized(ethertype, &IPV4_PACKET)),
            "family bytes {family:?}"
        );
    }
    assert_eq!(convert(NULL, &7u32.to_le_bytes()), Err(Skip::NotIp));
    assert_eq!(convert(NULL, &[2, 0, 0]), Err(Skip::Short));
}

#[test]
fn loop_reads_the_family_in_network_order_only() {
    let packet = [&24u32.to_be_bytes()[..], &IPV6_PACKET].concat();
    assert_eq!(
        convert(LOOP, &packet),
        Ok(synthesized(0x86DD, &IPV6_PACKET))
    );
    assert_eq!(convert(LOOP, &2u32.to_le_bytes()), Err(Skip::NotIp));
}

#[test]
fn other_link_types_are_skipped() {
    for linktype in [6, 105, 127, 239, 252] {
        assert_eq!(convert(linktype, &[0x45; 40]), Err(Skip::LinkType));
    }
}

#[test]
fn scratch_is_reused_across_frames() {
    let mut scratch = Vec::new();
    let long = [0x45; 1500];
    to_ethernet(RAW, &long, &mut scratch).unwrap();
    let capacity = scratch.capacity();
    let out = to_ethernet(RAW, &IPV4_PACKET, &mut scratch).unwrap();
    assert_eq!(out, synthesized(0x0800, &IPV4_PACKET));
    assert_eq!(scratch.capacity(), capacity);
}

#[test]
fn cooked_packet_types_say_which_way_a_packet_went() {
    let mut sll = vec![0u8; 16];
    sll[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
    let mut sll2 = vec![0u8; 20];
    sll2[0..2].copy_from_slice(&0x0800u16.to_be_bytes());
    for (packet_type, expected) in [
        (0, Some(Captured::Received)),
        (1, Some(Captured::Received)),
        (2, Some(Captured::Received)),
        (3, None),
        (4, Some(Captured::Sent)),
    ] {
        sll[1] = packet_type;
        sll2[10] = packet_type;
        assert_eq!(
            captured(LINUX_SLL, &sll),
            expected,
            "SLL type {packet_type}"
        );
        assert_eq!(
            captured(LINUX_SLL2, &sll2),
            expected,
            "SLL2 type {packet_type}"
        );
    }
    assert_eq!(captured(LINUX_SLL, &sll[..15]), None, "short header");
    assert_eq!(
        captured(ETHERNET, &[0u8; 60]),
        None,
        "Ethernet says nothing"
    );
}
