use monitor_common::{
    flow::{CloseKind, FlowKey, FlowState, Initiator, Role, phase},
    record::{FlowRecord, RecordKind},
};

use super::*;
use crate::tls::ServerHelloSummary;

const MS: u64 = 1_000_000;

fn completed() -> FlowRecord {
    let mut state = FlowState::on_syn(Role::Server, 1000, 100 * MS);
    state.synack_ns = 100 * MS + 120_000;
    state.established_ns = 100 * MS + 200_000;
    state.server_isn = 5000;
    state.phase = phase::ESTABLISHED;
    FlowRecord {
        key: FlowKey {
            local_addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            remote_addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            local_port: 443,
            remote_port: 40000,
            family: 4,
            slot: 0,
            _pad: [0; 2],
        },
        state,
        ts_ns: state.established_ns,
        kind: RecordKind::Completed as u8,
        ..FlowRecord::default()
    }
}

fn field<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &json[name]
}

#[test]
fn a_completed_handshake_line_shows_the_arithmetic() {
    let f = Finished {
        record: completed(),
        hellos: vec![(
            100 * MS + 1_400_000,
            Hello::Server(ServerHelloSummary {
                version: 0x0304,
                version_name: "tls1.3",
                cipher: 0x1302,
                cipher_name: "TLS_AES_256_GCM_SHA384",
                key_share_group: Some(29),
                key_share_group_name: Some("x25519"),
                pq: false,
                ja3s: "abc".into(),
                ja3s_string: String::new(),
                hello_retry_request: false,
            }),
        )],
    };
    let item = handshake(&f, "eth0");
    assert_eq!(
        item.line,
        "10.0.0.2:40000 → 10.0.0.1:443 S1 completed on eth0 (server): SYN 1000 → SYN-ACK 5000 \
         (ack 1001 = x+1, 0.12 ms) → ACK 5001 (= y+1, 0.08 ms) | ServerHello tls1.3 \
         TLS_AES_256_GCM_SHA384 x25519"
    );
    let json: serde_json::Value = serde_json::from_str(&item.json).expect("valid JSON");
    assert_eq!(field(&json, "type"), "tcp_handshake");
    assert_eq!(field(&json, "syn_to_synack_us"), 120);
    assert_eq!(field(&json, "synack_to_ack_us"), 80);
    assert_eq!(field(&json, "server_isn"), 5000);
    assert_eq!(
        field(&json, "community_id"),
        &community_id_v1(
            0,
            6,
            "10.0.0.2".parse().unwrap(),
            40000,
            "10.0.0.1".parse().unwrap(),
            443
        )
    );
    assert_eq!(
        json["tls"]["server_hello"]["cipher"],
        "TLS_AES_256_GCM_SHA384"
    );
    assert_eq!(
        json["tls"]["client_hello_to_server_hello_us"],
        serde_json::Value::Null
    );
    assert_eq!((item.server_port, item.conn_state), (443, Some("S1")));
}

#[test]
fn a_close_line_says_who_and_how_long() {
    let mut r = completed();
    r.kind = RecordKind::Closed as u8;
    r.close_kind = CloseKind::Graceful as u8;
    r.initiator = Initiator::Local as u8;
    r.ts_ns = r.state.established_ns + 2_100 * MS;
    let item = close(
        &Finished {
            record: r,
            hellos: Vec::new(),
        },
        "eth0",
    );
    assert_eq!(
        item.line,
        "10.0.0.2:40000 → 10.0.0.1:443 SF on eth0 (server): closed gracefully by the server \
         after 2.100 s"
    );
    let json: serde_json::Value = serde_json::from_str(&item.json).expect("valid JSON");
    assert_eq!(json["closed_by"], "server");
    assert_eq!(json["duration_ms"], 2100.0);
}
