//! Fuzz entry point of the packet parser, shared by the cargo-fuzz target
//! `parse_tcp` (`monitor-common/fuzz`) and by a unit test that replays its
//! seed corpus, so `cargo test` runs what the fuzzer runs.
//!
//! Takes a frame of arbitrary bytes, runs the parser, the classifier and
//! the field readers on it, and asserts what the kernel programs rely on:
//! every offset lies within the frame, the payload length agrees with the
//! IP length fields and the frame, no header is accepted in part, and
//! Ethernet padding after an IP packet that states its length changes
//! nothing. A panic here is a finding.
#![doc(hidden)]

use core::hint::black_box;

use super::{
    ETH_HEADER_LEN, MAX_HEADER_OFFSET, PacketView, SkipReason, TcpPacket, parse_tcp, read_fields,
};
use crate::classify::classify;

/// A frame followed by `extra` zero bytes (Ethernet padding), without
/// copying it.
struct Padded<'a> {
    data: &'a [u8],
    extra: usize,
}

impl PacketView for Padded<'_> {
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let end = offset.checked_add(N)?;
        if end > self.data.len() + self.extra {
            return None;
        }
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.data.get(offset + i).copied().unwrap_or(0);
        }
        Some(out)
    }

    fn frame_len(&self) -> usize {
        self.data.len() + self.extra
    }
}

fn be16(data: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([data[at], data[at + 1]]))
}

/// Parses `data` as a frame and checks every invariant of the result.
pub fn frame(data: &[u8]) -> Result<TcpPacket, SkipReason> {
    let result = parse_tcp(data);
    let Ok(p) = result else {
        return result;
    };
    let (l3, l4, payload) = (
        usize::from(p.l3_offset),
        usize::from(p.l4_offset),
        usize::from(p.payload_offset),
    );
    let payload_len = p.payload_len as usize;

    // Offsets: Ethernet and at most two tags, then IP, TCP, payload, all
    // inside the frame and inside the window the verifier allows.
    assert!(
        [ETH_HEADER_LEN, ETH_HEADER_LEN + 4, ETH_HEADER_LEN + 8].contains(&l3),
        "{p:?}"
    );
    let min_ip = if p.ip_version == 4 { 20 } else { 40 };
    assert!(p.ip_version == 4 || p.ip_version == 6, "{p:?}");
    assert!(l4 >= l3 + min_ip, "{p:?}");
    assert!(l4 <= MAX_HEADER_OFFSET + 1, "{p:?}");
    let tcp_header = payload - l4;
    assert!(
        (20..=60).contains(&tcp_header) && tcp_header % 4 == 0,
        "{p:?}"
    );
    assert!(payload <= data.len(), "{p:?} in {} bytes", data.len());
    assert!(payload + payload_len <= data.len(), "{p:?}");
    assert_eq!(p.flags, data[l4 + 13]);
    assert_eq!(usize::from(data[l4 + 12] >> 4) * 4, tcp_header);

    // The IP header is what it claims and the payload length is the one
    // its length field gives, or the rest of the frame when that is 0.
    assert_eq!(data[l3] >> 4, p.ip_version);
    let stated = if p.ip_version == 4 {
        assert_eq!(usize::from(data[l3] & 0x0f) * 4, l4 - l3);
        assert_eq!(data[l3 + 9], crate::parse::IPPROTO_TCP);
        assert_eq!(be16(data, l3 + 6) & 0x3fff, 0, "fragment accepted");
        be16(data, l3 + 2).checked_sub(payload - l3)
    } else {
        (be16(data, l3 + 4) + 40).checked_sub(payload - l3)
    };
    let length_field = if p.ip_version == 4 {
        be16(data, l3 + 2)
    } else {
        be16(data, l3 + 4)
    };
    if length_field == 0 {
        assert_eq!(payload_len, data.len() - payload);
    } else {
        assert_eq!(Some(payload_len), stated, "{p:?}");
    }

    // No header is accepted in part: every shorter frame that cuts into
    // the headers is refused.
    for n in 0..payload {
        assert!(parse_tcp(&data[..n]).is_err(), "accepted {n} of {p:?}");
    }
    // Padding after a packet that states its length is not payload.
    if length_field != 0 {
        let padded = Padded { data, extra: 6 };
        assert_eq!(parse_tcp(&padded), Ok(p));
    }

    // The one reader of the fields (the cookies, the mitigation and the
    // flow tables all use it) agrees with the bytes.
    let fields = read_fields(data, &p).expect("fields of an accepted frame");
    let l3 = usize::from(p.l3_offset);
    let src = if p.ip_version == 4 {
        &data[l3 + 12..l3 + 16]
    } else {
        &data[l3 + 8..l3 + 24]
    };
    assert_eq!(&fields.src_addr[..src.len()], src);
    assert_eq!(fields.src_port, be16(data, l4) as u16);
    assert_eq!(fields.dst_port, be16(data, l4 + 2) as u16);
    black_box(classify(p.flags, p.payload_len));
    Ok(p)
}

#[cfg(test)]
mod tests {
    use alloc::{vec, vec::Vec};
    use std::path::PathBuf;

    use super::*;
    use crate::classify::tcp_flags::{ACK, PSH, SYN};
    use crate::frames::{DOT1AD, DOT1Q, Ip, TcpFrame, arp_request, udp_v4};

    pub(crate) fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read(p).expect("corpus file"))
            .collect()
    }

    /// The frames the seed corpus was made from.
    pub(crate) fn seeds() -> Vec<(&'static str, Vec<u8>)> {
        let mut v4_options = TcpFrame::v4(ACK | PSH).with_payload(b"GET / HTTP/1.1\r\n\r\n");
        if let Ip::V4 { options, .. } = &mut v4_options.ip {
            *options = vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        }
        let mut v6_ext = TcpFrame::v6(SYN).with_syn_options();
        if let Ip::V6 { ext, .. } = &mut v6_ext.ip {
            ext.push((0, vec![1, 4, 0, 0, 0, 0]));
            ext.push((43, vec![0; 22]));
            ext.push((51, vec![0; 10]));
            ext.push((60, vec![1, 4, 0, 0, 0, 0]));
        }
        let mut tso = TcpFrame::v4(ACK).with_payload(&[0x16; 40]).build();
        tso[16..18].copy_from_slice(&[0, 0]);
        vec![
            ("ipv4_syn", TcpFrame::v4(SYN).with_syn_options().build()),
            ("ipv4_options_data", v4_options.build()),
            ("ipv6_ext_chain", v6_ext.build()),
            (
                "qinq_ipv6_synack",
                TcpFrame::v6(SYN | ACK).with_vlans(&[DOT1AD, DOT1Q]).build(),
            ),
            ("ipv4_zero_total_len", tso),
            ("udp", udp_v4()),
            ("arp", arp_request()),
        ]
    }

    #[test]
    fn parse_tcp_corpus() {
        let files = corpus("parse_tcp");
        assert!(!files.is_empty());
        for data in &files {
            let _ = frame(data);
        }
        for (name, seed) in seeds() {
            assert!(files.contains(&seed), "{name} missing from the corpus");
        }
    }

    /// The fuzz checks hold on every prefix of every seed, with every
    /// single byte of its headers flipped.
    #[test]
    fn fuzz_invariants_on_prefixes_and_flipped_bytes() {
        for (_, seed) in seeds() {
            for n in 0..=seed.len() {
                let _ = frame(&seed[..n]);
            }
            for i in 0..seed.len().min(120) {
                for flip in [0x01, 0x10, 0x80, 0xff] {
                    let mut m = seed.clone();
                    m[i] ^= flip;
                    let _ = frame(&m);
                }
            }
        }
        assert!(frame(&seeds()[0].1).is_ok());
    }

    /// Writes the seeds into the corpus (run by hand after changing them:
    /// `cargo test -p monitor-common write_parse_seeds -- --ignored`).
    #[test]
    #[ignore]
    fn write_parse_seeds() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse_tcp");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, seed) in seeds() {
            std::fs::write(dir.join(alloc::format!("{name}.bin")), seed).unwrap();
        }
    }
}
