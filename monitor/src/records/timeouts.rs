//! Timed-out handshakes, found by the daemon's sweep of the half-open
//! table (the kernel writes nothing for them, so a flood of spoofed SYNs
//! costs no ring-buffer write per SYN). A quiet second gives each timeout
//! a record of its own; a busier one (a flood) gives one aggregate line
//! per source prefix and server port, the largest first, and one line for
//! the rest.

use std::{collections::HashMap, net::IpAddr};

use monitor_common::{
    flow::{FAMILY_V4, Role},
    half_open::HalfOpen,
    record::{ConnState, FlowRecord, RecordKind},
};

use super::FlowId;

/// Timeouts of one sweep that each get their own record.
pub const INDIVIDUAL_MAX: usize = 8;
/// Aggregate lines of one sweep, at most, besides the rest's.
pub const AGGREGATE_LINES: usize = 16;

/// What one sweep found: the handshakes that timed out since the last.
#[derive(Debug, Clone, Default)]
pub struct TimeoutBatch {
    pub expired: Vec<HalfOpen>,
    /// More timeouts than the sweep collects (counted, not reported).
    pub overflow: u64,
    /// Every handshake timed out since the programs loaded, as the sweep
    /// counts them (the `timed_out` metric): those it reported, those it
    /// could not collect, and those whose slot a new SYN took first.
    pub total_timeouts: u64,
    pub now_ns: u64,
    pub timeout_ns: u64,
}

/// Timeouts of one source prefix (IPv4 /24, IPv6 /64) to one server
/// port, or, for the rest line, of every prefix left (`prefix: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub slot: u8,
    pub role: Role,
    pub conn_state: ConnState,
    pub family: u8,
    pub prefix: Option<[u8; 16]>,
    /// Prefixes folded into this line.
    pub prefixes: u64,
    pub server_port: Option<u16>,
    pub count: u64,
    pub first_syn_ns: u64,
    pub last_syn_ns: u64,
}

impl Aggregate {
    pub fn prefix_text(&self) -> String {
        match self.prefix {
            Some(p) if self.family == FAMILY_V4 => {
                format!("{}/24", IpAddr::from([p[0], p[1], p[2], p[3]]))
            }
            Some(p) => format!("{}/64", IpAddr::from(p)),
            None => "other".to_string(),
        }
    }

    /// The prefix's first address (unspecified for the rest line).
    pub fn prefix_ip(&self) -> IpAddr {
        let p = self.prefix.unwrap_or([0; 16]);
        crate::flows::ip_addr(self.family, &p)
    }
}

pub enum Timeout {
    Single(FlowRecord),
    Aggregate(Aggregate),
}

/// The record of one timed-out handshake.
pub fn record(slot: &HalfOpen, timeout_ns: u64) -> FlowRecord {
    FlowRecord {
        key: slot.key,
        state: slot.state,
        ts_ns: slot.state.syn_ns.saturating_add(timeout_ns),
        kind: RecordKind::TimedOut as u8,
        ..FlowRecord::default()
    }
}

fn prefix_of(flow: &FlowId) -> [u8; 16] {
    let mut p = flow.client.0;
    let keep = if flow.family == FAMILY_V4 { 3 } else { 8 };
    p[keep..].fill(0);
    p
}

type GroupKey = (u8, Role, ConnState, u8, [u8; 16], u16);

/// What one sweep's timeouts become.
pub fn summarize(batch: &TimeoutBatch) -> Vec<Timeout> {
    if batch.expired.len() <= INDIVIDUAL_MAX {
        return batch
            .expired
            .iter()
            .map(|slot| Timeout::Single(record(slot, batch.timeout_ns)))
            .collect();
    }
    let mut groups: HashMap<GroupKey, Aggregate> = HashMap::new();
    for slot in &batch.expired {
        let r = record(slot, batch.timeout_ns);
        let role = r.role();
        let flow = FlowId::of_key(&r.key, role);
        let prefix = prefix_of(&flow);
        let state = r.conn_state();
        let key = (flow.slot, role, state, flow.family, prefix, flow.server.1);
        let syn = slot.state.syn_ns;
        let g = groups.entry(key).or_insert(Aggregate {
            slot: flow.slot,
            role,
            conn_state: state,
            family: flow.family,
            prefix: Some(prefix),
            prefixes: 1,
            server_port: Some(flow.server.1),
            count: 0,
            first_syn_ns: syn,
            last_syn_ns: syn,
        });
        g.count += 1;
        g.first_syn_ns = g.first_syn_ns.min(syn);
        g.last_syn_ns = g.last_syn_ns.max(syn);
    }
    let mut groups: Vec<Aggregate> = groups.into_values().collect();
    // Largest first; ties in a fixed order.
    groups.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| {
            (a.slot, a.family, a.prefix, a.server_port).cmp(&(
                b.slot,
                b.family,
                b.prefix,
                b.server_port,
            ))
        })
    });
    let rest = groups.split_off(groups.len().min(AGGREGATE_LINES));
    let mut out: Vec<Timeout> = groups.into_iter().map(Timeout::Aggregate).collect();
    let mut folded: Vec<Aggregate> = Vec::new();
    for g in rest {
        match folded.iter_mut().find(|f| {
            (f.slot, f.role, f.conn_state, f.family) == (g.slot, g.role, g.conn_state, g.family)
        }) {
            Some(f) => {
                f.count += g.count;
                f.prefixes += 1;
                f.first_syn_ns = f.first_syn_ns.min(g.first_syn_ns);
                f.last_syn_ns = f.last_syn_ns.max(g.last_syn_ns);
            }
            None => folded.push(Aggregate {
                prefix: None,
                server_port: None,
                ..g
            }),
        }
    }
    out.extend(folded.into_iter().map(Timeout::Aggregate));
    out
}

#[cfg(test)]
#[path = "timeouts_tests.rs"]
mod tests;
