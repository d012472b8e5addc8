//! The nightly toolchain and its rust-src component. The eBPF crate is built
//! with `-Z build-std=core` for `bpfel-unknown-none`, which needs both.

use anyhow::{Result, bail};

use super::report;
use crate::proc;

/// The nightly is preinstalled on the machines this project runs on and
/// cannot be downloaded from here, so a missing one is an error, not an
/// install step.
pub fn check_nightly() -> Result<()> {
    const WHAT: &str = "nightly toolchain";
    match proc::probe_stdout(proc::command("rustup").args(["run", "nightly", "rustc", "-V"])) {
        Some(version) => {
            report(WHAT, &format!("ok ({})", version.trim()));
            Ok(())
        }
        None => {
            report(WHAT, "MISSING");
            bail!(
                "`rustup run nightly rustc -V` failed: no usable nightly toolchain. \
                 The eBPF programs need one (`-Z build-std`); install it with \
                 `rustup toolchain install nightly --component rust-src` on a machine \
                 with network access, or ask for a machine image that has it"
            )
        }
    }
}

pub fn ensure_rust_src() -> Result<()> {
    const WHAT: &str = "rust-src for nightly";
    let installed = proc::probe_stdout(proc::command("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    if has_rust_src(&installed) {
        report(WHAT, "ok");
        return Ok(());
    }
    report(WHAT, "installing");
    proc::run(proc::command("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
    .map_err(|e| e.context("could not add rust-src to nightly (needed by `-Z build-std=core`)"))?;
    report(WHAT, "installed");
    Ok(())
}

/// rust-src is target-independent, so rustup lists it without a triple
/// (`rust-src`), unlike e.g. `rust-std-x86_64-unknown-linux-gnu`.
fn has_rust_src(installed: &str) -> bool {
    installed.lines().any(|l| l.trim() == "rust-src")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_src_detection() {
        let list = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\nrust-src\nrustc-x86_64-unknown-linux-gnu\n";
        assert!(has_rust_src(list));
        assert!(!has_rust_src(
            "cargo-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-linux-gnu\n"
        ));
        assert!(!has_rust_src(""));
    }
}
