//! `cargo xtask setup`: make this machine able to build and test the project.
//!
//! Idempotent and cheap when everything is present (every check is a local
//! probe, well under a second in total), so `build`, `run` and `test` call it
//! first instead of failing later with a less helpful error.

mod bpf_linker;
/// cargo-fuzz is installed by `cargo xtask fuzz` (and the fuzz step of
/// `cargo xtask test`) itself: running the daemon does not need it.
pub mod cargo_fuzz;
pub mod packages;
mod toolchain;

use anyhow::Result;

pub fn run() -> Result<()> {
    toolchain::check_nightly()?;
    toolchain::ensure_rust_src()?;
    bpf_linker::ensure()?;
    packages::ensure()?;
    Ok(())
}

/// One line per check, e.g. `setup: rust-src for nightly ... ok`. On stderr,
/// with the echoed commands, so stdout stays free for tools' own output.
fn report(what: &str, status: &str) {
    eprintln!("setup: {what} ... {status}");
}
