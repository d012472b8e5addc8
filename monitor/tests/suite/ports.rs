//! End to end: per-port handshake series with a bounded label set. The
//! daemon watches the server's veth (server role), real connections by the
//! kernel's stack go to several ports, and the exact per-port counts are
//! scraped: configured ports, the automatic top-N, and `other` per IANA
//! class.
//!
//! Needs root (namespaces, BPF); run with `cargo xtask test -- ports::`.

use crate::support;

use std::{net::SocketAddr, time::Duration};

use support::{handshakes::Monitor, lab::NetnsLab, prom, require_root, traffic};

/// `count` connections from the hub to a server on `port` in the peer
/// namespace, each completed and closed before the next.
fn connect(lab: &NetnsLab, port: u16, count: usize) {
    let link = lab.link();
    let addr = SocketAddr::from((link.peer_addr, port));
    let server = traffic::Server::start(&link.peer_ns, addr, count);
    traffic::exchange_many(&lab.hub, addr, count);
    server.join();
}

fn port_value(
    text: &str,
    iface: &str,
    name: &str,
    port: &str,
    class: &str,
    result: Option<&str>,
) -> f64 {
    let mut labels = vec![
        ("interface", iface),
        ("role", "server"),
        ("port", port),
        ("port_class", class),
    ];
    if let Some(result) = result {
        labels.push(("result", result));
    }
    prom::value(text, name, &labels).unwrap_or(0.0)
}

fn completed(text: &str, iface: &str, port: &str, class: &str) -> f64 {
    let name = "handshake_tcp_port_handshakes_total";
    port_value(text, iface, name, port, class, Some("completed"))
}

fn syns(text: &str, iface: &str, port: &str, class: &str) -> f64 {
    port_value(
        text,
        iface,
        "handshake_tcp_port_syns_total",
        port,
        class,
        None,
    )
}

#[test]
fn configured_ports_and_other_by_class() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let args = ["--port", "8080", "--top-ports", "0"];
    let monitor = Monitor::start(&link.peer_ns, &link.peer_if, 19951, &args);

    connect(&lab, 8080, 3);
    connect(&lab, 9000, 2);
    connect(&lab, 80, 1);
    connect(&lab, 50000, 1);

    let iface = link.peer_if.as_str();
    let done = |s: &support::handshakes::Scrape| {
        completed(&s.text, iface, "other", "dynamic") >= 1.0
            && completed(&s.text, iface, "8080", "registered") >= 3.0
    };
    let text = monitor.settled("per-port completions", done).text;
    let expected = [
        ("8080", "registered", 3.0),
        ("other", "registered", 2.0),
        ("other", "well_known", 1.0),
        ("other", "dynamic", 1.0),
    ];
    for (port, class, n) in expected {
        assert_eq!(
            completed(&text, iface, port, class),
            n,
            "{port}/{class}:\n{text}"
        );
        assert_eq!(syns(&text, iface, port, class), n, "syns {port}/{class}");
    }
    // Unnamed ports never become labels.
    assert!(!text.contains("port=\"9000\""), "{text}");
    assert!(!text.contains("port=\"80\""), "{text}");
    let half_open = prom::value(
        &text,
        "handshake_tcp_port_half_open",
        &[
            ("interface", iface),
            ("role", "server"),
            ("port", "8080"),
            ("port_class", "registered"),
        ],
    );
    assert_eq!(half_open, Some(0.0));
}

#[test]
fn the_busiest_port_gets_series_of_its_own() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let args = ["--top-ports", "1", "--top-ports-interval", "0.5"];
    let monitor = Monitor::start(&link.peer_ns, &link.peer_if, 19952, &args);
    let iface = link.peer_if.as_str();

    // Before it is chosen, the busy port counts in `other`.
    connect(&lab, 9000, 4);
    connect(&lab, 9001, 1);
    let chosen = |s: &support::handshakes::Scrape| s.text.contains("port=\"9000\"");
    monitor.wait_for(
        "port 9000 chosen as the top port",
        Duration::from_secs(10),
        chosen,
    );

    // Only the chosen port gets traffic now, so no window can find another
    // port busier and take its slot.
    connect(&lab, 9000, 3);
    let done =
        |s: &support::handshakes::Scrape| completed(&s.text, iface, "9000", "registered") >= 3.0;
    let text = monitor.settled("completions on port 9000", done).text;
    assert_eq!(completed(&text, iface, "9000", "registered"), 3.0, "{text}");
    assert_eq!(
        completed(&text, iface, "other", "registered"),
        5.0,
        "{text}"
    );
    assert!(!text.contains("port=\"9001\""), "{text}");
}
