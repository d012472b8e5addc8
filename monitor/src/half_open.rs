//! The half-open table, daemon half (see `monitor_common::half_open`):
//! the kernel's mmapable array mapped read-only into the daemon, so the
//! once-a-second count of half-open handshakes and timeouts reads memory
//! instead of making a syscall per entry.

use monitor_common::{
    flow::FlowState,
    half_open::{Age, HalfOpen},
};

use crate::loader::{EbpfError, HALF_OPEN_MAP, Programs, mmap::MappedArray};

pub struct HalfOpenTable {
    table: MappedArray<HalfOpen>,
}

impl HalfOpenTable {
    /// Takes the table out of the loaded object and maps it.
    pub fn take(programs: &mut Programs) -> Result<Self, EbpfError> {
        Ok(Self {
            table: MappedArray::take(programs, HALF_OPEN_MAP)?,
        })
    }

    pub fn slots(&self) -> usize {
        self.table.len()
    }

    /// Calls `f` with every occupied slot and its age at `now_ns`. The
    /// kernel may rewrite a slot while it is read: such a slot is seen
    /// either way, which moves one handshake by one second.
    pub fn scan(&self, now_ns: u64, timeout_ns: u64, mut f: impl FnMut(&HalfOpen, Age)) {
        let phase = std::mem::offset_of!(HalfOpen, state) + std::mem::offset_of!(FlowState, phase);
        for i in 0..self.table.len() {
            // The phase byte decides whether to copy the slot.
            if self.table.byte(i, phase) == 0 {
                continue;
            }
            let entry = self.table.get(i);
            match entry.age(now_ns, timeout_ns) {
                Age::Empty => {}
                age => f(&entry, age),
            }
        }
    }
}
