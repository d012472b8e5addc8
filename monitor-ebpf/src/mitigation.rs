//! Judges SYNs arriving on a monitored interface: the policy table first
//! (allowlist, blocklist), then the SYN cookies, then the per-source and
//! per-prefix rate limits; and IP fragments, which the parser cannot
//! follow to a TCP header.
//! A SYN the limits refuse is spared if its source completed a handshake
//! recently, and otherwise noted in the offender sketch for the daemon.
//! Pure logic (GCRA cells, hashing, the sketch) is in
//! `monitor_common::mitigation`; this module only touches maps.

use aya_ebpf::{
    macros::map,
    maps::{
        Array, LruHashMap, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
};
use monitor_common::{
    fragment::parse_fragment,
    iface::MAX_INTERFACES,
    mitigation::{
        DropReason, ExemptReason, HOST_PREFIX_LEN, LIMITER_ENTRIES, LIMITER_ROWS, Limiter,
        MitigationConfig, MitigationCounters, Mode, OWN_RATE_GRACE_NS, OffenderSketch,
        POLICY_FILTER_WORDS, PolicyEntry, kind, limiter_index, mapped, offender_slot, origin,
        policy_filter_bit, rate_prefix,
    },
    parse::PacketView,
};

use crate::{
    flows::{bump, opaque},
    segment::Staged,
};

/// Capacity of the policy table (LPM tries allocate per entry, so an
/// unused capacity costs nothing); the daemon enforces the configured,
/// smaller limit.
const POLICY_CAPACITY: u32 = 65536;
const PROTECTED_CAPACITY: u32 = 65536;

#[map]
pub static MITIGATION_CONFIG: Array<MitigationConfig> = Array::with_max_entries(1, 0);

/// Allowlist and blocklist. The daemon pins it (`EbpfLoader::map_pin_path`)
/// so blocks survive a restart; their expiry, checked here, needs no daemon.
#[map]
pub static HM_POLICY: LpmTrie<[u8; 16], PolicyEntry> =
    LpmTrie::with_max_entries(POLICY_CAPACITY, 0);

/// Sources that completed a handshake as clients of this host, with the
/// time of the latest completion. Pinned by the daemon like `HM_POLICY`.
#[map]
pub static HM_PROTECTED: LruHashMap<[u8; 16], u64> =
    LruHashMap::with_max_entries(PROTECTED_CAPACITY, 0);

/// GCRA cells of the two rate sketches, one array per CPU: no shared
/// cache lines on the flood path.
#[map]
static LIMITER: PerCpuArray<u64> = PerCpuArray::with_max_entries(LIMITER_ENTRIES, 0);

#[map]
pub static OFFENDERS: PerCpuArray<OffenderSketch> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static MITIGATION_STATS: PerCpuArray<MitigationCounters> =
    PerCpuArray::with_max_entries(MAX_INTERFACES, 0);

/// The SYN's source as the policy table's key, staged in map memory for
/// the same reason the segment is (see `segment::STAGING`).
#[repr(C)]
pub struct Suspect {
    key: Key<[u8; 16]>,
    family: u8,
    slot: u8,
    port: u16,
}

#[map]
static SUSPECT: PerCpuArray<Suspect> = PerCpuArray::with_max_entries(1, 0);

/// One bit per /16 of the IPv4 space (words 0..1024) and per 16-bit
/// IPv6 prefix (words 1024..2048) that any policy entry covers, written
/// by the daemon with the table: most sources of a flood are ruled out
/// by one load from a 16 KiB array, before the LPM trie's lookup.
#[map]
pub static HM_POLICY_FILTER: Array<u64> = Array::with_max_entries(POLICY_FILTER_WORDS, 0);

/// What becomes of an ingress SYN.
pub enum SynVerdict {
    Pass,
    Drop,
    /// Answer it with a SYN cookie (staged for `syncookie::answer`).
    Cookie,
}

/// Judges an ingress SYN, in this order: the policy table (a blocked
/// source gets nothing back, an allowlisted one goes to the stack), then
/// the SYN cookies, then the rate limits. Nothing is dropped unless the
/// mode is `enforce`.
#[inline(always)]
pub fn judge_syn(st: &Staged, slot: u32, now: u64) -> SynVerdict {
    let Some(cfg) = MITIGATION_CONFIG.get(0) else {
        return SynVerdict::Pass;
    };
    if cfg.mode == Mode::Off as u32 {
        return cookie_or_pass(st, slot);
    }
    let Some(stage) = SUSPECT.get_ptr_mut(0) else {
        return SynVerdict::Pass;
    };
    // SAFETY: per-CPU slot, only this CPU touches it during the run.
    unsafe {
        (*stage).key = Key::new(HOST_PREFIX_LEN, mapped(st.remote(), st.key.family));
        (*stage).family = st.key.family;
        (*stage).slot = slot as u8;
        (*stage).port = st.key.local_port;
    }
    let (Some(suspect), Some(stats)) = (SUSPECT.get_ptr(0), MITIGATION_STATS.get_ptr_mut(slot))
    else {
        return SynVerdict::Pass;
    };
    // SAFETY: per-CPU values, only this CPU touches them during the run.
    let (suspect, stats) = unsafe { (&*suspect, &mut *stats) };
    stats.judged += 1;
    let verdict = match policy(cfg, st.remote(), st.key.family, &suspect.key, now) {
        Policy::Allowed => {
            bump(&mut stats.exempt, ExemptReason::Allowlist as usize);
            return SynVerdict::Pass;
        }
        Policy::Blocked => Verdict::Refuse(DropReason::Blocklist),
        Policy::None => match cookie_or_pass(st, slot) {
            SynVerdict::Pass => limits(cfg, suspect, now),
            cookie => return cookie,
        },
    };
    match verdict {
        Verdict::Pass => SynVerdict::Pass,
        Verdict::Exempt(reason) => {
            bump(&mut stats.exempt, reason as usize);
            SynVerdict::Pass
        }
        Verdict::Refuse(reason) => {
            if refuse(cfg, stats, reason) {
                crate::ports::count_refused_syn(suspect.port, slot);
                SynVerdict::Drop
            } else if reason == DropReason::Blocklist {
                // Dry-run: the SYN goes on as if nothing judged it.
                cookie_or_pass(st, slot)
            } else {
                SynVerdict::Pass
            }
        }
    }
}

#[inline(always)]
fn cookie_or_pass(st: &Staged, slot: u32) -> SynVerdict {
    if crate::syncookie::wanted(st, slot) {
        SynVerdict::Cookie
    } else {
        SynVerdict::Pass
    }
}

/// Counts a refusal; true when the packet is to be dropped (`enforce`).
#[inline(always)]
fn refuse(cfg: &MitigationConfig, stats: &mut MitigationCounters, reason: DropReason) -> bool {
    if cfg.mode == Mode::Enforce as u32 {
        bump(&mut stats.dropped, reason as usize);
        true
    } else {
        bump(&mut stats.dry_run, reason as usize);
        false
    }
}

/// Whether to drop an ingress frame the parser gave up on before its TCP
/// header (`vlan_depth`, `ipv6_ext_limit`): it could be a SYN from a
/// blocked source, and nothing legitimate sends such a header chain.
#[inline(always)]
pub fn refuse_header_chain(slot: u32) -> bool {
    let Some(cfg) = MITIGATION_CONFIG.get(0) else {
        return false;
    };
    if cfg.mode == Mode::Off as u32 {
        return false;
    }
    let Some(stats) = MITIGATION_STATS.get_ptr_mut(slot) else {
        return false;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    refuse(cfg, unsafe { &mut *stats }, DropReason::HeaderChain)
}

/// Whether to drop an ingress IP fragment: a first fragment carrying a
/// SYN, or any fragment from a blocked source (`enforce` only).
#[inline(always)]
pub fn refuse_fragment<V: PacketView>(pkt: &V, slot: u32) -> bool {
    let Some(cfg) = MITIGATION_CONFIG.get(0) else {
        return false;
    };
    if cfg.mode == Mode::Off as u32 {
        return false;
    }
    let Some(fragment) = parse_fragment(pkt) else {
        return false;
    };
    let Some(stats) = MITIGATION_STATS.get_ptr_mut(slot) else {
        return false;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let stats = unsafe { &mut *stats };
    if fragment.syn {
        return refuse(cfg, stats, DropReason::SynFragment);
    }
    let Some(stage) = SUSPECT.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, only this CPU touches it during the run.
    unsafe {
        (*stage).key = Key::new(
            HOST_PREFIX_LEN,
            mapped(&fragment.src_addr, fragment.ip_version),
        );
    }
    let Some(suspect) = SUSPECT.get_ptr(0) else {
        return false;
    };
    // SAFETY: as above.
    let key = unsafe { &(*suspect).key };
    let now = crate::clock::coarse_now();
    match policy(cfg, &fragment.src_addr, fragment.ip_version, key, now) {
        Policy::Blocked => refuse(cfg, stats, DropReason::BlocklistFragment),
        _ => false,
    }
}

enum Policy {
    None,
    Allowed,
    Blocked,
}

/// The policy table's word on `addr` (its key staged as `key`).
#[inline(always)]
fn policy(
    cfg: &MitigationConfig,
    addr: &[u8; 16],
    family: u8,
    key: &Key<[u8; 16]>,
    now: u64,
) -> Policy {
    if cfg.policy_entries == 0 || !filter_may_match(addr, family) {
        return Policy::None;
    }
    match HM_POLICY.get(key) {
        Some(entry) if entry.kind == kind::ALLOW => Policy::Allowed,
        // An automatic block of a prefix is aimed at the spoofed sources
        // in it: a source there that completed a handshake lately is not
        // one of them (a spoofer cannot complete one), and goes on to the
        // limits. A block of its own address, or an operator's, holds.
        Some(entry)
            if entry.blocks(now)
                && !(entry.origin == origin::AUTO
                    && entry.prefix_len != 0
                    && u32::from(entry.prefix_len) < HOST_PREFIX_LEN
                    && protected(&key.data, now, cfg.protect_ns)) =>
        {
            Policy::Blocked
        }
        _ => Policy::None,
    }
}

#[inline(always)]
fn filter_may_match(addr: &[u8; 16], family: u8) -> bool {
    let (word, bit) = policy_filter_bit(addr, family);
    match HM_POLICY_FILTER.get(word) {
        Some(bits) => bits & (1u64 << bit) != 0,
        None => true,
    }
}

enum Verdict {
    Pass,
    Exempt(ExemptReason),
    Refuse(DropReason),
}

/// The per-source and per-prefix limits, for a source the policy table
/// says nothing about.
#[inline(always)]
fn limits(cfg: &MitigationConfig, suspect: &Suspect, now: u64) -> Verdict {
    let addr = suspect.key.data;
    let refused = if !admit(Limiter::Source, &cfg.source, &addr, now) {
        Some((DropReason::SourceRate, addr, HOST_PREFIX_LEN))
    } else {
        let (prefix, len) = rate_prefix(&addr, suspect.family);
        if admit(Limiter::Prefix, &cfg.prefix, &prefix, now) {
            None
        } else {
            Some((DropReason::PrefixRate, prefix, len))
        }
    };
    let Some((reason, offender, len)) = refused else {
        return Verdict::Pass;
    };
    // A source that completed a handshake lately is spared the limit of
    // its prefix (spoofed floods from its neighbours); its own rate only
    // while its handshakes keep completing (OWN_RATE_GRACE_NS), so a real
    // client that completes one and then floods is limited.
    let grace = if reason == DropReason::PrefixRate {
        cfg.protect_ns
    } else {
        OWN_RATE_GRACE_NS
    };
    if protected(&addr, now, grace) {
        return Verdict::Exempt(ExemptReason::Protected);
    }
    note_offender(&offender, len, suspect, cfg.epoch);
    Verdict::Refuse(reason)
}

/// Admits one SYN if any row's cell for `addr` conforms to the rate.
#[inline(always)]
fn admit(
    limiter: Limiter,
    gcra: &monitor_common::mitigation::Gcra,
    addr: &[u8; 16],
    now: u64,
) -> bool {
    let mut admitted = false;
    for row in 0..LIMITER_ROWS {
        if let Some(cell) = LIMITER.get_ptr_mut(limiter_index(limiter, row, addr)) {
            // SAFETY: per-CPU value, only this CPU touches it during the run.
            admitted |= gcra.admit(unsafe { &mut *cell }, now);
        }
    }
    admitted
}

#[inline(always)]
fn protected(addr: &[u8; 16], now: u64, protect_ns: u64) -> bool {
    // SAFETY: a valid map value, read once.
    match unsafe { HM_PROTECTED.get(addr) } {
        Some(&last) => now.saturating_sub(last) < protect_ns,
        None => false,
    }
}

#[inline(always)]
fn note_offender(addr: &[u8; 16], prefix_len: u32, suspect: &Suspect, epoch: u32) {
    let Some(sketch) = OFFENDERS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let sketch = unsafe { &mut *sketch };
    if let Some(slot) = sketch.slots.get_mut(opaque(offender_slot(addr))) {
        slot.note(addr, prefix_len as u8, suspect.slot, suspect.port, epoch);
    }
}

/// Spares `remote` the rate limits for a while: it just completed a
/// handshake with us, which a spoofed source cannot do.
#[inline(always)]
pub fn protect(remote: &[u8; 16], family: u8, now: u64) {
    match MITIGATION_CONFIG.get(0) {
        Some(cfg) if cfg.mode != Mode::Off as u32 => {}
        _ => return,
    }
    let addr = mapped(remote, family);
    if let Some(last) = HM_PROTECTED.get_ptr_mut(addr) {
        // SAFETY: a valid map value; a racing write only moves the time.
        unsafe { *last = now };
        return;
    }
    let _ = HM_PROTECTED.insert(addr, now, 0);
}
