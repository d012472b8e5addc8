//! `handshake-monitor replay` on captures built here frame by frame: every
//! link type, several files, damaged and unusable input, IPv6, VLANs, a
//! capture that starts mid-connection (its decisions: replay_behaviour.rs).
//!
//! Needs root (the replay loads BPF programs); no network, no namespaces:
//! `cargo xtask test -- replay_files::`.

use crate::support;

use std::collections::BTreeSet;

use monitor::replay::{
    link,
    pcap_write::{PcapNgWriter, PcapWriter},
};
use monitor_common::classify::tcp_flags::{ACK, PSH};
use support::{
    capture_files::{
        BASE_NS, CLIENT_PORT, Family, USER0, exchange, exchange_on, pcap, pcapng, segment, to_link,
        write,
    },
    deploy::TempDir,
    replay::replay,
    replay_checks::{
        EXCHANGE_COUNTS, assert_damaged_after_four, assert_exchange_records, assert_ok, counts,
        line, nonzero, packet_counts, packets, replay_ok,
    },
};

const EXCHANGE_LINE: &str = "replay: 1 file(s), 7 frames: 5 through XDP (towards the local \
                             side), 2 through TC egress, 0 skipped";

#[test]
fn every_link_type_gives_the_records_and_counts_of_ethernet() {
    support::require_root();
    let frames = exchange();
    let reference = replay_ok("eth.pcap", &pcap(link::ETHERNET, &frames), &[]);
    assert_exchange_records(&reference, Family::V4, "server");
    assert_eq!(packet_counts(&reference), counts(EXCHANGE_COUNTS));
    assert_eq!(line(&reference, "replay:"), EXCHANGE_LINE);
    let captures = [
        ("eth.pcapng", pcapng(link::ETHERNET, &frames)),
        ("sll.pcap", pcap(link::LINUX_SLL, &frames)),
        ("sll2.pcapng", pcapng(link::LINUX_SLL2, &frames)),
        ("raw.pcap", pcap(link::RAW, &frames)),
        ("dlt-raw.pcap", pcap(link::DLT_RAW, &frames)),
        ("ipv4.pcapng", pcapng(link::IPV4, &frames)),
        ("null.pcap", pcap(link::NULL, &frames)),
        ("loop.pcapng", pcapng(link::LOOP, &frames)),
    ];
    for (name, bytes) in captures {
        let r = replay_ok(name, &bytes, &[]);
        assert_eq!(packets(&r), packets(&reference), "{name}");
        assert_eq!(r.events, reference.events, "{name}");
        assert_eq!(line(&r, "replay:"), EXCHANGE_LINE, "{name}");
    }
}

#[test]
fn a_cooked_capture_s_packet_types_decide_the_direction() {
    support::require_root();
    // `tcpdump -i any` on a host talking to itself: every packet twice,
    // once as sent (4), once as received (0). Each copy runs once, through
    // TC or XDP as its type says, as on `lo`: both ends' roles tracked.
    let mut w = PcapWriter::new(Vec::new(), u32::from(link::LINUX_SLL), false).expect("header");
    for (ts, eth) in exchange() {
        let cooked = to_link(link::LINUX_SLL, &eth);
        for packet_type in [4u8, 0] {
            let mut copy = cooked.clone();
            copy[1] = packet_type;
            w.write(ts, &copy).expect("record");
        }
    }
    let r = replay_ok("any.pcap", &w.into_inner().expect("bytes"), &[]);
    assert_eq!(
        line(&r, "replay:"),
        "replay: 1 file(s), 14 frames: 7 through XDP (towards the local side), 7 through TC \
         egress, 0 skipped"
    );
    let roles: BTreeSet<(String, String)> = r
        .events
        .iter()
        .map(|e| (e["type"].to_string(), e["role"].to_string()))
        .collect();
    let expected: BTreeSet<(String, String)> = ["tcp_handshake", "tcp_close"]
        .iter()
        .flat_map(|t| ["client", "server"].map(|role| (format!("{t:?}"), format!("{role:?}"))))
        .collect();
    assert_eq!(roles, expected, "{:#?}", r.events);
    assert_eq!(r.events.len(), 4, "{:#?}", r.events);
}

#[test]
fn files_given_in_order_replay_as_one_capture() {
    support::require_root();
    let frames = exchange();
    let whole = replay_ok("whole.pcap", &pcap(link::ETHERNET, &frames), &[]);
    let dir = TempDir::new("replay-split");
    let a = write(dir.path(), "a.pcap", &pcap(link::ETHERNET, &frames[..3]));
    let b = write(
        dir.path(),
        "b.pcapng",
        &pcapng(link::LINUX_SLL, &frames[3..]),
    );
    let split = replay(dir.path(), &[&a, &b], &[]);
    assert_ok(&split);
    assert_exchange_records(&split, Family::V4, "server");
    assert_eq!(split.events, whole.events);
    assert_eq!(packets(&split), packets(&whole));
    let summary = EXCHANGE_LINE.replace("1 file(s)", "2 file(s)");
    assert_eq!(line(&split, "replay:"), summary);
}

#[test]
fn unusable_records_are_counted_as_skips_and_the_rest_replayed() {
    support::require_root();
    let frames = exchange();
    let mut w = PcapNgWriter::new(Vec::new()).expect("pcapng");
    let eth = w.add_interface(link::ETHERNET, Some(9)).expect("interface");
    let user = w.add_interface(USER0, Some(9)).expect("interface");
    // Another flow's data segment, too big for BPF_PROG_TEST_RUN: were it
    // run, the data count would be 2.
    let big = segment(Family::V4, true, 41_000, PSH | ACK).with_payload(&[0x55; 4000 - 54]);
    let big = big.build();
    assert_eq!(big.len(), 4000);
    for (i, (ts, frame)) in frames.iter().enumerate() {
        w.write(eth, *ts, frame).expect("frame");
        match i {
            0..3 => w.write(user, *ts, frame).expect("user0"),
            3 => w.write(eth, *ts, &frame[..10]).expect("short"),
            4 => w.write(eth, *ts, &big).expect("oversized"),
            _ => {}
        }
    }
    let r = replay_ok("skips.pcapng", &w.into_inner().expect("bytes"), &[]);
    assert_exchange_records(&r, Family::V4, "server");
    assert_eq!(packet_counts(&r), counts(EXCHANGE_COUNTS));
    assert_eq!(
        line(&r, "replay:"),
        "replay: 1 file(s), 12 frames: 5 through XDP (towards the local side), 2 through TC \
         egress, 5 skipped (link_type 3, oversized 1, short 1)"
    );

    // A whole file of a foreign link type: every record skipped, no error.
    let r = replay_ok("user0.pcap", &pcap(USER0, &frames), &[]);
    assert!(r.events.is_empty(), "{:#?}", r.events);
    assert!(packet_counts(&r).is_empty(), "{}", r.metrics);
    assert_eq!(
        line(&r, "replay:"),
        "replay: 1 file(s), 7 frames: 0 through XDP (towards the local side), 0 through TC \
         egress, 7 skipped (link_type 7)"
    );
}

#[test]
fn a_truncated_file_replays_the_records_before_the_cut_and_exits_2() {
    support::require_root();
    let frames = exchange();
    let fifth = pcap(link::ETHERNET, &frames[..4]).len();
    // Cut inside the fifth record's data.
    let bytes = &pcap(link::ETHERNET, &frames)[..fifth + 16 + 20];
    let error =
        format!("truncated: the file ends inside a record at byte {fifth} (after 4 records)");
    assert_damaged_after_four("cut.pcap", bytes, &error);
}

#[test]
fn a_corrupt_pcapng_block_replays_the_blocks_before_it_and_exits_2() {
    support::require_root();
    let frames = exchange();
    let mut bytes = pcapng(link::ETHERNET, &frames);
    let fifth = pcapng(link::ETHERNET, &frames[..4]).len();
    let end = pcapng(link::ETHERNET, &frames[..5]).len();
    let leading = u32::from_le_bytes(bytes[fifth + 4..fifth + 8].try_into().expect("u32"));
    // The fifth block's trailing length no longer matches its leading one.
    bytes[end - 4..end].copy_from_slice(&(leading + 4).to_le_bytes());
    let error = format!(
        "corrupt block at byte {fifth}: trailing block total length {} differs from the \
         leading {leading}",
        leading + 4
    );
    assert_damaged_after_four("corrupt.pcapng", &bytes, &error);
}

#[test]
fn empty_and_missing_files_exit_2_while_the_good_file_is_replayed() {
    support::require_root();
    let dir = TempDir::new("replay-bad-files");
    let empty = write(dir.path(), "empty.pcap", &[]);
    let good = write(dir.path(), "good.pcap", &pcap(link::ETHERNET, &exchange()));
    let missing = dir.path().join("missing.pcap");
    let r = replay(dir.path(), &[&empty, &good, &missing], &[]);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert_exchange_records(&r, Family::V4, "server");
    assert_eq!(packet_counts(&r), counts(EXCHANGE_COUNTS));
    let (empty, missing) = (empty.display(), missing.display());
    let expected = [
        &EXCHANGE_LINE.replace("1 file(s)", "3 file(s)"),
        &format!("{empty}: empty file; replayed the 0 records before it"),
        &format!(
            "{missing}: cannot open {missing}: No such file or directory (os error 2); \
             replayed the 0 records before it"
        ),
    ];
    for want in expected {
        assert!(r.stderr.lines().any(|l| l == want), "{want}:\n{}", r.stderr);
    }
}

#[test]
fn an_ipv6_exchange_gives_records_with_its_addresses_and_community_id() {
    support::require_root();
    let frames = exchange_on(Family::V6, &[], CLIENT_PORT, BASE_NS);
    let captures = [
        ("v6.pcap", pcap(link::ETHERNET, &frames)),
        ("v6-raw.pcapng", pcapng(link::IPV6, &frames)),
        ("v6-null.pcap", pcap(link::NULL, &frames)),
    ];
    for (name, bytes) in captures {
        let r = replay_ok(name, &bytes, &[]);
        assert_exchange_records(&r, Family::V6, "server");
        assert_eq!(packet_counts(&r), counts(EXCHANGE_COUNTS), "{name}");
        let local = "local side: the addresses that answered SYNs: 2001:2::2";
        assert_eq!(line(&r, "local side:"), local, "{name}");
    }
}

#[test]
fn vlan_tagged_exchanges_give_the_records_of_the_untagged_one() {
    support::require_root();
    let untagged = replay_ok("plain.pcap", &pcap(link::ETHERNET, &exchange()), &[]);
    for tags in [&[0x8100][..], &[0x88a8, 0x8100]] {
        let frames = exchange_on(Family::V4, tags, CLIENT_PORT, BASE_NS);
        let r = replay_ok("tagged.pcapng", &pcapng(link::ETHERNET, &frames), &[]);
        assert_eq!(r.events, untagged.events, "{tags:x?}");
        assert_eq!(packets(&r), packets(&untagged), "{tags:x?}");
    }
}

#[test]
fn a_capture_starting_mid_connection_has_no_records_and_counts_untracked_fins() {
    support::require_root();
    // The exchange's request, FINs and final ACK, without its handshake.
    let frames = exchange().split_off(3);
    let r = replay_ok("mid.pcap", &pcap(link::ETHERNET, &frames), &[]);
    assert!(r.events.is_empty(), "{:#?}", r.events);
    // No SYN: each frame goes towards its lower port, 443.
    assert_eq!(
        line(&r, "local side:"),
        "local side: none found (no SYN in the capture): frames go towards their lower port"
    );
    let expected = counts("ingress data 1, ingress fin 1, ingress ack 1, egress fin 1");
    assert_eq!(packet_counts(&r), expected, "{}", r.metrics);
    // The FINs of a flow never seen opening are untracked; its ACK and
    // data are not (docs/metrics.md).
    let untracked = nonzero(
        &r,
        "handshake_tcp_untracked_segments_total",
        &["direction", "flag"],
    );
    let fins = counts("ingress fin 1, egress fin 1");
    assert_eq!(untracked, fins, "{}", r.metrics);
    let handshakes = nonzero(&r, "handshake_tcp_handshakes_total", &["result"]);
    assert!(handshakes.is_empty(), "{handshakes:?}");
}
