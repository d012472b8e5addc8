//! End to end: the ways `handshake-monitor run` refuses to start. Each one
//! must exit non-zero with a message naming the problem, and leave the
//! interface it was pointed at exactly as it found it.
//!
//! Needs root (namespaces, BPF); run with `cargo xtask test -- errors::`.

use crate::support;

use std::{net::TcpListener, path::Path};

use support::{
    attach::{self, assert_nothing_attached},
    daemon::{BINARY, Daemon, run_to_exit},
    lab::NetnsLab,
    netns::in_netns,
    privilege, require_root,
};

const ERROR_PREFIX: &str = "handshake-monitor: error: ";

/// The `handshake-monitor: error: ...` line of a failed run.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|line| line.starts_with(ERROR_PREFIX))
        .unwrap_or_else(|| panic!("no `{ERROR_PREFIX}` line in stderr:\n{stderr}"))
}

/// Runs the real binary as root in the lab's hub namespace.
fn run(lab: &NetnsLab, args: &[&str]) -> (std::process::ExitStatus, String) {
    run_to_exit(&lab.hub, &[], Path::new(BINARY), args)
}

#[test]
fn unknown_interface() {
    require_root();
    let lab = NetnsLab::pair();
    let iface = lab.link().hub_if.as_str();
    // The good interface comes first: it must not be attached before the
    // bad one is found.
    let args = [
        "run",
        "--iface",
        iface,
        "--iface",
        "hmt-nope0",
        "--metrics-addr",
        "127.0.0.1:19881",
    ];
    let (status, stderr) = run(&lab, &args);
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains("interface \"hmt-nope0\" does not exist (present: "),
        "{line}"
    );
    // The list is the namespace's own interfaces, not the host's.
    assert!(line.contains(iface) && line.contains("lo"), "{line}");
    assert_nothing_attached(&lab.hub, iface);
}

#[test]
fn metrics_address_in_use() {
    require_root();
    let lab = NetnsLab::pair();
    let iface = lab.link().hub_if.as_str();
    let addr = "127.0.0.1:19882";
    let squatter = in_netns(&lab.hub, || TcpListener::bind(addr)).expect("binding the squatter");
    let (status, stderr) = run(&lab, &["run", "--iface", iface, "--metrics-addr", addr]);
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains(&format!(
            "metrics address {addr} is already in use by another process"
        )),
        "{line}"
    );
    assert_nothing_attached(&lab.hub, iface);
    drop(squatter);
}

#[test]
fn unparsable_metrics_address() {
    require_root();
    let lab = NetnsLab::pair();
    let iface = lab.link().hub_if.as_str();
    let (status, stderr) = run(
        &lab,
        &["run", "--iface", iface, "--metrics-addr", "nonsense"],
    );
    // clap's usage-error code, distinct from a failed start.
    assert_eq!(status.code(), Some(2), "{status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("--metrics-addr") && stderr.contains("nonsense"),
        "{stderr}"
    );
    assert_nothing_attached(&lab.hub, iface);
}

#[test]
fn invalid_log_level() {
    require_root();
    let lab = NetnsLab::pair();
    let iface = lab.link().hub_if.as_str();
    let (status, stderr) = run(&lab, &["run", "--iface", iface, "--log-level", "bogus=["]);
    assert_eq!(status.code(), Some(2), "{status}; stderr:\n{stderr}");
    assert!(stderr.contains("--log-level"), "{stderr}");
    assert_nothing_attached(&lab.hub, iface);
}

#[test]
fn xdp_hook_already_taken() {
    require_root();
    let lab = NetnsLab::pair();
    let iface = lab.link().hub_if.as_str();
    let mut first = Daemon::start(&lab.hub, &[iface], 19884);
    let xdp_before = attach::xdp_program(&lab.hub, iface).expect("the first daemon's XDP");
    let tcx_before = attach::tcx_egress_programs(&lab.hub, iface);

    let (status, stderr) = run(
        &lab,
        &["run", "--iface", iface, "--metrics-addr", "127.0.0.1:19885"],
    );
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains(&format!(
            "interface {iface} already has an XDP program attached by another tool"
        )),
        "{line}"
    );

    // The loser neither displaced nor joined the first daemon's programs.
    assert_eq!(
        attach::xdp_program(&lab.hub, iface).as_ref(),
        Some(&xdp_before)
    );
    assert_eq!(attach::tcx_egress_programs(&lab.hub, iface), tcx_before);
    assert_eq!(
        first.healthz().expect("the first daemon still serves"),
        "ok\n"
    );
    let status = first.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr:\n{}",
        first.stderr()
    );
    assert_nothing_attached(&lab.hub, iface);
}

/// A start that fails on its second interface leaves the first one, which
/// it had already attached, bare again.
#[test]
fn failure_on_a_later_interface_undoes_the_earlier_ones() {
    require_root();
    let lab = NetnsLab::with_peers(2);
    let (free, taken) = (lab.links[0].hub_if.as_str(), lab.links[1].hub_if.as_str());
    let mut holder = Daemon::start(&lab.hub, &[taken], 19888);

    let args = [
        "run",
        "--iface",
        free,
        "--iface",
        taken,
        "--metrics-addr",
        "127.0.0.1:19889",
    ];
    let (status, stderr) = run(&lab, &args);
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    assert!(error_line(&stderr).contains(&format!("interface {taken} already has an XDP program")));
    assert!(
        stderr.contains(&format!("attached interface={free}")),
        "{stderr}"
    );
    assert_nothing_attached(&lab.hub, free);

    let status = holder.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr:\n{}",
        holder.stderr()
    );
    assert_nothing_attached(&lab.hub, taken);
}

/// Runs the daemon as nobody holding `caps`; returns its error line.
fn refused_as_nobody_with(caps: &[&str], port: u16) -> String {
    require_root();
    let lab = NetnsLab::pair();
    let iface = lab.link().hub_if.as_str();
    let binary = privilege::NobodyBinary::new();
    let metrics = format!("127.0.0.1:{port}");
    let args = ["run", "--iface", iface, "--metrics-addr", &metrics];
    let wrapper = privilege::as_nobody_with(caps);
    let (status, stderr) = run_to_exit(&lab.hub, &wrapper, binary.path(), &args);
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    assert_nothing_attached(&lab.hub, iface);
    error_line(&stderr).to_string()
}

#[test]
fn missing_privilege() {
    let line = refused_as_nobody_with(&[], 19886);
    assert!(
        line.contains("missing capabilities CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON: "),
        "{line}"
    );
}

#[test]
fn missing_some_capabilities() {
    let line = refused_as_nobody_with(&["net_admin"], 19887);
    // Only what is actually missing is named before the explanation.
    assert!(
        line.contains("missing capabilities CAP_BPF, CAP_PERFMON: "),
        "{line}"
    );
}
