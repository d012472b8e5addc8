use monitor_common::flow::{FlowKey, FlowState};

use super::*;

fn slot(a: [u8; 4], port: u16, server_port: u16) -> HalfOpen {
    let mut remote = [0u8; 16];
    remote[..4].copy_from_slice(&a);
    HalfOpen {
        key: FlowKey {
            local_addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            remote_addr: remote,
            local_port: server_port,
            remote_port: port,
            family: FAMILY_V4,
            slot: 0,
            _pad: [0; 2],
        },
        state: FlowState::on_syn(Role::Server, 7, 1_000 + u64::from(port)),
    }
}

fn batch(expired: Vec<HalfOpen>) -> TimeoutBatch {
    TimeoutBatch {
        expired,
        timeout_ns: 5_000,
        ..TimeoutBatch::default()
    }
}

#[test]
fn a_quiet_sweep_reports_each_timeout() {
    let b = batch(
        (0..INDIVIDUAL_MAX as u16)
            .map(|p| slot([1, 2, 3, 4], p, 80))
            .collect(),
    );
    let out = summarize(&b);
    assert_eq!(out.len(), INDIVIDUAL_MAX);
    match &out[0] {
        Timeout::Single(r) => {
            assert_eq!(r.kind(), RecordKind::TimedOut);
            assert_eq!(r.ts_ns, 1_000 + 5_000);
            assert_eq!(r.conn_state(), ConnState::S0);
        }
        Timeout::Aggregate(_) => panic!("expected single records"),
    }
}

#[test]
fn a_busy_sweep_aggregates_per_prefix_largest_first() {
    let mut expired = Vec::new();
    // 30 from 198.18.5.0/24 to port 80, 5 from 198.18.6.0/24, and one
    // from each of 20 more prefixes.
    expired.extend((0..30).map(|p| slot([198, 18, 5, p as u8], 1000 + p, 80)));
    expired.extend((0..5).map(|p| slot([198, 18, 6, 9], 2000 + p, 80)));
    expired.extend((0..20).map(|p| slot([10, p as u8, 0, 1], 3000 + p, 443)));
    let out = summarize(&batch(expired));
    let lines: Vec<&Aggregate> = out
        .iter()
        .map(|t| match t {
            Timeout::Aggregate(a) => a,
            Timeout::Single(_) => panic!("no single records in a busy sweep"),
        })
        .collect();
    assert_eq!(lines.len(), AGGREGATE_LINES + 1);
    assert_eq!(lines[0].prefix_text(), "198.18.5.0/24");
    assert_eq!((lines[0].count, lines[0].server_port), (30, Some(80)));
    assert_eq!(lines[1].prefix_text(), "198.18.6.0/24");
    assert_eq!(lines[1].count, 5);
    let rest = lines[AGGREGATE_LINES];
    assert_eq!(rest.prefix_text(), "other");
    // 20 one-timeout prefixes: 14 got lines of their own, 6 folded.
    assert_eq!((rest.count, rest.prefixes, rest.server_port), (6, 6, None));
    let total: u64 = lines.iter().map(|a| a.count).sum();
    assert_eq!(total, 55);
}
