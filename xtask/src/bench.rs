//! `cargo xtask bench`: builds the release binaries and runs the benchmark
//! runner as root (it loads BPF programs, creates a network namespace and
//! starts the daemon in it). Arguments go to the runner: `--rounds N`,
//! `--json PATH`, `--only xdp,tc,live,daemon,flood`. See docs/benchmarks.md.

use anyhow::Result;

use crate::{env, proc, setup};

pub fn run(args: &[String]) -> Result<()> {
    setup::run()?;
    proc::run(&mut proc::cargo(["build", "--release", "-p", "monitor"]))?;
    let runner = env::target_dir().join("release/handshake-monitor-bench");
    let mut cmd = if env::is_root() {
        std::process::Command::new(&runner)
    } else {
        eprintln!("xtask: not root; running the benchmark through sudo");
        let mut sudo = std::process::Command::new("sudo");
        sudo.arg(&runner);
        sudo
    };
    cmd.args(args);
    proc::run(&mut cmd)
}
