//! SYN-flood mitigation in XDP: the policy table (allowlist and blocklist
//! in one LPM trie), per-source and per-prefix SYN rate limits kept in a
//! per-CPU sketch of GCRA cells, and a heavy-hitter sketch of the sources
//! the limits refused, from which the daemon picks offenders to block.
//!
//! Only SYNs arriving on a monitored interface are judged; every other
//! packet, and every SYN in mode `off`, passes untouched.

labelled_enum! {
    /// What the XDP program does with a SYN the policy or the limits refuse.
    pub enum Mode: u32 {
        /// Judge nothing.
        Off = 0 => "off",
        /// Judge every SYN and count what would be dropped; drop nothing.
        DryRun = 1 => "dry-run",
        /// Drop what the policy or the limits refuse.
        Enforce = 2 => "enforce",
    }
}

labelled_enum! {
    /// Why a SYN was (or, in dry-run, would have been) dropped.
    pub enum DropReason: u32 {
        /// Its source is in the blocklist.
        Blocklist = 0 => "blocklist",
        /// Its source exceeded the per-source SYN rate.
        SourceRate = 1 => "source_rate",
        /// Its /24 (IPv4) or /64 (IPv6) exceeded the per-prefix SYN rate.
        PrefixRate = 2 => "prefix_rate",
        /// A first IP fragment carrying a TCP SYN (or too short to show
        /// its flags): no real stack fragments a SYN.
        SynFragment = 3 => "syn_fragment",
        /// An IP fragment from a blocked source.
        BlocklistFragment = 4 => "blocklist_fragment",
        /// A frame whose headers the parser does not follow to their end
        /// (more VLAN tags or IPv6 extension headers than it walks), so
        /// its source and flags cannot be judged; Linux would deliver it.
        HeaderChain = 5 => "header_chain",
    }
}

labelled_enum! {
    /// Why a SYN was let through that the limits alone would have refused
    /// (allowlisted sources skip the limits entirely).
    pub enum ExemptReason: u32 {
        /// Its source is in the allowlist.
        Allowlist = 0 => "allowlist",
        /// Its source completed a handshake recently.
        Protected = 1 => "protected",
    }
}

/// Policy entry kinds.
pub mod kind {
    pub const ALLOW: u8 = 1;
    pub const BLOCK: u8 = 2;
}

/// Who put a policy entry there.
pub mod origin {
    /// The config file's allowlist.
    pub const CONFIG: u8 = 1;
    /// An operator, through `handshake-monitor block add`.
    pub const MANUAL: u8 = 2;
    /// The daemon, for a source the limits refused while a flood alert
    /// fired.
    pub const AUTO: u8 = 3;
}

/// LPM trie key: IPv4 sources are stored IPv4-mapped (`::ffff:a.b.c.d`),
/// so one trie holds both families and an IPv4 /24 is a /120.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct PolicyKey {
    pub prefix_len: u32,
    pub addr: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<PolicyKey>() == 20);

/// One allowlist or blocklist entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PolicyEntry {
    /// CLOCK_MONOTONIC time at which a block stops applying; 0: never.
    /// The kernel checks it itself, so a block expires on time even while
    /// no daemon runs; the daemon deletes expired entries.
    pub expires_ns: u64,
    /// CLOCK_MONOTONIC time the entry was added.
    pub added_ns: u64,
    /// For automatic blocks: the SYNs the limits refused from this source
    /// in the second that got it blocked.
    pub refused_syns: u64,
    pub kind: u8,
    pub origin: u8,
    /// For automatic blocks: the interface slot and port of the flood.
    pub slot: u8,
    /// The entry's prefix length in the policy table's keys (IPv4 mapped
    /// into IPv6: 128 is one host); 0 from a daemon before 2026-12-08.
    pub prefix_len: u8,
    pub port: u16,
    pub _pad1: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<PolicyEntry>() == 32);

impl PolicyEntry {
    /// Whether a block applies at `now` (allow entries never expire).
    #[inline(always)]
    pub fn blocks(&self, now_ns: u64) -> bool {
        self.kind == kind::BLOCK && (self.expires_ns == 0 || now_ns < self.expires_ns)
    }
}

/// A SYN rate as a generic cell rate algorithm: each cell holds the
/// theoretical arrival time of the next SYN, so admitting one is a compare
/// and an add (no division on the packet path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Gcra {
    /// Nanoseconds per SYN at the configured rate.
    pub interval_ns: u64,
    /// How far ahead of now a cell may run: (burst - 1) intervals.
    pub tolerance_ns: u64,
}

const _: () = assert!(core::mem::size_of::<Gcra>() == 16);

impl Gcra {
    pub const fn new(per_sec: u64, burst: u64) -> Self {
        // A zero rate admits only the burst (the daemon refuses it anyway).
        let interval_ns = match 1_000_000_000u64.checked_div(per_sec) {
            Some(ns) => ns,
            None => u64::MAX / 4,
        };
        let tolerance_ns = interval_ns.saturating_mul(burst.saturating_sub(1));
        Self {
            interval_ns,
            tolerance_ns,
        }
    }

    /// Admits one SYN against `cell` at `now`, advancing the cell if so.
    #[inline(always)]
    pub fn admit(&self, cell: &mut u64, now_ns: u64) -> bool {
        let tat = if *cell > now_ns { *cell } else { now_ns };
        if tat - now_ns > self.tolerance_ns {
            return false;
        }
        *cell = tat + self.interval_ns;
        true
    }
}

/// Rows of each rate sketch: a source is refused only when every row's
/// cell is exhausted, so an innocent source sharing one cell with an
/// attacker still gets through on its other row.
pub const LIMITER_ROWS: u32 = 2;
/// Cells per row.
pub const LIMITER_CELLS: u32 = 16384;

/// The two rate sketches of the per-CPU limiter array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Limiter {
    Source = 0,
    Prefix = 1,
}

/// Entries of the per-CPU limiter array (one u64 cell each).
pub const LIMITER_ENTRIES: u32 = 2 * LIMITER_ROWS * LIMITER_CELLS;

/// Index of the cell of `addr` in `row` of `limiter`.
#[inline(always)]
pub fn limiter_index(limiter: Limiter, row: u32, addr: &[u8; 16]) -> u32 {
    let cell = hash(addr, row) & (LIMITER_CELLS - 1);
    (limiter as u32 * LIMITER_ROWS + row) * LIMITER_CELLS + cell
}

/// An address hash with a per-row seed: murmur3's 64-bit finalizer over
/// the folded address, cheap in BPF (shifts, xors, two multiplies) and
/// independent enough across rows that cells shared in one row are not
/// shared in the other.
#[inline(always)]
pub fn hash(addr: &[u8; 16], seed: u32) -> u32 {
    let h =
        crate::hash::fold(addr, 17) ^ 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(u64::from(seed) + 1);
    crate::hash::fmix64(h)
}

/// Words of the policy filter: 65536 bits for the IPv4 /16s, then 65536
/// for the first 16 bits of IPv6 addresses.
pub const POLICY_FILTER_WORDS: u32 = 2048;
const FILTER_V6_BASE: u32 = 1024;

/// The filter bit of a source (`addr` as the parser stores it): word and
/// bit within it.
#[inline(always)]
pub fn policy_filter_bit(addr: &[u8; 16], family: u8) -> (u32, u32) {
    let top = u32::from(u16::from_be_bytes([addr[0], addr[1]]));
    let base = if family == 4 { 0 } else { FILTER_V6_BASE };
    (base + (top >> 6), top & 63)
}

/// The filter bits a policy entry (`key` in the table's form:
/// IPv4-mapped for IPv4, with its prefix length) covers: bit positions
/// over the whole filter, `start..start + count`.
pub fn policy_filter_span(key: &[u8; 16], prefix_len: u32) -> (u32, u32) {
    let v4 = key[..10].iter().all(|&b| b == 0) && key[10] == 0xff && key[11] == 0xff;
    let (top, len, base) = if v4 && prefix_len >= 96 {
        (u16::from_be_bytes([key[12], key[13]]), prefix_len - 96, 0)
    } else {
        let top = u16::from_be_bytes([key[0], key[1]]);
        (top, prefix_len, FILTER_V6_BASE * 64)
    };
    let count = 1u32 << 16u32.saturating_sub(len.min(16));
    let start = u32::from(top) & !(count - 1);
    (base + start, count)
}

/// `addr` (as the parser stores it: IPv4 in the first four bytes) in the
/// policy table's form: IPv4-mapped for family 4.
#[inline(always)]
pub fn mapped(addr: &[u8; 16], family: u8) -> [u8; 16] {
    if family == 4 {
        [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, addr[0], addr[1], addr[2], addr[3],
        ]
    } else {
        *addr
    }
}

/// How long after its last completed handshake a source is spared its
/// own SYN rate: a busy client whose connections complete keeps renewing
/// it; one that completes a handshake and then floods is limited within
/// this time. (The prefix's limit spares it for `protect_completed_seconds`.)
pub const OWN_RATE_GRACE_NS: u64 = 1_000_000_000;

/// Prefix length, in the mapped form, of a full host address.
pub const HOST_PREFIX_LEN: u32 = 128;
/// The per-prefix limit's aggregate: /24 for IPv4 (a /120 mapped), /64 for
/// IPv6.
#[inline(always)]
pub fn rate_prefix(mapped: &[u8; 16], family: u8) -> ([u8; 16], u32) {
    let mut prefix = *mapped;
    if family == 4 {
        prefix[15] = 0;
        (prefix, 120)
    } else {
        prefix[8..].fill(0);
        (prefix, 64)
    }
}

/// Settings the daemon writes into a one-entry map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MitigationConfig {
    /// A [`Mode`] value.
    pub mode: u32,
    /// Entries in the policy table; 0 skips its lookup.
    pub policy_entries: u32,
    pub source: Gcra,
    pub prefix: Gcra,
    /// How long a source that completed a handshake is spared the limits.
    pub protect_ns: u64,
    /// Offender-sketch generation: the daemon moves it on each time it has
    /// read the sketch, which empties it without a write per slot.
    pub epoch: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<MitigationConfig>() == 56);

/// Per-interface mitigation counters, one copy per CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MitigationCounters {
    /// SYNs judged (mode not `off`).
    pub judged: u64,
    /// Dropped in `enforce`, by [`DropReason`].
    pub dropped: [u64; DropReason::COUNT],
    /// Would have been dropped in `dry-run`, by [`DropReason`].
    pub dry_run: [u64; DropReason::COUNT],
    /// Let through by [`ExemptReason`].
    pub exempt: [u64; ExemptReason::COUNT],
}

const _: () = assert!(core::mem::size_of::<MitigationCounters>() == 8 * 15);

/// Slots of the offender sketch.
pub const OFFENDER_SLOTS: usize = 512;

/// One heavy-hitter candidate: a source (or prefix) the limits refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct OffenderSlot {
    pub addr: [u8; 16],
    pub epoch: u32,
    pub count: u32,
    /// Mapped prefix length: 128 for a source, 120 or 64 for a prefix.
    pub prefix_len: u8,
    pub slot: u8,
    pub port: u16,
    pub _pad: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<OffenderSlot>() == 32);

/// Direct-mapped heavy-hitter sketch (one per CPU): a slot keeps its
/// source while that source is refused more often than the others mapped
/// there (Misra-Gries decrement), so a single flooding source owns its slot
/// within a few packets, and random spoofed sources never build a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct OffenderSketch {
    pub slots: [OffenderSlot; OFFENDER_SLOTS],
}

const _: () = assert!(core::mem::size_of::<OffenderSketch>() == 32 * OFFENDER_SLOTS);

impl Default for OffenderSketch {
    fn default() -> Self {
        Self {
            slots: [OffenderSlot::default(); OFFENDER_SLOTS],
        }
    }
}

/// Slot of `addr` in the offender sketch.
#[inline(always)]
pub fn offender_slot(addr: &[u8; 16]) -> usize {
    (hash(addr, 7) as usize) & (OFFENDER_SLOTS - 1)
}

impl OffenderSlot {
    /// Counts one refused SYN from `addr/prefix_len`.
    #[inline(always)]
    pub fn note(&mut self, addr: &[u8; 16], prefix_len: u8, slot: u8, port: u16, epoch: u32) {
        if self.epoch != epoch {
            self.count = 0;
            self.epoch = epoch;
        }
        if self.count > 0 && self.addr == *addr && self.prefix_len == prefix_len {
            self.count += 1;
        } else if self.count > 1 {
            self.count -= 1;
            return;
        } else {
            self.addr = *addr;
            self.prefix_len = prefix_len;
            self.count = 1;
        }
        self.slot = slot;
        self.port = port;
    }
}

#[cfg(test)]
#[path = "mitigation_tests.rs"]
mod tests;
