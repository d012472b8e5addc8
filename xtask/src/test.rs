//! `cargo xtask test`: everything CI runs, in order, stopping at the first
//! failure, with each step's time in the summary.

use anyhow::Result;

use crate::steps::Pipeline;
use crate::{env, lint, proc, setup};

pub fn run(extra: &[String]) -> Result<()> {
    let mut p = Pipeline::new("xtask test");
    p.step("setup", setup::run)?;
    p.step("fmt", lint::fmt_check)?;
    p.step("clippy-ebpf", lint::clippy_ebpf)?;
    // Clippy's lints run inside the one build of the tests (see
    // `lint::with_clippy`): a lint still fails this step, before any test.
    p.step("clippy-host+build", build_tests)?;
    // A bounded fuzz run of every target (parsers, reassembly), 15 s each,
    // after the test step; the targets build beside the tests, on the CPU
    // they leave idle. Skipped, like the demo, when the caller picked tests
    // by name.
    let fuzz_build = if extra.is_empty() {
        Some(crate::fuzz::prebuild()?)
    } else {
        None
    };
    p.step("test", || cargo_test(extra))?;
    if let Some(build) = fuzz_build {
        p.step("fuzz", || {
            build.finish()?;
            crate::fuzz::run(crate::fuzz::CI_SECONDS, &[])
        })?;
    }
    // The newcomers' tour runs too, so it cannot rot: a whole product run
    // (lab, daemon, real clients, a flood) in about 20 s.
    if extra.is_empty() {
        p.step("demo", || crate::demo::run_with(lint::with_clippy))?;
    }
    p.finish();
    Ok(())
}

/// Test threads of the integration suite. Its lab tests spend much of
/// their time waiting on the kernel and on timers (handshake timeouts,
/// detector ticks, block TTLs), and each builds its own namespaces, so
/// more of them run at once than there are CPUs; `RUST_TEST_THREADS` set
/// by the caller wins.
pub const SUITE_THREADS: usize = 4;

/// The harness arguments the suite runs with, here and in `xtask flaky`.
pub fn suite_harness_args() -> Vec<String> {
    let threads = std::env::var("RUST_TEST_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(SUITE_THREADS);
    vec![format!("--test-threads={threads}")]
}

/// Every test target of the host crates, built (not run) with clippy's
/// lints denied.
fn build_tests() -> Result<()> {
    let mut cmd = proc::cargo(["test", "--no-run", "--all-targets"]);
    cmd.args(lint::HOST_PACKAGES);
    proc::run(lint::with_clippy(&mut cmd))
}

fn cargo_test(extra: &[String]) -> Result<()> {
    let mut cmd = proc::cargo(["test"]);
    cmd.args(lint::HOST_PACKAGES).args(cargo_test_args(extra));
    // The same compiler settings as the build step, so nothing rebuilds.
    lint::with_clippy(&mut cmd);
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        cmd.env("RUST_TEST_THREADS", SUITE_THREADS.to_string());
    }
    // Many tests load BPF programs and create network namespaces, which
    // needs root. Build as the caller (so target/ stays theirs) and run only
    // the test binaries as root, through cargo's per-target runner.
    if !env::is_root() {
        if env::have_sudo() {
            let var = env::runner_env_var(&env::host_triple()?);
            eprintln!("xtask test: not root; running test binaries through `sudo -E` ({var})");
            cmd.env(var, "sudo -E");
        } else {
            eprintln!("xtask test: warning: not root and no sudo; tests that need root will fail");
        }
    }
    proc::run(&mut cmd)
}

/// Where the user's extra args go. Without a `--` they are for the test
/// harness (`cargo xtask test -- --test-threads=1 name_filter`); with one,
/// the part before it is for cargo and the rest for the harness
/// (`cargo xtask test -- --release -- --nocapture`).
fn cargo_test_args(extra: &[String]) -> Vec<String> {
    if extra.is_empty() || extra.iter().any(|a| a == "--") {
        extra.to_vec()
    } else {
        std::iter::once("--".to_owned())
            .chain(extra.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn extra_args_default_to_the_harness() {
        assert_eq!(cargo_test_args(&[]), Vec::<String>::new());
        assert_eq!(
            cargo_test_args(&args(&["--test-threads=1"])),
            args(&["--", "--test-threads=1"])
        );
    }

    #[test]
    fn explicit_separator_splits_cargo_and_harness_args() {
        let a = args(&["--release", "--", "--nocapture"]);
        assert_eq!(cargo_test_args(&a), a);
    }
}
