//! End to end, the ways around a block an attacker would try against a
//! running daemon in `enforce` with SYN cookies on: SYNs in IP fragments
//! (hping3 -f) from a blocked source and from anyone, and a blocked
//! client's real connection to a port the cookies protect. A blocked
//! source must get nothing back, and each refusal is counted by reason.
//!
//! Needs root (namespaces, BPF); run with `cargo xtask test -- bypass::`.

use crate::support;

use std::{net::SocketAddr, time::Duration};

use support::{
    cmd,
    cookies::{EchoService, PORT, napi, one_exchange_within},
    daemon::text,
    handshakes::Monitor,
    lab::NetnsLab,
    netns::in_netns,
    prom, require_root,
};

/// Fragmented SYNs hping3 sends in each burst; its default fragment size
/// (16 bytes) splits a 20-byte TCP header in two.
const FRAGMENTED_SYNS: u32 = 20;

fn value(monitor: &Monitor, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = monitor.daemon.scrape();
    let mut all = vec![("interface", monitor.iface.as_str())];
    all.extend_from_slice(labels);
    prom::value(&text, name, &all).unwrap_or(0.0)
}

fn dropped(monitor: &Monitor, reason: &str) -> f64 {
    value(
        monitor,
        "handshake_xdp_dropped_packets_total",
        &[("reason", reason)],
    )
}

/// SYN-ACKs the host sent: the stack's (through TC egress) and the
/// cookie answers (XDP_TX, which egress never sees).
fn synacks_sent(monitor: &Monitor) -> f64 {
    value(
        monitor,
        "handshake_tcp_packets_total",
        &[("direction", "egress"), ("flag", "syn_ack")],
    ) + value(monitor, "handshake_syncookie_sent_total", &[])
}

/// `FRAGMENTED_SYNS` SYNs split into IP fragments, from the hub.
fn hping3_fragmented(lab: &NetnsLab, target: &str) {
    let count = FRAGMENTED_SYNS.to_string();
    let out = cmd::output(
        "ip",
        &[
            "netns", "exec", &lab.hub, "timeout", "10", "hping3", "-q", "-S", "-f", "-p", "8080",
            "-c", &count, "-i", "u2000", target,
        ],
    );
    // hping3 exits 1 when no reply came back, which is the point here.
    assert!(out.status.code().is_some_and(|c| c <= 1), "hping3: {out:?}");
}

#[test]
fn a_blocked_source_gets_nothing_back_through_fragments_or_cookies() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    // The hub's veth delivers XDP_TX frames (cookie SYN-ACKs) only with an
    // XDP program of its own.
    let _napi = napi(&lab);
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19951,
        &[
            "--mitigation",
            "enforce",
            "--syncookies",
            "always",
            "--port",
            "8080",
        ],
    );
    let addr = SocketAddr::new(link.peer_addr.into(), PORT);
    let _service = EchoService::start(&link.peer_ns, addr);
    let connects = || {
        in_netns(&lab.hub, || {
            one_exchange_within(addr, Duration::from_secs(2))
        })
    };
    assert!(connects(), "the client connects through a SYN cookie");
    let client = link.hub_addr.to_string();
    let target = link.peer_addr.to_string();

    // Unblocked, a fragmented SYN is refused all the same: first fragments
    // carrying a SYN, from anyone; the later fragments pass (the stack
    // cannot reassemble a datagram whose first fragment is gone).
    let synacks = synacks_sent(&monitor);
    hping3_fragmented(&lab, &target);
    assert_eq!(
        dropped(&monitor, "syn_fragment"),
        f64::from(FRAGMENTED_SYNS)
    );
    assert_eq!(dropped(&monitor, "blocklist_fragment"), 0.0);
    assert_eq!(synacks_sent(&monitor), synacks, "no SYN-ACK for a fragment");

    let (ok, _, stderr) = text(&monitor.daemon.block(&["add", &client]));
    assert!(ok, "block add: {stderr}");
    // Blocked: its real connection gets no cookie, its fragments are all
    // refused, and nothing goes back.
    let synacks = synacks_sent(&monitor);
    assert!(!connects(), "a blocked client connected");
    assert!(dropped(&monitor, "blocklist") >= 1.0);
    hping3_fragmented(&lab, &target);
    assert_eq!(
        dropped(&monitor, "syn_fragment"),
        f64::from(2 * FRAGMENTED_SYNS)
    );
    assert_eq!(
        dropped(&monitor, "blocklist_fragment"),
        f64::from(FRAGMENTED_SYNS)
    );
    assert_eq!(
        synacks_sent(&monitor),
        synacks,
        "a blocked source got a SYN-ACK"
    );

    let (ok, _, stderr) = text(&monitor.daemon.block(&["remove", &client]));
    assert!(ok, "block remove: {stderr}");
    assert!(connects(), "unblocked, the client connects again");
    assert!(synacks_sent(&monitor) > synacks);
}
