//! The half-open table: handshakes between their first SYN and their
//! final ACK. A flood of spoofed SYNs lands here, so its cost per SYN must
//! not grow with the flood: a fixed-size direct-mapped array, one
//! partition per CPU. A SYN writes one slot of its own CPU's partition
//! (no lock, no allocation, no cache line another CPU writes), replacing
//! whatever handshake held it; only a completed handshake, which a spoofed
//! source cannot produce, is promoted into the shared flow table.
//!
//! Later segments of a handshake (SYN-ACK, final ACK, RST) may be seen on
//! another CPU than the SYN (a client's SYN leaves from the connecting
//! CPU, its SYN-ACK arrives on the receive queue's), so they probe the
//! same slot in every partition, starting with their own.
//!
//! The array is mmapable: the daemon reads it in place, with no syscall
//! per entry, to count half-open handshakes and time them out.

use crate::{
    flow::{FlowKey, FlowState, RateLimit, phase},
    hash::{fmix64, fold},
};

/// One slot: a handshake in flight, or empty (`state.phase == 0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct HalfOpen {
    pub key: FlowKey,
    pub state: FlowState,
}

const _: () = assert!(core::mem::size_of::<HalfOpen>() == 88);

/// SYNs each CPU remembers not tracking (see [`SkippedSyns`]).
pub const SKIPPED_SLOTS: usize = 1024;

/// The last SYNs a CPU did not track (over the insert budget), by flow
/// hash, direct-mapped. The SYN-ACK the stack answers one with is sent,
/// as a rule, from the CPU that took the SYN: found here, in 4 KiB that
/// stay in cache, it is known untracked without a probe of the half-open
/// table in every partition and of the flow table (three cache misses
/// per flood SYN). Elsewhere it takes the long way, with the same result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SkippedSyns {
    marks: [u32; SKIPPED_SLOTS],
}

impl Default for SkippedSyns {
    fn default() -> Self {
        Self {
            marks: [0; SKIPPED_SLOTS],
        }
    }
}

impl SkippedSyns {
    #[inline(always)]
    const fn position(hash: u32) -> usize {
        hash as usize & (SKIPPED_SLOTS - 1)
    }

    /// Never 0, which marks a slot never written. Hashes that differ only
    /// in their lowest bit share a mark; they share a position too, so one
    /// of them is a tracked handshake's only if it came after the other,
    /// and [`Self::forget`] then took the mark away.
    #[inline(always)]
    const fn mark(hash: u32) -> u32 {
        hash | 1
    }

    /// A SYN of flow hash `hash` was not tracked.
    #[inline(always)]
    pub fn remember(&mut self, hash: u32) {
        self.marks[Self::position(hash)] = Self::mark(hash);
    }

    /// A SYN of flow hash `hash` is tracked: an earlier untracked one of
    /// the same hash must not hide its SYN-ACK.
    #[inline(always)]
    pub fn forget(&mut self, hash: u32) {
        let slot = &mut self.marks[Self::position(hash)];
        if *slot == Self::mark(hash) {
            *slot = 0;
        }
    }

    /// Whether the last SYN of flow hash `hash` here was not tracked.
    #[inline(always)]
    pub fn holds(&self, hash: u32) -> bool {
        self.marks[Self::position(hash)] == Self::mark(hash)
    }
}

/// Most partitions (CPUs) the programs probe; the daemon refuses to size
/// the table for more.
pub const MAX_PARTITIONS: u32 = 256;
/// Fewest slots per partition.
pub const MIN_SLOTS_PER_CPU: u32 = 64;

/// The flow settings the programs read (`FLOW_CONFIG`), written by the
/// daemon before it attaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FlowConfig {
    /// Handshakes each CPU may start tracking.
    pub budget: RateLimit,
    /// A half-open handshake older than this has timed out: a SYN that
    /// reuses its slot counts it `timed_out`, and its final ACK no longer
    /// completes it (the kernel dropped its request socket by then).
    pub handshake_timeout_ns: u64,
    /// Slots in each partition: a power of two.
    pub slots_per_cpu: u32,
    /// Partitions: the possible CPUs.
    pub partitions: u32,
}

const _: () = assert!(core::mem::size_of::<FlowConfig>() == 32);

impl FlowConfig {
    /// The settings for a table of about `slots` entries split over
    /// `partitions` CPUs.
    pub const fn new(
        budget: RateLimit,
        handshake_timeout_ns: u64,
        slots: u32,
        partitions: u32,
    ) -> Self {
        let partitions = if partitions == 0 { 1 } else { partitions };
        Self {
            budget,
            handshake_timeout_ns,
            slots_per_cpu: slots_per_cpu(slots, partitions),
            partitions,
        }
    }

    /// The table's total entries (the array's size).
    pub const fn slots(&self) -> u32 {
        self.slots_per_cpu * self.partitions
    }
}

/// Slots per partition for a requested total: the largest power of two
/// that keeps `partitions` partitions within `total`, at least
/// [`MIN_SLOTS_PER_CPU`].
pub const fn slots_per_cpu(total: u32, partitions: u32) -> u32 {
    let per = match total.checked_div(partitions) {
        Some(per) => per,
        None => total,
    };
    let mut slots = MIN_SLOTS_PER_CPU;
    while slots * 2 <= per && slots < (1 << 30) {
        slots *= 2;
    }
    slots
}

/// Where a flow's slot is within a partition: a hash of the whole key,
/// murmur3's 64-bit finalizer over the folded addresses and ports (shifts,
/// xors and multiplies: cheap in BPF).
#[inline(always)]
pub fn flow_hash(key: &FlowKey) -> u32 {
    let ports = u64::from(key.local_port) << 48
        | u64::from(key.remote_port) << 32
        | u64::from(key.family) << 8
        | u64::from(key.slot);
    fmix64(fold(&key.local_addr, 29) ^ fold(&key.remote_addr, 29).rotate_left(13) ^ ports)
}

/// Index of the flow's slot in partition `cpu`.
#[inline(always)]
pub const fn slot_index(cpu: u32, hash: u32, slots_per_cpu: u32) -> u32 {
    cpu * slots_per_cpu + (hash & (slots_per_cpu.wrapping_sub(1)))
}

/// What a slot holds at time `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Age {
    Empty,
    /// A handshake within its timeout.
    Live,
    /// A handshake past its timeout: timed out, not yet reused.
    Expired,
}

impl HalfOpen {
    #[inline(always)]
    pub fn age(&self, now: u64, timeout_ns: u64) -> Age {
        if !phase::is_half_open(self.state.phase) {
            Age::Empty
        } else if now.saturating_sub(self.state.syn_ns) > timeout_ns {
            Age::Expired
        } else {
            Age::Live
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Role;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            local_addr: [198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            remote_addr: [198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            local_port: 80,
            remote_port: port,
            family: 4,
            slot: 0,
            _pad: [0; 2],
        }
    }

    #[test]
    fn partitions_are_powers_of_two_within_the_total() {
        assert_eq!(slots_per_cpu(262_144, 2), 131_072);
        assert_eq!(slots_per_cpu(262_144, 3), 65_536);
        assert_eq!(slots_per_cpu(100, 2), MIN_SLOTS_PER_CPU);
        assert_eq!(slots_per_cpu(1000, 2), 256);
        assert_eq!(slots_per_cpu(262_144, 0), 262_144);
    }

    #[test]
    fn slots_stay_inside_their_partition() {
        for port in 0..2000 {
            let h = flow_hash(&key(port));
            let i = slot_index(3, h, 1024);
            assert!((3 * 1024..4 * 1024).contains(&i));
        }
    }

    #[test]
    fn nearby_tuples_spread_over_the_table() {
        // Sequential client ports (what a real client or a scanner sends)
        // must not pile into a few slots.
        let mut used = [false; 1024];
        for port in 40_000..41_024 {
            used[slot_index(0, flow_hash(&key(port)), 1024) as usize] = true;
        }
        let filled = used.iter().filter(|&&u| u).count();
        // A uniform hash fills 1 - 1/e of the slots (about 647).
        assert!((600..=700).contains(&filled), "{filled} slots used");
    }

    #[test]
    fn skipped_syns_hold_the_last_untracked_hash_of_each_position() {
        let mut skipped = SkippedSyns::default();
        let (a, b) = (0x1234_5678, 0x1234_5678 + SKIPPED_SLOTS as u32);
        assert!(!skipped.holds(a) && !skipped.holds(0) && !skipped.holds(1));
        skipped.remember(a);
        assert!(skipped.holds(a) && !skipped.holds(b));
        // Same position: the later SYN takes it.
        skipped.remember(b);
        assert!(skipped.holds(b) && !skipped.holds(a));
        // A tracked SYN of another hash leaves the mark alone; of this one,
        // takes it away.
        skipped.forget(a);
        assert!(skipped.holds(b));
        skipped.forget(b);
        assert!(!skipped.holds(b));
    }

    #[test]
    fn age_follows_the_timeout() {
        let mut slot = HalfOpen::default();
        assert_eq!(slot.age(10, 5), Age::Empty);
        slot.state = FlowState::on_syn(Role::Server, 1, 100);
        assert_eq!(slot.age(105, 5), Age::Live);
        assert_eq!(slot.age(106, 5), Age::Expired);
        slot.state.phase = phase::ESTABLISHED;
        assert_eq!(slot.age(1000, 5), Age::Empty);
    }
}
