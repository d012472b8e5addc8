//! Per-port handshake accounting with a bounded label set: a few named
//! ports get counters of their own, every other port is aggregated by its
//! IANA class.

labelled_enum! {
    /// IANA port ranges (RFC 6335 section 6).
    pub enum PortClass: u8 {
        /// 0-1023, "system ports".
        WellKnown = 0 => "well_known",
        /// 1024-49151, "user ports".
        Registered = 1 => "registered",
        /// 49152-65535, "dynamic and/or private ports".
        Dynamic = 2 => "dynamic",
    }
}

impl PortClass {
    #[inline(always)]
    pub const fn of(port: u16) -> Self {
        if port < 1024 {
            Self::WellKnown
        } else if port < 49152 {
            Self::Registered
        } else {
            Self::Dynamic
        }
    }
}

/// Port slots per interface: the first `PortClass::COUNT` aggregate the
/// unnamed ports of each class, the rest belong to named ports.
pub const PORT_SLOTS: u32 = 32;
/// Slots available to named (configured or automatic top-N) ports.
pub const NAMED_PORT_SLOTS: u32 = PORT_SLOTS - PortClass::COUNT as u32;

/// Handshake outcomes of one (interface, port slot, role), one copy per CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PortCounters {
    /// SYNs that started a handshake (tracked or not).
    pub syns: u64,
    pub completed: u64,
    pub reset: u64,
    /// SYNs the mitigation dropped before they could start a handshake.
    pub refused_syns: u64,
    /// Half-open handshakes past their timeout whose slot a new SYN took
    /// (the daemon adds those still in their slot).
    pub timed_out: u64,
}

const _: () = assert!(core::mem::size_of::<PortCounters>() == 40);

impl PortCounters {
    pub fn accumulate(&mut self, o: &Self) {
        self.syns = self.syns.wrapping_add(o.syns);
        self.completed = self.completed.wrapping_add(o.completed);
        self.reset = self.reset.wrapping_add(o.reset);
        self.refused_syns = self.refused_syns.wrapping_add(o.refused_syns);
        self.timed_out = self.timed_out.wrapping_add(o.timed_out);
    }

    /// `self - base`, for a slot that held another port before.
    pub fn since(&self, base: &Self) -> Self {
        Self {
            syns: self.syns.wrapping_sub(base.syns),
            completed: self.completed.wrapping_sub(base.completed),
            reset: self.reset.wrapping_sub(base.reset),
            refused_syns: self.refused_syns.wrapping_sub(base.refused_syns),
            timed_out: self.timed_out.wrapping_sub(base.timed_out),
        }
    }
}

/// The port slot of `port` given its entry in the port table (0: unnamed).
#[inline(always)]
pub const fn port_slot(port: u16, named_slot: u8) -> u32 {
    if named_slot != 0 {
        named_slot as u32
    } else {
        PortClass::of(port) as u32
    }
}

#[inline(always)]
pub const fn port_index(iface_slot: u32, port_slot: u32, role: crate::flow::Role) -> u32 {
    (iface_slot * PORT_SLOTS + port_slot) * crate::flow::Role::COUNT as u32 + role as u32
}

/// Buckets of the per-CPU SYN volume sketch.
pub const VOLUME_BUCKETS: usize = 1024;

/// One bucket: the port it currently follows and its count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PortVolume {
    pub count: u32,
    pub port: u16,
    pub _pad: u16,
}

/// Which ports receive the most SYNs, found without a per-port table: each
/// bucket keeps the port holding the majority of the SYNs hashed to it
/// (Misra-Gries with one counter per bucket). A port that owns a bucket
/// has a count no larger than its true SYN count.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct VolumeSketch {
    pub buckets: [PortVolume; VOLUME_BUCKETS],
}

const _: () = assert!(core::mem::size_of::<VolumeSketch>() == 8 * VOLUME_BUCKETS);

impl Default for VolumeSketch {
    fn default() -> Self {
        Self {
            buckets: [PortVolume::default(); VOLUME_BUCKETS],
        }
    }
}

/// Bucket of `port` (Fibonacci hashing spreads neighbouring ports).
#[inline(always)]
pub const fn volume_bucket(port: u16) -> usize {
    ((port as u32).wrapping_mul(2_654_435_769) >> 22) as usize & (VOLUME_BUCKETS - 1)
}

impl PortVolume {
    /// Counts one SYN to `port` in this bucket.
    #[inline(always)]
    pub fn add(&mut self, port: u16) {
        if self.port == port {
            self.count = self.count.saturating_add(1);
        } else if self.count == 0 {
            self.port = port;
            self.count = 1;
        } else {
            self.count -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sketch_keeps_the_heavy_port_of_a_bucket() {
        let mut sketch = VolumeSketch::default();
        let heavy = 8080;
        let b = volume_bucket(heavy);
        let light = (0..=u16::MAX)
            .find(|&p| p != heavy && volume_bucket(p) == b)
            .unwrap();
        for i in 0..100 {
            sketch.buckets[b].add(heavy);
            if i % 4 == 0 {
                sketch.buckets[b].add(light);
            }
        }
        assert_eq!(sketch.buckets[b].port, heavy);
        assert_eq!(sketch.buckets[b].count, 75);
    }

    #[test]
    fn neighbouring_ports_spread_over_buckets() {
        let used: std::collections::HashSet<usize> = (8000..8064).map(volume_bucket).collect();
        assert!(used.len() > 60, "{}", used.len());
    }

    #[test]
    fn iana_ranges() {
        assert_eq!(PortClass::of(0), PortClass::WellKnown);
        assert_eq!(PortClass::of(1023), PortClass::WellKnown);
        assert_eq!(PortClass::of(1024), PortClass::Registered);
        assert_eq!(PortClass::of(49151), PortClass::Registered);
        assert_eq!(PortClass::of(49152), PortClass::Dynamic);
        assert_eq!(PortClass::of(65535), PortClass::Dynamic);
    }

    #[test]
    fn unnamed_ports_share_their_class_slot() {
        assert_eq!(port_slot(443, 0), PortClass::WellKnown as u32);
        assert_eq!(port_slot(8080, 0), PortClass::Registered as u32);
        assert_eq!(port_slot(8080, 7), 7);
    }

    #[test]
    fn since_subtracts_the_previous_owner() {
        let base = PortCounters {
            syns: 5,
            completed: 4,
            reset: 1,
            refused_syns: 7,
            timed_out: 1,
        };
        let now = PortCounters {
            syns: 8,
            completed: 6,
            reset: 1,
            refused_syns: 9,
            timed_out: 4,
        };
        assert_eq!(
            now.since(&base),
            PortCounters {
                syns: 3,
                completed: 2,
                reset: 0,
                refused_syns: 2,
                timed_out: 3,
            }
        );
    }
}
