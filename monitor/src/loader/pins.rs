//! What the daemon pins under bpffs, and the checks before it reuses a
//! pin. Always the policy table and the completed-handshake table, so
//! blocks outlive a restart; with `persist`, every map and the XDP and TC
//! links too, so a restart or an upgrade keeps enforcing and counting with
//! no gap (the new programs replace the old ones on the same links).

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, fs::DirBuilderExt as _},
    path::{Path, PathBuf},
};

use aya::maps::MapInfo;
use thiserror::Error;

use super::{EBPF_OBJECT, FLOW_FILTER_MAP, FLOWS_MAP, HALF_OPEN_MAP, LoadSettings};

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/handshake-monitor";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPFFS_ROOT: &str = "/sys/fs/bpf";
/// The mitigation's policy table: the blocks and limits in force.
pub const POLICY_MAP: &str = "HM_POLICY";
/// The completed-handshake table the mitigation exempts from its limits.
pub const PROTECTED_MAP: &str = "HM_PROTECTED";

/// Where and what to pin (`--pin-dir`, `--persist`, `[monitor]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinSettings {
    /// `None`: pin nothing.
    pub dir: Option<PathBuf>,
    /// Given by the operator (must work) rather than the default (tried).
    pub explicit: bool,
    /// Pin every map and the links; leave them attached on exit.
    pub persist: bool,
}

impl Default for PinSettings {
    fn default() -> Self {
        Self {
            dir: Some(PathBuf::from(DEFAULT_PIN_DIR)),
            explicit: false,
            persist: false,
        }
    }
}

#[derive(Debug, Error)]
pub enum PinError {
    #[error(
        "pin directory {0} is not on a BPF filesystem; mount one (`mount -t bpf bpf {0}`) or \
         set monitor.pin_dir to a directory under one"
    )]
    NotBpffs(PathBuf),
    #[error("creating pin directory {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "pinned map {path} was left by an incompatible version or other settings of \
         handshake-monitor ({found}; this one needs {wanted}); remove the pinned state with \
         `handshake-monitor detach --pin-dir {dir}` (its counters and blocks are lost) and start \
         again"
    )]
    Incompatible {
        path: PathBuf,
        dir: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("the BPF object does not parse")]
    Object(#[source] aya_obj::ParseError),
    #[error("--persist needs a pin directory; set monitor.pin_dir (or drop --persist)")]
    PersistWithoutDir,
}

/// A map as the object defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    key: u32,
    value: u32,
    entries: u32,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "key {} B, value {} B, {} entries",
            self.key, self.value, self.entries
        )
    }
}

/// The maps to pin, with their shapes: the policy tables, or with
/// `persist` every map of the object (its data sections excepted).
fn maps_to_pin(persist: bool, flow_table_size: u32) -> Result<Vec<(String, Shape)>, PinError> {
    let object = aya_obj::Object::parse(EBPF_OBJECT).map_err(PinError::Object)?;
    let mut maps: Vec<(String, Shape)> = object
        .maps
        .iter()
        .filter(|(name, _)| !name.starts_with('.'))
        .filter(|(name, _)| persist || *name == POLICY_MAP || *name == PROTECTED_MAP)
        .map(|(name, map)| {
            let entries = if name == FLOWS_MAP {
                flow_table_size
            } else if name == HALF_OPEN_MAP {
                LoadSettings {
                    flow_table_size,
                    ..LoadSettings::DEFAULT
                }
                .kernel_config()
                .slots()
            } else {
                map.max_entries()
            };
            let shape = Shape {
                key: map.key_size(),
                value: map.value_size(),
                entries,
            };
            (name.clone(), shape)
        })
        .collect();
    maps.sort();
    Ok(maps)
}

/// The map names to pin, for the loader.
pub fn names_to_pin(persist: bool) -> Result<Vec<String>, PinError> {
    Ok(maps_to_pin(persist, 0)?
        .into_iter()
        .map(|(n, _)| n)
        .collect())
}

/// Directory of the pinned links, one per interface and hook.
pub fn links_dir(dir: &Path) -> PathBuf {
    dir.join("links")
}

/// Makes `dir` ready for pinning. The default directory lives under
/// /sys/fs/bpf, which systemd mounts on most hosts; where nothing is
/// mounted there, the daemon mounts it. Returns `None` (with a warning)
/// when the default cannot be had; an explicit directory must work.
pub fn prepare(settings: &PinSettings, flow_table_size: u32) -> Result<Option<PathBuf>, PinError> {
    let Some(dir) = settings.dir.as_deref() else {
        if settings.persist {
            return Err(PinError::PersistWithoutDir);
        }
        return Ok(None);
    };
    let explicit = settings.explicit;
    if !on_bpffs(dir)
        && !explicit
        && dir.starts_with(BPFFS_ROOT)
        && !on_bpffs(Path::new(BPFFS_ROOT))
    {
        if let Err(err) = mount_bpffs() {
            if settings.persist {
                return Err(PinError::NotBpffs(dir.to_path_buf()));
            }
            tracing::warn!(
                "{BPFFS_ROOT} is not a BPF filesystem and mounting one failed ({err}); blocks will \
                 not survive a restart. Mount it (`mount -t bpf bpf {BPFFS_ROOT}`) or set \
                 monitor.pin_dir"
            );
            return Ok(None);
        }
        tracing::info!("mounted a BPF filesystem on {BPFFS_ROOT}");
    }
    if !on_bpffs(dir) {
        return Err(PinError::NotBpffs(dir.to_path_buf()));
    }
    for path in [dir.to_path_buf(), links_dir(dir)] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|source| PinError::Create { path, source })?;
    }
    // Every pin this run would reuse must have the shape this build needs
    // (with persist, all of them; a map pinned by an earlier persist run is
    // checked even when this run only reuses the policy tables).
    for (name, wanted) in maps_to_pin(true, flow_table_size)? {
        let path = dir.join(&name);
        if !path.exists() {
            continue;
        }
        let reused = settings.persist || name == POLICY_MAP || name == PROTECTED_MAP;
        let found = MapInfo::from_pin(&path).ok().map(|info| Shape {
            key: info.key_size(),
            value: info.value_size(),
            entries: info.max_entries(),
        });
        if reused && found != Some(wanted) {
            return Err(PinError::Incompatible {
                path,
                dir: dir.to_path_buf(),
                found: found.map_or("not a map".into(), |f| f.to_string()),
                wanted: wanted.to_string(),
            });
        }
    }
    // The flow table's bucket counts must come with it: a fresh, empty
    // filter would hide the pinned connections from their SYN-ACKs.
    let filter = dir.join(FLOW_FILTER_MAP);
    if settings.persist && dir.join(FLOWS_MAP).exists() && !filter.exists() {
        return Err(PinError::Incompatible {
            path: filter,
            dir: dir.to_path_buf(),
            found: "no such map beside the pinned FLOWS".into(),
            wanted: "the flow filter".into(),
        });
    }
    Ok(Some(dir.to_path_buf()))
}

/// `handshake-monitor detach`: unpins the links (the programs detach) and
/// the maps, then the directories. Returns what it removed.
pub fn detach(dir: &Path, control_socket: &Path) -> anyhow::Result<Vec<String>> {
    if std::os::unix::net::UnixStream::connect(control_socket).is_ok() {
        anyhow::bail!(
            "a handshake-monitor daemon is running (it answers on {}); stop it first: it \
             would keep using what is pinned",
            control_socket.display()
        );
    }
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    // Links first: the interfaces are free before the maps go.
    for sub in [links_dir(dir), dir.to_path_buf()] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                continue;
            }
            unpin(&path, sub == links_dir(dir))
                .map_err(|e| anyhow::anyhow!("removing {}: {e}", path.display()))?;
            removed.push(path.display().to_string());
        }
    }
    let _ = std::fs::remove_dir(links_dir(dir));
    let _ = std::fs::remove_dir(dir);
    Ok(removed)
}

/// Removes one pin. A link is opened first and closed after its pin is
/// gone: the kernel frees a link whose pin was the last reference later,
/// from a work queue (the program stays attached a moment after `detach`
/// returned), but one whose last file descriptor closes at once.
fn unpin(path: &Path, link: bool) -> std::io::Result<()> {
    if link && let Ok(pinned) = aya::programs::links::PinnedLink::from_pin(path) {
        drop(pinned.unpin()?);
        return Ok(());
    }
    std::fs::remove_file(path)
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
