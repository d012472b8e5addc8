//! The half-open table, kernel half (see `monitor_common::half_open`): a
//! SYN takes one slot of its CPU's partition, later handshake segments
//! find it by probing every partition's slot for the tuple, and a
//! completed handshake leaves it for the flow table.

use aya_ebpf::{
    cty::c_void,
    helpers::generated::{bpf_get_smp_processor_id, bpf_loop},
    macros::map,
    maps::{Array, PerCpuArray},
};
use monitor_common::{
    flow::{FlowKey, FlowState, HandshakeCounters, Role, TokenBucket, handshake_index},
    half_open::{Age, FlowConfig, HalfOpen, MAX_PARTITIONS, SkippedSyns, flow_hash, slot_index},
    handshake::{Outcome, on_segment},
};

use crate::segment::Staged;

/// Default size; the daemon sets the configured one before loading.
const DEFAULT_SLOTS: u32 = 262_144;
/// `BPF_F_MMAPABLE`: the daemon reads the table in place.
const MMAPABLE: u32 = 1 << 10;

#[map]
pub static HALF_OPEN: Array<HalfOpen> = Array::with_max_entries(DEFAULT_SLOTS, MMAPABLE);

#[map]
pub static FLOW_CONFIG: Array<FlowConfig> = Array::with_max_entries(1, 0);

#[map]
pub static INSERT_BUDGET: PerCpuArray<TokenBucket> = PerCpuArray::with_max_entries(1, 0);

#[map]
static SKIPPED: PerCpuArray<SkippedSyns> = PerCpuArray::with_max_entries(1, 0);

/// Whether this CPU's last SYN of flow hash `hash` was over the insert
/// budget (see `SkippedSyns`): its SYN-ACK then needs no table.
#[inline(always)]
pub fn skipped_here(hash: u32) -> bool {
    SKIPPED.get(0).is_some_and(|s| s.holds(hash))
}

#[inline(always)]
pub fn config() -> Option<&'static FlowConfig> {
    FLOW_CONFIG.get(0)
}

#[inline(always)]
fn slot_at(index: u32) -> Option<&'static mut HalfOpen> {
    // SAFETY: a valid map value for the program's run. Two CPUs may write
    // one slot only when their partitions' probes meet on one tuple; the
    // worst a torn entry does is misjudge that one handshake.
    HALF_OPEN.get_ptr_mut(index).map(|p| unsafe { &mut *p })
}

#[inline(always)]
fn this_cpu(cfg: &FlowConfig) -> u32 {
    // SAFETY: no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    if cpu < cfg.partitions {
        cpu
    } else {
        cpu.checked_rem(cfg.partitions).unwrap_or(0)
    }
}

/// Whole-key equality in five 8-byte compares (a derived `==` compares
/// byte arrays, which LLVM may turn into a `bcmp` call BPF does not have).
#[inline(always)]
fn same_key(a: &FlowKey, b: &FlowKey) -> bool {
    let (a, b) = (
        (a as *const FlowKey).cast::<u64>(),
        (b as *const FlowKey).cast::<u64>(),
    );
    let mut diff = 0u64;
    for i in 0..5 {
        // SAFETY: FlowKey is 40 bytes of plain integers.
        diff |= unsafe { a.add(i).read_unaligned() ^ b.add(i).read_unaligned() };
    }
    diff == 0
}

/// What became of a SYN.
pub enum SynFate {
    /// A retransmission of the handshake in its slot.
    Retransmit,
    /// A new handshake now in the slot.
    Started,
    /// Not tracked: the insert budget is spent.
    Skipped,
}

/// Follows a SYN (`role` from its direction). `now_coarse` is the
/// packet's coarse clock reading, enough for the budget and the timeout;
/// the precise clock is read only for a SYN that is tracked, whose time
/// the latency histograms need.
#[inline(always)]
pub fn syn(st: &Staged, role: Role, now_coarse: u64, stats: &mut HandshakeCounters) -> SynFate {
    let Some(cfg) = config() else {
        return SynFate::Skipped;
    };
    // The budget first: above it a SYN touches no table at all (a slot
    // read is a cache and TLB miss that costs more than everything else
    // the SYN does). A retransmission spends a token too.
    let admitted = match INSERT_BUDGET.get_ptr_mut(0) {
        // SAFETY: per-CPU value, only this CPU touches it during the run.
        Some(budget) => unsafe { (*budget).take(&cfg.budget, now_coarse) },
        None => false,
    };
    let hash = flow_hash(&st.key);
    let skipped = SKIPPED.get_ptr_mut(0);
    if !admitted {
        stats.insert_skipped += 1;
        if let Some(skipped) = skipped {
            // SAFETY: per-CPU value, only this CPU touches it during the run.
            unsafe { (*skipped).remember(hash) };
        }
        return SynFate::Skipped;
    }
    if let Some(skipped) = skipped {
        // SAFETY: as above.
        unsafe { (*skipped).forget(hash) };
    }
    let index = slot_index(this_cpu(cfg), hash, cfg.slots_per_cpu);
    let Some(slot) = slot_at(index) else {
        return SynFate::Skipped;
    };
    let age = slot.age(now_coarse, cfg.handshake_timeout_ns);
    if age == Age::Live
        && same_key(&slot.key, &st.key)
        && on_segment(Some(&mut slot.state), &st.seg, 0) == Outcome::SynRetransmit
    {
        stats.syn_retransmits += 1;
        return SynFate::Retransmit;
    }
    match age {
        Age::Empty => {}
        Age::Live => count_lost(slot, false),
        Age::Expired => count_lost(slot, true),
    }
    let now = crate::clock::now();
    slot.key = st.key;
    slot.state = FlowState::on_syn(role, st.seg.seq, now);
    stats.inserts += 1;
    SynFate::Started
}

/// Counts the handshake a new SYN pushes out of its slot, against its own
/// interface, role and port.
#[inline(always)]
fn count_lost(old: &HalfOpen, expired: bool) {
    let role = old.state.role();
    let index = handshake_index(u32::from(old.key.slot), role);
    if let Some(stats) = crate::flows::HANDSHAKES.get_ptr_mut(index) {
        // SAFETY: per-CPU value, only this CPU touches it during the run.
        let stats = unsafe { &mut *stats };
        if expired {
            stats.half_open_expired += 1;
        } else {
            stats.half_open_displaced += 1;
        }
    }
    if expired {
        crate::ports::count_timeout(&old.key, role);
    }
}

/// The live half-open handshake of `key`, from any CPU's partition (this
/// CPU's first: where the SYN usually was). `hash` is `flow_hash(key)`,
/// which the caller has already computed.
#[inline(always)]
pub fn find(key: &FlowKey, hash: u32, now_coarse: u64) -> Option<&'static mut HalfOpen> {
    let cfg = config()?;
    let own = this_cpu(cfg);
    let index = slot_index(own, hash, cfg.slots_per_cpu);
    let slot = slot_at(index)?;
    if slot.age(now_coarse, cfg.handshake_timeout_ns) == Age::Live && same_key(&slot.key, key) {
        return Some(slot);
    }
    let mut probe = Probe {
        key,
        now_coarse,
        timeout_ns: cfg.handshake_timeout_ns,
        hash,
        own,
        slots_per_cpu: cfg.slots_per_cpu,
        found: NOT_FOUND,
    };
    // `bpf_loop` rather than a loop: the verifier walks its callback once,
    // where an unrolled walk of up to 256 partitions at every call site
    // was two thirds of all it verified (and of every start's CPU). The
    // kernel inlines the call (its callback is a constant, flags are 0).
    // SAFETY: the callback's context is `probe`, alive for the call.
    unsafe {
        bpf_loop(
            cfg.partitions.min(MAX_PARTITIONS),
            probe_partition as *mut c_void,
            (&raw mut probe).cast(),
            0,
        );
    }
    if probe.found == NOT_FOUND {
        return None;
    }
    slot_at(probe.found)
}

/// No partition holds the handshake.
const NOT_FOUND: u32 = u32::MAX;

/// One cross-partition search of [`find`]: what it looks for, and the
/// slot index where it found it.
#[repr(C)]
struct Probe<'a> {
    key: &'a FlowKey,
    now_coarse: u64,
    timeout_ns: u64,
    hash: u32,
    own: u32,
    slots_per_cpu: u32,
    found: u32,
}

/// `bpf_loop` callback: looks in partition `cpu`; 1 stops the loop.
extern "C" fn probe_partition(cpu: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `find` passes its `Probe`, alive for the whole loop.
    let probe = unsafe { &mut *ctx.cast::<Probe<'_>>() };
    let cpu = cpu as u32;
    if cpu == probe.own {
        return 0;
    }
    let index = slot_index(cpu, probe.hash, probe.slots_per_cpu);
    match slot_at(index) {
        Some(slot)
            if slot.age(probe.now_coarse, probe.timeout_ns) == Age::Live
                && same_key(&slot.key, probe.key) =>
        {
            probe.found = index;
            1
        }
        _ => 0,
    }
}

/// Empties a slot whose handshake completed or was reset.
#[inline(always)]
pub fn clear(slot: &mut HalfOpen) {
    slot.state.phase = 0;
}
