//! Judges SYNs arriving on a monitored interface: the policy table first
//! (allowlist, blocklist), then the per-source and per-prefix rate limits.
//! A SYN the limits refuse is spared if its source completed a handshake
//! recently, and otherwise noted in the offender sketch for the daemon.
//! Pure logic (GCRA cells, hashing, the sketch) is in
//! `monitor_common::mitigation`; this module only touches maps.

use aya_ebpf::{
    helpers::generated::bpf_ktime_get_coarse_ns,
    macros::map,
    maps::{
        Array, LruHashMap, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
};
use monitor_common::{
    iface::MAX_INTERFACES,
    mitigation::{
        DropReason, ExemptReason, HOST_PREFIX_LEN, LIMITER_ENTRIES, LIMITER_ROWS, Limiter,
        MitigationConfig, MitigationCounters, Mode, OffenderSketch, PolicyEntry, kind,
        limiter_index, mapped, offender_slot, rate_prefix,
    },
    parse::{PacketView, TcpPacket, read_source},
};

use crate::flows::{bump, opaque};

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

/// The SYN's source, staged in map memory for the same reason the flow
/// logic stages its key (see `flows::STAGING`).
#[repr(C)]
pub struct Suspect {
    key: Key<[u8; 16]>,
    family: u8,
    slot: u8,
    port: u16,
}

#[map]
static SUSPECT: PerCpuArray<Suspect> = PerCpuArray::with_max_entries(1, 0);

/// Whether to drop this ingress SYN (always `false` unless the mode is
/// `enforce`).
#[inline(always)]
pub fn refuse<V: PacketView>(pkt: &V, tcp: &TcpPacket, slot: u32) -> bool {
    let Some(cfg) = MITIGATION_CONFIG.get(0) else {
        return false;
    };
    if cfg.mode == Mode::Off as u32 {
        return false;
    }
    let Ok((source, port)) = read_source(pkt, tcp) else {
        return false;
    };
    let Some(stage) = SUSPECT.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, only this CPU touches it during the run.
    unsafe {
        (*stage).key = Key::new(HOST_PREFIX_LEN, mapped(&source, tcp.ip_version));
        (*stage).family = tcp.ip_version;
        (*stage).slot = slot as u8;
        (*stage).port = port;
    }
    let Some(suspect) = SUSPECT.get_ptr(0) else {
        return false;
    };
    let Some(stats) = MITIGATION_STATS.get_ptr_mut(slot) else {
        return false;
    };
    // SAFETY: per-CPU values, only this CPU touches them during the run.
    let (suspect, stats) = unsafe { (&*suspect, &mut *stats) };
    stats.judged += 1;
    match judge(cfg, suspect) {
        Verdict::Pass => false,
        Verdict::Exempt(reason) => {
            bump(&mut stats.exempt, reason as usize);
            false
        }
        Verdict::Refuse(reason) => {
            if cfg.mode == Mode::Enforce as u32 {
                bump(&mut stats.dropped, reason as usize);
                crate::flows::count_refused_syn(suspect.port, slot);
                true
            } else {
                bump(&mut stats.dry_run, reason as usize);
                false
            }
        }
    }
}

enum Verdict {
    Pass,
    Exempt(ExemptReason),
    Refuse(DropReason),
}

#[inline(always)]
fn judge(cfg: &MitigationConfig, suspect: &Suspect) -> Verdict {
    // SAFETY: no preconditions. The coarse clock (a jiffy's resolution)
    // costs a few ns where the precise one costs ~25.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if cfg.policy_entries > 0
        && let Some(entry) = HM_POLICY.get(&suspect.key)
    {
        if entry.kind == kind::ALLOW {
            return Verdict::Exempt(ExemptReason::Allowlist);
        }
        if entry.blocks(now) {
            return Verdict::Refuse(DropReason::Blocklist);
        }
    }
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
    if protected(&addr, now, cfg.protect_ns) {
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
