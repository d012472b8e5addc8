//! Metrics of the handshake tracker: results, half-open flows, timing
//! histograms, closes, anomalies, and the flow table's own health.

use std::sync::{Arc, Mutex};

use monitor_common::{
    flow::{Anomaly, CloseKind, HandshakeCounters, Initiator, Role, close_index},
    histogram::HistogramKind,
};
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::{
    promfam::{Family, desc},
    {clock::monotonic_ns, flows::FlowTracker},
};

const HANDSHAKES: &str = "handshake_tcp_handshakes_total";
const HALF_OPEN: &str = "handshake_tcp_half_open";
const PHASE_SECONDS: &str = "handshake_tcp_handshake_duration_seconds";
const CONNECTION_SECONDS: &str = "handshake_tcp_connection_duration_seconds";
const SYN_RETRANSMITS: &str = "handshake_tcp_syn_retransmits_total";
const SYNACK_RETRANSMITS: &str = "handshake_tcp_synack_retransmits_total";
const ANOMALIES: &str = "handshake_tcp_handshake_anomalies_total";
const CLOSES: &str = "handshake_tcp_closes_total";
const TABLE_ENTRIES: &str = "handshake_flow_table_entries";
const TABLE_CAPACITY: &str = "handshake_flow_table_capacity";
const TABLE_INSERTS: &str = "handshake_flow_table_inserts_total";
const TABLE_INSERT_FAILURES: &str = "handshake_flow_table_insert_failures_total";
const TABLE_EVICTIONS: &str = "handshake_flow_table_evictions_total";
const SWEEP_SECONDS: &str = "handshake_flow_table_sweep_duration_seconds";
const HALF_OPEN_SLOTS: &str = "handshake_half_open_table_slots";
const HALF_OPEN_USED: &str = "handshake_half_open_table_used";
const HALF_OPEN_STARTS: &str = "handshake_half_open_table_starts_total";
const HALF_OPEN_DISPLACED: &str = "handshake_half_open_table_displaced_total";

/// (name, help, labels) of every family this collector builds.
const FAMILIES: [(&str, &str, &[&str]); 18] = [
    (
        HANDSHAKES,
        "TCP handshakes by role and result (completed, reset, timed_out).",
        &["interface", "role", "result"],
    ),
    (
        HALF_OPEN,
        "Handshakes started but not yet completed, reset or timed out.",
        &["interface", "role"],
    ),
    (
        PHASE_SECONDS,
        "Time between handshake steps on the interface: syn_to_synack, synack_to_ack.",
        &["interface", "role", "phase"],
    ),
    (
        CONNECTION_SECONDS,
        "Connection lifetime from established to closed.",
        &["interface", "role"],
    ),
    (
        SYN_RETRANSMITS,
        "SYNs repeated with the same ISN for a tracked handshake.",
        &["interface", "role"],
    ),
    (
        SYNACK_RETRANSMITS,
        "SYN-ACKs repeated with the same ISN for a tracked handshake.",
        &["interface", "role"],
    ),
    (
        ANOMALIES,
        "Handshake segments whose sequence arithmetic is wrong; they do not advance the handshake.",
        &["interface", "role", "reason"],
    ),
    (
        CLOSES,
        "Connection terminations by kind (graceful, reset) and initiator (local, remote, simultaneous).",
        &["interface", "kind", "initiator"],
    ),
    (
        TABLE_ENTRIES,
        "Established connections in the flow table.",
        &[],
    ),
    (TABLE_CAPACITY, "Size of the flow table.", &[]),
    (
        TABLE_INSERTS,
        "Completed handshakes inserted into the flow table.",
        &[],
    ),
    (
        TABLE_INSERT_FAILURES,
        "Handshakes not tracked: budget (SYNs beyond the insert budget) or error (completed handshakes the flow table refused).",
        &["reason"],
    ),
    (
        HALF_OPEN_SLOTS,
        "Slots of the half-open table (handshakes from SYN to final ACK).",
        &[],
    ),
    (
        HALF_OPEN_USED,
        "Occupied half-open slots at the last sweep: handshakes in flight and timed-out ones not yet replaced.",
        &[],
    ),
    (
        HALF_OPEN_STARTS,
        "SYNs that took a half-open slot (tracked handshakes).",
        &[],
    ),
    (
        HALF_OPEN_DISPLACED,
        "Handshakes within their timeout whose half-open slot a colliding SYN took; they are no longer followed.",
        &[],
    ),
    (
        TABLE_EVICTIONS,
        "Flows the LRU table pushed out to make room.",
        &[],
    ),
    (
        SWEEP_SECONDS,
        "How long the last sweep of the flow table took.",
        &[],
    ),
];

pub struct FlowCollector {
    tracker: Arc<Mutex<FlowTracker>>,
    interfaces: Vec<(String, u32)>,
    descs: Vec<Desc>,
}

impl FlowCollector {
    pub fn new(tracker: Arc<Mutex<FlowTracker>>, interfaces: Vec<(String, u32)>) -> Self {
        let mut descs: Vec<Desc> = FAMILIES
            .iter()
            .map(|(name, help, labels)| desc(name, help, labels))
            .collect();
        descs.extend(crate::port_metrics::descs());
        Self {
            tracker,
            interfaces,
            descs,
        }
    }
}

fn help(name: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(n, ..)| *n == name)
        .map_or("", |(_, help, _)| help)
}

impl Collector for FlowCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut tracker = match self.tracker.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Swept now, so the gauges (half-open, entries) and timeouts are
        // those of this moment: the half-open table is read in place (a few
        // ms at most), the flow table counted when it is small (see
        // `FlowTracker::sweep`).
        if let Err(err) = tracker.sweep(monotonic_ns()) {
            tracing::warn!("sweeping the flow table failed: {err}");
        }
        let mut out = Families::new();
        let mut table = HandshakeCounters::default();
        for (name, slot) in &self.interfaces {
            for role in Role::ALL {
                let counters = match tracker.handshakes(*slot, role) {
                    Ok(c) => c,
                    Err(err) => {
                        tracing::warn!(interface = %name, "reading handshake counters failed: {err}");
                        continue;
                    }
                };
                table.accumulate(&counters);
                out.interface_role(&tracker, name, *slot, role, &counters);
            }
        }
        out.table(&tracker, &table);
        let mut families = out.finish();
        families.extend(crate::port_metrics::collect(&tracker, &self.interfaces));
        families
    }
}

struct Families {
    handshakes: Family,
    half_open: Family,
    phases: Family,
    connections: Family,
    syn_retransmits: Family,
    synack_retransmits: Family,
    anomalies: Family,
    closes: Family,
    table: Vec<Family>,
}

impl Families {
    fn new() -> Self {
        Self {
            handshakes: Family::counter(HANDSHAKES, help(HANDSHAKES)),
            half_open: Family::gauge(HALF_OPEN, help(HALF_OPEN)),
            phases: Family::histogram(PHASE_SECONDS, help(PHASE_SECONDS)),
            connections: Family::histogram(CONNECTION_SECONDS, help(CONNECTION_SECONDS)),
            syn_retransmits: Family::counter(SYN_RETRANSMITS, help(SYN_RETRANSMITS)),
            synack_retransmits: Family::counter(SYNACK_RETRANSMITS, help(SYNACK_RETRANSMITS)),
            anomalies: Family::counter(ANOMALIES, help(ANOMALIES)),
            closes: Family::counter(CLOSES, help(CLOSES)),
            table: Vec::new(),
        }
    }

    fn interface_role(
        &mut self,
        tracker: &FlowTracker,
        iface: &str,
        slot: u32,
        role: Role,
        c: &HandshakeCounters,
    ) {
        let totals = tracker.totals();
        let r = role.name();
        let timed_out = totals.timed_out.get(&(slot, role)).copied().unwrap_or(0);
        for (result, value) in [
            ("completed", c.completed),
            ("reset", c.reset),
            ("timed_out", timed_out),
        ] {
            self.handshakes.add(
                &[("interface", iface), ("role", r), ("result", result)],
                value as f64,
            );
        }
        let half_open = totals.half_open.get(&(slot, role)).copied().unwrap_or(0);
        self.half_open
            .add(&[("interface", iface), ("role", r)], half_open as f64);
        for kind in HistogramKind::ALL {
            let Ok(h) = tracker.histogram(slot, role, kind) else {
                continue;
            };
            if kind == HistogramKind::ConnectionDuration {
                self.connections.add_histogram(
                    &[("interface", iface), ("role", r)],
                    kind.bounds(),
                    &h.counts,
                    h.sum_ns,
                );
            } else {
                let labels = [
                    ("interface", iface),
                    ("role", r),
                    ("phase", kind.phase_name()),
                ];
                self.phases
                    .add_histogram(&labels, kind.bounds(), &h.counts, h.sum_ns);
            }
        }
        let ir = [("interface", iface), ("role", r)];
        self.syn_retransmits.add(&ir, c.syn_retransmits as f64);
        self.synack_retransmits
            .add(&ir, c.synack_retransmits as f64);
        for anomaly in Anomaly::ALL {
            let labels = [
                ("interface", iface),
                ("role", r),
                ("reason", anomaly.name()),
            ];
            self.anomalies
                .add(&labels, c.anomalies[anomaly as usize] as f64);
        }
        if role == Role::Client {
            return;
        }
        // Closes are reported per interface; both roles' flows add up.
        let client = tracker.handshakes(slot, Role::Client).unwrap_or_default();
        for kind in CloseKind::ALL {
            for initiator in Initiator::ALL {
                if kind == CloseKind::Reset && initiator == Initiator::Simultaneous {
                    continue;
                }
                let i = close_index(kind, initiator);
                let labels = [
                    ("interface", iface),
                    ("kind", kind.name()),
                    ("initiator", initiator.name()),
                ];
                self.closes
                    .add(&labels, (c.closes[i] + client.closes[i]) as f64);
            }
        }
    }

    fn table(&mut self, tracker: &FlowTracker, c: &HandshakeCounters) {
        let totals = tracker.totals();
        let gauge = |name: &str, value: f64| {
            let mut f = Family::gauge(name, help(name));
            f.add(&[], value);
            f
        };
        let counter = |name: &str, value: u64| {
            let mut f = Family::counter(name, help(name));
            f.add(&[], value as f64);
            f
        };
        let mut failures = Family::counter(TABLE_INSERT_FAILURES, help(TABLE_INSERT_FAILURES));
        failures.add(&[("reason", "budget")], c.insert_skipped as f64);
        failures.add(&[("reason", "error")], c.insert_failed as f64);
        self.table = vec![
            gauge(TABLE_ENTRIES, totals.entries as f64),
            gauge(TABLE_CAPACITY, f64::from(tracker.settings().table_size)),
            counter(TABLE_INSERTS, c.promoted),
            failures,
            counter(TABLE_EVICTIONS, totals.evictions),
            gauge(SWEEP_SECONDS, totals.last_duration.as_secs_f64()),
            gauge(HALF_OPEN_SLOTS, tracker.half_open_slots() as f64),
            gauge(HALF_OPEN_USED, totals.half_open_slots_used as f64),
            counter(HALF_OPEN_STARTS, c.inserts),
            counter(HALF_OPEN_DISPLACED, c.half_open_displaced),
        ];
    }

    fn finish(self) -> Vec<MetricFamily> {
        let mut out: Vec<MetricFamily> = [
            self.handshakes,
            self.half_open,
            self.phases,
            self.connections,
            self.syn_retransmits,
            self.synack_retransmits,
            self.anomalies,
            self.closes,
        ]
        .into_iter()
        .map(Family::finish)
        .collect();
        out.extend(self.table.into_iter().map(Family::finish));
        out
    }
}
