//! The programs' clock: the kernel's when loaded for interfaces, the
//! capture's when loaded for a replay, with nothing of the replay branch
//! left in the live programs (the verifier removes it).
//!
//! Needs root: run through `cargo xtask test`.

use crate::support;

use std::process::Command;

use aya::{
    maps::{MapData, MapInfo, RingBuf},
    programs::ProgramInfo,
};
use monitor::{
    interfaces::Interface,
    loader::{LoadSettings, Programs},
};
use monitor_common::{
    classify::tcp_flags::{ACK, SYN},
    counters::Direction,
    flow::RateLimit,
    frames::{CLIENT_V4, SERVER_V4, TcpFrame},
    record::{FlowRecord, RecordKind},
};

const LOOPBACK: Interface = Interface {
    name: String::new(),
    ifindex: 1,
};

/// The record ring, with lo registered and a record budget set.
fn record_ring(programs: &mut Programs) -> RingBuf<MapData> {
    programs.register(&LOOPBACK).expect("register lo");
    let budget = RateLimit {
        per_sec_per_cpu: 1_000,
        burst: 1_000,
    };
    monitor::loader::write_settings(programs.ebpf_mut(), "RECORD_CONFIG", budget)
        .expect("record budget");
    programs.take_map("RECORDS").expect("record ring")
}

fn segment(to_server: bool, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let frame = if to_server {
        TcpFrame::v4_segment(CLIENT_V4, SERVER_V4, (40_000, 443), flags, seq, ack)
    } else {
        TcpFrame::v4_segment(SERVER_V4, CLIENT_V4, (443, 40_000), flags, seq, ack)
    };
    frame.build()
}

#[test]
fn a_replayed_handshake_carries_the_capture_times() {
    support::require_root();
    let (mut programs, mut clock) =
        Programs::load_for_replay(&LoadSettings::default()).expect("load for replay");
    let mut ring = record_ring(&mut programs);
    // 2026-12-07T00:00:00Z, then the SYN-ACK 2 ms and the ACK 5 ms later.
    let t0 = 1_796_601_600_000_000_000;
    let steps = [
        (0, Direction::Ingress, segment(true, SYN, 1_000, 0)),
        (
            2_000_000,
            Direction::Egress,
            segment(false, SYN | ACK, 9_000, 1_001),
        ),
        (
            5_000_000,
            Direction::Ingress,
            segment(true, ACK, 1_001, 9_001),
        ),
    ];
    for (offset, direction, frame) in &steps {
        clock.set(t0 + offset);
        programs.run_frame(*direction, frame).expect("test run");
    }
    let item = ring.next().expect("a record for the completed handshake");
    // SAFETY: the ring's items are FlowRecords (integers only).
    let record = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<FlowRecord>()) };
    drop(item);
    assert_eq!(record.kind(), RecordKind::Completed);
    assert_eq!(
        (
            record.state.syn_ns,
            record.state.synack_ns,
            record.state.established_ns,
            record.ts_ns
        ),
        (t0, t0 + 2_000_000, t0 + 5_000_000, t0 + 5_000_000)
    );
}

#[test]
fn a_live_load_reads_the_kernel_clock() {
    support::require_root();
    let mut programs = Programs::load().expect("load");
    let mut ring = record_ring(&mut programs);
    let before = monitor::clock::monotonic_ns();
    programs
        .run_frame(Direction::Ingress, &segment(true, SYN, 1_000, 0))
        .unwrap();
    programs
        .run_frame(Direction::Egress, &segment(false, SYN | ACK, 9_000, 1_001))
        .unwrap();
    programs
        .run_frame(Direction::Ingress, &segment(true, ACK, 1_001, 9_001))
        .unwrap();
    let after = monitor::clock::monotonic_ns();
    let item = ring.next().expect("a record");
    // SAFETY: as above.
    let record = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<FlowRecord>()) };
    assert!(
        (before..=after).contains(&record.state.syn_ns)
            && (record.state.syn_ns..=after).contains(&record.ts_ns),
        "kernel times {} and {} outside {before}..={after}",
        record.state.syn_ns,
        record.ts_ns
    );
}

#[test]
fn live_programs_hold_nothing_of_the_replay_clock() {
    support::require_root();
    let mut live = Programs::load().expect("load");
    let (mut replay, _clock) =
        Programs::load_for_replay(&LoadSettings::default()).expect("load for replay");
    for (name, live_info, replay_info) in [
        (
            "XDP",
            live.xdp().unwrap().info(),
            replay.xdp().unwrap().info(),
        ),
        ("TC", live.tc().unwrap().info(), replay.tc().unwrap().info()),
    ] {
        let (live_info, replay_info) = (live_info.unwrap(), replay_info.unwrap());
        assert!(
            !xlated_uses_clock(&live_info),
            "the live {name} program reads the replay clock map"
        );
        assert!(
            xlated_uses_clock(&replay_info),
            "the replay {name} program does not read its clock map (the check above proves nothing)"
        );
    }
}

/// Whether the program as the verifier left it loads the clock map.
fn xlated_uses_clock(info: &ProgramInfo) -> bool {
    let clock_ids: Vec<u32> = info
        .map_ids()
        .expect("map ids")
        .unwrap_or_default()
        .into_iter()
        .filter(|id| {
            MapInfo::from_id(*id)
                .ok()
                .and_then(|m| m.name_as_str().map(|n| n == "REPLAY_CLOCK"))
                .unwrap_or(false)
        })
        .collect();
    let out = Command::new("bpftool")
        .args(["prog", "dump", "xlated", "id", &info.id().to_string()])
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    clock_ids
        .iter()
        .any(|id| text.contains(&format!("map[id:{id}]")))
}
