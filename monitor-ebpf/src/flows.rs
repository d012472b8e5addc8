//! Handshake and connection tracking in the flow table. The state machine
//! itself is `monitor_common::handshake`; this module finds the flow,
//! applies the outcome to the maps and keeps the per-packet work small:
//! only SYN, SYN-ACK, pure ACK, FIN and RST segments reach it, and the
//! clock is read only where a timestamp is used.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::generated::bpf_ktime_get_ns,
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray},
};
use monitor_common::{
    classify::FlagClass,
    counters::{Direction, DirectionCounters},
    flow::{
        FlowKey, FlowState, HandshakeCounters, RateLimit, Role, ScanKey, ScanState, TokenBucket,
        close_index, handshake_index, phase,
    },
    handshake::{Outcome, Segment, on_segment},
    histogram::{Histogram, HistogramKind, bucket, histogram_index},
    iface::MAX_INTERFACES,
    parse::{PacketView, TcpPacket, read_fields},
    ports::{PORT_SLOTS, PortCounters, VolumeSketch, port_index, port_slot, volume_bucket},
};

/// Default size; the daemon sets the configured one before loading.
const DEFAULT_FLOW_TABLE_SIZE: u32 = 262_144;

#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowState> =
    LruHashMap::with_max_entries(DEFAULT_FLOW_TABLE_SIZE, 0);

#[map]
pub static HANDSHAKES: PerCpuArray<HandshakeCounters> =
    PerCpuArray::with_max_entries(MAX_INTERFACES * Role::COUNT as u32, 0);

#[map]
pub static HISTOGRAMS: PerCpuArray<Histogram> = PerCpuArray::with_max_entries(
    MAX_INTERFACES * Role::COUNT as u32 * HistogramKind::COUNT as u32,
    0,
);

/// Named ports: port -> port slot (0: unnamed, aggregated by class).
#[map]
pub static PORT_TABLE: Array<u8> = Array::with_max_entries(65536, 0);

#[map]
pub static PORT_STATS: PerCpuArray<PortCounters> =
    PerCpuArray::with_max_entries(MAX_INTERFACES * PORT_SLOTS * Role::COUNT as u32, 0);

/// SYN volume per port, for the daemon's automatic top-N (one 8 KiB value
/// per CPU, read in one syscall).
#[map]
pub static PORT_VOLUME: PerCpuArray<VolumeSketch> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static INSERT_BUDGET: PerCpuArray<TokenBucket> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static FLOW_CONFIG: Array<RateLimit> = Array::with_max_entries(1, 0);

/// Everything the flow logic needs of a segment, staged in a per-CPU slot.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Staged {
    key: FlowKey,
    seg: Segment,
}

/// Passes the segment through map memory. The values the flow logic then
/// loads are opaque to the verifier, so every parser path (VLAN depth,
/// IPv4 options, IPv6 extension chains, each with its own offset ranges)
/// reaches it in the same state and is verified once, not once per path.
#[map]
static STAGING: PerCpuArray<Staged> = PerCpuArray::with_max_entries(1, 0);

/// Follows one TCP segment of class `class` through the flow table.
#[inline(always)]
pub fn track<V: PacketView>(
    pkt: &V,
    tcp: &TcpPacket,
    class: FlagClass,
    slot: u32,
    direction: Direction,
    counters: &mut DirectionCounters,
) {
    let Ok(fields) = read_fields(pkt, tcp) else {
        return;
    };
    let Some(staging) = STAGING.get_ptr_mut(0) else {
        return;
    };
    let from_local = direction == Direction::Egress;
    // SAFETY: per-CPU slot, only this CPU touches it during the run.
    // Written in place: a FlowKey copy or two would overflow the 512-byte
    // BPF stack next to the parser's state.
    unsafe {
        let key = &mut (*staging).key;
        key.family = tcp.ip_version;
        key.slot = slot as u8;
        key._pad = [0; 2];
        if from_local {
            key.local_addr = fields.src_addr;
            key.remote_addr = fields.dst_addr;
            key.local_port = fields.src_port;
            key.remote_port = fields.dst_port;
        } else {
            key.local_addr = fields.dst_addr;
            key.remote_addr = fields.src_addr;
            key.local_port = fields.dst_port;
            key.remote_port = fields.src_port;
        }
        (*staging).seg = Segment {
            class,
            from_local,
            seq: fields.seq,
            ack: fields.ack,
            payload_len: tcp.payload_len,
        };
    }
    // A second lookup gives a pointer LLVM cannot prove equal to the first,
    // so the flow logic really loads the staged values from the map.
    let Some(staged) = STAGING.get_ptr(0) else {
        return;
    };
    // SAFETY: as above; nothing writes the slot while this reference lives.
    let staged = unsafe { &*staged };
    track_staged(&staged.key, &staged.seg, slot, counters);
}

#[inline(always)]
fn track_staged(key: &FlowKey, seg: &Segment, slot: u32, counters: &mut DirectionCounters) {
    // SAFETY: the value stays valid while this program runs (RCU).
    let flow = FLOWS.get_ptr_mut(key).map(|p| unsafe { &mut *p });
    let role = flow.as_ref().map(|f| f.role());
    // A pure ACK of an established flow changes nothing that needs a time.
    let now = match (&flow, seg.class) {
        (None, FlagClass::Ack) => 0,
        (Some(f), FlagClass::Ack) if f.phase == phase::ESTABLISHED => 0,
        // SAFETY: no preconditions.
        _ => unsafe { bpf_ktime_get_ns() },
    };
    let outcome = on_segment(flow, seg, now);
    apply(outcome, key, role, slot, seg, now, counters);
}

#[inline(always)]
fn apply(
    outcome: Outcome,
    key: &FlowKey,
    role: Option<Role>,
    slot: u32,
    seg: &Segment,
    now: u64,
    counters: &mut DirectionCounters,
) {
    let tracked = role.is_some();
    let role = match outcome {
        Outcome::Nothing => return,
        Outcome::Untracked(what) => {
            bump(&mut counters.untracked, what as usize);
            return;
        }
        Outcome::Start(role) => role,
        _ => match role {
            Some(role) => role,
            None => return,
        },
    };
    let Some(stats) = HANDSHAKES.get_ptr_mut(handshake_index(slot, role)) else {
        return;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let stats = unsafe { &mut *stats };
    if matches!(
        outcome,
        Outcome::Start(_) | Outcome::Completed { .. } | Outcome::HandshakeReset
    ) {
        count_port(key, slot, role, &outcome);
    }
    match outcome {
        Outcome::Start(role) => start(key, role, seg.seq, now, stats, tracked),
        Outcome::SynRetransmit => stats.syn_retransmits += 1,
        Outcome::SynAck { syn_to_synack_ns } => {
            observe(slot, role, HistogramKind::SynToSynAck, syn_to_synack_ns);
        }
        Outcome::SynAckRetransmit => stats.synack_retransmits += 1,
        Outcome::Completed { synack_to_ack_ns } => {
            stats.completed += 1;
            if role == Role::Server {
                crate::mitigation::protect(&key.remote_addr, key.family, now);
            }
            observe(slot, role, HistogramKind::SynAckToAck, synack_to_ack_ns);
        }
        Outcome::Anomaly(anomaly) => bump(&mut stats.anomalies, anomaly as usize),
        Outcome::HandshakeReset => {
            stats.reset += 1;
            remove(key, stats);
            // Our RST refusing a remote SYN: a closed port, as a scan finds.
            if role == Role::Server && seg.from_local {
                note_refused_syn(key, slot, now);
            }
        }
        Outcome::Closed {
            kind,
            initiator,
            duration_ns,
        } => {
            bump(&mut stats.closes, close_index(kind, initiator));
            observe(slot, role, HistogramKind::ConnectionDuration, duration_ns);
            remove(key, stats);
        }
        Outcome::Nothing | Outcome::Untracked(_) => {}
    }
}

/// Inserts a new flow if this CPU's insert budget allows; under a SYN
/// flood the budget caps what tracking costs and what it can evict.
#[inline(always)]
fn start(
    key: &FlowKey,
    role: Role,
    isn: u32,
    now: u64,
    stats: &mut HandshakeCounters,
    tracked: bool,
) {
    let admitted = match (INSERT_BUDGET.get_ptr_mut(0), FLOW_CONFIG.get(0)) {
        // SAFETY: per-CPU value, only this CPU touches it during the run.
        (Some(budget), Some(cfg)) => unsafe { (*budget).take(cfg, now) },
        _ => false,
    };
    if !admitted {
        stats.insert_skipped += 1;
        // A stale flow with the old ISN would misjudge the new handshake;
        // an LRU delete is costly, so only when there is one.
        if tracked {
            let _ = FLOWS.remove(key);
        }
        return;
    }
    let state = FlowState::on_syn(role, isn, now);
    match FLOWS.insert(key, state, u64::from(BPF_ANY)) {
        Ok(()) => stats.inserts += 1,
        Err(_) => stats.insert_failed += 1,
    }
}

/// Per-port outcome: the service port is ours for a server, the peer's for
/// a client.
#[inline(always)]
fn count_port(key: &FlowKey, slot: u32, role: Role, outcome: &Outcome) {
    let port = match role {
        Role::Server => key.local_port,
        Role::Client => key.remote_port,
    };
    let Some(stats) = port_counters(port, slot, role) else {
        return;
    };
    match outcome {
        Outcome::Start(_) => {
            stats.syns += 1;
            count_volume(port);
        }
        Outcome::Completed { .. } => stats.completed += 1,
        Outcome::HandshakeReset => stats.reset += 1,
        _ => {}
    }
}

/// A SYN the mitigation dropped never reaches the flow table, but the
/// flood detector must still see it: counted per port as refused.
#[inline(always)]
pub fn count_refused_syn(port: u16, slot: u32) {
    if let Some(stats) = port_counters(port, slot, Role::Server) {
        stats.refused_syns += 1;
    }
}

/// This CPU's counters of `port` (its named slot, else its class).
#[inline(always)]
fn port_counters(port: u16, slot: u32, role: Role) -> Option<&'static mut PortCounters> {
    let named = PORT_TABLE.get(u32::from(port)).copied().unwrap_or(0);
    let index = port_index(slot, port_slot(port, named), role);
    let stats = PORT_STATS.get_ptr_mut(index)?;
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    Some(unsafe { &mut *stats })
}

/// A connection made from a SYN cookie (the stack completes it; the flow
/// table never saw its SYN): counted completed, per port and per
/// interface, so the flood detector's completion ratio sees it.
#[inline(always)]
pub fn count_cookie_completion(port: u16, slot: u32) {
    let named = PORT_TABLE.get(u32::from(port)).copied().unwrap_or(0);
    let index = port_index(slot, port_slot(port, named), Role::Server);
    if let Some(stats) = PORT_STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU value, only this CPU touches it during the run.
        unsafe { (*stats).completed += 1 };
    }
    if let Some(stats) = HANDSHAKES.get_ptr_mut(handshake_index(slot, Role::Server)) {
        // SAFETY: as above.
        unsafe { (*stats).completed += 1 };
    }
}

/// Remote sources whose SYNs were refused, for port-scan detection; the
/// daemon reads and ages them once a second.
#[map]
pub static SCAN_SOURCES: LruHashMap<ScanKey, ScanState> = LruHashMap::with_max_entries(4096, 0);

#[inline(always)]
fn note_refused_syn(key: &FlowKey, slot: u32, now: u64) {
    let scan_key = ScanKey {
        addr: key.remote_addr,
        family: key.family,
        slot: slot as u8,
        _pad: [0; 2],
    };
    if let Some(state) = SCAN_SOURCES.get_ptr_mut(scan_key) {
        // SAFETY: a valid map value; racing updates only lose a count.
        unsafe { (*state).note(key.local_port) };
        return;
    }
    let mut state = ScanState {
        first_ns: now,
        ..ScanState::default()
    };
    state.note(key.local_port);
    let _ = SCAN_SOURCES.insert(scan_key, state, 0);
}

#[inline(always)]
fn count_volume(port: u16) {
    let Some(sketch) = PORT_VOLUME.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let sketch = unsafe { &mut *sketch };
    if let Some(bucket) = sketch.buckets.get_mut(opaque(volume_bucket(port))) {
        bucket.add(port);
    }
}

#[inline(always)]
fn remove(key: &FlowKey, stats: &mut HandshakeCounters) {
    if FLOWS.remove(key).is_ok() {
        stats.removed += 1;
    }
}

#[inline(always)]
fn observe(slot: u32, role: Role, kind: HistogramKind, value_ns: u64) {
    if let Some(h) = HISTOGRAMS.get_ptr_mut(histogram_index(slot, role, kind)) {
        // SAFETY: per-CPU value, only this CPU touches it during the run.
        let h = unsafe { &mut *h };
        bump(&mut h.counts, bucket(kind.bounds(), value_ns));
        h.sum_ns = h.sum_ns.wrapping_add(value_ns);
    }
}

/// Increments `counters[index]`. LLVM knows enum-derived indexes are in
/// range and drops the bounds check, but the verifier, seeing the index
/// reloaded from the stack as a byte, does not: an opaque (volatile) read
/// keeps the check in the code, where the verifier can see it.
#[inline(always)]
pub fn bump<const N: usize>(counters: &mut [u64; N], index: usize) {
    if let Some(c) = counters.get_mut(opaque(index)) {
        *c += 1;
    }
}

#[inline(always)]
pub fn opaque(value: usize) -> usize {
    // SAFETY: reads a valid local.
    unsafe { core::ptr::read_volatile(&value) }
}
