//! SYN cookies, XDP half: SYNs to a port in cookie mode are answered here
//! with a SYN-ACK whose sequence number is the kernel's SYN cookie
//! (`bpf_tcp_raw_gen_syncookie_ipv4/6`), sent back out of the interface
//! with XDP_TX; the stack never sees them. The SYN is read and its answer
//! written in place, through packet pointers (no copies). The ACK half is
//! in `syncookie_tc.rs`. Header building and checksums are pure logic in
//! `monitor_common::syncookie`.

use aya_ebpf::{
    bindings::{iphdr, ipv6hdr, tcphdr},
    helpers::generated::{
        bpf_ktime_get_ns, bpf_tcp_raw_gen_syncookie_ipv4, bpf_tcp_raw_gen_syncookie_ipv6,
        bpf_xdp_adjust_tail,
    },
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};
use monitor_common::{
    iface::MAX_INTERFACES,
    parse::PacketView,
    syncookie::{
        CookieEvent, PortState, SYNACK_HEAD_LEN, SYNACK_TS_LEN, SynAckSpec, SyncookieConfig,
        SyncookieCounters, TCP_MAX_HEADER, encode_tsval, ipv4_reply, ipv6_reply, options_at,
        port_key, synack_checksum, synack_len, write_synack_head, write_synack_ts,
    },
};

use crate::{
    flows::{bump, opaque},
    segment::Staged,
    view::XdpView,
};

/// Ports in cookie mode per interface slot (`port_key`), written by the
/// daemon.
#[map]
pub static SYNCOOKIE_PORTS: HashMap<u32, PortState> = HashMap::with_max_entries(4096, 0);

#[map]
pub static SYNCOOKIE_CONFIG: Array<SyncookieConfig> = Array::with_max_entries(1, 0);

#[map]
pub static SYNCOOKIE_STATS: PerCpuArray<SyncookieCounters> =
    PerCpuArray::with_max_entries(MAX_INTERFACES, 0);

/// `th_len`, checked to be 20..=60, as a helper size whose bounds older
/// verifiers (6.1, 6.12) still see at the call: they lose a bound checked
/// on one copy of a value when another copy, reloaded from the stack, is
/// passed. The mask keeps it in 1..=64 (room for 64 bytes: other fields
/// follow `tcp` in [`Scratch`]) and equal to `th_len` for every checked
/// value.
#[inline(always)]
pub fn header_len_arg(th_len: usize) -> u32 {
    ((crate::flows::opaque(th_len).wrapping_sub(1) & 63) + 1) as u32
}

// Room after `tcp` for a 64-byte copy (see `header_len_arg`).
const _: () = assert!(core::mem::size_of::<Scratch>() - core::mem::offset_of!(Scratch, tcp) >= 64);

/// Per-CPU work area of TC ingress, which copies the ACK's headers here,
/// and of both halves' staged offsets (see `flows::STAGING`).
#[repr(C)]
pub struct Scratch {
    pub ip: [u8; 40],
    pub tcp: [u8; TCP_MAX_HEADER],
    pub tuple: [u8; 40],
    pub fake: [u8; 24],
    pub attrs: monitor_common::syncookie::ReqAttrs,
    pub l3: u32,
    pub l4: u32,
    pub th_len: u32,
    pub version: u32,
    pub slot: u32,
    pub answer: u32,
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Longest link-layer header (Ethernet + 2 VLAN tags).
pub const MAX_L2: usize = 22;

#[inline(always)]
pub fn count(slot: u32, event: CookieEvent) {
    if let Some(stats) = SYNCOOKIE_STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU value, only this CPU touches it during the run.
        bump(unsafe { &mut (*stats).events }, event as usize);
    }
}

/// The port's cookie state on interface `slot`, if it has one.
#[inline(always)]
pub fn port_state(slot: u32, port: u16) -> Option<PortState> {
    let cfg = SYNCOOKIE_CONFIG.get(0)?;
    if cfg.ports == 0 {
        return None;
    }
    // SAFETY: a valid map value, copied out.
    unsafe { SYNCOOKIE_PORTS.get(port_key(slot, port)) }.copied()
}

/// Whether this ingress SYN is to be answered with a cookie; if so its
/// offsets are staged for [`answer`]. SYNs with IPv4 options or IPv6
/// extension headers are left to the stack (and counted `unsupported`).
#[inline(always)]
pub fn wanted(st: &Staged, slot: u32) -> bool {
    match port_state(slot, st.key.local_port) {
        Some(state) if state.answer != 0 => {}
        _ => return false,
    }
    let ip_len = st.l4 - st.l3;
    let family = st.key.family;
    if (family == 4 && ip_len != 20) || (family == 6 && ip_len != 40) {
        count(slot, CookieEvent::Unsupported);
        return false;
    }
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let s = unsafe { &mut *s };
    s.l3 = u32::from(st.l3);
    s.l4 = u32::from(st.l4);
    s.th_len = u32::from(st.th_len);
    s.version = u32::from(family);
    s.slot = slot;
    true
}

/// The staged header offsets (l3, l4, TCP header length), read through
/// `opaque` and checked: what both the XDP answer and the TC validation
/// start from.
#[inline(always)]
pub fn staged_offsets(s: &Scratch) -> Option<(usize, usize, usize)> {
    let l3 = opaque(s.l3 as usize);
    let l4 = opaque(s.l4 as usize);
    let th_len = opaque(s.th_len as usize);
    if l3 > MAX_L2 || l4 > MAX_L2 + 40 || !(20..=TCP_MAX_HEADER).contains(&th_len) {
        return None;
    }
    Some((l3, l4, th_len))
}

/// Turns the staged SYN into its cookie SYN-ACK in place. True: send it
/// (XDP_TX); false: pass the SYN on. A failure after the frame was
/// resized drops it (`dropped` is set).
#[inline(always)]
pub fn answer(ctx: &XdpContext, dropped: &mut bool) -> bool {
    let Some(s) = SCRATCH.get_ptr(0) else {
        return false;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let s = unsafe { &*s };
    let slot = s.slot;
    let Some((l3, l4, th_len)) = staged_offsets(s) else {
        return false;
    };
    let v4 = s.version == 4;
    // Checked when staged; checked again here so that the IP and TCP
    // headers written below cannot overlap.
    if l4 != l3 + if v4 { 20 } else { 40 } {
        return false;
    }
    let pkt = XdpView::new(ctx);
    let Some(generated) = cookie(&pkt, l3, l4, th_len, v4) else {
        return false;
    };
    if generated < 0 {
        count(slot, CookieEvent::Unsupported);
        return false;
    }
    let (Some(cfg), Some(t)) = (SYNCOOKIE_CONFIG.get(0), pkt.bytes::<8>(l4)) else {
        return false;
    };
    let client = options_at(&pkt, l4, th_len);
    // SAFETY: no preconditions. The kernel's TCP clock is this one, in ms.
    let now_ms = (unsafe { bpf_ktime_get_ns() } / 1_000_000) as u32;
    let spec = SynAckSpec {
        syn_src_port: u16::from_be_bytes([t[0], t[1]]),
        syn_dst_port: u16::from_be_bytes([t[2], t[3]]),
        syn_seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        cookie: generated as u32,
        mss: if v4 { cfg.mss4 } else { cfg.mss6 },
        wscale: cfg.wscale,
        client,
        tsval: encode_tsval(now_ms, &client),
    };
    // Everything the answer needs from the SYN's TCP header is read: the
    // frame can take the answer's length (the headers in front of it stay).
    let delta = (l4 + synack_len(&spec)) as i32 - pkt.frame_len() as i32;
    // SAFETY: the context is valid; a failed resize leaves the frame as is.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        count(slot, CookieEvent::Unsupported);
        return false;
    }
    // The resize invalidated every packet pointer: a new view.
    if !write_reply(&XdpView::new(ctx), l3, l4, v4, &spec) {
        *dropped = true;
        return false;
    }
    count(slot, CookieEvent::Sent);
    // The detector must still see the flood: answered SYNs count as
    // refused (they start no handshake the stack knows of).
    crate::ports::count_refused_syn(spec.syn_dst_port, slot);
    true
}

/// The kernel's cookie for the SYN, its headers read in place: `None` if
/// they are not in the frame. The helper's TCP header length must be a
/// constant checked against the frame's end (the verifier checks the
/// largest value the length may have, and a frame may end with the
/// header), so each length a header can have is its own call.
#[inline(always)]
fn cookie(pkt: &XdpView, l3: usize, l4: usize, th_len: usize, v4: bool) -> Option<i64> {
    // 40 bytes from the IP header are in the frame whatever the family:
    // IPv4's 20 are followed by at least the TCP header's 20.
    let ip = pkt.span::<40>(l3)?;
    macro_rules! by_length {
        ($($len:literal)*) => {
            match th_len {
                $($len => generate::<$len>(ip, pkt.span::<$len>(l4)?, v4),)*
                _ => return None,
            }
        };
    }
    Some(by_length!(20 24 28 32 36 40 44 48 52 56 60))
}

#[inline(always)]
fn generate<const LEN: usize>(ip: *mut [u8; 40], th: *mut [u8; LEN], v4: bool) -> i64 {
    // SAFETY: both point into the frame, for the sizes the helpers read
    // (checked by `span`).
    unsafe {
        if v4 {
            bpf_tcp_raw_gen_syncookie_ipv4(ip.cast::<iphdr>(), th.cast::<tcphdr>(), LEN as u32)
        } else {
            bpf_tcp_raw_gen_syncookie_ipv6(ip.cast::<ipv6hdr>(), th.cast::<tcphdr>(), LEN as u32)
        }
    }
}

/// Writes the SYN-ACK over the SYN in the frame, now `l4` plus the
/// answer's length long: MACs swapped, the IP header's reply, the TCP
/// header and its checksum. False if a header is not in the frame.
#[inline(always)]
fn write_reply(pkt: &XdpView, l3: usize, l4: usize, v4: bool, spec: &SynAckSpec) -> bool {
    let (Some(eth), Some(ip), Some(head)) = (
        pkt.span::<12>(0),
        pkt.span::<40>(l3),
        pkt.span::<SYNACK_HEAD_LEN>(l4),
    ) else {
        return false;
    };
    let ts = if spec.client.ts {
        let Some(ts) = pkt.span::<SYNACK_TS_LEN>(l4 + SYNACK_HEAD_LEN) else {
            return false;
        };
        Some(ts)
    } else {
        None
    };
    let tcp_len = synack_len(spec) as u16;
    // SAFETY: each pointer covers its bytes in the frame (checked by
    // `span`), and the references do not overlap: the MACs end at 12,
    // before l3; the IP header ends at l4 (IPv4 uses 20 of the 40 bytes:
    // l4 = l3 + 20, checked by the caller); the TCP parts follow.
    unsafe {
        let e = core::ptr::read_unaligned(eth);
        core::ptr::write_unaligned(
            eth,
            [
                e[6], e[7], e[8], e[9], e[10], e[11], e[0], e[1], e[2], e[3], e[4], e[5],
            ],
        );
        let head = &mut *head;
        write_synack_head(head, spec);
        let ts = ts.map(|ts| {
            write_synack_ts(&mut *ts, spec);
            &*ts
        });
        let sum = if v4 {
            let ip = &mut *ip.cast::<[u8; 20]>();
            ipv4_reply(ip, 20 + tcp_len);
            synack_checksum(&sub::<4>(ip, 12), &sub::<4>(ip, 16), head, ts)
        } else {
            let ip = &mut *ip;
            ipv6_reply(ip, tcp_len);
            synack_checksum(&sub::<16>(ip, 8), &sub::<16>(ip, 24), head, ts)
        };
        head[16..18].copy_from_slice(&sum.to_be_bytes());
    }
    true
}

/// `N` bytes of `b` from `at` (constant ranges: no panic path survives).
#[inline(always)]
fn sub<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = b.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}
