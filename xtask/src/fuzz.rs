//! `cargo xtask fuzz [--seconds N] [TARGET...]`: a bounded cargo-fuzz run of
//! every target in `monitor-common/fuzz` (or the ones named), N seconds
//! each (default 60). `cargo xtask test` runs it with a shorter budget.
//!
//! New inputs the fuzzer keeps go to a scratch corpus under the target
//! directory, so the tracked seeds (`monitor-common/fuzz/corpus/<target>`)
//! stay small and only change on purpose. A crash fails the run and
//! leaves its input in `monitor-common/fuzz/artifacts/<target>/`.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{env, proc, setup};

/// Every target of `monitor-common/fuzz/Cargo.toml`, in run order.
pub const TARGETS: [&str; 4] = [
    "parse_tcp",
    "reassembly",
    "tls_client_hello",
    "tls_server_hello",
];

/// Per-target budget of `cargo xtask fuzz` without `--seconds`.
pub const DEFAULT_SECONDS: u64 = 60;

/// Per-target budget inside `cargo xtask test`: four targets, two at a time
/// on two CPUs, take 30 s of a CI run, which must finish in six minutes
/// (the build, about 45 s, runs beside the tests: see [`prebuild`]);
/// `cargo xtask fuzz` fuzzes longer.
pub const CI_SECONDS: u64 = 15;

/// A single input running longer than this is reported as a hang.
const INPUT_TIMEOUT_SECONDS: u64 = 10;

fn fuzz_dir() -> PathBuf {
    env::workspace_root().join("monitor-common").join("fuzz")
}

pub fn run(seconds: u64, only: &[String]) -> Result<()> {
    for name in only {
        if !TARGETS.contains(&name.as_str()) {
            bail!(
                "no fuzz target `{name}`; the targets are {}",
                TARGETS.join(", ")
            );
        }
    }
    let targets: Vec<&str> = if only.is_empty() {
        TARGETS.to_vec()
    } else {
        TARGETS
            .into_iter()
            .filter(|t| only.iter().any(|o| o == t))
            .collect()
    };
    setup::cargo_fuzz::ensure()?;
    // One build of every target, so the budgets below are spent fuzzing.
    proc::run(&mut fuzz_cargo(["build", "-O"])).context("building the fuzz targets failed")?;
    // One target per CPU at a time: libFuzzer runs on one thread, so on a
    // two-CPU machine the four budgets take half as long side by side.
    let at_once = std::thread::available_parallelism().map_or(1, |n| n.get());
    for batch in targets.chunks(at_once) {
        let start = Instant::now();
        let children = batch
            .iter()
            .map(|target| spawn_target(target, seconds).map(|child| (*target, child)))
            .collect::<Result<Vec<_>>>()?;
        let mut crashed = None;
        for (target, mut child) in children {
            let status = child
                .wait()
                .with_context(|| format!("waiting for fuzz target {target}"))?;
            if status.success() {
                eprintln!(
                    "xtask fuzz: {target}: no crash in {:.0}s",
                    start.elapsed().as_secs_f64()
                );
            } else if crashed.is_none() {
                crashed = Some(target);
            }
        }
        if let Some(target) = crashed {
            bail!(crash_hint(target));
        }
    }
    Ok(())
}

/// Starts one target's bounded run; its output goes to ours.
fn spawn_target(target: &str, seconds: u64) -> Result<std::process::Child> {
    let scratch = env::target_dir().join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let seeds = fuzz_dir().join("corpus").join(target);
    let mut cmd = fuzz_cargo(["run", "-O", target]);
    cmd.arg(&scratch)
        .arg(&seeds)
        .arg("--")
        .args(libfuzzer_args(seconds));
    eprintln!("$ {}", proc::display(&cmd));
    cmd.spawn()
        .with_context(|| format!("could not start the fuzz target {target}"))
}

/// `cargo +nightly fuzz ARGS` from `monitor-common/` (cargo-fuzz finds
/// `fuzz/` below it). libFuzzer's instrumentation needs the nightly.
/// The targets' build, started early in the background at the lowest CPU
/// priority: it takes only the CPU the tests leave idle (they wait on
/// timers and the network much of the time), and `run` later finds the
/// targets built. Killed if dropped unfinished (a failed step before it).
pub struct Prebuild {
    child: Option<Child>,
    log: PathBuf,
}

/// Starts the build of every target in the background; its output goes to
/// `target/fuzz-build.log`, shown if it fails.
pub fn prebuild() -> Result<Prebuild> {
    setup::cargo_fuzz::ensure()?;
    let log = env::workspace_root().join("target").join("fuzz-build.log");
    std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))?;
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let build = fuzz_cargo(["build", "-O"]);
    let mut cmd = proc::command("nice");
    cmd.current_dir(build.get_current_dir().unwrap_or(Path::new(".")))
        .args(["-n", "19", "cargo", "+nightly", "fuzz", "build", "-O"])
        .stdout(out.try_clone()?)
        .stderr(out)
        // A group of its own, so that dropping it stops cargo-fuzz's own
        // `cargo build` and its compilers too.
        .process_group(0);
    eprintln!(
        "$ {} (in the background; output in {})",
        proc::display(&cmd),
        log.display()
    );
    let child = cmd
        .spawn()
        .context("could not start the fuzz targets' build")?;
    Ok(Prebuild {
        child: Some(child),
        log,
    })
}

impl Prebuild {
    /// Waits for the build; its log, and an error, if it failed.
    pub fn finish(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child
            .wait()
            .context("waiting for the fuzz targets' build")?;
        if !status.success() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("{log}");
            bail!("building the fuzz targets failed ({status}); its output is above");
        }
        Ok(())
    }
}

impl Drop for Prebuild {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(group) = i32::try_from(child.id()) {
                // SAFETY: kill(2) has no memory preconditions; the group is
                // the one `prebuild` made for this child.
                unsafe { libc::kill(-group, libc::SIGKILL) };
            }
            let _ = child.wait();
        }
    }
}

fn fuzz_cargo<const N: usize>(args: [&str; N]) -> std::process::Command {
    let mut cmd = proc::command("cargo");
    cmd.current_dir(fuzz_dir().parent().unwrap_or(Path::new(".")))
        .args(["+nightly", "fuzz"])
        .args(args);
    cmd
}

fn libfuzzer_args(seconds: u64) -> Vec<String> {
    vec![
        format!("-max_total_time={seconds}"),
        format!("-timeout={INPUT_TIMEOUT_SECONDS}"),
        // Keep the log to a line every few seconds.
        "-print_final_stats=1".to_owned(),
    ]
}

fn crash_hint(target: &str) -> String {
    format!(
        "fuzz target {target} failed: the crashing input is in {}; replay it with \
         `cargo +nightly fuzz run {target} <file>` from monitor-common/, fix the bug, \
         and add the input as a unit test (and to fuzz/corpus/{target}/)",
        fuzz_dir().join("artifacts").join(target).display()
    )
}

/// For `--seconds`: a whole number of seconds, at least 1.
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of seconds"))?;
    if n == 0 {
        return Err("must be at least 1".to_owned());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[[bin]]` names of the fuzz crate's manifest.
    fn manifest_targets() -> Vec<String> {
        let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
        let mut names = Vec::new();
        let mut in_bin = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(rest) = line.strip_prefix("name = ") {
                names.push(rest.trim_matches('"').to_owned());
            }
        }
        names.sort();
        names
    }

    #[test]
    fn targets_match_the_fuzz_manifest_and_have_seeds() {
        let mut ours: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
        ours.sort();
        assert_eq!(ours, manifest_targets());
        for target in TARGETS {
            let seeds = fuzz_dir().join("corpus").join(target);
            let n = std::fs::read_dir(&seeds).map(|d| d.count()).unwrap_or(0);
            assert!(n > 0, "no seeds in {}", seeds.display());
        }
    }

    #[test]
    fn seconds_are_positive_whole_numbers() {
        assert_eq!(parse_seconds("25"), Ok(25));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("1.5").is_err());
        assert!(parse_seconds("-3").is_err());
    }

    #[test]
    fn libfuzzer_gets_the_budget() {
        assert_eq!(
            libfuzzer_args(20),
            ["-max_total_time=20", "-timeout=10", "-print_final_stats=1"]
        );
    }
}
