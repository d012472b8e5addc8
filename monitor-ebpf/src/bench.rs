//! Programs only `cargo xtask bench` loads: bare baselines to pair the
//! monitor's programs with, and the live-frames traffic generator. None of
//! them is ever attached by the daemon.

use aya_ebpf::{
    bindings::{TC_ACT_UNSPEC, xdp_action},
    helpers::generated::{bpf_get_prandom_u32, bpf_redirect},
    macros::{classifier, map, xdp},
    maps::{Array, PerCpuArray},
    programs::{TcContext, XdpContext},
};

/// The bare pipeline that drops: what an enforcing monitor competes with.
#[xdp]
pub fn hs_bench_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// The TC baseline: hands the packet on, as `hs_tc_egress` does.
#[classifier]
pub fn hs_bench_tc_pass(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

/// Generator settings, written by the bench before each run.
/// Index 0: ifindex to redirect to; index 1: one of the `GEN_*` modes.
#[map]
static BENCH_GEN_CONFIG: Array<u32> = Array::with_max_entries(2, 0);

/// Frames generated on each CPU; also drives the mixed rotation.
#[map]
static BENCH_GEN_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

// Mode 0 (and any unknown mode): send the frame as given.
/// Rotate over UDP, TCP data, SYN and SYN-ACK (see [`mixed`]).
const GEN_MIXED: u32 = 1;
/// SYNs from random sources in 198.18.0.0/15 and random ports.
const GEN_SYN_FLOOD: u32 = 2;
/// SYNs from one source, 198.18.0.66, from random ports: the flood a
/// blocklist stops.
const GEN_SYN_FLOOD_ONE_SOURCE: u32 = 3;

/// Offsets in an untagged IPv4/TCP frame without options, the only shape
/// the bench hands the generator.
const IP_PROTO: usize = 14 + 9;
const IP_SRC: usize = 14 + 12;
const TCP_SRC_PORT: usize = 34;
const TCP_DST_PORT: usize = 36;
const TCP_FLAGS: usize = 34 + 13;
/// Everything the generator rewrites lies before this.
const REWRITE_END: usize = TCP_FLAGS + 1;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// Live-frames generator (`BPF_F_TEST_XDP_LIVE_FRAMES`): every run
/// rewrites the frame for the configured mode and redirects it out of the
/// configured veth, whose peer runs the program being measured. Checksums
/// are left stale on purpose: the frames are addressed to another host
/// (the receiver drops them in `ip_rcv` before any checksum is looked at),
/// and the XDP programs measured do not verify them.
#[xdp]
pub fn hs_bench_gen(ctx: XdpContext) -> u32 {
    let (Some(ifindex), Some(mode)) = (BENCH_GEN_CONFIG.get(0), BENCH_GEN_CONFIG.get(1)) else {
        return xdp_action::XDP_ABORTED;
    };
    let (ifindex, mode) = (*ifindex, *mode);
    let Some(count) = BENCH_GEN_COUNT.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: per-CPU slot, only this CPU touches it during the run.
    let n = unsafe {
        *count += 1;
        *count
    };
    let data = ctx.data();
    // One check covers every rewrite below: all offsets are < REWRITE_END.
    if data + REWRITE_END > ctx.data_end() {
        return xdp_action::XDP_ABORTED;
    }
    let frame = data as *mut u8;
    match mode {
        GEN_MIXED => mixed(frame, n),
        GEN_SYN_FLOOD => syn_flood(frame, None),
        GEN_SYN_FLOOD_ONE_SOURCE => syn_flood(frame, Some(0xc612_0042)),
        _ => {}
    }
    // SAFETY: a helper call with plain integer arguments.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}

/// Writes `bytes` at `offset` of the frame.
///
/// SAFETY: `offset + N <= REWRITE_END`, checked against `data_end` by the
/// caller.
#[inline(always)]
unsafe fn put<const N: usize>(frame: *mut u8, offset: usize, bytes: [u8; N]) {
    unsafe { core::ptr::write_unaligned(frame.add(offset) as *mut [u8; N], bytes) };
}

/// Out of every 8 frames: 2 UDP, 4 TCP data on one established-looking
/// flow, 1 SYN and 1 SYN-ACK whose source port walks 4096 values (so
/// handshakes come and go as on a busy server, not one flow retransmitting).
#[inline(always)]
fn mixed(frame: *mut u8, n: u64) {
    let (proto, flags) = match n & 7 {
        0 | 1 => (IPPROTO_UDP, ACK | PSH),
        6 => (IPPROTO_TCP, SYN),
        7 => (IPPROTO_TCP, SYN | ACK),
        _ => (IPPROTO_TCP, ACK | PSH),
    };
    let port = if flags & SYN != 0 {
        20_000 + ((n >> 3) & 0xfff) as u16
    } else {
        40_000
    };
    // SAFETY: every offset ends before REWRITE_END (see hs_bench_gen).
    unsafe {
        put(frame, IP_PROTO, [proto]);
        put(frame, TCP_FLAGS, [flags]);
        put(frame, TCP_SRC_PORT, port.to_be_bytes());
    }
}

/// A SYN from `source` (else a random source in 198.18.0.0/15), random
/// source port, to a random one of 64 destination ports (spread over the
/// port sketch).
#[inline(always)]
fn syn_flood(frame: *mut u8, source: Option<u32>) {
    // SAFETY: helper calls without arguments.
    let (a, b) = unsafe { (bpf_get_prandom_u32(), bpf_get_prandom_u32()) };
    let src = source.unwrap_or(0xc612_0000u32 | (a & 0x1_ffff));
    let sport = 1024 + (b & 0xefff) as u16;
    let dport = 8000 + ((b >> 16) & 63) as u16;
    // SAFETY: every offset ends before REWRITE_END (see hs_bench_gen).
    unsafe {
        put(frame, IP_PROTO, [IPPROTO_TCP]);
        put(frame, IP_SRC, src.to_be_bytes());
        put(frame, TCP_SRC_PORT, sport.to_be_bytes());
        put(frame, TCP_DST_PORT, dport.to_be_bytes());
        put(frame, TCP_FLAGS, [SYN]);
    }
}
