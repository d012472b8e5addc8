use super::*;
use std::vec;

fn header_with(options: &[u8]) -> ([u8; TCP_MAX_HEADER], usize) {
    let mut h = [0u8; TCP_MAX_HEADER];
    h[20..20 + options.len()].copy_from_slice(options);
    (h, 20 + options.len())
}

/// A Linux SYN's options: MSS 1460, SACK_PERM, TS, NOP, WS 7.
const LINUX_SYN: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7,
];

#[test]
fn parses_a_linux_syn() {
    let (h, len) = header_with(&LINUX_SYN);
    let o = parse_options(&h, len);
    assert_eq!(o.mss, 1460);
    assert_eq!(o.wscale, 7);
    assert!(o.sack_ok && o.ts);
    assert_eq!((o.tsval, o.tsecr), (0x1234, 0));
}

#[test]
fn malformed_options_stop_the_walk() {
    // MSS, then an option claiming 30 bytes.
    let (h, len) = header_with(&[2, 4, 0x02, 0x18, 8, 30, 0, 0]);
    let o = parse_options(&h, len);
    assert_eq!(o.mss, 536);
    assert!(!o.ts);
    // Zero length would loop forever without the check.
    let (h, len) = header_with(&[3, 0, 7, 1]);
    assert_eq!(parse_options(&h, len), TcpOptions::default());
    // Shifts above 14 are clamped (RFC 7323).
    let (h, len) = header_with(&[3, 3, 20, 0]);
    assert_eq!(parse_options(&h, len).wscale, MAX_WSCALE);
}

#[test]
fn timestamp_carries_wscale_and_sack() {
    for (wscale, sack) in [(NO_WSCALE, false), (0, true), (7, false), (14, true)] {
        let client = TcpOptions {
            wscale,
            sack_ok: sack,
            ..TcpOptions::default()
        };
        for now in [0u32, 63, 64, 1_000_003, u32::MAX] {
            let ts = encode_tsval(now, &client);
            assert!(now.wrapping_sub(ts) < 128, "{now} -> {ts}");
            assert_eq!(decode_tsecr(ts), (wscale, sack));
        }
    }
}

#[test]
fn mss_index_matches_the_kernel() {
    assert_eq!(mss_index(&MSS_TABLE_V4, 100), 0);
    assert_eq!(mss_index(&MSS_TABLE_V4, 1299), 0);
    assert_eq!(mss_index(&MSS_TABLE_V4, 1300), 1);
    assert_eq!(mss_index(&MSS_TABLE_V4, 1460), 3);
    assert_eq!(mss_index(&MSS_TABLE_V4, 65495), 3);
    assert_eq!(mss_index(&MSS_TABLE_V6, 1440), 2);
}

fn spec(client: TcpOptions) -> SynAckSpec {
    SynAckSpec {
        syn_src_port: 40000,
        syn_dst_port: 443,
        syn_seq: 0xffff_ffff,
        cookie: 0xdead_beef,
        mss: 1460,
        wscale: RCV_WSCALE,
        client,
        tsval: 0x0102_0304,
    }
}

#[test]
fn synack_with_timestamps() {
    let (h, len) = header_with(&LINUX_SYN);
    let mut out = [0xaa; SYNACK_MAX_LEN];
    let n = write_synack(&mut out, &spec(parse_options(&h, len)));
    assert_eq!(n, 40);
    assert_eq!(u16::from_be_bytes([out[0], out[1]]), 443);
    assert_eq!(u16::from_be_bytes([out[2], out[3]]), 40000);
    assert_eq!(&out[4..8], &0xdead_beefu32.to_be_bytes());
    assert_eq!(&out[8..12], &[0, 0, 0, 0], "ISN + 1 wraps");
    assert_eq!((out[12], out[13]), (0xa0, 0x12));
    // Our own parser reads back what we offer.
    let mut back = [0u8; TCP_MAX_HEADER];
    back[..40].copy_from_slice(&out);
    let o = parse_options(&back, n);
    assert_eq!((o.mss, o.wscale, o.sack_ok, o.ts), (1460, 7, true, true));
    assert_eq!((o.tsval, o.tsecr), (0x0102_0304, 0x1234));
}

#[test]
fn synack_without_timestamps_offers_mss_only() {
    let (h, len) = header_with(&[2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 0, 0]);
    let mut out = [0xaa; SYNACK_MAX_LEN];
    let n = write_synack(&mut out, &spec(parse_options(&h, len)));
    assert_eq!(n, 24);
    assert_eq!(out[12], 0x60);
    assert!(out[24..].iter().all(|&b| b == 0));
}

/// Reference checksum: plain byte-wise sum over a pseudo-header + segment.
fn reference(pseudo: &[u8], seg: &[u8]) -> u16 {
    let mut all = pseudo.to_vec();
    all.extend_from_slice(seg);
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let mut acc: u32 = all
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The two parts of `out` as the XDP program sees them in the frame.
fn parts(
    out: &[u8; SYNACK_MAX_LEN],
    n: usize,
) -> ([u8; SYNACK_HEAD_LEN], Option<[u8; SYNACK_TS_LEN]>) {
    let head = out[..SYNACK_HEAD_LEN].try_into().unwrap();
    let ts = (n == SYNACK_MAX_LEN).then(|| out[SYNACK_HEAD_LEN..].try_into().unwrap());
    (head, ts)
}

#[test]
fn checksums_match_a_reference() {
    for options in [&LINUX_SYN[..], &[2, 4, 0x05, 0xb4]] {
        let (h, len) = header_with(options);
        let mut out = [0; SYNACK_MAX_LEN];
        let n = write_synack(&mut out, &spec(parse_options(&h, len)));
        let (head, ts) = parts(&out, n);
        let (src, dst) = ([198, 18, 0, 1], [198, 18, 0, 2]);
        let sum = synack_checksum(&src, &dst, &head, ts.as_ref());
        let mut pseudo = vec![];
        pseudo.extend_from_slice(&src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, 6, 0, n as u8]);
        assert_eq!(sum, reference(&pseudo, &out[..n]), "IPv4, {n} bytes");

        let (s6, d6) = (
            [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xfe; 16],
        );
        let sum6 = synack_checksum(&s6, &d6, &head, ts.as_ref());
        let mut pseudo = vec![];
        pseudo.extend_from_slice(&s6);
        pseudo.extend_from_slice(&d6);
        pseudo.extend_from_slice(&[0, 0, 0, n as u8, 0, 0, 0, 6]);
        assert_eq!(sum6, reference(&pseudo, &out[..n]), "IPv6, {n} bytes");
    }

    let (src, dst) = ([198, 18, 0, 1], [198, 18, 0, 2]);
    let ip = ipv4_header(&src, &dst, 60);
    assert_eq!(reference(&[], &ip), 0, "a valid header sums to zero");
    let (s6, d6) = ([0x20; 16], [0xfe; 16]);
    let ip6 = ipv6_header(&s6, &d6, 40);
    assert_eq!(
        (ip6[0], ip6[4], ip6[5], ip6[6], ip6[7]),
        (0x60, 0, 40, 6, 64)
    );
}

#[test]
fn the_parts_written_in_place_are_the_whole_synack() {
    for options in [
        &LINUX_SYN[..],
        &[2, 4, 0x05, 0xb4],
        &[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0],
    ] {
        let (h, len) = header_with(options);
        let s = spec(parse_options(&h, len));
        let mut whole = [0; SYNACK_MAX_LEN];
        let n = write_synack(&mut whole, &s);
        assert_eq!(n, synack_len(&s));
        // Over a frame's old bytes, as in the XDP program.
        let mut head = [0xaa; SYNACK_HEAD_LEN];
        write_synack_head(&mut head, &s);
        assert_eq!(&head[..], &whole[..SYNACK_HEAD_LEN]);
        if n == SYNACK_MAX_LEN {
            let mut ts = [0xaa; SYNACK_TS_LEN];
            write_synack_ts(&mut ts, &s);
            assert_eq!(&ts[..], &whole[SYNACK_HEAD_LEN..]);
        } else {
            assert!(whole[SYNACK_HEAD_LEN..].iter().all(|&b| b == 0));
        }
    }
}

#[test]
fn replies_in_place_swap_the_addresses_and_reset_the_rest() {
    let (client, server) = ([198, 18, 0, 1], [198, 18, 0, 2]);
    // A SYN's header with TOS, ID, TTL and a checksum of its own.
    let mut h = ipv4_header(&client, &server, 60);
    h[1] = 0x10;
    h[4..6].copy_from_slice(&[0x12, 0x34]);
    h[8] = 57;
    ipv4_reply(&mut h, 44);
    assert_eq!(h, ipv4_header(&server, &client, 44));
    assert_eq!(reference(&[], &h), 0);

    let (c6, s6) = ([0x20; 16], [0xfe; 16]);
    let mut h6 = ipv6_header(&c6, &s6, 40);
    h6[1..4].copy_from_slice(&[0x0a, 0xbc, 0xde]); // flow label
    h6[7] = 50;
    ipv6_reply(&mut h6, 24);
    assert_eq!(h6, ipv6_header(&s6, &c6, 24));
}

/// A frame's worth of bytes before the TCP header, then the header, then
/// `tail`: what the XDP program walks in place.
fn frame_with(options: &[u8], tail: &[u8]) -> (std::vec::Vec<u8>, usize, usize) {
    let l4 = 54;
    let mut f = vec![0x5a; l4];
    f.extend_from_slice(&[0; 20]);
    f.extend_from_slice(options);
    f.extend_from_slice(tail);
    (f, l4, 20 + options.len())
}

#[test]
fn options_read_in_place_are_those_of_the_copied_header() {
    let cases: [&[u8]; 7] = [
        &LINUX_SYN,
        // macOS order, ending in EOL.
        &[
            2, 4, 5, 0xb4, 1, 3, 3, 6, 1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0, 4, 2, 0, 0,
        ],
        // A NOP as the header's last byte.
        &[2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 2, 1, 1, 1, 1],
        // WS as the last option, its shift the last byte.
        &[1, 1, 1, 1, 1, 3, 3, 9],
        // Malformed: cut short, and a zero length.
        &[2, 4, 0x02, 0x18, 8, 30, 0, 0],
        &[3, 0, 7, 1],
        // 40 bytes of options: the longest header.
        &[
            2, 4, 5, 0xb4, 1, 3, 3, 7, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1,
            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        ],
    ];
    for options in cases {
        let (h, len) = header_with(options);
        let copied = parse_options(&h, len);
        // The frame ending with the header, and followed by a payload.
        for tail in [&[][..], &[8, 10, 1, 1, 1, 1, 2, 2, 2, 2]] {
            let (f, l4, th_len) = frame_with(options, tail);
            assert_eq!(th_len, len);
            let in_place = options_at(&f[..], l4, th_len);
            assert_eq!(in_place, copied, "{options:?} then {tail:?}");
        }
    }
}
