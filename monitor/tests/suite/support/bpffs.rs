//! A BPF filesystem mounted on a fresh directory for one test, unmounted
//! by its guard (which also drops whatever is still pinned in it).

use std::{path::PathBuf, process::Command};

use super::cmd;

pub struct Bpffs(pub PathBuf);

impl Bpffs {
    pub fn mount() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "hmt-{}-{}-bpffs",
            std::process::id(),
            super::unique()
        ));
        std::fs::create_dir_all(&dir).expect("bpffs mount point");
        let dir_s = dir.to_str().expect("utf-8");
        cmd::run("mount", &["-t", "bpf", "bpf", dir_s]);
        Self(dir)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
