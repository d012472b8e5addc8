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

#[test]
fn checksums_match_a_reference() {
    let (h, len) = header_with(&LINUX_SYN);
    let mut out = [0; SYNACK_MAX_LEN];
    let n = write_synack(&mut out, &spec(parse_options(&h, len)));
    let (src, dst) = ([198, 18, 0, 1], [198, 18, 0, 2]);
    let sum = tcp_checksum(&src, &dst, &out, n);
    let mut pseudo = vec![];
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6, 0, n as u8]);
    assert_eq!(sum, reference(&pseudo, &out[..n]));

    let (s6, d6) = (
        [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0xfe; 16],
    );
    let sum6 = tcp_checksum(&s6, &d6, &out, n);
    let mut pseudo = vec![];
    pseudo.extend_from_slice(&s6);
    pseudo.extend_from_slice(&d6);
    pseudo.extend_from_slice(&[0, 0, 0, n as u8, 0, 0, 0, 6]);
    assert_eq!(sum6, reference(&pseudo, &out[..n]));

    let ip = ipv4_header(&src, &dst, 60);
    assert_eq!(reference(&[], &ip), 0, "a valid header sums to zero");
    let ip6 = ipv6_header(&s6, &d6, 40);
    assert_eq!(
        (ip6[0], ip6[4], ip6[5], ip6[6], ip6[7]),
        (0x60, 0, 40, 6, 64)
    );
}
