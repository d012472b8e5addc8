//! End to end: `--persist`. The links and maps are pinned, so the programs
//! stay attached and enforcing while no daemon runs, the next daemon takes
//! the same links over with its own programs and carries on counting, and
//! `handshake-monitor detach` removes everything. Pinned state left by an
//! incompatible version is refused with the way out.
//!
//! Needs root (namespaces, BPF, bpffs); run with
//! `cargo xtask test -- persist::`.

use crate::support;

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use monitor_common::classify::tcp_flags::{RST, SYN};
use support::{
    attach,
    bpffs::Bpffs,
    cmd,
    daemon::{BINARY, run_to_exit},
    handshakes::{Monitor, SERVER, Series},
    lab::NetnsLab,
    rawtcp::RawClient,
    require_root, traffic,
};

/// Nobody listens there: the stack answers a SYN that reaches it with a RST.
const CLOSED_PORT: u16 = 8181;

fn detach(pins: &Path, socket: &str) -> Output {
    Command::new(BINARY)
        .args(["detach", "--pin-dir"])
        .arg(pins)
        .args(["--control-socket", socket])
        .output()
        .expect("running detach")
}

/// Whether the raw client's SYN reaches the stack (answered with a RST).
fn syn_answered(raw: &mut RawClient, port: u16) -> bool {
    raw.port = port;
    raw.send(SYN, 0x7000_0000 + u32::from(port), 0);
    raw.recv(Duration::from_millis(700))
        .is_some_and(|segment| segment.flags & RST != 0)
}

#[test]
fn pinned_programs_outlive_the_daemon_and_the_next_one_takes_over() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let bpffs = Bpffs::mount();
    let pins = bpffs.0.join("hm");
    let pin_arg = pins.to_str().expect("utf-8").to_string();
    let args = [
        "--persist",
        "--pin-dir",
        &pin_arg,
        "--mitigation",
        "enforce",
    ];
    let mut first = Monitor::start(&link.peer_ns, &link.peer_if, 19956, &args);

    let addr = SocketAddr::from((link.peer_addr, 8080));
    let server = traffic::Server::start(&link.peer_ns, addr, 3);
    traffic::exchange_many(&lab.hub, addr, 3);
    server.join();
    let settled = first.settled_at(Series::Handshakes(SERVER, "completed"), 3.0);
    assert_eq!(settled.value(Series::Handshakes(SERVER, "completed")), 3.0);
    let mut raw = RawClient::new(&lab.hub, link, CLOSED_PORT);
    let blocked = format!("{}/32", raw.addr);
    let out = first.daemon.block(&["add", &blocked]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !syn_answered(&mut raw, 30_001),
        "the blocked SYN reached the stack"
    );
    let xdp_before = attach::xdp_program(&link.peer_ns, &link.peer_if).expect("XDP attached");

    // The daemon stops; its programs do not.
    assert!(first.daemon.terminate().success());
    assert!(
        first
            .daemon
            .stderr()
            .contains("programs left attached through their pinned links")
    );
    assert!(attach::xdp_program(&link.peer_ns, &link.peer_if).is_some());
    assert!(!attach::tcx_egress_programs(&link.peer_ns, &link.peer_if).is_empty());
    assert!(
        !syn_answered(&mut raw, 30_002),
        "no daemon, yet the block must hold"
    );

    // The next daemon takes the links over with its own programs and
    // carries on from the pinned counters and blocks.
    let second = Monitor::start(&link.peer_ns, &link.peer_if, 19957, &args);
    let xdp_after = attach::xdp_program(&link.peer_ns, &link.peer_if).expect("XDP attached");
    assert_ne!(xdp_after, xdp_before, "a new program on the same link");
    // Exactly, at once: the pinned counters, not new traffic.
    assert_eq!(
        second
            .scrape()
            .value(Series::Handshakes(SERVER, "completed")),
        3.0
    );
    let listed = second.daemon.block(&["list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&blocked));
    assert!(!syn_answered(&mut raw, 30_003));

    // Refused while a daemon runs.
    let socket = second
        .daemon
        .control_socket
        .clone()
        .expect("control socket");
    let refused = detach(&pins, &socket);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("a handshake-monitor daemon is running")
    );

    let mut second = second;
    assert!(second.daemon.terminate().success());
    let out = detach(&pins, &socket);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let removed = String::from_utf8_lossy(&out.stdout);
    assert!(
        removed.contains("HM_POLICY") && removed.contains("_xdp_native"),
        "{removed}"
    );
    attach::assert_nothing_attached(&link.peer_ns, &link.peer_if);
    assert!(!pins.exists());
    assert!(
        syn_answered(&mut raw, 30_004),
        "after detach the stack sees SYNs again"
    );
}

#[test]
fn pinned_state_of_an_incompatible_version_is_refused() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let bpffs = Bpffs::mount();
    let pins = bpffs.0.join("hm");
    std::fs::create_dir_all(&pins).expect("pin dir");
    let flows = pins.join("FLOWS");
    cmd::run(
        "bpftool",
        &[
            "map",
            "create",
            flows.to_str().expect("utf-8"),
            "type",
            "hash",
            "key",
            "4",
            "value",
            "4",
            "entries",
            "16",
            "name",
            "FLOWS",
        ],
    );
    let pin_arg = pins.to_str().expect("utf-8");
    let args = [
        "run",
        "--iface",
        &link.peer_if,
        "--metrics-addr",
        "127.0.0.1:19958",
        "--persist",
        "--pin-dir",
        pin_arg,
    ];
    let (status, stderr) = run_to_exit(&link.peer_ns, &[], Path::new(BINARY), &args);
    assert!(!status.success());
    assert!(
        stderr.contains("was left by an incompatible version")
            && stderr.contains("key 4 B, value 4 B, 16 entries")
            && stderr.contains(&format!("handshake-monitor detach --pin-dir {pin_arg}")),
        "{stderr}"
    );
    attach::assert_nothing_attached(&link.peer_ns, &link.peer_if);
}

#[test]
fn a_killed_daemon_leaves_the_documented_state_and_the_next_start_recovers() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    // Without --persist: SIGKILL closes the link fds, so nothing stays.
    let mut plain = Monitor::start(&link.peer_ns, &link.peer_if, 19959, &["--pin-dir", ""]);
    plain.daemon.stop(libc::SIGKILL);
    attach::assert_nothing_attached(&link.peer_ns, &link.peer_if);

    // With --persist: still attached and enforcing; the next start takes
    // over (and so does `detach` after it).
    let bpffs = Bpffs::mount();
    let pins = bpffs.0.join("hm");
    let pin_arg = pins.to_str().expect("utf-8").to_string();
    let args = [
        "--persist",
        "--pin-dir",
        &pin_arg,
        "--mitigation",
        "enforce",
    ];
    let mut first = Monitor::start(&link.peer_ns, &link.peer_if, 19960, &args);
    let mut raw = RawClient::new(&lab.hub, link, CLOSED_PORT);
    let out = first.daemon.block(&["add", &raw.addr.to_string()]);
    assert!(out.status.success());
    first.daemon.stop(libc::SIGKILL);
    assert!(attach::xdp_program(&link.peer_ns, &link.peer_if).is_some());
    assert!(
        !syn_answered(&mut raw, 30_010),
        "killed, yet the block must hold"
    );
    let mut second = Monitor::start(&link.peer_ns, &link.peer_if, 19934, &args);
    let socket = second.daemon.control_socket.clone().expect("socket");
    let listed = second.daemon.block(&["list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&raw.addr.to_string()));
    assert!(second.daemon.terminate().success());
    assert!(detach(&pins, &socket).status.success());
    attach::assert_nothing_attached(&link.peer_ns, &link.peer_if);
}
