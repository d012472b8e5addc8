//! SYN cookies, TC ingress half: an ACK to a port in cookie mode whose
//! 4-tuple has no socket but the listener is a candidate cookie ACK. A
//! valid cookie (`bpf_tcp_raw_check_syncookie_ipv4/6`) becomes a request
//! socket with `bpf_sk_assign_tcp_reqsk` (Linux 6.9+), which the stack's
//! `cookie_bpf_check` turns into a full connection whatever the
//! listener's overflow state; an invalid one is dropped while the port is
//! answering SYNs. ACKs of sockets the stack knows (established, request
//! and timewait sockets) pass untouched.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{
        __sk_buff, BPF_F_CURRENT_NETNS, TC_ACT_SHOT, TC_ACT_UNSPEC, bpf_sock_tuple, iphdr, ipv6hdr,
        tcphdr,
    },
    helpers::generated::{
        bpf_sk_release, bpf_skb_load_bytes, bpf_skc_lookup_tcp, bpf_skc_to_tcp_sock,
        bpf_tcp_raw_check_syncookie_ipv4, bpf_tcp_raw_check_syncookie_ipv6,
        bpf_tcp_raw_gen_syncookie_ipv4, bpf_tcp_raw_gen_syncookie_ipv6,
    },
    programs::TcContext,
};
use monitor_common::{
    parse::{PacketView, TcpPacket},
    syncookie::{
        CookieEvent, MSS_TABLE_V4, MSS_TABLE_V6, NO_WSCALE, ReqAttrs, TCP_LISTEN, decode_tsecr,
        options_at,
    },
};

use crate::{
    syncookie::{SCRATCH, Scratch, count, port_state},
    view::Copied,
};

const FLAG_FIN: u8 = 0x01;
const FLAG_SYN: u8 = 0x02;
const FLAG_RST: u8 = 0x04;
const FLAG_ACK: u8 = 0x10;

/// Stages a candidate (an ACK without SYN, RST or FIN to a port whose
/// cookies are being validated); false for anything else.
#[inline(always)]
pub fn candidate<V: PacketView>(pkt: &V, tcp: &TcpPacket, slot: u32) -> bool {
    if tcp.flags & (FLAG_ACK | FLAG_SYN | FLAG_RST | FLAG_FIN) != FLAG_ACK {
        return false;
    }
    let Some(ports) = pkt.bytes::<4>(usize::from(tcp.l4_offset)) else {
        return false;
    };
    let state = match port_state(slot, u16::from_be_bytes([ports[2], ports[3]])) {
        Some(state) if state.validate != 0 => state,
        _ => return false,
    };
    let ip_len = tcp.l4_offset - tcp.l3_offset;
    if (tcp.ip_version == 4 && ip_len != 20) || (tcp.ip_version == 6 && ip_len != 40) {
        return false;
    }
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let s = unsafe { &mut *s };
    s.l3 = u32::from(tcp.l3_offset);
    s.l4 = u32::from(tcp.l4_offset);
    s.th_len = u32::from(tcp.payload_offset - tcp.l4_offset);
    s.version = u32::from(tcp.ip_version);
    s.slot = slot;
    s.answer = state.answer;
    true
}

/// The verdict on the staged candidate.
#[inline(always)]
pub fn validate(ctx: &TcContext) -> i32 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return TC_ACT_UNSPEC;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let s = unsafe { &mut *s };
    let Some((l3, l4, th_len)) = crate::syncookie::staged_offsets(s) else {
        return TC_ACT_UNSPEC;
    };
    let v4 = s.version == 4;
    let skb = ctx.skb.skb;
    // SAFETY: destinations are map memory of the stated sizes; the helper
    // checks the packet bounds.
    unsafe {
        let ip_len: u32 = if v4 { 20 } else { 40 };
        if bpf_skb_load_bytes(
            skb as *const c_void,
            l3 as u32,
            s.ip.as_mut_ptr().cast(),
            ip_len,
        ) != 0
            || bpf_skb_load_bytes(
                skb as *const c_void,
                l4 as u32,
                s.tcp.as_mut_ptr().cast(),
                crate::syncookie::header_len_arg(th_len),
            ) != 0
        {
            return TC_ACT_UNSPEC;
        }
    }
    // The socket tuple: both addresses, then both ports, as on the wire.
    let tuple_len: u32 = if v4 {
        s.tuple[..8].copy_from_slice(&s.ip[12..20]);
        s.tuple[8..12].copy_from_slice(&s.tcp[..4]);
        12
    } else {
        s.tuple[..32].copy_from_slice(&s.ip[8..40]);
        s.tuple[32..36].copy_from_slice(&s.tcp[..4]);
        36
    };
    // SAFETY: the tuple is map memory of `tuple_len` bytes; a socket found
    // is released below on every path.
    let skc = unsafe {
        bpf_skc_lookup_tcp(
            skb.cast(),
            s.tuple.as_mut_ptr().cast::<bpf_sock_tuple>(),
            tuple_len,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if skc.is_null() {
        return TC_ACT_UNSPEC;
    }
    // SAFETY: a socket the lookup returned; `state` is readable on any.
    let verdict = if unsafe { (*skc).state } != TCP_LISTEN {
        TC_ACT_UNSPEC
    } else {
        listener(skb, skc.cast(), s, v4, th_len)
    };
    // SAFETY: releases the reference the lookup took.
    unsafe { bpf_sk_release(skc.cast()) };
    verdict
}

/// An ACK that reached a listener: check its cookie and hand it over.
#[inline(always)]
fn listener(
    skb: *mut __sk_buff,
    skc: *mut c_void,
    s: &mut Scratch,
    v4: bool,
    th_len: usize,
) -> i32 {
    let slot = s.slot;
    let th = s.tcp.as_mut_ptr().cast::<tcphdr>();
    // SAFETY: map memory holding the IP and TCP headers.
    let valid = unsafe {
        if v4 {
            bpf_tcp_raw_check_syncookie_ipv4(s.ip.as_mut_ptr().cast::<iphdr>(), th)
        } else {
            bpf_tcp_raw_check_syncookie_ipv6(s.ip.as_mut_ptr().cast::<ipv6hdr>(), th)
        }
    } == 0;
    if !valid {
        if s.answer != 0 {
            count(slot, CookieEvent::Invalid);
            return TC_ACT_SHOT;
        }
        // Not answering SYNs (any more): the cookie may be the stack's own.
        return TC_ACT_UNSPEC;
    }
    count(slot, CookieEvent::Validated);
    let opts = options_at(&Copied(&s.tcp[..]), 0, th_len);
    let t = s.tcp;
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    let mss = cookie_mss(s, v4, seq.wrapping_sub(1), ack.wrapping_sub(1));
    let mut attrs = ReqAttrs {
        mss,
        ..ReqAttrs::default()
    };
    if opts.ts {
        let (wscale, sack) = decode_tsecr(opts.tsecr);
        attrs.tstamp_ok = 1;
        attrs.rcv_tsval = opts.tsval;
        attrs.rcv_tsecr = opts.tsecr;
        attrs.sack_ok = u8::from(sack);
        if wscale != NO_WSCALE {
            attrs.wscale_ok = 1;
            attrs.snd_wscale = wscale;
            attrs.rcv_wscale = crate::syncookie::SYNCOOKIE_CONFIG
                .get(0)
                .map_or(monitor_common::syncookie::RCV_WSCALE, |c| c.wscale);
        }
    }
    s.attrs = attrs;
    // SAFETY: `skc` is a referenced socket (the caller releases it).
    let tp = unsafe { bpf_skc_to_tcp_sock(skc) };
    if tp.is_null() {
        count(slot, CookieEvent::AssignFailed);
        return TC_ACT_UNSPEC;
    }
    // SAFETY: the context, a listener, and attributes in map memory.
    let rc = unsafe {
        crate::kfunc::sk_assign_tcp_reqsk(
            skb,
            tp.cast(),
            &mut s.attrs,
            core::mem::size_of::<ReqAttrs>() as u32,
        )
    };
    if rc == 0 {
        count(slot, CookieEvent::Handed);
        crate::flows::count_cookie_completion(u16::from_be_bytes([t[2], t[3]]), slot);
    } else {
        count(slot, CookieEvent::AssignFailed);
    }
    TC_ACT_UNSPEC
}

/// The MSS the cookie encodes. The check helper says only valid or not,
/// so regenerate the cookie for the client's ISN with each table MSS and
/// see which one it is (a cookie made in the previous minute matches none:
/// then the table's smallest, which is always safe).
#[inline(always)]
fn cookie_mss(s: &mut Scratch, v4: bool, isn: u32, cookie: u32) -> u16 {
    let table = if v4 { MSS_TABLE_V4 } else { MSS_TABLE_V6 };
    // A SYN of 24 bytes: the ACK's ports, the ISN, and an MSS option.
    s.fake = [0; 24];
    s.fake[..4].copy_from_slice(&s.tcp[..4]);
    s.fake[4..8].copy_from_slice(&isn.to_be_bytes());
    s.fake[12] = 6 << 4;
    s.fake[13] = FLAG_SYN;
    s.fake[20] = 2;
    s.fake[21] = 4;
    for i in (1..table.len()).rev() {
        let mss = table[i];
        s.fake[22..24].copy_from_slice(&mss.to_be_bytes());
        let th = s.fake.as_mut_ptr().cast::<tcphdr>();
        // SAFETY: map memory: the IP header and the 24-byte SYN.
        let generated = unsafe {
            if v4 {
                bpf_tcp_raw_gen_syncookie_ipv4(s.ip.as_mut_ptr().cast::<iphdr>(), th, 24)
            } else {
                bpf_tcp_raw_gen_syncookie_ipv6(s.ip.as_mut_ptr().cast::<ipv6hdr>(), th, 24)
            }
        };
        if generated >= 0 && generated as u32 == cookie {
            return mss;
        }
    }
    table[0]
}
