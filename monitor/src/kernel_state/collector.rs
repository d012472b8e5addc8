//! `/metrics` for the tracepoint counters, read at scrape time like the
//! packet counters: one per-CPU lookup, summed over the CPUs.

use std::sync::Mutex;

use aya::maps::{MapData, PerCpuArray};
use monitor_common::tcp_state::{
    KernelEvent, KernelStateCounters, OTHER_CELL, OTHER_NAME, transition_of,
};
use prometheus::{
    IntCounterVec, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};

pub const STATE_TRANSITIONS: &str = "handshake_tcp_state_transitions_total";
pub const SYNACK_RETRANSMITS: &str = "handshake_kernel_synack_retransmits_total";
pub const RESETS: &str = "handshake_kernel_resets_total";
pub const UNATTRIBUTED: &str = "handshake_kernel_unattributed_events_total";

pub struct KernelStateCollector {
    map: Mutex<PerCpuArray<MapData, KernelStateCounters>>,
    descs: Vec<Desc>,
}

/// The metric families, built afresh for every scrape (the values are the
/// kernel's totals, not increments).
struct Families {
    transitions: IntCounterVec,
    synack: IntCounterVec,
    resets: IntCounterVec,
    unattributed: IntCounterVec,
}

impl Families {
    fn new() -> Self {
        let vec = |name, help, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition")
        };
        Self {
            transitions: vec(
                STATE_TRANSITIONS,
                "TCP socket state changes in this network namespace, as the kernel made them \
                 (tracepoint inet_sock_set_state); only pairs seen at least once are exported.",
                &["from", "to"],
            ),
            synack: vec(
                SYNACK_RETRANSMITS,
                "SYN-ACKs a listener in this network namespace sent again (tracepoint \
                 tcp_retransmit_synack).",
                &[],
            ),
            resets: vec(
                RESETS,
                "TCP resets in this network namespace: sent by its stack, or received by one \
                 of its sockets (tracepoints tcp_send_reset, tcp_receive_reset).",
                &["direction"],
            ),
            unattributed: vec(
                UNATTRIBUTED,
                "Tracepoint events whose network namespace could not be read (not counted \
                 anywhere else); non-zero means a bug.",
                &[],
            ),
        }
    }

    fn all(&self) -> [&IntCounterVec; 4] {
        [
            &self.transitions,
            &self.synack,
            &self.resets,
            &self.unattributed,
        ]
    }
}

impl KernelStateCollector {
    pub fn new(map: PerCpuArray<MapData, KernelStateCounters>) -> Self {
        let descs = Families::new()
            .all()
            .iter()
            .flat_map(|v| v.desc().into_iter().cloned())
            .collect();
        Self {
            map: Mutex::new(map),
            descs,
        }
    }

    /// The counters summed over the CPUs.
    pub fn read(&self) -> std::io::Result<KernelStateCounters> {
        let map = match self.map.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        let values = map.get(&0, 0).map_err(std::io::Error::other)?;
        let mut sum = KernelStateCounters::default();
        for cpu in values.iter() {
            sum.accumulate(cpu);
        }
        Ok(sum)
    }
}

impl Collector for KernelStateCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let families = Families::new();
        let counters = match self.read() {
            Ok(counters) => counters,
            Err(err) => {
                tracing::warn!("reading the tracepoint counters failed: {err}");
                return Vec::new();
            }
        };
        for (cell, &count) in counters.transitions.iter().enumerate() {
            // Non-zero cells only: 145 mostly-empty series per host would
            // cost more than they say.
            if count == 0 {
                continue;
            }
            let (from, to) = match transition_of(cell) {
                Some((from, to)) => (from.name(), to.name()),
                None if cell == OTHER_CELL => (OTHER_NAME, OTHER_NAME),
                None => continue,
            };
            families
                .transitions
                .with_label_values(&[from, to])
                .inc_by(count);
        }
        families
            .synack
            .with_label_values::<&str>(&[])
            .inc_by(counters.event(KernelEvent::SynackRetransmit));
        for (direction, event) in [
            ("sent", KernelEvent::ResetSent),
            ("received", KernelEvent::ResetReceived),
        ] {
            families
                .resets
                .with_label_values(&[direction])
                .inc_by(counters.event(event));
        }
        families
            .unattributed
            .with_label_values::<&str>(&[])
            .inc_by(counters.event(KernelEvent::Unattributed));
        families.all().iter().flat_map(|v| v.collect()).collect()
    }
}
