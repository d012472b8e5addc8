//! TLS hello capture: the first record of a ClientHello or ServerHello,
//! at a segment's start or behind a few other records in it
//! (`locate_record`), and plaintext alerts, copied to the daemon through a
//! ring buffer. A
//! record longer than its segment is followed into later segments through
//! a direct-mapped continuation table keyed by the next expected sequence
//! number, so an ordinary data segment pays one array read to be ruled out.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use monitor_common::{
    capture::{
        CHUNK_HEADER_LEN, CONT_TABLE_SIZE, CaptureCounters, ChunkBuffer, Continuation, Located,
        MAX_CHUNK, TLS_CONTENT_ALERT, TLS_CONTENT_CHANGE_CIPHER_SPEC, TLS_CONTENT_HANDSHAKE,
        chunk_kind, continuation_index, locate_record,
    },
    counters::Direction,
    flow::{RateLimit, TokenBucket},
    parse::{MAX_HEADER_OFFSET, PacketView, TcpPacket, read_fields},
};

use crate::view::LoadBytes;

/// 4 MiB: about a thousand full-size hello chunks between two drains.
#[map]
pub static TLS_EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

#[map]
static TLS_CONTINUATIONS: Array<Continuation> = Array::with_max_entries(CONT_TABLE_SIZE, 0);

#[map]
static TLS_STAGE: PerCpuArray<TcpPacket> = PerCpuArray::with_max_entries(1, 0);

#[map]
static TLS_SCRATCH: PerCpuArray<ChunkBuffer> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static TLS_COUNTERS: PerCpuArray<CaptureCounters> = PerCpuArray::with_max_entries(1, 0);

/// Hello captures each CPU may start per second.
#[map]
pub static TLS_CONFIG: Array<RateLimit> = Array::with_max_entries(1, 0);

#[map]
static TLS_BUDGET: PerCpuArray<TokenBucket> = PerCpuArray::with_max_entries(1, 0);

/// Past this much unread data the reader is woken at once; below it,
/// events wait for the reader's next timed drain (no wake-up per event).
const WAKEUP_THRESHOLD: u64 = 256 << 10;

/// Looks at one data segment: a hello record at its start or behind a few
/// other records, an alert record at its start, or the next segment of a
/// hello being captured.
#[inline(always)]
pub fn inspect<V: PacketView + LoadBytes>(
    pkt: &V,
    tcp: &TcpPacket,
    slot: u32,
    direction: Direction,
) {
    if !worth_a_look(pkt, tcp) {
        return;
    }
    // Offsets pass through map memory: every parser path then arrives here
    // in the same verifier state (see flows.rs for the same reason).
    let Some(stage) = TLS_STAGE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, only this CPU touches it during the run.
    unsafe { *stage = *tcp };
    let Some(staged) = TLS_STAGE.get(0) else {
        return;
    };
    let tcp = *staged;
    let payload = usize::from(tcp.payload_offset);
    if payload > MAX_HEADER_OFFSET + 64 {
        return;
    }
    let Some(l4) = pkt.bytes::<8>(usize::from(tcp.l4_offset) & 0x0fff) else {
        return;
    };
    let src_port = u16::from_be_bytes([l4[0], l4[1]]);
    let dst_port = u16::from_be_bytes([l4[2], l4[3]]);
    let seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
    let found = match head(pkt, payload) {
        Some(first) if tcp.payload_len >= 6 => locate_record(first, tcp.payload_len, |offset| {
            load_head(pkt, payload as u32 + offset)
        }),
        _ => Located::Nothing,
    };
    if found == Located::TooManyRecords {
        count(|c| c.too_many_records += 1);
    }
    // `offset`: where in the payload the chunk's bytes start.
    let (kind, total_len, record_seq, segment, offset) = match found {
        Located::Hello { offset, total_len } => {
            if !take_budget() {
                count(|c| c.budget_skipped += 1);
                return;
            }
            let record_seq = seq.wrapping_add(offset);
            (chunk_kind::HELLO_START, total_len, record_seq, 0, offset)
        }
        Located::Alert => (chunk_kind::ALERT, 7, seq, 0, 0),
        Located::Nothing | Located::TooManyRecords => {
            let index = continuation_index(seq, src_port, dst_port);
            let Some(cont) = TLS_CONTINUATIONS.get_ptr_mut(index) else {
                return;
            };
            // SAFETY: a valid array value; concurrent writers can only make
            // the check below fail, never the access.
            let cont = unsafe { &mut *cont };
            if cont.remaining == 0
                || cont.next_seq != seq
                || cont.src_port != src_port
                || cont.dst_port != dst_port
            {
                return;
            }
            let found = *cont;
            cont.remaining = 0;
            (
                chunk_kind::CONTINUATION,
                found.total_len,
                found.record_seq,
                found.segment,
                0,
            )
        }
    };
    let chunk_seq = seq.wrapping_add(offset);
    // Bytes of the record in this segment.
    let done = chunk_seq.wrapping_sub(record_seq);
    let wanted = total_len.saturating_sub(done);
    let in_segment = tcp.payload_len.saturating_sub(offset);
    let len = wanted.min(in_segment).min(MAX_CHUNK as u32);
    if len == 0 {
        return;
    }
    let Some(buf) = TLS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch, only this CPU touches it during the run.
    let buf = unsafe { &mut *buf };
    let Ok(fields) = read_fields(pkt, &tcp) else {
        return;
    };
    let h = &mut buf.header;
    h.src_addr = fields.src_addr;
    h.dst_addr = fields.dst_addr;
    h.src_port = src_port;
    h.dst_port = dst_port;
    h.seq = chunk_seq;
    h.record_seq = record_seq;
    h.total_len = total_len;
    h.data_len = len as u16;
    h.family = tcp.ip_version;
    h.slot = slot as u8;
    h.direction = direction as u8;
    h.kind = kind;
    h.segment = segment;
    h.ts_ns = crate::clock::now();
    if kind != chunk_kind::ALERT && wanted > len {
        remember(
            chunk_seq.wrapping_add(len),
            record_seq,
            src_port,
            dst_port,
            wanted - len,
            total_len,
            segment,
        );
    }
    emit(pkt, u32::from(tcp.payload_offset) + offset, kind);
}

/// Copies the chunk's bytes, `data_offset` into the packet, into the
/// scratch event and sends it.
#[inline(always)]
fn emit<V: LoadBytes>(pkt: &V, data_offset: u32, kind: u8) {
    // Reloaded from map memory: the length is then a fresh value whose
    // bounds the checks below establish for the verifier.
    let Some(buf) = TLS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch, only this CPU touches it during the run.
    let buf = unsafe { &mut *buf };
    let len = u32::from(buf.header.data_len);
    if len == 0 || len > MAX_CHUNK as u32 {
        return;
    }
    if !pkt.load_var(data_offset, buf.data.as_mut_ptr(), len) {
        return;
    }
    let size = CHUNK_HEADER_LEN + len as usize;
    let bytes = buf as *const ChunkBuffer as *const u8;
    let pending = TLS_EVENTS.query(u64::from(BPF_RB_AVAIL_DATA));
    let wake = if pending > WAKEUP_THRESHOLD {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    // SAFETY: `bytes` points to `size` <= sizeof(ChunkBuffer) valid bytes.
    let ret = unsafe {
        aya_ebpf::helpers::generated::bpf_ringbuf_output(
            &TLS_EVENTS as *const RingBuf as *mut core::ffi::c_void,
            bytes as *mut core::ffi::c_void,
            size as u64,
            u64::from(wake),
        )
    };
    if ret != 0 {
        count(|c| c.ringbuf_full += 1);
    } else {
        match kind {
            chunk_kind::HELLO_START => count(|c| c.hellos += 1),
            chunk_kind::ALERT => count(|c| c.alerts += 1),
            _ => count(|c| c.continuations += 1),
        }
    }
}

#[inline(always)]
fn remember(
    next_seq: u32,
    record_seq: u32,
    src_port: u16,
    dst_port: u16,
    remaining: u32,
    total_len: u32,
    segment: u8,
) {
    let Some(entry) =
        TLS_CONTINUATIONS.get_ptr_mut(continuation_index(next_seq, src_port, dst_port))
    else {
        return;
    };
    // SAFETY: a valid array value; a racing writer can only replace it.
    let entry = unsafe { &mut *entry };
    if entry.remaining != 0 {
        count(|c| c.continuation_collisions += 1);
    }
    *entry = Continuation {
        next_seq,
        record_seq,
        src_port,
        dst_port,
        remaining,
        total_len,
        segment: segment.saturating_add(1),
        _pad: [0; 3],
    };
}

/// The cheap test every data segment takes: could it start a hello or
/// alert record, or records a hello may follow (first byte 22, 21 or 20),
/// or is it the next segment of a hello being captured? Only those go on
/// to the full path; application data (23) is ruled out here.
#[inline(always)]
fn worth_a_look<V: PacketView>(pkt: &V, tcp: &TcpPacket) -> bool {
    let payload = usize::from(tcp.payload_offset);
    if payload > MAX_HEADER_OFFSET + 64 {
        return false;
    }
    // Two bytes, not one: LLVM turns a one-byte bound into `start >= end`,
    // which the verifier does not take as proof of one readable byte.
    match pkt.bytes::<2>(payload) {
        Some(
            [
                TLS_CONTENT_HANDSHAKE | TLS_CONTENT_ALERT | TLS_CONTENT_CHANGE_CIPHER_SPEC,
                _,
            ],
        ) => {
            return true;
        }
        Some(_) => {}
        // Not in the linear data (TC, page fragments): the full path copies.
        None => return true,
    }
    let Some(l4) = pkt.bytes::<8>(usize::from(tcp.l4_offset) & 0x0fff) else {
        return false;
    };
    let src_port = u16::from_be_bytes([l4[0], l4[1]]);
    let dst_port = u16::from_be_bytes([l4[2], l4[3]]);
    let seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
    TLS_CONTINUATIONS
        .get(continuation_index(seq, src_port, dst_port))
        .is_some_and(|c| {
            c.remaining != 0
                && c.next_seq == seq
                && c.src_port == src_port
                && c.dst_port == dst_port
        })
}

/// The first 6 payload bytes: read directly where they are in the linear
/// data, copied by the helper where they are not (TC, page fragments).
#[inline(always)]
fn head<V: PacketView + LoadBytes>(pkt: &V, payload: usize) -> Option<[u8; 6]> {
    if let Some(head) = pkt.bytes::<6>(payload) {
        return Some(head);
    }
    load_head(pkt, payload as u32)
}

/// 6 bytes at `offset` into the packet, copied by the helper, which checks
/// the bounds itself: the headers of records after the first, whose offset
/// is only known at run time, are always read this way.
#[inline(always)]
fn load_head<V: LoadBytes>(pkt: &V, offset: u32) -> Option<[u8; 6]> {
    let mut head = [0u8; 6];
    pkt.load(offset, head.as_mut_ptr(), 6).then_some(head)
}

#[inline(always)]
fn take_budget() -> bool {
    match (TLS_BUDGET.get_ptr_mut(0), TLS_CONFIG.get(0)) {
        // SAFETY: per-CPU value, only this CPU touches it during the run.
        (Some(budget), Some(cfg)) => unsafe { (*budget).take(cfg, crate::clock::now()) },
        _ => false,
    }
}

#[inline(always)]
fn count(f: impl FnOnce(&mut CaptureCounters)) {
    if let Some(c) = TLS_COUNTERS.get_ptr_mut(0) {
        // SAFETY: per-CPU value, only this CPU touches it during the run.
        f(unsafe { &mut *c });
    }
}
