//! The kernel's own view of TCP: BTF tracepoints (tp_btf) on socket state
//! changes, SYN-ACK retransmits and resets, next to the packet view of XDP
//! and TC.
//!
//! Tracepoints fire for every network namespace on the machine, so each
//! program first reads the namespace of the socket (or packet) and counts
//! only the daemon's own. aya-ebpf has no CO-RE field relocations: the
//! daemon resolves the field offsets from the kernel's BTF and writes them
//! to [`KS_CONFIG`] before attaching; reads go through
//! `bpf_probe_read_kernel`, which fails cleanly instead of faulting.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel,
    macros::{btf_tracepoint, map},
    maps::{Array, PerCpuArray},
    programs::BtfTracePointContext,
};
use monitor_common::tcp_state::{
    KernelEvent, KernelStateConfig, KernelStateCounters, transition_index,
};

/// Offsets and the daemon's namespace, one entry, written before attach.
#[map]
pub static KS_CONFIG: Array<KernelStateConfig> = Array::with_max_entries(1, 0);

/// Every count of this module in one entry per CPU: no shared atomics,
/// one lookup per scrape.
#[map]
pub static KS_COUNTERS: PerCpuArray<KernelStateCounters> = PerCpuArray::with_max_entries(1, 0);

const IPPROTO_TCP: u16 = 6;

/// Why an event was not counted where it belongs.
enum Skip {
    /// Another namespace's socket, or not TCP: not ours to count.
    Foreign,
    /// The namespace could not be read.
    Unattributed,
}

/// `inet_sock_set_state(const struct sock *sk, int oldstate, int newstate)`.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn hs_sock_state(ctx: BtfTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    if old == new {
        // close() after shutdown() re-sets FIN_WAIT1 or FIN_WAIT2
        // (tcp_close_state), which one depending on whether the peer's ACK
        // won the race: not a transition, and counting it would make the
        // series depend on timing.
        return 0;
    }
    with_state(|config, counters| {
        // The tracepoint belongs to generic inet socket code, not to TCP
        // (DCCP used it on older kernels): check TCP before the namespace.
        if read_protocol(config, sk).ok_or(Skip::Unattributed)? != IPPROTO_TCP {
            return Err(Skip::Foreign);
        }
        ours(config, sock_netns(config, sk))?;
        // transition_index is always <= OTHER_CELL, but the verifier
        // wants to see the bound.
        if let Some(cell) = counters.transitions.get_mut(transition_index(old, new)) {
            *cell += 1;
        }
        Ok(())
    });
    0
}

/// `tcp_retransmit_synack(const struct sock *sk, const struct request_sock *req)`:
/// `sk` is the listener.
#[btf_tracepoint(function = "tcp_retransmit_synack")]
pub fn hs_synack_rtx(ctx: BtfTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    count_event(KernelEvent::SynackRetransmit, |config| {
        sock_netns(config, sk)
    });
    0
}

/// `tcp_send_reset(const struct sock *sk, const struct sk_buff *skb,
/// enum sk_rst_reason reason)`. `sk` is NULL for a segment that matched no
/// socket (a SYN to a closed port): the namespace is then the receiving
/// device's. `skb` is NULL for an active reset (abort), which has a socket.
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn hs_rst_sent(ctx: BtfTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    count_event(KernelEvent::ResetSent, |config| {
        if sk != 0 {
            sock_netns(config, sk)
        } else {
            skb_netns(config, skb)
        }
    });
    0
}

/// `tcp_receive_reset(struct sock *sk)`: a RST reset this socket.
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn hs_rst_recv(ctx: BtfTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    count_event(KernelEvent::ResetReceived, |config| sock_netns(config, sk));
    0
}

/// Runs `f` with the configuration and this CPU's counters; counts a
/// [`Skip::Unattributed`] it returns.
#[inline(always)]
fn with_state(f: impl FnOnce(&KernelStateConfig, &mut KernelStateCounters) -> Result<(), Skip>) {
    let Some(config) = KS_CONFIG.get(0) else {
        return;
    };
    if config.netns_inum == 0 {
        // Not configured yet: nothing can be attributed, nothing counted.
        return;
    }
    let Some(counters) = KS_COUNTERS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a per-CPU map value is only touched by this CPU, and the
    // kernel never nests two runs of one tracing program on a CPU (it
    // skips the inner one), so nothing else writes it meanwhile.
    let counters = unsafe { &mut *counters };
    if let Err(Skip::Unattributed) = f(config, counters) {
        counters.events[KernelEvent::Unattributed as usize] += 1;
    }
}

/// Counts `event` if `netns` says it happened in the daemon's namespace.
#[inline(always)]
fn count_event(event: KernelEvent, netns: impl FnOnce(&KernelStateConfig) -> Option<u32>) {
    with_state(|config, counters| {
        ours(config, netns(config))?;
        counters.events[event as usize] += 1;
        Ok(())
    });
}

#[inline(always)]
fn ours(config: &KernelStateConfig, netns: Option<u32>) -> Result<(), Skip> {
    match netns {
        Some(inum) if inum == config.netns_inum => Ok(()),
        Some(_) => Err(Skip::Foreign),
        None => Err(Skip::Unattributed),
    }
}

/// Reads a `T` at kernel address `base + offset`; `None` for a NULL base
/// or a failed read.
#[inline(always)]
fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one makes
    // it return an error, never fault.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T) }.ok()
}

/// `sk->__sk_common.skc_net.net->ns.inum`. Valid for full, request and
/// time-wait sockets alike: all three begin with `struct sock_common`.
#[inline(always)]
fn sock_netns(config: &KernelStateConfig, sk: u64) -> Option<u32> {
    let net: u64 = read(sk, config.sock_net)?;
    read(net, config.net_inum)
}

/// `skb->dev->nd_net.net->ns.inum`: the namespace of the receiving device.
#[inline(always)]
fn skb_netns(config: &KernelStateConfig, skb: u64) -> Option<u32> {
    let dev: u64 = read(skb, config.skb_dev)?;
    let net: u64 = read(dev, config.dev_net)?;
    read(net, config.net_inum)
}

/// `sk->sk_protocol`, a `u8` before Linux 5.6 and a `u16` since.
#[inline(always)]
fn read_protocol(config: &KernelStateConfig, sk: u64) -> Option<u16> {
    if config.sock_protocol_size == 1 {
        read::<u8>(sk, config.sock_protocol).map(u16::from)
    } else {
        read::<u16>(sk, config.sock_protocol)
    }
}
