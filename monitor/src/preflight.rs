//! Checks made before touching the kernel, so a missing prerequisite is
//! reported by name instead of as a bare EPERM from deep inside a load.

use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PreflightError {
    #[error(
        "the kernel has no BTF ({path} is missing): handshake-monitor needs a kernel built \
         with CONFIG_DEBUG_INFO_BTF=y (standard on distribution kernels since Linux 5.x)"
    )]
    NoBtf { path: String },
    #[error(
        "missing capabilities {missing}: handshake-monitor loads BPF programs (CAP_BPF, \
         CAP_PERFMON) and attaches them to interfaces (CAP_NET_ADMIN); run it as root \
         (sudo handshake-monitor run ...) or grant them, e.g. systemd \
         AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_PERFMON"
    )]
    MissingCapabilities { missing: String },
    #[error("cannot read the process capabilities from /proc/self/status")]
    Status(#[source] std::io::Error),
}

pub fn check_btf(path: &Path) -> Result<(), PreflightError> {
    if path.exists() {
        Ok(())
    } else {
        Err(PreflightError::NoBtf {
            path: path.display().to_string(),
        })
    }
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Names of the required capabilities missing from an effective set.
/// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as in the kernel.
pub fn missing_capabilities(effective: u64) -> Vec<&'static str> {
    let has = |cap: u32| effective & (1u64 << cap) != 0;
    let sys_admin = has(CAP_SYS_ADMIN);
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !sys_admin {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_PERFMON) && !sys_admin {
        missing.push("CAP_PERFMON");
    }
    missing
}

/// Parses the `CapEff:` line of /proc/PID/status.
pub fn effective_capabilities(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

pub fn check_capabilities() -> Result<(), PreflightError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(PreflightError::Status)?;
    let effective = effective_capabilities(&status).unwrap_or(0);
    let missing = missing_capabilities(effective);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PreflightError::MissingCapabilities {
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_everything() {
        assert!(missing_capabilities(0x000001ffffffffff).is_empty());
    }

    #[test]
    fn sys_admin_stands_in_for_bpf_and_perfmon() {
        let caps = (1 << CAP_SYS_ADMIN) | (1 << CAP_NET_ADMIN);
        assert!(missing_capabilities(caps).is_empty());
    }

    #[test]
    fn unprivileged_misses_all_three() {
        assert_eq!(
            missing_capabilities(0),
            ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]
        );
    }

    #[test]
    fn parses_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";
        assert_eq!(effective_capabilities(status), Some(1 << CAP_NET_ADMIN));
    }

    #[test]
    fn missing_btf_names_the_path() {
        let err = check_btf(Path::new("/nonexistent/btf/vmlinux")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/btf/vmlinux"));
        assert!(err.to_string().contains("CONFIG_DEBUG_INFO_BTF"));
    }
}
