//! The loaded kernel programs fed crafted frames through BPF_PROG_TEST_RUN:
//! verdicts and exact counter deltas, for XDP (ingress) and TC (egress),
//! checked against the host parser on the same frames.
//!
//! Needs root (CAP_BPF, CAP_NET_ADMIN): run through `cargo xtask test`.

use aya::programs::{TestRun as _, TestRunOptions};
use monitor::{
    interfaces::Interface,
    loader::{CounterReader, Programs},
};
use monitor_common::{
    classify::{FlagClass, classify, tcp_flags::*},
    counters::{Direction, DirectionCounters},
    frames::{DOT1AD, DOT1Q, Ip, TcpFrame, arp_request, udp_v4},
    parse::{SkipReason, parse_tcp},
};

const XDP_PASS: u32 = 2;
/// TC_ACT_UNSPEC (-1): hand the packet to the next program / default.
const TC_ACT_UNSPEC: u32 = u32::MAX;

/// Test runs execute on the loopback device of the caller's namespace.
const LOOPBACK: u32 = 1;

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the TestRun tests load BPF programs and need root: run `cargo xtask test`"
    );
}

struct Harness {
    programs: Programs,
    counters: CounterReader,
    slot: u32,
}

impl Harness {
    fn new() -> Self {
        require_root();
        let mut programs = Programs::load().expect("load programs");
        let lo = Interface {
            name: "lo".into(),
            ifindex: LOOPBACK,
        };
        let slot = programs.register(&lo).expect("register lo");
        let counters = programs.take_counters().expect("counters");
        Self {
            programs,
            counters,
            slot,
        }
    }

    fn read(&self, direction: Direction) -> DirectionCounters {
        self.counters
            .read(self.slot, direction)
            .expect("read counters")
    }

    /// The verdict, or `None` where the kernel refuses to build an skb
    /// from the frame (TC test runs need a complete IP header).
    fn run(&mut self, direction: Direction, frame: &[u8]) -> Option<u32> {
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..Default::default()
        };
        let result = match direction {
            Direction::Ingress => self.programs.xdp().unwrap().test_run(opts),
            Direction::Egress => self.programs.tc().unwrap().test_run(opts),
        };
        match result {
            Ok(r) => Some(r.return_value),
            Err(_) if direction == Direction::Egress && ip_header_incomplete(frame) => None,
            Err(e) => panic!("test run of {} bytes on {direction:?}: {e}", frame.len()),
        }
    }

    /// Runs `frame` through the program of `direction` and returns the
    /// counter delta.
    fn delta(&mut self, direction: Direction, frame: &[u8]) -> Option<DirectionCounters> {
        let before = self.read(direction);
        let verdict = self.run(direction, frame)?;
        let expected = match direction {
            Direction::Ingress => XDP_PASS,
            Direction::Egress => TC_ACT_UNSPEC,
        };
        assert_eq!(verdict, expected, "verdict for {frame:02x?}");
        let after = self.read(direction);
        let mut delta = DirectionCounters::default();
        let pairs = after.tcp.iter().zip(&before.tcp);
        for (d, (a, b)) in delta.tcp.iter_mut().zip(pairs) {
            *d = a - b;
        }
        let pairs = after.skipped.iter().zip(&before.skipped);
        for (d, (a, b)) in delta.skipped.iter_mut().zip(pairs) {
            *d = a - b;
        }
        Some(delta)
    }
}

/// An untagged IPv4/IPv6 frame cut before the end of its fixed IP header.
fn ip_header_incomplete(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x00]) => frame.len() < 14 + 20,
        Some([0x86, 0xdd]) => frame.len() < 14 + 40,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Tcp(FlagClass),
    Skip(SkipReason),
}

fn only(expect: Expect) -> DirectionCounters {
    let mut c = DirectionCounters::default();
    match expect {
        Expect::Tcp(class) => c.tcp[class as usize] = 1,
        Expect::Skip(reason) => c.skipped[reason as usize] = 1,
    }
    c
}

fn host_view(frame: &[u8]) -> Expect {
    match parse_tcp(frame) {
        Ok(p) => Expect::Tcp(classify(p.flags, p.payload_len)),
        Err(reason) => Expect::Skip(reason),
    }
}

fn with_ipv6_ext(mut frame: TcpFrame, headers: &[(u8, Vec<u8>)]) -> TcpFrame {
    if let Ip::V6 { ext, .. } = &mut frame.ip {
        ext.extend_from_slice(headers);
    }
    frame
}

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::{Skip, Tcp};
    let pad_n = || vec![1, 4, 0, 0, 0, 0];
    let mut v4_options = TcpFrame::v4(ACK).with_payload(b"x");
    if let Ip::V4 { options, .. } = &mut v4_options.ip {
        *options = vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0];
    }
    let v6_ext = with_ipv6_ext(
        TcpFrame::v6(SYN).with_syn_options(),
        &[(0, pad_n()), (43, vec![0; 22]), (60, pad_n())],
    );
    let deep: Vec<(u8, Vec<u8>)> = (0..9).map(|_| (60, pad_n())).collect();
    let v6_deep = with_ipv6_ext(TcpFrame::v6(SYN), &deep);
    let v6_fragment = with_ipv6_ext(TcpFrame::v6(SYN), &[(44, vec![0, 1, 0, 0, 0, 1])]);
    let mut v4_fragment = TcpFrame::v4(SYN);
    if let Ip::V4 { more_fragments, .. } = &mut v4_fragment.ip {
        *more_fragments = true;
    }
    let mut bad_ihl = TcpFrame::v4(SYN).build();
    bad_ihl[14] = 0x44;
    let mut padded_ack = TcpFrame::v4(ACK).build();
    padded_ack.resize(60, 0);
    let syn = TcpFrame::v4(SYN).with_syn_options().build();
    let qinq = [DOT1AD, DOT1Q];
    vec![
        ("ipv4 syn", syn.clone(), Tcp(FlagClass::Syn)),
        (
            "ipv4 syn-ack",
            TcpFrame::v4(SYN | ACK).with_syn_options().build(),
            Tcp(FlagClass::SynAck),
        ),
        ("ipv4 pure ack, padded", padded_ack, Tcp(FlagClass::Ack)),
        (
            "ipv4 data",
            TcpFrame::v4(ACK | PSH).with_payload(b"GET /").build(),
            Tcp(FlagClass::Data),
        ),
        (
            "ipv4 fin",
            TcpFrame::v4(FIN | ACK).build(),
            Tcp(FlagClass::Fin),
        ),
        (
            "ipv4 rst",
            TcpFrame::v4(RST | ACK).build(),
            Tcp(FlagClass::Rst),
        ),
        (
            "syn+fin",
            TcpFrame::v4(SYN | FIN).build(),
            Tcp(FlagClass::Invalid),
        ),
        (
            "ipv4 with options",
            v4_options.build(),
            Tcp(FlagClass::Data),
        ),
        (
            "ipv6 syn-ack",
            TcpFrame::v6(SYN | ACK).build(),
            Tcp(FlagClass::SynAck),
        ),
        (
            "ipv6 with extension headers",
            v6_ext.build(),
            Tcp(FlagClass::Syn),
        ),
        (
            "ipv6 beyond the walk limit",
            v6_deep.build(),
            Skip(SkipReason::Ipv6ExtLimit),
        ),
        (
            "one vlan tag",
            TcpFrame::v4(SYN).with_vlans(&[DOT1Q]).build(),
            Tcp(FlagClass::Syn),
        ),
        (
            "two vlan tags",
            TcpFrame::v6(FIN | ACK).with_vlans(&qinq).build(),
            Tcp(FlagClass::Fin),
        ),
        (
            "three vlan tags",
            TcpFrame::v4(SYN)
                .with_vlans(&[DOT1AD, DOT1Q, DOT1Q])
                .build(),
            Skip(SkipReason::VlanDepth),
        ),
        ("arp", arp_request(), Skip(SkipReason::NonIp)),
        ("udp", udp_v4(), Skip(SkipReason::NonTcp)),
        (
            "ipv4 fragment",
            v4_fragment.build(),
            Skip(SkipReason::Fragment),
        ),
        (
            "ipv6 fragment",
            v6_fragment.build(),
            Skip(SkipReason::Fragment),
        ),
        (
            "ipv4 header length below 20",
            bad_ihl,
            Skip(SkipReason::Malformed),
        ),
        (
            "syn cut inside the tcp options",
            syn[..14 + 20 + 30].to_vec(),
            Skip(SkipReason::Truncated),
        ),
        (
            "syn cut inside the ip header",
            syn[..14 + 10].to_vec(),
            Skip(SkipReason::Truncated),
        ),
        (
            "ethernet header only",
            syn[..14].to_vec(),
            Skip(SkipReason::Truncated),
        ),
    ]
}

#[test]
fn every_frame_counts_once_in_the_right_cell() {
    let mut h = Harness::new();
    for direction in Direction::ALL {
        for (name, frame, expect) in cases() {
            assert_eq!(host_view(&frame), expect, "host parser on {name}");
            if let Some(delta) = h.delta(direction, &frame) {
                assert_eq!(delta, only(expect), "{name} on {direction:?}");
            }
        }
    }
}

#[test]
fn truncation_at_every_byte_is_counted_not_misread() {
    let mut h = Harness::new();
    let frames = [
        TcpFrame::v4(SYN)
            .with_syn_options()
            .with_vlans(&[DOT1Q])
            .build(),
        TcpFrame::v6(SYN | ACK).with_syn_options().build(),
    ];
    for frame in frames {
        // Test runs need at least an Ethernet header.
        for len in 14..frame.len() {
            let cut = &frame[..len];
            let expect = host_view(cut);
            assert_eq!(
                expect,
                Expect::Skip(SkipReason::Truncated),
                "host, {len} bytes"
            );
            for direction in Direction::ALL {
                if let Some(delta) = h.delta(direction, cut) {
                    assert_eq!(delta, only(expect), "{len} bytes, {direction:?}");
                }
            }
        }
    }
}

#[test]
fn unregistered_interfaces_are_not_counted() {
    require_root();
    let mut programs = Programs::load().expect("load programs");
    let counters = programs.take_counters().expect("counters");
    let frame = TcpFrame::v4(SYN).build();
    let opts = TestRunOptions {
        data_in: Some(&frame),
        ..Default::default()
    };
    let verdict = programs.xdp().unwrap().test_run(opts).unwrap();
    assert_eq!(verdict.return_value, XDP_PASS);
    for slot in 0..2 {
        for direction in Direction::ALL {
            assert_eq!(counters.read(slot, direction).unwrap().total(), 0);
        }
    }
}

#[test]
fn repeated_runs_count_every_repeat() {
    let mut h = Harness::new();
    let frame = TcpFrame::v4(SYN).build();
    let opts = TestRunOptions {
        data_in: Some(&frame),
        repeat: 1000,
        ..Default::default()
    };
    h.programs.xdp().unwrap().test_run(opts).unwrap();
    let ingress = h.read(Direction::Ingress);
    assert_eq!(ingress.tcp[FlagClass::Syn as usize], 1000);
    assert_eq!(ingress.total(), 1000);
}
