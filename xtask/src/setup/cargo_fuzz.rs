//! cargo-fuzz, for `cargo xtask fuzz` (and the fuzz step of `cargo xtask
//! test`). Installed once with `cargo install --locked` into
//! `$CARGO_HOME/bin`, where it stays cached like bpf-linker; later runs only
//! probe `cargo fuzz --version`.

use std::io::ErrorKind;

use anyhow::{Context, Result, bail};

use super::report;
use crate::{env, proc};

const WHAT: &str = "cargo-fuzz";

pub fn ensure() -> Result<()> {
    if let Some(version) = probe() {
        report(WHAT, &format!("ok ({version})"));
        return Ok(());
    }
    report(WHAT, "installing (not found; takes about a minute)");
    let mut cmd = proc::command("cargo");
    // Away from the workspace so its .cargo/config.toml cannot change how a
    // foreign crate is built.
    cmd.current_dir(env::cargo_home())
        .args(["install", "cargo-fuzz", "--locked"]);
    proc::run(&mut cmd).context(
        "could not install cargo-fuzz (needed by `cargo xtask fuzz`); see the cargo output above",
    )?;
    match probe() {
        Some(version) => {
            report(WHAT, &format!("installed ({version})"));
            Ok(())
        }
        None => bail!(
            "cargo-fuzz was installed into {} but `cargo fuzz --version` does not run",
            env::cargo_home().join("bin").display()
        ),
    }
}

/// `cargo-fuzz 0.13.2` -> `0.13.2`; `None` when cargo-fuzz is missing or
/// does not run.
fn probe() -> Option<String> {
    let out = match proc::probe(proc::command("cargo").args(["fuzz", "--version"])) {
        Err(e) if e.kind() == ErrorKind::NotFound => return None,
        Err(_) => return None,
        Ok(out) => out,
    };
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout)).map(str::to_owned)
}

fn parse_version(stdout: &str) -> Option<&str> {
    let mut words = stdout.lines().next()?.split_whitespace();
    (words.next()? == "cargo-fuzz").then_some(())?;
    words.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_output() {
        assert_eq!(parse_version("cargo-fuzz 0.13.2\n"), Some("0.13.2"));
        assert_eq!(parse_version("cargo-fuzz 0.11.0"), Some("0.11.0"));
        // `cargo fuzz` without cargo-fuzz installed: cargo's own error.
        assert_eq!(parse_version("error: no such command: `fuzz`"), None);
        assert_eq!(parse_version(""), None);
    }
}
