//! Remote sources whose SYNs the monitored host refused with a RST
//! (closed ports), for port-scan detection (see `monitor_common::scan`):
//! one slot write in this CPU's partition per refused SYN, since a
//! spoofed SYN to a closed port is refused too. The daemon reads the
//! table in place once a second.

use aya_ebpf::{helpers::generated::bpf_get_smp_processor_id, macros::map, maps::Array};
use monitor_common::{
    flow::{FlowKey, ScanKey},
    scan::{SCAN_SLOTS, ScanConfig, ScanSlot},
};

/// `BPF_F_MMAPABLE`: the daemon reads the table in place.
const MMAPABLE: u32 = 1 << 10;

#[map]
pub static SCAN_TABLE: Array<ScanSlot> = Array::with_max_entries(SCAN_SLOTS, MMAPABLE);

#[map]
pub static SCAN_CONFIG: Array<ScanConfig> = Array::with_max_entries(1, 0);

/// Whole-key equality in five 4-byte compares (no `bcmp` in BPF).
#[inline(always)]
fn same_key(a: &ScanKey, b: &ScanKey) -> bool {
    let (a, b) = (
        (a as *const ScanKey).cast::<u32>(),
        (b as *const ScanKey).cast::<u32>(),
    );
    let mut diff = 0u32;
    for i in 0..5 {
        // SAFETY: ScanKey is 20 bytes of plain integers.
        diff |= unsafe { a.add(i).read_unaligned() ^ b.add(i).read_unaligned() };
    }
    diff == 0
}

/// Notes our RST refusing `key`'s SYN. Written only for a handshake the
/// host itself ended, so a flood of spoofed SYNs to open ports adds
/// nothing here.
#[inline(always)]
pub fn note_refused_syn(key: &FlowKey, slot: u32, now: u64) {
    let Some(cfg) = SCAN_CONFIG.get(0) else {
        return;
    };
    let scan_key = ScanKey {
        addr: key.remote_addr,
        family: key.family,
        slot: slot as u8,
        _pad: [0; 2],
    };
    // SAFETY: no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(entry) = SCAN_TABLE.get_ptr_mut(cfg.index(cpu, &scan_key)) else {
        return;
    };
    // SAFETY: a valid map value for the program's run; another CPU writes
    // this slot only past 64 CPUs (shared partitions), and then the worst
    // a torn entry does is miscount one source.
    let entry = unsafe { &mut *entry };
    let same = same_key(&entry.key, &scan_key);
    entry.note(same, &scan_key, key.local_port, now, cfg.window_ns);
}
