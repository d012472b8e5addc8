//! End to end: operators' control of the blocklist of a running daemon
//! (`handshake-monitor block add|remove|list` over the control socket),
//! its bad inputs, and blocks that outlive a restart through the pinned
//! policy table and expire on their own.
//!
//! Needs root (namespaces, BPF, bpffs); run with
//! `cargo xtask test -- blocklist::`.

use crate::support;

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use monitor_common::classify::tcp_flags::SYN;
use support::{
    attach::assert_nothing_attached,
    bpffs::Bpffs,
    daemon::{BINARY, run_to_exit, text},
    handshakes::Monitor,
    lab::NetnsLab,
    netns::in_netns,
    prom,
    rawtcp::RawClient,
    require_root, wait_until,
};

fn refused(monitor: &Monitor, args: &[&str], why: &str) {
    let (ok, _, stderr) = text(&monitor.daemon.block(args));
    assert!(!ok, "block {args:?} succeeded");
    assert!(stderr.contains(why), "block {args:?}: {stderr}");
}

fn config_file(body: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "hmt-{}-{}-blocklist.toml",
        std::process::id(),
        support::unique()
    ));
    std::fs::write(&path, body).expect("writing the config");
    path
}

#[test]
fn block_commands_check_everything_and_apply_only_what_passes() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let [a, b, c, _] = link.hub_addr.octets();
    let config = config_file(&format!(
        "[mitigation]\nmode = \"enforce\"\nblocklist_capacity = 2\n\
         allowlist = [\"{a}.{b}.{c}.0/28\"]\n"
    ));
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19941,
        &["--config", config.to_str().expect("utf-8")],
    );
    let _ = std::fs::remove_file(&config);

    refused(&monitor, &["add", "nope"], "is not an IP address or prefix");
    refused(
        &monitor,
        &["add", "198.18.0.5/24"],
        "has host bits set; the prefix is 198.18.0.0/24",
    );
    refused(&monitor, &["add", "0.0.0.0/0"], "covers every address");
    let allowed_host = format!("{a}.{b}.{c}.7");
    refused(
        &monitor,
        &["add", &allowed_host],
        &format!("overlaps allowlisted {a}.{b}.{c}.0/28"),
    );
    refused(
        &monitor,
        &["add", "198.19.1.0/24", "--ttl", "5x"],
        "unknown unit",
    );
    refused(
        &monitor,
        &["add", "198.19.1.0/24", "--ttl", "0s"],
        "more than zero",
    );

    // The raw client's address (host .100) is blocked: its SYNs die in XDP.
    let attacker = format!("{a}.{b}.{c}.100");
    let (ok, stdout, stderr) = text(&monitor.daemon.block(&["add", &attacker, "--ttl", "1h"]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, format!("blocked {attacker}/32 (expires: in 1h)\n"));
    let (ok, _, stderr) = text(&monitor.daemon.block(&["add", "2001:2:ffff::/48"]));
    assert!(ok, "{stderr}");
    refused(
        &monitor,
        &["add", "198.19.1.0/24"],
        "the blocklist is full (2 entries)",
    );
    refused(
        &monitor,
        &["remove", "198.19.9.9"],
        "198.19.9.9/32 is not in the blocklist",
    );

    let (_, listed, _) = text(&monitor.daemon.block(&["list"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines[1].starts_with(&format!("{attacker}/32")) && lines[1].contains("in 1h"));
    assert!(lines[2].starts_with("2001:2:ffff::/48") && lines[2].contains("never"));
    assert!(listed.contains("added by an operator"));

    let mut raw = RawClient::new(&lab.hub, link, 8080);
    for i in 0..5u32 {
        raw.port = 30_000 + i as u16;
        raw.send(SYN, 0x5000_0000 + i, 0);
    }
    let dropped = [
        ("interface", link.peer_if.as_str()),
        ("reason", "blocklist"),
    ];
    let all_dropped = wait_until(Duration::from_secs(3), || {
        prom::value(
            &monitor.scrape().text,
            "handshake_xdp_dropped_packets_total",
            &dropped,
        ) == Some(5.0)
    });
    assert!(all_dropped, "{}", monitor.scrape().text);
    // Everyone else still gets through: the hub's own address is not
    // blocked (a refused connection means the SYN reached the stack).
    let reached = in_netns(&lab.hub, || {
        TcpStream::connect_timeout(
            &SocketAddr::from((link.peer_addr, 8080)),
            Duration::from_secs(2),
        )
    });
    assert_eq!(
        reached.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );

    let (ok, stdout, _) = text(&monitor.daemon.block(&["remove", &attacker]));
    assert!(ok);
    assert_eq!(stdout, format!("unblocked {attacker}/32\n"));
    let s = monitor.scrape().text;
    let manual = prom::value(&s, "handshake_blocklist_entries", &[("origin", "manual")]);
    assert_eq!(manual, Some(1.0), "{s}");
    let removed = prom::value(
        &s,
        "handshake_blocklist_changes_total",
        &[("change", "removed")],
    );
    assert_eq!(removed, Some(1.0));
}

#[test]
fn a_control_request_without_a_daemon_says_so() {
    let socket = std::env::temp_dir().join(format!("hmt-{}-none/control.sock", std::process::id()));
    let out = Command::new(BINARY)
        .args(["block", "list", "--control-socket"])
        .arg(&socket)
        .output()
        .expect("running block list");
    let (ok, _, stderr) = text(&out);
    assert!(!ok);
    assert!(
        stderr.contains("no handshake-monitor daemon is running"),
        "{stderr}"
    );
}

#[test]
fn a_second_daemon_on_the_same_control_socket_attaches_nothing() {
    require_root();
    let lab = NetnsLab::with_peers(2);
    let first = Monitor::start(&lab.links[0].peer_ns, &lab.links[0].peer_if, 19942, &[]);
    let socket = first
        .daemon
        .control_socket
        .clone()
        .expect("a control socket");
    let second = &lab.links[1];
    let args = [
        "run",
        "--iface",
        &second.peer_if,
        "--metrics-addr",
        "127.0.0.1:19943",
        "--control-socket",
        &socket,
    ];
    let (status, stderr) = run_to_exit(&second.peer_ns, &[], Path::new(BINARY), &args);
    assert!(!status.success());
    assert!(
        stderr.contains("another handshake-monitor answers on control socket"),
        "{stderr}"
    );
    assert_nothing_attached(&second.peer_ns, &second.peer_if);
    // The first one still answers.
    let (ok, stdout, _) = text(&first.daemon.block(&["list"]));
    assert!(ok);
    assert_eq!(stdout, "no blocks in force\n");
}

#[test]
fn blocks_outlive_a_restart_and_expire_while_no_daemon_runs() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let bpffs = Bpffs::mount();
    let pins = bpffs.0.join("hm");
    let pin_arg = pins.to_str().expect("utf-8").to_string();
    let start = |port| Monitor::start(&link.peer_ns, &link.peer_if, port, &["--pin-dir", &pin_arg]);

    let mut monitor = start(19944);
    for (cidr, ttl) in [("198.19.10.0/24", "1h"), ("198.19.11.0/24", "2s")] {
        let (ok, _, stderr) = text(&monitor.daemon.block(&["add", cidr, "--ttl", ttl]));
        assert!(ok, "{stderr}");
    }
    assert!(monitor.daemon.terminate().success());
    assert_nothing_attached(&link.peer_ns, &link.peer_if);
    assert!(
        pins.join("HM_POLICY").exists(),
        "the policy table is pinned"
    );
    // The short block runs out while no daemon runs.
    std::thread::sleep(Duration::from_secs(3));

    let monitor = start(19945);
    assert!(
        monitor
            .daemon
            .stderr()
            .contains("kept the blocks of an earlier run")
    );
    let (_, listed, _) = text(&monitor.daemon.block(&["list", "--json"]));
    assert!(listed.contains("198.19.10.0/24"), "{listed}");
    assert!(!listed.contains("198.19.11.0/24"), "{listed}");
    // Its remaining time went on counting down across the restart.
    let entries: Vec<serde_json::Value> = serde_json::from_str(&listed).expect("JSON list");
    let left = entries[0]["expires_in_secs"].as_u64().expect("a TTL");
    assert!((3500..=3597).contains(&left), "{left}");
}
