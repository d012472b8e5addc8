//! Limits under pressure: each bounded resource pushed past its cap through
//! the loaded programs (BPF_PROG_TEST_RUN) and the daemon's own library
//! code, and read back through the daemon's real metric collectors, so
//! each test checks both that the degradation is the documented one and
//! that it is visible in `/metrics` (docs/robustness.md).
//!
//! - flow tables full: see `testrun_tables.rs`;
//! - TLS ring buffer full: events are lost, counted as
//!   `handshake_tls_capture_events_total{result="ringbuf_full"}`, and
//!   capture resumes once the daemon drains;
//! - reassembly full: past 1,024 pending records the oldest go, counted as
//!   `handshake_tls_reassembly_total{result="evicted"}`;
//! - label cardinality: more than 29 named ports refused at start, the
//!   automatic top ports capped at the free slots, TLS version, cipher and
//!   alert labels bounded by their name tables plus `other`.
//!
//! Needs root: run through `cargo xtask test`.

use crate::support;

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::programs::{TestRun as _, TestRunOptions};
use monitor::{
    events::{EventSink, EventStats},
    flow_metrics::FlowCollector,
    flows::{FlowSettings, FlowTracker},
    ports::PortSettings,
    tls_capture::{
        CaptureMaps, Pipeline,
        metrics::{CaptureCollector, TlsMetrics},
        reassembly::{Assembled, MAX_PENDING, PENDING_TIMEOUT_NS, Reassembler, ReassemblyStats},
        split_chunk,
    },
};
use monitor_common::{
    capture::{ChunkHeader, chunk_kind},
    classify::tcp_flags::{ACK, PSH, SYN},
    frames::TcpFrame,
    ports::NAMED_PORT_SLOTS,
    tls::builder::{ClientHelloBuilder, ServerHelloBuilder},
};
use prometheus::{Registry, TextEncoder};
use support::{
    attach::assert_nothing_attached,
    daemon::{BINARY, run_to_exit},
    lab::NetnsLab,
    prom,
    testrun::{Harness, XDP_PASS},
};

/// The ring buffer's size (`TLS_EVENTS` in monitor-ebpf).
const RING_BYTES: usize = 4 << 20;

fn scrape(registry: &Registry) -> String {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encode metrics")
}

fn xdp(h: &mut Harness, frame: &[u8]) {
    let opts = TestRunOptions {
        data_in: Some(frame),
        ..Default::default()
    };
    let r = h.programs.xdp().unwrap().test_run(opts).expect("test run");
    assert_eq!(r.return_value, XDP_PASS);
}

/// A SYN from its own source port (so its own flow) to `dst_port`.
fn syn(src_port: u16, dst_port: u16) -> Vec<u8> {
    let mut f = TcpFrame::v4(SYN).with_syn_options();
    f.src_port = src_port;
    f.dst_port = dst_port;
    f.seq = u32::from(src_port) * 7919;
    f.build()
}

fn flow_settings(table_size: u32) -> FlowSettings {
    FlowSettings {
        table_size,
        // The budget is not what these tests push.
        inserts_per_sec_per_cpu: 1_000_000,
        insert_burst: 1_000_000,
        ..FlowSettings::default()
    }
}

/// Flow tracking and its collector over the harness's programs.
fn flow_metrics(h: &mut Harness, flows: FlowSettings, ports: PortSettings) -> Registry {
    let tracker = FlowTracker::new(&mut h.programs, flows, ports, vec![h.slot]).expect("tracker");
    let collector = FlowCollector::new(Arc::new(Mutex::new(tracker)), vec![("lo".into(), h.slot)]);
    let registry = Registry::new();
    registry.register(Box::new(collector)).expect("register");
    registry
}

/// The programs with TLS capture's maps and collector, and a budget that
/// lets every hello through.
struct Capture {
    h: Harness,
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    stats: Arc<Mutex<ReassemblyStats>>,
    registry: Registry,
}

impl Capture {
    fn new() -> Self {
        let mut h = Harness::new();
        h.programs
            .set_tls_budget(1_000_000, 100_000)
            .expect("tls budget");
        let maps = CaptureMaps::take(&mut h.programs).expect("capture maps");
        let stats = Arc::new(Mutex::new(ReassemblyStats::default()));
        let events = Arc::new(EventStats::default());
        let collector = CaptureCollector::new(maps.counters, Arc::clone(&stats), events);
        let registry = Registry::new();
        registry.register(Box::new(collector)).expect("register");
        Self {
            h,
            ring: maps.ring,
            stats,
            registry,
        }
    }

    /// A data segment from client port `src_port` carrying `payload`.
    fn segment(&mut self, src_port: u16, payload: &[u8]) {
        let mut f = TcpFrame::v4(ACK | PSH).with_payload(payload);
        (f.src_port, f.seq, f.ack) = (src_port, 5_000, 1);
        xdp(&mut self.h, &f.build());
    }

    /// Drains the ring through a reassembler whose counts the collector
    /// reports; returns the records it completed.
    fn drain(&mut self, r: &mut Reassembler) -> Vec<Assembled> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            let (header, data) = split_chunk(&item).expect("a whole chunk");
            out.extend(r.push(header, data));
        }
        *self.stats.lock().unwrap() = r.stats;
        out
    }

    fn capture(&self, result: &str) -> f64 {
        let text = scrape(&self.registry);
        prom::expect(
            &text,
            "handshake_tls_capture_events_total",
            &[("result", result)],
        )
    }

    fn reassembly(&self, result: &str) -> f64 {
        let text = scrape(&self.registry);
        prom::expect(
            &text,
            "handshake_tls_reassembly_total",
            &[("result", result)],
        )
    }
}

#[test]
fn a_full_ring_buffer_loses_events_visibly_and_recovers_when_drained() {
    let mut c = Capture::new();
    // ~2.9 KB hellos (a big post-quantum key share): ~1,400 fill the ring.
    let hello = ClientHelloBuilder::new()
        .sni("fill.example.test")
        .key_shares(&[(0x11ec, 2800)])
        .record();
    let per_event = (8 + 64 + hello.len()).next_multiple_of(8);
    let fits = RING_BYTES / per_event;
    let sent = fits + 300;
    for i in 0..sent {
        c.segment(20_000 + i as u16, &hello);
    }
    let (hellos, full) = (c.capture("hello"), c.capture("ringbuf_full"));
    assert_eq!(
        hellos + full,
        sent as f64,
        "every hello sent or counted lost"
    );
    assert!(full >= 300.0, "{full} lost of {sent} (about {fits} fit)");
    assert!(hellos >= (fits - 10) as f64, "{hellos} captured of {fits}");

    // Nothing captured was damaged; draining frees the ring.
    let mut r = Reassembler::new();
    let done = c.drain(&mut r);
    assert_eq!(done.len() as f64, hellos);
    assert!(
        done.iter()
            .all(|d| matches!(d, Assembled::Hello { bytes, .. } if *bytes == hello))
    );
    c.segment(30_000, &hello);
    assert_eq!(c.capture("hello"), hellos + 1.0);
    assert_eq!(c.capture("ringbuf_full"), full);
    assert_eq!(c.drain(&mut r).len(), 1);
    assert_eq!(c.reassembly("completed"), hellos + 1.0);
}

#[test]
fn past_1024_pending_records_the_oldest_are_evicted_visibly() {
    const EXTRA: usize = 76;
    let mut c = Capture::new();
    // First segments of ~1.3 KB hellos whose rest never comes.
    let hello = ClientHelloBuilder::new()
        .sni("pending.example.test")
        .key_shares(&[(0x11ec, 1216)])
        .record();
    assert!(hello.len() > 1_000, "{}", hello.len());
    let opened = MAX_PENDING + EXTRA;
    for i in 0..opened {
        c.segment(20_000 + i as u16, &hello[..200]);
    }
    assert_eq!(c.capture("hello"), opened as f64);
    assert_eq!(c.capture("ringbuf_full"), 0.0);
    let mut r = Reassembler::new();
    assert!(c.drain(&mut r).is_empty());
    assert_eq!(r.pending(), MAX_PENDING);
    assert_eq!(c.reassembly("evicted"), EXTRA as f64);
    assert_eq!(c.reassembly("completed"), 0.0);
    // The rest expire after 5 s of the oldest's first chunk.
    r.expire(monitor::clock::monotonic_ns() + PENDING_TIMEOUT_NS + 1);
    c.drain(&mut r);
    assert_eq!(r.pending(), 0);
    assert_eq!(c.reassembly("expired"), MAX_PENDING as f64);
}

#[test]
fn more_than_29_named_ports_are_refused_at_start() {
    support::require_root();
    let lab = NetnsLab::pair();
    let iface = lab.link().hub_if.as_str();
    let ports: Vec<String> = (0..=NAMED_PORT_SLOTS)
        .map(|i| (8000 + i).to_string())
        .collect();
    let mut args = vec!["run", "--iface", iface, "--metrics-addr", "127.0.0.1:19891"];
    for port in &ports {
        args.extend(["--port", port.as_str()]);
    }
    let (status, stderr) = run_to_exit(&lab.hub, &[], Path::new(BINARY), &args);
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    assert!(
        stderr
            .contains("30 ports given with --port; at most 29 ports can have series of their own"),
        "{stderr}"
    );
    assert_nothing_attached(&lab.hub, iface);
    // And the automatic set cannot be asked for more than the slots.
    let args = ["run", "--iface", iface, "--top-ports", "30"];
    let (status, stderr) = run_to_exit(&lab.hub, &[], Path::new(BINARY), &args);
    assert_eq!(status.code(), Some(2), "{status}; stderr:\n{stderr}");
    assert!(stderr.contains("--top-ports"), "{stderr}");
    assert_nothing_attached(&lab.hub, iface);
}

/// `port` label values of the server-role SYN series, with their values.
fn port_syns(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("handshake_tcp_port_syns_total{") else {
            continue;
        };
        if !rest.contains("role=\"server\"") {
            continue;
        }
        let port = rest
            .split("port=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("port label")
            .to_owned();
        let class = rest
            .split("port_class=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("class label");
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        let key = if port == "other" {
            format!("other/{class}")
        } else {
            port
        };
        out.insert(key, value);
    }
    out
}

#[test]
fn automatic_top_ports_are_capped_at_the_free_slots() {
    const CONFIGURED: [u16; 5] = [443, 8443, 9000, 9001, 9002];
    const BUSY: u16 = 60;
    let flows = flow_settings(65_536);
    let mut h = Harness::with(&flows);
    let ports = PortSettings {
        configured: CONFIGURED.to_vec(),
        top_n: 29,
        rebalance_interval: Duration::from_millis(1),
    };
    let registry = flow_metrics(&mut h, flows, ports);
    let mut src = 10_000u16;
    let mut send = |h: &mut Harness, dst: u16| {
        src += 1;
        xdp(h, &syn(src, dst));
    };
    // 60 busy ports with 1-7 SYNs each, one SYN to each configured port.
    let mut sent = 0.0;
    for i in 0..BUSY {
        for _ in 0..=(i % 7) {
            send(&mut h, 20_000 + i);
            sent += 1.0;
        }
    }
    for port in CONFIGURED {
        send(&mut h, port);
        sent += 1.0;
    }
    std::thread::sleep(Duration::from_millis(5));
    // The scrape sweeps the (small) table, which re-chooses the top ports.
    let first = port_syns(&scrape(&registry));
    let named: BTreeSet<&String> = first.keys().filter(|k| !k.starts_with("other")).collect();
    assert_eq!(named.len(), 29, "{first:?}");
    for port in CONFIGURED {
        assert_eq!(first[&port.to_string()], 1.0, "{port}: {first:?}");
    }
    assert_eq!(first.values().sum::<f64>(), sent, "{first:?}");
    assert_eq!(first.len(), 29 + 3, "{first:?}");

    // One more SYN to every port: the automatic ones count it in their
    // own series (they count from when they were named), the others in
    // `other`; nothing new becomes a label.
    for i in 0..BUSY {
        send(&mut h, 20_000 + i);
        sent += 1.0;
    }
    let second = port_syns(&scrape(&registry));
    let named_again: BTreeSet<&String> =
        second.keys().filter(|k| !k.starts_with("other")).collect();
    assert_eq!(named_again, named);
    // Configured ports: their SYN of the first round; automatic ones:
    // this round's.
    for port in &named {
        assert_eq!(second[*port], 1.0, "{port}: {second:?}");
    }
    assert_eq!(second.values().sum::<f64>(), sent, "{second:?}");
}

#[test]
fn tls_label_values_are_bounded() {
    let registry = Registry::new();
    let metrics = TlsMetrics::register(&registry).expect("tls metrics");
    let interfaces = HashMap::from([(0u8, "lo".to_owned())]);
    let mut pipeline = Pipeline::new(metrics, EventSink::disabled(), interfaces);
    let header = |kind: u8, port: u16| ChunkHeader {
        ts_ns: 1,
        src_port: port,
        dst_port: 443,
        kind,
        ..ChunkHeader::default()
    };
    let hello = |bytes: Vec<u8>, port: u16| Assembled::Hello {
        first: header(chunk_kind::HELLO_START, port),
        bytes,
        segments: 1,
    };
    // Every cipher suite value, a spread of versions, every alert
    // description and level, and 1,000 distinct server names.
    let versions = [
        0x0300u16, 0x0301, 0x0302, 0x0303, 0x0304, 0x0305, 0x7f1c, 0xffff,
    ];
    let mut n = 0u16;
    for cipher in (0..=u16::MAX).step_by(16) {
        let version = versions[usize::from(cipher / 16) % versions.len()];
        let record = ServerHelloBuilder::new()
            .cipher(cipher)
            .selected_version(version)
            .record();
        n = n.wrapping_add(1);
        pipeline.handle(hello(record, n));
    }
    for i in 0..1_000u32 {
        let record = ClientHelloBuilder::new()
            .sni(&format!("host-{i}.example.test"))
            .supported_versions(&[versions[i as usize % versions.len()]])
            .record();
        pipeline.handle(hello(record, 40_000 + i as u16));
    }
    for description in 0..=u8::MAX {
        for level in [1u8, 2, 3] {
            pipeline.handle(Assembled::Alert {
                header: header(chunk_kind::ALERT, 1),
                level,
                description,
            });
        }
    }
    let text = scrape(&registry);
    let values = |metric: &str, label: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(metric)?.strip_prefix('{'))
            .filter_map(|l| {
                let v = l.split(&format!("{label}=\"")).nth(1)?;
                Some(v.split('"').next()?.to_owned())
            })
            .collect()
    };
    let ciphers = values("handshake_tls_server_hellos_total", "cipher");
    let known: BTreeSet<String> = (0..=u16::MAX)
        .map(|c| monitor_common::tls::cipher_name(c).to_owned())
        .collect();
    assert!(ciphers.contains("other"), "{ciphers:?}");
    assert!(ciphers.is_subset(&known), "{ciphers:?}");
    assert!(
        ciphers.len() <= known.len() && known.len() < 64,
        "{}",
        known.len()
    );
    let version_labels = values("handshake_tls_client_hellos_total", "version");
    let allowed: BTreeSet<String> = ["ssl3", "tls1.0", "tls1.1", "tls1.2", "tls1.3", "other"]
        .map(String::from)
        .into();
    assert!(version_labels.is_subset(&allowed), "{version_labels:?}");
    assert!(version_labels.contains("other"), "{version_labels:?}");
    let levels = values("handshake_tls_alerts_total", "level");
    assert_eq!(
        levels,
        ["fatal", "other", "warning"].map(String::from).into()
    );
    let descriptions = values("handshake_tls_alerts_total", "description");
    let named: BTreeSet<String> = (0..=u8::MAX)
        .map(|d| monitor_common::tls::description_name(d).to_owned())
        .collect();
    assert_eq!(descriptions, named);
    assert!(descriptions.len() < 40, "{}", descriptions.len());
    // No server name, and no number beyond the bounded sets, as a label.
    assert!(!text.contains("example.test"), "SNI leaked into labels");
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series < 1_000, "{series} series");
    let sum: f64 = text
        .lines()
        .filter(|l| l.starts_with("handshake_tls_server_hellos_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(sum, f64::from(n));
}
