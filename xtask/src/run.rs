//! `cargo xtask run [ARGS...]`: build the release daemon and become it.
//!
//! xtask exec()s the daemon (or sudo running it) instead of spawning it, so
//! Ctrl-C / SIGTERM reach the daemon directly, its exit code is the one the
//! caller sees, and no xtask process lingers (cargo run itself execs too).

use std::os::unix::process::CommandExt;

use anyhow::{Context, Result};

use crate::{build, env, proc, setup};

/// What the daemon does when no arguments are given.
const DEFAULT_ARGS: &[&str] = &["run"];

pub fn run(args: &[String]) -> Result<()> {
    setup::run()?;
    build::build_monitor(true)?;

    let bin = env::target_dir().join("release").join("handshake-monitor");
    let mut cmd = if env::is_root() {
        proc::command(&bin.to_string_lossy())
    } else {
        // Loading BPF programs and attaching XDP needs root.
        eprintln!("xtask: not root; running handshake-monitor through sudo");
        let mut cmd = proc::command("sudo");
        cmd.arg("--").arg(&bin);
        cmd
    };
    if args.is_empty() {
        cmd.args(DEFAULT_ARGS);
    } else {
        cmd.args(args);
    }
    eprintln!("$ {}", proc::display(&cmd));
    // exec only returns on failure.
    let err = cmd.exec();
    Err(err).with_context(|| format!("could not exec {}", bin.display()))
}
