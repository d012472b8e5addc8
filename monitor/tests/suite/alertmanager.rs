//! End to end: alerts pushed to a real Alertmanager (Debian's
//! prometheus-alertmanager) running in the lab. A bounded SYN flood makes
//! `SynFlood` appear in Alertmanager's API with its labels; when the flood
//! is over, the resolved alert (with its real `endsAt`) takes it out again,
//! long before the `endsAt` of the firing posts would have.
//!
//! Needs root (namespaces, BPF, AF_PACKET); run with
//! `cargo xtask test -- alertmanager::`.

use crate::support;

use std::{
    net::{SocketAddr, TcpListener},
    time::Duration,
};

use monitor_common::classify::tcp_flags::SYN;
use support::{
    alertmanager::{AM_PORT, Alertmanager},
    handshakes::Monitor,
    lab::NetnsLab,
    netns::in_netns,
    prom,
    rawtcp::RawClient,
    require_root, wait_until,
};

const PORT: u16 = 8080;

#[test]
fn a_flood_alert_reaches_alertmanager_and_resolves_there() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let am = Alertmanager::start(&link.peer_ns);
    let url = format!("http://127.0.0.1:{AM_PORT}");
    let port = PORT.to_string();
    let args = [
        "--port",
        &port,
        "--alertmanager-url",
        &url,
        // Firing posts say "ends in 2 minutes": only the resolved post can
        // take the alert out within the test.
        "--alert-resend-interval",
        "30",
    ];
    let monitor = Monitor::start(&link.peer_ns, &link.peer_if, 19991, &args);

    let addr = SocketAddr::from((link.peer_addr, PORT));
    let _listener = in_netns(&link.peer_ns, || TcpListener::bind(addr)).expect("listen");
    let mut raw = RawClient::new(&lab.hub, link, PORT);
    for i in 0..3000u32 {
        raw.port = 20_000 + (i % 40_000) as u16;
        raw.send(SYN, 0x3000_0000 + i * 7919, 0);
    }

    let listed = |body: &str| {
        body.contains("\"alertname\":\"SynFlood\"")
            && body.contains(&format!("\"port\":\"{PORT}\""))
    };
    let fired = wait_until(Duration::from_secs(10), || {
        am.alerts(&link.peer_ns).is_ok_and(|b| listed(&b))
    });
    let body = am.alerts(&link.peer_ns).unwrap_or_default();
    assert!(
        fired,
        "SynFlood not in Alertmanager: {body}\n{}",
        monitor.daemon.stderr()
    );
    assert!(
        body.contains(&format!("\"interface\":\"{}\"", link.peer_if)),
        "{body}"
    );
    assert!(body.contains("\"job\":\"handshake-monitor\""), "{body}");

    let gone = wait_until(Duration::from_secs(15), || {
        am.alerts(&link.peer_ns)
            .is_ok_and(|b| !b.contains("SynFlood"))
    });
    assert!(gone, "still listed: {:?}", am.alerts(&link.peer_ns));
    let sent = prom::value(
        &monitor.scrape().text,
        "handshake_alertmanager_notifications_total",
        &[("result", "sent")],
    );
    assert!(sent.is_some_and(|n| n >= 2.0), "{sent:?}");
}
