use monitor_common::flow::{FlowKey, FlowState, Role, phase};

use super::*;
use crate::tls::ServerHelloSummary;

const MS: u64 = 1_000_000;

fn key(port: u16) -> FlowKey {
    FlowKey {
        local_addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        remote_addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        local_port: 443,
        remote_port: port,
        family: 4,
        slot: 0,
        _pad: [0; 2],
    }
}

fn record(port: u16, kind: RecordKind) -> FlowRecord {
    let mut state = FlowState::on_syn(Role::Server, 1, 10 * MS);
    state.phase = phase::ESTABLISHED;
    FlowRecord {
        key: key(port),
        state,
        ts_ns: 20 * MS,
        kind: kind as u8,
        ..FlowRecord::default()
    }
}

fn server_hello(retry: bool) -> Hello {
    Hello::Server(ServerHelloSummary {
        version: 0x0304,
        version_name: "tls1.3",
        cipher: 0x1301,
        cipher_name: "TLS_AES_128_GCM_SHA256",
        key_share_group: Some(29),
        key_share_group_name: Some("x25519"),
        pq: false,
        ja3s: String::new(),
        ja3s_string: String::new(),
        hello_retry_request: retry,
    })
}

fn hello(port: u16, ts: u64, hello: Hello) -> FlowHello {
    FlowHello {
        flow: FlowId::of_key(&key(port), Role::Server),
        ts_ns: ts,
        hello,
    }
}

#[test]
fn a_completed_handshake_waits_for_its_final_server_hello() {
    let mut j = Joiner::new();
    let mut out = Vec::new();
    j.record(record(1, RecordKind::Completed), 0, &mut out);
    assert!(out.is_empty());
    j.hello(hello(1, 30 * MS, server_hello(true)), 1, &mut out);
    assert!(out.is_empty(), "a HelloRetryRequest is not the end");
    j.hello(hello(1, 40 * MS, server_hello(false)), 2, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].hellos.len(), 2);
    assert_eq!(j.held(), 0);
}

#[test]
fn the_hold_ends_after_a_second_and_a_close_flushes_it_first() {
    let mut j = Joiner::new();
    let mut out = Vec::new();
    j.record(record(1, RecordKind::Completed), 0, &mut out);
    j.expire(HOLD.as_nanos() as u64 - 1, &mut out);
    assert!(out.is_empty());
    j.expire(HOLD.as_nanos() as u64, &mut out);
    assert_eq!(out.len(), 1);

    out.clear();
    j.record(record(2, RecordKind::Completed), 0, &mut out);
    j.record(record(2, RecordKind::Closed), 1, &mut out);
    assert!(out.is_empty(), "the close waits for hellos still in flight");
    j.hello(hello(2, 30 * MS, server_hello(false)), 2, &mut out);
    let kinds: Vec<RecordKind> = out.iter().map(|f| f.record.kind()).collect();
    assert_eq!(kinds, [RecordKind::Completed, RecordKind::Closed]);
    assert_eq!(out[0].hellos.len(), 1, "the late hello joined the record");

    // Without hellos, the pair goes out CLOSE_WAIT after the close.
    out.clear();
    j.record(record(3, RecordKind::Completed), 0, &mut out);
    j.record(record(3, RecordKind::Closed), 10, &mut out);
    j.expire(10 + CLOSE_WAIT.as_nanos() as u64 - 1, &mut out);
    assert!(out.is_empty());
    j.expire(10 + CLOSE_WAIT.as_nanos() as u64, &mut out);
    let kinds: Vec<RecordKind> = out.iter().map(|f| f.record.kind()).collect();
    assert_eq!(kinds, [RecordKind::Completed, RecordKind::Closed]);
}

#[test]
fn a_hello_drained_before_its_record_still_joins_it() {
    let mut j = Joiner::new();
    let mut out = Vec::new();
    j.hello(hello(3, 30 * MS, server_hello(false)), 0, &mut out);
    assert!(out.is_empty());
    j.record(record(3, RecordKind::Completed), 1, &mut out);
    assert_eq!(out.len(), 1, "the final hello was already there");
    assert_eq!(out[0].hellos.len(), 1);
    // Hellos of flows whose record never comes are forgotten.
    j.hello(hello(4, 30 * MS, server_hello(true)), 0, &mut out);
    j.expire(EARLY_WAIT.as_nanos() as u64, &mut out);
    out.clear();
    j.record(record(4, RecordKind::Completed), 0, &mut out);
    j.flush(&mut out);
    assert!(out[0].hellos.is_empty());
}

#[test]
fn hellos_per_flow_are_bounded() {
    let mut j = Joiner::new();
    let mut out = Vec::new();
    j.record(record(5, RecordKind::Completed), 0, &mut out);
    for i in 0..10 {
        j.hello(hello(5, i, server_hello(true)), 0, &mut out);
    }
    j.flush(&mut out);
    assert_eq!(out[0].hellos.len(), MAX_HELLOS);
}
