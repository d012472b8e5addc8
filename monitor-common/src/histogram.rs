//! Fixed-bucket histograms kept in per-CPU maps: the programs add one
//! observation with a bounded scan of the bounds, the daemon sums the CPUs
//! and exports cumulative Prometheus buckets.

/// Finite bucket bounds per histogram; the last count is `+Inf`.
pub const BOUNDS: usize = 19;
pub const SECOND: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const US: u64 = 1_000;

/// Handshake phases: 50 µs to 8 s, with 0.9/1.5 s and 2.5/3.5 s bounds so
/// SYN or SYN-ACK retransmissions after 1 s and 3 s land in buckets of
/// their own.
pub const HANDSHAKE_BOUNDS_NS: [u64; BOUNDS] = [
    50 * US,
    100 * US,
    250 * US,
    500 * US,
    MS,
    5 * MS / 2,
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    900 * MS,
    1500 * MS,
    2500 * MS,
    3500 * MS,
    5 * SECOND,
    8 * SECOND,
];

/// Connection lifetimes: 1 ms to a week.
pub const DURATION_BOUNDS_NS: [u64; BOUNDS] = [
    MS,
    10 * MS,
    100 * MS,
    500 * MS,
    SECOND,
    5 * SECOND,
    10 * SECOND,
    30 * SECOND,
    60 * SECOND,
    120 * SECOND,
    300 * SECOND,
    600 * SECOND,
    1800 * SECOND,
    3600 * SECOND,
    7200 * SECOND,
    14400 * SECOND,
    43200 * SECOND,
    86400 * SECOND,
    604800 * SECOND,
];

/// What a histogram measures; selects its bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum HistogramKind {
    /// First SYN to first SYN-ACK.
    SynToSynAck = 0,
    /// SYN-ACK to the final ACK.
    SynAckToAck = 1,
    /// Established to closed.
    ConnectionDuration = 2,
}

impl HistogramKind {
    pub const COUNT: usize = 3;
    pub const ALL: [Self; Self::COUNT] = [
        Self::SynToSynAck,
        Self::SynAckToAck,
        Self::ConnectionDuration,
    ];

    pub const fn bounds(self) -> &'static [u64; BOUNDS] {
        match self {
            Self::SynToSynAck | Self::SynAckToAck => &HANDSHAKE_BOUNDS_NS,
            Self::ConnectionDuration => &DURATION_BOUNDS_NS,
        }
    }

    /// The `phase` label of the handshake histograms.
    pub const fn phase_name(self) -> &'static str {
        match self {
            Self::SynToSynAck => "syn_to_synack",
            Self::SynAckToAck => "synack_to_ack",
            Self::ConnectionDuration => "established_to_closed",
        }
    }
}

/// One histogram: per-bucket (not cumulative) counts and the sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Histogram {
    pub counts: [u64; BOUNDS + 1],
    pub sum_ns: u64,
}

const _: () = assert!(core::mem::size_of::<Histogram>() == 8 * 21);

/// Index of the bucket `value` falls in (`BOUNDS` for `+Inf`).
#[inline(always)]
pub fn bucket(bounds: &[u64; BOUNDS], value: u64) -> usize {
    let mut i = 0;
    while i < BOUNDS {
        if value <= bounds[i] {
            return i;
        }
        i += 1;
    }
    BOUNDS
}

impl Histogram {
    #[inline(always)]
    pub fn observe(&mut self, kind: HistogramKind, value_ns: u64) {
        let i = bucket(kind.bounds(), value_ns);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum_ns = self.sum_ns.wrapping_add(value_ns);
    }

    pub fn accumulate(&mut self, o: &Self) {
        for (sum, add) in self.counts.iter_mut().zip(o.counts) {
            *sum = sum.wrapping_add(add);
        }
        self.sum_ns = self.sum_ns.wrapping_add(o.sum_ns);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.wrapping_add(*c))
    }
}

/// Index of a histogram in the per-CPU array.
#[inline(always)]
pub const fn histogram_index(slot: u32, role: crate::flow::Role, kind: HistogramKind) -> u32 {
    (slot * crate::flow::Role::COUNT as u32 + role as u32) * HistogramKind::COUNT as u32
        + kind as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_strictly_increasing() {
        for kind in HistogramKind::ALL {
            assert!(kind.bounds().windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn bucket_edges_are_inclusive() {
        assert_eq!(bucket(&HANDSHAKE_BOUNDS_NS, 0), 0);
        assert_eq!(bucket(&HANDSHAKE_BOUNDS_NS, 50 * US), 0);
        assert_eq!(bucket(&HANDSHAKE_BOUNDS_NS, 50 * US + 1), 1);
        assert_eq!(bucket(&HANDSHAKE_BOUNDS_NS, 8 * SECOND), BOUNDS - 1);
        assert_eq!(bucket(&HANDSHAKE_BOUNDS_NS, 8 * SECOND + 1), BOUNDS);
    }

    #[test]
    fn retransmit_steps_get_their_own_buckets() {
        let rtt = 2 * MS;
        let first = bucket(&HANDSHAKE_BOUNDS_NS, rtt);
        let after_1s = bucket(&HANDSHAKE_BOUNDS_NS, SECOND + rtt);
        let after_3s = bucket(&HANDSHAKE_BOUNDS_NS, 3 * SECOND + rtt);
        assert!(first < after_1s && after_1s < after_3s);
        assert_eq!(HANDSHAKE_BOUNDS_NS[after_1s - 1], 900 * MS);
        assert_eq!(HANDSHAKE_BOUNDS_NS[after_3s - 1], 2500 * MS);
    }

    #[test]
    fn observe_counts_and_sums() {
        let mut h = Histogram::default();
        h.observe(HistogramKind::SynAckToAck, 300 * MS);
        h.observe(HistogramKind::SynAckToAck, 10 * SECOND);
        assert_eq!(h.count(), 2);
        assert_eq!(h.counts[bucket(&HANDSHAKE_BOUNDS_NS, 300 * MS)], 1);
        assert_eq!(h.counts[BOUNDS], 1);
        assert_eq!(h.sum_ns, 10_300 * MS);
    }

    #[test]
    fn indexes_do_not_overlap() {
        use crate::flow::Role;
        let mut seen = std::collections::HashSet::new();
        for slot in 0..4 {
            for role in Role::ALL {
                for kind in HistogramKind::ALL {
                    assert!(seen.insert(histogram_index(slot, role, kind)));
                }
            }
        }
    }
}
