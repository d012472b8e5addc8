//! Handshake records, the part the kernel writes: one [`FlowRecord`] when
//! a handshake completes or is reset and when a tracked connection ends,
//! copied from the flow's own state. The daemon adds timeouts (found by
//! its sweep of the half-open table, not by the kernel), the TLS hellos
//! and the wall clock. [`FlowRecord::conn_state`] names the result in
//! Zeek's `conn_state` vocabulary.

use crate::flow::{CloseKind, FlowKey, FlowState, Initiator, RateLimit, Role, phase};

labelled_enum! {
    /// What settled the flow a record describes.
    pub enum RecordKind: u8 {
        /// The final ACK completed the handshake.
        Completed = 0 => "completed",
        /// A RST ended the handshake.
        Reset = 1 => "reset",
        /// The connection ended (both FINs acknowledged, or a RST).
        Closed = 2 => "closed",
        /// The handshake outlived its timeout (written by the daemon).
        TimedOut = 3 => "timed_out",
    }
}

labelled_enum! {
    /// How a handshake ended, as the `outcome` of a `tcp_handshake` record.
    pub enum HandshakeOutcome: u8 {
        Completed = 0 => "completed",
        /// The server answered the SYN with a RST: a closed port.
        Refused = 1 => "refused",
        /// A RST from either end after that.
        Reset = 2 => "reset",
        TimedOut = 3 => "timed_out",
    }
}

labelled_enum! {
    /// Zeek's `conn_state` values the monitor can tell apart. The client
    /// is Zeek's originator, the server its responder.
    pub enum ConnState: u8 {
        /// SYN seen, no reply.
        S0 = 0 => "S0",
        /// Established (Zeek counts a SYN answered by a SYN-ACK as
        /// established), not terminated.
        S1 = 1 => "S1",
        /// Established and closed by FINs both ways.
        Sf = 2 => "SF",
        /// The SYN answered by a RST.
        Rej = 3 => "REJ",
        /// The client sent a RST after the server's SYN-ACK.
        Rsto = 4 => "RSTO",
        /// The server sent a RST after its SYN-ACK.
        Rstr = 5 => "RSTR",
        /// The client sent a RST before any SYN-ACK.
        Rstos0 = 6 => "RSTOS0",
    }
}

/// One record from the kernel: the flow's key and state as the settling
/// segment left them (104 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FlowRecord {
    pub key: FlowKey,
    pub state: FlowState,
    /// `bpf_ktime_get_ns` of the settling segment (for a timeout: the
    /// moment the timeout passed).
    pub ts_ns: u64,
    /// [`RecordKind`] as u8.
    pub kind: u8,
    /// The settling segment (the RST, or the final ACK) came from the
    /// monitored host.
    pub from_local: u8,
    /// For [`RecordKind::Closed`]: [`CloseKind`] and [`Initiator`] as u8.
    pub close_kind: u8,
    pub initiator: u8,
    pub _pad: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<FlowRecord>() == 104);

/// Per-CPU counts of what became of the records the kernel had to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RecordCounters {
    pub written: u64,
    /// Not written: the CPU's record budget was spent.
    pub over_budget: u64,
    /// Not written: the ring buffer was full.
    pub ring_full: u64,
}

const _: () = assert!(core::mem::size_of::<RecordCounters>() == 24);

/// The record budget the programs read (`RECORD_CONFIG`).
pub type RecordBudget = RateLimit;

impl FlowRecord {
    pub fn kind(&self) -> RecordKind {
        match self.kind {
            0 => RecordKind::Completed,
            1 => RecordKind::Reset,
            2 => RecordKind::Closed,
            _ => RecordKind::TimedOut,
        }
    }

    pub fn role(&self) -> Role {
        self.state.role()
    }

    /// Whether the settling segment came from the client.
    pub fn from_client(&self) -> bool {
        (self.role() == Role::Client) == (self.from_local != 0)
    }

    /// Whether the server's SYN-ACK was seen before the end.
    pub fn synack_seen(&self) -> bool {
        self.state.phase != phase::SYN_SEEN
    }

    pub fn close_kind(&self) -> CloseKind {
        if self.close_kind == CloseKind::Reset as u8 {
            CloseKind::Reset
        } else {
            CloseKind::Graceful
        }
    }

    /// Who closed, from the flow's side: client, server or both.
    pub fn closed_by(&self) -> Option<Closer> {
        let local = match self.initiator {
            i if i == Initiator::Local as u8 => true,
            i if i == Initiator::Remote as u8 => false,
            _ => return Some(Closer::Both),
        };
        Some(if (self.role() == Role::Client) == local {
            Closer::Client
        } else {
            Closer::Server
        })
    }

    /// The handshake's outcome; `None` for a close record.
    pub fn outcome(&self) -> Option<HandshakeOutcome> {
        Some(match self.kind() {
            RecordKind::Completed => HandshakeOutcome::Completed,
            RecordKind::TimedOut => HandshakeOutcome::TimedOut,
            RecordKind::Reset if !self.synack_seen() && !self.from_client() => {
                HandshakeOutcome::Refused
            }
            RecordKind::Reset => HandshakeOutcome::Reset,
            RecordKind::Closed => return None,
        })
    }

    /// The flow's `conn_state` as Zeek's `conn_state()` would name it at
    /// this record's moment.
    pub fn conn_state(&self) -> ConnState {
        let by_client = self.from_client();
        match self.kind() {
            RecordKind::Completed => ConnState::S1,
            RecordKind::TimedOut if self.synack_seen() => ConnState::S1,
            RecordKind::TimedOut => ConnState::S0,
            RecordKind::Reset => match (self.synack_seen(), by_client) {
                (false, false) => ConnState::Rej,
                (false, true) => ConnState::Rstos0,
                (true, true) => ConnState::Rsto,
                (true, false) => ConnState::Rstr,
            },
            RecordKind::Closed => match (self.close_kind(), self.closed_by()) {
                (CloseKind::Graceful, _) => ConnState::Sf,
                (CloseKind::Reset, Some(Closer::Client)) => ConnState::Rsto,
                (CloseKind::Reset, _) => ConnState::Rstr,
            },
        }
    }
}

labelled_enum! {
    /// Who ended a connection, by role.
    pub enum Closer: u8 {
        Client = 0 => "client",
        Server = 1 => "server",
        /// Both FINs crossed.
        Both = 2 => "both",
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
