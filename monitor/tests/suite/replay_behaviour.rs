//! `handshake-monitor replay`'s decisions on built captures: the local
//! side, timeouts and pace on the capture's clock, a flood's alert, the
//! mitigation's verdicts, and SIGINT (outputs written, programs freed).
//!
//! Needs root (the replay loads the programs); run with `cargo xtask test`.

use crate::support;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use monitor::replay::link;
use monitor_common::classify::tcp_flags::{ACK, RST, SYN};
use serde_json::Value;
use support::{
    capture_files::{
        BASE_NS, CLIENT_ISN, CLIENT_PORT, Family, NS_PER_MS, NS_PER_SEC, exchange, exchange_on,
        exchanges, flood_capture, one_source_syns, pcap, segment, timeouts_capture, write,
    },
    cmd,
    deploy::TempDir,
    prom,
    replay::read_events_so_far,
    replay_checks::{
        Running, assert_exchange_records, counts, line, metric, only, packet_counts, pinned,
        program_exists, programs_of, replay_ok, rfc3339,
    },
};

#[test]
fn the_local_side_is_who_answers_syns_unless_given() {
    support::require_root();
    let bytes = pcap(link::ETHERNET, &exchange());
    let learned = replay_ok("x.pcap", &bytes, &[]);
    assert_exchange_records(&learned, Family::V4, "server");
    let local = "local side: the addresses that answered SYNs: 198.18.0.2";
    assert_eq!(line(&learned, "local side:"), local);

    let given = replay_ok("x.pcap", &bytes, &["--local", "198.18.0.1/32"]);
    assert_exchange_records(&given, Family::V4, "client");
    assert_eq!(line(&given, "local side:"), "local side: --local");
    assert_eq!(
        line(&given, "replay:"),
        "replay: 1 file(s), 7 frames: 2 through XDP (towards the local side), 5 through TC \
         egress, 0 skipped"
    );
    let expected = counts(
        "egress syn 1, egress ack 2, egress data 1, egress fin 1, ingress syn_ack 1, ingress fin 1",
    );
    assert_eq!(packet_counts(&given), expected);

    // Nobody answers with a SYN-ACK: the address the SYN went to is
    // local, and its RST is the server's refusal.
    let mut syn = segment(Family::V4, true, CLIENT_PORT, SYN);
    syn.seq = CLIENT_ISN;
    let mut rst = segment(Family::V4, false, CLIENT_PORT, RST | ACK);
    rst.ack = CLIENT_ISN + 1;
    let frames = [(BASE_NS, syn.build()), (BASE_NS + NS_PER_MS, rst.build())];
    let refused = replay_ok("rej.pcap", &pcap(link::ETHERNET, &frames), &[]);
    assert_eq!(
        line(&refused, "local side:"),
        "local side: the addresses SYNs were sent to (nobody answered one): 198.18.0.2"
    );
    let hs = only(&refused, "tcp_handshake");
    let got = [&hs["role"], &hs["outcome"], &hs["conn_state"]];
    assert_eq!(got, ["server", "refused", "REJ"], "{hs}");
}

#[test]
fn timeouts_fall_on_the_capture_clock() {
    support::require_root();
    let bytes = pcap(link::ETHERNET, &timeouts_capture());
    let r = replay_ok("timeouts.pcap", &bytes, &["--handshake-timeout", "2"]);
    // The lone SYN is the last frame: only the clock the replay runs on
    // past the end times it out. Its `ts` is the SYN's (docs/records.md).
    let hs = r.of_type("tcp_handshake");
    let lone: Vec<&&Value> = hs.iter().filter(|h| h["outcome"] == "timed_out").collect();
    assert_eq!(lone.len(), 1, "{:#?}", r.events);
    let lone = lone[0];
    assert_eq!(lone["client_ip"], "198.18.6.1", "{lone}");
    assert_eq!(lone["conn_state"], "S0", "{lone}");
    assert_eq!(lone["server_isn"], Value::Null, "{lone}");
    assert_eq!(lone["ts"], rfc3339(BASE_NS + 9_123_456_000), "{lone}");
    // The ten earlier SYNs: one aggregate line from the sweep 2 s after
    // the last of them (within the sweep's 1 s step), on capture time.
    let agg = only(&r, "tcp_handshake_aggregate");
    let last = BASE_NS + 3 * NS_PER_SEC + 9 * NS_PER_MS;
    assert_eq!(agg["client_prefix"], "198.18.5.0/24", "{agg}");
    assert_eq!([&agg["count"], &agg["prefixes"]], [10, 1], "{agg}");
    assert_eq!(agg["conn_state"], "S0", "{agg}");
    assert_eq!(
        agg["first_syn_ts"],
        rfc3339(BASE_NS + 3 * NS_PER_SEC),
        "{agg}"
    );
    assert_eq!(agg["last_syn_ts"], rfc3339(last), "{agg}");
    let ts = agg["ts"].as_str().expect("ts").to_string();
    let window = rfc3339(last + 2 * NS_PER_SEC)..=rfc3339(last + 3 * NS_PER_SEC);
    assert!(window.contains(&ts), "{agg}");
    let result = [("role", "server"), ("result", "timed_out")];
    let timed_out = metric(&r, "handshake_tcp_handshakes_total", &result);
    assert_eq!(timed_out, Some(11.0), "{}", r.metrics);
}

#[test]
fn handshakes_begun_after_a_scan_time_out_on_time() {
    support::require_root();
    // A connection at 2.5 s makes the 3 s sweep scan an empty table; the
    // ten SYNs then begin just after it. The 4 s sweep may skip its scan
    // (nothing can time out before 5 s); the idle ones after it may not.
    let mut frames = exchange();
    let late = BASE_NS + 2 * NS_PER_SEC + 500 * NS_PER_MS;
    frames.extend(exchange_on(Family::V4, &[], CLIENT_PORT + 1, late));
    frames.extend(timeouts_capture().split_off(exchange().len()));
    let r = replay_ok(
        "scan.pcap",
        &pcap(link::ETHERNET, &frames),
        &["--handshake-timeout", "2"],
    );
    let agg = only(&r, "tcp_handshake_aggregate");
    assert_eq!([&agg["count"], &agg["prefixes"]], [10, 1], "{agg}");
    // Timed out by the 6 s sweep, not at the lone SYN's 10 s.
    let last = BASE_NS + 3 * NS_PER_SEC + 9 * NS_PER_MS;
    let ts = agg["ts"].as_str().expect("ts").to_string();
    let window = rfc3339(last + 2 * NS_PER_SEC)..=rfc3339(last + 3 * NS_PER_SEC);
    assert!(window.contains(&ts), "{agg}");
}

#[test]
fn the_replay_pace_changes_none_of_the_outputs() {
    support::require_root();
    let bytes = pcap(link::ETHERNET, &timeouts_capture());
    let timeout = ["--handshake-timeout", "2"];
    let fastest = replay_ok("pace.pcap", &bytes, &timeout);
    // 12 SYNs in 9 s are no flood: the floor is 100 SYNs a second.
    assert!(fastest.of_type("alert").is_empty(), "{:#?}", fastest.events);
    for pace in [&["--speed", "50"][..], &["--as-fast-as-possible"]] {
        let started = Instant::now();
        let paced = replay_ok("pace.pcap", &bytes, &[&timeout[..], pace].concat());
        assert_eq!(paced.events, fastest.events, "{pace:?}");
        let (paced_lines, fastest_lines) = (timeless(&paced.metrics), timeless(&fastest.metrics));
        let only = |a: &[&str], b: &[&str]| -> Vec<String> {
            a.iter()
                .filter(|l| !b.contains(l))
                .map(|l| l.to_string())
                .collect()
        };
        assert!(
            paced_lines == fastest_lines,
            "{pace:?}: only paced: {:#?}\nonly the fastest: {:#?}",
            only(&paced_lines, &fastest_lines),
            only(&fastest_lines, &paced_lines)
        );
        if pace[0] == "--speed" {
            // 9.1 s of capture at 50 times its pace.
            assert!(started.elapsed() >= Duration::from_millis(180), "{pace:?}");
        }
    }
}

/// Every metrics line but the sweep's own duration (wall time, the one
/// figure that should depend on the machine).
fn timeless(metrics: &str) -> Vec<&str> {
    let lines: Vec<&str> = metrics
        .lines()
        .filter(|l| !l.contains("handshake_flow_table_sweep_duration_seconds"))
        .collect();
    assert!(lines.len() > 100, "{metrics}");
    lines
}

#[test]
fn a_spoofed_syn_flood_fires_the_syn_flood_alert() {
    support::require_root();
    // 30 s of 2 completed handshakes a second, then 5 s of 3000 SYNs a
    // second nobody answers: 30 times the 100 SYN/s floor, 1500 times the
    // baseline (4 times is enough), none completed (fewer than half is).
    let frames = flood_capture(30, 2, 5, 3_000);
    assert_eq!(frames.len(), 30 * 2 * 7 + 15_000);
    let r = replay_ok("flood.pcap", &pcap(link::ETHERNET, &frames), &[]);
    let alerts = r.of_type("alert");
    let all: Vec<&&Value> = alerts.iter().filter(|a| a["port"] == "all").collect();
    let states: Vec<&Value> = all.iter().map(|a| &a["state"]).collect();
    // It fires with the first sweep past the flood's first second and
    // resolves after 5 quiet ones (the clock runs on after the capture).
    assert_eq!(states, ["firing", "resolved"], "{alerts:#?}");
    let (firing, resolved) = (all[0], all[1]);
    for alert in [firing, resolved] {
        assert_eq!(alert["alertname"], "SynFlood", "{alert}");
        assert_eq!(alert["interface"], "replay", "{alert}");
    }
    let at = |alert: &Value| alert["ts"].as_str().expect("ts").to_string();
    let second = |s: u64| rfc3339(BASE_NS + s * NS_PER_SEC);
    assert!((second(31)..=second(32)).contains(&at(firing)), "{firing}");
    assert!(
        (second(40)..=second(41)).contains(&at(resolved)),
        "{resolved}"
    );
    assert_eq!(firing["completion_ratio"], 0.0, "{firing}");
    // The readings are per second of capture: 3000 SYNs in the flood's
    // first second, a baseline learned from 2 a second.
    assert_eq!(firing["syn_rate"], 3_000.0, "{firing}");
    let baseline = firing["baseline_syn_rate"].as_f64().expect("baseline");
    assert!(baseline > 0.0 && baseline < 2.0, "{firing}");
}

#[test]
fn syns_over_the_source_rate_are_counted_in_dry_run_and_dropped_in_enforce() {
    support::require_root();
    // The per-source limit is per CPU: one CPU for the replay (the child
    // inherits this thread's affinity) makes the count exact.
    support::pin_to_cpu0();
    // 1000 SYNs from one source within a millisecond: the default limit
    // (200/s, burst 400) admits the burst and refuses the other 600.
    let bytes = pcap(link::ETHERNET, &one_source_syns());
    let reason = [("reason", "source_rate")];
    let dry = replay_ok("one-source.pcap", &bytes, &[]);
    let would = metric(&dry, "handshake_mitigation_dry_run_drops_total", &reason);
    assert_eq!(would, Some(600.0), "{}", dry.metrics);
    assert_eq!(
        line(&dry, "verdicts:"),
        "verdicts: xdp_pass 1000; the mitigation would have dropped 600 (dry-run) and dropped 0"
    );

    let enforced = replay_ok("one-source.pcap", &bytes, &["--mitigation", "enforce"]);
    let dropped = metric(&enforced, "handshake_xdp_dropped_packets_total", &reason);
    assert_eq!(dropped, Some(600.0), "{}", enforced.metrics);
    assert_eq!(
        line(&enforced, "verdicts:"),
        "verdicts: xdp_drop 600, xdp_pass 400; the mitigation would have dropped 0 (dry-run) \
         and dropped 600"
    );
}

#[test]
fn sigint_stops_the_replay_with_its_outputs_and_frees_its_programs() {
    support::require_root();
    // An exchange a second for 61 s of capture, replayed at its own pace.
    let frames = exchanges(61, NS_PER_SEC);
    let dir = TempDir::new("replay-sigint");
    let path = write(dir.path(), "long.pcap", &pcap(link::ETHERNET, &frames));
    let metrics = dir.path().join("replay.prom");
    let events = dir.path().join("replay-events.jsonl");
    let pinned_before = pinned();
    let args = [
        path.as_os_str(),
        "--metrics-out".as_ref(),
        metrics.as_os_str(),
        "--events".as_ref(),
        events.as_os_str(),
    ];
    let replay = Running::start(&[&args[..], &["--speed".as_ref(), "1".as_ref()]].concat());
    let mut held = Vec::new();
    let loaded = support::wait_until(Duration::from_secs(20), || {
        held = programs_of(replay.pid());
        let types: BTreeSet<&str> = held.iter().map(|(_, t)| t.as_str()).collect();
        types.contains("xdp") && types.contains("sched_cls")
    });
    assert!(loaded, "the replay holds no XDP and TC programs: {held:?}");
    // The first frames have run: the first exchange's records are out.
    let replayed = support::wait_until(Duration::from_secs(20), || {
        read_events_so_far(&events)
            .iter()
            .any(|e| e["type"] == "tcp_handshake")
    });
    assert!(replayed, "no record of the first exchange in {events:?}");
    let (status, stderr) = replay.interrupt();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let interrupted = "interrupted: the outputs cover the frames replayed until then";
    assert!(stderr.lines().any(|l| l == interrupted), "{stderr}");
    // Every frame read was run: the summary's count is XDP + TC + skipped.
    let counts = summary_counts(&stderr);
    assert_eq!(counts.0, counts.1 + counts.2 + counts.3, "{stderr}");
    // Some of the capture was replayed, not all of it.
    let text = std::fs::read_to_string(&metrics).expect("the metrics file");
    let syn = [
        ("interface", "replay"),
        ("direction", "ingress"),
        ("flag", "syn"),
    ];
    let syns = prom::value(&text, "handshake_tcp_packets_total", &syn);
    assert!(
        syns.is_some_and(|n| (1.0..61.0).contains(&n)),
        "{syns:?}:\n{text}"
    );

    // The kernel frees what the process held (after an RCU grace period).
    let gone = support::wait_until(Duration::from_secs(10), || {
        held.iter().all(|(id, _)| !program_exists(*id))
    });
    assert!(gone, "programs {held:?} outlived the replay");
    let lo = cmd::ip(&["-d", "link", "show", "lo"]);
    assert!(!lo.contains("xdp"), "XDP on lo: {lo}");
    assert_eq!(pinned(), pinned_before);
}

/// (frames, through XDP, through TC, skipped) of the summary's first line.
fn summary_counts(stderr: &str) -> (u64, u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("replay: "))
        .unwrap_or_else(|| panic!("no summary line:\n{stderr}"));
    let number_before = |word: &str| -> u64 {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("{word:?} in {line:?}"));
        line[..at]
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a count before {word:?} in {line:?}"))
    };
    (
        number_before(" frames:"),
        number_before(" through XDP"),
        number_before(" through TC"),
        number_before(" skipped"),
    )
}

#[test]
fn events_that_cannot_be_written_fail_the_replay_after_its_summary() {
    support::require_root();
    let dir = TempDir::new("replay-full");
    let capture = write(dir.path(), "x.pcap", &pcap(link::ETHERNET, &exchange()));
    // /dev/full takes the open and refuses every write (ENOSPC).
    let out = std::process::Command::new(support::daemon::BINARY)
        .arg("replay")
        .arg(&capture)
        .args(["--events", "/dev/full", "--metrics-out", "/dev/null"])
        .output()
        .expect("run the replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("records: 2 written"), "{stderr}");
    assert!(
        stderr
            .contains("handshake-monitor: error: 2 event lines could not be written to /dev/full"),
        "{stderr}"
    );
}
