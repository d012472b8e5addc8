//! The half-open table, daemon half (see `monitor_common::half_open`):
//! the kernel's mmapable array mapped read-only into the daemon, so the
//! once-a-second count of half-open handshakes and timeouts reads memory
//! instead of making a syscall per entry.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use aya::maps::{Map, MapData};
use monitor_common::half_open::{Age, HalfOpen};

use crate::loader::{EbpfError, HALF_OPEN_MAP, Programs};

pub struct HalfOpenTable {
    base: NonNull<HalfOpen>,
    slots: usize,
    mapped_len: usize,
    /// Holds the map (its fd) for as long as the mapping is used.
    _map: MapData,
}

// SAFETY: the mapping is read-only shared memory owned by this value; the
// kernel is the only writer.
unsafe impl Send for HalfOpenTable {}
// SAFETY: as above: `&self` only reads.
unsafe impl Sync for HalfOpenTable {}

impl HalfOpenTable {
    /// Takes the table out of the loaded object and maps it.
    pub fn take(programs: &mut Programs) -> Result<Self, EbpfError> {
        let map = programs.ebpf_mut().take_map(HALF_OPEN_MAP);
        let data = match map {
            Some(Map::Array(data)) => data,
            _ => {
                return Err(EbpfError::Missing {
                    kind: "array map",
                    name: HALF_OPEN_MAP,
                });
            }
        };
        let mapping_error = |source: io::Error| EbpfError::Mmap {
            map: HALF_OPEN_MAP,
            source,
        };
        let info = data
            .info()
            .map_err(|e| mapping_error(io::Error::other(e)))?;
        let slots = info.max_entries() as usize;
        let value_size = info.value_size() as usize;
        if value_size != size_of::<HalfOpen>() {
            return Err(mapping_error(io::Error::other(format!(
                "value size {value_size}, expected {}",
                size_of::<HalfOpen>()
            ))));
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let mapped_len = (slots * value_size).div_ceil(page) * page;
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh read-only shared mapping of the map's fd; the
        // kernel sized the array's memory for `slots` values of this size.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(mapping_error(io::Error::last_os_error()));
        }
        let base = NonNull::new(addr.cast::<HalfOpen>())
            .ok_or_else(|| mapping_error(io::Error::other("mmap returned NULL")))?;
        Ok(Self {
            base,
            slots,
            mapped_len,
            _map: data,
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Calls `f` with every occupied slot and its age at `now_ns`. The
    /// kernel may rewrite a slot while it is read: such a slot is seen
    /// either way, which moves one handshake by one second.
    pub fn scan(&self, now_ns: u64, timeout_ns: u64, mut f: impl FnMut(&HalfOpen, Age)) {
        let phase_offset = std::mem::offset_of!(HalfOpen, state)
            + std::mem::offset_of!(monitor_common::flow::FlowState, phase);
        for i in 0..self.slots {
            // SAFETY: `i` is within the mapping; the values are plain
            // integers, any bit pattern is valid, and volatile reads keep
            // the compiler from assuming the memory is unchanging.
            let slot = unsafe { self.base.as_ptr().add(i) };
            // SAFETY: as above; the phase byte decides whether to copy.
            let phase = unsafe { slot.cast::<u8>().add(phase_offset).read_volatile() };
            if phase == 0 {
                continue;
            }
            // SAFETY: as above.
            let entry = unsafe { slot.read_volatile() };
            match entry.age(now_ns, timeout_ns) {
                Age::Empty => {}
                age => f(&entry, age),
            }
        }
    }
}

impl Drop for HalfOpenTable {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `take`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.mapped_len) };
    }
}
