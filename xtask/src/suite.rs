//! The integration test binary (`monitor/tests/suite`): built without
//! running it, found through cargo's JSON messages, and run the way the
//! test step runs it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{env, proc};

/// The integration test target of the monitor crate.
pub const NAME: &str = "suite";

/// Builds the suite (debug, as `cargo test` does) and returns its
/// executable.
pub fn build() -> Result<PathBuf> {
    let mut cmd = proc::cargo(["test", "-p", "monitor", "--no-run", "--message-format=json"]);
    cmd.args(["--test", NAME]);
    eprintln!("$ {}", proc::display(&cmd));
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("could not start cargo")?;
    if !out.status.success() {
        bail!("building the test binary failed ({})", out.status);
    }
    parse_executables(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .find_map(|(name, path)| (name == NAME).then_some(path))
        .with_context(|| format!("cargo built no `{NAME}` test executable"))
}

/// A command running the suite executable as root: directly when we are
/// root, else through `sudo -E` (its tests create namespaces and load BPF
/// programs), from the monitor crate's directory as cargo would.
pub fn command(executable: &PathBuf) -> Command {
    let mut cmd = if env::is_root() {
        proc::command(&executable.to_string_lossy())
    } else {
        let mut sudo = proc::command("sudo");
        sudo.arg("-E").arg(executable);
        sudo
    };
    cmd.current_dir(env::workspace_root().join("monitor"));
    cmd
}

/// `(target name, executable)` of each test executable cargo reported.
pub fn parse_executables(json_lines: &str) -> Vec<(String, PathBuf)> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_owned();
            let exe = m["executable"].as_str()?;
            Some((name, PathBuf::from(exe)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_from_cargo_json() {
        let json = r#"{"reason":"compiler-artifact","target":{"name":"monitor","kind":["lib"]},"profile":{"test":false},"executable":null}
{"reason":"compiler-artifact","target":{"name":"suite","kind":["test"]},"profile":{"test":true},"executable":"/t/debug/deps/suite-abc"}
{"reason":"build-finished","success":true}
not json"#;
        assert_eq!(
            parse_executables(json),
            [("suite".to_owned(), PathBuf::from("/t/debug/deps/suite-abc"))]
        );
    }
}
