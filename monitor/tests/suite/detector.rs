//! End to end: SYN-flood detection. A burst of real clients raises no
//! alert; a bounded SYN flood from a spoofed source fires `SynFlood` on the
//! interface and on the flooded port within two seconds, and the alert
//! resolves once the flood has stopped.
//!
//! Needs root (namespaces, BPF, AF_PACKET); run with
//! `cargo xtask test -- detector::`.

use crate::support;

use std::{
    net::{SocketAddr, TcpListener},
    time::{Duration, Instant},
};

use monitor_common::classify::tcp_flags::SYN;
use support::{
    handshakes::Monitor, lab::NetnsLab, netns::in_netns, prom, rawtcp::RawClient, require_root,
    traffic, wait_until,
};

const PORT: u16 = 8080;
/// The flood: this many SYNs, sent as fast as one thread can.
const FLOOD_SYNS: u32 = 3000;

fn firing(monitor: &Monitor, port: &str) -> Option<f64> {
    let labels = [
        ("alertname", "SynFlood"),
        ("interface", monitor.iface.as_str()),
        ("port", port),
    ];
    prom::value(&monitor.scrape().text, "handshake_alert_firing", &labels)
}

#[test]
fn a_burst_of_real_clients_is_not_a_flood_and_a_syn_flood_is() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let port = PORT.to_string();
    let monitor = Monitor::start(&link.peer_ns, &link.peer_if, 19981, &["--port", &port]);

    // Real clients: 300 connections back to back, all completing.
    let addr = SocketAddr::from((link.peer_addr, PORT));
    let server = traffic::Server::start(&link.peer_ns, addr, 300);
    traffic::exchange_many(&lab.hub, addr, 300);
    server.join();
    // Two evaluations after the burst, the alert has had its chance.
    monitor.wait_flood_evaluations(&port);
    assert_eq!(
        firing(&monitor, &port),
        Some(0.0),
        "{}",
        monitor.daemon.stderr()
    );
    assert_eq!(firing(&monitor, "all"), Some(0.0));

    // The flood: a listener that never accepts, SYNs from an address no
    // namespace owns (the server's SYN-ACKs go unanswered).
    let _listener = in_netns(&link.peer_ns, || TcpListener::bind(addr)).expect("listen");
    let mut raw = RawClient::new(&lab.hub, link, PORT);
    let started = Instant::now();
    for i in 0..FLOOD_SYNS {
        raw.port = 20_000 + (i % 40_000) as u16;
        raw.send(SYN, 0x2000_0000 + i * 7919, 0);
    }
    let fired = wait_until(Duration::from_secs(2), || {
        firing(&monitor, &port) == Some(1.0)
    });
    assert!(
        fired,
        "no SynFlood alert on port {PORT} within 2 s of the flood's start ({:?} to send it)\n{}",
        started.elapsed(),
        monitor.scrape().text
    );
    assert_eq!(firing(&monitor, "all"), Some(1.0));
    assert!(monitor.daemon.stderr().contains("alert firing"));

    // Quiet again: resolved after five normal seconds (plus evaluation lag).
    let resolved = wait_until(Duration::from_secs(10), || {
        firing(&monitor, &port) == Some(0.0)
    });
    assert!(resolved, "{}", monitor.scrape().text);
    assert!(monitor.daemon.stderr().contains("alert resolved"));
}

fn alert(monitor: &Monitor, alertname: &str) -> Option<f64> {
    let labels = [
        ("alertname", alertname),
        ("interface", monitor.iface.as_str()),
        ("port", "all"),
    ];
    prom::value(&monitor.scrape().text, "handshake_alert_firing", &labels)
}

#[test]
fn a_port_scan_is_reported_as_a_scan_not_a_flood() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let monitor = Monitor::start(&link.peer_ns, &link.peer_if, 19982, &[]);
    // One source, one SYN to each of 60 closed ports: each refused by RST.
    let mut raw = RawClient::new(&lab.hub, link, 1);
    raw.port = 45_000;
    for port in 1000..1060u16 {
        raw.server_port = port;
        raw.send(SYN, 0x4000_0000 + u32::from(port), 0);
    }
    let fired = wait_until(Duration::from_secs(3), || {
        alert(&monitor, "PortScan") == Some(1.0)
    });
    assert!(
        fired,
        "{}\n{}",
        monitor.scrape().text,
        monitor.daemon.stderr()
    );
    assert_ne!(alert(&monitor, "SynFlood"), Some(1.0));
    let source = raw.addr.to_string();
    let stderr = monitor.daemon.stderr();
    assert!(
        stderr.contains("PortScan") && stderr.contains(&source),
        "{stderr}"
    );
    // The source ages out of the window, then five quiet seconds resolve it.
    let resolved = wait_until(Duration::from_secs(20), || {
        alert(&monitor, "PortScan") == Some(0.0)
    });
    assert!(resolved, "{}", monitor.scrape().text);
}
