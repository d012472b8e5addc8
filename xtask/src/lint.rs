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

/// Clippy for monitor-ebpf, as the build of the kernel object that
/// `monitor/build.rs` asks aya-build for: nightly, `--target
/// bpfel-unknown-none -Z build-std=core`, release, aya-build's flags, and
/// its target directory (`<target>/ebpf/aya-build/target/monitor-ebpf`).
/// A real build with clippy's driver for the workspace crates rather than
/// `cargo clippy`: a check compiled `core` for the BPF target once more,
/// which the object's build then compiled again (about 20 s of a fresh
/// run); now the object's build reuses it and recompiles only the two
/// small workspace crates (aya-build removes the wrapper).
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
        .args(["run", "nightly", "cargo", "build", "-p", "monitor-ebpf"])
        .args([
            "--bins",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--release",
        ])
        .arg("--target-dir")
        .arg(ebpf_target_dir());
    proc::run(with_clippy(&mut cmd))
}

/// aya-build's cargo target directory for monitor-ebpf, under the shared
/// `<target>/ebpf` that `monitor/build.rs` gives it.
fn ebpf_target_dir() -> std::path::PathBuf {
    env::target_dir()
        .join("ebpf")
        .join("aya-build")
        .join("target")
        .join("monitor-ebpf")
}

/// aya-build's `CARGO_ENCODED_RUSTFLAGS`, byte for byte, so that `core`
/// built here is up to date for it: the `bpf_target_arch` cfg aya-ebpf
/// uses to pick the host's pt_regs layout, debug info and BTF.
fn ebpf_rustflags(host_arch: &str) -> String {
    [
        format!("--cfg=bpf_target_arch=\"{host_arch}\""),
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
    ]
    .join("\x1f")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ebpf_cfg_flag() {
        assert_eq!(
            ebpf_rustflags("x86_64"),
            "--cfg=bpf_target_arch=\"x86_64\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf"
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
