//! The flow table shared by the XDP and TC programs, and the per-role
//! handshake counters and histograms kept next to it.
//!
//! A flow is keyed from the monitored host's side: on ingress the local
//! end is the destination, on egress the source. So one lookup finds the
//! flow from either direction, and the key never needs normalising.

labelled_enum! {
    /// Which end of the handshake the monitored host plays.
    pub enum Role: u8 {
        /// The host accepted the connection: SYN in, SYN-ACK out, ACK in.
        Server = 0 => "server",
        /// The host opened it: SYN out, SYN-ACK in, ACK out.
        Client = 1 => "client",
    }
}

impl Role {
    /// The role implied by the direction a SYN travels in.
    #[inline(always)]
    pub const fn of_syn(from_local: bool) -> Self {
        if from_local {
            Self::Client
        } else {
            Self::Server
        }
    }

    #[inline(always)]
    pub const fn from_u8(v: u8) -> Self {
        if v == Self::Client as u8 {
            Self::Client
        } else {
            Self::Server
        }
    }
}

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Key of the flow table. IPv4 addresses occupy the first 4 bytes of the
/// address fields, the rest zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct FlowKey {
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
    pub family: u8,
    /// Interface slot: the same 4-tuple on two monitored interfaces (a
    /// router) is two flows.
    pub slot: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 40);

/// Where a tracked flow is in its life.
pub mod phase {
    /// SYN seen, no SYN-ACK yet.
    pub const SYN_SEEN: u8 = 1;
    /// SYN-ACK seen, final ACK pending: the half-open state.
    pub const SYN_ACK_SEEN: u8 = 2;
    pub const ESTABLISHED: u8 = 3;
    /// At least one FIN seen.
    pub const CLOSING: u8 = 4;

    #[inline(always)]
    pub const fn is_half_open(p: u8) -> bool {
        p == SYN_SEEN || p == SYN_ACK_SEEN
    }
}

/// Bits of [`FlowState::fins`].
pub mod fin_bits {
    pub const LOCAL_FIN: u8 = 1;
    pub const REMOTE_FIN: u8 = 2;
    /// The remote end acknowledged our FIN.
    pub const LOCAL_FIN_ACKED: u8 = 4;
    /// We acknowledged the remote FIN.
    pub const REMOTE_FIN_ACKED: u8 = 8;
    pub const ALL: u8 = 15;
}

/// Value of the flow table: 48 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FlowState {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) of the first SYN.
    pub syn_ns: u64,
    pub synack_ns: u64,
    pub established_ns: u64,
    pub client_isn: u32,
    pub server_isn: u32,
    /// Sequence number just past our FIN: the ack that acknowledges it.
    pub local_fin_end: u32,
    pub remote_fin_end: u32,
    pub phase: u8,
    /// [`Role`] as u8.
    pub role: u8,
    /// [`fin_bits`].
    pub fins: u8,
    /// [`Initiator`] as u8 plus one; 0 while nobody closed.
    pub initiator: u8,
    /// Retransmissions of this handshake's SYN and SYN-ACK (saturating).
    pub syn_retransmits: u8,
    pub synack_retransmits: u8,
    /// What the sequence checks found: bit `1 << Anomaly as u8` for each
    /// [`Anomaly`] seen on this flow.
    pub anomalies: u8,
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<FlowState>() == 48);
// One bit of `FlowState::anomalies` per anomaly.
const _: () = assert!(Anomaly::COUNT <= 8);

impl FlowState {
    /// A flow as its first SYN creates it.
    #[inline(always)]
    pub const fn on_syn(role: Role, client_isn: u32, now: u64) -> Self {
        Self {
            syn_ns: now,
            synack_ns: 0,
            established_ns: 0,
            client_isn,
            server_isn: 0,
            local_fin_end: 0,
            remote_fin_end: 0,
            phase: phase::SYN_SEEN,
            role: role as u8,
            fins: 0,
            initiator: 0,
            syn_retransmits: 0,
            synack_retransmits: 0,
            anomalies: 0,
            _pad: 0,
        }
    }

    #[inline(always)]
    pub const fn role(&self) -> Role {
        Role::from_u8(self.role)
    }
}

labelled_enum! {
    /// How a connection ended.
    pub enum CloseKind: u8 {
        /// FIN and its ACK both ways.
        Graceful = 0 => "graceful",
        Reset = 1 => "reset",
    }
}

labelled_enum! {
    /// Who ended a connection, from the monitored host's side.
    pub enum Initiator: u8 {
        Local = 0 => "local",
        Remote = 1 => "remote",
        /// Both FINs crossed: each side sent its FIN before it saw the other's.
        Simultaneous = 2 => "simultaneous",
    }
}

labelled_enum! {
    /// Handshake segments that break the protocol's arithmetic.
    pub enum Anomaly: u8 {
        /// The SYN-ACK does not acknowledge the client's ISN + 1.
        SynAckBadAck = 0 => "synack_bad_ack",
        /// The final ACK's seq is not the client's ISN + 1.
        AckBadSeq = 1 => "ack_bad_seq",
        /// The final ACK does not acknowledge the server's ISN + 1.
        AckBadAck = 2 => "ack_bad_ack",
        /// A RST during the handshake that the other end would not accept
        /// (wrong sequence number); the handshake goes on.
        RstBadSeq = 3 => "rst_bad_seq",
    }
}

labelled_enum! {
    /// Segments that named no tracked flow although they only make sense
    /// inside one (or belong to connections older than the daemon).
    pub enum Untracked: u8 {
        SynAck = 0 => "syn_ack",
        Fin = 1 => "fin",
        Rst = 2 => "rst",
    }
}

/// Per (interface slot, role) handshake counters, one copy per CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct HandshakeCounters {
    pub completed: u64,
    pub reset: u64,
    pub syn_retransmits: u64,
    pub synack_retransmits: u64,
    pub anomalies: [u64; Anomaly::COUNT],
    /// Index `kind * Initiator::COUNT + initiator`.
    pub closes: [u64; CloseKind::COUNT * Initiator::COUNT],
    /// Handshakes started: SYNs that took a half-open slot.
    pub inserts: u64,
    /// SYNs not tracked because the insert budget was spent.
    pub insert_skipped: u64,
    /// Promotions the kernel refused (flow table update error).
    pub insert_failed: u64,
    /// Flows removed from the flow table by the programs (connection
    /// closed or reset, or replaced by a new handshake on its tuple).
    pub removed: u64,
    /// Completed handshakes promoted into the flow table.
    pub promoted: u64,
    /// Half-open handshakes past their timeout whose slot a new SYN took:
    /// timed out (the daemon counts those still in their slot).
    pub half_open_expired: u64,
    /// Half-open handshakes within their timeout whose slot a new SYN
    /// took: no longer followed (a collision in the direct-mapped table).
    pub half_open_displaced: u64,
}

const _: () = assert!(core::mem::size_of::<HandshakeCounters>() == 8 * 21);

impl HandshakeCounters {
    pub fn accumulate(&mut self, o: &Self) {
        let pairs = [
            (&mut self.completed, o.completed),
            (&mut self.reset, o.reset),
            (&mut self.syn_retransmits, o.syn_retransmits),
            (&mut self.synack_retransmits, o.synack_retransmits),
            (&mut self.inserts, o.inserts),
            (&mut self.insert_skipped, o.insert_skipped),
            (&mut self.insert_failed, o.insert_failed),
            (&mut self.removed, o.removed),
            (&mut self.promoted, o.promoted),
            (&mut self.half_open_expired, o.half_open_expired),
            (&mut self.half_open_displaced, o.half_open_displaced),
        ];
        for (sum, add) in pairs {
            *sum = sum.wrapping_add(add);
        }
        for (sum, add) in self.anomalies.iter_mut().zip(o.anomalies) {
            *sum = sum.wrapping_add(add);
        }
        for (sum, add) in self.closes.iter_mut().zip(o.closes) {
            *sum = sum.wrapping_add(add);
        }
    }
}

#[inline(always)]
pub const fn close_index(kind: CloseKind, initiator: Initiator) -> usize {
    kind as usize * Initiator::COUNT + initiator as usize
}

#[inline(always)]
pub const fn handshake_index(slot: u32, role: Role) -> u32 {
    slot * Role::COUNT as u32 + role as u32
}

/// One CPU's token bucket, refilled from the clock: the flow-insert budget
/// and the TLS capture budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TokenBucket {
    pub tokens: u64,
    pub last_ns: u64,
}

const _: () = assert!(core::mem::size_of::<TokenBucket>() == 16);

/// The rate of a [`TokenBucket`], written by the daemon into a one-entry
/// settings map before attaching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RateLimit {
    /// Tokens per second on each CPU; 0 allows nothing.
    pub per_sec_per_cpu: u64,
    /// Tokens a CPU may spend in one burst.
    pub burst: u64,
}

const _: () = assert!(core::mem::size_of::<RateLimit>() == 16);

impl TokenBucket {
    /// Takes one token if there is one, refilling at the configured rate.
    #[inline(always)]
    pub fn take(&mut self, cfg: &RateLimit, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.last_ns);
        // Refill in whole tokens only, so rounding never mints extra ones.
        // checked_div: no division-by-zero panic path for the verifier.
        let per_token_ns = 1_000_000_000u64
            .checked_div(cfg.per_sec_per_cpu)
            .unwrap_or(0)
            .max(1);
        let earned = elapsed.checked_div(per_token_ns).unwrap_or(0);
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(cfg.burst);
            self.last_ns += earned * per_token_ns;
            if self.tokens == cfg.burst {
                self.last_ns = now;
            }
        }
        if cfg.per_sec_per_cpu == 0 || self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Key of the port-scan table: a remote source on one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct ScanKey {
    pub addr: [u8; 16],
    pub family: u8,
    pub slot: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<ScanKey>() == 20);

/// SYNs of one source that the monitored host answered with a RST (closed
/// ports), and which ports: one bit per port hash, enough to estimate
/// dozens of distinct ports (linear counting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ScanState {
    pub first_ns: u64,
    pub port_bits: u64,
    pub probes: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<ScanState>() == 24);

impl ScanState {
    /// Notes one refused SYN to `port`.
    #[inline(always)]
    pub fn note(&mut self, port: u16) {
        let bit = (u32::from(port).wrapping_mul(2_654_435_769) >> 26) & 63;
        self.port_bits |= 1u64 << bit;
        self.probes = self.probes.saturating_add(1);
    }
}
