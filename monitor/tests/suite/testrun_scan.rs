//! The port-scan table through the loaded programs (BPF_PROG_TEST_RUN):
//! SYNs refused with a RST are noted per source in this CPU's partition
//! of a direct-mapped array, and the daemon's reader merges them.
//!
//! Needs root: run through `cargo xtask test`.

use crate::support;

use std::time::Duration;

use monitor::detector::scan::{ScanThresholds, ScanWatcher};
use monitor_common::{
    classify::tcp_flags::{ACK, RST, SYN},
    counters::Direction,
    frames::{CLIENT_V4, Ip, SERVER_V4, TcpFrame},
};
use support::testrun::Harness;

const X: u32 = 7_000;

/// `client_v4:40000 -> server:port` with `flags`, in the direction given.
fn frame(client: [u8; 4], port: u16, to_server: bool, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let mut f = TcpFrame::v4(flags);
    let (src, dst, sport, dport) = if to_server {
        (client, SERVER_V4, 40_000, port)
    } else {
        (SERVER_V4, client, port, 40_000)
    };
    f.ip = Ip::V4 {
        src,
        dst,
        options: Vec::new(),
        more_fragments: false,
    };
    (f.src_port, f.dst_port, f.seq, f.ack) = (sport, dport, seq, ack);
    f.build()
}

/// One SYN to `port` refused by our RST.
fn refuse(h: &mut Harness, client: [u8; 4], port: u16) {
    let syn = frame(client, port, true, SYN, X, 0);
    let rst = frame(client, port, false, RST | ACK, 0, X + 1);
    h.run(Direction::Ingress, &syn).expect("SYN");
    h.run(Direction::Egress, &rst).expect("RST");
}

#[test]
fn refused_syns_are_noted_per_source_and_read_in_place() {
    let mut h = Harness::new();
    let thresholds = ScanThresholds {
        distinct_ports: 20.0,
        window: Duration::from_secs(10),
    };
    let mut watcher = ScanWatcher::new(&mut h.programs, thresholds).expect("scan table");
    // A scanner: 40 closed ports. Another source: one port, twice.
    for port in 1..=40 {
        refuse(&mut h, CLIENT_V4, port);
    }
    let quiet = [198, 18, 0, 9];
    refuse(&mut h, quiet, 22);
    refuse(&mut h, quiet, 22);
    let scanners = watcher.scanners(monitor::clock::monotonic_ns());
    assert_eq!(scanners.len(), 1, "{scanners:?}");
    let s = &scanners[0];
    assert_eq!(s.source.to_string(), "198.18.0.1");
    assert_eq!((s.slot, s.probes), (h.slot, 40));
    assert!(s.distinct_ports >= 20.0, "{s:?}");
    // Past the window, nothing is a scan any more.
    let later = monitor::clock::monotonic_ns() + Duration::from_secs(11).as_nanos() as u64;
    assert!(watcher.scanners(later).is_empty());
}
