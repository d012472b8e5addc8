//! Mapping of interface indexes to counter slots.
//!
//! The kernel programs are loaded once and attached to every monitored
//! interface, so they learn the interface from the packet's ifindex. A hash
//! map lookup costs ~10 ns per packet here; instead the daemon fills a small
//! direct-mapped array (inlined lookup, ~1 ns) probed linearly a bounded
//! number of times. Each entry carries the ifindex it belongs to, so a
//! collision can never attribute packets to the wrong interface.

/// Most interfaces one daemon monitors.
pub const MAX_INTERFACES: u32 = 64;
/// Entries in the ifindex table; a power of two so the hash is a mask.
pub const IFINDEX_TABLE_SIZE: u32 = 256;
/// Entries probed after the home entry before giving up.
pub const IFINDEX_PROBES: u32 = 4;

/// One entry of the ifindex table. `ifindex == 0` marks an empty entry
/// (the kernel never hands out ifindex 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct IfindexSlot {
    pub ifindex: u32,
    pub slot: u32,
}

const _: () = assert!(core::mem::size_of::<IfindexSlot>() == 8);

/// Table position probed at step `probe` for `ifindex`.
#[inline(always)]
pub const fn table_position(ifindex: u32, probe: u32) -> u32 {
    ifindex.wrapping_add(probe) & (IFINDEX_TABLE_SIZE - 1)
}

/// Finds where `ifindex` goes in `table` (its own entry or the first free
/// one on its probe path). `None` when the probe path is full.
pub fn place(table: &[IfindexSlot], ifindex: u32) -> Option<u32> {
    (0..IFINDEX_PROBES)
        .map(|p| table_position(ifindex, p))
        .find(|&pos| {
            let entry = table[pos as usize];
            entry.ifindex == ifindex || entry.ifindex == 0
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_ifindexes_probe_to_distinct_positions() {
        let mut table = [IfindexSlot::default(); IFINDEX_TABLE_SIZE as usize];
        let a = 7;
        let b = 7 + IFINDEX_TABLE_SIZE;
        let pa = place(&table, a).unwrap();
        table[pa as usize] = IfindexSlot {
            ifindex: a,
            slot: 0,
        };
        let pb = place(&table, b).unwrap();
        assert_ne!(pa, pb);
        assert_eq!(place(&table, a), Some(pa));
    }

    #[test]
    fn full_probe_path_is_reported() {
        let mut table = [IfindexSlot::default(); IFINDEX_TABLE_SIZE as usize];
        for p in 0..IFINDEX_PROBES {
            let ifindex = 5 + p * IFINDEX_TABLE_SIZE;
            let pos = place(&table, ifindex).unwrap();
            table[pos as usize] = IfindexSlot { ifindex, slot: p };
        }
        assert_eq!(place(&table, 5 + 9 * IFINDEX_TABLE_SIZE), None);
    }

    #[test]
    fn wraps_around_the_end_of_the_table() {
        assert_eq!(table_position(IFINDEX_TABLE_SIZE - 1, 1), 0);
    }
}
