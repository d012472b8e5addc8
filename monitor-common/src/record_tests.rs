use super::*;
use crate::flow::FlowState;

fn record(role: Role, kind: RecordKind, synack: bool, from_local: bool) -> FlowRecord {
    let mut state = FlowState::on_syn(role, 1000, 5);
    if synack {
        state.phase = phase::SYN_ACK_SEEN;
    }
    FlowRecord {
        state,
        kind: kind as u8,
        from_local: from_local as u8,
        ..FlowRecord::default()
    }
}

fn closed(role: Role, kind: CloseKind, initiator: Initiator) -> FlowRecord {
    FlowRecord {
        close_kind: kind as u8,
        initiator: initiator as u8,
        ..record(role, RecordKind::Closed, true, false)
    }
}

#[test]
fn handshake_states_follow_zeek() {
    use ConnState::*;
    // (role, kind, SYN-ACK seen, settling segment from the local host)
    let cases = [
        (
            Role::Server,
            RecordKind::Completed,
            true,
            false,
            S1,
            "completed",
        ),
        (
            Role::Server,
            RecordKind::TimedOut,
            false,
            false,
            S0,
            "timed_out",
        ),
        // Zeek counts SYN + SYN-ACK as established.
        (
            Role::Server,
            RecordKind::TimedOut,
            true,
            false,
            S1,
            "timed_out",
        ),
        // The local server refused the remote SYN: a closed port.
        (Role::Server, RecordKind::Reset, false, true, Rej, "refused"),
        // The remote server refused the local client's SYN.
        (
            Role::Client,
            RecordKind::Reset,
            false,
            false,
            Rej,
            "refused",
        ),
        (
            Role::Server,
            RecordKind::Reset,
            false,
            false,
            Rstos0,
            "reset",
        ),
        (Role::Client, RecordKind::Reset, true, true, Rsto, "reset"),
        (Role::Server, RecordKind::Reset, true, false, Rsto, "reset"),
        (Role::Server, RecordKind::Reset, true, true, Rstr, "reset"),
        (Role::Client, RecordKind::Reset, true, false, Rstr, "reset"),
    ];
    for (role, kind, synack, local, state, outcome) in cases {
        let r = record(role, kind, synack, local);
        assert_eq!(r.conn_state(), state, "{role:?} {kind:?} {synack} {local}");
        assert_eq!(r.outcome().map(HandshakeOutcome::name), Some(outcome));
    }
}

#[test]
fn close_states_name_who_closed() {
    let cases = [
        (
            Role::Server,
            CloseKind::Graceful,
            Initiator::Remote,
            "SF",
            "client",
        ),
        (
            Role::Server,
            CloseKind::Graceful,
            Initiator::Local,
            "SF",
            "server",
        ),
        (
            Role::Client,
            CloseKind::Graceful,
            Initiator::Local,
            "SF",
            "client",
        ),
        (
            Role::Client,
            CloseKind::Graceful,
            Initiator::Simultaneous,
            "SF",
            "both",
        ),
        (
            Role::Server,
            CloseKind::Reset,
            Initiator::Remote,
            "RSTO",
            "client",
        ),
        (
            Role::Server,
            CloseKind::Reset,
            Initiator::Local,
            "RSTR",
            "server",
        ),
        (
            Role::Client,
            CloseKind::Reset,
            Initiator::Local,
            "RSTO",
            "client",
        ),
        (
            Role::Client,
            CloseKind::Reset,
            Initiator::Remote,
            "RSTR",
            "server",
        ),
    ];
    for (role, kind, initiator, state, by) in cases {
        let r = closed(role, kind, initiator);
        assert_eq!(
            r.conn_state().name(),
            state,
            "{role:?} {kind:?} {initiator:?}"
        );
        assert_eq!(r.closed_by().map(Closer::name), Some(by));
        assert_eq!(r.outcome(), None);
    }
}

#[test]
fn kinds_round_trip_and_unknown_is_a_timeout() {
    for kind in RecordKind::ALL {
        assert_eq!(record(Role::Server, kind, true, false).kind(), kind);
    }
    let odd = FlowRecord {
        kind: 200,
        ..FlowRecord::default()
    };
    assert_eq!(odd.kind(), RecordKind::TimedOut);
}
