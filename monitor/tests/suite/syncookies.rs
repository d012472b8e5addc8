//! End to end: SYN cookies from XDP against a random-source spoofed SYN
//! flood (sources from 198.19.0.0/16 and 2001:2:0:ff00::/56, bounded in
//! count and time) while a real client connects in a loop. With cookies
//! on, the real client's handshakes complete through the cookie path
//! (bpf_sk_assign_tcp_reqsk), the server's listen queue never overflows
//! and the flood's SYNs never reach its stack; with them off, they do.
//! An established connection survives the mode switching on and off.
//!
//! Needs root (namespaces, BPF, AF_PACKET); run with
//! `cargo xtask test -- syncookies::`.

use crate::support;

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use monitor_common::classify::tcp_flags::PSH;

use support::{
    cookies::{EchoService, Flooder, PORT, napi, netstat, real_client},
    handshakes::Monitor,
    lab::NetnsLab,
    netns::in_netns,
    prom,
    rawtcp::RawClient,
    require_root, wait_until,
};

const FLOOD_SYNS: u32 = 50_000;

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, key: &str) -> u64 {
    after[key] - before[key]
}

fn cookie_metric(monitor: &Monitor, event: &str) -> f64 {
    let name = format!("handshake_syncookie_{event}_total");
    prom::value(
        &monitor.scrape().text,
        &name,
        &[("interface", monitor.iface.as_str())],
    )
    .unwrap_or(-1.0)
}

fn flood_run(v6: bool, mode: &str) {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let _napi = napi(&lab);
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19941 + u16::from(v6),
        &[
            "--port",
            "8080",
            "--syncookies",
            mode,
            "--mitigation",
            "off",
        ],
    );
    let server: IpAddr = if v6 {
        link.peer_addr6.into()
    } else {
        link.peer_addr.into()
    };
    let addr = SocketAddr::new(server, PORT);
    let _service = EchoService::start(&link.peer_ns, addr);
    let mut flooder = Flooder::new(&lab, v6);
    let before = netstat(&link.peer_ns);
    let stop = Arc::new(AtomicBool::new(false));
    let client = real_client(&lab.hub, addr, Arc::clone(&stop));
    // The real client is through its first handshake before the flood.
    let connected = wait_until(Duration::from_secs(10), || {
        netstat(&link.peer_ns)["TcpPassiveOpens"] > before["TcpPassiveOpens"]
    });
    assert!(
        connected,
        "the real client never connected before the flood"
    );
    let sent = flooder.flood(FLOOD_SYNS);
    // The server has taken in the flood: XDP answered it, or (cookies
    // off) its stack did.
    let flood_seen = wait_until(Duration::from_secs(10), || {
        if mode == "off" {
            let now = netstat(&link.peer_ns);
            delta(&before, &now, "TcpInSegs") >= u64::from(sent) / 2
                && delta(&before, &now, "TcpExtSyncookiesSent")
                    + delta(&before, &now, "TcpExtListenDrops")
                    > 0
        } else {
            cookie_metric(&monitor, "sent") >= f64::from(sent) * 0.95
        }
    });
    stop.store(true, Ordering::Relaxed);
    let (ok, attempts) = client.join().expect("client thread");
    let after = netstat(&link.peer_ns);
    let d = |key| delta(&before, &after, key);
    let stack_syns = d("TcpInSegs");
    eprintln!(
        "mode {mode} v6 {v6}: flood {sent} SYNs; real client {ok}/{attempts}; server stack: \
         InSegs +{stack_syns}, SyncookiesSent +{}, ListenOverflows +{}, ListenDrops +{}; \
         XDP cookies sent {}, handed {}",
        d("TcpExtSyncookiesSent"),
        d("TcpExtListenOverflows"),
        d("TcpExtListenDrops"),
        cookie_metric(&monitor, "sent"),
        cookie_metric(&monitor, "handed"),
    );
    assert!(sent > FLOOD_SYNS / 2, "the flood sent only {sent} SYNs");
    assert!(flood_seen, "the server's counters never took in the flood");
    if mode == "off" {
        // The contrast: the stack took the flood, and had to fall back on
        // its own cookies or drop.
        assert!(stack_syns >= u64::from(sent) / 2, "InSegs +{stack_syns}");
        assert!(
            d("TcpExtSyncookiesSent") + d("TcpExtListenDrops") > 0,
            "the listen queue never filled: {after:?}"
        );
        return;
    }
    assert!(attempts >= 40, "only {attempts} attempts");
    assert!(
        f64::from(ok) >= 0.99 * f64::from(attempts),
        "real client: {ok} of {attempts}"
    );
    for key in [
        "TcpExtSyncookiesSent",
        "TcpExtListenOverflows",
        "TcpExtListenDrops",
    ] {
        assert_eq!(d(key), 0, "{key} moved");
    }
    // The real client's segments only (a handful per connection).
    assert!(
        stack_syns < u64::from(attempts) * 20,
        "the stack saw {stack_syns} segments: the flood reached it"
    );
    assert!(cookie_metric(&monitor, "sent") >= f64::from(sent) * 0.95);
    assert!(cookie_metric(&monitor, "handed") >= f64::from(ok));
}

#[test]
fn cookies_carry_real_clients_through_a_random_source_flood_ipv4() {
    flood_run(false, "always");
}

#[test]
fn cookies_carry_real_clients_through_a_random_source_flood_ipv6() {
    flood_run(true, "always");
}

#[test]
fn without_cookies_the_flood_reaches_the_listen_queue() {
    flood_run(false, "off");
}

fn active(monitor: &Monitor) -> f64 {
    prom::value(
        &monitor.scrape().text,
        "handshake_syncookie_active",
        &[("interface", monitor.iface.as_str()), ("port", "8080")],
    )
    .unwrap_or(-1.0)
}

/// A long-lived connection: after the greeting, each exchange sends a line
/// and expects it echoed.
struct Session(TcpStream);

impl Session {
    fn open(ns: &str, addr: SocketAddr) -> Self {
        let mut stream = in_netns(ns, || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        })
        .expect("connecting the long-lived session");
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut hello = [0u8; 2];
        stream.read_exact(&mut hello).expect("greeting");
        Self(stream)
    }

    fn exchange(&mut self, what: &str) -> bool {
        let line = format!("{what}\n");
        let mut back = vec![0u8; line.len()];
        self.0.write_all(line.as_bytes()).is_ok()
            && self.0.read_exact(&mut back).is_ok()
            && back == line.as_bytes()
    }
}

#[test]
fn established_connections_survive_cookies_switching_on_and_off() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let _napi = napi(&lab);
    let config = std::env::temp_dir().join(format!("hmt-{}-cookies.toml", std::process::id()));
    std::fs::write(
        &config,
        "[syncookies]\nmode = \"on-flood\"\nhold_seconds = 1\n",
    )
    .unwrap();
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19944,
        &[
            "--port",
            "8080",
            "--mitigation",
            "off",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_file(&config);
    let addr = SocketAddr::new(link.peer_addr.into(), PORT);
    let _service = EchoService::start(&link.peer_ns, addr);
    let mut before = Session::open(&lab.hub, addr);
    assert!(before.exchange("before"), "no echo before the flood");
    assert_eq!(active(&monitor), 0.0);
    // A handshake in flight across the switch: the stack answers this SYN
    // itself; its final ACK is only sent once cookies are on.
    let raw = RawClient::new(&lab.hub, link, PORT);
    raw.syn();
    let synack = raw.expect_syn_ack();

    let mut flooder = Flooder::new(&lab, false);
    let flood = thread::spawn(move || flooder.flood(120_000));
    let on = wait_until(Duration::from_secs(6), || active(&monitor) == 1.0);
    assert!(on, "cookies never switched on\n{}", monitor.scrape().text);
    assert!(before.exchange("during"), "the established session broke");
    // The in-flight handshake completes through the stack's own request
    // socket: the server's greeting comes back (PSH, right after the ISN).
    raw.ack(synack.seq.wrapping_add(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    let greeted = std::iter::from_fn(|| {
        let left = deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| raw.recv(left)).flatten()
    })
    .any(|seg| seg.flags & PSH != 0 && seg.seq == synack.seq.wrapping_add(1));
    assert!(greeted, "the handshake in flight did not complete");
    // A session made through a cookie while they are on.
    let mut during = Session::open(&lab.hub, addr);
    assert!(during.exchange("made from a cookie"));
    let sent = flood.join().expect("flood thread");
    assert!(sent > 10_000);

    let off = wait_until(Duration::from_secs(20), || active(&monitor) == 0.0);
    assert!(off, "cookies never switched off\n{}", monitor.scrape().text);
    assert!(before.exchange("after"), "the first session broke");
    assert!(during.exchange("after"), "the cookie-made session broke");
    // And new connections go to the stack again.
    let mut fresh = Session::open(&lab.hub, addr);
    assert!(fresh.exchange("fresh"));
    assert!(cookie_metric(&monitor, "handed") >= 1.0);
}
