//! End to end: `handshake-monitor status` and `top` against a running
//! daemon (its control socket), with exact counts after real traffic.
//!
//! Needs root (namespaces, BPF); run with
//! `cargo xtask test -- status::`.

use crate::support;

use std::{net::SocketAddr, process::Command, time::Duration};

use support::{
    daemon::BINARY,
    handshakes::{Monitor, SERVER, Series},
    lab::NetnsLab,
    prom, require_root, traffic, wait_until,
};

fn run(args: &[&str], socket: &str) -> (bool, String, String) {
    let out = Command::new(BINARY)
        .args(args)
        .args(["--control-socket", socket])
        .output()
        .expect("running handshake-monitor");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn status_and_top_summarise_the_running_daemon() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19946,
        &["--port", "8080", "--mitigation", "enforce"],
    );
    let socket = monitor.daemon.control_socket.clone().expect("socket");
    let addr = SocketAddr::from((link.peer_addr, 8080));
    let server = traffic::Server::start(&link.peer_ns, addr, 3);
    traffic::exchange_many(&lab.hub, addr, 3);
    server.join();
    let settled = monitor.settled_at(Series::Handshakes(SERVER, "completed"), 3.0);
    assert_eq!(settled.value(Series::Handshakes(SERVER, "completed")), 3.0);
    let out = monitor.daemon.block(&["add", "198.19.30.0/24"]);
    assert!(out.status.success());

    let (ok, text, stderr) = run(&["status"], &socket);
    assert!(ok, "{stderr}");
    let iface = &link.peer_if;
    for line in [
        "mitigation enforce",
        "blocks: 1 manual, 0 auto",
        &format!("{iface}: xdp native, tc tcx; SYNs 3, completed 3, half-open 0, dropped 0"),
        "  port 8080: SYNs 3, completed 3",
        "no alert firing",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }

    let (ok, json, _) = run(&["status", "--json"], &socket);
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(&json).expect("JSON status");
    assert_eq!(status["interfaces"][0]["completed"], 3);
    assert_eq!(status["mitigation_mode"], "enforce");

    // Two refreshes a second apart: the second shows rates.
    let (ok, text, _) = run(&["top", "--iterations", "2"], &socket);
    assert!(ok);
    assert_eq!(text.matches("handshake-monitor ").count(), 2, "{text}");
    assert!(
        text.contains(&format!(
            "{iface}: xdp native, tc tcx; SYNs 0/s, completed 0/s"
        )),
        "{text}"
    );
}

/// The flow sweep locks the flow tracker, then the mitigation, once a
/// second; a status request locking them the other way round deadlocked
/// the daemon (every request, /metrics and SIGTERM) within a few tries.
#[test]
fn status_requests_during_flow_sweeps_never_deadlock_the_daemon() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let mut monitor = Monitor::start(&link.peer_ns, &link.peer_if, 19977, &[]);
    let socket = monitor.daemon.control_socket.clone().expect("socket");
    // Over three sweeps.
    for i in 0..15 {
        let (ok, _, stderr) = run(&["status", "--json"], &socket);
        assert!(ok, "status {i}: {stderr}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(monitor.daemon.terminate().success());
}

#[test]
fn status_without_a_daemon_says_so() {
    let socket =
        std::env::temp_dir().join(format!("hmt-{}-nostatus/control.sock", std::process::id()));
    let (ok, _, stderr) = run(&["status"], socket.to_str().expect("utf-8"));
    assert!(!ok);
    assert!(
        stderr.contains("no handshake-monitor daemon is running"),
        "{stderr}"
    );
}

/// A `/proc/PID/status` capability line as a mask.
fn caps(pid: u32, line: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .expect("capability line")
        .trim();
    u64::from_str_radix(hex, 16).expect("hex mask")
}

#[test]
fn capabilities_are_dropped_once_attached_and_nothing_breaks() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let mut monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19947,
        &["--mitigation", "enforce"],
    );
    let pid = monitor.daemon.pid();
    assert!(wait_until(Duration::from_secs(5), || {
        monitor
            .daemon
            .stderr()
            .contains("dropped the capabilities no longer needed")
    }));
    for set in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:", "CapInh:"] {
        assert_eq!(caps(pid, set), 0, "{set} of the running daemon");
    }
    // Maps are still read (scrape), written (block add) and the programs
    // detach on exit, all without a capability.
    let out = monitor.daemon.block(&["add", "198.19.40.0/24"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = monitor.scrape().text;
    assert_eq!(
        prom::value(
            &text,
            "handshake_blocklist_entries",
            &[("origin", "manual")]
        ),
        Some(1.0)
    );
    assert!(monitor.daemon.terminate().success());
    support::attach::assert_nothing_attached(&link.peer_ns, &link.peer_if);
}
