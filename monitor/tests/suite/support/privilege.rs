//! Running the daemon as an unprivileged user, with chosen capabilities.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use super::{cmd, daemon::BINARY};

/// `setpriv` arguments that turn root into nobody holding exactly `caps`
/// (names such as `bpf`, `net_admin`), as ambient capabilities, which is
/// what systemd's AmbientCapabilities= gives a service.
pub fn as_nobody_with(caps: &[&str]) -> Vec<String> {
    let mut args = vec![
        "setpriv".to_string(),
        "--reuid=65534".to_string(),
        "--regid=65534".to_string(),
        "--clear-groups".to_string(),
    ];
    let plus: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
    let mut inheritable = vec!["-all".to_string()];
    inheritable.extend(plus.iter().cloned());
    args.push(format!("--inh-caps={}", inheritable.join(",")));
    if !plus.is_empty() {
        args.push(format!("--ambient-caps={}", plus.join(",")));
    }
    args
}

/// The daemon binary at a path nobody can execute: the build output
/// itself when its directories allow it, else a copy in a temporary
/// directory, removed by the guard.
pub struct NobodyBinary {
    path: PathBuf,
    copy_dir: Option<PathBuf>,
}

impl NobodyBinary {
    pub fn new() -> Self {
        let probe = cmd::output(
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "test",
                "-x",
                BINARY,
            ],
        );
        if probe.status.success() {
            return Self {
                path: PathBuf::from(BINARY),
                copy_dir: None,
            };
        }
        let dir = std::env::temp_dir().join(format!(
            "hmt-bin-{}-{}",
            std::process::id(),
            super::unique()
        ));
        fs::create_dir(&dir).unwrap_or_else(|err| panic!("creating {}: {err}", dir.display()));
        let guard = Self {
            path: dir.join("handshake-monitor"),
            copy_dir: Some(dir.clone()),
        };
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .expect("chmod the copy's directory");
        fs::copy(BINARY, &guard.path).expect("copying the daemon binary");
        fs::set_permissions(&guard.path, fs::Permissions::from_mode(0o755))
            .expect("chmod the copy");
        guard
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for NobodyBinary {
    fn drop(&mut self) {
        if let Some(dir) = &self.copy_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}
