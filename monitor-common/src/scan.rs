//! The port-scan table: remote sources whose SYNs the monitored host
//! refused with a RST (closed ports). A spoofed SYN to a closed port is
//! refused too, so a note must cost what a spoofed SYN may: one slot
//! write in the CPU's own partition of a direct-mapped array, never a
//! shared hash-table insert. A source's notes may land in several
//! partitions (its segments spread over CPUs); the daemon merges them.

use crate::{
    flow::{ScanKey, ScanState},
    hash::{fmix64, fold},
};

/// Slots of the whole table (the array's size in the object).
pub const SCAN_SLOTS: u32 = 4096;
/// Fewest slots per partition.
pub const MIN_SCAN_SLOTS_PER_CPU: u32 = 64;

/// One slot: a source and its refused SYNs since `state.first_ns`, or
/// empty (`state.probes == 0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ScanSlot {
    pub key: ScanKey,
    pub _pad: u32,
    pub state: ScanState,
}

const _: () = assert!(core::mem::size_of::<ScanSlot>() == 48);

/// What the programs read (`SCAN_CONFIG`), written by the daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ScanConfig {
    /// A slot's notes older than this start over.
    pub window_ns: u64,
    /// Slots per partition: a power of two.
    pub slots_per_cpu: u32,
    pub partitions: u32,
}

const _: () = assert!(core::mem::size_of::<ScanConfig>() == 16);

impl ScanConfig {
    /// The table split over `cpus` CPUs: a power-of-two partition each,
    /// at least [`MIN_SCAN_SLOTS_PER_CPU`] slots, so past 64 CPUs some
    /// share one.
    pub const fn new(window_ns: u64, cpus: u32) -> Self {
        let cpus = if cpus == 0 { 1 } else { cpus };
        let max_partitions = SCAN_SLOTS / MIN_SCAN_SLOTS_PER_CPU;
        let partitions = if cpus < max_partitions {
            cpus
        } else {
            max_partitions
        };
        let mut slots = MIN_SCAN_SLOTS_PER_CPU;
        while slots * 2 * partitions <= SCAN_SLOTS {
            slots *= 2;
        }
        Self {
            window_ns,
            slots_per_cpu: slots,
            partitions,
        }
    }

    /// The slot of `key` in CPU `cpu`'s partition.
    #[inline(always)]
    pub fn index(&self, cpu: u32, key: &ScanKey) -> u32 {
        let partition = cpu.checked_rem(self.partitions).unwrap_or(0);
        let hash = fmix64(fold(&key.addr, 29) ^ (u64::from(key.family) << 8 | u64::from(key.slot)));
        partition * self.slots_per_cpu + (hash & self.slots_per_cpu.wrapping_sub(1))
    }
}

impl ScanSlot {
    /// Notes one refused SYN of `key` to `port` at `now`; `same_key`:
    /// the slot holds `key` already. Another source's slot, or one whose
    /// window has passed, starts over.
    #[inline(always)]
    pub fn note(&mut self, same_key: bool, key: &ScanKey, port: u16, now: u64, window_ns: u64) {
        if !same_key
            || self.state.probes == 0
            || now.saturating_sub(self.state.first_ns) > window_ns
        {
            self.key = *key;
            self.state = ScanState {
                first_ns: now,
                ..ScanState::default()
            };
        }
        self.state.note(port);
    }
}

impl ScanState {
    /// Adds another partition's notes of the same source.
    pub fn merge(&mut self, other: &Self) {
        self.port_bits |= other.port_bits;
        self.probes = self.probes.saturating_add(other.probes);
        self.first_ns = self.first_ns.min(other.first_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(last: u8) -> ScanKey {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[198, 18, 0, last]);
        ScanKey {
            addr,
            family: 4,
            slot: 0,
            _pad: [0; 2],
        }
    }

    #[test]
    fn partitions_fit_the_table() {
        assert_eq!(ScanConfig::new(1, 2).slots_per_cpu, 2048);
        assert_eq!(ScanConfig::new(1, 3).slots_per_cpu, 1024);
        let many = ScanConfig::new(1, 200);
        assert_eq!((many.partitions, many.slots_per_cpu), (64, 64));
        for cpus in [1, 2, 3, 7, 64, 200] {
            let c = ScanConfig::new(1, cpus);
            assert!(c.partitions * c.slots_per_cpu <= SCAN_SLOTS, "{cpus}");
            for cpu in 0..cpus {
                let i = c.index(cpu, &key(cpu as u8));
                let p = cpu % c.partitions;
                assert!((p * c.slots_per_cpu..(p + 1) * c.slots_per_cpu).contains(&i));
            }
        }
    }

    #[test]
    fn notes_accumulate_within_the_window_and_start_over_after() {
        let mut slot = ScanSlot::default();
        slot.note(false, &key(1), 22, 100, 50);
        slot.note(true, &key(1), 23, 120, 50);
        assert_eq!((slot.state.probes, slot.state.first_ns), (2, 100));
        slot.note(true, &key(1), 24, 151, 50);
        assert_eq!((slot.state.probes, slot.state.first_ns), (1, 151));
        // Another source takes the slot.
        slot.note(false, &key(2), 25, 152, 50);
        assert_eq!((slot.key, slot.state.probes), (key(2), 1));
    }

    #[test]
    fn partitions_merge_into_one_source() {
        let mut a = ScanState::default();
        let mut b = ScanState::default();
        (0..10).for_each(|p| a.note(p));
        (10..20).for_each(|p| b.note(p));
        a.first_ns = 50;
        b.first_ns = 40;
        let bits = a.port_bits | b.port_bits;
        a.merge(&b);
        assert_eq!((a.probes, a.first_ns, a.port_bits), (20, 40, bits));
    }
}
