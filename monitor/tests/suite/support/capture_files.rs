//! Captures built in memory for the replay tests: a TCP exchange as
//! timestamped Ethernet frames, the other link layers made from them, the
//! pcap and pcapng files that hold them.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use monitor::replay::{
    link,
    pcap_write::{PcapNgWriter, PcapWriter},
};
use monitor_common::{
    classify::tcp_flags::{ACK, FIN, PSH, SYN},
    frames::{CLIENT_V4, CLIENT_V6, Ip, SERVER_V4, SERVER_V6, TcpFrame},
};

/// 2026-03-01T12:00:00Z: capture times far from the test's own clock, so
/// a time taken from the wrong clock shows.
pub const BASE_NS: u64 = 1_772_366_400 * NS_PER_SEC;
pub const NS_PER_SEC: u64 = 1_000_000_000;
pub const NS_PER_MS: u64 = 1_000_000;
pub const CLIENT_PORT: u16 = 40_000;
pub const SERVER_PORT: u16 = 443;
pub const CLIENT_ISN: u32 = 1_000_000;
pub const SERVER_ISN: u32 = 5_000_000;
/// Plain text on port 443: the TLS capture finds no hello in it.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n";
/// The link type pcap reserves for private use: no Ethernet equivalent.
pub const USER0: u16 = 147;

/// One captured frame: capture time (ns since the epoch), Ethernet bytes.
pub type Frame = (u64, Vec<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// (client, server) addresses.
    pub fn addrs(self) -> (IpAddr, IpAddr) {
        match self {
            Family::V4 => (CLIENT_V4.into(), SERVER_V4.into()),
            Family::V6 => (CLIENT_V6.into(), SERVER_V6.into()),
        }
    }
}

/// A segment between the client (`client_port`) and the server (443).
pub fn segment(family: Family, to_server: bool, client_port: u16, flags: u8) -> TcpFrame {
    let mut f = match family {
        Family::V4 => TcpFrame::v4(flags),
        Family::V6 => TcpFrame::v6(flags),
    };
    (f.src_port, f.dst_port) = (client_port, SERVER_PORT);
    if !to_server {
        (f.src_port, f.dst_port) = (SERVER_PORT, client_port);
        match &mut f.ip {
            Ip::V4 { src, dst, .. } => std::mem::swap(src, dst),
            Ip::V6 { src, dst, .. } => std::mem::swap(src, dst),
        }
    }
    f
}

/// A SYN to the server from any IPv4 source.
pub fn syn_from(src: [u8; 4], src_port: u16, isn: u32) -> Vec<u8> {
    let mut f = segment(Family::V4, true, src_port, SYN).with_syn_options();
    if let Ip::V4 { src: from, .. } = &mut f.ip {
        *from = src;
    }
    f.seq = isn;
    f.build()
}

/// One complete server-side exchange, 1 ms between frames from
/// `start_ns`: SYN in, SYN-ACK out, ACK in, a request, the client's
/// FIN/ACK, the server's FIN/ACK, the client's final ACK.
pub fn exchange_on(family: Family, vlans: &[u16], client_port: u16, start_ns: u64) -> Vec<Frame> {
    let (x, y, len) = (CLIENT_ISN, SERVER_ISN, REQUEST.len() as u32);
    let steps = [
        (true, SYN, x, 0),
        (false, SYN | ACK, y, x + 1),
        (true, ACK, x + 1, y + 1),
        (true, PSH | ACK, x + 1, y + 1),
        (true, FIN | ACK, x + 1 + len, y + 1),
        (false, FIN | ACK, y + 1, x + 2 + len),
        (true, ACK, x + 2 + len, y + 2),
    ];
    let frames = steps.iter().map(|&(to_server, flags, seq, ack)| {
        let mut f = segment(family, to_server, client_port, flags).with_vlans(vlans);
        (f.seq, f.ack) = (seq, ack);
        if flags & SYN != 0 {
            f = f.with_syn_options();
        }
        if flags & PSH != 0 {
            f = f.with_payload(REQUEST);
        }
        f.build()
    });
    (0..)
        .map(|i| start_ns + i * NS_PER_MS)
        .zip(frames)
        .collect()
}

/// [`exchange_on`] over IPv4, untagged, from port 40000 at [`BASE_NS`].
pub fn exchange() -> Vec<Frame> {
    exchange_on(Family::V4, &[], CLIENT_PORT, BASE_NS)
}

/// An untagged Ethernet frame as `linktype` would have captured it.
pub fn to_link(linktype: u16, eth: &[u8]) -> Vec<u8> {
    let ethertype = [eth[12], eth[13]];
    let v4 = ethertype == [0x08, 0x00];
    // Cooked captures say "sent by us" (4) or "to us" (0).
    let outgoing = if v4 {
        eth[26..30] == SERVER_V4
    } else {
        eth[22..38] == SERVER_V6
    };
    let packet_type = if outgoing { 4u8 } else { 0 };
    let family: u32 = if v4 { 2 } else { 10 };
    let mut out = match linktype {
        link::ETHERNET => return eth.to_vec(),
        // Packet type, ARPHRD_ETHER, address length, the sender's MAC
        // padded to 8 bytes, protocol.
        link::LINUX_SLL => [
            &[0, packet_type, 0, 1, 0, 6],
            &eth[6..12],
            &[0, 0],
            &ethertype,
        ]
        .concat(),
        // Protocol, reserved, ifindex, ARPHRD_ETHER, packet type, address
        // length, address.
        link::LINUX_SLL2 => [
            &ethertype[..],
            &[0, 0, 0, 0, 0, 2, 0, 1, packet_type, 6],
            &eth[6..12],
            &[0, 0],
        ]
        .concat(),
        link::NULL => family.to_ne_bytes().to_vec(),
        link::LOOP => family.to_be_bytes().to_vec(),
        link::RAW | link::DLT_RAW | link::IPV4 | link::IPV6 => Vec::new(),
        other => panic!("no conversion to link type {other}"),
    };
    out.extend_from_slice(&eth[14..]);
    out
}

/// A microsecond pcap file of `frames` as `linktype` (USER0: the
/// Ethernet bytes as they are).
pub fn pcap(linktype: u16, frames: &[Frame]) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), u32::from(linktype), false).expect("pcap header");
    for (ts, eth) in frames {
        let data = match linktype {
            USER0 => eth.clone(),
            _ => to_link(linktype, eth),
        };
        w.write(*ts, &data).expect("pcap record");
    }
    w.into_inner().expect("pcap bytes")
}

/// A pcapng file of `frames` as `linktype`, nanosecond timestamps.
pub fn pcapng(linktype: u16, frames: &[Frame]) -> Vec<u8> {
    let mut w = PcapNgWriter::new(Vec::new()).expect("pcapng header");
    let id = w.add_interface(linktype, Some(9)).expect("interface");
    for (ts, eth) in frames {
        w.write(id, *ts, &to_link(linktype, eth))
            .expect("pcapng block");
    }
    w.into_inner().expect("pcapng bytes")
}

/// Writes `bytes` to `dir/name`; returns the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// `count` exchanges from [`BASE_NS`], one every `gap_ns`, from client
/// ports 20000 on.
pub fn exchanges(count: u16, gap_ns: u64) -> Vec<Frame> {
    let start = |i: u16| BASE_NS + u64::from(i) * gap_ns;
    let each = |i| exchange_on(Family::V4, &[], 20_000 + i, start(i));
    (0..count).flat_map(each).collect()
}

/// `seconds` of service, `per_sec` exchanges a second, then `flood_secs`
/// of `flood_rate` unanswered SYNs a second from spoofed sources
/// (xorshift: the same ones every run, none in 198.18.0.0/15).
pub fn flood_capture(seconds: u64, per_sec: u64, flood_secs: u64, flood_rate: u64) -> Vec<Frame> {
    let mut frames = exchanges((seconds * per_sec) as u16, NS_PER_SEC / per_sec);
    let flood_start = BASE_NS + seconds * NS_PER_SEC;
    let mut state = 0x2545_f491u32;
    for i in 0..flood_secs * flood_rate {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, d] = state.to_be_bytes();
        let ts = flood_start + i * NS_PER_SEC / flood_rate;
        let port = 1_024 + (i % 60_000) as u16;
        frames.push((ts, syn_from([10 + a % 150, b, c, d | 1], port, i as u32)));
    }
    frames
}

/// An exchange, ten unanswered SYNs from 198.18.5.0/24 at 3 s (more than
/// a sweep reports one by one), and a lone SYN from 198.18.6.1 at
/// 9.123456 s with nothing after it.
pub fn timeouts_capture() -> Vec<Frame> {
    let mut frames = exchange();
    for i in 0..10u8 {
        let ts = BASE_NS + 3 * NS_PER_SEC + u64::from(i) * NS_PER_MS;
        frames.push((ts, syn_from([198, 18, 5, 1 + i], 50_000, 7)));
    }
    let lone = syn_from([198, 18, 6, 1], 50_001, 9);
    frames.push((BASE_NS + 9_123_456_000, lone));
    frames
}

/// 1000 SYNs from 198.18.7.7, 1 µs apart.
pub fn one_source_syns() -> Vec<Frame> {
    (0..1_000u16)
        .map(|i| {
            let syn = syn_from([198, 18, 7, 7], 10_000 + i, u32::from(i));
            (BASE_NS + u64::from(i) * 1_000, syn)
        })
        .collect()
}
