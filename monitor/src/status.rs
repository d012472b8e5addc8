//! `handshake-monitor status` and `top`: a summary of the running daemon,
//! asked for over the control socket. The daemon builds a [`Status`] from
//! its live state; the client prints it once, or once a second with rates.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use monitor_common::{
    flow::Role,
    mitigation::{DropReason, kind, origin},
};
use serde::{Deserialize, Serialize};

use crate::{
    detector::AlertBoard, flows::FlowTracker, loader::Attachment, mitigation::Mitigation,
    ports::PortLabel,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_secs: u64,
    pub persist: bool,
    pub mitigation_mode: String,
    pub interfaces: Vec<InterfaceStatus>,
    pub firing_alerts: Vec<FiringAlert>,
    pub blocks_manual: u64,
    pub blocks_auto: u64,
    pub flow_table_entries: u64,
    pub flow_table_capacity: u64,
    /// `handshake-monitor watch` clients connected.
    #[serde(default)]
    pub watchers: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    pub xdp_mode: String,
    pub tc_mode: String,
    /// Server role: SYNs received (tracked, untracked or dropped) and
    /// handshakes completed.
    pub syns: u64,
    pub completed: u64,
    pub half_open: u64,
    /// Dropped in XDP by reason (`blocklist`, `source_rate`,
    /// `prefix_rate`).
    pub dropped: Vec<(String, u64)>,
    /// Busiest named ports: (port, SYNs, completed), most SYNs first.
    pub top_ports: Vec<(u16, u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringAlert {
    pub alertname: String,
    pub interface: String,
    pub port: String,
    pub for_secs: u64,
}

/// What the daemon reads a status from.
#[derive(Clone)]
pub struct StatusSource {
    pub started: Instant,
    pub persist: bool,
    pub attachments: Vec<Attachment>,
    pub tracker: Arc<Mutex<FlowTracker>>,
    pub board: AlertBoard,
}

/// Ports shown per interface.
const TOP_PORTS: usize = 5;

impl StatusSource {
    /// With `self.tracker` and the mitigation locked by the caller, in
    /// that order (the flow sweep's: the other would deadlock with it).
    pub fn read(&self, tracker: &FlowTracker, mitigation: &Mitigation) -> Status {
        let now_ns = crate::clock::monotonic_ns();
        let entries = mitigation.policy().entries().unwrap_or_default();
        let blocks = |wanted| {
            entries
                .iter()
                .filter(|l| l.entry.kind == kind::BLOCK && l.entry.origin == wanted)
                .filter(|l| l.entry.blocks(now_ns))
                .count() as u64
        };
        let interfaces = self
            .attachments
            .iter()
            .map(|a| interface_status(a, tracker, mitigation))
            .collect();
        let firing_alerts = self
            .board
            .fired()
            .into_iter()
            .filter(|a| a.firing)
            .map(|a| FiringAlert {
                alertname: a.key.0.to_string(),
                interface: a.key.1.clone(),
                port: a.key.2.clone(),
                for_secs: a.starts_at.elapsed().map_or(0, |d| d.as_secs()),
            })
            .collect();
        Status {
            version: crate::VERSION.to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            persist: self.persist,
            mitigation_mode: mitigation.settings().mode.name().to_string(),
            interfaces,
            firing_alerts,
            blocks_manual: blocks(origin::MANUAL),
            blocks_auto: blocks(origin::AUTO),
            flow_table_entries: tracker.totals().entries,
            flow_table_capacity: u64::from(tracker.settings().table_size),
            // The hub's, filled in by the control socket.
            watchers: 0,
        }
    }
}

fn interface_status(
    a: &Attachment,
    tracker: &FlowTracker,
    mitigation: &Mitigation,
) -> InterfaceStatus {
    let c = tracker.handshakes(a.slot, Role::Server).unwrap_or_default();
    let refused = tracker.ports().refused_syns(a.slot).unwrap_or(0);
    let drops = mitigation.counters(a.slot).unwrap_or_default();
    let mut top_ports: Vec<(u16, u64, u64)> = tracker
        .ports()
        .labels()
        .into_iter()
        .filter_map(|label| match label {
            PortLabel::Named(port) => {
                let p = tracker.ports().counters(a.slot, Role::Server, label).ok()?;
                Some((port, p.syns + p.refused_syns, p.completed))
            }
            PortLabel::Other(_) => None,
        })
        .filter(|(_, syns, _)| *syns > 0)
        .collect();
    top_ports.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    top_ports.truncate(TOP_PORTS);
    InterfaceStatus {
        name: a.iface.name.clone(),
        xdp_mode: a.xdp.name().to_string(),
        tc_mode: a.tc.name().to_string(),
        syns: c.inserts + c.insert_skipped + refused,
        completed: c.completed,
        half_open: tracker
            .totals()
            .half_open
            .get(&(a.slot, Role::Server))
            .copied()
            .unwrap_or(0),
        dropped: DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), drops.dropped[*r as usize]))
            .collect(),
        top_ports,
    }
}

/// The status as text; with `previous` (taken `elapsed` earlier), counters
/// are shown as rates per second.
pub fn render(status: &Status, previous: Option<(&Status, Duration)>) -> String {
    let mut out = format!(
        "handshake-monitor {}, up {}, mitigation {}{}\n",
        status.version,
        crate::mitigation::cidr::format_duration(Duration::from_secs(status.uptime_secs)),
        status.mitigation_mode,
        if status.persist { ", persist" } else { "" }
    );
    out.push_str(&format!(
        "flow table {} / {}; blocks: {} manual, {} auto\n",
        status.flow_table_entries,
        status.flow_table_capacity,
        status.blocks_manual,
        status.blocks_auto
    ));
    for iface in &status.interfaces {
        let before = previous.and_then(|(p, secs)| {
            p.interfaces
                .iter()
                .find(|i| i.name == iface.name)
                .map(|i| (i, secs.as_secs_f64().max(0.001)))
        });
        let rate = |now: u64, then: Option<u64>| match (before, then) {
            (Some((_, secs)), Some(then)) => {
                format!("{:.0}/s", now.saturating_sub(then) as f64 / secs)
            }
            _ => now.to_string(),
        };
        let dropped: u64 = iface.dropped.iter().map(|(_, n)| n).sum();
        let dropped_before = before.map(|(p, _)| p.dropped.iter().map(|(_, n)| n).sum());
        out.push_str(&format!(
            "{}: xdp {}, tc {}; SYNs {}, completed {}, half-open {}, dropped {}\n",
            iface.name,
            iface.xdp_mode,
            iface.tc_mode,
            rate(iface.syns, before.map(|(p, _)| p.syns)),
            rate(iface.completed, before.map(|(p, _)| p.completed)),
            iface.half_open,
            rate(dropped, dropped_before),
        ));
        for (port, syns, completed) in &iface.top_ports {
            out.push_str(&format!(
                "  port {port}: SYNs {syns}, completed {completed}\n"
            ));
        }
    }
    if status.firing_alerts.is_empty() {
        out.push_str("no alert firing\n");
    }
    for alert in &status.firing_alerts {
        out.push_str(&format!(
            "FIRING {} on {} port {} for {}s\n",
            alert.alertname, alert.interface, alert.port, alert.for_secs
        ));
    }
    if status.watchers > 0 {
        out.push_str(&format!("watch clients: {}\n", status.watchers));
    }
    out
}
