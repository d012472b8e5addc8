//! TLS hello capture: what the kernel programs hand the daemon through the
//! ring buffer, and the state they keep to follow a hello over several
//! segments.

use crate::tls::MAX_RECORD_LEN;

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
pub const TLS_CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
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
    /// Segments whose search for a hello gave up after
    /// [`MAX_RECORDS_SKIPPED`] records with more records still to come.
    pub too_many_records: u64,
}

const _: () = assert!(core::mem::size_of::<CaptureCounters>() == 56);

impl CaptureCounters {
    pub fn accumulate(&mut self, o: &Self) {
        self.hellos += o.hellos;
        self.continuations += o.continuations;
        self.alerts += o.alerts;
        self.ringbuf_full += o.ringbuf_full;
        self.budget_skipped += o.budget_skipped;
        self.continuation_collisions += o.continuation_collisions;
        self.too_many_records += o.too_many_records;
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

/// Most records skipped before a hello in one segment. A TLS 1.3 client
/// answering a HelloRetryRequest in middlebox-compatibility mode sends one
/// (ChangeCipherSpec) before its second ClientHello; a TLS 1.2 flight has
/// at most three (ClientKeyExchange, ChangeCipherSpec, Finished).
pub const MAX_RECORDS_SKIPPED: u32 = 4;

/// Where a segment's capture starts, found by [`locate_record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Located {
    /// A ClientHello or ServerHello record `offset` bytes into the payload:
    /// capture `total_len` bytes from there (header included, capped).
    Hello { offset: u32, total_len: u32 },
    /// A plaintext alert record at the payload's start.
    Alert,
    /// No hello or alert: not a TLS record, application data, or the
    /// records end before one.
    Nothing,
    /// [`MAX_RECORDS_SKIPPED`] records skipped and another one, still not a
    /// hello, starts within the segment: the search gives up.
    TooManyRecords,
}

/// Finds the hello record a segment's payload starts with, or the one
/// behind up to [`MAX_RECORDS_SKIPPED`] other records (ChangeCipherSpec,
/// alerts, other handshake records) in the same segment. `first` is the
/// payload's first 6 bytes; `read(offset)` gives the 6 bytes at `offset`,
/// asked only where they lie within the `payload_len` bytes of payload.
///
/// Application data (type 23) and anything that is not a TLS record end
/// the search at once, so the walk costs nothing past the handshake.
#[inline(always)]
pub fn locate_record(
    first: [u8; 6],
    payload_len: u32,
    mut read: impl FnMut(u32) -> Option<[u8; 6]>,
) -> Located {
    let mut head = first;
    let mut offset = 0u32;
    for skipped in 0..=MAX_RECORDS_SKIPPED {
        match payload_start(head) {
            PayloadStart::Hello { total_len } => return Located::Hello { offset, total_len },
            PayloadStart::Alert if offset == 0 => return Located::Alert,
            _ => {}
        }
        let Some(len) = skippable_record_len(head) else {
            return Located::Nothing;
        };
        // At most 5 records of 18 KiB: no overflow.
        offset += len;
        if offset + 6 > payload_len {
            return Located::Nothing;
        }
        if skipped == MAX_RECORDS_SKIPPED {
            return Located::TooManyRecords;
        }
        head = match read(offset) {
            Some(head) => head,
            None => return Located::Nothing,
        };
    }
    Located::Nothing
}

/// Bytes of a record that may come before a hello in the same segment
/// (ChangeCipherSpec, alert or handshake, version 3.x, no longer than TLS
/// allows), header included.
#[inline(always)]
const fn skippable_record_len(head: [u8; 6]) -> Option<u32> {
    let record_len = ((head[3] as u32) << 8) | head[4] as u32;
    let tls_type = matches!(
        head[0],
        TLS_CONTENT_CHANGE_CIPHER_SPEC | TLS_CONTENT_ALERT | TLS_CONTENT_HANDSHAKE
    );
    if head[1] != 3 || !tls_type || record_len as usize > MAX_RECORD_LEN {
        return None;
    }
    Some(record_len + 5)
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;
