//! Counting a hash map's entries with `BPF_MAP_LOOKUP_BATCH`: a few
//! syscalls for the whole table, where walking it key by key costs two
//! per entry (aya 0.14 has no batch operations, so the call is made here).

use std::{io, os::fd::BorrowedFd};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// `union bpf_attr`'s batch member.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Entries of the hash map `fd` (keys of `key_size`, values of
/// `value_size` bytes), read `chunk` at a time into reused buffers.
pub fn count_entries(
    fd: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
    chunk: usize,
) -> io::Result<u64> {
    use std::os::fd::AsRawFd as _;
    let mut chunk = chunk.max(1);
    let mut keys = vec![0u8; key_size * chunk];
    let mut values = vec![0u8; value_size.next_multiple_of(8) * chunk];
    // The batch tokens are the kernel's bucket cursor (a u32 for hash maps).
    let mut token_in = 0u64;
    let mut token_out = 0u64;
    let mut first = true;
    let mut total = 0u64;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &raw mut token_in as u64 },
            out_batch: &raw mut token_out as u64,
            map_fd: fd.as_raw_fd() as u32,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is a valid batch attribute whose buffers hold
        // `count` keys and values; the kernel writes only within them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        match err.as_ref().and_then(io::Error::raw_os_error) {
            None => total += u64::from(attr.count),
            // The end of the table: the last entries come with it.
            Some(libc::ENOENT) => return Ok(total + u64::from(attr.count)),
            // One bucket holds more entries than a chunk: a bigger one.
            Some(libc::ENOSPC) if chunk < 1 << 20 => {
                chunk *= 2;
                keys.resize(key_size * chunk, 0);
                values.resize(value_size.next_multiple_of(8) * chunk, 0);
                continue;
            }
            Some(_) => return Err(err.unwrap_or_else(|| io::Error::other("batch lookup"))),
        }
        first = false;
        token_in = token_out;
    }
}
