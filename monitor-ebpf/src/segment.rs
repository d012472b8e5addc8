//! The one read of a handshake segment's fields: addresses, ports and
//! sequence numbers, keyed from the monitored host's side, staged in a
//! per-CPU slot that the SYN cookies, the mitigation and the flow tracking
//! all read, so none of them goes back to the packet.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use monitor_common::{
    classify::FlagClass,
    counters::Direction,
    flow::FlowKey,
    handshake::Segment,
    parse::{PacketView, TcpPacket, read_fields},
};

/// A segment as the programs see it after parsing.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Staged {
    pub key: FlowKey,
    pub seg: Segment,
    /// Offsets of the IP and TCP headers and the TCP header length: with
    /// the key's family, what the cookie SYN-ACK is built from.
    pub l3: u16,
    pub l4: u16,
    pub th_len: u16,
}

impl Staged {
    /// The source of an ingress segment, in the key's address form.
    #[inline(always)]
    pub fn remote(&self) -> &[u8; 16] {
        &self.key.remote_addr
    }
}

/// Passed through map memory: the values the logic then loads are opaque
/// to the verifier, so every parser path (VLAN depth, IPv4 options, IPv6
/// extension chains, each with its own offset ranges) reaches it in the
/// same state and is verified once, not once per path.
#[map]
static STAGING: PerCpuArray<Staged> = PerCpuArray::with_max_entries(1, 0);

/// Reads and stages the segment's fields.
#[inline(always)]
pub fn stage<V: PacketView>(
    pkt: &V,
    tcp: &TcpPacket,
    class: FlagClass,
    slot: u32,
    direction: Direction,
) -> Option<&'static Staged> {
    let fields = read_fields(pkt, tcp).ok()?;
    let staging = STAGING.get_ptr_mut(0)?;
    let from_local = direction == Direction::Egress;
    // SAFETY: per-CPU slot, only this CPU touches it during the run.
    // Written in place: a FlowKey copy or two would overflow the 512-byte
    // BPF stack next to the parser's state.
    unsafe {
        let key = &mut (*staging).key;
        key.family = tcp.ip_version;
        key.slot = slot as u8;
        key._pad = [0; 2];
        if from_local {
            key.local_addr = fields.src_addr;
            key.remote_addr = fields.dst_addr;
            key.local_port = fields.src_port;
            key.remote_port = fields.dst_port;
        } else {
            key.local_addr = fields.dst_addr;
            key.remote_addr = fields.src_addr;
            key.local_port = fields.dst_port;
            key.remote_port = fields.src_port;
        }
        (*staging).seg = Segment {
            class,
            from_local,
            seq: fields.seq,
            ack: fields.ack,
            payload_len: tcp.payload_len,
        };
        (*staging).l3 = tcp.l3_offset;
        (*staging).l4 = tcp.l4_offset;
        (*staging).th_len = tcp.payload_offset - tcp.l4_offset;
    }
    // A second lookup gives a pointer LLVM cannot prove equal to the first,
    // so the logic really loads the staged values from the map.
    let staged = STAGING.get_ptr(0)?;
    // SAFETY: as above; nothing writes the slot while this reference lives.
    Some(unsafe { &*staged })
}
