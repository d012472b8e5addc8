//! The TCP handshake and termination state machine, as pure logic: given
//! a tracked flow (or none) and one segment, what happened. The kernel
//! programs apply the [`Outcome`] to their maps; the host tests drive it
//! through whole connections.

use crate::{
    classify::FlagClass,
    flow::{Anomaly, CloseKind, FlowState, Initiator, Role, Untracked, fin_bits, phase},
};

/// What the state machine needs of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub class: FlagClass,
    /// Sent by the monitored host (egress) rather than received.
    pub from_local: bool,
    pub seq: u32,
    pub ack: u32,
    pub payload_len: u32,
}

/// What one segment did to a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Nothing,
    /// A SYN for an untracked flow, or one that replaces a tracked flow
    /// (a new ISN, or a tuple reused after close): track it from here.
    Start(Role),
    SynRetransmit,
    /// First SYN-ACK: `syn_to_synack_ns` since the first SYN.
    SynAck {
        syn_to_synack_ns: u64,
    },
    SynAckRetransmit,
    /// Final ACK: `synack_to_ack_ns` since the first SYN-ACK.
    Completed {
        synack_to_ack_ns: u64,
    },
    Anomaly(Anomaly),
    /// RST during the handshake; the flow is over.
    HandshakeReset,
    /// The connection ended; the flow is over.
    Closed {
        kind: CloseKind,
        initiator: Initiator,
        duration_ns: u64,
    },
    Untracked(Untracked),
}

// `FlowState::initiator` values (0: nobody closed yet).
const LOCAL: u8 = Initiator::Local as u8 + 1;
const REMOTE: u8 = Initiator::Remote as u8 + 1;
const SIMULTANEOUS: u8 = Initiator::Simultaneous as u8 + 1;

/// `a >= b` in sequence space (RFC 9293 modular comparison).
#[inline(always)]
const fn seq_ge(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// Advances `flow` (the tracked state of the segment's flow, if any) by one
/// segment at time `now`.
#[inline(always)]
pub fn on_segment(flow: Option<&mut FlowState>, seg: &Segment, now: u64) -> Outcome {
    let Some(flow) = flow else {
        return match seg.class {
            FlagClass::Syn => Outcome::Start(Role::of_syn(seg.from_local)),
            FlagClass::SynAck => Outcome::Untracked(Untracked::SynAck),
            FlagClass::Fin => Outcome::Untracked(Untracked::Fin),
            FlagClass::Rst => Outcome::Untracked(Untracked::Rst),
            _ => Outcome::Nothing,
        };
    };
    // The client is the remote end for a server, the local end for a client.
    let from_client = (flow.role() == Role::Client) == seg.from_local;
    let outcome = match seg.class {
        FlagClass::Syn => on_syn(flow, seg, from_client),
        FlagClass::SynAck => on_syn_ack(flow, seg, from_client, now),
        FlagClass::Rst => on_rst(flow, seg, from_client, now),
        FlagClass::Ack | FlagClass::Data | FlagClass::Fin => {
            on_ack_or_fin(flow, seg, from_client, now)
        }
        FlagClass::Invalid => Outcome::Nothing,
    };
    note(flow, outcome);
    outcome
}

/// Keeps what the flow's record reports: its retransmissions and what the
/// sequence checks found.
#[inline(always)]
fn note(flow: &mut FlowState, outcome: Outcome) {
    match outcome {
        Outcome::SynRetransmit => flow.syn_retransmits = flow.syn_retransmits.saturating_add(1),
        Outcome::SynAckRetransmit => {
            flow.synack_retransmits = flow.synack_retransmits.saturating_add(1);
        }
        Outcome::Anomaly(anomaly) => flow.anomalies |= 1 << (anomaly as u8 & 7),
        _ => {}
    }
}

#[inline(always)]
fn on_syn(flow: &FlowState, seg: &Segment, from_client: bool) -> Outcome {
    if phase::is_half_open(flow.phase) && from_client && seg.seq == flow.client_isn {
        Outcome::SynRetransmit
    } else {
        Outcome::Start(Role::of_syn(seg.from_local))
    }
}

#[inline(always)]
fn on_syn_ack(flow: &mut FlowState, seg: &Segment, from_client: bool, now: u64) -> Outcome {
    if from_client {
        // Simultaneous open: rare enough to leave untracked.
        return Outcome::Nothing;
    }
    if flow.phase == phase::SYN_SEEN {
        if seg.ack != flow.client_isn.wrapping_add(1) {
            return Outcome::Anomaly(Anomaly::SynAckBadAck);
        }
        flow.server_isn = seg.seq;
        flow.synack_ns = now;
        flow.phase = phase::SYN_ACK_SEEN;
        return Outcome::SynAck {
            syn_to_synack_ns: now.saturating_sub(flow.syn_ns),
        };
    }
    if seg.seq == flow.server_isn {
        // Also after completion: the server had not seen the final ACK.
        Outcome::SynAckRetransmit
    } else {
        Outcome::Nothing
    }
}

#[inline(always)]
fn on_rst(flow: &FlowState, seg: &Segment, from_client: bool, now: u64) -> Outcome {
    if phase::is_half_open(flow.phase) {
        return if rst_ends_handshake(flow, seg, from_client) {
            Outcome::HandshakeReset
        } else {
            Outcome::Anomaly(Anomaly::RstBadSeq)
        };
    }
    Outcome::Closed {
        kind: CloseKind::Reset,
        initiator: if seg.from_local {
            Initiator::Local
        } else {
            Initiator::Remote
        },
        duration_ns: now.saturating_sub(flow.established_ns),
    }
}

/// Whether a RST is one the other end would accept (RFC 9293 3.10.7.3/4),
/// so that it really ends the handshake. A server answers a bad final ACK
/// with `<SEQ=SEG.ACK><CTL=RST>` and keeps the request: that RST carries
/// the bad ack number as its seq and must not end the handshake here.
#[inline(always)]
fn rst_ends_handshake(flow: &FlowState, seg: &Segment, from_client: bool) -> bool {
    let client_next = flow.client_isn.wrapping_add(1);
    if from_client {
        return seg.seq == client_next || seg.seq == flow.client_isn;
    }
    if flow.phase == phase::SYN_SEEN {
        // The answer to a SYN: RST/ACK acknowledging it (a closed port).
        return seg.ack == client_next;
    }
    seg.seq == flow.server_isn.wrapping_add(1) || seg.ack == client_next && seg.seq == 0
}

#[inline(always)]
fn on_ack_or_fin(flow: &mut FlowState, seg: &Segment, from_client: bool, now: u64) -> Outcome {
    if flow.phase == phase::SYN_ACK_SEEN {
        if !from_client || seg.class == FlagClass::Fin {
            return Outcome::Nothing;
        }
        return complete(flow, seg, now);
    }
    if flow.phase < phase::ESTABLISHED {
        return Outcome::Nothing;
    }
    note_ack(flow, seg);
    if seg.class == FlagClass::Fin {
        note_fin(flow, seg);
    }
    if flow.fins == fin_bits::ALL {
        let initiator = match flow.initiator {
            LOCAL => Initiator::Local,
            REMOTE => Initiator::Remote,
            _ => Initiator::Simultaneous,
        };
        return Outcome::Closed {
            kind: CloseKind::Graceful,
            initiator,
            duration_ns: now.saturating_sub(flow.established_ns),
        };
    }
    Outcome::Nothing
}

#[inline(always)]
fn complete(flow: &mut FlowState, seg: &Segment, now: u64) -> Outcome {
    if seg.seq != flow.client_isn.wrapping_add(1) {
        return Outcome::Anomaly(Anomaly::AckBadSeq);
    }
    if seg.ack != flow.server_isn.wrapping_add(1) {
        return Outcome::Anomaly(Anomaly::AckBadAck);
    }
    flow.phase = phase::ESTABLISHED;
    flow.established_ns = now;
    Outcome::Completed {
        synack_to_ack_ns: now.saturating_sub(flow.synack_ns),
    }
}

/// Marks the FIN of the other side acknowledged when this segment's ack
/// covers it.
#[inline(always)]
fn note_ack(flow: &mut FlowState, seg: &Segment) {
    if seg.from_local {
        if flow.fins & fin_bits::REMOTE_FIN != 0 && seq_ge(seg.ack, flow.remote_fin_end) {
            flow.fins |= fin_bits::REMOTE_FIN_ACKED;
        }
    } else if flow.fins & fin_bits::LOCAL_FIN != 0 && seq_ge(seg.ack, flow.local_fin_end) {
        flow.fins |= fin_bits::LOCAL_FIN_ACKED;
    }
}

#[inline(always)]
fn note_fin(flow: &mut FlowState, seg: &Segment) {
    // The FIN occupies one sequence number after the payload.
    let fin_end = seg.seq.wrapping_add(seg.payload_len).wrapping_add(1);
    let (own, other, other_acked) = if seg.from_local {
        (
            fin_bits::LOCAL_FIN,
            fin_bits::REMOTE_FIN,
            fin_bits::REMOTE_FIN_ACKED,
        )
    } else {
        (
            fin_bits::REMOTE_FIN,
            fin_bits::LOCAL_FIN,
            fin_bits::LOCAL_FIN_ACKED,
        )
    };
    if flow.fins & own != 0 {
        return; // retransmitted FIN
    }
    if seg.from_local {
        flow.local_fin_end = fin_end;
    } else {
        flow.remote_fin_end = fin_end;
    }
    flow.fins |= own;
    flow.phase = phase::CLOSING;
    if flow.fins & other == 0 {
        flow.initiator = if seg.from_local { LOCAL } else { REMOTE };
    } else if flow.fins & other_acked == 0 {
        // Our FIN left before the other side's FIN was acknowledged by us:
        // the two FINs crossed.
        flow.initiator = SIMULTANEOUS;
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
