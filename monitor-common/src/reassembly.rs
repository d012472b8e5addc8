//! Puts hello records back together from the capture chunks the kernel
//! sends: in order, once each, within a bounded amount of memory.
//!
//! Pure logic on [`ChunkHeader`]s (the daemon's `tls_capture` drains the
//! ring buffer and feeds it), here so it is fuzzed with the parsers
//! (`monitor-common/fuzz`, target `reassembly`) without the daemon.

use alloc::{collections::BTreeMap, vec::Vec};

use crate::capture::{ChunkHeader, MAX_HELLO_BYTES, chunk_kind};

/// Hellos being assembled at once; past it the oldest is dropped.
pub const MAX_PENDING: usize = 1024;
/// A hello not complete this long after its first chunk is dropped.
pub const PENDING_TIMEOUT_NS: u64 = 5_000_000_000;

/// One record's identity: its flow, direction and first sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    src_addr: [u8; 16],
    dst_addr: [u8; 16],
    src_port: u16,
    dst_port: u16,
    slot: u8,
    direction: u8,
    record_seq: u32,
}

impl Key {
    fn of(h: &ChunkHeader) -> Self {
        Self {
            src_addr: h.src_addr,
            dst_addr: h.dst_addr,
            src_port: h.src_port,
            dst_port: h.dst_port,
            slot: h.slot,
            direction: h.direction,
            record_seq: h.record_seq,
        }
    }
}

struct Pending {
    first: ChunkHeader,
    bytes: Vec<u8>,
    segments: u8,
}

/// A complete record, or an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Assembled {
    Hello {
        /// Header of the first chunk (flow, time, direction).
        first: ChunkHeader,
        bytes: Vec<u8>,
        /// TCP segments the record arrived in.
        segments: u8,
    },
    Alert {
        header: ChunkHeader,
        level: u8,
        description: u8,
    },
}

/// What happened to chunks that did not complete a record; exported as
/// `handshake_tls_reassembly_total{result}`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyStats {
    pub completed: u64,
    /// A record's first chunk again (a retransmitted segment).
    pub duplicate: u64,
    /// A continuation for no pending record.
    pub orphan: u64,
    /// A continuation not at the next expected byte (a gap).
    pub out_of_order: u64,
    pub expired: u64,
    pub evicted: u64,
}

#[derive(Default)]
pub struct Reassembler {
    pending: BTreeMap<Key, Pending>,
    pub stats: ReassemblyStats,
}

impl Reassembler {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes one chunk; returns what it completed.
    pub fn push(&mut self, header: ChunkHeader, data: &[u8]) -> Option<Assembled> {
        match header.kind {
            chunk_kind::ALERT => {
                // Record header (5 bytes), then level and description.
                let (&level, &description) = (data.get(5)?, data.get(6)?);
                Some(Assembled::Alert {
                    header,
                    level,
                    description,
                })
            }
            chunk_kind::HELLO_START => self.start(header, data),
            chunk_kind::CONTINUATION => self.resume(header, data),
            _ => None,
        }
    }

    fn start(&mut self, header: ChunkHeader, data: &[u8]) -> Option<Assembled> {
        let key = Key::of(&header);
        if self.pending.contains_key(&key) {
            self.stats.duplicate += 1;
            return None;
        }
        let total = record_len(&header);
        if data.len() >= total {
            self.stats.completed += 1;
            let bytes = data[..total].to_vec();
            return Some(Assembled::Hello {
                first: header,
                bytes,
                segments: 1,
            });
        }
        if self.pending.len() >= MAX_PENDING {
            self.evict_oldest();
        }
        let mut bytes = Vec::with_capacity(total);
        bytes.extend_from_slice(data);
        self.pending.insert(
            key,
            Pending {
                first: header,
                bytes,
                segments: 1,
            },
        );
        None
    }

    fn resume(&mut self, header: ChunkHeader, data: &[u8]) -> Option<Assembled> {
        let key = Key::of(&header);
        let Some(pending) = self.pending.get_mut(&key) else {
            self.stats.orphan += 1;
            return None;
        };
        let expected = header.record_seq.wrapping_add(pending.bytes.len() as u32);
        if header.seq != expected {
            self.stats.out_of_order += 1;
            self.pending.remove(&key);
            return None;
        }
        let total = record_len(&pending.first);
        let room = total.saturating_sub(pending.bytes.len());
        pending
            .bytes
            .extend_from_slice(&data[..data.len().min(room)]);
        pending.segments = pending.segments.saturating_add(1);
        if pending.bytes.len() < total {
            return None;
        }
        let done = self.pending.remove(&key)?;
        self.stats.completed += 1;
        Some(Assembled::Hello {
            first: done.first,
            bytes: done.bytes,
            segments: done.segments,
        })
    }

    /// Drops records whose first chunk is older than the timeout.
    pub fn expire(&mut self, now_ns: u64) {
        let before = self.pending.len();
        self.pending
            .retain(|_, p| now_ns.saturating_sub(p.first.ts_ns) <= PENDING_TIMEOUT_NS);
        self.stats.expired += (before - self.pending.len()) as u64;
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.first.ts_ns)
            .map(|(k, _)| *k);
        if let Some(key) = oldest {
            self.pending.remove(&key);
            self.stats.evicted += 1;
        }
    }
}

/// Bytes of the record to assemble: its stated length, capped as the
/// kernel caps it. The kernel never states more, but the length comes from
/// shared memory: believing a larger one would reserve up to 4 GiB for a
/// record (found by the `reassembly` fuzz target).
fn record_len(header: &ChunkHeader) -> usize {
    header.total_len.min(MAX_HELLO_BYTES) as usize
}

#[path = "reassembly_fuzz.rs"]
pub mod fuzz;

#[cfg(test)]
#[path = "reassembly_tests.rs"]
mod tests;
