//! End to end: SYN-flood mitigation in XDP. A bounded flood from one
//! spoofed attacker address against a listening port while a real client
//! keeps connecting: in `enforce` the alert fires, the attacker is blocked
//! and its SYNs die in XDP, the real client keeps succeeding, the alert
//! resolves and the block expires; in `dry-run` nothing is dropped.
//!
//! Needs root (namespaces, BPF, AF_PACKET); run with
//! `cargo xtask test -- mitigation::`.

use crate::support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use monitor_common::classify::tcp_flags::SYN;
use support::{
    cookies::{self, EchoService},
    handshakes::{Monitor, SERVER, Series},
    lab::NetnsLab,
    netns::in_netns,
    prom,
    rawtcp::RawClient,
    require_root, wait_until,
};

const PORT: u16 = 8080;
/// The flood: this many SYNs, paced at about 10,000 per second.
const FLOOD_SYNS: u32 = 30_000;
const FLOOD_BATCH: u32 = 100;
const FLOOD_PACE: Duration = Duration::from_millis(10);
/// Whatever the pacing does, the flood stops after this long.
const FLOOD_MAX: Duration = Duration::from_secs(6);
const AUTO_BLOCK_TTL_SECS: u64 = 6;

/// The real client of [`cookies::real_client`], stopped by `finish`.
struct RealClient {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(u32, u32)>,
}

impl RealClient {
    fn start(ns: &str, addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = cookies::real_client(ns, addr, Arc::clone(&stop));
        Self { stop, handle }
    }

    /// (successes, attempts).
    fn finish(self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the client thread")
    }
}

/// Paced SYNs from the raw client's spoofed address, each from a new port.
fn flood(raw: &mut RawClient) -> Duration {
    let started = Instant::now();
    for i in 0..FLOOD_SYNS {
        raw.port = 20_000 + (i % 40_000) as u16;
        raw.send(SYN, 0x3000_0000 + i * 7919, 0);
        if i % FLOOD_BATCH == FLOOD_BATCH - 1 {
            if started.elapsed() > FLOOD_MAX {
                break;
            }
            thread::sleep(FLOOD_PACE);
        }
    }
    started.elapsed()
}

fn metric(monitor: &Monitor, name: &str, labels: &[(&str, &str)]) -> f64 {
    prom::value(&monitor.scrape().text, name, labels).unwrap_or(-1.0)
}

fn by_reason(monitor: &Monitor, name: &str, reason: &str) -> f64 {
    metric(
        monitor,
        name,
        &[("interface", monitor.iface.as_str()), ("reason", reason)],
    )
}

fn firing(monitor: &Monitor) -> f64 {
    metric(
        monitor,
        "handshake_alert_firing",
        &[
            ("alertname", "SynFlood"),
            ("interface", monitor.iface.as_str()),
            ("port", &PORT.to_string()),
        ],
    )
}

fn ingress_syns(monitor: &Monitor, scrape: &str) -> Option<f64> {
    prom::value(
        scrape,
        "handshake_tcp_packets_total",
        &[
            ("interface", monitor.iface.as_str()),
            ("direction", "ingress"),
            ("flag", "syn"),
        ],
    )
}

/// Until the daemon has seen the real client complete two handshakes.
fn client_handshakes_before_the_flood(monitor: &Monitor) {
    monitor.wait_for_value(
        Series::Handshakes(SERVER, "completed"),
        2.0,
        Duration::from_secs(10),
    );
}

fn config_file(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "hmt-{}-{}-mitigation.toml",
        std::process::id(),
        support::unique()
    ));
    std::fs::write(&path, text).expect("writing the config");
    path
}

#[test]
fn enforce_blocks_the_attacker_and_spares_the_real_client() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let config = config_file(&format!(
        "[mitigation]\nmode = \"enforce\"\nauto_block_ttl_seconds = {AUTO_BLOCK_TTL_SECS}\n"
    ));
    let port = PORT.to_string();
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19931,
        &[
            "--port",
            &port,
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
    );
    let _ = std::fs::remove_file(&config);
    let addr = SocketAddr::from((link.peer_addr, PORT));
    let _service = EchoService::start(&link.peer_ns, addr);
    let client = RealClient::start(&lab.hub, addr);
    // The client has a completed handshake or two before the flood.
    client_handshakes_before_the_flood(&monitor);

    let mut raw = RawClient::new(&lab.hub, link, PORT);
    let attacker = raw.addr.to_string();
    let flood_start = Instant::now();
    let flooder = thread::spawn(move || flood(&mut raw));
    let fired = wait_until(Duration::from_secs(2), || firing(&monitor) == 1.0);
    let fired_after = flood_start.elapsed();
    let blocked = wait_until(Duration::from_secs(3), || {
        by_reason(&monitor, "handshake_xdp_dropped_packets_total", "blocklist") > 0.0
    });
    let flood_took = flooder.join().expect("the flood thread");
    assert!(
        fired,
        "no SynFlood alert within 2 s\n{}",
        monitor.scrape().text
    );
    assert!(
        blocked,
        "the attacker's SYNs never hit the blocklist\n{}",
        monitor.scrape().text
    );

    // The attacker is listed, automatically, with its reason and a TTL.
    let listed = monitor.daemon.block(&["list", "--json"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&format!("\"{attacker}/32\"")), "{listed}");
    assert!(
        listed.contains("\"auto\"") && listed.contains("SynFlood on"),
        "{listed}"
    );

    // The flood's SYNs, all but what the limits let through (per CPU: a
    // burst of 400, then 200 a second), dropped.
    let s = monitor.scrape();
    let dropped: f64 = ["blocklist", "source_rate", "prefix_rate"]
        .iter()
        .map(|r| by_reason(&monitor, "handshake_xdp_dropped_packets_total", r))
        .sum();
    let cpus = thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let admitted_at_most = cpus * (400.0 + 200.0 * flood_took.as_secs_f64().ceil());
    assert!(
        dropped >= f64::from(FLOOD_SYNS) - admitted_at_most,
        "dropped {dropped} of {FLOOD_SYNS} (flood took {flood_took:?})\n{}",
        s.text
    );
    assert_eq!(
        by_reason(
            &monitor,
            "handshake_mitigation_dry_run_drops_total",
            "source_rate"
        ),
        0.0
    );

    // Quiet again: the alert resolves, the block expires on its own.
    let resolved = wait_until(Duration::from_secs(12), || firing(&monitor) == 0.0);
    assert!(resolved, "{}", monitor.scrape().text);
    let expired = wait_until(Duration::from_secs(AUTO_BLOCK_TTL_SECS + 3), || {
        metric(
            &monitor,
            "handshake_blocklist_entries",
            &[("origin", "auto")],
        ) == 0.0
    });
    assert!(expired, "{}", monitor.scrape().text);
    let listed = monitor.daemon.block(&["list"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "no blocks in force\n"
    );
    assert!(
        metric(
            &monitor,
            "handshake_blocklist_changes_total",
            &[("change", "expired")]
        ) >= 1.0
    );

    let (ok, attempts) = client.finish();
    assert!(attempts >= 50, "only {attempts} client attempts");
    // Quiet now (flood over, client stopped): every ingress SYN was judged.
    let s = monitor.scrape();
    let judged = prom::value(
        &s.text,
        "handshake_mitigation_judged_syns_total",
        &[("interface", monitor.iface.as_str())],
    );
    assert_eq!(judged, ingress_syns(&monitor, &s.text), "{}", s.text);
    assert!(
        f64::from(ok) >= 0.99 * f64::from(attempts),
        "the real client succeeded {ok} of {attempts} times"
    );
    assert!(fired_after <= Duration::from_secs(2) + Duration::from_millis(200));
}

#[test]
fn dry_run_counts_the_same_flood_and_drops_nothing() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let port = PORT.to_string();
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19932,
        &["--port", &port, "--mitigation", "dry-run"],
    );
    let addr = SocketAddr::from((link.peer_addr, PORT));
    let _service = EchoService::start(&link.peer_ns, addr);
    let client = RealClient::start(&lab.hub, addr);
    client_handshakes_before_the_flood(&monitor);
    let mut raw = RawClient::new(&lab.hub, link, PORT);
    flood(&mut raw);
    let fired = wait_until(Duration::from_secs(3), || firing(&monitor) == 1.0);
    assert!(fired, "{}", monitor.scrape().text);
    // The offender is still listed (and counted), but nothing is dropped.
    let would = wait_until(Duration::from_secs(3), || {
        by_reason(
            &monitor,
            "handshake_mitigation_dry_run_drops_total",
            "blocklist",
        ) > 0.0
    });
    assert!(would, "{}", monitor.scrape().text);
    let s = monitor.scrape();
    for reason in ["blocklist", "source_rate", "prefix_rate"] {
        assert_eq!(
            by_reason(&monitor, "handshake_xdp_dropped_packets_total", reason),
            0.0,
            "{reason}\n{}",
            s.text
        );
    }
    assert!(
        by_reason(
            &monitor,
            "handshake_mitigation_dry_run_drops_total",
            "source_rate"
        ) > 0.0
    );
    // Every flood SYN reached the stack: each one started a handshake.
    let syns = prom::value(
        &s.text,
        "handshake_tcp_port_syns_total",
        &[
            ("interface", monitor.iface.as_str()),
            ("role", "server"),
            ("port", &port),
            ("port_class", "registered"),
        ],
    );
    assert!(syns.unwrap_or(0.0) >= f64::from(FLOOD_SYNS), "{}", s.text);
    let (ok, attempts) = client.finish();
    assert!(
        f64::from(ok) >= 0.99 * f64::from(attempts),
        "the real client succeeded {ok} of {attempts} times"
    );
}

#[test]
fn a_burst_of_real_clients_in_enforce_is_spared() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let port = PORT.to_string();
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19933,
        &["--port", &port, "--mitigation", "enforce"],
    );
    let addr = SocketAddr::from((link.peer_addr, PORT));
    let _service = EchoService::start(&link.peer_ns, addr);
    // 1,000 connections from one source as fast as they complete: past the
    // per-source burst (400), so the protection of sources that completed
    // handshakes is what lets the rest through.
    let failures = in_netns(&lab.hub, || {
        (0..1000).filter(|_| !cookies::one_exchange(addr)).count()
    });
    assert_eq!(failures, 0);
    // The flood detector has judged the burst (and the mitigation acted
    // on its verdict in the same sweep).
    monitor.wait_flood_evaluations(&port);
    let s = monitor.scrape();
    for reason in ["blocklist", "source_rate", "prefix_rate"] {
        assert_eq!(
            by_reason(&monitor, "handshake_xdp_dropped_packets_total", reason),
            0.0,
            "{}",
            s.text
        );
    }
    assert_eq!(firing(&monitor), 0.0, "{}", s.text);
    assert_eq!(
        metric(
            &monitor,
            "handshake_blocklist_entries",
            &[("origin", "auto")]
        ),
        0.0
    );
}
