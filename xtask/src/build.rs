//! `cargo xtask build`: the daemon, with its eBPF object (monitor/build.rs
//! compiles that through aya-build, which is why setup must run first).

use anyhow::Result;

use crate::{proc, setup};

pub fn run(release: bool) -> Result<()> {
    setup::run()?;
    build_monitor(release)
}

pub fn build_monitor(release: bool) -> Result<()> {
    let mut cmd = proc::cargo(["build", "-p", "monitor"]);
    if release {
        cmd.arg("--release");
    }
    proc::run(&mut cmd)
}
