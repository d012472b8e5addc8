//! Maps shared with the daemon. Names are part of the interface: the
//! daemon looks them up by these exact names.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
};
use monitor_common::{
    counters::{Direction, DirectionCounters},
    iface::{IFINDEX_TABLE_SIZE, IfindexSlot, MAX_INTERFACES},
};

/// ifindex -> counter slot, filled by the daemon before it attaches.
#[map]
pub static IFINDEX_SLOTS: Array<IfindexSlot> = Array::with_max_entries(IFINDEX_TABLE_SIZE, 0);

/// Packet counters per (slot, direction), one copy per CPU.
#[map]
pub static COUNTERS: PerCpuArray<DirectionCounters> =
    PerCpuArray::with_max_entries(MAX_INTERFACES * Direction::COUNT as u32, 0);
