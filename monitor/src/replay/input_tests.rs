use std::io::{self, Read};

use super::super::link;
use super::super::pcap_write::{PcapNgWriter, PcapWriter};
use super::*;

/// An owned [`Item`], so tests can compare what was delivered.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Frame {
        ts_ns: u64,
        ethernet: Vec<u8>,
        orig_len: u32,
    },
    Skipped {
        ts_ns: u64,
        reason: Skip,
    },
}

fn frame(ts_ns: u64, ethernet: &[u8]) -> Got {
    Got::Frame {
        ts_ns,
        ethernet: ethernet.to_vec(),
        orig_len: ethernet.len() as u32,
    }
}

fn read(bytes: &[u8]) -> (Vec<Got>, FileReport) {
    read_with(bytes, usize::MAX)
}

/// Reads through a source that hands out at most `chunk` bytes per call,
/// as a pipe does.
fn read_with(bytes: &[u8], chunk: usize) -> (Vec<Got>, FileReport) {
    let mut got = Vec::new();
    let report = read_from(Trickle { bytes, chunk }, |item| {
        got.push(match item {
            Item::Frame(f) => Got::Frame {
                ts_ns: f.ts_ns,
                ethernet: f.ethernet.to_vec(),
                orig_len: f.orig_len,
            },
            Item::Skipped { ts_ns, reason } => Got::Skipped { ts_ns, reason },
        });
        ControlFlow::Continue(())
    });
    (got, report)
}

struct Trickle<'a> {
    bytes: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// An Ethernet frame of `len` bytes whose payload bytes all equal `tag`.
fn ethernet(tag: u8, len: usize) -> Vec<u8> {
    let mut frame = [link::SYNTH_DST, link::SYNTH_SRC].concat();
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.resize(len, tag);
    frame
}

fn pcap(linktype: u32, nanos: bool, packets: &[(u64, &[u8])]) -> Vec<u8> {
    let mut writer = PcapWriter::new(Vec::new(), linktype, nanos).unwrap();
    for (ts, data) in packets {
        writer.write(*ts, data).unwrap();
    }
    writer.into_inner().unwrap()
}

fn report(records: u64, frames: u64, skipped: &[(Skip, u64)]) -> FileReport {
    FileReport {
        records,
        frames,
        skipped: skipped.iter().copied().collect(),
        error: None,
    }
}

fn with_error(mut report: FileReport, error: InputError) -> FileReport {
    report.error = Some(error);
    report
}

/// A pcapng block in either byte order, padded, with both lengths.
fn ng_block(big_endian: bool, kind: u32, body: &[u8]) -> Vec<u8> {
    let word = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let padded = body.len().div_ceil(4) * 4;
    let total = (12 + padded) as u32;
    let mut block = [&word(kind)[..], &word(total)].concat();
    block.extend_from_slice(body);
    block.resize(8 + padded, 0);
    block.extend_from_slice(&word(total));
    block
}

const T0: u64 = 1_700_000_000_123_456_789;

#[test]
fn pcap_microseconds_and_nanoseconds() {
    let (a, b) = (ethernet(1, 60), ethernet(2, 1514));
    let packets: [(u64, &[u8]); 2] = [(T0, &a), (T0 + 1_000, &b)];

    let (got, rep) = read(&pcap(1, false, &packets));
    let micro = T0 / 1_000 * 1_000;
    assert_eq!(got, [frame(micro, &a), frame(micro + 1_000, &b)]);
    assert_eq!(rep, report(2, 2, &[]));

    let (got, rep) = read(&pcap(1, true, &packets));
    assert_eq!(got, [frame(T0, &a), frame(T0 + 1_000, &b)]);
    assert_eq!(rep, report(2, 2, &[]));
}

#[test]
fn pcap_orig_len_is_the_wire_length() {
    let mut writer = PcapWriter::new(Vec::new(), 1, true).unwrap();
    writer.write_truncated(T0, &ethernet(3, 64), 1500).unwrap();
    let (got, _) = read(&writer.into_inner().unwrap());
    let expected = Got::Frame {
        ts_ns: T0,
        ethernet: ethernet(3, 64),
        orig_len: 1500,
    };
    assert_eq!(got, [expected]);
}

#[test]
fn pcap_big_endian_both_resolutions() {
    let data = ethernet(4, 20);
    for (magic, sub, ts_ns) in [
        (0xa1b2_c3d4u32, 654_321u32, 1_600_000_000_654_321_000u64),
        (0xa1b2_3c4d, 654_321_987, 1_600_000_000_654_321_987),
    ] {
        let mut file = magic.to_be_bytes().to_vec();
        for field in [
            [0, 2, 0, 4],
            [0; 4],
            [0; 4],
            65535u32.to_be_bytes(),
            1u32.to_be_bytes(),
        ] {
            file.extend_from_slice(&field);
        }
        for field in [1_600_000_000u32, sub, 20, 20] {
            file.extend_from_slice(&field.to_be_bytes());
        }
        file.extend_from_slice(&data);
        let (got, rep) = read(&file);
        assert_eq!(got, [frame(ts_ns, &data)], "magic {magic:#x}");
        assert_eq!(rep, report(1, 1, &[]));
    }
}

#[test]
fn pcap_raw_ip_becomes_ethernet_and_fcs_bits_are_ignored() {
    let ip = [
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    // Bit 28 set: "FCS present" flag above the link type proper.
    let (got, rep) = read(&pcap(0x1000_0000 | 101, true, &[(T0, &ip)]));
    let mut expected = ethernet(0, 14);
    expected.extend_from_slice(&ip);
    let expected = Got::Frame {
        ts_ns: T0,
        ethernet: expected,
        orig_len: 20,
    };
    assert_eq!(got, [expected]);
    assert_eq!(rep, report(1, 1, &[]));
}

#[test]
fn unknown_link_type_and_short_frames_are_counted_skips() {
    let (got, rep) = read(&pcap(147, true, &[(T0, &[0x45; 40]), (T0 + 1, &[0; 3])]));
    let skipped = |ts_ns| Got::Skipped {
        ts_ns,
        reason: Skip::LinkType,
    };
    assert_eq!(got, [skipped(T0), skipped(T0 + 1)]);
    assert_eq!(rep, report(2, 0, &[(Skip::LinkType, 2)]));

    let good = ethernet(5, 14);
    let (got, rep) = read(&pcap(1, true, &[(T0, &[0; 13]), (T0 + 1, &good)]));
    let short = Got::Skipped {
        ts_ns: T0,
        reason: Skip::Short,
    };
    assert_eq!(got, [short, frame(T0 + 1, &good)]);
    assert_eq!(rep, report(2, 1, &[(Skip::Short, 1)]));
    assert_eq!(
        [Skip::LinkType, Skip::NotIp, Skip::Short].map(Skip::name),
        ["link_type", "not_ip", "short"]
    );
}

#[test]
fn pcapng_interfaces_resolutions_simple_packets_and_sections() {
    let (a, b, c, d) = (
        ethernet(1, 60),
        ethernet(2, 61),
        ethernet(3, 62),
        ethernet(4, 63),
    );
    let ip6 = [0x60, 0, 0, 0, 0, 0, 59, 64];
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd];
    sll.extend_from_slice(&ip6);
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let eth_ns = w.add_interface(link::ETHERNET, Some(9)).unwrap();
    let raw_2_10 = w.add_interface(link::RAW, Some(0x80 | 10)).unwrap();
    let sll_us = w
        .add_interface_with_offset(link::LINUX_SLL, None, 100)
        .unwrap();
    assert_eq!((eth_ns, raw_2_10, sll_us), (0, 1, 2));
    w.write(eth_ns, T0, &a).unwrap();
    // Half a second is exactly 512 ticks of 2^-10 s.
    w.write(raw_2_10, 1_700_000_001_500_000_000, &ip6).unwrap();
    w.write(sll_us, 1_700_000_002_000_001_000, &sll).unwrap();
    w.write_simple(&b).unwrap();
    w.new_section().unwrap();
    let eth_us = w.add_interface(link::ETHERNET, None).unwrap();
    assert_eq!(eth_us, 0);
    w.write(eth_us, 1_800_000_000_000_002_999, &c).unwrap();
    w.write_simple(&d).unwrap();
    let (got, rep) = read(&w.into_inner().unwrap());

    let mut ip6_frame = ethernet(0, 14);
    ip6_frame[12..14].copy_from_slice(&[0x86, 0xdd]);
    ip6_frame.extend_from_slice(&ip6);
    let converted = |ts_ns, orig_len: usize| Got::Frame {
        ts_ns,
        ethernet: ip6_frame.clone(),
        orig_len: orig_len as u32,
    };
    assert_eq!(
        got,
        [
            frame(T0, &a),
            converted(1_700_000_001_500_000_000, ip6.len()),
            converted(1_700_000_002_000_001_000, sll.len()),
            frame(1_700_000_002_000_001_000, &b),
            frame(1_800_000_000_000_002_000, &c),
            frame(1_800_000_000_000_002_000, &d),
        ]
    );
    assert_eq!(rep, report(6, 6, &[]));
}

#[test]
fn pcapng_binary_resolution_keeps_sub_tick_fractions() {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let id = w.add_interface(link::ETHERNET, Some(0x80 | 10)).unwrap();
    let data = ethernet(1, 14);
    // 1 tick = 976_562.5 ns; 3 ticks = 2_929_687.5 ns, rounded down.
    w.write(id, 1_000_000_000 + 2_929_688, &data).unwrap();
    let (got, _) = read(&w.into_inner().unwrap());
    assert_eq!(got, [frame(1_002_929_687, &data)]);
}

#[test]
fn pcapng_big_endian_with_tsoffset_and_obsolete_packet_block() {
    let data = ethernet(7, 20);
    let mut shb = vec![0x1a, 0x2b, 0x3c, 0x4d, 0, 1, 0, 0];
    shb.extend_from_slice(&(-1i64).to_be_bytes());
    let mut idb = [&1u16.to_be_bytes()[..], &[0, 0], &65535u32.to_be_bytes()].concat();
    idb.extend_from_slice(&[0, 14, 0, 8]);
    idb.extend_from_slice(&1_000i64.to_be_bytes());
    idb.extend_from_slice(&[0; 4]);
    let ticks: u64 = 1_600_000_000_000_007;
    let mut epb = [0u32, (ticks >> 32) as u32, ticks as u32, 20, 20]
        .map(u32::to_be_bytes)
        .concat();
    epb.extend_from_slice(&data);
    let mut obsolete = vec![0, 0, 0, 3];
    for field in [(ticks >> 32) as u32, ticks as u32 + 1, 20, 1500] {
        obsolete.extend_from_slice(&field.to_be_bytes());
    }
    obsolete.extend_from_slice(&data);
    let file = [
        ng_block(true, 0x0a0d_0d0a, &shb),
        ng_block(true, 1, &idb),
        ng_block(true, 6, &epb),
        ng_block(true, 2, &obsolete),
    ]
    .concat();
    let (got, rep) = read(&file);
    let ts = 1_600_001_000_000_007_000;
    let from_obsolete = Got::Frame {
        ts_ns: ts + 1_000,
        ethernet: data.clone(),
        orig_len: 1500,
    };
    assert_eq!(got, [frame(ts, &data), from_obsolete]);
    assert_eq!(rep, report(2, 2, &[]));
}

#[test]
fn pcapng_packet_for_an_undescribed_interface_is_corrupt() {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.add_interface(link::ETHERNET, None).unwrap();
    w.add_interface(link::ETHERNET, None).unwrap();
    w.write(1, T0, &ethernet(1, 14)).unwrap();
    w.new_section().unwrap();
    w.add_interface(link::ETHERNET, None).unwrap();
    let mut file = w.into_inner().unwrap();
    let offset = file.len() as u64;
    let mut epb = [1u32, 0, 0, 14, 14].map(u32::to_le_bytes).concat();
    epb.extend_from_slice(&ethernet(2, 14));
    file.extend_from_slice(&ng_block(false, 6, &epb));
    let (got, rep) = read(&file);
    assert_eq!(got.len(), 1);
    let error = InputError::Corrupt {
        offset,
        detail: "packet of interface 1, but the section describes 1 interfaces".into(),
    };
    assert_eq!(rep, with_error(report(1, 1, &[]), error));
}

#[path = "input_errors_tests.rs"]
mod errors;
