//! The kernel's TCP socket states and the layout of the tracepoint
//! counters (`monitor-ebpf/src/kernel_state.rs`) the daemon reads.
//!
//! State numbers are the kernel's (include/net/tcp_states.h), not an
//! encoding of ours: the tracepoint hands them over as they are. Transition
//! cells are indexed `(from - 1) * 12 + (to - 1)`, the dense form of
//! `from * 12 + to` over states 1..=12; any number outside that range lands
//! in one extra [`OTHER_CELL`], so a kernel that grows a state cannot make
//! the program index out of bounds.

/// A TCP socket state as the kernel numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    /// Request sockets (a SYN received, no full socket yet). Never reported
    /// by `inet_sock_set_state`, which only sees full sockets.
    NewSynRecv = 12,
}

impl TcpState {
    pub const COUNT: usize = 12;
    /// In kernel order, so `ALL[n - 1]` is state `n`.
    pub const ALL: [Self; Self::COUNT] = [
        Self::Established,
        Self::SynSent,
        Self::SynRecv,
        Self::FinWait1,
        Self::FinWait2,
        Self::TimeWait,
        Self::Close,
        Self::CloseWait,
        Self::LastAck,
        Self::Listen,
        Self::Closing,
        Self::NewSynRecv,
    ];

    /// The state the kernel numbers `raw`, if it is one we know.
    pub const fn from_raw(raw: i32) -> Option<Self> {
        if raw >= 1 && raw <= Self::COUNT as i32 {
            Some(Self::ALL[(raw - 1) as usize])
        } else {
            None
        }
    }

    /// Label value: the protocol's name for the state (RFC 9293 spelling,
    /// as in tcp_states.h and `ss`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait1 => "FIN_WAIT1",
            Self::FinWait2 => "FIN_WAIT2",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::Closing => "CLOSING",
            Self::NewSynRecv => "NEW_SYN_RECV",
        }
    }
}

/// Cells for every (from, to) pair of known states.
pub const TRANSITION_CELLS: usize = TcpState::COUNT * TcpState::COUNT;
/// The cell for a transition naming a state number we do not know.
pub const OTHER_CELL: usize = TRANSITION_CELLS;
/// Label value of both `from` and `to` for [`OTHER_CELL`].
pub const OTHER_NAME: &str = "other";

/// Cell of the transition `from -> to`, as the kernel numbers the states;
/// always `<= OTHER_CELL`.
#[inline(always)]
pub const fn transition_index(from: i32, to: i32) -> usize {
    let n = TcpState::COUNT as i32;
    if from < 1 || from > n || to < 1 || to > n {
        return OTHER_CELL;
    }
    ((from - 1) * n + (to - 1)) as usize
}

/// The transition a cell counts; `None` for [`OTHER_CELL`] (and beyond).
pub const fn transition_of(index: usize) -> Option<(TcpState, TcpState)> {
    if index >= TRANSITION_CELLS {
        return None;
    }
    Some((
        TcpState::ALL[index / TcpState::COUNT],
        TcpState::ALL[index % TcpState::COUNT],
    ))
}

/// Events other than state changes, by index into
/// [`KernelStateCounters::events`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum KernelEvent {
    /// `tcp_retransmit_synack`: a listener sent a SYN-ACK again.
    SynackRetransmit = 0,
    /// `tcp_send_reset`: this namespace's stack sent a RST.
    ResetSent = 1,
    /// `tcp_receive_reset`: a socket of this namespace was reset by a RST.
    ResetReceived = 2,
    /// An event whose namespace could not be read (a failed kernel read, or
    /// neither a socket nor a packet to read it from). Never expected: a
    /// count here means the resolved offsets are wrong.
    Unattributed = 3,
}

impl KernelEvent {
    pub const COUNT: usize = 4;
}

/// Everything the tracepoint programs count, one copy per CPU, in one
/// per-CPU array entry, so a scrape reads it with a single lookup.
///
/// 149 `u64`s: 1192 bytes, no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct KernelStateCounters {
    /// By [`transition_index`].
    pub transitions: [u64; TRANSITION_CELLS + 1],
    /// By [`KernelEvent`].
    pub events: [u64; KernelEvent::COUNT],
}

const _: () = assert!(core::mem::size_of::<KernelStateCounters>() == 1192);

impl Default for KernelStateCounters {
    fn default() -> Self {
        Self {
            transitions: [0; TRANSITION_CELLS + 1],
            events: [0; KernelEvent::COUNT],
        }
    }
}

impl KernelStateCounters {
    /// Adds another CPU's copy into this one.
    pub fn accumulate(&mut self, other: &Self) {
        for (sum, add) in self.transitions.iter_mut().zip(other.transitions.iter()) {
            *sum = sum.wrapping_add(*add);
        }
        for (sum, add) in self.events.iter_mut().zip(other.events.iter()) {
            *sum = sum.wrapping_add(*add);
        }
    }

    pub const fn event(&self, event: KernelEvent) -> u64 {
        self.events[event as usize]
    }
}

/// What the programs need to know and cannot learn themselves, written by
/// the daemon before it attaches them. aya-ebpf has no CO-RE field
/// relocations, so the daemon resolves the field offsets from the running
/// kernel's BTF; all offsets are in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct KernelStateConfig {
    /// Inode number of the daemon's network namespace; only sockets whose
    /// `net->ns.inum` equals it are counted. 0 (unset) counts nothing.
    pub netns_inum: u32,
    /// `struct sock` -> `__sk_common.skc_net.net` (a `struct net *`).
    pub sock_net: u32,
    /// `struct net` -> `ns.inum` (an `unsigned int`).
    pub net_inum: u32,
    /// `struct sock` -> `sk_protocol`.
    pub sock_protocol: u32,
    /// Size of `sk_protocol` in bytes: 1 or 2 (`u16` since Linux 5.6).
    pub sock_protocol_size: u32,
    /// `struct sk_buff` -> `dev` (a `struct net_device *`).
    pub skb_dev: u32,
    /// `struct net_device` -> `nd_net.net` (a `struct net *`).
    pub dev_net: u32,
    pub _reserved: u32,
}

const _: () = assert!(core::mem::size_of::<KernelStateConfig>() == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_match_tcp_states_h() {
        for (i, state) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*state as usize, i + 1);
            assert_eq!(TcpState::from_raw(i as i32 + 1), Some(*state));
        }
        assert_eq!(TcpState::from_raw(0), None);
        assert_eq!(TcpState::from_raw(13), None);
        assert_eq!(TcpState::from_raw(-1), None);
        assert_eq!(TcpState::Established as u8, 1);
        assert_eq!(TcpState::Close as u8, 7);
        assert_eq!(TcpState::Listen as u8, 10);
        assert_eq!(TcpState::NewSynRecv as u8, 12);
    }

    #[test]
    fn names_are_distinct() {
        for (i, a) in TcpState::ALL.iter().enumerate() {
            for b in &TcpState::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
            assert_ne!(a.name(), OTHER_NAME);
        }
    }

    #[test]
    fn every_known_transition_has_its_own_cell() {
        let mut seen = [false; TRANSITION_CELLS];
        for from in TcpState::ALL {
            for to in TcpState::ALL {
                let index = transition_index(from as i32, to as i32);
                assert!(index < TRANSITION_CELLS);
                assert!(!seen[index], "{from:?} -> {to:?} shares a cell");
                seen[index] = true;
                assert_eq!(transition_of(index), Some((from, to)));
            }
        }
    }

    #[test]
    fn known_cells() {
        assert_eq!(transition_index(1, 1), 0);
        assert_eq!(transition_index(7, 2), 6 * 12 + 1);
        assert_eq!(transition_index(12, 12), TRANSITION_CELLS - 1);
    }

    #[test]
    fn unknown_states_go_to_the_other_cell() {
        for (from, to) in [
            (0, 1),
            (1, 0),
            (13, 1),
            (1, 13),
            (-1, 2),
            (i32::MAX, i32::MIN),
        ] {
            assert_eq!(transition_index(from, to), OTHER_CELL, "{from} -> {to}");
        }
        assert_eq!(transition_of(OTHER_CELL), None);
        assert_eq!(transition_of(usize::MAX), None);
    }

    #[test]
    fn accumulate_sums_cpus() {
        let mut sum = KernelStateCounters::default();
        let mut cpu = KernelStateCounters::default();
        cpu.transitions[transition_index(7, 2)] = 3;
        cpu.transitions[OTHER_CELL] = 1;
        cpu.events[KernelEvent::ResetSent as usize] = 2;
        sum.accumulate(&cpu);
        sum.accumulate(&cpu);
        assert_eq!(sum.transitions[transition_index(7, 2)], 6);
        assert_eq!(sum.transitions[OTHER_CELL], 2);
        assert_eq!(sum.event(KernelEvent::ResetSent), 4);
        assert_eq!(sum.event(KernelEvent::ResetReceived), 0);
    }
}
