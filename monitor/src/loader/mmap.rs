//! An mmapable array map (`BPF_F_MMAPABLE`) mapped read-only into the
//! daemon: a once-a-second reader walks it as memory, with no syscall per
//! entry.

use std::{
    io,
    marker::PhantomData,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use aya::maps::{Map, MapData};

use super::{EbpfError, Programs};

pub struct MappedArray<T> {
    base: NonNull<T>,
    len: usize,
    mapped_len: usize,
    /// Holds the map (its fd) for as long as the mapping is used.
    _map: MapData,
    _values: PhantomData<T>,
}

// SAFETY: the mapping is read-only shared memory owned by this value; the
// kernel is the only writer, and `T` is plain data.
unsafe impl<T: Copy + Send> Send for MappedArray<T> {}
// SAFETY: as above: `&self` only reads.
unsafe impl<T: Copy + Sync> Sync for MappedArray<T> {}

impl<T: Copy> MappedArray<T> {
    /// Takes the array map `name` out of the loaded object and maps it.
    /// `T` must be exactly its value type (plain integers).
    pub fn take(programs: &mut Programs, name: &'static str) -> Result<Self, EbpfError> {
        Self::map(programs, name, libc::PROT_READ)
    }

    fn map(
        programs: &mut Programs,
        name: &'static str,
        protection: libc::c_int,
    ) -> Result<Self, EbpfError> {
        let data = match programs.ebpf_mut().take_map(name) {
            Some(Map::Array(data)) => data,
            _ => {
                return Err(EbpfError::Missing {
                    kind: "array map",
                    name,
                });
            }
        };
        let error = |source: io::Error| EbpfError::Mmap { map: name, source };
        let info = data.info().map_err(|e| error(io::Error::other(e)))?;
        let len = info.max_entries() as usize;
        let value_size = info.value_size() as usize;
        if value_size != size_of::<T>() {
            return Err(error(io::Error::other(format!(
                "value size {value_size}, expected {}",
                size_of::<T>()
            ))));
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let mapped_len = (len * value_size).div_ceil(page) * page;
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh read-only shared mapping of the map's fd; the
        // kernel sized the array's memory for `len` values of this size.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_len,
                protection,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(error(io::Error::last_os_error()));
        }
        let base = NonNull::new(addr.cast::<T>())
            .ok_or_else(|| error(io::Error::other("mmap returned NULL")))?;
        Ok(Self {
            base,
            len,
            mapped_len,
            _map: data,
            _values: PhantomData,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads one byte of entry `i` at `offset`, cheaper than the whole
    /// entry when it decides whether the entry is worth copying.
    pub fn byte(&self, i: usize, offset: usize) -> u8 {
        assert!(i < self.len && offset < size_of::<T>());
        // SAFETY: in bounds of the mapping (checked above); volatile, since
        // the kernel writes the memory behind the compiler's back.
        unsafe {
            self.base
                .as_ptr()
                .add(i)
                .cast::<u8>()
                .add(offset)
                .read_volatile()
        }
    }

    /// A copy of entry `i`. The kernel may rewrite it meanwhile: the copy
    /// can then mix old and new fields, which plain-integer values allow.
    pub fn get(&self, i: usize) -> T {
        assert!(i < self.len);
        // SAFETY: in bounds of the mapping; `T` is plain integers, so any
        // bit pattern is valid.
        unsafe { self.base.as_ptr().add(i).read_volatile() }
    }
}

/// An mmapable array map the daemon writes in place: a value the programs
/// read per packet, set without a syscall.
pub struct WritableArray<T>(MappedArray<T>);

// SAFETY: the mapping moves with its owner; writes need `&mut self`.
unsafe impl<T: Copy + Send> Send for WritableArray<T> {}

impl<T: Copy> WritableArray<T> {
    /// [`MappedArray::take`], mapped writable.
    pub fn take(programs: &mut Programs, name: &'static str) -> Result<Self, EbpfError> {
        MappedArray::map(programs, name, libc::PROT_READ | libc::PROT_WRITE).map(Self)
    }

    /// Sets entry `i`. The programs may read it meanwhile: a read racing
    /// the write sees the old or the new value of an aligned integer.
    pub fn set(&mut self, i: usize, value: T) {
        assert!(i < self.0.len);
        // SAFETY: in bounds of a writable shared mapping; `T` is plain
        // integers; volatile, since the kernel reads it behind our back.
        unsafe { self.0.base.as_ptr().add(i).write_volatile(value) }
    }
}

impl<T> Drop for MappedArray<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `take`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.mapped_len) };
    }
}
