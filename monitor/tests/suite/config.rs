//! End to end: the config file, through the real binary. `check-config`
//! accepts a good file and prints the settings, names the key of a bad one;
//! `run --config` applies the file, with command-line flags winning.
//!
//! The `run` test needs root (namespaces, BPF).

use crate::support;

use std::{path::PathBuf, process::Command};

use support::{handshakes::Monitor, lab::NetnsLab, prom, require_root, unique};

const BINARY: &str = env!("CARGO_BIN_EXE_handshake-monitor");

struct TempConfig(PathBuf);

impl TempConfig {
    fn new(text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("hm-cfg-{}-{}.toml", std::process::id(), unique()));
        std::fs::write(&path, text).expect("write config");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn check_config_prints_the_effective_settings() {
    let cfg = TempConfig::new("[flows]\ntable_size = 4096\n\n[ports]\nnamed = [443]\n");
    let out = Command::new(BINARY)
        .args(["check-config", cfg.path()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("table_size = 4096"), "{stdout}");
    assert!(stdout.contains("named = [443]"), "{stdout}");
    // Defaults of keys the file leaves out.
    assert!(
        stdout.contains("handshake_timeout_seconds = 63"),
        "{stdout}"
    );
}

#[test]
fn check_config_names_the_bad_key() {
    for (text, needle) in [
        (
            "[flows]\ntable_size = 10\n",
            "flows.table_size = 10: must be between 1024 and 16777216",
        ),
        (
            "[flows]\ntabel_size = 4096\n",
            "line 2: unknown field `tabel_size`",
        ),
    ] {
        let cfg = TempConfig::new(text);
        let out = Command::new(BINARY)
            .args(["check-config", cfg.path()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
}

#[test]
fn run_applies_the_file_and_flags_win() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let cfg = TempConfig::new("[flows]\ntable_size = 4096\n\n[ports]\nnamed = [8443]\ntop = 0\n");
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19971,
        &["--config", cfg.path(), "--port", "9443"],
    );
    let text = monitor.scrape().text;
    assert_eq!(
        prom::value(&text, "handshake_flow_table_capacity", &[]),
        Some(4096.0),
        "{text}"
    );
    // --port on the command line replaced the file's list.
    assert!(text.contains("port=\"9443\""), "{text}");
    assert!(!text.contains("port=\"8443\""), "{text}");
}

#[test]
fn run_refuses_a_bad_file_before_attaching() {
    let cfg = TempConfig::new("[monitor]\nmetrics_addr = \"nowhere\"\n");
    let out = Command::new(BINARY)
        .args(["run", "--config", cfg.path()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("monitor.metrics_addr = nowhere"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_example_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config.example.toml");
    let out = Command::new(BINARY)
        .args(["check-config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("named = [443]"), "{stdout}");
}
