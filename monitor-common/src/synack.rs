//! The cookie SYN-ACK's headers and checksums: pure logic, which the XDP
//! program runs on the SYN's own frame, writing the answer over it
//! (re-exported by `syncookie`).

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

/// First part of the SYN-ACK: the fixed header and the MSS option.
pub const SYNACK_HEAD_LEN: usize = 24;
/// Second part, only with timestamps: SACK_PERM or 2 NOPs, TS, NOP + WS
/// or 4 NOPs.
pub const SYNACK_TS_LEN: usize = SYNACK_MAX_LEN - SYNACK_HEAD_LEN;

/// The SYN-ACK's TCP header length: 40 bytes with timestamps, else 24
/// (MSS only: without timestamps there is nowhere to keep the window
/// shift and SACK).
#[inline(always)]
pub fn synack_len(s: &SynAckSpec) -> usize {
    if s.client.ts {
        SYNACK_MAX_LEN
    } else {
        SYNACK_HEAD_LEN
    }
}

/// Writes the SYN-ACK's first [`SYNACK_HEAD_LEN`] bytes (checksum 0),
/// with the data offset of [`synack_len`]. In two parts so that the XDP
/// program can write them straight into a frame that holds only 24 bytes
/// of TCP header when that is all the answer needs.
#[inline(always)]
pub fn write_synack_head(out: &mut [u8; SYNACK_HEAD_LEN], s: &SynAckSpec) {
    out[0..2].copy_from_slice(&s.syn_dst_port.to_be_bytes());
    out[2..4].copy_from_slice(&s.syn_src_port.to_be_bytes());
    out[4..8].copy_from_slice(&s.cookie.to_be_bytes());
    out[8..12].copy_from_slice(&s.syn_seq.wrapping_add(1).to_be_bytes());
    out[12] = ((synack_len(s) / 4) as u8) << 4;
    out[13] = 0x12; // SYN | ACK
    out[14..16].copy_from_slice(&SYNACK_WINDOW.to_be_bytes());
    out[16..20].copy_from_slice(&[0; 4]); // checksum, urgent pointer
    out[20] = opt::MSS;
    out[21] = 4;
    out[22..24].copy_from_slice(&s.mss.to_be_bytes());
}

/// Writes the timestamp part of a SYN-ACK that has one (`s.client.ts`).
#[inline(always)]
pub fn write_synack_ts(out: &mut [u8; SYNACK_TS_LEN], s: &SynAckSpec) {
    if s.client.sack_ok {
        out[0] = opt::SACK_PERM;
        out[1] = 2;
    } else {
        out[0] = opt::NOP;
        out[1] = opt::NOP;
    }
    out[2] = opt::TIMESTAMP;
    out[3] = 10;
    out[4..8].copy_from_slice(&s.tsval.to_be_bytes());
    out[8..12].copy_from_slice(&s.client.tsval.to_be_bytes());
    out[12] = opt::NOP;
    if s.client.wscale == NO_WSCALE {
        out[13] = opt::NOP;
        out[14] = opt::NOP;
        out[15] = opt::NOP;
    } else {
        out[13] = opt::WSCALE;
        out[14] = 3;
        out[15] = s.wscale;
    }
}

/// Writes the whole SYN-ACK TCP header (checksum 0) into `out`, zeroing
/// the rest, and returns its length ([`synack_len`]).
#[inline(always)]
pub fn write_synack(out: &mut [u8; SYNACK_MAX_LEN], s: &SynAckSpec) -> usize {
    let mut head = [0; SYNACK_HEAD_LEN];
    let mut ts = [0; SYNACK_TS_LEN];
    write_synack_head(&mut head, s);
    if s.client.ts {
        write_synack_ts(&mut ts, s);
    }
    out[..SYNACK_HEAD_LEN].copy_from_slice(&head);
    out[SYNACK_HEAD_LEN..].copy_from_slice(&ts);
    synack_len(s)
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

/// TCP checksum of a SYN-ACK written by [`write_synack_head`] and, with
/// timestamps, [`write_synack_ts`], between two IPv4 or IPv6 addresses
/// (`N` = 4 or 16).
#[inline(always)]
pub fn synack_checksum<const N: usize>(
    src: &[u8; N],
    dst: &[u8; N],
    head: &[u8; SYNACK_HEAD_LEN],
    ts: Option<&[u8; SYNACK_TS_LEN]>,
) -> u16 {
    let len = SYNACK_HEAD_LEN + ts.map_or(0, |t| t.len());
    let acc = sum_words(0, src);
    let acc = sum_words(acc, dst);
    // Pseudo-header: protocol and length (IPv6 spreads them over 8 bytes
    // with zeros; the sum is the same).
    let acc = acc + u32::from(crate::parse::IPPROTO_TCP) + len as u32;
    let acc = sum_words(acc, head);
    fold(match ts {
        Some(ts) => sum_words(acc, ts),
        None => acc,
    })
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

/// Turns the SYN's IPv4 header (no options) into the SYN-ACK's where it
/// lies: [`ipv4_header`] from its swapped addresses.
#[inline(always)]
pub fn ipv4_reply(h: &mut [u8; 20], total_len: u16) {
    let src = [h[12], h[13], h[14], h[15]];
    let dst = [h[16], h[17], h[18], h[19]];
    *h = ipv4_header(&dst, &src, total_len);
}

/// Turns the SYN's IPv6 header (no extension headers) into the
/// SYN-ACK's where it lies: [`ipv6_header`] from its swapped addresses.
#[inline(always)]
pub fn ipv6_reply(h: &mut [u8; 40], payload_len: u16) {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    *h = ipv6_header(&dst, &src, payload_len);
}
