//! The cookie SYN-ACK's headers and checksums: pure logic, built in place
//! of the SYN by the XDP program (re-exported by `syncookie`).

use crate::syncookie::{NO_WSCALE, SYNACK_MAX_LEN, SYNACK_WINDOW, TcpOptions, opt};

/// What the SYN-ACK answers.
#[derive(Clone, Copy, Debug)]
pub struct SynAckSpec {
    /// The SYN's ports (its source port becomes our destination port).
    pub syn_src_port: u16,
    pub syn_dst_port: u16,
    /// The SYN's sequence number (the client's ISN).
    pub syn_seq: u32,
    pub cookie: u32,
    /// MSS we advertise.
    pub mss: u16,
    /// Window shift we offer (only if the client offered one).
    pub wscale: u8,
    /// The SYN's options.
    pub client: TcpOptions,
    /// Our TSval (see [`encode_tsval`]).
    pub tsval: u32,
}

/// Writes the SYN-ACK's TCP header (checksum 0) into `out`, zeroing the
/// rest, and returns its length: 40 bytes with timestamps (MSS, SACK_PERM
/// or 2 NOPs, TS, NOP + WS or 4 NOPs), else 24 (MSS only: without
/// timestamps there is nowhere to keep the window shift and SACK).
#[inline(always)]
pub fn write_synack(out: &mut [u8; SYNACK_MAX_LEN], s: &SynAckSpec) -> usize {
    *out = [0; SYNACK_MAX_LEN];
    out[0..2].copy_from_slice(&s.syn_dst_port.to_be_bytes());
    out[2..4].copy_from_slice(&s.syn_src_port.to_be_bytes());
    out[4..8].copy_from_slice(&s.cookie.to_be_bytes());
    out[8..12].copy_from_slice(&s.syn_seq.wrapping_add(1).to_be_bytes());
    out[13] = 0x12; // SYN | ACK
    out[14..16].copy_from_slice(&SYNACK_WINDOW.to_be_bytes());
    out[20] = opt::MSS;
    out[21] = 4;
    out[22..24].copy_from_slice(&s.mss.to_be_bytes());
    if !s.client.ts {
        out[12] = 6 << 4;
        return 24;
    }
    if s.client.sack_ok {
        out[24] = opt::SACK_PERM;
        out[25] = 2;
    } else {
        out[24] = opt::NOP;
        out[25] = opt::NOP;
    }
    out[26] = opt::TIMESTAMP;
    out[27] = 10;
    out[28..32].copy_from_slice(&s.tsval.to_be_bytes());
    out[32..36].copy_from_slice(&s.client.tsval.to_be_bytes());
    out[36] = opt::NOP;
    if s.client.wscale == NO_WSCALE {
        out[37] = opt::NOP;
        out[38] = opt::NOP;
        out[39] = opt::NOP;
    } else {
        out[37] = opt::WSCALE;
        out[38] = 3;
        out[39] = s.wscale;
    }
    out[12] = 10 << 4;
    40
}

/// Adds big-endian 16-bit words of `bytes` (even length) to `acc`.
#[inline(always)]
pub fn sum_words<const N: usize>(mut acc: u32, bytes: &[u8; N]) -> u32 {
    let mut i = 0;
    while i + 1 < N {
        acc += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    acc
}

/// Folds a one's-complement sum and complements it: the checksum field.
#[inline(always)]
pub fn fold(mut acc: u32) -> u16 {
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    !(acc as u16)
}

/// TCP checksum of `tcp` (the first `len` bytes; the rest must be zero)
/// between two IPv4 or IPv6 addresses (`N` = 4 or 16).
#[inline(always)]
pub fn tcp_checksum<const N: usize>(
    src: &[u8; N],
    dst: &[u8; N],
    tcp: &[u8; SYNACK_MAX_LEN],
    len: usize,
) -> u16 {
    let acc = sum_words(0, src);
    let acc = sum_words(acc, dst);
    // Pseudo-header: protocol and length (IPv6 spreads them over 8 bytes
    // with zeros; the sum is the same).
    let acc = acc + u32::from(crate::parse::IPPROTO_TCP) + len as u32;
    fold(sum_words(acc, tcp))
}

/// The SYN-ACK's IPv4 header: addresses swapped from the SYN, TTL 64, DF.
#[inline(always)]
pub fn ipv4_header(src: &[u8; 4], dst: &[u8; 4], total_len: u16) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total_len.to_be_bytes());
    h[6] = 0x40; // DF
    h[8] = 64;
    h[9] = crate::parse::IPPROTO_TCP;
    h[12..16].copy_from_slice(src);
    h[16..20].copy_from_slice(dst);
    let sum = fold(sum_words(0, &h));
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// The SYN-ACK's IPv6 header: hop limit 64, no flow label.
#[inline(always)]
pub fn ipv6_header(src: &[u8; 16], dst: &[u8; 16], payload_len: u16) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&payload_len.to_be_bytes());
    h[6] = crate::parse::IPPROTO_TCP;
    h[7] = 64;
    h[8..24].copy_from_slice(src);
    h[24..40].copy_from_slice(dst);
    h
}
