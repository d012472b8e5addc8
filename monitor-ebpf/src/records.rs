//! Handshake records, kernel half (see `monitor_common::record`): when a
//! handshake completes or is reset, and when a tracked connection ends,
//! the flow's key and state go to the daemon through a ring buffer. Only
//! flows that took a half-open slot get here, so a SYN flood adds no
//! write per SYN; and each CPU's records are budgeted on top of that.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use monitor_common::{
    flow::{CloseKind, FlowKey, FlowState, Initiator, TokenBucket},
    record::{FlowRecord, RecordBudget, RecordCounters, RecordKind},
};

/// 1 MiB: about ten thousand records between two drains.
#[map]
pub static RECORDS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Records each CPU may write per second, written by the daemon.
#[map]
pub static RECORD_CONFIG: Array<RecordBudget> = Array::with_max_entries(1, 0);

#[map]
static RECORD_BUDGET: PerCpuArray<TokenBucket> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static RECORD_COUNTERS: PerCpuArray<RecordCounters> = PerCpuArray::with_max_entries(1, 0);

/// Past this much unread data the reader is woken at once; below it,
/// records wait for its next timed drain (no wake-up per record).
const WAKEUP_THRESHOLD: u64 = 256 << 10;

/// How a record's flow was settled.
pub enum Settled {
    Completed,
    /// A RST ended the handshake; `from_local`: the host sent it.
    Reset {
        from_local: bool,
    },
    Closed {
        kind: CloseKind,
        initiator: Initiator,
    },
}

/// Writes one record of `key`'s flow, if the budget allows. `now` is the
/// settling segment's precise time, or 0 when it was not read.
#[inline(always)]
pub fn write(key: &FlowKey, state: &FlowState, settled: Settled, now: u64) {
    let Some(counters) = RECORD_COUNTERS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let counters = unsafe { &mut *counters };
    let admitted = match (RECORD_CONFIG.get(0), RECORD_BUDGET.get_ptr_mut(0)) {
        // SAFETY: per-CPU value, only this CPU touches it during the run.
        (Some(cfg), Some(budget)) => unsafe { (*budget).take(cfg, crate::clock::coarse_now()) },
        _ => false,
    };
    if !admitted {
        counters.over_budget += 1;
        return;
    }
    let (kind, from_local, close_kind, initiator) = match settled {
        Settled::Completed => (RecordKind::Completed, false, 0, 0),
        Settled::Reset { from_local } => (RecordKind::Reset, from_local, 0, 0),
        Settled::Closed { kind, initiator } => (
            RecordKind::Closed,
            initiator == Initiator::Local,
            kind as u8,
            initiator as u8,
        ),
    };
    let ts_ns = if now == 0 { crate::clock::now() } else { now };
    let record = FlowRecord {
        key: *key,
        state: *state,
        ts_ns,
        kind: kind as u8,
        from_local: from_local as u8,
        close_kind,
        initiator,
        _pad: [0; 4],
    };
    let wake = if RECORDS.query(u64::from(BPF_RB_AVAIL_DATA)) > WAKEUP_THRESHOLD {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    match RECORDS.output::<FlowRecord>(&record, u64::from(wake)) {
        Ok(()) => counters.written += 1,
        Err(_) => counters.ring_full += 1,
    }
}
