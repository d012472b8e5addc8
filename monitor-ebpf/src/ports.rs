//! Per-port handshake counters, kernel half: named ports (the daemon's
//! `--port` list and automatic top-N) get slots of their own, every other
//! port counts in its IANA range's slot.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
};
use monitor_common::{
    flow::{FlowKey, Role},
    iface::MAX_INTERFACES,
    ports::{PORT_SLOTS, PortCounters, VolumeSketch, port_index, port_slot, volume_bucket},
};

use crate::flows::opaque;

/// Named ports: port -> port slot (0: unnamed, aggregated by class).
#[map]
pub static PORT_TABLE: Array<u8> = Array::with_max_entries(65536, 0);

#[map]
pub static PORT_STATS: PerCpuArray<PortCounters> =
    PerCpuArray::with_max_entries(MAX_INTERFACES * PORT_SLOTS * Role::COUNT as u32, 0);

/// SYN volume per port, for the daemon's automatic top-N (one 8 KiB value
/// per CPU, read in one syscall).
#[map]
pub static PORT_VOLUME: PerCpuArray<VolumeSketch> = PerCpuArray::with_max_entries(1, 0);

/// The service port of a flow: ours for a server, the peer's for a client.
#[inline(always)]
pub const fn service_port(key: &FlowKey, role: Role) -> u16 {
    match role {
        Role::Server => key.local_port,
        Role::Client => key.remote_port,
    }
}

/// This CPU's counters of `port` (its named slot, else its class).
#[inline(always)]
pub fn counters(port: u16, slot: u32, role: Role) -> Option<&'static mut PortCounters> {
    let named = PORT_TABLE.get(u32::from(port)).copied().unwrap_or(0);
    let index = port_index(slot, port_slot(port, named), role);
    let stats = PORT_STATS.get_ptr_mut(index)?;
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    Some(unsafe { &mut *stats })
}

/// A SYN that started a handshake (tracked or not).
#[inline(always)]
pub fn count_syn(key: &FlowKey, slot: u32, role: Role) {
    let port = service_port(key, role);
    if let Some(stats) = counters(port, slot, role) {
        stats.syns += 1;
    }
    count_volume(port);
}

/// A SYN the mitigation dropped or a cookie answered never reaches the
/// half-open table, but the flood detector must still see it: counted
/// per port as refused.
#[inline(always)]
pub fn count_refused_syn(port: u16, slot: u32) {
    if let Some(stats) = counters(port, slot, Role::Server) {
        stats.refused_syns += 1;
    }
}

/// A half-open handshake found past its timeout when a SYN took its slot.
#[inline(always)]
pub fn count_timeout(key: &FlowKey, role: Role) {
    if let Some(stats) = counters(service_port(key, role), u32::from(key.slot), role) {
        stats.timed_out += 1;
    }
}

#[inline(always)]
fn count_volume(port: u16) {
    let Some(sketch) = PORT_VOLUME.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU value, only this CPU touches it during the run.
    let sketch = unsafe { &mut *sketch };
    if let Some(bucket) = sketch.buckets.get_mut(opaque(volume_bucket(port))) {
        bucket.add(port);
    }
}
