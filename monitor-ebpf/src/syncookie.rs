//! SYN cookies, XDP half: SYNs to a port in cookie mode are answered here
//! with a SYN-ACK whose sequence number is the kernel's SYN cookie
//! (`bpf_tcp_raw_gen_syncookie_ipv4/6`), sent back out of the interface
//! with XDP_TX; the stack never sees them. The ACK half is in
//! `syncookie_tc.rs`. Header building and checksums are pure logic in
//! `monitor_common::syncookie`.

use aya_ebpf::{
    bindings::{iphdr, ipv6hdr, tcphdr},
    helpers::generated::{
        bpf_ktime_get_ns, bpf_tcp_raw_gen_syncookie_ipv4, bpf_tcp_raw_gen_syncookie_ipv6,
        bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};
use monitor_common::{
    iface::MAX_INTERFACES,
    syncookie::{
        CookieEvent, PortState, SYNACK_MAX_LEN, SynAckSpec, SyncookieConfig, SyncookieCounters,
        TCP_MAX_HEADER, TcpOptions, encode_tsval, ipv4_header, ipv6_header, parse_options_with,
        port_key, tcp_checksum, write_synack,
    },
};

use crate::{
    flows::{bump, opaque},
    segment::Staged,
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
/// passed. The mask keeps it in 1..=64 (room for 64 bytes: `out` follows
/// `tcp` in [`Scratch`]) and equal to `th_len` for every checked value.
#[inline(always)]
pub fn header_len_arg(th_len: usize) -> u32 {
    ((crate::flows::opaque(th_len).wrapping_sub(1) & 63) + 1) as u32
}

const _: () = assert!(
    core::mem::offset_of!(Scratch, out) - core::mem::offset_of!(Scratch, tcp) + SYNACK_MAX_LEN
        >= 64
);

/// Per-CPU work area: the packet's headers, copied out once, and what is
/// built from them. Offsets are staged here too (see `flows::STAGING`).
#[repr(C)]
pub struct Scratch {
    pub ip: [u8; 40],
    pub tcp: [u8; TCP_MAX_HEADER],
    pub out: [u8; SYNACK_MAX_LEN],
    pub out_ip: [u8; 40],
    pub tuple: [u8; 40],
    pub fake: [u8; 24],
    pub attrs: monitor_common::syncookie::ReqAttrs,
    pub eth: [u8; 12],
    pub l3: u32,
    pub l4: u32,
    pub th_len: u32,
    pub version: u32,
    pub slot: u32,
    pub answer: u32,
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The option walk's state (see `parse_options_with`).
#[repr(C)]
pub struct Walk {
    cursor: u64,
    /// The options so far, field by field as integers (a struct copy
    /// would write padding bytes the verifier rejects).
    fields: [u64; 6],
}

#[map]
static CURSOR: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

/// The options of the TCP header in `hdr`, walked with the cursor kept in
/// map memory, where the verifier cannot follow its value.
#[inline(always)]
pub fn options(hdr: &[u8; TCP_MAX_HEADER], len: usize) -> TcpOptions {
    let Some(cursor) = CURSOR.get_ptr_mut(0) else {
        return TcpOptions::default();
    };
    parse_options_with(hdr, len, |i, opts| {
        // SAFETY: per-CPU value, only this CPU touches it during the run;
        // what is read back is what was just written.
        unsafe {
            let cursor_at = &raw mut (*cursor).cursor;
            let f = &raw mut (*cursor).fields;
            let put = |k: usize, v: u64| core::ptr::write_volatile((f as *mut u64).add(k), v);
            let get = |k: usize| core::ptr::read_volatile((f as *const u64).add(k));
            core::ptr::write_volatile(cursor_at, i as u64);
            put(0, u64::from(opts.mss));
            put(1, u64::from(opts.wscale));
            put(2, u64::from(opts.sack_ok));
            put(3, u64::from(opts.ts));
            put(4, u64::from(opts.tsval));
            put(5, u64::from(opts.tsecr));
            opts.mss = get(0) as u16;
            opts.wscale = get(1) as u8;
            opts.sack_ok = get(2) != 0;
            opts.ts = get(3) != 0;
            opts.tsval = get(4) as u32;
            opts.tsecr = get(5) as u32;
            // Masked: a cursor with bounds of its own, which every copy
            // the compiler spills and reloads keeps (older verifiers lose
            // those a later `< len` test gives). Offsets up to 63 + 10
            // stay inside Scratch (`out` follows `tcp`); the parser's own
            // tests keep the real ones below the header length.
            (core::ptr::read_volatile(cursor_at) as usize) & 63
        }
    })
}

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
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let s = unsafe { &mut *s };
    let slot = s.slot;
    let Some((l3, l4, th_len)) = staged_offsets(s) else {
        return false;
    };
    let v4 = s.version == 4;
    let ip_len: u32 = if v4 { 20 } else { 40 };
    let xdp = ctx.ctx;
    // SAFETY (helpers below): destinations are map memory of the stated
    // sizes; the helpers check the packet bounds themselves.
    unsafe {
        if bpf_xdp_load_bytes(xdp, l3 as u32, s.ip.as_mut_ptr().cast(), ip_len) != 0
            || bpf_xdp_load_bytes(
                xdp,
                l4 as u32,
                s.tcp.as_mut_ptr().cast(),
                header_len_arg(th_len),
            ) != 0
            || bpf_xdp_load_bytes(xdp, 0, s.eth.as_mut_ptr().cast(), 12) != 0
        {
            return false;
        }
    }
    let th = s.tcp.as_mut_ptr().cast::<tcphdr>();
    // SAFETY: as above; th_len is within [20, 60] (checked).
    let generated = unsafe {
        if v4 {
            bpf_tcp_raw_gen_syncookie_ipv4(
                s.ip.as_mut_ptr().cast::<iphdr>(),
                th,
                header_len_arg(th_len),
            )
        } else {
            bpf_tcp_raw_gen_syncookie_ipv6(
                s.ip.as_mut_ptr().cast::<ipv6hdr>(),
                th,
                header_len_arg(th_len),
            )
        }
    };
    if generated < 0 {
        count(slot, CookieEvent::Unsupported);
        return false;
    }
    let Some(cfg) = SYNCOOKIE_CONFIG.get(0) else {
        return false;
    };
    let client = options(&s.tcp, th_len);
    // SAFETY: no preconditions. The kernel's TCP clock is this one, in ms.
    let now_ms = (unsafe { bpf_ktime_get_ns() } / 1_000_000) as u32;
    let t = &s.tcp;
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
    let tcp_len = write_synack(&mut s.out, &spec);
    let ip = &s.ip;
    let sum = if v4 {
        let (src, dst) = (sub::<4>(ip, 12), sub::<4>(ip, 16));
        let hdr = ipv4_header(&dst, &src, (20 + tcp_len) as u16);
        s.out_ip[..20].copy_from_slice(&hdr);
        tcp_checksum(&dst, &src, &s.out, tcp_len)
    } else {
        let (src, dst) = (sub::<16>(ip, 8), sub::<16>(ip, 24));
        s.out_ip = ipv6_header(&dst, &src, tcp_len as u16);
        tcp_checksum(&dst, &src, &s.out, tcp_len)
    };
    s.out[16..18].copy_from_slice(&sum.to_be_bytes());
    let e = s.eth;
    s.eth = [
        e[6], e[7], e[8], e[9], e[10], e[11], e[0], e[1], e[2], e[3], e[4], e[5],
    ];

    let frame_len = ctx.data_end() - ctx.data();
    let delta = (l4 + tcp_len) as i32 - frame_len as i32;
    // SAFETY: the context is valid; a failed resize leaves the frame as is.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(xdp, delta) } != 0 {
        count(slot, CookieEvent::Unsupported);
        return false;
    }
    let out_len: u32 = if tcp_len == SYNACK_MAX_LEN { 40 } else { 24 };
    // SAFETY: sources are map memory of the stated sizes; the helper
    // checks the packet bounds.
    let stored = unsafe {
        bpf_xdp_store_bytes(xdp, 0, s.eth.as_mut_ptr().cast(), 12) == 0
            && bpf_xdp_store_bytes(xdp, l3 as u32, s.out_ip.as_mut_ptr().cast(), ip_len) == 0
            && bpf_xdp_store_bytes(xdp, l4 as u32, s.out.as_mut_ptr().cast(), out_len) == 0
    };
    if !stored {
        *dropped = true;
        return false;
    }
    count(slot, CookieEvent::Sent);
    // The detector must still see the flood: answered SYNs count as
    // refused (they start no handshake the stack knows of).
    crate::ports::count_refused_syn(spec.syn_dst_port, slot);
    true
}

/// `N` bytes of `b` from `at` (constant ranges: no panic path survives).
#[inline(always)]
pub fn sub<const N: usize>(b: &[u8; 40], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = b.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}
