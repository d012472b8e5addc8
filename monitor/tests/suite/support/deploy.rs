//! Helpers of the deploy/ tests: the repository's files, scratch
//! directories removed by their guard, and the daemon's metric families.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use super::cmd::output;

/// The repository root (the workspace directory above `monitor/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("monitor/ has a parent")
        .to_path_buf()
}

/// `deploy/REL`.
pub fn deploy_file(rel: &str) -> PathBuf {
    repo_root().join("deploy").join(rel)
}

/// The text of `deploy/REL`.
pub fn read_deploy(rel: &str) -> String {
    let path = deploy_file(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// A scratch directory under the system's temp dir, removed on drop (also
/// when the test panics).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "hm-{tag}-{}-{}",
            std::process::id(),
            super::unique()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("creating {}: {err}", path.display()));
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text)
            .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `handshake-monitor check-config FILE`: exit success and stdout, or a
/// panic with stderr.
pub fn check_config(file: &Path) -> String {
    let out = Command::new(super::daemon::BINARY)
        .arg("check-config")
        .arg(file)
        .output()
        .expect("running handshake-monitor check-config");
    assert!(
        out.status.success(),
        "`handshake-monitor check-config {}` refused it ({}):\n{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `program args...` (bounded, see [`output`]); returns whether it
/// succeeded and its stdout and stderr together, for messages.
pub fn run_tool(program: &str, args: &[&str]) -> (bool, String) {
    let out = output(program, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The metric names a scrape holds samples of: every family, with the
/// `_bucket`, `_sum` and `_count` series of histograms.
pub fn sample_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The metric families a scrape declares (`# TYPE NAME KIND`), with the
/// series names of histograms and summaries added.
pub fn declared_names(scrape: &str) -> BTreeSet<String> {
    let mut names = sample_names(scrape);
    for line in scrape.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            names.insert(name.to_string());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// The names of the recording rules (`record: NAME`) in a rules file.
pub fn recording_rules(rules_yaml: &str) -> BTreeSet<String> {
    rules_yaml
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("- record:")
                .or(l.trim().strip_prefix("record:"))
        })
        .map(|name| name.trim().trim_matches(['"', '\'']).to_string())
        .collect()
}
