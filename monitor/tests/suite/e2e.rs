//! End to end: the real daemon on veth pairs between network namespaces,
//! counting real connections made by the kernel's own TCP stack.
//!
//! Needs root (namespaces, BPF); run with `cargo xtask test -- e2e::`.

use crate::support;

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use support::{
    attach, daemon::Daemon, lab::NetnsLab, privilege, prom, require_root, traffic, wait_until,
};

const TCP_PACKETS: &str = "handshake_tcp_packets_total";
const SERVER_PORT: u16 = 8080;
/// How long counters may lag behind the traffic that made them; the
/// kernel counts synchronously, so this only absorbs scheduling noise.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

fn tcp_packets(text: &str, iface: &str, direction: &str, flag: &str) -> f64 {
    prom::expect(
        text,
        TCP_PACKETS,
        &[
            ("interface", iface),
            ("direction", direction),
            ("flag", flag),
        ],
    )
}

/// Scrapes until both FIN counters of `iface` reach `connections`, then
/// once more after a pause, so that over-counting shows up as well.
fn settled_scrape(daemon: &Daemon, iface: &str, connections: usize) -> String {
    let want = connections as f64;
    let reached = wait_until(SETTLE_TIMEOUT, || {
        let text = daemon.scrape();
        tcp_packets(&text, iface, "egress", "fin") >= want
            && tcp_packets(&text, iface, "ingress", "fin") >= want
    });
    assert!(
        reached,
        "FIN counts on {iface} never reached {want}:\n{}",
        daemon.scrape()
    );
    std::thread::sleep(Duration::from_millis(300));
    daemon.scrape()
}

/// Compares every `(direction, flag, expected)` at once, so a failure shows
/// the whole picture.
fn assert_counts(text: &str, iface: &str, expected: &[(&str, &str, usize)]) {
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|&(direction, flag, want)| {
            let got = tcp_packets(text, iface, direction, flag);
            (got != want as f64).then(|| format!("{direction} {flag}: got {got}, want {want}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "wrong counts on {iface}: {wrong:#?}\nscrape:\n{text}"
    );
}

/// What one clean connection per `n` looks like from the client's side.
fn client_side_counts(n: usize) -> [(&'static str, &'static str, usize); 10] {
    [
        ("egress", "syn", n),
        ("ingress", "syn_ack", n),
        ("egress", "fin", n),
        ("ingress", "fin", n),
        ("egress", "data", n),
        ("ingress", "data", n),
        ("ingress", "syn", 0),
        ("egress", "syn_ack", 0),
        ("egress", "rst", 0),
        ("ingress", "rst", 0),
    ]
}

#[test]
fn counts_real_connections_exactly() {
    const N: usize = 20;
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let text = connect_and_scrape(&lab, IpAddr::V4(link.peer_addr), N, 19871);
    assert_counts(&text, &link.hub_if, &client_side_counts(N));
    // Every connection's handshake ends with the client's pure ACK.
    let acks = tcp_packets(&text, &link.hub_if, "egress", "ack");
    assert!(acks >= N as f64, "egress ack {acks} < {N}");

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        prom::value(&text, "handshake_build_info", &[("version", version)]),
        Some(1.0)
    );
    let info = [
        ("interface", link.hub_if.as_str()),
        ("xdp_mode", "native"),
        ("tc_mode", "tcx"),
    ];
    assert_eq!(
        prom::value(&text, "handshake_interface_info", &info),
        Some(1.0),
        "veth should take native XDP and TCX:\n{text}"
    );
}

/// The same over IPv6: the parsers take another path for the network
/// header.
#[test]
fn counts_ipv6_connections_exactly() {
    const N: usize = 10;
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let text = connect_and_scrape(&lab, IpAddr::V6(link.peer_addr6), N, 19876);
    assert_counts(&text, &link.hub_if, &client_side_counts(N));
}

/// A daemon on the hub's end of the lab's link, `n` connections from the
/// hub to a server at `server_ip` in the peer namespace, and the scrape
/// once the counts have settled.
fn connect_and_scrape(lab: &NetnsLab, server_ip: IpAddr, n: usize, metrics_port: u16) -> String {
    let link = lab.link();
    let daemon = Daemon::start(&lab.hub, &[&link.hub_if], metrics_port);
    let server_addr = SocketAddr::new(server_ip, SERVER_PORT);
    let server = traffic::Server::start(&link.peer_ns, server_addr, n);
    traffic::exchange_many(&lab.hub, server_addr, n);
    server.join();
    settled_scrape(&daemon, &link.hub_if, n)
}

#[test]
fn two_interfaces() {
    const THROUGH: [usize; 2] = [3, 5];
    require_root();
    let lab = NetnsLab::with_peers(2);
    let ifaces: Vec<&str> = lab.links.iter().map(|l| l.hub_if.as_str()).collect();
    let daemon = Daemon::start(&lab.hub, &ifaces, 19872);

    for (link, count) in lab.links.iter().zip(THROUGH) {
        let server_addr = SocketAddr::from((link.peer_addr, SERVER_PORT));
        let server = traffic::Server::start(&link.peer_ns, server_addr, count);
        traffic::exchange_many(&lab.hub, server_addr, count);
        server.join();
    }

    for (link, count) in lab.links.iter().zip(THROUGH) {
        let text = settled_scrape(&daemon, &link.hub_if, count);
        assert_counts(&text, &link.hub_if, &client_side_counts(count));
        let info = [
            ("interface", link.hub_if.as_str()),
            ("xdp_mode", "native"),
            ("tc_mode", "tcx"),
        ];
        assert_eq!(
            prom::value(&text, "handshake_interface_info", &info),
            Some(1.0),
            "{text}"
        );
    }
}

/// Stops a daemon with `signal` and checks it leaves exit code 0 and a bare
/// interface behind.
fn detaches_on(signal: libc::c_int, port: u16) {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let mut daemon = Daemon::start(&lab.hub, &[&link.hub_if], port);

    // First show that the checks see our programs, so their silence after
    // the stop means something.
    let xdp = attach::xdp_program(&lab.hub, &link.hub_if).expect("XDP attached while running");
    assert!(xdp.contains("hs_xdp_ingress"), "{xdp}");
    let tcx = attach::tcx_egress_programs(&lab.hub, &link.hub_if);
    assert_eq!(
        tcx.len(),
        1,
        "one TCX egress program while running: {tcx:?}"
    );
    let tc_info = attach::program_info(tcx[0]);
    assert!(tc_info.contains("hs_tc_egress"), "{tc_info}");

    let status = daemon.stop(signal);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; stderr:\n{}",
        daemon.stderr()
    );
    let stderr = daemon.stderr();
    assert!(stderr.contains("detached from every interface"), "{stderr}");
    attach::assert_nothing_attached(&lab.hub, &link.hub_if);
}

#[test]
fn sigterm_detaches_everything() {
    detaches_on(libc::SIGTERM, 19873);
}

#[test]
fn sigint_detaches_everything() {
    detaches_on(libc::SIGINT, 19874);
}

/// The capabilities the error message and the docs ask for are enough:
/// nobody with ambient CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (what
/// systemd's AmbientCapabilities= gives) attaches, counts and detaches.
#[test]
fn runs_as_nobody_with_the_three_capabilities() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let binary = privilege::NobodyBinary::new();
    let wrapper = privilege::as_nobody_with(&["bpf", "net_admin", "perfmon"]);
    let mut daemon = Daemon::start_as(&lab.hub, &wrapper, binary.path(), &[&link.hub_if], 19875);

    let server_addr = SocketAddr::from((link.peer_addr, SERVER_PORT));
    let server = traffic::Server::start(&link.peer_ns, server_addr, 2);
    traffic::exchange_many(&lab.hub, server_addr, 2);
    server.join();
    let text = settled_scrape(&daemon, &link.hub_if, 2);
    assert_counts(&text, &link.hub_if, &client_side_counts(2));

    let status = daemon.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; stderr:\n{}",
        daemon.stderr()
    );
    attach::assert_nothing_attached(&lab.hub, &link.hub_if);
}
