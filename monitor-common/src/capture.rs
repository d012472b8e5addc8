//! TLS hello capture: what the kernel programs hand the daemon through the
//! ring buffer, and the state they keep to follow a hello over several
//! segments.

/// Most bytes of one segment copied into one event. A TSO/GSO skb at TC
/// can carry far more; a hello's first record rarely exceeds this, and the
/// rest arrives as continuation events.
pub const MAX_CHUNK: usize = 4096;
/// Most bytes captured of one hello record (5-byte header included): the
/// TLS record limit of 16 KiB plus the header.
pub const MAX_HELLO_BYTES: u32 = 16384 + 5;
/// Entries of the direct-mapped continuation table.
pub const CONT_TABLE_SIZE: u32 = 4096;

pub const TLS_CONTENT_HANDSHAKE: u8 = 22;
pub const TLS_CONTENT_ALERT: u8 = 21;
pub const TLS_HANDSHAKE_CLIENT_HELLO: u8 = 1;
pub const TLS_HANDSHAKE_SERVER_HELLO: u8 = 2;

/// `ChunkHeader::kind` values.
pub mod chunk_kind {
    /// First segment of a ClientHello/ServerHello record.
    pub const HELLO_START: u8 = 1;
    /// A later segment of the same record.
    pub const CONTINUATION: u8 = 2;
    /// A plaintext alert record (7 bytes).
    pub const ALERT: u8 = 3;
}

/// Header of one ring-buffer event; `data_len` bytes of payload follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ChunkHeader {
    pub ts_ns: u64,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP sequence number of the first byte of this chunk.
    pub seq: u32,
    /// TCP sequence number of the record's first byte.
    pub record_seq: u32,
    /// Bytes of the record to capture in all (header included, capped).
    pub total_len: u32,
    pub data_len: u16,
    pub family: u8,
    pub slot: u8,
    /// `counters::Direction` as u8.
    pub direction: u8,
    /// [`chunk_kind`].
    pub kind: u8,
    /// 0 for the first segment, then 1, 2, ...
    pub segment: u8,
    pub _pad: u8,
}

pub const CHUNK_HEADER_LEN: usize = 64;
const _: () = assert!(core::mem::size_of::<ChunkHeader>() == CHUNK_HEADER_LEN);

/// A header and room for the largest chunk: the per-CPU scratch the
/// programs assemble an event in before `bpf_ringbuf_output`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct ChunkBuffer {
    pub header: ChunkHeader,
    pub data: [u8; MAX_CHUNK],
}

/// A hello record still arriving: found by the next expected sequence
/// number and the ports, so a data segment checks it with one array read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Continuation {
    pub next_seq: u32,
    pub record_seq: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes of the record still to capture; 0 marks a free entry.
    pub remaining: u32,
    pub total_len: u32,
    pub segment: u8,
    pub _pad: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<Continuation>() == 24);

/// Continuation table entry for the segment with `seq` between the ports.
#[inline(always)]
pub const fn continuation_index(seq: u32, src_port: u16, dst_port: u16) -> u32 {
    let mixed = seq ^ ((src_port as u32) << 16 | dst_port as u32);
    mixed.wrapping_mul(2_654_435_769) >> 20 & (CONT_TABLE_SIZE - 1)
}

/// Per-CPU counters of the capture path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CaptureCounters {
    /// Hello records whose capture started.
    pub hellos: u64,
    pub continuations: u64,
    pub alerts: u64,
    /// Events lost because the ring buffer was full.
    pub ringbuf_full: u64,
    /// Hellos not captured because the CPU's event budget was spent.
    pub budget_skipped: u64,
    /// Continuations that replaced a pending one in the table.
    pub continuation_collisions: u64,
}

const _: () = assert!(core::mem::size_of::<CaptureCounters>() == 48);

impl CaptureCounters {
    pub fn accumulate(&mut self, o: &Self) {
        self.hellos += o.hellos;
        self.continuations += o.continuations;
        self.alerts += o.alerts;
        self.ringbuf_full += o.ringbuf_full;
        self.budget_skipped += o.budget_skipped;
        self.continuation_collisions += o.continuation_collisions;
    }
}

/// What the first bytes of a TCP payload say it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadStart {
    /// A handshake record holding a ClientHello or ServerHello: capture
    /// `total_len` bytes (record header included, capped).
    Hello {
        total_len: u32,
    },
    /// A plaintext alert record.
    Alert,
    Other,
}

/// Classifies a payload by its first 6 bytes (record header and handshake
/// type).
#[inline(always)]
pub const fn payload_start(head: [u8; 6]) -> PayloadStart {
    // Record versions are 0x0300-0x0304; the legacy field is 0x0301-0x0303.
    if head[1] != 3 {
        return PayloadStart::Other;
    }
    let record_len = ((head[3] as u32) << 8) | head[4] as u32;
    match head[0] {
        TLS_CONTENT_HANDSHAKE
            if record_len >= 4
                && (head[5] == TLS_HANDSHAKE_CLIENT_HELLO
                    || head[5] == TLS_HANDSHAKE_SERVER_HELLO) =>
        {
            let total = record_len + 5;
            PayloadStart::Hello {
                total_len: if total > MAX_HELLO_BYTES {
                    MAX_HELLO_BYTES
                } else {
                    total
                },
            }
        }
        TLS_CONTENT_ALERT if record_len == 2 => PayloadStart::Alert,
        _ => PayloadStart::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_hello_and_alert_records() {
        assert_eq!(
            payload_start([22, 3, 1, 0x02, 0x00, 1]),
            PayloadStart::Hello { total_len: 517 }
        );
        assert_eq!(
            payload_start([22, 3, 3, 0x00, 0x7a, 2]),
            PayloadStart::Hello { total_len: 127 }
        );
        assert_eq!(payload_start([21, 3, 3, 0, 2, 2]), PayloadStart::Alert);
        // Finished/Certificate handshake records, app data, HTTP.
        assert_eq!(payload_start([22, 3, 3, 0, 40, 20]), PayloadStart::Other);
        assert_eq!(payload_start([23, 3, 3, 0, 40, 0]), PayloadStart::Other);
        assert_eq!(payload_start(*b"GET / "), PayloadStart::Other);
    }

    #[test]
    fn hello_capture_is_capped() {
        assert_eq!(
            payload_start([22, 3, 1, 0xff, 0xff, 1]),
            PayloadStart::Hello {
                total_len: MAX_HELLO_BYTES
            }
        );
    }

    #[test]
    fn continuation_index_stays_in_the_table() {
        for seq in [0, 1, u32::MAX, 0x8000_0000] {
            assert!(continuation_index(seq, 443, 40000) < CONT_TABLE_SIZE);
        }
        assert_ne!(
            continuation_index(1000, 443, 40000),
            continuation_index(1000, 443, 40001)
        );
    }
}
