//! Per-CPU counter layout shared by the kernel programs and the daemon.
//!
//! The kernel programs keep one [`DirectionCounters`] per (interface slot,
//! direction) in a per-CPU array; the daemon sums the CPUs at scrape time.
//! The enums below name the array indexes; their `name()`s are the label
//! values the daemon exports, so the two sides cannot drift apart.

use crate::classify::FlagClass;
use crate::flow::Untracked;
use crate::parse::SkipReason;

labelled_enum! {
    /// Direction of a packet relative to the monitored interface.
    pub enum Direction: u32 {
        /// Received on the interface (seen by XDP).
        Ingress = 0 => "ingress",
        /// Sent by the interface (seen by TC egress).
        Egress = 1 => "egress",
    }
}

/// Counters for one interface in one direction, one copy per CPU.
///
/// 17 `u64`s: 136 bytes; a packet touches one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DirectionCounters {
    /// TCP packets by [`FlagClass`] index.
    pub tcp: [u64; FlagClass::COUNT],
    /// Packets the parser did not follow, by [`SkipReason`] index.
    pub skipped: [u64; SkipReason::COUNT],
    /// SYN-ACK, FIN and RST segments that named no tracked flow, by
    /// [`Untracked`] index. Not part of [`Self::total`]: those segments are
    /// already counted in `tcp`.
    pub untracked: [u64; Untracked::COUNT],
}

const _: () = assert!(core::mem::size_of::<DirectionCounters>() == 136);

impl DirectionCounters {
    /// Adds another CPU's copy into this one.
    pub fn accumulate(&mut self, other: &Self) {
        for (sum, add) in self.tcp.iter_mut().zip(other.tcp.iter()) {
            *sum = sum.wrapping_add(*add);
        }
        for (sum, add) in self.skipped.iter_mut().zip(other.skipped.iter()) {
            *sum = sum.wrapping_add(*add);
        }
        for (sum, add) in self.untracked.iter_mut().zip(other.untracked.iter()) {
            *sum = sum.wrapping_add(*add);
        }
    }

    /// Every packet is counted exactly once, either as TCP or as skipped.
    pub fn total(&self) -> u64 {
        self.tcp
            .iter()
            .chain(self.skipped.iter())
            .fold(0u64, |acc, v| acc.wrapping_add(*v))
    }
}

/// Index of the counters of `slot` in `direction` within the per-CPU array.
#[inline(always)]
pub const fn counter_index(slot: u32, direction: Direction) -> u32 {
    slot * Direction::COUNT as u32 + direction as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_indexes_do_not_overlap() {
        assert_eq!(counter_index(0, Direction::Ingress), 0);
        assert_eq!(counter_index(0, Direction::Egress), 1);
        assert_eq!(counter_index(3, Direction::Ingress), 6);
        assert_eq!(counter_index(3, Direction::Egress), 7);
    }

    #[test]
    fn accumulate_sums_each_field() {
        let mut a = DirectionCounters::default();
        let mut b = DirectionCounters::default();
        b.tcp[FlagClass::Syn as usize] = 3;
        b.skipped[SkipReason::NonIp as usize] = 2;
        a.accumulate(&b);
        a.accumulate(&b);
        assert_eq!(a.tcp[FlagClass::Syn as usize], 6);
        assert_eq!(a.skipped[SkipReason::NonIp as usize], 4);
        assert_eq!(a.total(), 10);
    }
}
