use super::*;
use crate::flow::FlowState;

const MS: u64 = 1_000_000;

/// One connection seen from the monitored host, driven segment by segment.
struct Conn {
    flow: Option<FlowState>,
    now: u64,
}

impl Conn {
    fn new() -> Self {
        Self {
            flow: None,
            now: 1_000 * MS,
        }
    }

    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = 1_000 * MS + ms * MS;
        self
    }

    fn seg(&mut self, class: FlagClass, from_local: bool, seq: u32, ack: u32) -> Outcome {
        self.seg_len(class, from_local, seq, ack, 0)
    }

    fn seg_len(
        &mut self,
        class: FlagClass,
        from_local: bool,
        seq: u32,
        ack: u32,
        len: u32,
    ) -> Outcome {
        let seg = Segment {
            class,
            from_local,
            seq,
            ack,
            payload_len: len,
        };
        let out = on_segment(self.flow.as_mut(), &seg, self.now);
        match out {
            Outcome::Start(role) => self.flow = Some(FlowState::on_syn(role, seq, self.now)),
            Outcome::HandshakeReset | Outcome::Closed { .. } => self.flow = None,
            _ => {}
        }
        out
    }
}

// Client ISN x, server ISN y; "in" = received by the monitored host.
const X: u32 = 1000;
const Y: u32 = 5000;
const IN: bool = false;
const OUT: bool = true;

fn server_handshake(c: &mut Conn) {
    assert_eq!(
        c.at(0).seg(FlagClass::Syn, IN, X, 0),
        Outcome::Start(Role::Server)
    );
    assert_eq!(
        c.at(2).seg(FlagClass::SynAck, OUT, Y, X + 1),
        Outcome::SynAck {
            syn_to_synack_ns: 2 * MS
        }
    );
    assert_eq!(
        c.at(12).seg(FlagClass::Ack, IN, X + 1, Y + 1),
        Outcome::Completed {
            synack_to_ack_ns: 10 * MS
        }
    );
}

#[test]
fn server_role_handshake() {
    let mut c = Conn::new();
    server_handshake(&mut c);
    assert_eq!(c.flow.unwrap().phase, phase::ESTABLISHED);
}

#[test]
fn client_role_handshake() {
    let mut c = Conn::new();
    assert_eq!(
        c.seg(FlagClass::Syn, OUT, X, 0),
        Outcome::Start(Role::Client)
    );
    assert_eq!(
        c.at(7).seg(FlagClass::SynAck, IN, Y, X + 1),
        Outcome::SynAck {
            syn_to_synack_ns: 7 * MS
        }
    );
    assert_eq!(
        c.at(7).seg(FlagClass::Ack, OUT, X + 1, Y + 1),
        Outcome::Completed {
            synack_to_ack_ns: 0
        }
    );
}

#[test]
fn retransmissions_are_not_new_handshakes() {
    let mut c = Conn::new();
    c.seg(FlagClass::Syn, IN, X, 0);
    assert_eq!(
        c.at(1000).seg(FlagClass::Syn, IN, X, 0),
        Outcome::SynRetransmit
    );
    c.at(1001).seg(FlagClass::SynAck, OUT, Y, X + 1);
    assert_eq!(
        c.at(2001).seg(FlagClass::SynAck, OUT, Y, X + 1),
        Outcome::SynAckRetransmit
    );
    // syn_to_synack counts from the first SYN.
    assert_eq!(
        c.flow.unwrap().synack_ns - c.flow.unwrap().syn_ns,
        1001 * MS
    );
    assert_eq!(
        c.at(2002).seg(FlagClass::Ack, IN, X + 1, Y + 1),
        Outcome::Completed {
            synack_to_ack_ns: 1001 * MS
        }
    );
    // The flow's record reports them.
    let flow = c.flow.unwrap();
    assert_eq!((flow.syn_retransmits, flow.synack_retransmits), (1, 1));
    assert_eq!(flow.anomalies, 0);
}

#[test]
fn a_new_isn_restarts_the_handshake() {
    let mut c = Conn::new();
    c.seg(FlagClass::Syn, IN, X, 0);
    assert_eq!(
        c.seg(FlagClass::Syn, IN, X + 77, 0),
        Outcome::Start(Role::Server)
    );
}

#[test]
fn arithmetic_mismatches_are_anomalies_and_do_not_advance() {
    let mut c = Conn::new();
    c.seg(FlagClass::Syn, IN, X, 0);
    assert_eq!(
        c.seg(FlagClass::SynAck, OUT, Y, X + 2),
        Outcome::Anomaly(Anomaly::SynAckBadAck)
    );
    c.seg(FlagClass::SynAck, OUT, Y, X + 1);
    assert_eq!(
        c.seg(FlagClass::Ack, IN, X, Y + 1),
        Outcome::Anomaly(Anomaly::AckBadSeq)
    );
    assert_eq!(
        c.seg(FlagClass::Ack, IN, X + 1, Y + 2),
        Outcome::Anomaly(Anomaly::AckBadAck)
    );
    assert_eq!(c.flow.unwrap().phase, phase::SYN_ACK_SEEN);
    assert!(matches!(
        c.seg(FlagClass::Ack, IN, X + 1, Y + 1),
        Outcome::Completed { .. }
    ));
    // Each finding is kept for the record, once.
    let expected = 1 << Anomaly::SynAckBadAck as u8
        | 1 << Anomaly::AckBadSeq as u8
        | 1 << Anomaly::AckBadAck as u8;
    assert_eq!(c.flow.unwrap().anomalies, expected);
}

#[test]
fn reset_during_the_handshake() {
    let mut c = Conn::new();
    c.seg(FlagClass::Syn, OUT, X, 0);
    assert_eq!(c.seg(FlagClass::Rst, IN, 0, X + 1), Outcome::HandshakeReset);
    assert!(c.flow.is_none());
}

#[test]
fn a_server_rst_for_a_bad_ack_does_not_end_the_handshake() {
    let mut c = Conn::new();
    c.seg(FlagClass::Syn, IN, X, 0);
    c.seg(FlagClass::SynAck, OUT, Y, X + 1);
    assert_eq!(
        c.seg(FlagClass::Ack, IN, X + 1, Y + 2),
        Outcome::Anomaly(Anomaly::AckBadAck)
    );
    // The server answers with <SEQ=SEG.ACK><CTL=RST> and keeps the request.
    assert_eq!(
        c.seg(FlagClass::Rst, OUT, Y + 2, 0),
        Outcome::Anomaly(Anomaly::RstBadSeq)
    );
    assert!(matches!(
        c.seg(FlagClass::Ack, IN, X + 1, Y + 1),
        Outcome::Completed { .. }
    ));
}

#[test]
fn rsts_that_do_end_a_handshake() {
    // Closed port: RST/ACK acknowledging the SYN.
    let mut c = Conn::new();
    c.seg(FlagClass::Syn, OUT, X, 0);
    assert_eq!(c.seg(FlagClass::Rst, IN, 0, X + 1), Outcome::HandshakeReset);
    // A client refusing the SYN-ACK: seq = its ISN + 1.
    let mut c = Conn::new();
    c.seg(FlagClass::Syn, IN, X, 0);
    c.seg(FlagClass::SynAck, OUT, Y, X + 1);
    assert_eq!(c.seg(FlagClass::Rst, IN, X + 1, 0), Outcome::HandshakeReset);
    // The server aborting after its SYN-ACK: seq = its ISN + 1.
    let mut c = Conn::new();
    c.seg(FlagClass::Syn, IN, X, 0);
    c.seg(FlagClass::SynAck, OUT, Y, X + 1);
    assert_eq!(
        c.seg(FlagClass::Rst, OUT, Y + 1, 0),
        Outcome::HandshakeReset
    );
}

#[test]
fn graceful_close_initiated_remotely() {
    let mut c = Conn::new();
    server_handshake(&mut c);
    let (cs, ss) = (X + 1 + 10, Y + 1 + 20); // after some data
    assert_eq!(c.at(100).seg(FlagClass::Fin, IN, cs, ss), Outcome::Nothing);
    // Server ACKs the FIN, then sends its own FIN, client ACKs it.
    assert_eq!(c.seg(FlagClass::Ack, OUT, ss, cs + 1), Outcome::Nothing);
    assert_eq!(c.seg(FlagClass::Fin, OUT, ss, cs + 1), Outcome::Nothing);
    assert_eq!(
        c.at(112).seg(FlagClass::Ack, IN, cs + 1, ss + 1),
        Outcome::Closed {
            kind: CloseKind::Graceful,
            initiator: Initiator::Remote,
            duration_ns: 100 * MS,
        }
    );
}

#[test]
fn graceful_close_initiated_locally_with_data_on_the_fin() {
    let mut c = Conn::new();
    server_handshake(&mut c);
    let (cs, ss) = (X + 1, Y + 1);
    assert_eq!(c.seg_len(FlagClass::Fin, OUT, ss, cs, 5), Outcome::Nothing);
    // Client: FIN+ACK acknowledging ours (three-way close).
    assert_eq!(c.seg(FlagClass::Fin, IN, cs, ss + 6), Outcome::Nothing);
    assert!(matches!(
        c.seg(FlagClass::Ack, OUT, ss + 6, cs + 1),
        Outcome::Closed {
            kind: CloseKind::Graceful,
            initiator: Initiator::Local,
            ..
        }
    ));
}

#[test]
fn simultaneous_close() {
    let mut c = Conn::new();
    server_handshake(&mut c);
    let (cs, ss) = (X + 1, Y + 1);
    // Both FINs leave before either is seen by the other end.
    c.seg(FlagClass::Fin, OUT, ss, cs);
    c.seg(FlagClass::Fin, IN, cs, ss);
    c.seg(FlagClass::Ack, OUT, ss + 1, cs + 1);
    assert!(matches!(
        c.seg(FlagClass::Ack, IN, cs + 1, ss + 1),
        Outcome::Closed {
            kind: CloseKind::Graceful,
            initiator: Initiator::Simultaneous,
            ..
        }
    ));
}

#[test]
fn reset_close_names_who_sent_it() {
    let mut c = Conn::new();
    server_handshake(&mut c);
    assert!(matches!(
        c.at(50).seg(FlagClass::Rst, OUT, Y + 1, 0),
        Outcome::Closed { kind: CloseKind::Reset, initiator: Initiator::Local, duration_ns }
            if duration_ns == 38 * MS
    ));
}

#[test]
fn segments_without_a_flow() {
    let mut c = Conn::new();
    assert_eq!(c.seg(FlagClass::Ack, IN, 1, 1), Outcome::Nothing);
    assert_eq!(
        c.seg(FlagClass::Fin, IN, 1, 1),
        Outcome::Untracked(Untracked::Fin)
    );
    assert_eq!(
        c.seg(FlagClass::Rst, IN, 1, 1),
        Outcome::Untracked(Untracked::Rst)
    );
    assert_eq!(
        c.seg(FlagClass::SynAck, IN, 1, 1),
        Outcome::Untracked(Untracked::SynAck)
    );
}

#[test]
fn sequence_numbers_wrap() {
    let mut c = Conn::new();
    let x = u32::MAX;
    let y = u32::MAX - 1;
    c.seg(FlagClass::Syn, IN, x, 0);
    c.seg(FlagClass::SynAck, OUT, y, x.wrapping_add(1));
    assert!(matches!(
        c.seg(FlagClass::Ack, IN, 0, y.wrapping_add(1)),
        Outcome::Completed { .. }
    ));
    c.seg(FlagClass::Fin, IN, 0, u32::MAX);
    c.seg(FlagClass::Fin, OUT, u32::MAX, 1);
    assert!(matches!(
        c.seg(FlagClass::Ack, IN, 1, 0),
        Outcome::Closed { .. }
    ));
}

#[test]
fn insert_budget_refills_at_the_configured_rate() {
    use crate::flow::{RateLimit, TokenBucket};
    let cfg = RateLimit {
        per_sec_per_cpu: 1000,
        burst: 10,
    };
    let mut b = TokenBucket::default();
    let t0 = 5_000 * MS;
    let taken = (0..20).filter(|_| b.take(&cfg, t0)).count();
    assert_eq!(taken, 10);
    // 1000/s: one token per ms.
    assert!(!b.take(&cfg, t0));
    assert!(b.take(&cfg, t0 + MS));
    assert!(!b.take(&cfg, t0 + MS));
    let later = (0..20).filter(|_| b.take(&cfg, t0 + 100 * MS)).count();
    assert_eq!(later, 10);
    let off = RateLimit {
        per_sec_per_cpu: 0,
        burst: 10,
    };
    assert!(!TokenBucket::default().take(&off, t0));
}
