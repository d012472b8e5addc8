//! The XDP mitigation through the loaded program (BPF_PROG_TEST_RUN): exact
//! verdicts and counters for blocked, allowlisted, rate-limited and
//! protected sources, in enforce and dry-run.
//!
//! Needs root: run through `cargo xtask test`.

use crate::support;

use std::time::Duration;

use aya::programs::{TestRun as _, TestRunOptions};
use monitor::{
    events::EventSink,
    interfaces::Interface,
    loader::Programs,
    mitigation::{Mitigation, MitigationSettings, cidr::Cidr},
};
use monitor_common::{
    classify::tcp_flags::{ACK, SYN},
    frames::{Ip, SERVER_V4, TcpFrame},
    mitigation::{DropReason, ExemptReason, MitigationCounters, Mode},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const ATTACKER: [u8; 4] = [198, 18, 7, 66];
const NEIGHBOUR: [u8; 4] = [198, 18, 7, 67];

struct Lab {
    programs: Programs,
    mitigation: Mitigation,
    slot: u32,
    next_port: u16,
}

impl Lab {
    fn new(settings: MitigationSettings) -> Self {
        support::require_root();
        let mut programs = Programs::load().expect("load programs");
        let lo = Interface {
            name: "lo".into(),
            ifindex: 1,
        };
        let slot = programs.register(&lo).expect("register lo");
        let mitigation = Mitigation::start(
            &mut programs,
            settings,
            vec![("lo".into(), slot)],
            EventSink::disabled(),
        )
        .expect("mitigation maps");
        Self {
            programs,
            mitigation,
            slot,
            next_port: 30_000,
        }
    }

    /// One segment received from `src` (a new source port each time).
    fn receive(&mut self, src: Ip, flags: u8) -> u32 {
        let mut frame = TcpFrame::v4(flags);
        frame.ip = src;
        frame.src_port = self.next_port;
        frame.dst_port = 80;
        self.next_port += 1;
        let bytes = frame.build();
        let opts = TestRunOptions {
            data_in: Some(&bytes),
            ..Default::default()
        };
        let xdp = self.programs.xdp().expect("xdp program");
        xdp.test_run(opts).expect("test run").return_value
    }

    fn syn(&mut self, src: [u8; 4]) -> u32 {
        self.receive(v4(src), SYN)
    }

    fn counters(&self) -> MitigationCounters {
        self.mitigation.counters(self.slot).expect("counters")
    }
}

fn v4(src: [u8; 4]) -> Ip {
    Ip::V4 {
        src,
        dst: SERVER_V4,
        options: Vec::new(),
        more_fragments: false,
    }
}

fn enforce(rate: u64, burst: u64) -> MitigationSettings {
    MitigationSettings {
        mode: Mode::Enforce,
        source_syn_rate: rate,
        source_syn_burst: burst,
        ..MitigationSettings::default()
    }
}

#[test]
fn a_blocked_source_loses_its_syns_and_only_its_syns() {
    let mut lab = Lab::new(MitigationSettings {
        mode: Mode::Enforce,
        ..MitigationSettings::default()
    });
    let cidr: Cidr = "198.18.7.66".parse().unwrap();
    lab.mitigation.block(cidr, None).expect("block");
    assert_eq!(lab.syn(ATTACKER), XDP_DROP);
    assert_eq!(lab.syn(NEIGHBOUR), XDP_PASS);
    // Not a SYN: never judged, never dropped.
    assert_eq!(lab.receive(v4(ATTACKER), ACK), XDP_PASS);
    assert_eq!(lab.receive(v4(ATTACKER), SYN | ACK), XDP_PASS);
    let c = lab.counters();
    assert_eq!(c.judged, 2);
    assert_eq!(c.dropped, [1, 0, 0, 0, 0, 0]);
    assert_eq!(c.dropped[DropReason::Blocklist as usize], 1);

    lab.mitigation.unblock(cidr).expect("unblock");
    assert_eq!(lab.syn(ATTACKER), XDP_PASS);
}

#[test]
fn a_prefix_block_covers_its_ipv6_hosts() {
    let mut lab = Lab::new(MitigationSettings {
        mode: Mode::Enforce,
        ..MitigationSettings::default()
    });
    lab.mitigation
        .block("2001:2:0:7::/64".parse().unwrap(), None)
        .expect("block");
    let inside = [0x20, 0x01, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    let outside = [0x20, 0x01, 0, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    let ip = |src| Ip::V6 {
        src,
        dst: monitor_common::frames::SERVER_V6,
        ext: Vec::new(),
    };
    assert_eq!(lab.receive(ip(inside), SYN), XDP_DROP);
    assert_eq!(lab.receive(ip(outside), SYN), XDP_PASS);
}

#[test]
fn an_expired_block_stops_applying_in_the_kernel() {
    let mut lab = Lab::new(MitigationSettings {
        mode: Mode::Enforce,
        ..MitigationSettings::default()
    });
    let cidr: Cidr = "198.18.7.0/24".parse().unwrap();
    lab.mitigation
        .block(cidr, Some(Duration::from_millis(1500)))
        .expect("block");
    assert_eq!(lab.syn(ATTACKER), XDP_DROP);
    // The kernel compares the expiry itself; no daemon tick needed.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(lab.syn(ATTACKER), XDP_PASS);
}

#[test]
fn the_source_limit_admits_the_burst_then_drops() {
    support::pin_to_cpu0();
    let mut lab = Lab::new(enforce(1, 5));
    let verdicts: Vec<u32> = (0..8).map(|_| lab.syn(ATTACKER)).collect();
    assert_eq!(
        verdicts,
        [XDP_PASS; 5]
            .iter()
            .chain(&[XDP_DROP; 3])
            .copied()
            .collect::<Vec<_>>()
    );
    // Another source has cells of its own.
    assert_eq!(lab.syn([198, 19, 1, 1]), XDP_PASS);
    let c = lab.counters();
    assert_eq!(c.dropped[DropReason::SourceRate as usize], 3);
    assert_eq!(c.judged, 9);
}

#[test]
fn the_prefix_limit_catches_a_spread_source_range() {
    support::pin_to_cpu0();
    let mut lab = Lab::new(MitigationSettings {
        mode: Mode::Enforce,
        prefix_syn_rate: 1,
        prefix_syn_burst: 4,
        ..MitigationSettings::default()
    });
    // Ten hosts of one /24, one SYN each: the fifth and later are refused.
    let verdicts: Vec<u32> = (10..20).map(|h| lab.syn([198, 18, 9, h])).collect();
    assert_eq!(verdicts.iter().filter(|v| **v == XDP_DROP).count(), 6);
    assert_eq!(lab.counters().dropped[DropReason::PrefixRate as usize], 6);
    assert_eq!(
        lab.syn([198, 18, 10, 1]),
        XDP_PASS,
        "the next /24 is not touched"
    );
}

#[test]
fn allowlisted_sources_skip_the_limits() {
    support::pin_to_cpu0();
    let mut lab = Lab::new(MitigationSettings {
        allowlist: vec!["198.18.7.0/24".parse().unwrap()],
        ..enforce(1, 1)
    });
    assert!((0..5).all(|_| lab.syn(ATTACKER) == XDP_PASS));
    let c = lab.counters();
    assert_eq!(c.exempt[ExemptReason::Allowlist as usize], 5);
    assert_eq!(c.dropped, [0, 0, 0, 0, 0, 0]);
}

#[test]
fn dry_run_drops_nothing_and_counts_what_it_would() {
    support::pin_to_cpu0();
    let mut lab = Lab::new(MitigationSettings {
        mode: Mode::DryRun,
        ..enforce(1, 2)
    });
    assert!((0..6).all(|_| lab.syn(ATTACKER) == XDP_PASS));
    let c = lab.counters();
    assert_eq!(c.dropped, [0, 0, 0, 0, 0, 0]);
    assert_eq!(c.dry_run[DropReason::SourceRate as usize], 4);
}

#[test]
fn mode_off_judges_nothing() {
    support::pin_to_cpu0();
    let mut lab = Lab::new(MitigationSettings {
        mode: Mode::Off,
        ..enforce(1, 1)
    });
    lab.mitigation
        .block("198.18.7.66".parse().unwrap(), None)
        .expect("block");
    assert!((0..3).all(|_| lab.syn(ATTACKER) == XDP_PASS));
    assert_eq!(lab.counters(), MitigationCounters::default());
}

/// A real handshake from `client` (server role): its one SYN, the
/// server's SYN-ACK sent back, the final ACK. `client` is then protected.
fn complete_handshake(lab: &mut Lab, client: [u8; 4]) {
    let (x, y, port) = (1000u32, 9000u32, 41_000u16);
    let segment = |from_client: bool, flags: u8, seq: u32, ack: u32| {
        let mut frame = TcpFrame::v4(flags);
        frame.ip = if from_client {
            v4(client)
        } else {
            Ip::V4 {
                src: SERVER_V4,
                dst: client,
                options: Vec::new(),
                more_fragments: false,
            }
        };
        (frame.src_port, frame.dst_port) = if from_client { (port, 80) } else { (80, port) };
        (frame.seq, frame.ack) = (seq, ack);
        frame.build()
    };
    let run = |lab: &mut Lab, ingress: bool, bytes: Vec<u8>| {
        let opts = TestRunOptions {
            data_in: Some(&bytes),
            ..Default::default()
        };
        if ingress {
            lab.programs
                .xdp()
                .unwrap()
                .test_run(opts)
                .unwrap()
                .return_value
        } else {
            lab.programs
                .tc()
                .unwrap()
                .test_run(opts)
                .unwrap()
                .return_value
        }
    };
    assert_eq!(run(lab, true, segment(true, SYN, x, 0)), XDP_PASS);
    run(lab, false, segment(false, SYN | ACK, y, x + 1));
    assert_eq!(run(lab, true, segment(true, ACK, x + 1, y + 1)), XDP_PASS);
}

/// Waits out the grace of a source's own rate after its last completed
/// handshake (completed at `since`): what it is spared from then on is its
/// prefix's limit alone.
fn past_own_rate_grace(since: std::time::Instant) {
    let grace = Duration::from_nanos(monitor_common::mitigation::OWN_RATE_GRACE_NS);
    std::thread::sleep((grace + Duration::from_millis(100)).saturating_sub(since.elapsed()));
}

#[test]
fn a_source_that_completed_a_handshake_is_spared_its_prefix_limit() {
    support::pin_to_cpu0();
    let mut lab = Lab::new(MitigationSettings {
        mode: Mode::Enforce,
        prefix_syn_rate: 1,
        prefix_syn_burst: 2,
        ..MitigationSettings::default()
    });
    complete_handshake(&mut lab, ATTACKER);
    past_own_rate_grace(std::time::Instant::now());
    // Its neighbours use up the /24's burst until one is refused...
    let admitted = (0..10)
        .take_while(|_| lab.syn(NEIGHBOUR) == XDP_PASS)
        .count();
    assert!(admitted < 10, "the prefix limit never refused");
    // ...the protected source's SYNs are not.
    assert!((0..5).all(|_| lab.syn(ATTACKER) == XDP_PASS));
    let c = lab.counters();
    assert_eq!(c.exempt[ExemptReason::Protected as usize], 5);
    assert_eq!(c.dropped[DropReason::PrefixRate as usize], 1);
    assert_eq!(c.dropped.iter().sum::<u64>(), 1);
}

#[test]
fn a_source_that_stops_completing_handshakes_meets_its_own_rate() {
    support::pin_to_cpu0();
    let mut lab = Lab::new(enforce(1, 1));
    // The one SYN the burst allows is the handshake's. Right after it, the
    // source is spared its own rate (a busy client's next connections)...
    complete_handshake(&mut lab, ATTACKER);
    let completed = std::time::Instant::now();
    assert!((0..3).all(|_| lab.syn(ATTACKER) == XDP_PASS));
    assert_eq!(lab.counters().exempt[ExemptReason::Protected as usize], 3);
    // ...and once no handshake of its has completed for the grace time, a
    // flood from it meets the rate: one SYN a second.
    past_own_rate_grace(completed);
    let verdicts: Vec<u32> = (0..5).map(|_| lab.syn(ATTACKER)).collect();
    assert_eq!(verdicts, [XDP_PASS, XDP_DROP, XDP_DROP, XDP_DROP, XDP_DROP]);
    let c = lab.counters();
    assert_eq!(c.exempt[ExemptReason::Protected as usize], 3);
    assert_eq!(c.dropped[DropReason::SourceRate as usize], 4);
}

#[test]
fn an_automatic_prefix_block_spares_the_sources_that_completed_handshakes() {
    support::pin_to_cpu0();
    let mut lab = Lab::new(MitigationSettings {
        mode: Mode::Enforce,
        prefix_syn_rate: 1,
        prefix_syn_burst: 1,
        auto_block: true,
        auto_block_min_refused: 5,
        ..MitigationSettings::default()
    });
    complete_handshake(&mut lab, ATTACKER);
    let completed = std::time::Instant::now();
    // Spoofed SYNs from the rest of its /24: refused by the prefix limit,
    // and the /24 becomes an offender the next tick blocks.
    let refused = (100..120)
        .filter(|h| lab.syn([198, 18, 7, *h]) == XDP_DROP)
        .count() as u64;
    assert_eq!(
        lab.counters().dropped[DropReason::PrefixRate as usize],
        refused
    );
    assert!(
        refused >= 5,
        "only {refused} of 20 refused: the /24 is no offender"
    );
    lab.mitigation.tick(&["lo".to_owned()]).expect("tick");
    past_own_rate_grace(completed);
    let blocks = lab.mitigation.policy().blocks().expect("blocks");
    let cidrs: Vec<String> = blocks.iter().map(|b| b.cidr.to_string()).collect();
    assert_eq!(cidrs, ["198.18.7.0/24"]);
    // The real client still gets through; a stranger in the /24 does not.
    assert_eq!(lab.syn(ATTACKER), XDP_PASS);
    assert_eq!(lab.syn(NEIGHBOUR), XDP_DROP);
    let c = lab.counters();
    assert_eq!(c.dropped[DropReason::Blocklist as usize], 1);
    // An operator's block around it replaces it (the kernel finds the
    // longest match only) and holds for everyone.
    let wider: Cidr = "198.18.0.0/16".parse().unwrap();
    lab.mitigation.block(wider, None).expect("block");
    let blocks = lab.mitigation.policy().blocks().expect("blocks");
    let cidrs: Vec<String> = blocks.iter().map(|b| b.cidr.to_string()).collect();
    assert_eq!(cidrs, ["198.18.0.0/16"]);
    assert_eq!(lab.syn(ATTACKER), XDP_DROP);
}
