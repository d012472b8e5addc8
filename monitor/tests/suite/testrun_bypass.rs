//! Ways around a block, tried as an attacker would, through the loaded
//! XDP program (BPF_PROG_TEST_RUN): a SYN in IP fragments (IPv4 and IPv6),
//! later fragments from a blocked source, and a blocked source's SYN to a
//! port that SYN cookies protect. Exact verdicts and counters, in enforce,
//! dry-run and off.
//!
//! Needs root: run through `cargo xtask test`.

use crate::support;

use std::net::TcpListener;

use aya::programs::{TestRun as _, TestRunOptions};
use monitor::{
    events::EventSink,
    interfaces::Interface,
    loader::Programs,
    mitigation::{Mitigation, MitigationSettings, cidr::Cidr},
    syncookies::{SyncookieSettings, Syncookies},
};
use monitor_common::{
    classify::tcp_flags::{ACK, SYN},
    frames::{CLIENT_V6, DOT1Q, Ip, SERVER_V4, SERVER_V6, TcpFrame},
    mitigation::{DropReason, ExemptReason, MitigationCounters, Mode},
    parse::{MAX_IPV6_EXT_HEADERS, MAX_VLAN_TAGS, SkipReason},
    syncookie::{CookieEvent, SyncookieMode},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const BLOCKED: [u8; 4] = [198, 18, 9, 66];
const OTHER: [u8; 4] = [198, 18, 9, 67];
const ALLOWED: [u8; 4] = [198, 19, 9, 1];
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;

struct Lab {
    programs: Programs,
    mitigation: Mitigation,
    cookies: Option<Syncookies>,
    slot: u32,
    port: u16,
    _listener: TcpListener,
}

impl Lab {
    /// The mitigation in `mode` with `BLOCKED` blocked and `ALLOWED`
    /// allowlisted; with `cookies`, SYN cookies always on for the port.
    fn new(mode: Mode, cookies: bool) -> Self {
        support::require_root();
        let listener = TcpListener::bind("[::]:0").expect("listener");
        let port = listener.local_addr().unwrap().port();
        let mut programs = Programs::load().expect("load programs");
        let lo = Interface {
            name: "lo".into(),
            ifindex: 1,
        };
        let slot = programs.register(&lo).expect("register lo");
        let cookies = cookies.then(|| {
            let settings = SyncookieSettings {
                mode: SyncookieMode::Always,
                ports: vec![port],
                ..SyncookieSettings::default()
            };
            Syncookies::start(&mut programs, settings, &[], vec![("lo".into(), slot)])
                .expect("syncookies")
        });
        let settings = MitigationSettings {
            mode,
            allowlist: vec![cidr("198.19.9.0/24")],
            ..MitigationSettings::default()
        };
        let mut mitigation = Mitigation::start(
            &mut programs,
            settings,
            vec![("lo".into(), slot)],
            EventSink::disabled(),
        )
        .expect("mitigation maps");
        mitigation
            .block(cidr("198.18.9.66/32"), None)
            .expect("block");
        mitigation
            .block(cidr("2001:2:0:9::/64"), None)
            .expect("block v6");
        Self {
            programs,
            mitigation,
            cookies,
            slot,
            port,
            _listener: listener,
        }
    }

    fn run(&mut self, frame: &[u8]) -> u32 {
        let mut out = vec![0u8; 4096];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        };
        let xdp = self.programs.xdp().expect("xdp program");
        xdp.test_run(opts).expect("test run").return_value
    }

    fn syn(&self, ip: Ip) -> TcpFrame {
        let mut f = TcpFrame::new(ip, SYN).with_syn_options();
        f.src_port = 41_000;
        f.dst_port = self.port;
        f.seq = 7;
        f
    }

    fn counters(&self) -> MitigationCounters {
        self.mitigation.counters(self.slot).expect("counters")
    }

    fn cookie(&self, event: CookieEvent) -> u64 {
        let cookies = self.cookies.as_ref().expect("cookies on");
        cookies.counters(self.slot).expect("cookie counters").events[event as usize]
    }
}

fn cidr(s: &str) -> Cidr {
    s.parse().expect("cidr")
}

fn v4(src: [u8; 4], more_fragments: bool) -> Ip {
    Ip::V4 {
        src,
        dst: SERVER_V4,
        options: Vec::new(),
        more_fragments,
    }
}

/// An IPv6 source in the blocked /64, or outside it.
fn v6_src(blocked: bool) -> [u8; 16] {
    let mut src = CLIENT_V6;
    src[..8].copy_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, if blocked { 9 } else { 10 }]);
    src
}

/// IPv6 with a fragment header at `offset` (8-byte units), more to come.
fn v6_fragment(src: [u8; 16], offset: u16) -> Ip {
    let mut body = (offset << 3 | 1).to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 9]);
    Ip::V6 {
        src,
        dst: SERVER_V6,
        ext: vec![(IPV6_FRAGMENT, body)],
    }
}

/// `frame` as a later IPv4 fragment: offset 8 bytes, the last one.
fn later_v4_fragment(mut frame: Vec<u8>) -> Vec<u8> {
    frame[14 + 6] = 0x00;
    frame[14 + 7] = 0x01;
    // The header checksum is not what the program looks at.
    frame
}

fn dropped(c: &MitigationCounters, reason: DropReason) -> u64 {
    c.dropped[reason as usize]
}

#[test]
fn a_syn_in_fragments_is_dropped_from_any_source_in_enforce() {
    let mut lab = Lab::new(Mode::Enforce, false);
    // First fragments carrying a SYN: an unblocked source, IPv4 and IPv6.
    let frame = lab.syn(v4(OTHER, true)).build();
    assert_eq!(lab.run(&frame), XDP_DROP);
    let frame = lab.syn(v6_fragment(v6_src(false), 0)).build();
    assert_eq!(lab.run(&frame), XDP_DROP);
    // A first fragment of an ACK and an unfragmented SYN pass.
    let mut ack = lab.syn(v4(OTHER, true));
    ack.flags = ACK;
    assert_eq!(lab.run(&ack.build()), XDP_PASS);
    assert_eq!(lab.run(&lab.syn(v4(OTHER, false)).build()), XDP_PASS);
    let c = lab.counters();
    assert_eq!(dropped(&c, DropReason::SynFragment), 2);
    assert_eq!(c.dropped.iter().sum::<u64>(), 2);
    // Fragments are judged, but they are not SYNs the detector counts.
    assert_eq!(c.judged, 1);
}

#[test]
fn every_fragment_of_a_blocked_source_is_dropped() {
    let mut lab = Lab::new(Mode::Enforce, false);
    let mut ack = lab.syn(v4(BLOCKED, true));
    ack.flags = ACK;
    assert_eq!(lab.run(&ack.build()), XDP_DROP, "first fragment, no SYN");
    let later = later_v4_fragment(lab.syn(v4(BLOCKED, true)).build());
    assert_eq!(lab.run(&later), XDP_DROP, "later IPv4 fragment");
    let later6 = lab.syn(v6_fragment(v6_src(true), 3)).build();
    assert_eq!(lab.run(&later6), XDP_DROP, "later IPv6 fragment");
    // The same fragments from sources nobody blocked pass.
    let later = later_v4_fragment(lab.syn(v4(OTHER, true)).build());
    assert_eq!(lab.run(&later), XDP_PASS);
    let later6 = lab.syn(v6_fragment(v6_src(false), 3)).build();
    assert_eq!(lab.run(&later6), XDP_PASS);
    let c = lab.counters();
    assert_eq!(dropped(&c, DropReason::BlocklistFragment), 3);
    assert_eq!(c.dropped.iter().sum::<u64>(), 3);
}

#[test]
fn fragments_are_counted_not_dropped_in_dry_run_and_ignored_when_off() {
    let mut lab = Lab::new(Mode::DryRun, false);
    assert_eq!(lab.run(&lab.syn(v4(OTHER, true)).build()), XDP_PASS);
    let later = later_v4_fragment(lab.syn(v4(BLOCKED, true)).build());
    assert_eq!(lab.run(&later), XDP_PASS);
    let c = lab.counters();
    assert_eq!(c.dry_run[DropReason::SynFragment as usize], 1);
    assert_eq!(c.dry_run[DropReason::BlocklistFragment as usize], 1);
    assert_eq!(c.dropped.iter().sum::<u64>(), 0);

    let mut off = Lab::new(Mode::Off, false);
    let before = off.programs.take_counters().expect("counters");
    assert_eq!(off.run(&off.syn(v4(OTHER, true)).build()), XDP_PASS);
    let c = off.counters();
    assert_eq!(
        c.dry_run.iter().sum::<u64>() + c.dropped.iter().sum::<u64>(),
        0
    );
    // Still counted as a fragment the parser skipped.
    let skipped = before.read(off.slot, monitor_common::counters::Direction::Ingress);
    assert_eq!(skipped.unwrap().skipped[SkipReason::Fragment as usize], 1);
}

/// A SYN behind one VLAN tag more than the parser walks.
fn too_many_tags(lab: &Lab, src: [u8; 4]) -> Vec<u8> {
    lab.syn(v4(src, false))
        .with_vlans(&[DOT1Q; MAX_VLAN_TAGS + 1])
        .build()
}

/// A SYN behind one IPv6 extension header more than the parser walks.
fn too_many_headers(lab: &Lab, blocked: bool) -> Vec<u8> {
    let dest_opts = (IPV6_DEST_OPTS, vec![1, 4, 0, 0, 0, 0]);
    lab.syn(Ip::V6 {
        src: v6_src(blocked),
        dst: SERVER_V6,
        ext: vec![dest_opts; MAX_IPV6_EXT_HEADERS + 1],
    })
    .build()
}

#[test]
fn a_syn_behind_more_headers_than_the_parser_walks_is_dropped_in_enforce() {
    let mut lab = Lab::new(Mode::Enforce, false);
    // Linux strips any number of priority tags and walks any chain of
    // extension headers: the blocked sources' SYNs would reach it.
    assert_eq!(lab.run(&too_many_tags(&lab, BLOCKED)), XDP_DROP);
    assert_eq!(lab.run(&too_many_headers(&lab, true)), XDP_DROP);
    // Whoever sends them: their source is never read.
    assert_eq!(lab.run(&too_many_tags(&lab, OTHER)), XDP_DROP);
    assert_eq!(lab.run(&too_many_headers(&lab, false)), XDP_DROP);
    // One extension header of 2 KiB puts the TCP header past the parser's
    // window, though not past the frame.
    let long = lab
        .syn(Ip::V6 {
            src: v6_src(false),
            dst: SERVER_V6,
            ext: vec![(IPV6_DEST_OPTS, vec![0; 2046])],
        })
        .build();
    assert_eq!(lab.run(&long), XDP_DROP);
    // Eight extension headers are walked: the SYN is judged by its source.
    let eight = |blocked: bool| {
        lab.syn(Ip::V6 {
            src: v6_src(blocked),
            dst: SERVER_V6,
            ext: vec![(IPV6_DEST_OPTS, vec![1, 4, 0, 0, 0, 0]); MAX_IPV6_EXT_HEADERS],
        })
        .build()
    };
    let (blocked, other) = (eight(true), eight(false));
    assert_eq!(lab.run(&blocked), XDP_DROP);
    assert_eq!(lab.run(&other), XDP_PASS);
    // At the limits, the parser reads the SYN and judges its source.
    let at_limit = lab
        .syn(v4(BLOCKED, false))
        .with_vlans(&[DOT1Q; MAX_VLAN_TAGS])
        .build();
    assert_eq!(lab.run(&at_limit), XDP_DROP);
    let at_limit = lab
        .syn(v4(OTHER, false))
        .with_vlans(&[DOT1Q; MAX_VLAN_TAGS])
        .build();
    assert_eq!(lab.run(&at_limit), XDP_PASS);
    let c = lab.counters();
    assert_eq!(dropped(&c, DropReason::HeaderChain), 5);
    assert_eq!(dropped(&c, DropReason::Blocklist), 2);
    assert_eq!(c.dropped.iter().sum::<u64>(), 7);
}

#[test]
fn header_chains_are_counted_in_dry_run_and_ignored_when_off() {
    let mut lab = Lab::new(Mode::DryRun, false);
    assert_eq!(lab.run(&too_many_tags(&lab, BLOCKED)), XDP_PASS);
    assert_eq!(lab.run(&too_many_headers(&lab, true)), XDP_PASS);
    let c = lab.counters();
    assert_eq!(c.dry_run[DropReason::HeaderChain as usize], 2);
    assert_eq!(c.dropped.iter().sum::<u64>(), 0);

    let mut off = Lab::new(Mode::Off, false);
    assert_eq!(off.run(&too_many_tags(&off, BLOCKED)), XDP_PASS);
    assert_eq!(off.run(&too_many_headers(&off, true)), XDP_PASS);
    let c = off.counters();
    assert_eq!(
        c.dry_run.iter().sum::<u64>() + c.dropped.iter().sum::<u64>(),
        0
    );
}

#[test]
fn a_blocked_source_gets_no_cookie_and_an_allowlisted_one_goes_to_the_stack() {
    let mut lab = Lab::new(Mode::Enforce, true);
    assert_eq!(
        lab.run(&lab.syn(v4(OTHER, false)).build()),
        XDP_TX,
        "cookie"
    );
    assert_eq!(lab.run(&lab.syn(v4(BLOCKED, false)).build()), XDP_DROP);
    let blocked6 = TcpFrame::new(
        Ip::V6 {
            src: v6_src(true),
            dst: SERVER_V6,
            ext: Vec::new(),
        },
        SYN,
    );
    let mut blocked6 = blocked6.with_syn_options();
    blocked6.dst_port = lab.port;
    assert_eq!(lab.run(&blocked6.build()), XDP_DROP);
    assert_eq!(lab.run(&lab.syn(v4(ALLOWED, false)).build()), XDP_PASS);
    assert_eq!(lab.cookie(CookieEvent::Sent), 1);
    let c = lab.counters();
    assert_eq!(dropped(&c, DropReason::Blocklist), 2);
    assert_eq!(c.exempt[ExemptReason::Allowlist as usize], 1);
    assert_eq!(c.judged, 4);

    // In dry-run the blocked source's SYN is counted, then answered as if
    // nothing had judged it.
    let mut dry = Lab::new(Mode::DryRun, true);
    assert_eq!(dry.run(&dry.syn(v4(BLOCKED, false)).build()), XDP_TX);
    let c = dry.counters();
    assert_eq!(c.dry_run[DropReason::Blocklist as usize], 1);
    assert_eq!(
        c.dry_run.iter().sum::<u64>(),
        1,
        "judged once, not again by the limits"
    );
    assert_eq!(dry.cookie(CookieEvent::Sent), 1);
}
