use clap::{CommandFactory as _, FromArgMatches as _};

use super::*;
use crate::cli::{Cli, Command};

/// A config file in the temp dir, removed on drop.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write(text: &str) -> TempFile {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("hm-config-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write temp config");
    TempFile(path)
}

fn parse(argv: &[&str]) -> (RunArgs, clap::ArgMatches) {
    let matches = Cli::command()
        .try_get_matches_from(argv)
        .expect("argv parses");
    match Cli::from_arg_matches(&matches).expect("args").command {
        Command::Run(mut args) => {
            args.absorb_flags();
            let sub = matches.subcommand_matches("run").expect("run").clone();
            (*args, sub)
        }
        _ => panic!("expected run"),
    }
}

const FULL: &str = r#"
[monitor]
interfaces = ["eth0", "eth1"]
metrics_addr = "127.0.0.1:9900"
log_level = "debug"
events = "/var/log/hm.jsonl"

[flows]
table_size = 4096
handshake_timeout_seconds = 5.5
inserts_per_sec_per_cpu = 1000

[ports]
named = [443, 8443]
top = 3
top_interval_seconds = 30

[tls]
hellos_per_sec_per_cpu = 50

[records]
per_sec_per_cpu = 70

[mitigation]
mode = "enforce"
source_syn_rate = 50
source_syn_burst = 60
prefix_syn_rate = 500
prefix_syn_burst = 700
protect_completed_seconds = 120
allowlist = ["198.18.0.0/24", "2001:2::/48"]
auto_block = false
auto_block_ttl_seconds = 30
auto_block_min_refused = 10
auto_block_max_entries = 20
blocklist_capacity = 100
control_socket = "/run/hm-test.sock"
"#;

#[test]
fn every_key_applies() {
    let f = write(FULL);
    let cfg = load(&f.0).expect("valid config");
    let mut args = RunArgs::defaults();
    cfg.apply(&mut args, None);
    assert_eq!(args.ifaces, ["eth0", "eth1"]);
    assert_eq!(args.metrics_addr.to_string(), "127.0.0.1:9900");
    assert_eq!(args.log_level, "debug");
    assert_eq!(args.events.as_deref(), Some("/var/log/hm.jsonl"));
    assert_eq!(args.flow_table_size, 4096);
    assert_eq!(args.handshake_timeout, Duration::from_millis(5500));
    assert_eq!(args.flow_inserts_per_sec, 1000);
    assert_eq!(args.ports, [443, 8443]);
    assert_eq!(
        (args.top_ports, args.top_ports_interval),
        (3, Duration::from_secs(30))
    );
    assert_eq!(args.tls_hellos_per_sec, 50);
    assert_eq!(args.records_per_sec, 70);
    let m = &args.mitigation;
    assert_eq!(m.mode, monitor_common::mitigation::Mode::Enforce);
    assert_eq!(
        (
            m.source_syn_rate,
            m.source_syn_burst,
            m.prefix_syn_rate,
            m.prefix_syn_burst
        ),
        (50, 60, 500, 700)
    );
    assert_eq!(m.protect_completed_for, Duration::from_secs(120));
    let allow: Vec<String> = m.allowlist.iter().map(ToString::to_string).collect();
    assert_eq!(allow, ["198.18.0.0/24", "2001:2::/48"]);
    assert!(!m.auto_block);
    assert_eq!(m.auto_block_ttl, Duration::from_secs(30));
    assert_eq!(
        (
            m.auto_block_min_refused,
            m.auto_block_max_entries,
            m.blocklist_capacity
        ),
        (10, 20, 100)
    );
    assert_eq!(m.control_socket, Path::new("/run/hm-test.sock"));
}

#[test]
fn mitigation_flags_win_over_the_file() {
    let f = write(FULL);
    let cfg = load(&f.0).unwrap();
    let (mut args, matches) = parse(&[
        "hm",
        "run",
        "--mitigation",
        "off",
        "--pin-dir",
        "/sys/fs/bpf/x",
    ]);
    cfg.apply(&mut args, Some(&matches));
    assert_eq!(args.mitigation.mode, monitor_common::mitigation::Mode::Off);
    assert_eq!(args.pins.dir.as_deref(), Some(Path::new("/sys/fs/bpf/x")));
    assert!(args.pins.explicit);
    // Not on the command line: from the file.
    assert_eq!(
        args.mitigation.control_socket,
        Path::new("/run/hm-test.sock")
    );
}

#[test]
fn command_line_flags_win_over_the_file() {
    let f = write(FULL);
    let cfg = load(&f.0).unwrap();
    let (mut args, matches) = parse(&["hm", "run", "--flow-table-size", "2048", "--iface", "lo"]);
    cfg.apply(&mut args, Some(&matches));
    assert_eq!(args.flow_table_size, 2048);
    assert_eq!(args.ifaces, ["lo"]);
    // Not on the command line: from the file, not the clap default.
    assert_eq!(args.top_ports, 3);
}

#[test]
fn the_rendered_settings_read_back_the_same() {
    let f = write(FULL);
    let mut args = RunArgs::defaults();
    load(&f.0).unwrap().apply(&mut args, None);
    let again = write(&render(&args));
    let mut round = RunArgs::defaults();
    load(&again.0)
        .expect("rendered config is valid")
        .apply(&mut round, None);
    assert_eq!(render(&round), render(&args));
    // The defaults render and load as well.
    let defaults = write(&render(&RunArgs::defaults()));
    load(&defaults.0).expect("rendered defaults are valid");
}

fn error(text: &str) -> String {
    let f = write(text);
    load(&f.0).expect_err("invalid config").to_string()
}

#[test]
fn unknown_keys_are_named() {
    let e = error("[flows]\ntabel_size = 10\n");
    assert!(e.contains("tabel_size"), "{e}");
    let e = error("[mitigaton]\nmode = \"enforce\"\n");
    assert!(e.contains("mitigaton"), "{e}");
    let e = error("[mitigation]\nallow_list = []\n");
    assert!(e.contains("allow_list"), "{e}");
}

#[test]
fn out_of_range_values_are_named() {
    for (text, key) in [
        ("[flows]\ntable_size = 10\n", "flows.table_size = 10"),
        (
            "[flows]\nhandshake_timeout_seconds = 0\n",
            "flows.handshake_timeout_seconds = 0",
        ),
        (
            "[monitor]\nmetrics_addr = \"localhost\"\n",
            "monitor.metrics_addr = localhost",
        ),
        ("[monitor]\ninterfaces = []\n", "monitor.interfaces = 0"),
        ("[ports]\ntop = 30\n", "ports.top = 30"),
        (
            "[tls]\nhellos_per_sec_per_cpu = 0\n",
            "tls.hellos_per_sec_per_cpu = 0",
        ),
        (
            "[records]\nper_sec_per_cpu = 0\n",
            "records.per_sec_per_cpu = 0",
        ),
        (
            "[mitigation]\nmode = \"block\"\n",
            "mitigation.mode = block",
        ),
        // A zero rate would refuse every SYN: a config that blocks everything.
        (
            "[mitigation]\nsource_syn_rate = 0\n",
            "mitigation.source_syn_rate = 0",
        ),
        (
            "[mitigation]\nprefix_syn_burst = 0\n",
            "mitigation.prefix_syn_burst = 0",
        ),
        (
            "[mitigation]\nallowlist = [\"198.18.0.5/24\"]\n",
            "mitigation.allowlist = \"198.18.0.5/24\": 198.18.0.5/24 has host bits set",
        ),
        (
            "[mitigation]\nallowlist = [\"not-an-ip\"]\n",
            "mitigation.allowlist = \"not-an-ip\"",
        ),
        (
            "[mitigation]\nblocklist_capacity = 10\nauto_block_max_entries = 11\n",
            "mitigation.auto_block_max_entries = 11",
        ),
        (
            "[mitigation]\nauto_block_ttl_seconds = 0\n",
            "mitigation.auto_block_ttl_seconds = 0",
        ),
        (
            "[monitor]\npin_dir = \"relative\"\n",
            "monitor.pin_dir = relative",
        ),
    ] {
        let e = error(text);
        assert!(e.contains(key), "{text}: {e}");
    }
}

#[test]
fn wrong_types_and_syntax_are_reported_with_their_place() {
    let e = error("[flows]\ntable_size = \"big\"\n");
    assert!(e.contains("table_size") || e.contains("line 2"), "{e}");
    let e = error("[flows\n");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn a_missing_file_is_named() {
    let e = load(Path::new("/nonexistent/hm.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/hm.toml"), "{e}");
}

#[test]
fn a_world_writable_config_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = write("[monitor]\nlog_level = \"info\"\n");
    std::fs::set_permissions(&f.0, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = load(&f.0).unwrap_err().to_string();
    assert!(
        e.contains("is writable by every user (mode 666)") && e.contains("chmod o-w"),
        "{e}"
    );
    std::fs::set_permissions(&f.0, std::fs::Permissions::from_mode(0o640)).unwrap();
    load(&f.0).expect("owner-writable is fine");
}
