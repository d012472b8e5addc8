//! After everything is loaded and attached, the daemon keeps only the
//! capabilities it still uses: none for reading and writing its own maps
//! (the file descriptors are its rights), CAP_BPF only where the kernel
//! refuses `bpf()` to processes without it (`kernel.unprivileged_bpf_disabled`),
//! and CAP_NET_ADMIN only to take an old kernel's clsact filters down on
//! exit. The bounding and ambient sets are emptied too, so nothing it could
//! ever exec gets them back.

use std::io;

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_BPF: u32 = 39;
/// Highest capability number the kernel may know (CAP_LAST_CAP is 40 on
/// 6.x; higher numbers are refused harmlessly).
const CAP_LAST: u32 = 63;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Keeps exactly `keep` (effective and permitted); drops the rest from
/// every set. Returns the capability mask kept.
pub fn keep_only(keep: &[u32]) -> io::Result<u64> {
    let mask: u64 = keep.iter().fold(0, |m, cap| m | 1 << cap);
    for cap in 0..=CAP_LAST {
        if mask & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments. EINVAL past the
            // kernel's last capability, EPERM without CAP_SETPCAP: both
            // leave the bounding set as it was, which capset below still
            // makes unusable.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: mask as u32,
            permitted: mask as u32,
            inheritable: 0,
        },
        Data {
            effective: (mask >> 32) as u32,
            permitted: (mask >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: header and two data structs, as capset(2) wants for v3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(mask)
}

/// Whether `bpf()` needs CAP_BPF here (`kernel.unprivileged_bpf_disabled`
/// not 0): then map reads and writes do too.
pub fn bpf_needs_capability() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map(|v| v.trim() != "0")
        .unwrap_or(true)
}
