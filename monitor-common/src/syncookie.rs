//! SYN cookies answered from XDP: the pure part (TCP option parsing, the
//! timestamp encoding of the options a cookie cannot hold, the SYN-ACK's
//! headers and checksums) and the types the kernel programs share with the
//! daemon.
//!
//! The cookie itself is the kernel's (`bpf_tcp_raw_gen_syncookie_ipv4/6`,
//! same secret and format as the kernel's own SYN cookies); the validated
//! ACK becomes a connection through `bpf_sk_assign_tcp_reqsk` at TC ingress
//! (see docs/mitigation.md, "SYN cookies").

use core::ops::ControlFlow;

use crate::parse::{PacketView, Step};
pub use crate::synack::{
    SYNACK_HEAD_LEN, SYNACK_TS_LEN, SynAckSpec, fold, ipv4_header, ipv4_reply, ipv6_header,
    ipv6_reply, sum_words, synack_checksum, synack_len, write_synack, write_synack_head,
    write_synack_ts,
};

labelled_enum! {
    /// When the XDP program answers SYNs to a protected port with cookies.
    pub enum SyncookieMode: u32 {
        /// Never.
        Off = 0 => "off",
        /// While a SYN-flood alert fires on the interface.
        OnFlood = 1 => "on-flood",
        /// Always.
        Always = 2 => "always",
    }
}

labelled_enum! {
    /// What happened to a SYN or an ACK in cookie mode.
    pub enum CookieEvent: u32 {
        /// A SYN answered with a cookie SYN-ACK (XDP_TX).
        Sent = 0 => "sent",
        /// An ACK to a listener carried a valid cookie.
        Validated = 1 => "validated",
        /// An ACK to a listener carried no valid cookie and was dropped.
        Invalid = 2 => "invalid",
        /// A validated ACK became a request socket the stack completes.
        Handed = 3 => "handed",
        /// A SYN left to the stack: IPv4 options, IPv6 extension headers,
        /// or the cookie helper refused it.
        Unsupported = 4 => "unsupported",
        /// `bpf_sk_assign_tcp_reqsk` refused a validated ACK (it is passed
        /// on; the stack answers it with a reset).
        AssignFailed = 5 => "assign_failed",
    }
}

/// Per-interface counters, one copy per CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SyncookieCounters {
    pub events: [u64; CookieEvent::COUNT],
}

const _: () = assert!(core::mem::size_of::<SyncookieCounters>() == 8 * CookieEvent::COUNT);

/// Key of the protected-port table: `slot << 16 | port`.
#[inline(always)]
pub const fn port_key(slot: u32, port: u16) -> u32 {
    (slot << 16) | port as u32
}

/// A protected port's state on one interface, written by the daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PortState {
    /// Non-zero: XDP answers SYNs to the port with cookies.
    pub answer: u32,
    /// Non-zero: TC ingress validates ACKs to the port's listener (kept on
    /// for [`VALIDATE_GRACE_SECS`] after answering stops, so handshakes in
    /// flight complete).
    pub validate: u32,
}

const _: () = assert!(core::mem::size_of::<PortState>() == 8);

/// Settings of the cookie mode, one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SyncookieConfig {
    /// MSS the SYN-ACK advertises, IPv4 and IPv6.
    pub mss4: u16,
    pub mss6: u16,
    /// Window shift the SYN-ACK offers ([`RCV_WSCALE`]).
    pub wscale: u8,
    pub _pad: [u8; 3],
    /// Entries in the port table: 0 skips its lookup (no cost while the
    /// mode is off).
    pub ports: u32,
}

const _: () = assert!(core::mem::size_of::<SyncookieConfig>() == 12);

impl Default for SyncookieConfig {
    fn default() -> Self {
        Self {
            mss4: 1460,
            mss6: 1440,
            wscale: RCV_WSCALE,
            _pad: [0; 3],
            ports: 0,
        }
    }
}

/// Cookies stay valid for up to two minutes (the kernel's
/// `MAX_SYNCOOKIE_AGE` counts minutes); a little more for clock skew.
pub const VALIDATE_GRACE_SECS: u64 = 150;

/// The kernel's MSS tables for cookies (net/ipv4/syncookies.c `msstab`,
/// net/ipv6/syncookies.c `msstab`): a cookie holds an index into them.
pub const MSS_TABLE_V4: [u16; 4] = [536, 1300, 1440, 1460];
pub const MSS_TABLE_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// Window shift our SYN-ACK offers: what Linux picks for the default
/// `tcp_rmem` maximum (6 MiB).
pub const RCV_WSCALE: u8 = 7;
/// Window of the SYN-ACK (never scaled).
pub const SYNACK_WINDOW: u16 = 65535;
/// `TCP_LISTEN` in the kernel's `tcp_states.h` (`bpf_sock.state`).
pub const TCP_LISTEN: u32 = 10;

/// aya 0.14 cannot relocate kfunc calls, so the kernel program emits the
/// call to `bpf_sk_assign_tcp_reqsk` as a raw instruction (`BPF_JMP |
/// BPF_CALL`, src_reg `BPF_PSEUDO_KFUNC_CALL`) with this placeholder in
/// `imm`; the daemon puts the kfunc's vmlinux BTF id there before loading.
pub const KFUNC_PLACEHOLDER_IMM: u32 = 0x7eac_0001;
/// The whole instruction, as a little-endian u64.
pub const KFUNC_PLACEHOLDER_INSN: u64 = ((KFUNC_PLACEHOLDER_IMM as u64) << 32) | 0x2085;

/// `struct bpf_tcp_req_attrs` (include/linux/bpf.h... net/core/filter.c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ReqAttrs {
    pub rcv_tsval: u32,
    pub rcv_tsecr: u32,
    pub mss: u16,
    pub rcv_wscale: u8,
    pub snd_wscale: u8,
    pub ecn_ok: u8,
    pub wscale_ok: u8,
    pub sack_ok: u8,
    pub tstamp_ok: u8,
    pub usec_ts_ok: u8,
    pub reserved: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<ReqAttrs>() == 20);

/// TCP option kinds.
pub mod opt {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WSCALE: u8 = 3;
    pub const SACK_PERM: u8 = 4;
    pub const TIMESTAMP: u8 = 8;
}

/// Longest TCP header.
pub const TCP_MAX_HEADER: usize = 60;
/// Longest SYN-ACK we build: 20 bytes + MSS, SACK_PERM, TS, NOP, WS.
pub const SYNACK_MAX_LEN: usize = 40;
/// Shift value meaning "no window scaling".
pub const NO_WSCALE: u8 = 0xff;
/// The kernel's largest window shift.
pub const MAX_WSCALE: u8 = 14;

const TS_OPT_WSCALE_MASK: u32 = 0xf;
const TS_OPT_SACK: u32 = 1 << 4;
const TS_OPT_BITS: u32 = 6;

/// The options of a SYN or an ACK that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOptions {
    /// 0: absent.
    pub mss: u16,
    /// [`NO_WSCALE`]: absent.
    pub wscale: u8,
    pub sack_ok: bool,
    pub ts: bool,
    pub tsval: u32,
    pub tsecr: u32,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            mss: 0,
            wscale: NO_WSCALE,
            sack_ok: false,
            ts: false,
            tsval: 0,
            tsecr: 0,
        }
    }
}

/// Parses the options of a TCP header held in `hdr` (`len` bytes long,
/// options from byte 20). Malformed options end the walk: what was read
/// up to there stands.
#[inline(always)]
pub fn parse_options(hdr: &[u8; TCP_MAX_HEADER], len: usize) -> TcpOptions {
    options_at(&hdr[..], 0, len)
}

/// [`parse_options`] of the TCP header at `base` in `pkt` (a frame read in
/// place, or a header copied out to offset 0), one option per pass of
/// [`PacketView::repeat`].
///
/// Every read is of at least two bytes (the verifier takes no one-byte
/// packet bound as proof) and lies inside the option it reads, but one:
/// kind and length are read together, so at the header's last byte the
/// read may reach past a frame that ends there. It then ends the walk, as
/// that byte (a NOP, an EOL or an option cut short) would have.
#[inline(always)]
pub fn options_at<V: PacketView + ?Sized>(pkt: &V, base: usize, len: usize) -> TcpOptions {
    let mut walk = OptionWalk {
        base: base as u64,
        len: len.min(TCP_MAX_HEADER) as u64,
        i: 20,
        wscale: u64::from(NO_WSCALE),
        ..OptionWalk::default()
    };
    // Each pass consumes at least one byte: 40 passes cover 40 bytes.
    pkt.repeat((TCP_MAX_HEADER - 20) as u32, &mut walk);
    TcpOptions {
        mss: walk.mss as u16,
        wscale: walk.wscale as u8,
        sack_ok: walk.sack_ok != 0,
        ts: walk.ts != 0,
        tsval: walk.tsval as u32,
        tsecr: walk.tsecr as u32,
    }
}

/// [`options_at`]'s walk: the next option at `i` (from the header's start),
/// and the options read so far, as the fields of [`TcpOptions`].
#[repr(C)]
#[derive(Default)]
struct OptionWalk {
    base: u64,
    len: u64,
    i: u64,
    mss: u64,
    wscale: u64,
    sack_ok: u64,
    ts: u64,
    tsval: u64,
    tsecr: u64,
}

impl Step for OptionWalk {
    #[inline(always)]
    fn step<V: PacketView + ?Sized>(&mut self, pkt: &V, _pass: u32) -> ControlFlow<()> {
        let (base, len, i) = (self.base as usize, self.len as usize, self.i as usize);
        if i >= len {
            return ControlFlow::Break(());
        }
        let Some([kind, olen]) = pkt.bytes::<2>(base + i) else {
            return ControlFlow::Break(());
        };
        match kind {
            opt::EOL => return ControlFlow::Break(()),
            opt::NOP => {
                self.i = (i + 1) as u64;
                return ControlFlow::Continue(());
            }
            _ => {}
        }
        let olen = usize::from(olen);
        if olen < 2 || i + olen > len {
            return ControlFlow::Break(());
        }
        match (kind, olen) {
            (opt::MSS, 4) => {
                let mss = pkt.bytes::<2>(base + i + 2).map_or(0, u16::from_be_bytes);
                self.mss = u64::from(mss);
            }
            (opt::WSCALE, 3) => {
                // With the length byte: two bytes.
                let shift = pkt.bytes::<2>(base + i + 1).map_or(0, |b| b[1]);
                self.wscale = u64::from(shift.min(MAX_WSCALE));
            }
            (opt::SACK_PERM, 2) => self.sack_ok = 1,
            (opt::TIMESTAMP, 10) => {
                let t = pkt.bytes::<8>(base + i + 2).unwrap_or([0; 8]);
                self.ts = 1;
                self.tsval = u64::from(u32::from_be_bytes([t[0], t[1], t[2], t[3]]));
                self.tsecr = u64::from(u32::from_be_bytes([t[4], t[5], t[6], t[7]]));
            }
            _ => {}
        }
        self.i = (i + olen) as u64;
        ControlFlow::Continue(())
    }
}

/// Our SYN-ACK's TSval: the clock (ms) with its low 6 bits replaced by the
/// client's window shift and SACK permission, which the cookie cannot hold
/// (the kernel's own encoding, `cookie_init_timestamp`). Kept at or below
/// `now_ms`, so the client never sees our clock run backwards.
#[inline(always)]
pub fn encode_tsval(now_ms: u32, client: &TcpOptions) -> u32 {
    let mut bits = if client.wscale == NO_WSCALE {
        TS_OPT_WSCALE_MASK
    } else {
        u32::from(client.wscale) & TS_OPT_WSCALE_MASK
    };
    if client.sack_ok {
        bits |= TS_OPT_SACK;
    }
    let ts = ((now_ms >> TS_OPT_BITS) << TS_OPT_BITS) | bits;
    if ts > now_ms {
        ts.wrapping_sub(1 << TS_OPT_BITS)
    } else {
        ts
    }
}

/// The client's window shift ([`NO_WSCALE`] if none) and SACK permission,
/// from the TSecr of its ACK (the echo of [`encode_tsval`]).
#[inline(always)]
pub fn decode_tsecr(tsecr: u32) -> (u8, bool) {
    let shift = (tsecr & TS_OPT_WSCALE_MASK) as u8;
    let wscale = if shift > MAX_WSCALE { NO_WSCALE } else { shift };
    (wscale, tsecr & TS_OPT_SACK != 0)
}

/// The kernel's cookie MSS index for `mss`: the largest table entry not
/// above it (index 0 below all).
#[inline(always)]
pub fn mss_index(table: &[u16; 4], mss: u16) -> usize {
    let mut i = 3;
    while i > 0 && mss < table[i] {
        i -= 1;
    }
    i
}

#[cfg(test)]
#[path = "syncookie_tests.rs"]
mod tests;
