//! Pinned links (`--persist`): the XDP and TCX links of each interface are
//! pinned under `<pin dir>/links`, so they stay attached when the daemon
//! exits, and the next daemon swaps its freshly loaded programs into them
//! with `BPF_LINK_UPDATE`: at no moment is the interface without a
//! program, so a restart or an upgrade leaves no gap in enforcement.

use std::path::{Path, PathBuf};

use aya::{
    Ebpf,
    programs::{
        TcAttachType,
        links::{FdLink, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
    },
};

use super::{EbpfError, TcAttachMode, XdpAttachMode, attach_xdp, tc_program, xdp_program};
use crate::interfaces::Interface;

/// Pin name suffixes; bpffs refuses dots in names, so an interface name's
/// dots (VLAN devices such as `eth0.100`) are escaped.
const SUFFIXES: [&str; 3] = ["_xdp_native", "_xdp_generic", "_tcx"];

fn escaped(iface: &str) -> String {
    iface.replace('%', "%25").replace('.', "%2E")
}

fn xdp_pin(dir: &Path, iface: &str, mode: XdpAttachMode) -> PathBuf {
    dir.join(format!("{}_xdp_{}", escaped(iface), mode.name()))
}

fn tc_pin(dir: &Path, iface: &str) -> PathBuf {
    dir.join(format!("{}_tcx", escaped(iface)))
}

fn pin_err(iface: &Interface, what: &str, err: impl std::error::Error) -> EbpfError {
    let mut message = format!("{what} of {}: {err}", iface.name);
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    EbpfError::Pins(message)
}

/// Attaches both programs to `iface` through its pinned links, taking them
/// over when an earlier run left them, creating and pinning them if not.
/// Pins made here are added to `created`, so that a start that fails later
/// can take them back.
pub fn attach_pinned(
    ebpf: &mut Ebpf,
    iface: &Interface,
    dir: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<(XdpAttachMode, TcAttachMode), EbpfError> {
    let xdp = attach_xdp_pinned(ebpf, iface, dir, created)?;
    let tc = attach_tc_pinned(ebpf, iface, dir, created)?;
    Ok((xdp, tc))
}

fn attach_xdp_pinned(
    ebpf: &mut Ebpf,
    iface: &Interface,
    dir: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<XdpAttachMode, EbpfError> {
    let program = xdp_program(ebpf)?;
    for mode in [XdpAttachMode::Native, XdpAttachMode::Generic] {
        let path = xdp_pin(dir, &iface.name, mode);
        let Ok(pinned) = PinnedLink::from_pin(&path) else {
            continue;
        };
        let link: XdpLink = FdLink::from(pinned)
            .try_into()
            .map_err(|e| pin_err(iface, "the pinned XDP link", e))?;
        match program.attach_to_link(link) {
            Ok(_) => return Ok(mode),
            // The interface went away and came back: the old link is dead.
            Err(err) => {
                tracing::warn!(interface = %iface.name, "the pinned XDP link is stale ({err}); attaching anew");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let (mode, id) = attach_xdp(program, iface)?;
    let link = program
        .take_link(id)
        .map_err(|e| pin_err(iface, "taking the XDP link", e))?;
    let fd: FdLink = link
        .try_into()
        .map_err(|e| pin_err(iface, "the XDP link (not a BPF link)", e))?;
    let path = xdp_pin(dir, &iface.name, mode);
    fd.pin(&path)
        .map_err(|e| pin_err(iface, "pinning the XDP link", e))?;
    created.push(path);
    Ok(mode)
}

fn attach_tc_pinned(
    ebpf: &mut Ebpf,
    iface: &Interface,
    dir: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<TcAttachMode, EbpfError> {
    let program = tc_program(ebpf)?;
    let path = tc_pin(dir, &iface.name);
    if let Ok(pinned) = PinnedLink::from_pin(&path) {
        let link: SchedClassifierLink = FdLink::from(pinned)
            .try_into()
            .map_err(|e| pin_err(iface, "the pinned TCX link", e))?;
        match program.attach_to_link(link) {
            Ok(_) => return Ok(TcAttachMode::Tcx),
            Err(err) => {
                tracing::warn!(interface = %iface.name, "the pinned TCX link is stale ({err}); attaching anew");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let id = program
        .attach_with_options(
            &iface.name,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(Default::default()),
        )
        .map_err(|source| EbpfError::TcAttach {
            iface: iface.name.clone(),
            source,
        })?;
    let link = program
        .take_link(id)
        .map_err(|e| pin_err(iface, "taking the TCX link", e))?;
    let fd: FdLink = link
        .try_into()
        .map_err(|e| pin_err(iface, "the TCX link (not a BPF link)", e))?;
    fd.pin(&path)
        .map_err(|e| pin_err(iface, "pinning the TCX link", e))?;
    created.push(path);
    Ok(TcAttachMode::Tcx)
}

/// Unpins the links of interfaces not in `keep` (an earlier run watched
/// them, this one does not): they detach. Returns their names.
pub fn release_others(dir: &Path, keep: &[Interface]) -> Vec<String> {
    let mut released = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return released;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(iface) = SUFFIXES.iter().find_map(|s| name.strip_suffix(s)) else {
            continue;
        };
        if keep.iter().any(|k| escaped(&k.name) == iface) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            released.push(name);
        }
    }
    released
}
