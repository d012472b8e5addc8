//! The bpffs directory the policy table is pinned in, so blocks (and the
//! sources spared for completing handshakes) outlive a daemon restart.

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, fs::DirBuilderExt as _},
    path::{Path, PathBuf},
};

use aya::maps::MapInfo;
use monitor_common::mitigation::{PolicyEntry, PolicyKey};
use thiserror::Error;

use super::{POLICY_MAP, PROTECTED_MAP};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPFFS_ROOT: &str = "/sys/fs/bpf";

#[derive(Debug, Error)]
pub enum PinError {
    #[error(
        "pin directory {0} is not on a BPF filesystem; mount one (`mount -t bpf bpf {0}`) or \
         set mitigation.pin_dir to a directory under one"
    )]
    NotBpffs(PathBuf),
    #[error("creating pin directory {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "pinned map {path} was made by an incompatible version of handshake-monitor (key {key} B, \
         value {value} B; this version uses {want_key} B and {want_value} B); remove it with \
         `rm {path}` (its entries are lost) and start again"
    )]
    Incompatible {
        path: PathBuf,
        key: u32,
        value: u32,
        want_key: u32,
        want_value: u32,
    },
}

/// The maps pinned, with the key and value sizes this build uses.
pub fn pinned_maps() -> [(&'static str, u32, u32); 2] {
    [
        (
            POLICY_MAP,
            size_of::<PolicyKey>() as u32,
            size_of::<PolicyEntry>() as u32,
        ),
        (PROTECTED_MAP, 16, 8),
    ]
}

/// Makes `dir` ready for pinning. The default directory lives under
/// /sys/fs/bpf, which systemd mounts on most hosts; where nothing is
/// mounted there, the daemon mounts it. Returns `None` (with a warning)
/// when the default cannot be had; an explicit directory must work.
pub fn prepare(dir: &Path, explicit: bool) -> Result<Option<PathBuf>, PinError> {
    if !on_bpffs(dir)
        && !explicit
        && dir.starts_with(BPFFS_ROOT)
        && !on_bpffs(Path::new(BPFFS_ROOT))
    {
        if let Err(err) = mount_bpffs() {
            tracing::warn!(
                "{BPFFS_ROOT} is not a BPF filesystem and mounting one failed ({err}); blocks will \
                 not survive a restart. Mount it (`mount -t bpf bpf {BPFFS_ROOT}`) or set \
                 mitigation.pin_dir"
            );
            return Ok(None);
        }
        tracing::info!("mounted a BPF filesystem on {BPFFS_ROOT}");
    }
    if !on_bpffs(dir) {
        return Err(PinError::NotBpffs(dir.to_path_buf()));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PinError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
    for (name, want_key, want_value) in pinned_maps() {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let compatible = MapInfo::from_pin(&path)
            .map(|info| (info.key_size(), info.value_size()))
            .ok();
        match compatible {
            Some((key, value)) if key == want_key && value == want_value => {}
            other => {
                let (key, value) = other.unwrap_or((0, 0));
                return Err(PinError::Incompatible {
                    path,
                    key,
                    value,
                    want_key,
                    want_value,
                });
            }
        }
    }
    Ok(Some(dir.to_path_buf()))
}

/// Whether `path`, or the nearest ancestor that exists, is on bpffs.
fn on_bpffs(path: &Path) -> bool {
    let mut probe = path;
    while !probe.exists() {
        match probe.parent() {
            Some(parent) => probe = parent,
            None => return false,
        }
    }
    let Ok(c_path) = CString::new(probe.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: zeroed statfs is a valid out-buffer; c_path is NUL-terminated.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut stat) };
    rc == 0 && stat.f_type as i64 == BPF_FS_MAGIC
}

fn mount_bpffs() -> std::io::Result<()> {
    let target = CString::new(BPFFS_ROOT).expect("no NUL in a constant");
    let fstype = CString::new("bpf").expect("no NUL in a constant");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
