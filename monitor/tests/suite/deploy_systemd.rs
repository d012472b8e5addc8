//! deploy/systemd/handshake-monitor.service and deploy/config.toml, checked
//! with the real tools: `systemd-analyze verify` and `systemd-analyze
//! security` on the unit, the real daemon run with exactly the unit's
//! capabilities, and `handshake-monitor check-config` on the shipped
//! config.
//!
//! The capability test needs root (namespaces, BPF); run with
//! `cargo xtask test -- deploy_systemd::`.

use crate::support;

use std::path::Path;

use support::{
    daemon::{BINARY, Daemon, run_to_exit},
    deploy::{TempDir, check_config, deploy_file, read_deploy, run_tool},
    lab::NetnsLab,
    prom, require_root,
};

const UNIT: &str = "systemd/handshake-monitor.service";
const UNIT_NAME: &str = "handshake-monitor.service";
/// The most `systemd-analyze security` may rate the unit (0 is the best,
/// 10 the worst; "OK" ends at 4.9).
const MAX_EXPOSURE: f64 = 2.5;
const INSTALLED_BINARY: &str = "/usr/bin/handshake-monitor";
const METRICS_PORT: u16 = 19966;

/// The unit as shipped.
fn unit() -> String {
    read_deploy(UNIT)
}

/// Every value of `key=` in the unit, in order (a key may repeat).
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The one value of `key=`.
fn value<'a>(unit: &'a str, key: &str) -> &'a str {
    match values(unit, key)[..] {
        [one] => one,
        ref other => panic!("{UNIT} should set {key}= once, has {other:?}"),
    }
}

/// The unit, with ExecStart= on the binary this build made (verify checks
/// that the executable exists), written to a scratch directory.
fn unit_for_this_build(dir: &TempDir) -> String {
    let text = unit();
    assert!(
        text.contains(INSTALLED_BINARY),
        "{UNIT} should run {INSTALLED_BINARY}"
    );
    let text = text.replace(INSTALLED_BINARY, BINARY);
    dir.write(UNIT_NAME, &text).display().to_string()
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = TempDir::new("unit");
    let path = unit_for_this_build(&dir);
    let (ok, text) = run_tool("systemd-analyze", &["verify", &path]);
    assert!(ok, "systemd-analyze verify {path} failed:\n{text}");
    // verify also warns (exit 0) about unknown keys and bad values: any
    // line naming the unit is a finding.
    let findings: Vec<&str> = text.lines().filter(|l| l.contains(UNIT_NAME)).collect();
    assert!(
        findings.is_empty(),
        "systemd-analyze verify has findings about the unit:\n{}",
        findings.join("\n")
    );
}

#[test]
fn the_units_security_exposure_is_at_most_2_5() {
    let dir = TempDir::new("unit");
    let path = unit_for_this_build(&dir);
    let (ok, text) = run_tool(
        "systemd-analyze",
        &["security", "--offline=true", "--no-pager", &path],
    );
    assert!(
        ok,
        "systemd-analyze security --offline=true failed:\n{text}"
    );
    let overall = text
        .lines()
        .find_map(|l| {
            l.split_once("Overall exposure level for ")?
                .1
                .split_once(": ")
        })
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"));
    eprintln!("systemd-analyze security: overall exposure {overall}");
    assert!(
        overall <= MAX_EXPOSURE,
        "the unit's exposure is {overall}, more than {MAX_EXPOSURE}; findings:\n{}",
        text.lines()
            .filter(|l| l.starts_with('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The number deploy/README.md reports is the one measured.
    let readme = read_deploy("README.md");
    assert!(
        readme.contains(&format!("exposure level {overall:.1}")),
        "deploy/README.md should report `exposure level {overall:.1}`"
    );
}

#[test]
fn the_unit_declares_what_the_daemon_needs() {
    let unit = unit();
    for (key, want) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        (
            "ExecStart",
            "/usr/bin/handshake-monitor run --config /etc/handshake-monitor/config.toml",
        ),
        ("CapabilityBoundingSet", "CAP_BPF CAP_NET_ADMIN CAP_PERFMON"),
        ("AmbientCapabilities", "CAP_BPF CAP_NET_ADMIN CAP_PERFMON"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectKernelTunables", "yes"),
        // The control socket's directory (docs/config.md's default).
        ("RuntimeDirectory", "handshake-monitor"),
        ("RuntimeDirectoryMode", "0700"),
        ("ReadWritePaths", "-/sys/fs/bpf/handshake-monitor"),
    ] {
        assert_eq!(value(&unit, key), want, "{UNIT}: {key}=");
    }
    let watchdog: u64 = value(&unit, "WatchdogSec")
        .parse()
        .expect("WatchdogSec= in whole seconds");
    assert!((5..=120).contains(&watchdog), "WatchdogSec={watchdog}");
    for key in ["User", "DynamicUser", "PrivateNetwork"] {
        assert!(
            values(&unit, key).is_empty(),
            "{UNIT} should not set {key}= (see its header)"
        );
    }
    assert!(
        !unit.contains("CAP_SYS_ADMIN\n") && !value(&unit, "CapabilityBoundingSet").contains("SYS"),
        "no CAP_SYS_* in the bounding set"
    );
    // The syscall allow list must keep bpf(2), which @system-service lacks.
    let filter = values(&unit, "SystemCallFilter").join(" ");
    assert!(
        filter.split_whitespace().any(|w| w == "bpf"),
        "SystemCallFilter= must allow bpf: {filter}"
    );
}

/// setpriv arguments giving root exactly the unit's capabilities, the way
/// systemd starts the service: bounding set, ambient set, no_new_privs,
/// and root's automatic capabilities off.
fn as_the_unit(caps: &[String]) -> Vec<String> {
    let plus: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
    let listed = |first: &str| {
        std::iter::once(first.to_string())
            .chain(plus.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        "setpriv".to_string(),
        format!("--bounding-set={}", listed("-all")),
        format!("--inh-caps={}", listed("-all")),
        format!("--ambient-caps={}", plus.join(",")),
        "--securebits=+noroot,+noroot_locked".to_string(),
        "--nnp".to_string(),
    ]
}

/// `CAP_NET_ADMIN` -> `net_admin`, as setpriv names them.
fn unit_capabilities() -> Vec<String> {
    value(&unit(), "CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect()
}

#[test]
fn the_daemon_runs_with_the_units_capabilities_and_needs_each() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let caps = unit_capabilities();
    assert_eq!(caps, ["bpf", "net_admin", "perfmon"]);

    let daemon = Daemon::start_as(
        &link.peer_ns,
        &as_the_unit(&caps),
        Path::new(BINARY),
        &[&link.peer_if],
        METRICS_PORT,
    );
    let text = daemon.scrape();
    assert_eq!(
        prom::value(
            &text,
            "handshake_interface_info",
            &[
                ("interface", link.peer_if.as_str()),
                ("xdp_mode", "native"),
                ("tc_mode", "tcx")
            ]
        ),
        Some(1.0),
        "attached with the unit's capabilities:\n{text}"
    );
    drop(daemon);

    // One fewer and the daemon refuses to start, naming it: the set is
    // minimal.
    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let port = format!("127.0.0.1:{METRICS_PORT}");
        let (status, stderr) = run_to_exit(
            &link.peer_ns,
            &as_the_unit(&fewer),
            Path::new(BINARY),
            &["run", "--iface", &link.peer_if, "--metrics-addr", &port],
        );
        let name = format!("CAP_{}", missing.to_uppercase());
        assert!(
            !status.success() && stderr.contains("missing capabilities") && stderr.contains(&name),
            "without {name} the daemon should refuse to start ({status}):\n{stderr}"
        );
    }
}

/// The effective settings of a config file, as check-config prints them.
fn effective(dir: &TempDir, name: &str, text: &str) -> String {
    check_config(&dir.write(name, text))
}

#[test]
fn the_shipped_config_is_valid_and_changes_nothing() {
    let dir = TempDir::new("cfg");
    let defaults = effective(&dir, "empty.toml", "");
    let shipped = check_config(&deploy_file("config.toml"));
    assert_eq!(
        shipped, defaults,
        "deploy/config.toml as shipped should leave every setting at its default"
    );
}

#[test]
fn every_commented_default_in_the_shipped_config_is_the_real_default() {
    let dir = TempDir::new("cfg");
    let defaults = effective(&dir, "empty.toml", "");
    let shipped = read_deploy("config.toml");
    // `# key = value` lines are defaults; `# e.g. key = value` examples.
    let is_default = |l: &str| {
        l.strip_prefix("# ").is_some_and(|rest| {
            rest.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
        })
    };
    let uncommented: String = shipped
        .lines()
        .map(|l| if is_default(l) { &l[2..] } else { l })
        .map(|l| format!("{l}\n"))
        .collect();
    let all_set = effective(&dir, "uncommented.toml", &uncommented);
    assert_eq!(
        all_set, defaults,
        "uncommenting deploy/config.toml's defaults changed a setting:\n{uncommented}"
    );

    // And every key check-config knows is in the file, as a default or an
    // example.
    let keys_shipped: Vec<String> = shipped
        .lines()
        .filter_map(|l| l.strip_prefix("# e.g. ").or(l.strip_prefix("# ")))
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.to_string()))
        .collect();
    let missing: Vec<&str> = defaults
        .lines()
        .filter_map(|l| match l.strip_prefix("# ") {
            // `# interfaces: not set, ...`: a key without a default.
            Some(unset) => unset.split_once(": not set").map(|(k, _)| k),
            None => l.split_once(" = ").map(|(k, _)| k),
        })
        .filter(|k| !keys_shipped.iter().any(|s| s == k))
        .collect();
    assert!(
        missing.is_empty(),
        "keys check-config prints that deploy/config.toml does not list: {missing:?}\n{defaults}"
    );
}
