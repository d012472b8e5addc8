//! End to end: SYN cookies that cannot blackhole clients. A veth whose peer
//! runs no native XDP program never delivers the frames XDP sends back,
//! cookie SYN-ACKs included (without NAPI it drops them; with GRO alone it
//! queues them and never wakes the peer). With `--syncookies always`:
//!
//! - at start the daemon finds the peer (in the hub's namespace) unable to
//!   receive, leaves SYNs to the stack and says so (counter, alert, status,
//!   the fix in its log): every real client connects; GRO on the peer
//!   changes nothing; once the peer runs an XDP program, XDP cookies take
//!   over by themselves;
//! - a peer whose XDP program goes away while the daemon runs: cookie
//!   SYN-ACKs go unanswered, the run-time watch falls back once, the alert
//!   reaches a real Alertmanager, and every client connects (through its
//!   SYN resend).
//!
//! Needs root (namespaces, BPF); run with
//! `cargo xtask test -- syncookies_guard::`.

use crate::support;

use std::{net::SocketAddr, thread, time::Duration};

use support::{
    alertmanager::{AM_PORT, Alertmanager},
    cmd,
    cookies::{EchoService, PORT, napi, netstat, one_exchange_within},
    handshakes::Monitor,
    lab::{Link, NetnsLab},
    netns::in_netns,
    prom, require_root, wait_until,
};

const ALERT: &str = "SyncookieFallback";

/// `ethtool -K HUB_IF gro on|off` in the hub's namespace.
fn hub_gro(lab: &NetnsLab, on: bool) {
    let link = lab.link();
    let state = if on { "on" } else { "off" };
    cmd::run(
        "ip",
        &[
            "netns",
            "exec",
            &lab.hub,
            "ethtool",
            "-K",
            &link.hub_if,
            "gro",
            state,
        ],
    );
}

fn metric(monitor: &Monitor, name: &str, labels: &[(&str, &str)]) -> f64 {
    prom::value(&monitor.scrape().text, name, labels).unwrap_or(-1.0)
}

fn fallbacks(monitor: &Monitor, reason: &str) -> f64 {
    let iface = monitor.iface.as_str();
    metric(
        monitor,
        "handshake_syncookie_fallbacks_total",
        &[("interface", iface), ("reason", reason)],
    )
}

fn cookies(monitor: &Monitor, event: &str) -> f64 {
    let name = format!("handshake_syncookie_{event}_total");
    metric(monitor, &name, &[("interface", monitor.iface.as_str())])
}

fn active(monitor: &Monitor) -> f64 {
    let iface = monitor.iface.as_str();
    metric(
        monitor,
        "handshake_syncookie_active",
        &[("interface", iface), ("port", "8080")],
    )
}

fn alert_firing(monitor: &Monitor) -> f64 {
    let iface = monitor.iface.as_str();
    metric(
        monitor,
        "handshake_alert_firing",
        &[("alertname", ALERT), ("interface", iface), ("port", "all")],
    )
}

/// `n` real clients at once from the hub, each given `connect` to get
/// through: how many read the greeting.
fn clients(lab: &NetnsLab, addr: SocketAddr, n: usize, connect: Duration) -> usize {
    thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| s.spawn(|| in_netns(&lab.hub, || one_exchange_within(addr, connect))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .filter(|ok| *ok)
            .count()
    })
}

/// `status --json` of the daemon, its firing alerts as (name, interface, port).
fn firing(monitor: &Monitor) -> Vec<(String, String, String)> {
    let json = monitor.daemon.status_json();
    json["firing_alerts"]
        .as_array()
        .expect("firing_alerts")
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
            (s("alertname"), s("interface"), s("port"))
        })
        .collect()
}

fn start(link: &Link, port: u16, extra: &[&str]) -> Monitor {
    let mut args = vec![
        "--port",
        "8080",
        "--syncookies",
        "always",
        "--mitigation",
        "off",
    ];
    args.extend_from_slice(extra);
    Monitor::start(&link.peer_ns, &link.peer_if, port, &args)
}

#[test]
fn a_peer_without_xdp_leaves_syns_to_the_stack_until_it_runs_xdp() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    hub_gro(&lab, false);
    let monitor = start(link, 19951, &[]);
    let addr = SocketAddr::new(link.peer_addr.into(), PORT);
    let _service = EchoService::start(&link.peer_ns, addr);

    assert_eq!(fallbacks(&monitor, "peer_cannot_receive"), 1.0);
    assert_eq!(fallbacks(&monitor, "no_validated_acks"), 0.0);
    assert_eq!(active(&monitor), 0.0);
    assert_eq!(alert_firing(&monitor), 1.0);
    let me = (ALERT.to_string(), link.peer_if.clone(), "all".to_string());
    assert_eq!(firing(&monitor), std::slice::from_ref(&me));
    let log = monitor.daemon.stderr();
    let peer = format!("peer={} in /run/netns/{}", link.hub_if, lab.hub);
    let fix = format!(
        "ip netns exec {} ip link set dev {} xdpdrv obj XDP_PASS_OBJECT.o sec xdp",
        lab.hub, link.hub_if
    );
    assert!(
        log.contains(&peer),
        "the log names no peer ({peer}):\n{log}"
    );
    assert!(log.contains(&fix), "the log names no fix ({fix}):\n{log}");

    // Every client gets through at its first SYN: the stack answers.
    assert_eq!(clients(&lab, addr, 20, Duration::from_millis(900)), 20);
    assert_eq!(cookies(&monitor, "sent"), 0.0);

    // GRO on the peer is not enough for XDP_TX: still the stack.
    hub_gro(&lab, true);
    thread::sleep(Duration::from_millis(2100));
    assert_eq!(active(&monitor), 0.0);
    assert_eq!(firing(&monitor), [me]);
    assert_eq!(clients(&lab, addr, 20, Duration::from_millis(900)), 20);
    assert_eq!(cookies(&monitor, "sent"), 0.0);

    // The fix: XDP cookies answer again, by themselves.
    let _xdp = napi(&lab);
    let resumed = wait_until(Duration::from_secs(5), || active(&monitor) == 1.0);
    assert!(
        resumed,
        "cookies never resumed\n{}",
        monitor.daemon.stderr()
    );
    assert_eq!(alert_firing(&monitor), 0.0);
    assert_eq!(firing(&monitor), []);
    assert_eq!(clients(&lab, addr, 20, Duration::from_millis(900)), 20);
    let settled = wait_until(Duration::from_secs(3), || {
        cookies(&monitor, "handed") == 20.0
    });
    assert!(settled, "handed {}", cookies(&monitor, "handed"));
    assert_eq!(cookies(&monitor, "sent"), 20.0);
    assert_eq!(cookies(&monitor, "validated"), 20.0);
    assert_eq!(fallbacks(&monitor, "peer_cannot_receive"), 1.0);
    assert_eq!(fallbacks(&monitor, "no_validated_acks"), 0.0);
}

#[test]
fn a_peer_that_loses_its_xdp_program_falls_back_once_and_clients_get_through() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    hub_gro(&lab, false);
    let xdp = napi(&lab);
    let am = Alertmanager::start(&link.peer_ns);
    let url = format!("http://127.0.0.1:{AM_PORT}");
    let monitor = start(
        link,
        19952,
        &["--alertmanager-url", &url, "--alert-resend-interval", "30"],
    );
    let addr = SocketAddr::new(link.peer_addr.into(), PORT);
    let _service = EchoService::start(&link.peer_ns, addr);
    assert_eq!(active(&monitor), 1.0);
    assert_eq!(fallbacks(&monitor, "peer_cannot_receive"), 0.0);
    assert_eq!(alert_firing(&monitor), 0.0);
    assert_eq!(clients(&lab, addr, 5, Duration::from_millis(900)), 5);
    assert_eq!(cookies(&monitor, "validated"), 5.0);

    drop(xdp);
    // 80 clients at once: their SYN-ACKs vanish; the watch gives up after
    // 64 unanswered and 3 s, and their SYN resends (a second or more apart) reach
    // the stack.
    let server_before = netstat(&link.peer_ns);
    let through = clients(&lab, addr, 80, Duration::from_secs(16));
    let server_after = netstat(&link.peer_ns);
    let veth = cmd::run(
        "ip",
        &[
            "netns",
            "exec",
            &link.peer_ns,
            "ethtool",
            "-S",
            &link.peer_if,
        ],
    );
    assert_eq!(
        through,
        80,
        "{}\n{veth}\n{}",
        monitor.scrape().text,
        monitor.daemon.stderr()
    );
    assert_eq!(fallbacks(&monitor, "no_validated_acks"), 1.0);
    assert_eq!(fallbacks(&monitor, "peer_cannot_receive"), 0.0);
    assert_eq!(active(&monitor), 0.0);
    assert_eq!(alert_firing(&monitor), 1.0);
    // Seen once in 830 runs with six tests at a time: 19, not 5. What the
    // server's stack and the veth did then is in the message, for the
    // next time it happens.
    let stack: Vec<String> = [
        "TcpExtSyncookiesSent",
        "TcpExtSyncookiesRecv",
        "TcpExtSyncookiesFailed",
        "TcpExtListenOverflows",
        "TcpExtListenDrops",
        "TcpPassiveOpens",
    ]
    .iter()
    .map(|k| {
        let at = |m: &std::collections::HashMap<String, u64>| m.get(*k).copied().unwrap_or(0);
        format!(
            "{k} +{}",
            at(&server_after).saturating_sub(at(&server_before))
        )
    })
    .collect();
    assert_eq!(
        cookies(&monitor, "validated"),
        5.0,
        "server stack: {stack:?}\n{veth}\n{}\n{}",
        monitor.scrape().text,
        monitor.daemon.stderr()
    );
    let listed = |body: &str| {
        body.contains(&format!("\"alertname\":\"{ALERT}\""))
            && body.contains(&format!("\"interface\":\"{}\"", link.peer_if))
    };
    let pushed = wait_until(Duration::from_secs(5), || {
        am.alerts(&link.peer_ns).is_ok_and(|b| listed(&b))
    });
    assert!(
        pushed,
        "not in Alertmanager: {:?}",
        am.alerts(&link.peer_ns)
    );

    // And new clients get through at once, with no second fallback.
    let sent = cookies(&monitor, "sent");
    assert_eq!(clients(&lab, addr, 20, Duration::from_millis(900)), 20);
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(fallbacks(&monitor, "no_validated_acks"), 1.0);
    assert_eq!(cookies(&monitor, "sent"), sent);
}
