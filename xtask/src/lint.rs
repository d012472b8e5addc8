//! `cargo xtask lint` and `cargo xtask fmt`, and the lint steps of `test`.
//!
//! Host crates and the eBPF crate are linted separately: the eBPF crate only
//! compiles for `bpfel-unknown-none` with a nightly `-Z build-std=core`, so
//! it is left out of the host clippy run (`--workspace` would pull it in).

use std::process::Command;

use anyhow::Result;

use crate::steps::Pipeline;
use crate::{env, proc};

/// The crates that build for the host; everything but monitor-ebpf.
pub const HOST_PACKAGES: &[&str] = &["-p", "monitor", "-p", "monitor-common", "-p", "xtask"];

pub fn run() -> Result<()> {
    let mut p = Pipeline::new("xtask lint");
    p.step("fmt", fmt_check)?;
    p.step("clippy-host", clippy_host)?;
    p.step("clippy-ebpf", clippy_ebpf)?;
    p.finish();
    Ok(())
}

pub fn fmt() -> Result<()> {
    proc::run(&mut proc::cargo(["fmt", "--all"]))
}

pub fn fmt_check() -> Result<()> {
    proc::run(&mut proc::cargo(["fmt", "--all", "--", "--check"]))
}

pub fn clippy_host() -> Result<()> {
    let mut cmd = proc::cargo(["clippy"]);
    cmd.args(HOST_PACKAGES)
        .args(["--all-targets", "--", "-D", "warnings"]);
    proc::run(&mut cmd)
}

/// Makes `cmd` (a cargo build of the host crates) compile the workspace's
/// own crates with clippy's driver and its lints denied, as `cargo clippy
/// -- -D warnings` would, but producing the real artifacts. `cargo clippy`
/// only checks: followed by a test build, every dependency was compiled
/// twice, once to check and once to build, about a minute and a half of a
/// fresh CI run. Dependencies are compiled by plain rustc either way.
pub fn with_clippy(cmd: &mut Command) -> &mut Command {
    cmd.env("RUSTC_WORKSPACE_WRAPPER", "clippy-driver")
        .env("CLIPPY_ARGS", clippy_args(&["-D", "warnings"]))
}

/// clippy-driver's encoding of the arguments after `cargo clippy --`.
fn clippy_args(args: &[&str]) -> String {
    args.iter()
        .map(|a| format!("{a}__CLIPPY_HACKERY__"))
        .collect()
}

/// Clippy for monitor-ebpf the way aya-build compiles it: nightly,
/// `--target bpfel-unknown-none -Z build-std=core`, release, and the
/// `bpf_target_arch` cfg aya-ebpf uses to pick the host's pt_regs layout
/// (aya-build sets it from the host arch; so do we).
pub fn clippy_ebpf() -> Result<()> {
    let root = env::workspace_root();
    let mut cmd = proc::command("rustup");
    // `rustup run nightly cargo` == `cargo +nightly`, but does not depend on
    // the `cargo` on PATH being the rustup proxy.
    cmd.current_dir(root.join("monitor-ebpf"))
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            ebpf_rustflags(std::env::consts::ARCH),
        )
        .args(["run", "nightly", "cargo", "clippy", "-p", "monitor-ebpf"])
        .args([
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--release",
        ])
        // Own target dir: the nightly's artifacts would otherwise invalidate
        // the stable host build's cache on every switch.
        .arg("--target-dir")
        .arg(root.join("target").join("ebpf-clippy"))
        .args(["--", "-D", "warnings"]);
    proc::run(&mut cmd)
}

fn ebpf_rustflags(host_arch: &str) -> String {
    format!("--cfg=bpf_target_arch=\"{host_arch}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ebpf_cfg_flag() {
        assert_eq!(
            ebpf_rustflags("x86_64"),
            r#"--cfg=bpf_target_arch="x86_64""#
        );
    }

    #[test]
    fn clippy_args_as_cargo_clippy_passes_them() {
        assert_eq!(
            clippy_args(&["-D", "warnings"]),
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
        );
    }

    #[test]
    fn host_packages_exclude_ebpf() {
        assert!(!HOST_PACKAGES.contains(&"monitor-ebpf"));
        assert!(!HOST_PACKAGES.contains(&"--workspace"));
    }
}
