//! The replay agrees with the live daemon: real lab traffic (curl, openssl
//! with and without a HelloRetryRequest, a closed port, half-open SYNs, a
//! bounded spoofed flood, a ClientHello over several segments at a small
//! MTU) seen by the daemon on the server's veth while tcpdump captures the
//! same interface; then the capture replayed. Counters, handshake records
//! and hello events must be the same, field by field, but for what depends
//! on the clock (times, latencies).
//!
//! Needs root (namespaces, BPF); run with `cargo xtask test`.

use crate::support;

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use support::{
    cmd,
    deploy::TempDir,
    handshakes::Monitor,
    lab::NetnsLab,
    netns::in_netns,
    openssl::{Cert, TlsServer, s_client},
    replay::{Tcpdump, read_events, read_events_so_far, replay, samples},
    spoofed::SpoofedSyns,
    wait_until,
};

const HTTP_PORT: u16 = 8080;
const TLS_PORT: u16 = 8443;
const HRR_PORT: u16 = 8444;
const CLOSED_PORT: u16 = 8099;
/// The spoofed flood: its size and the seed of its sources.
const FLOOD_SYNS: u32 = 300;
const FLOOD_SEED: u64 = 0x5eed_0300;
/// Short, so the half-open SYNs time out within the test.
const HANDSHAKE_TIMEOUT: &str = "2";

/// Families compared sample by sample: everything the programs count about
/// TCP and TLS, and the records.
const COMPARED: &[&str] = &[
    "handshake_tcp_packets_total",
    "handshake_tcp_handshakes_total",
    "handshake_tcp_half_open",
    "handshake_tcp_syn_retransmits_total",
    "handshake_tcp_synack_retransmits_total",
    "handshake_tcp_handshake_anomalies_total",
    "handshake_tcp_closes_total",
    "handshake_tcp_untracked_segments_total",
    "handshake_tcp_port_handshakes_total",
    "handshake_tcp_port_syns_total",
    "handshake_half_open_table_starts_total",
    "handshake_half_open_table_displaced_total",
    "handshake_flow_table_inserts_total",
    "handshake_tls_client_hellos_total",
    "handshake_tls_server_hellos_total",
    "handshake_tls_client_hello_segments",
    "handshake_tls_alerts_total",
    "handshake_tls_parse_errors_total",
    "handshake_tls_capture_events_total",
    "handshake_mitigation_judged_syns_total",
    "handshake_mitigation_dry_run_drops_total",
];

/// Record and hello fields that depend on the clock.
const CLOCK_FIELDS: &[&str] = &[
    "ts",
    "established_ts",
    "syn_to_synack_us",
    "synack_to_ack_us",
    "syn_to_rst_us",
    "duration_ms",
    "first_syn_ts",
    "last_syn_ts",
    "ack_to_client_hello_us",
    "client_hello_to_server_hello_us",
];

/// `python3 -m http.server` in a namespace, killed on drop.
struct HttpServer(Child);

impl HttpServer {
    fn start(ns: &str, addr: &str) -> Self {
        let port = HTTP_PORT.to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-m", "http.server", &port])
            .args(["--bind", addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let server = Self(child);
        let at: std::net::SocketAddr = format!("{addr}:{port}").parse().expect("address");
        let listening = wait_until(Duration::from_secs(10), || {
            in_netns(ns, || std::net::TcpStream::connect(at)).is_ok()
        });
        assert!(listening, "python3 -m http.server never listened on {at}");
        server
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(ns: &str, url: &str) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-sk",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
        ])
        .arg(url)
        .output()
        .expect("run curl");
    assert!(out.status.code().is_some(), "{out:?}");
}

fn hping3(ns: &str, target: &str, extra: &[&str]) {
    let port = HTTP_PORT.to_string();
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "timeout", "10", "hping3", "-q", "-S", "-p", &port,
        ])
        .args(extra)
        .arg(target)
        .output()
        .expect("run hping3");
    // hping3 exits 1 when no reply came back, which is the point here.
    assert!(out.status.code().is_some(), "{out:?}");
}

/// An event without the fields that depend on the clock (nested hellos
/// of a record included), as comparable text.
fn timeless(event: &Value) -> String {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for field in CLOCK_FIELDS {
                    map.remove(*field);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = event.clone();
    strip(&mut v);
    v.to_string()
}

/// Timed-out handshakes in an events log, single lines and aggregates.
fn timed_out_in(events: &[Value]) -> u64 {
    events
        .iter()
        .filter(|e| e["outcome"] == "timed_out")
        .map(|e| e["count"].as_u64().unwrap_or(1))
        .sum()
}

/// The events of the given types, clock fields removed, counted by text;
/// timeouts are compared by number (see [`timed_out_in`]).
fn multiset(events: &[Value], types: &[&str]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        if types.iter().any(|t| e["type"] == *t) && e["outcome"] != "timed_out" {
            *out.entry(timeless(e)).or_default() += 1;
        }
    }
    out
}

fn set_mtu(ns: &str, iface: &str, mtu: &str) {
    cmd::ip(&["-n", ns, "link", "set", "dev", iface, "mtu", mtu]);
}

/// One segment per packet on both ends. TCP hands TC egress GSO
/// super-packets and the stack cuts them into segments after it, where
/// tcpdump sees them; GRO merges received segments after XDP, before
/// tcpdump. Offloads off and a GSO size below any MSS here make every
/// hook and the capture see the same packets (docs/replay.md).
fn one_segment_per_packet(ns: &str, iface: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ethtool", "-K", iface])
        .args(["tso", "off", "gso", "off", "gro", "off"])
        .output()
        .expect("run ethtool");
    assert!(out.status.success(), "ethtool: {out:?}");
    cmd::ip(&["-n", ns, "link", "set", "dev", iface, "gso_max_size", "256"]);
}

/// Everything the lab does while both the daemon and tcpdump watch.
fn lab_traffic(lab: &NetnsLab, cert: &Cert) {
    let link = lab.link();
    let (hub, server) = (lab.hub.as_str(), link.peer_addr.to_string());
    let _http = HttpServer::start(&link.peer_ns, &server);
    curl(hub, &format!("http://{server}:{HTTP_PORT}/"));
    curl(hub, &format!("http://{server}:{HTTP_PORT}/missing"));
    // A closed port: the server's RST.
    curl(hub, &format!("http://{server}:{CLOSED_PORT}/"));
    {
        let _tls = TlsServer::start(&link.peer_ns, cert, TLS_PORT, 3, &["-www"]);
        let resolve = format!("example.test:{TLS_PORT}:{server}");
        let out = Command::new("ip")
            .args(["netns", "exec", hub, "curl", "-sk", "--max-time", "10"])
            .args(["--resolve", &resolve, "-o", "/dev/null"])
            .arg(format!("https://example.test:{TLS_PORT}/"))
            .output()
            .expect("run curl");
        assert!(out.status.success(), "curl over TLS: {out:?}");
        s_client(
            hub,
            &server,
            TLS_PORT,
            &["-tls1_2", "-servername", "v12.test"],
        );
        s_client(
            hub,
            &server,
            TLS_PORT,
            &["-tls1_3", "-servername", "v13.test"],
        );
    }
    {
        // The server wants X25519, the client's first key share is P-256.
        let _hrr = TlsServer::start(&link.peer_ns, cert, HRR_PORT, 1, &["-groups", "X25519"]);
        let out = s_client(
            hub,
            &server,
            HRR_PORT,
            &["-tls1_3", "-groups", "P-256:X25519"],
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("TLSv1.3"),
            "HRR handshake: {out:?}"
        );
    }
    // Half-open: the hub's own SYNs, from fixed ports, whose SYN-ACKs its
    // kernel resets...
    hping3(hub, &server, &["-c", "3", "-i", "u20000", "-s", "41000"]);
    // A ClientHello over several segments.
    set_mtu(hub, &link.hub_if, "300");
    set_mtu(&link.peer_ns, &link.peer_if, "300");
    {
        let _tls = TlsServer::start(&link.peer_ns, cert, TLS_PORT, 1, &[]);
        let sni = format!("{}.example.test", "a".repeat(60));
        s_client(hub, &server, TLS_PORT, &["-tls1_3", "-servername", &sni]);
    }
    // ...and last, so that no other handshake is half-open beside it, a
    // bounded spoofed flood from seeded sources, answered into nowhere, all
    // in CPU 0's partition of the half-open table as in the replay: where
    // two of its tuples share a slot, live and replay displace the same one.
    let sent = SpoofedSyns::new(hub, link, HTTP_PORT, FLOOD_SEED).send_from_cpu0(FLOOD_SYNS, 10);
    assert_eq!(sent, FLOOD_SYNS, "the spoofed SYNs");
}

#[test]
fn the_replay_of_a_capture_agrees_with_the_live_daemon() {
    let dir = TempDir::new("replay-live");
    let lab = NetnsLab::pair();
    let link = lab.link().clone();
    one_segment_per_packet(&lab.hub, &link.hub_if);
    one_segment_per_packet(&link.peer_ns, &link.peer_if);
    let cert = Cert::new();
    let live_events = dir.path().join("live-events.jsonl");
    let events_arg = live_events.to_str().expect("utf-8").to_string();
    let tls_port = TLS_PORT.to_string();
    let settings = [
        "--handshake-timeout",
        HANDSHAKE_TIMEOUT,
        "--port",
        &tls_port,
    ];
    let mut live_args = vec!["--events", events_arg.as_str()];
    live_args.extend_from_slice(&settings);
    let mut monitor = Monitor::start(&link.peer_ns, &link.peer_if, 19871, &live_args);
    let capture = dir.path().join("capture.pcap");
    let dump = Tcpdump::start(&link.peer_ns, &link.peer_if, &capture);

    lab_traffic(&lab, &cert);
    // The half-open handshakes time out and the sweep reports them (each
    // flood SYN timed out or displaced by another in its slot), and every
    // connection has its records: the hellos joined, the closes written.
    let server_handshakes = |metrics: &str, result: &str| {
        let labels = [
            ("interface", link.peer_if.as_str()),
            ("role", "server"),
            ("result", result),
        ];
        support::prom::value(metrics, "handshake_tcp_handshakes_total", &labels).unwrap_or(0.0)
    };
    let displaced = |metrics: &str| {
        support::prom::value(metrics, "handshake_half_open_table_displaced_total", &[])
            .unwrap_or(0.0)
    };
    let settled = wait_until(Duration::from_secs(20), || {
        let m = monitor.daemon.scrape();
        let events = read_events_so_far(&live_events);
        let lines = |t: &str| events.iter().filter(|e| e["type"] == t).count();
        server_handshakes(&m, "timed_out") + displaced(&m) == f64::from(FLOOD_SYNS)
            && lines("tcp_handshake") >= 11
            && lines("tcp_close") >= 7
            && timed_out_in(&events) as f64 == server_handshakes(&m, "timed_out")
    });
    dump.stop();
    let live_metrics = monitor.daemon.scrape();
    assert!(
        settled,
        "the lab's handshakes did not settle:\n{live_metrics}"
    );
    monitor.daemon.terminate();
    let live = read_events(&live_events);

    let capture_path: &Path = &capture;
    let mut replay_args = vec!["--iface-name", link.peer_if.as_str()];
    replay_args.extend_from_slice(&settings);
    let replayed = replay(dir.path(), &[capture_path], &replay_args);
    assert!(
        replayed.status.success(),
        "replay failed: {:?}\n{}",
        replayed.status,
        replayed.stderr
    );

    // Every captured frame ran, through one program or the other.
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&capture)
        .output()
        .expect("tcpdump -r");
    let captured = String::from_utf8_lossy(&out.stdout).lines().count() as f64;
    let ran: f64 = ["xdp_pass", "tc_unspec"]
        .iter()
        .map(|r| {
            support::prom::value(
                &replayed.metrics,
                "handshake_replay_frames_total",
                &[("result", r)],
            )
            .unwrap_or(0.0)
        })
        .sum();
    assert!(captured > 400.0, "{captured} frames captured");
    assert_eq!(ran, captured, "{}", replayed.stderr);

    // The traffic did what it was meant to: 7 connections (2 HTTP, 1
    // HTTPS, 2 s_client, the HRR, the small MTU), 4 resets (the closed
    // port, hping3's own 3), the spoofed SYNs timed out but for those
    // another one displaced from their slot.
    let flood_timed_out = f64::from(FLOOD_SYNS) - displaced(&live_metrics);
    for (result, count) in [
        ("completed", 7.0),
        ("reset", 4.0),
        ("timed_out", flood_timed_out),
    ] {
        let labels = [
            ("interface", link.peer_if.as_str()),
            ("role", "server"),
            ("result", result),
        ];
        let live = support::prom::value(&live_metrics, "handshake_tcp_handshakes_total", &labels);
        assert_eq!(live, Some(count), "{result}:\n{live_metrics}");
    }
    let rej = live.iter().filter(|e| e["conn_state"] == "REJ").count();
    assert_eq!(rej, 1, "one closed-port connection");
    let hrr = live
        .iter()
        .filter(|e| e["type"] == "tls_server_hello" && e["hello_retry_request"] == true)
        .count();
    assert_eq!(hrr, 1, "one HelloRetryRequest");
    assert!(
        live.iter()
            .any(|e| e["type"] == "tls_client_hello" && e["segments"].as_u64() >= Some(2)),
        "a ClientHello over several segments"
    );
    assert!(
        live.iter().any(|e| e["type"] == "tcp_handshake_aggregate"),
        "the spoofed flood's timeouts aggregated"
    );

    let live_samples = samples(&live_metrics, COMPARED);
    let replay_samples = samples(&replayed.metrics, COMPARED);
    assert!(live_samples.len() > 50, "{live_samples:#?}");
    let differing: Vec<String> = live_samples
        .keys()
        .chain(replay_samples.keys())
        .filter(|k| live_samples.get(*k) != replay_samples.get(*k))
        .map(|k| {
            format!(
                "{k}: live {:?}, replay {:?}",
                live_samples.get(k),
                replay_samples.get(k)
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "metrics differ:\n{}",
        differing.join("\n")
    );
    // Records: the same, but for how many timeouts went singly or into
    // aggregate lines: that depends on where each sweep's second falls (the
    // live daemon's from its start, the replay's from the first frame).
    let records = |metrics: &str, result: &str| {
        support::prom::value(metrics, "handshake_records_total", &[("result", result)])
            .unwrap_or(0.0)
    };
    let written = |metrics: &str| records(metrics, "emitted") + records(metrics, "aggregated");
    assert_eq!(
        written(&live_metrics),
        written(&replayed.metrics),
        "records written"
    );
    for result in [
        "over_budget",
        "ring_full",
        "timeout_overflow",
        "timeout_unseen",
    ] {
        assert_eq!(
            records(&live_metrics, result),
            records(&replayed.metrics, result),
            "records {result}"
        );
    }

    // Timeouts: the same in number, whether singly or in aggregate lines;
    // the other records and the hellos line by line.
    assert_eq!(timed_out_in(&live) as f64, flood_timed_out);
    assert_eq!(timed_out_in(&replayed.events) as f64, flood_timed_out);
    let types = [
        "tcp_handshake",
        "tcp_close",
        "tls_client_hello",
        "tls_server_hello",
    ];
    let (live_set, replay_set) = (multiset(&live, &types), multiset(&replayed.events, &types));
    let only_live: Vec<&String> = live_set
        .iter()
        .filter(|(k, n)| replay_set.get(*k) != Some(n))
        .map(|(k, _)| k)
        .collect();
    let only_replay: Vec<&String> = replay_set
        .iter()
        .filter(|(k, n)| live_set.get(*k) != Some(n))
        .map(|(k, _)| k)
        .collect();
    assert!(
        only_live.is_empty() && only_replay.is_empty(),
        "events differ\nlive only:\n{only_live:#?}\nreplay only:\n{only_replay:#?}"
    );
    assert!(live_set.values().sum::<usize>() >= 30, "{live_set:#?}");
}
