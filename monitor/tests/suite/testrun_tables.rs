//! The flow tables pushed past their size through the loaded programs
//! (BPF_PROG_TEST_RUN), read back through the daemon's real collector:
//! a full half-open table hands slots to new SYNs and counts the
//! handshakes it displaced; a full flow table evicts connections and
//! counts the evictions; neither loses a count.
//!
//! Needs root: run through `cargo xtask test`.

use std::sync::{Arc, Mutex};

use monitor::{
    flow_metrics::FlowCollector,
    flows::{FlowSettings, FlowTracker},
    ports::PortSettings,
};
use monitor_common::{
    classify::tcp_flags::{ACK, SYN},
    counters::Direction,
    frames::{Ip, TcpFrame},
};
use prometheus::{Registry, TextEncoder};

use crate::support::{
    prom,
    testrun::{Harness, TC_ACT_UNSPEC, XDP_PASS},
};

/// A small table: 64 slots per CPU for the half-open table.
const TABLE: u32 = 128;

fn settings() -> FlowSettings {
    FlowSettings {
        table_size: TABLE,
        // The budget is not what these tests push.
        inserts_per_sec_per_cpu: 1_000_000,
        insert_burst: 1_000_000,
        ..FlowSettings::default()
    }
}

fn registry(h: &mut Harness) -> Registry {
    let tracker = FlowTracker::new(
        &mut h.programs,
        settings(),
        PortSettings::default(),
        vec![h.slot],
    )
    .expect("tracker");
    let collector = FlowCollector::new(Arc::new(Mutex::new(tracker)), vec![("lo".into(), h.slot)]);
    let registry = Registry::new();
    registry.register(Box::new(collector)).expect("register");
    registry
}

fn scrape(registry: &Registry) -> String {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encode metrics")
}

/// A segment of client:`port` -> server:443 (or back, `to_server` false).
fn segment(port: u16, to_server: bool, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let mut f = TcpFrame::v4(flags).with_syn_options();
    (f.src_port, f.dst_port) = if to_server { (port, 443) } else { (443, port) };
    if !to_server && let Ip::V4 { src, dst, .. } = &mut f.ip {
        std::mem::swap(src, dst);
    }
    (f.seq, f.ack) = (seq, ack);
    f.build()
}

fn isn(port: u16) -> u32 {
    u32::from(port) * 7919
}

#[test]
fn a_full_half_open_table_hands_slots_to_new_syns_and_counts_the_displaced() {
    const SYNS: u16 = 1_000;
    let mut h = Harness::with(&settings());
    let registry = registry(&mut h);
    for port in 10_000..10_000 + SYNS {
        let verdict = h.run(Direction::Ingress, &segment(port, true, SYN, isn(port), 0));
        assert_eq!(verdict, Ok(XDP_PASS));
    }
    let text = scrape(&registry);
    let value = |name: &str, labels: &[(&str, &str)]| prom::expect(&text, name, labels);
    let slots = value("handshake_half_open_table_slots", &[]);
    let partitions = aya::util::nr_cpus().expect("cpus") as f64;
    assert_eq!(slots, 64.0 * partitions);
    assert_eq!(
        value("handshake_half_open_table_starts_total", &[]),
        f64::from(SYNS)
    );
    for reason in ["budget", "error"] {
        let failures = value(
            "handshake_flow_table_insert_failures_total",
            &[("reason", reason)],
        );
        assert_eq!(failures, 0.0, "{reason}");
    }
    let used = value("handshake_half_open_table_used", &[]);
    assert!(used > 0.0 && used <= slots, "{used}\n{text}");
    // Nothing completed, reset or timed out: every handshake is either in
    // its slot or was displaced from it.
    assert_eq!(
        value("handshake_half_open_table_displaced_total", &[]),
        f64::from(SYNS) - used,
        "{text}"
    );
    let server = [("interface", "lo"), ("role", "server")];
    assert_eq!(value("handshake_tcp_half_open", &server), used);
    let timed_out = [
        ("interface", "lo"),
        ("role", "server"),
        ("result", "timed_out"),
    ];
    assert_eq!(value("handshake_tcp_handshakes_total", &timed_out), 0.0);
    // The flow table saw none of it.
    assert_eq!(value("handshake_flow_table_inserts_total", &[]), 0.0);
    assert_eq!(value("handshake_flow_table_entries", &[]), 0.0);
    // Every SYN still started a handshake in the per-port counts.
    let port_syns = value(
        "handshake_tcp_port_syns_total",
        &[
            ("interface", "lo"),
            ("role", "server"),
            ("port", "other"),
            ("port_class", "well_known"),
        ],
    );
    assert_eq!(port_syns, f64::from(SYNS));
}

#[test]
fn a_full_flow_table_evicts_connections_and_counts_the_evictions() {
    const CONNECTIONS: u16 = 600;
    let mut h = Harness::with(&settings());
    let registry = registry(&mut h);
    for port in 20_000..20_000 + CONNECTIONS {
        let (x, y) = (isn(port), isn(port) ^ 0x5555_5555);
        assert_eq!(
            h.run(Direction::Ingress, &segment(port, true, SYN, x, 0)),
            Ok(XDP_PASS)
        );
        let synack = segment(port, false, SYN | ACK, y, x + 1);
        assert_eq!(h.run(Direction::Egress, &synack), Ok(TC_ACT_UNSPEC));
        let ack = segment(port, true, ACK, x + 1, y + 1);
        assert_eq!(h.run(Direction::Ingress, &ack), Ok(XDP_PASS));
    }
    let text = scrape(&registry);
    let value = |name: &str, labels: &[(&str, &str)]| prom::expect(&text, name, labels);
    let completed = [
        ("interface", "lo"),
        ("role", "server"),
        ("result", "completed"),
    ];
    assert_eq!(
        value("handshake_tcp_handshakes_total", &completed),
        f64::from(CONNECTIONS)
    );
    assert_eq!(
        value("handshake_flow_table_inserts_total", &[]),
        f64::from(CONNECTIONS)
    );
    assert_eq!(
        value("handshake_flow_table_capacity", &[]),
        f64::from(TABLE)
    );
    let entries = value("handshake_flow_table_entries", &[]);
    assert!(
        entries > 0.0 && entries <= f64::from(TABLE),
        "{entries}\n{text}"
    );
    // Nothing closed: every connection is either in the table or evicted.
    assert_eq!(
        value("handshake_flow_table_evictions_total", &[]),
        f64::from(CONNECTIONS) - entries,
        "{text}"
    );
    // Completed handshakes leave the half-open table.
    assert_eq!(value("handshake_half_open_table_used", &[]), 0.0);
    assert_eq!(value("handshake_half_open_table_displaced_total", &[]), 0.0);
    let server = [("interface", "lo"), ("role", "server")];
    assert_eq!(value("handshake_tcp_half_open", &server), 0.0);
}
