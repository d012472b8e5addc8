//! The flow table from userspace: settings, the once-a-second sweep that
//! ends half-open handshakes past their timeout and measures the table,
//! and reads of the per-CPU handshake counters and histograms.

use std::{collections::HashMap, io, time::Duration};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray};
use monitor_common::{
    flow::{FlowKey, FlowState, HandshakeCounters, Role, handshake_index, phase},
    histogram::{Histogram, HistogramKind, histogram_index},
};

use crate::{
    loader::{EbpfError, LoadSettings, Programs},
    ports::{PortLabel, PortSettings, PortTracker},
};

/// How the flow table is sized and fed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowSettings {
    /// Entries of the LRU flow table (half-open and established flows).
    pub table_size: u32,
    /// A handshake not completed after this long is `timed_out`.
    pub handshake_timeout: Duration,
    /// Flows each CPU may start per second; SYNs beyond are counted but
    /// not tracked, so a flood cannot turn the table over.
    pub inserts_per_sec_per_cpu: u64,
    /// Inserts a CPU may make in one burst above that rate.
    pub insert_burst: u64,
}

/// Linux gives up on a SYN-ACK after 5 retries (tcp_synack_retries): sent
/// at 0 s, retried at 1, 3, 7, 15 and 31 s, dropped 32 s after the last.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(63);
pub const DEFAULT_TABLE_SIZE: u32 = LoadSettings::DEFAULT.flow_table_size;
pub const DEFAULT_INSERTS_PER_SEC_PER_CPU: u64 = LoadSettings::DEFAULT.flow_inserts_per_sec_per_cpu;
pub const DEFAULT_INSERT_BURST: u64 = LoadSettings::DEFAULT.flow_insert_burst;

impl Default for FlowSettings {
    fn default() -> Self {
        Self {
            table_size: DEFAULT_TABLE_SIZE,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            inserts_per_sec_per_cpu: DEFAULT_INSERTS_PER_SEC_PER_CPU,
            insert_burst: DEFAULT_INSERT_BURST,
        }
    }
}

/// What of the flow settings is fixed when the programs load.
impl From<&FlowSettings> for LoadSettings {
    fn from(flows: &FlowSettings) -> Self {
        Self {
            flow_table_size: flows.table_size,
            flow_inserts_per_sec_per_cpu: flows.inserts_per_sec_per_cpu,
            flow_insert_burst: flows.insert_burst,
        }
    }
}

/// What the sweeps have found and done.
#[derive(Debug, Default, Clone)]
pub struct SweepTotals {
    /// Handshakes ended by the timeout, per (slot, role).
    pub timed_out: HashMap<(u32, Role), u64>,
    /// Half-open flows at the last sweep, per (slot, role).
    pub half_open: HashMap<(u32, Role), u64>,
    /// Entries at the last sweep.
    pub entries: u64,
    /// Flows the sweeps removed.
    pub removed: u64,
    /// Flows the LRU pushed out, derived from inserts and removals; kept
    /// monotonic since its inputs are read at slightly different times.
    pub evictions: u64,
    pub last_duration: Duration,
    /// As `half_open` and `timed_out`, per (slot, role, port label).
    pub port_half_open: HashMap<(u32, Role, PortLabel), u64>,
    pub port_timed_out: HashMap<(u32, Role, PortLabel), u64>,
}

pub struct FlowTracker {
    flows: BpfHashMap<MapData, FlowKey, FlowState>,
    handshakes: PerCpuArray<MapData, HandshakeCounters>,
    histograms: PerCpuArray<MapData, Histogram>,
    settings: FlowSettings,
    totals: SweepTotals,
    slots: Vec<u32>,
    ports: PortTracker,
}

impl FlowTracker {
    /// Takes the flow maps out of the loaded object.
    pub fn new(
        programs: &mut Programs,
        settings: FlowSettings,
        ports: PortSettings,
        slots: Vec<u32>,
    ) -> Result<Self, EbpfError> {
        let ports = PortTracker::new(programs, ports, slots.clone())?;
        Ok(Self {
            flows: programs.take_map("FLOWS")?,
            handshakes: programs.take_map("HANDSHAKES")?,
            histograms: programs.take_map("HISTOGRAMS")?,
            settings,
            totals: SweepTotals::default(),
            slots,
            ports,
        })
    }

    pub fn settings(&self) -> &FlowSettings {
        &self.settings
    }

    pub fn totals(&self) -> &SweepTotals {
        &self.totals
    }

    pub fn ports(&self) -> &PortTracker {
        &self.ports
    }

    /// Ends the handshakes past their timeout and measures the table.
    /// `now_ns` is CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
    pub fn sweep(&mut self, now_ns: u64) -> io::Result<()> {
        let started = std::time::Instant::now();
        let timeout_ns = self.settings.handshake_timeout.as_nanos() as u64;
        let mut expired = Vec::new();
        let mut half_open: HashMap<(u32, Role), u64> = HashMap::new();
        let mut port_half_open: HashMap<(u32, Role, PortLabel), u64> = HashMap::new();
        let mut entries = 0u64;
        // Collect first: deleting while walking restarts a hash map walk.
        for item in self.flows.iter() {
            let Ok((key, flow)) = item else { continue };
            entries += 1;
            if !phase::is_half_open(flow.phase) {
                continue;
            }
            let id = (u32::from(key.slot), flow.role());
            let service_port = match flow.role() {
                Role::Server => key.local_port,
                Role::Client => key.remote_port,
            };
            let port_id = (id.0, id.1, self.ports.label(service_port));
            if now_ns.saturating_sub(flow.syn_ns) > timeout_ns {
                expired.push((key, id, port_id));
            } else {
                *half_open.entry(id).or_default() += 1;
                *port_half_open.entry(port_id).or_default() += 1;
            }
        }
        for (key, id, port_id) in expired {
            // A flow that completed in the meantime is gone or changed; only
            // a removal counts, and the kernel may have won the race.
            if self.flows.remove(&key).is_ok() {
                *self.totals.timed_out.entry(id).or_default() += 1;
                *self.totals.port_timed_out.entry(port_id).or_default() += 1;
                self.totals.removed += 1;
                entries = entries.saturating_sub(1);
            }
        }
        self.totals.half_open = half_open;
        self.totals.port_half_open = port_half_open;
        self.ports.maybe_rebalance()?;
        self.totals.entries = entries;
        self.update_evictions()?;
        self.totals.last_duration = started.elapsed();
        Ok(())
    }

    fn update_evictions(&mut self) -> io::Result<()> {
        let mut inserted = 0u64;
        let mut removed = self.totals.removed;
        for slot in self.slots.clone() {
            for role in Role::ALL {
                let c = self.handshakes(slot, role)?;
                inserted += c.inserts;
                removed += c.removed;
            }
        }
        let derived = inserted
            .saturating_sub(removed)
            .saturating_sub(self.totals.entries);
        self.totals.evictions = self.totals.evictions.max(derived);
        Ok(())
    }

    /// Kernel handshake counters of one interface slot and role, CPUs summed.
    pub fn handshakes(&self, slot: u32, role: Role) -> io::Result<HandshakeCounters> {
        let values = self
            .handshakes
            .get(&handshake_index(slot, role), 0)
            .map_err(io::Error::other)?;
        let mut sum = HandshakeCounters::default();
        values.iter().for_each(|v| sum.accumulate(v));
        Ok(sum)
    }

    pub fn histogram(&self, slot: u32, role: Role, kind: HistogramKind) -> io::Result<Histogram> {
        let values = self
            .histograms
            .get(&histogram_index(slot, role, kind), 0)
            .map_err(io::Error::other)?;
        let mut sum = Histogram::default();
        values.iter().for_each(|v| sum.accumulate(v));
        Ok(sum)
    }
}

/// CLOCK_MONOTONIC in nanoseconds, the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The address in a kernel key or event: IPv4 in the first 4 of 16 bytes.
pub fn ip_addr(family: u8, addr: &[u8; 16]) -> std::net::IpAddr {
    if family == monitor_common::flow::FAMILY_V4 {
        std::net::IpAddr::from([addr[0], addr[1], addr[2], addr[3]])
    } else {
        std::net::IpAddr::from(*addr)
    }
}
