//! `cargo xtask flaky N [-- FILTER...]`: the flake hunt. Builds the
//! integration suite once, runs it N times as the test step does (same
//! threads, every lab test beside the others), and reports every test that
//! failed in any run, with how often and its first failure. Fails if any
//! did: a test that fails one run in seven is a bug to find, in the test or
//! in the product.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{setup, suite, test};

/// One test's failures over the runs.
#[derive(Debug, Default, PartialEq)]
struct Failures {
    runs: Vec<usize>,
    first: String,
}

pub fn run(args: &[String]) -> Result<()> {
    let (runs, filters) = parse_args(args)?;
    setup::run()?;
    let executable = suite::build()?;
    let mut failed: BTreeMap<String, Failures> = BTreeMap::new();
    let started = Instant::now();
    for run in 1..=runs {
        let t0 = Instant::now();
        let mut cmd = suite::command(&executable);
        cmd.args(test::suite_harness_args()).args(&filters);
        let out = cmd
            .output()
            .with_context(|| format!("could not run {}", executable.display()))?;
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let failures = parse_failures(&text);
        if failures.is_empty() && !out.status.success() {
            // Not a test failure: the harness itself broke (a crash, a
            // bad filter). Show all of it.
            bail!(
                "run {run}: the suite exited {} with no failed test:\n{text}",
                out.status
            );
        }
        eprintln!(
            "xtask flaky: run {run}/{runs}: {} in {:.0}s",
            summary(&text),
            t0.elapsed().as_secs_f64()
        );
        for (name, message) in failures {
            let entry = failed.entry(name).or_default();
            if entry.runs.is_empty() {
                entry.first = message;
            }
            entry.runs.push(run);
        }
    }
    eprintln!(
        "xtask flaky: {runs} runs in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        eprintln!("xtask flaky: no test failed");
        return Ok(());
    }
    for (name, f) in &failed {
        eprintln!(
            "\n---- {name}: failed in {} of {runs} runs (runs {:?}); first failure:\n{}",
            f.runs.len(),
            f.runs,
            abridged(&f.first)
        );
    }
    bail!(
        "{} test(s) failed in at least one of {runs} runs",
        failed.len()
    )
}

/// A failure as the report shows it: assertion dumps can run to megabytes
/// (a whole metrics page), so at most 40 lines of at most 400 characters.
fn abridged(failure: &str) -> String {
    const LINES: usize = 40;
    const WIDTH: usize = 400;
    let mut out: Vec<String> = failure
        .lines()
        .take(LINES)
        .map(|l| match l.char_indices().nth(WIDTH) {
            Some((cut, _)) => format!("{} [...]", &l[..cut]),
            None => l.to_owned(),
        })
        .collect();
    let more = failure.lines().count().saturating_sub(LINES);
    if more > 0 {
        out.push(format!("[... {more} more lines]"));
    }
    out.join("\n")
}

/// `N [--] [FILTER...]`: the run count, then the harness's test filters.
fn parse_args(args: &[String]) -> Result<(usize, Vec<String>)> {
    let usage = "usage: cargo xtask flaky N [-- FILTER...] (N runs, 1 to 100)";
    let (first, rest) = args.split_first().context(usage)?;
    let runs: usize = first
        .parse()
        .ok()
        .filter(|n| (1..=100).contains(n))
        .context(usage)?;
    let filters = rest.iter().filter(|a| *a != "--").cloned().collect();
    Ok((runs, filters))
}

/// The `test result:` line of a run.
fn summary(output: &str) -> &str {
    output
        .lines()
        .find(|l| l.starts_with("test result:"))
        .unwrap_or("no test result line")
}

/// Each failed test and its captured output, from libtest's report: the
/// `---- NAME stdout ----` sections after `failures:`, and any test
/// reported FAILED without a section (a timeout, an abort).
fn parse_failures(output: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    let mut flush = |current: &mut Option<(String, Vec<&str>)>| {
        if let Some((name, lines)) = current.take() {
            out.push((name, lines.join("\n").trim().to_owned()));
        }
    };
    for line in output.lines() {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            flush(&mut current);
            current = Some((name.to_owned(), Vec::new()));
        } else if line == "failures:" || line.starts_with("test result:") {
            flush(&mut current);
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    flush(&mut current);
    for line in output.lines() {
        if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
            && !out.iter().any(|(n, _)| n == name)
        {
            out.push((name.to_owned(), "(no output captured)".to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn long_failures_are_abridged() {
        let long = "x".repeat(500);
        let text = format!("{long}\n{}", "line\n".repeat(50));
        let shown = abridged(&text);
        assert!(shown.starts_with(&format!("{} [...]\nline", "x".repeat(400))));
        assert!(shown.ends_with("[... 11 more lines]"), "{shown}");
        assert_eq!(abridged("short"), "short");
    }

    #[test]
    fn runs_and_filters() {
        assert_eq!(parse_args(&args(&["5"])).unwrap(), (5, vec![]));
        assert_eq!(
            parse_args(&args(&["3", "--", "replay::", "records::"])).unwrap(),
            (3, args(&["replay::", "records::"]))
        );
        assert!(parse_args(&args(&[])).is_err());
        assert!(parse_args(&args(&["0"])).is_err());
        assert!(parse_args(&args(&["many"])).is_err());
    }

    #[test]
    fn failures_with_and_without_output() {
        let text = "\
running 3 tests
test a::ok ... ok
test b::bad ... FAILED
test c::killed ... FAILED

failures:

---- b::bad stdout ----
thread 'b::bad' panicked at x.rs:1:1:
live 298 against 300

failures:
    b::bad
    c::killed

test result: FAILED. 1 passed; 2 failed; 0 ignored";
        assert_eq!(
            parse_failures(text),
            [
                (
                    "b::bad".to_owned(),
                    "thread 'b::bad' panicked at x.rs:1:1:\nlive 298 against 300".to_owned()
                ),
                ("c::killed".to_owned(), "(no output captured)".to_owned())
            ]
        );
        assert_eq!(
            summary(text),
            "test result: FAILED. 1 passed; 2 failed; 0 ignored"
        );
    }
}
