//! The flow table through the loaded programs (BPF_PROG_TEST_RUN): whole
//! handshakes and closes fed segment by segment to XDP (received) and TC
//! (sent), with the kernel maps read back exactly.
//!
//! Needs root: run through `cargo xtask test`.

use crate::support;

use aya::programs::{TestRun as _, TestRunOptions};
use monitor::{
    flows::{FlowSettings, FlowTracker},
    interfaces::Interface,
    loader::{CounterReader, LoadSettings, Programs},
    ports::PortSettings,
};
use monitor_common::{
    classify::tcp_flags::{ACK, FIN, RST, SYN},
    counters::Direction,
    flow::{Anomaly, CloseKind, HandshakeCounters, Initiator, Role, Untracked, close_index},
    frames::{CLIENT_V4, SERVER_V4, TcpFrame},
    histogram::HistogramKind,
};

const CLIENT_PORT: u16 = 40000;
const SERVER_PORT: u16 = 443;

struct Lab {
    programs: Programs,
    counters: CounterReader,
    flows: FlowTracker,
    slot: u32,
}

impl Lab {
    fn new(settings: FlowSettings) -> Self {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "needs root: run `cargo xtask test`"
        );
        let mut programs =
            Programs::load_with(&LoadSettings::from(&settings)).expect("load programs");
        let lo = Interface {
            name: "lo".into(),
            ifindex: 1,
        };
        let slot = programs.register(&lo).expect("register lo");
        let counters = programs.take_counters().expect("counters");
        let flows = FlowTracker::new(&mut programs, settings, PortSettings::default(), vec![slot])
            .expect("flow maps");
        Self {
            programs,
            counters,
            flows,
            slot,
        }
    }

    /// A segment of the connection client:40000 -> server:443. `to_server`
    /// says which way it travels; `direction` whether the monitored host
    /// receives (XDP) or sends (TC) it.
    fn send(
        &mut self,
        direction: Direction,
        to_server: bool,
        client_port: u16,
        flags: u8,
        seq: u32,
        ack: u32,
    ) {
        let frame = if to_server {
            TcpFrame::v4_segment(
                CLIENT_V4,
                SERVER_V4,
                (client_port, SERVER_PORT),
                flags,
                seq,
                ack,
            )
        } else {
            TcpFrame::v4_segment(
                SERVER_V4,
                CLIENT_V4,
                (SERVER_PORT, client_port),
                flags,
                seq,
                ack,
            )
        };
        let bytes = frame.build();
        let opts = TestRunOptions {
            data_in: Some(&bytes),
            ..Default::default()
        };
        let result = match direction {
            Direction::Ingress => self.programs.xdp().unwrap().test_run(opts),
            Direction::Egress => self.programs.tc().unwrap().test_run(opts),
        };
        result.expect("test run");
    }

    fn stats(&self, role: Role) -> HandshakeCounters {
        self.flows
            .handshakes(self.slot, role)
            .expect("handshake counters")
    }

    fn histogram_count(&self, role: Role, kind: HistogramKind) -> u64 {
        self.flows
            .histogram(self.slot, role, kind)
            .expect("histogram")
            .count()
    }

    fn untracked(&self, direction: Direction, what: Untracked) -> u64 {
        self.counters.read(self.slot, direction).unwrap().untracked[what as usize]
    }
}

const X: u32 = 1_000;
const Y: u32 = 900_000;
use Direction::{Egress as OUT, Ingress as IN};

/// Server role: SYN in, SYN-ACK out, ACK in.
fn server_handshake(lab: &mut Lab, port: u16) {
    lab.send(IN, true, port, SYN, X, 0);
    lab.send(OUT, false, port, SYN | ACK, Y, X + 1);
    lab.send(IN, true, port, ACK, X + 1, Y + 1);
}

#[test]
fn server_role_handshake_completes_once() {
    let mut lab = Lab::new(FlowSettings::default());
    server_handshake(&mut lab, CLIENT_PORT);
    let s = lab.stats(Role::Server);
    assert_eq!((s.inserts, s.completed, s.reset), (1, 1, 0));
    assert_eq!(
        lab.histogram_count(Role::Server, HistogramKind::SynToSynAck),
        1
    );
    assert_eq!(
        lab.histogram_count(Role::Server, HistogramKind::SynAckToAck),
        1
    );
    assert_eq!(lab.stats(Role::Client), HandshakeCounters::default());
}

#[test]
fn a_reused_tuple_settles_its_stale_connection_at_the_synack() {
    let mut lab = Lab::new(FlowSettings::default());
    server_handshake(&mut lab, CLIENT_PORT);
    // The old connection's close was never seen; the tuple comes back with
    // new sequence numbers. Its SYN-ACK ends the old one (found through the
    // flow filter's bucket), so the final ACK completes the new one.
    let (x2, y2) = (X + 70_000, Y + 70_000);
    lab.send(IN, true, CLIENT_PORT, SYN, x2, 0);
    lab.send(OUT, false, CLIENT_PORT, SYN | ACK, y2, x2 + 1);
    lab.send(IN, true, CLIENT_PORT, ACK, x2 + 1, y2 + 1);
    let s = lab.stats(Role::Server);
    assert_eq!(
        (s.inserts, s.completed, s.promoted, s.removed),
        (2, 2, 2, 1)
    );
    // And the new connection closes as its own.
    lab.send(IN, true, CLIENT_PORT, RST, x2 + 1, 0);
    let s = lab.stats(Role::Server);
    assert_eq!(s.removed, 2);
    assert_eq!(s.closes.iter().sum::<u64>(), 1);
}

#[test]
fn client_role_handshake_and_reset_close() {
    let mut lab = Lab::new(FlowSettings::default());
    lab.send(OUT, true, CLIENT_PORT, SYN, X, 0);
    lab.send(IN, false, CLIENT_PORT, SYN | ACK, Y, X + 1);
    lab.send(OUT, true, CLIENT_PORT, ACK, X + 1, Y + 1);
    lab.send(IN, false, CLIENT_PORT, RST | ACK, Y + 1, X + 1);
    let c = lab.stats(Role::Client);
    assert_eq!((c.inserts, c.completed, c.removed), (1, 1, 1));
    assert_eq!(
        c.closes[close_index(CloseKind::Reset, Initiator::Remote)],
        1
    );
    assert_eq!(
        lab.histogram_count(Role::Client, HistogramKind::ConnectionDuration),
        1
    );
}

#[test]
fn retransmissions_and_bad_arithmetic() {
    let mut lab = Lab::new(FlowSettings::default());
    lab.send(IN, true, CLIENT_PORT, SYN, X, 0);
    lab.send(IN, true, CLIENT_PORT, SYN, X, 0);
    lab.send(OUT, false, CLIENT_PORT, SYN | ACK, Y, X + 5);
    lab.send(OUT, false, CLIENT_PORT, SYN | ACK, Y, X + 1);
    lab.send(OUT, false, CLIENT_PORT, SYN | ACK, Y, X + 1);
    lab.send(IN, true, CLIENT_PORT, ACK, X + 1, Y + 9);
    lab.send(IN, true, CLIENT_PORT, ACK, X + 1, Y + 1);
    let s = lab.stats(Role::Server);
    assert_eq!(
        (
            s.inserts,
            s.syn_retransmits,
            s.synack_retransmits,
            s.completed
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(s.anomalies[Anomaly::SynAckBadAck as usize], 1);
    assert_eq!(s.anomalies[Anomaly::AckBadAck as usize], 1);
    assert_eq!(s.anomalies[Anomaly::AckBadSeq as usize], 0);
}

#[test]
fn graceful_close_initiated_remotely() {
    let mut lab = Lab::new(FlowSettings::default());
    server_handshake(&mut lab, CLIENT_PORT);
    lab.send(IN, true, CLIENT_PORT, FIN | ACK, X + 1, Y + 1);
    lab.send(OUT, false, CLIENT_PORT, FIN | ACK, Y + 1, X + 2);
    lab.send(IN, true, CLIENT_PORT, ACK, X + 2, Y + 2);
    let s = lab.stats(Role::Server);
    assert_eq!(
        s.closes[close_index(CloseKind::Graceful, Initiator::Remote)],
        1
    );
    assert_eq!(s.closes.iter().sum::<u64>(), 1);
    assert_eq!(s.removed, 1);
}

#[test]
fn segments_of_no_flow_are_counted_not_tracked() {
    let mut lab = Lab::new(FlowSettings::default());
    // An ACK scan, stray FIN/RST/SYN-ACK, and an impossible SYN+FIN.
    lab.send(IN, true, CLIENT_PORT, ACK, 5, 5);
    lab.send(IN, true, CLIENT_PORT, FIN | ACK, 5, 5);
    lab.send(IN, true, CLIENT_PORT, RST, 5, 0);
    lab.send(IN, false, CLIENT_PORT, SYN | ACK, 5, 5);
    lab.send(IN, true, CLIENT_PORT, SYN | FIN, 5, 0);
    assert_eq!(lab.untracked(IN, Untracked::Fin), 1);
    assert_eq!(lab.untracked(IN, Untracked::Rst), 1);
    assert_eq!(lab.untracked(IN, Untracked::SynAck), 1);
    for role in Role::ALL {
        assert_eq!(lab.stats(role), HandshakeCounters::default(), "{role:?}");
    }
}

#[test]
fn insert_budget_caps_tracking_under_a_syn_burst() {
    let settings = FlowSettings {
        inserts_per_sec_per_cpu: 1,
        insert_burst: 3,
        ..FlowSettings::default()
    };
    let mut lab = Lab::new(settings);
    // The budget is per CPU: keep every test run on one.
    support::pin_to_cpu0();
    for port in 0..10 {
        lab.send(IN, true, 50_000 + port, SYN, X, 0);
    }
    let s = lab.stats(Role::Server);
    assert_eq!((s.inserts, s.insert_skipped), (3, 7));
}
