//! Frame builders for tests: well-formed Ethernet frames with correct
//! lengths and checksums, and knobs to make them hostile.
//!
//! Addresses come from the benchmarking ranges (198.18.0.0/15,
//! 2001:2::/48) so nothing built here can name a real host.

use alloc::vec::Vec;

use crate::parse::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, IPPROTO_TCP};

pub const CLIENT_V4: [u8; 4] = [198, 18, 0, 1];
pub const SERVER_V4: [u8; 4] = [198, 18, 0, 2];
pub const CLIENT_V6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const SERVER_V6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const IPPROTO_UDP: u8 = 17;

/// IP layer of a built frame.
#[derive(Clone, Debug)]
pub enum Ip {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        /// Raw option bytes; padded with End-of-Options to a multiple of 4.
        options: Vec<u8>,
        /// Sets the more-fragments flag.
        more_fragments: bool,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        /// Extension headers in order: (header type, body after the
        /// next-header/length bytes). Bodies are padded to the header's unit.
        ext: Vec<(u8, Vec<u8>)>,
    },
}

impl Ip {
    pub fn v4() -> Self {
        Self::V4 {
            src: CLIENT_V4,
            dst: SERVER_V4,
            options: Vec::new(),
            more_fragments: false,
        }
    }

    pub fn v6() -> Self {
        Self::V6 {
            src: CLIENT_V6,
            dst: SERVER_V6,
            ext: Vec::new(),
        }
    }
}

/// A TCP segment in an Ethernet frame.
#[derive(Clone, Debug)]
pub struct TcpFrame {
    /// VLAN tag protocol identifiers, outermost first.
    pub vlans: Vec<u16>,
    pub ip: Ip,
    /// Overrides the IP protocol / final next header (to build non-TCP).
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Raw option bytes; padded with End-of-Options to a multiple of 4.
    pub tcp_options: Vec<u8>,
    pub payload: Vec<u8>,
}

impl TcpFrame {
    pub fn new(ip: Ip, flags: u8) -> Self {
        Self {
            vlans: Vec::new(),
            ip,
            protocol: IPPROTO_TCP,
            src_port: 40000,
            dst_port: 443,
            seq: 1_000_000,
            ack: 0,
            flags,
            window: 64240,
            tcp_options: Vec::new(),
            payload: Vec::new(),
        }
    }

    pub fn v4(flags: u8) -> Self {
        Self::new(Ip::v4(), flags)
    }

    /// An IPv4 segment `src:ports.0 -> dst:ports.1` with its sequence and
    /// acknowledgement numbers.
    pub fn v4_segment(
        src: [u8; 4],
        dst: [u8; 4],
        ports: (u16, u16),
        flags: u8,
        seq: u32,
        ack: u32,
    ) -> Self {
        let ip = Ip::V4 {
            src,
            dst,
            options: Vec::new(),
            more_fragments: false,
        };
        Self {
            src_port: ports.0,
            dst_port: ports.1,
            seq,
            ack,
            ..Self::new(ip, flags)
        }
    }

    pub fn v6(flags: u8) -> Self {
        Self::new(Ip::v6(), flags)
    }

    pub fn with_vlans(mut self, tpids: &[u16]) -> Self {
        self.vlans = tpids.to_vec();
        self
    }

    pub fn with_payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// A SYN's usual options: MSS 1460, SACK permitted, timestamps, NOP,
    /// window scale 7 (20 bytes, as Linux sends them).
    pub fn with_syn_options(mut self) -> Self {
        self.tcp_options = alloc::vec![
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7
        ];
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let transport = self.transport();
        let mut frame = Vec::with_capacity(transport.len() + 80);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        for tpid in &self.vlans {
            frame.extend_from_slice(&tpid.to_be_bytes());
            frame.extend_from_slice(&100u16.to_be_bytes());
        }
        match &self.ip {
            Ip::V4 {
                src,
                dst,
                options,
                more_fragments,
            } => {
                frame.extend_from_slice(&ETH_P_IPV4.to_be_bytes());
                let header = ipv4_header(
                    *src,
                    *dst,
                    options,
                    *more_fragments,
                    self.protocol,
                    transport.len(),
                );
                frame.extend_from_slice(&header);
            }
            Ip::V6 { src, dst, ext } => {
                frame.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
                let chain = ipv6_ext_chain(ext, self.protocol);
                let first = ext.first().map_or(self.protocol, |(kind, _)| *kind);
                frame.extend_from_slice(&[0x60, 0, 0, 0]);
                let payload_len = (chain.len() + transport.len()) as u16;
                frame.extend_from_slice(&payload_len.to_be_bytes());
                frame.extend_from_slice(&[first, 64]);
                frame.extend_from_slice(src);
                frame.extend_from_slice(dst);
                frame.extend_from_slice(&chain);
            }
        }
        frame.extend_from_slice(&transport);
        frame
    }

    fn transport(&self) -> Vec<u8> {
        if self.protocol != IPPROTO_TCP {
            return udp_datagram(self.src_port, self.dst_port, &self.payload);
        }
        let options = pad(&self.tcp_options, 4);
        let header_len = 20 + options.len();
        let mut seg = Vec::with_capacity(header_len + self.payload.len());
        seg.extend_from_slice(&self.src_port.to_be_bytes());
        seg.extend_from_slice(&self.dst_port.to_be_bytes());
        seg.extend_from_slice(&self.seq.to_be_bytes());
        seg.extend_from_slice(&self.ack.to_be_bytes());
        seg.push(((header_len / 4) as u8) << 4);
        seg.push(self.flags);
        seg.extend_from_slice(&self.window.to_be_bytes());
        seg.extend_from_slice(&[0, 0, 0, 0]);
        seg.extend_from_slice(&options);
        seg.extend_from_slice(&self.payload);
        let csum = self.pseudo_header_checksum(&seg);
        seg[16..18].copy_from_slice(&csum.to_be_bytes());
        seg
    }

    fn pseudo_header_checksum(&self, segment: &[u8]) -> u16 {
        let mut pseudo = Vec::new();
        match &self.ip {
            Ip::V4 { src, dst, .. } => {
                pseudo.extend_from_slice(src);
                pseudo.extend_from_slice(dst);
                pseudo.extend_from_slice(&[0, IPPROTO_TCP]);
                pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
            }
            Ip::V6 { src, dst, .. } => {
                pseudo.extend_from_slice(src);
                pseudo.extend_from_slice(dst);
                pseudo.extend_from_slice(&(segment.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_TCP]);
            }
        }
        pseudo.extend_from_slice(segment);
        internet_checksum(&pseudo)
    }
}

fn ipv4_header(
    src: [u8; 4],
    dst: [u8; 4],
    options: &[u8],
    more_fragments: bool,
    protocol: u8,
    transport_len: usize,
) -> Vec<u8> {
    let options = pad(options, 4);
    let header_len = 20 + options.len();
    let total_len = (header_len + transport_len) as u16;
    let flags_frag: u16 = if more_fragments { 0x2000 } else { 0x4000 };
    let mut h = Vec::with_capacity(header_len);
    h.push(0x40 | (header_len / 4) as u8);
    h.push(0);
    h.extend_from_slice(&total_len.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&flags_frag.to_be_bytes());
    h.extend_from_slice(&[64, protocol, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&options);
    let csum = internet_checksum(&h);
    h[10..12].copy_from_slice(&csum.to_be_bytes());
    h
}

/// Serialises extension headers, each pointing at the next; the last
/// points at `upper`.
fn ipv6_ext_chain(ext: &[(u8, Vec<u8>)], upper: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (kind, body)) in ext.iter().enumerate() {
        let next = ext.get(i + 1).map_or(upper, |(k, _)| *k);
        let mut header = alloc::vec![next, 0];
        header.extend_from_slice(body);
        if *kind == 51 {
            let header = pad(&header, 4);
            let units = (header.len() / 4).max(2) - 2;
            let mut header = header;
            header[1] = units as u8;
            out.extend_from_slice(&header);
        } else {
            let mut header = pad(&header, 8);
            header[1] = (header.len() / 8 - 1) as u8;
            out.extend_from_slice(&header);
        }
    }
    out
}

fn udp_datagram(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&src_port.to_be_bytes());
    d.extend_from_slice(&dst_port.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    d
}

/// A UDP datagram over IPv4 (`protocol` overridden on a TCP frame).
pub fn udp_v4() -> Vec<u8> {
    let mut f = TcpFrame::v4(0).with_payload(b"dns?");
    f.protocol = IPPROTO_UDP;
    f.build()
}

/// An ARP request: not IP at all.
pub fn arp_request() -> Vec<u8> {
    let mut frame = alloc::vec![0xff; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame.extend_from_slice(&[0x08, 0x06]);
    frame.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame.extend_from_slice(&CLIENT_V4);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&SERVER_V4);
    frame
}

/// The tag protocol identifiers of single and QinQ stacks.
pub const DOT1Q: u16 = ETH_P_8021Q;
pub const DOT1AD: u16 = ETH_P_8021AD;

fn pad(bytes: &[u8], unit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    while !out.len().is_multiple_of(unit) {
        out.push(0);
    }
    out
}

/// RFC 1071 one's-complement sum.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let word = match chunk {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
