//! Per-port accounting with bounded labels: configured ports and the
//! automatic top-N by SYN volume get port slots of their own; every other
//! port is counted in the `other` series of its IANA class.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io,
    time::Duration,
};

use aya::maps::{Array, MapData, PerCpuArray};
use monitor_common::{
    flow::Role,
    ports::{NAMED_PORT_SLOTS, PortClass, PortCounters, VolumeSketch, port_index},
};

use crate::loader::{EbpfError, Programs};

#[derive(Debug, Clone, PartialEq)]
pub struct PortSettings {
    /// Ports always counted on their own.
    pub configured: Vec<u16>,
    /// How many more ports, the busiest by SYNs, are counted on their own.
    pub top_n: usize,
    /// How often the automatic set is re-chosen.
    pub rebalance_interval: Duration,
}

pub const DEFAULT_TOP_PORTS: usize = 10;
pub const DEFAULT_REBALANCE_INTERVAL: Duration = Duration::from_secs(10);

impl Default for PortSettings {
    fn default() -> Self {
        Self {
            configured: Vec::new(),
            top_n: DEFAULT_TOP_PORTS,
            rebalance_interval: DEFAULT_REBALANCE_INTERVAL,
        }
    }
}

/// The `port` label of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortLabel {
    Named(u16),
    /// All unnamed ports of a class.
    Other(PortClass),
}

impl PortLabel {
    pub fn port(&self) -> String {
        match self {
            Self::Named(port) => port.to_string(),
            Self::Other(_) => "other".to_string(),
        }
    }

    pub fn class(&self) -> PortClass {
        match self {
            Self::Named(port) => PortClass::of(*port),
            Self::Other(class) => *class,
        }
    }
}

pub struct PortTracker {
    table: Array<MapData, u8>,
    stats: PerCpuArray<MapData, PortCounters>,
    volume: PerCpuArray<MapData, VolumeSketch>,
    settings: PortSettings,
    /// Named port -> its slot.
    slots: BTreeMap<u16, u8>,
    automatic: BTreeSet<u16>,
    /// Counters a slot held when it was given to its current port.
    baselines: HashMap<(u32, Role, u8), PortCounters>,
    /// Sketch counts at the last rebalance, to measure the window.
    last_counts: HashMap<u16, u64>,
    /// The last re-choice, on the programs' clock.
    last_rebalance_ns: u64,
    iface_slots: Vec<u32>,
}

impl PortTracker {
    pub fn new(
        programs: &mut Programs,
        settings: PortSettings,
        iface_slots: Vec<u32>,
    ) -> Result<Self, EbpfError> {
        let mut tracker = Self {
            table: programs.take_map("PORT_TABLE")?,
            stats: programs.take_map("PORT_STATS")?,
            volume: programs.take_map("PORT_VOLUME")?,
            settings,
            slots: BTreeMap::new(),
            automatic: BTreeSet::new(),
            baselines: HashMap::new(),
            last_counts: HashMap::new(),
            last_rebalance_ns: crate::clock::monotonic_ns(),
            iface_slots,
        };
        for port in tracker.settings.configured.clone() {
            tracker.name_port(port).map_err(|source| EbpfError::Map {
                map: "PORT_TABLE",
                source,
            })?;
        }
        Ok(tracker)
    }

    pub fn label(&self, port: u16) -> PortLabel {
        if self.slots.contains_key(&port) {
            PortLabel::Named(port)
        } else {
            PortLabel::Other(PortClass::of(port))
        }
    }

    /// Every label with series: the named ports, then the three `other`s.
    pub fn labels(&self) -> Vec<PortLabel> {
        let named = self.slots.keys().map(|p| PortLabel::Named(*p));
        named.chain(PortClass::ALL.map(PortLabel::Other)).collect()
    }

    /// Kernel counters of a label since its port got its slot, CPUs summed.
    pub fn counters(
        &self,
        iface_slot: u32,
        role: Role,
        label: PortLabel,
    ) -> io::Result<PortCounters> {
        let slot = match label {
            PortLabel::Named(port) => self.slots.get(&port).copied().unwrap_or(0),
            PortLabel::Other(class) => class as u8,
        };
        let now = self.read_slot(iface_slot, role, slot)?;
        Ok(match self.baselines.get(&(iface_slot, role, slot)) {
            Some(base) => now.since(base),
            None => now,
        })
    }

    /// SYNs the mitigation refused on an interface, every port slot
    /// summed raw: monotonic across slot reassignments, unlike a sum of
    /// the labels' counters.
    pub fn refused_syns(&self, iface_slot: u32) -> io::Result<u64> {
        let mut total = 0u64;
        for slot in 0..monitor_common::ports::PORT_SLOTS {
            total = total.wrapping_add(
                self.read_slot(iface_slot, Role::Server, slot as u8)?
                    .refused_syns,
            );
        }
        Ok(total)
    }

    fn read_slot(&self, iface_slot: u32, role: Role, slot: u8) -> io::Result<PortCounters> {
        let values = self
            .stats
            .get(&port_index(iface_slot, u32::from(slot), role), 0)
            .map_err(io::Error::other)?;
        let mut sum = PortCounters::default();
        values.iter().for_each(|v| sum.accumulate(v));
        Ok(sum)
    }

    /// Gives `port` a free slot, remembering what the slot held before.
    fn name_port(&mut self, port: u16) -> Result<(), aya::maps::MapError> {
        if self.slots.contains_key(&port) {
            return Ok(());
        }
        let used: BTreeSet<u8> = self.slots.values().copied().collect();
        let first = PortClass::COUNT as u8;
        let Some(slot) = (first..first + NAMED_PORT_SLOTS as u8).find(|s| !used.contains(s)) else {
            return Ok(());
        };
        for iface in self.iface_slots.clone() {
            for role in Role::ALL {
                let base = self.read_slot(iface, role, slot).unwrap_or_default();
                self.baselines.insert((iface, role, slot), base);
            }
        }
        self.table.set(u32::from(port), slot, 0)?;
        self.slots.insert(port, slot);
        Ok(())
    }

    fn unname_port(&mut self, port: u16) -> Result<(), aya::maps::MapError> {
        self.table.set(u32::from(port), 0, 0)?;
        self.slots.remove(&port);
        self.automatic.remove(&port);
        Ok(())
    }

    /// The first re-choice comes one interval after `now_ns`.
    pub fn start_clock(&mut self, now_ns: u64) {
        self.last_rebalance_ns = now_ns;
    }

    /// Re-chooses the automatic ports if the interval has passed: the
    /// busiest by SYNs in the last window; an automatic port keeps its slot
    /// unless a busier one needs it.
    pub fn maybe_rebalance(&mut self) -> io::Result<()> {
        let now = crate::clock::monotonic_ns();
        let interval = self.settings.rebalance_interval.as_nanos() as u64;
        if now.saturating_sub(self.last_rebalance_ns) < interval {
            return Ok(());
        }
        self.last_rebalance_ns = now;
        let counts = self.sketch_counts()?;
        let mut window: Vec<(u64, bool, u16)> = counts
            .iter()
            .filter(|(port, _)| !self.settings.configured.contains(port))
            .map(|(port, count)| {
                let before = self.last_counts.get(port).copied().unwrap_or(0);
                (
                    count.saturating_sub(before),
                    self.automatic.contains(port),
                    *port,
                )
            })
            .filter(|(volume, ..)| *volume > 0)
            .collect();
        self.last_counts = counts;
        // Busiest first; on a tie the port that already has a slot stays.
        window.sort_by(|a, b| b.cmp(a));
        let room = NAMED_PORT_SLOTS as usize - self.settings.configured.len();
        let capacity = self.settings.top_n.min(room);
        let wanted: Vec<u16> = window
            .iter()
            .take(capacity)
            .map(|(.., port)| *port)
            .collect();
        let newcomers: Vec<u16> = wanted
            .iter()
            .filter(|p| !self.automatic.contains(p))
            .copied()
            .collect();
        // Give up slots only as newcomers need them, the least busy first
        // (ports idle in this window are not in `window`: they go first).
        let mut losers: Vec<u16> = self
            .automatic
            .iter()
            .filter(|p| !wanted.contains(p))
            .copied()
            .collect();
        let volume = |port: &u16| window.iter().find(|w| w.2 == *port).map_or(0, |w| w.0);
        losers.sort_by_key(volume);
        let excess = (self.automatic.len() + newcomers.len()).saturating_sub(capacity);
        for port in losers.into_iter().take(excess) {
            self.unname_port(port).map_err(io::Error::other)?;
        }
        for port in newcomers {
            self.name_port(port).map_err(io::Error::other)?;
            self.automatic.insert(port);
        }
        Ok(())
    }

    /// Per-port SYN counts from the sketch, summed over CPUs.
    fn sketch_counts(&self) -> io::Result<HashMap<u16, u64>> {
        let values = self.volume.get(&0, 0).map_err(io::Error::other)?;
        let mut counts: HashMap<u16, u64> = HashMap::new();
        for sketch in values.iter() {
            for bucket in sketch.buckets.iter().filter(|b| b.count > 0) {
                *counts.entry(bucket.port).or_default() += u64::from(bucket.count);
            }
        }
        Ok(counts)
    }
}
