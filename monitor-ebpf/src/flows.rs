//! Handshake and connection tracking. The state machine itself is
//! `monitor_common::handshake`; this module finds the segment's flow and
//! applies the outcome to the maps.
//!
//! A handshake lives in the half-open table (`half_open.rs`) from its SYN
//! to its final ACK, and only then, verified, in the shared flow table:
//! a spoofed SYN costs one slot write in its CPU's partition and no more.
//! Only SYN, SYN-ACK, pure ACK, FIN and RST segments reach this module, and
//! the precise clock is read only where a timestamp is used.

use aya_ebpf::{
    bindings::BPF_ANY,
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray},
};
use monitor_common::{
    classify::FlagClass,
    counters::DirectionCounters,
    flow::{FlowKey, FlowState, HandshakeCounters, Role, close_index, handshake_index, phase},
    flow_filter::{self, FLOW_FILTER_BUCKETS},
    half_open::{HalfOpen, flow_hash},
    handshake::{Outcome, on_segment},
    histogram::{Histogram, HistogramKind, bucket, histogram_index},
    iface::MAX_INTERFACES,
};

use crate::{
    half_open::{self, SynFate},
    ports,
    records::{self, Settled},
    segment::Staged,
};

/// Default size; the daemon sets the configured one before loading.
const DEFAULT_FLOW_TABLE_SIZE: u32 = 262_144;

/// Established connections: completed handshakes until their close.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowState> =
    LruHashMap::with_max_entries(DEFAULT_FLOW_TABLE_SIZE, 0);

/// How many of `FLOWS`' entries are in each bucket of flow hashes
/// (`monitor_common::flow_filter`). Written when a connection enters or
/// leaves `FLOWS` (atomically: any CPU may), never per packet.
#[map]
static FLOW_FILTER: Array<u32> = Array::with_max_entries(FLOW_FILTER_BUCKETS, 0);

#[map]
pub static HANDSHAKES: PerCpuArray<HandshakeCounters> =
    PerCpuArray::with_max_entries(MAX_INTERFACES * Role::COUNT as u32, 0);

#[map]
pub static HISTOGRAMS: PerCpuArray<Histogram> = PerCpuArray::with_max_entries(
    MAX_INTERFACES * Role::COUNT as u32 * HistogramKind::COUNT as u32,
    0,
);

/// Follows one staged handshake segment other than a SYN (see [`syn`]).
/// An ACK or FIN of an established flow, the bulk of these, reads no
/// clock at all.
#[inline(always)]
pub fn track(st: &Staged, slot: u32, counters: &mut DirectionCounters) {
    let found = match st.seg.class {
        // Established flows first for ACKs and FINs: theirs are the bulk,
        // and they need no flow hash.
        FlagClass::Ack | FlagClass::Fin => {
            established(st, slot) || in_handshake(st, slot, flow_hash(&st.key))
        }
        FlagClass::SynAck => {
            let hash = flow_hash(&st.key);
            // The answer to a SYN this CPU did not track (a flood over the
            // insert budget), known from a few cached bytes: no table probed.
            !half_open::skipped_here(hash)
                && (in_handshake(st, slot, hash)
                    || (may_be_established(hash) && established(st, slot)))
        }
        FlagClass::Rst => in_handshake(st, slot, flow_hash(&st.key)) || established(st, slot),
        FlagClass::Syn | FlagClass::Data | FlagClass::Invalid => return,
    };
    if !found && let Outcome::Untracked(what) = on_segment(None, &st.seg, 0) {
        bump(&mut counters.untracked, what as usize);
    }
}

#[inline(always)]
fn in_handshake(st: &Staged, slot: u32, hash: u32) -> bool {
    match half_open::find(&st.key, hash, crate::clock::coarse_now()) {
        Some(h) => {
            handshake(h, st, slot, hash);
            true
        }
        None => false,
    }
}

#[inline(always)]
fn stats_of(slot: u32, role: Role) -> Option<&'static mut HandshakeCounters> {
    let stats = HANDSHAKES.get_ptr_mut(handshake_index(slot, role))?;
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    Some(unsafe { &mut *stats })
}

/// Follows a SYN; `now_coarse` is its coarse clock reading.
#[inline(always)]
pub fn syn(st: &Staged, slot: u32, now_coarse: u64) {
    let role = Role::of_syn(st.seg.from_local);
    let Some(stats) = stats_of(slot, role) else {
        return;
    };
    match half_open::syn(st, role, now_coarse, stats) {
        SynFate::Retransmit => {}
        SynFate::Started | SynFate::Skipped => ports::count_syn(&st.key, slot, role),
    }
}

/// A segment of a handshake in the half-open table; `hash` is its flow
/// hash.
#[inline(always)]
fn handshake(h: &mut HalfOpen, st: &Staged, slot: u32, hash: u32) {
    let role = h.state.role();
    let Some(stats) = stats_of(slot, role) else {
        return;
    };
    // A RST needs no time; everything else that gets here may.
    let now = match st.seg.class {
        FlagClass::Rst => 0,
        _ => crate::clock::now(),
    };
    match on_segment(Some(&mut h.state), &st.seg, now) {
        Outcome::SynAck { syn_to_synack_ns } => {
            observe(slot, role, HistogramKind::SynToSynAck, syn_to_synack_ns);
            // The tuple's old connection, if still in the flow table, is
            // over: the stack would not answer a SYN on a live one. The
            // filter spares a flood's SYN-ACKs the lookup.
            let key = &st.key;
            if may_be_established(hash) && FLOWS.get_ptr(key).is_some() {
                remove(key, hash, stats);
            }
        }
        Outcome::SynAckRetransmit => stats.synack_retransmits += 1,
        Outcome::Completed { synack_to_ack_ns } => {
            stats.completed += 1;
            if let Some(port) = ports::counters(ports::service_port(&h.key, role), slot, role) {
                port.completed += 1;
            }
            let (key, state) = (&h.key, &h.state);
            match FLOWS.insert(key, state, u64::from(BPF_ANY)) {
                Ok(()) => {
                    stats.promoted += 1;
                    filter_add(hash, 1);
                }
                Err(_) => stats.insert_failed += 1,
            }
            records::write(key, state, Settled::Completed, now);
            half_open::clear(h);
            if role == Role::Server {
                crate::mitigation::protect(&st.key.remote_addr, st.key.family, now);
            }
            observe(slot, role, HistogramKind::SynAckToAck, synack_to_ack_ns);
        }
        Outcome::Anomaly(anomaly) => bump(&mut stats.anomalies, anomaly as usize),
        Outcome::HandshakeReset => {
            stats.reset += 1;
            if let Some(port) = ports::counters(ports::service_port(&h.key, role), slot, role) {
                port.reset += 1;
            }
            let from_local = st.seg.from_local;
            records::write(&h.key, &h.state, Settled::Reset { from_local }, 0);
            half_open::clear(h);
            // Our RST refusing a remote SYN: a closed port, as a scan finds.
            if role == Role::Server && st.seg.from_local {
                crate::scan::note_refused_syn(&st.key, slot, h.state.syn_ns);
            }
        }
        _ => {}
    }
}

/// A segment of an established connection; false when the flow table
/// has none for its tuple.
#[inline(always)]
fn established(st: &Staged, slot: u32) -> bool {
    // SAFETY: the value stays valid while this program runs (RCU).
    let key = &st.key;
    let Some(flow) = FLOWS.get_ptr_mut(key).map(|p| unsafe { &mut *p }) else {
        return false;
    };
    let role = flow.role();
    // A pure ACK or a SYN-ACK of an established flow changes nothing that
    // needs a time.
    let now = match st.seg.class {
        FlagClass::Ack | FlagClass::SynAck if flow.phase == phase::ESTABLISHED => 0,
        _ => crate::clock::now(),
    };
    let outcome = on_segment(Some(flow), &st.seg, now);
    let Some(stats) = stats_of(slot, role) else {
        return true;
    };
    match outcome {
        Outcome::SynAckRetransmit => stats.synack_retransmits += 1,
        Outcome::Closed {
            kind,
            initiator,
            duration_ns,
        } => {
            bump(&mut stats.closes, close_index(kind, initiator));
            observe(slot, role, HistogramKind::ConnectionDuration, duration_ns);
            records::write(&st.key, flow, Settled::Closed { kind, initiator }, now);
            remove(&st.key, flow_hash(&st.key), stats);
        }
        _ => {}
    }
    true
}

/// A connection made from a SYN cookie (the stack completes it; the
/// half-open table never saw its SYN): counted completed, per port and
/// per interface, so the flood detector's completion ratio sees it.
#[inline(always)]
pub fn count_cookie_completion(port: u16, slot: u32) {
    if let Some(stats) = ports::counters(port, slot, Role::Server) {
        stats.completed += 1;
    }
    if let Some(stats) = stats_of(slot, Role::Server) {
        stats.completed += 1;
    }
}

#[inline(always)]
fn remove(key: &FlowKey, hash: u32, stats: &mut HandshakeCounters) {
    if FLOWS.remove(key).is_ok() {
        stats.removed += 1;
        filter_add(hash, u32::MAX);
    }
}

/// Whether `FLOWS` may hold a connection of flow hash `hash` (false: it
/// holds none, see `monitor_common::flow_filter`).
#[inline(always)]
fn may_be_established(hash: u32) -> bool {
    match FLOW_FILTER.get_ptr(flow_filter::bucket(hash)) {
        // SAFETY: a valid map value; other CPUs may write it meanwhile,
        // and either count they leave is a right answer for this segment.
        Some(count) => (unsafe { core::ptr::read_volatile(count) }) != 0,
        None => true,
    }
}

/// Adds `delta` (wrapping: `u32::MAX` subtracts one) to the bucket of
/// `hash`.
#[inline(always)]
fn filter_add(hash: u32, delta: u32) {
    if let Some(count) = FLOW_FILTER.get_ptr_mut(flow_filter::bucket(hash)) {
        // SAFETY: a valid, aligned map value, alive for the program's run;
        // every CPU writes it with this atomic add (BPF_XADD: `core` has
        // no atomics for the BPF target).
        unsafe {
            core::arch::asm!(
                "lock *(u32 *)({count} + 0) += {delta}",
                count = in(reg) count,
                delta = in(reg) u64::from(delta),
                options(nostack),
            );
        }
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
