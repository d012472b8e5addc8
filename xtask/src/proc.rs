//! Spawning child processes the same way everywhere.
//!
//! Every action is echoed as `$ cmd args` before it runs (so a failing CI log
//! shows exactly what ran and can be pasted into a shell) and inherits stdio.
//! Every child gets `$CARGO_HOME/bin` at the front of PATH: cargo-installed
//! tools such as bpf-linker live there, and aya-build's nested nightly cargo
//! must find the same bpf-linker that `setup` checked.

use std::ffi::{OsStr, OsString};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

use crate::env;

/// A `Command` for `program` with the xtask PATH applied.
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", child_path());
    cmd
}

/// `cargo ARGS` run from the workspace root (whatever the caller's cwd is).
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command("cargo");
    cmd.current_dir(env::workspace_root()).args(args);
    cmd
}

/// PATH for children: `$CARGO_HOME/bin` first, then the inherited PATH
/// without duplicates of it. First, not just present, so a stray older
/// bpf-linker elsewhere on PATH cannot shadow the one setup installed.
fn child_path() -> OsString {
    let cargo_bin = env::cargo_home().join("bin");
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let rest = std::env::split_paths(&inherited).filter(|p| *p != cargo_bin);
    std::env::join_paths(std::iter::once(cargo_bin.clone()).chain(rest)).unwrap_or(inherited)
}

/// Echo `cmd`, run it with inherited stdio, and fail unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}` (is it installed and on PATH?)"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Run a read-only probe quietly and capture its output. Probes are not
/// echoed: `setup` prints one line per check instead, which is what keeps its
/// output readable. `Err` only when the program could not be started.
pub fn probe(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null()).output()
}

/// The probe's stdout, or `None` if it could not start or exited non-zero.
pub fn probe_stdout(cmd: &mut Command) -> Option<String> {
    let out = probe(cmd).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Shell-like rendering of a command, including the env vars set on it, so
/// the echoed line can be copied into a shell as is.
pub fn display(cmd: &Command) -> String {
    let envs = cmd.get_envs().filter_map(|(k, v)| {
        // PATH is set on every child; echoing it would drown the line.
        let v = v.filter(|_| k != "PATH")?;
        Some(format!("{}={}", k.to_string_lossy(), quote(v)))
    });
    let words = std::iter::once(quote(cmd.get_program())).chain(cmd.get_args().map(quote));
    envs.chain(words).collect::<Vec<_>>().join(" ")
}

/// Quote `word` for a POSIX shell, only when it needs it.
pub fn quote(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_leaves_plain_words_alone() {
        assert_eq!(quote(OsStr::new("--features")), "--features");
        assert_eq!(quote(OsStr::new("llvm-22")), "llvm-22");
        assert_eq!(quote(OsStr::new("/a/b.c")), "/a/b.c");
    }

    #[test]
    fn quote_wraps_spaces_quotes_and_empty() {
        assert_eq!(quote(OsStr::new("sudo -E")), "'sudo -E'");
        assert_eq!(quote(OsStr::new("")), "''");
        assert_eq!(
            quote(OsStr::new(r#"--cfg=bpf_target_arch="x86_64""#)),
            r#"'--cfg=bpf_target_arch="x86_64"'"#
        );
        assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
    }

    #[test]
    fn display_shows_env_but_not_path() {
        let mut cmd = command("cargo");
        cmd.env("LLVM_PREFIX", "/x/llvm prefix")
            .args(["install", "bpf-linker"]);
        assert_eq!(
            display(&cmd),
            "LLVM_PREFIX='/x/llvm prefix' cargo install bpf-linker"
        );
    }
}
