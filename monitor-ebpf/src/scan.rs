//! Remote sources whose SYNs the monitored host refused with a RST
//! (closed ports), for port-scan detection; the daemon reads and ages the
//! table once a second.

use aya_ebpf::{macros::map, maps::LruHashMap};
use monitor_common::flow::{FlowKey, ScanKey, ScanState};

#[map]
pub static SCAN_SOURCES: LruHashMap<ScanKey, ScanState> = LruHashMap::with_max_entries(4096, 0);

/// Notes our RST refusing `key`'s SYN. Written only for a handshake the
/// host itself ended, so a flood of spoofed SYNs to open ports adds
/// nothing here.
#[inline(always)]
pub fn note_refused_syn(key: &FlowKey, slot: u32, now: u64) {
    let scan_key = ScanKey {
        addr: key.remote_addr,
        family: key.family,
        slot: slot as u8,
        _pad: [0; 2],
    };
    if let Some(state) = SCAN_SOURCES.get_ptr_mut(scan_key) {
        // SAFETY: a valid map value; racing updates only lose a count.
        unsafe { (*state).note(key.local_port) };
        return;
    }
    let mut state = ScanState {
        first_ns: now,
        ..ScanState::default()
    };
    state.note(key.local_port);
    let _ = SCAN_SOURCES.insert(scan_key, state, 0);
}
