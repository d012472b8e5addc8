//! The flow tables from userspace: settings, the once-a-second sweep that
//! counts half-open handshakes and their timeouts (reading the mmapped
//! half-open table in place) and measures the flow table (in a few
//! batched syscalls), and reads of the per-CPU handshake counters and
//! histograms.

use std::{
    collections::HashMap,
    io,
    os::fd::AsFd as _,
    time::{Duration, Instant},
};

use aya::maps::{HashMap as BpfHashMap, IterableMap as _, MapData, PerCpuArray};
use monitor_common::{
    flow::{FlowKey, FlowState, HandshakeCounters, Role, handshake_index},
    half_open::{Age, HalfOpen},
    histogram::{Histogram, HistogramKind, histogram_index},
};

use crate::{
    half_open::HalfOpenTable,
    loader::{EbpfError, LoadSettings, Programs},
    ports::{PortLabel, PortSettings, PortTracker},
};

/// How often a big flow table's entries are counted: a count copies the
/// whole table out of the kernel (about 90 bytes an entry).
pub const FILL_INTERVAL: Duration = Duration::from_secs(5);
/// Entries per batched lookup.
const BATCH: usize = 4096;

/// How the flow tables are sized and fed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowSettings {
    /// Entries of the LRU flow table (established connections), and about
    /// as many slots of the half-open table (rounded down to a power of
    /// two per CPU).
    pub table_size: u32,
    /// A handshake not completed after this long is `timed_out`.
    pub handshake_timeout: Duration,
    /// Flows each CPU may start per second; SYNs beyond are counted but
    /// not tracked, so a flood cannot turn the table over.
    pub inserts_per_sec_per_cpu: u64,
    /// Inserts a CPU may make in one burst above that rate.
    pub insert_burst: u64,
}

pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration =
    Duration::from_nanos(LoadSettings::DEFAULT.handshake_timeout_ns);
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
            handshake_timeout_ns: flows.handshake_timeout.as_nanos() as u64,
        }
    }
}

/// What the sweeps have found and done.
#[derive(Debug, Default, Clone)]
pub struct SweepTotals {
    /// Handshakes ended by the timeout, per (slot, role): those whose
    /// slot a later SYN took (counted by the kernel) and those still in
    /// their slot.
    pub timed_out: HashMap<(u32, Role), u64>,
    /// Half-open handshakes within their timeout at the last sweep, per
    /// (slot, role).
    pub half_open: HashMap<(u32, Role), u64>,
    /// Flow table entries at the last count (every [`FILL_INTERVAL`]).
    pub entries: u64,
    /// Occupied half-open slots at the last sweep (live or timed out).
    pub half_open_slots_used: u64,
    /// Flows the LRU pushed out, derived from inserts and removals; kept
    /// monotonic since its inputs are read at slightly different times.
    pub evictions: u64,
    pub last_duration: Duration,
    /// As `half_open`, per (slot, role, port label).
    pub port_half_open: HashMap<(u32, Role, PortLabel), u64>,
    /// Timed-out handshakes still in their slot, per (slot, role, port
    /// label); the kernel's per-port counters hold the others.
    pub port_timed_out: HashMap<(u32, Role, PortLabel), u64>,
}

/// Handshakes one sweep collects that timed out since the sweep before
/// (for their records); more are only counted.
pub const MAX_FRESH_TIMEOUTS: usize = 65_536;

/// The handshakes that timed out between two sweeps.
#[derive(Debug, Default)]
pub struct FreshTimeouts {
    pub expired: Vec<HalfOpen>,
    /// Past [`MAX_FRESH_TIMEOUTS`].
    pub overflow: u64,
}

pub struct FlowTracker {
    flows: BpfHashMap<MapData, FlowKey, FlowState>,
    half_open: HalfOpenTable,
    handshakes: PerCpuArray<MapData, HandshakeCounters>,
    histograms: PerCpuArray<MapData, Histogram>,
    settings: FlowSettings,
    totals: SweepTotals,
    slots: Vec<u32>,
    ports: PortTracker,
    /// When the flow table was last counted, on the programs' clock.
    last_fill_ns: Option<u64>,
    /// The earliest moment a handshake half-open at the last scan times
    /// out (u64::MAX: none was).
    next_expiry_ns: u64,
    /// The programs' clock at the last scan of the half-open table.
    last_scan_ns: u64,
    /// A replay ran frames since the last scan: handshakes it holds may
    /// be newer than `next_expiry_ns` knows.
    unscanned_frames: bool,
    /// CLOCK_MONOTONIC of the last sweep: a slot that expired since is
    /// fresh.
    last_sweep_ns: u64,
    fresh: FreshTimeouts,
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
        let half_open = HalfOpenTable::take(programs)?;
        Ok(Self {
            flows: programs.take_map("FLOWS")?,
            totals: SweepTotals::default(),
            half_open,
            handshakes: programs.take_map("HANDSHAKES")?,
            histograms: programs.take_map("HISTOGRAMS")?,
            settings,
            slots,
            ports,
            last_fill_ns: None,
            next_expiry_ns: 0,
            last_scan_ns: 0,
            unscanned_frames: false,
            last_sweep_ns: crate::clock::monotonic_ns(),
            fresh: FreshTimeouts::default(),
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

    /// Slots of the half-open table.
    pub fn half_open_slots(&self) -> usize {
        self.half_open.slots()
    }

    /// Counts half-open handshakes and timeouts, and (every
    /// [`FILL_INTERVAL`]) the flow table's entries. `now_ns` is
    /// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
    pub fn sweep(&mut self, now_ns: u64) -> io::Result<()> {
        self.sweep_after(now_ns, Activity::Unknown)
    }

    /// [`FlowTracker::sweep`], knowing what ran since the last one: a
    /// replay skips the table scan while no handshake can have timed out.
    pub fn sweep_after(&mut self, now_ns: u64, activity: Activity) -> io::Result<()> {
        let started = Instant::now();
        let timeout_ns = self.settings.handshake_timeout.as_nanos() as u64;
        self.unscanned_frames |= activity == Activity::ProgramsSinceLastSweep;
        let nothing_expires_before = match activity {
            Activity::Unknown => 0,
            // A handshake that began after the last scan began at or after
            // it, so it cannot time out sooner than a timeout after it.
            _ if self.unscanned_frames => self
                .next_expiry_ns
                .min(self.last_scan_ns.saturating_add(timeout_ns)),
            _ => self.next_expiry_ns,
        };
        if now_ns < nothing_expires_before {
            self.last_sweep_ns = now_ns;
            self.ports.maybe_rebalance()?;
            if activity == Activity::ProgramsSinceLastSweep {
                self.count_fill(now_ns)?;
            }
            self.totals.last_duration = started.elapsed();
            return Ok(());
        }
        let mut half_open: HashMap<(u32, Role), u64> = HashMap::new();
        let mut port_half_open: HashMap<(u32, Role, PortLabel), u64> = HashMap::new();
        let mut expired: HashMap<(u32, Role), u64> = HashMap::new();
        let mut port_expired: HashMap<(u32, Role, PortLabel), u64> = HashMap::new();
        let mut used = 0u64;
        let mut next_expiry = u64::MAX;
        let ports = &self.ports;
        let fresh = &mut self.fresh;
        let since = self.last_sweep_ns;
        self.half_open.scan(now_ns, timeout_ns, |entry, age| {
            used += 1;
            // Live at the last sweep, expired now: its timeout is new.
            if age == Age::Expired && entry.state.syn_ns.saturating_add(timeout_ns) >= since {
                if fresh.expired.len() < MAX_FRESH_TIMEOUTS {
                    fresh.expired.push(*entry);
                } else {
                    fresh.overflow += 1;
                }
            }
            if age == Age::Live {
                next_expiry = next_expiry.min(entry.state.syn_ns.saturating_add(timeout_ns));
            }
            let role = entry.state.role();
            let id = (u32::from(entry.key.slot), role);
            let service_port = match role {
                Role::Server => entry.key.local_port,
                Role::Client => entry.key.remote_port,
            };
            let port_id = (id.0, id.1, ports.label(service_port));
            let (count, port_count) = match age {
                Age::Expired => (&mut expired, &mut port_expired),
                _ => (&mut half_open, &mut port_half_open),
            };
            *count.entry(id).or_default() += 1;
            *port_count.entry(port_id).or_default() += 1;
        });
        for slot in self.slots.clone() {
            for role in Role::ALL {
                let id = (slot, role);
                let total = self.handshakes(slot, role)?.half_open_expired
                    + expired.get(&id).copied().unwrap_or(0);
                // Monotonic, though the kernel's count and the table are
                // read at slightly different times.
                let kept = self.totals.timed_out.entry(id).or_default();
                *kept = (*kept).max(total);
            }
        }
        self.totals.half_open = half_open;
        self.totals.port_half_open = port_half_open;
        self.totals.port_timed_out = port_expired;
        self.totals.half_open_slots_used = used;
        self.last_sweep_ns = now_ns;
        self.last_scan_ns = now_ns;
        self.unscanned_frames = false;
        self.next_expiry_ns = next_expiry;
        self.ports.maybe_rebalance()?;
        self.count_fill(now_ns)?;
        self.totals.last_duration = started.elapsed();
        Ok(())
    }

    /// Counts the flow table when it is due (or small enough to be cheap).
    fn count_fill(&mut self, now_ns: u64) -> io::Result<()> {
        // A small table costs one batch to count: counted every time.
        let small = self.totals.entries < BATCH as u64;
        let fill_ns = FILL_INTERVAL.as_nanos() as u64;
        if small
            || self
                .last_fill_ns
                .is_none_or(|at| now_ns.saturating_sub(at) >= fill_ns)
        {
            self.count_entries()?;
            self.last_fill_ns = Some(now_ns);
        }
        Ok(())
    }

    /// The programs' clock now starts at `now_ns` (a replay's first frame):
    /// the sweep's and the top ports' intervals count from it.
    pub fn start_clock(&mut self, now_ns: u64) {
        self.last_sweep_ns = now_ns;
        self.ports.start_clock(now_ns);
    }

    /// The handshakes that timed out since the last call.
    pub fn take_fresh_timeouts(&mut self) -> FreshTimeouts {
        std::mem::take(&mut self.fresh)
    }

    /// Counts the flow table and derives its evictions.
    fn count_entries(&mut self) -> io::Result<()> {
        self.totals.entries = crate::loader::map_batch::count_entries(
            self.flows.map().fd().as_fd(),
            size_of::<FlowKey>(),
            size_of::<FlowState>(),
            BATCH,
        )?;
        let mut inserted = 0u64;
        let mut removed = 0u64;
        for slot in self.slots.clone() {
            for role in Role::ALL {
                let c = self.handshakes(slot, role)?;
                inserted += c.promoted;
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

/// What changed the half-open table between two sweeps, as far as the
/// caller knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Live: the kernel writes the table at any moment, and its counts are
    /// scraped at any moment, so every sweep scans.
    Unknown,
    /// A replay that ran no frame since: the table is as the last sweep
    /// left it.
    NoneSinceLastSweep,
    /// A replay that ran frames since, each at or after the last sweep's
    /// time; its counts are read only after its final sweep, so they may
    /// lag until a handshake can have timed out.
    ProgramsSinceLastSweep,
}

/// The address in a kernel key or event: IPv4 in the first 4 of 16 bytes.
pub fn ip_addr(family: u8, addr: &[u8; 16]) -> std::net::IpAddr {
    if family == monitor_common::flow::FAMILY_V4 {
        std::net::IpAddr::from([addr[0], addr[1], addr[2], addr[3]])
    } else {
        std::net::IpAddr::from(*addr)
    }
}
