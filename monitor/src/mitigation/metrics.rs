//! Mitigation metrics, read from the kernel counters and the policy table
//! at scrape time.

use std::sync::{Arc, Mutex};

use monitor_common::mitigation::{DropReason, ExemptReason, Mode, kind, origin};
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
};

use super::Mitigation;
use crate::promfam::{Family, desc};

const DROPPED: (&str, &str) = (
    "handshake_xdp_dropped_packets_total",
    "Packets the XDP program dropped (mode enforce), by reason: blocklist, source_rate, prefix_rate.",
);
const DRY_RUN: (&str, &str) = (
    "handshake_mitigation_dry_run_drops_total",
    "SYNs the XDP program would have dropped had the mode been enforce (mode dry-run), by reason.",
);
const EXEMPT: (&str, &str) = (
    "handshake_mitigation_exempt_syns_total",
    "SYNs let through whatever the limits say: allowlist, or protected (the source completed a handshake recently).",
);
const JUDGED: (&str, &str) = (
    "handshake_mitigation_judged_syns_total",
    "Ingress SYNs the mitigation judged (mode dry-run or enforce).",
);
const MODE: (&str, &str) = (
    "handshake_mitigation_mode",
    "1 for the mitigation mode in force (off, dry-run, enforce), 0 for the others.",
);
const BLOCKS: (&str, &str) = (
    "handshake_blocklist_entries",
    "Blocks in force, by origin (manual, auto).",
);
const CAPACITY: (&str, &str) = (
    "handshake_blocklist_capacity",
    "Most blocks the blocklist holds (mitigation.blocklist_capacity).",
);
const ALLOWED: (&str, &str) = ("handshake_allowlist_entries", "Prefixes in the allowlist.");
const CHANGES: (&str, &str) = (
    "handshake_blocklist_changes_total",
    "Blocklist changes since the daemon started: added_manual, added_auto, removed, expired, auto_skipped_full (an offender not blocked because the blocklist or the automatic cap was full).",
);

pub struct MitigationCollector {
    mitigation: Arc<Mutex<Mitigation>>,
    descs: Vec<Desc>,
}

impl MitigationCollector {
    pub fn new(mitigation: Arc<Mutex<Mitigation>>) -> Self {
        let descs = vec![
            desc(DROPPED.0, DROPPED.1, &["interface", "reason"]),
            desc(DRY_RUN.0, DRY_RUN.1, &["interface", "reason"]),
            desc(EXEMPT.0, EXEMPT.1, &["interface", "reason"]),
            desc(JUDGED.0, JUDGED.1, &["interface"]),
            desc(MODE.0, MODE.1, &["mode"]),
            desc(BLOCKS.0, BLOCKS.1, &["origin"]),
            desc(CAPACITY.0, CAPACITY.1, &[]),
            desc(ALLOWED.0, ALLOWED.1, &[]),
            desc(CHANGES.0, CHANGES.1, &["change"]),
        ];
        Self { mitigation, descs }
    }
}

impl Collector for MitigationCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let m = self.mitigation.lock().unwrap_or_else(|p| p.into_inner());
        let mut dropped = Family::counter(DROPPED.0, DROPPED.1);
        let mut dry_run = Family::counter(DRY_RUN.0, DRY_RUN.1);
        let mut exempt = Family::counter(EXEMPT.0, EXEMPT.1);
        let mut judged = Family::counter(JUDGED.0, JUDGED.1);
        for (name, slot) in m.interfaces() {
            let Ok(c) = m.counters(*slot) else { continue };
            for reason in DropReason::ALL {
                let labels = [("interface", name.as_str()), ("reason", reason.name())];
                dropped.add(&labels, c.dropped[reason as usize] as f64);
                dry_run.add(&labels, c.dry_run[reason as usize] as f64);
            }
            for reason in ExemptReason::ALL {
                let labels = [("interface", name.as_str()), ("reason", reason.name())];
                exempt.add(&labels, c.exempt[reason as usize] as f64);
            }
            judged.add(&[("interface", name.as_str())], c.judged as f64);
        }
        let mut mode = Family::gauge(MODE.0, MODE.1);
        for each in Mode::ALL {
            let on = each == m.settings().mode;
            mode.add(&[("mode", each.name())], if on { 1.0 } else { 0.0 });
        }
        let now = crate::clock::monotonic_ns();
        let entries = m.policy().entries().unwrap_or_default();
        let mut blocks = Family::gauge(BLOCKS.0, BLOCKS.1);
        for (label, wanted) in [("manual", origin::MANUAL), ("auto", origin::AUTO)] {
            let n = entries
                .iter()
                .filter(|l| l.entry.origin == wanted && l.entry.blocks(now))
                .count();
            blocks.add(&[("origin", label)], n as f64);
        }
        let mut capacity = Family::gauge(CAPACITY.0, CAPACITY.1);
        capacity.add(&[], m.policy().capacity() as f64);
        let mut allowed = Family::gauge(ALLOWED.0, ALLOWED.1);
        let allows = entries
            .iter()
            .filter(|l| l.entry.kind == kind::ALLOW)
            .count();
        allowed.add(&[], allows as f64);
        let t = m.totals();
        let mut changes = Family::counter(CHANGES.0, CHANGES.1);
        for (label, value) in [
            ("added_manual", t.added_manual),
            ("added_auto", t.added_auto),
            ("removed", t.removed),
            ("expired", t.expired),
            ("auto_skipped_full", t.auto_skipped_full),
        ] {
            changes.add(&[("change", label)], value as f64);
        }
        vec![
            dropped.finish(),
            dry_run.finish(),
            exempt.finish(),
            judged.finish(),
            mode.finish(),
            blocks.finish(),
            capacity.finish(),
            allowed.finish(),
            changes.finish(),
        ]
    }
}
