//! Fuzz entry point of the hello reassembly, shared by the cargo-fuzz
//! target `reassembly` (`monitor-common/fuzz`) and by a unit test that
//! replays its seed corpus.
//!
//! The input is a script: each step is a chunk (a record's first segment,
//! a continuation, an alert, a chunk of an unknown kind) with fields drawn
//! from the input, or an expiry sweep. Chunk data is a pattern of the
//! sequence numbers it stands for, so a reassembled record can be checked
//! byte by byte. Asserted after every step: the pending set stays within
//! [`MAX_PENDING`]; a completed record has exactly its (capped) length and
//! the bytes of its sequence range, in order; an alert carries the level
//! and description of its record; and every record taken in is accounted
//! for: completed, given up (gap, expiry, eviction) or still pending.
#![doc(hidden)]

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{Assembled, MAX_PENDING, Reassembler};
use crate::capture::{ChunkHeader, MAX_HELLO_BYTES, chunk_kind};

/// The byte a chunk carries at TCP sequence number `seq`.
fn pattern(seq: u32) -> u8 {
    (seq ^ (seq >> 8) ^ (seq >> 16) ^ (seq >> 24)) as u8
}

struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }
}

type FlowId = (u16, u8, u32);

/// Runs the script in `data`.
pub fn chunks(data: &[u8]) {
    let mut script = Script { data };
    let mut r = Reassembler::new();
    // Bytes each record has had appended in order, as far as the script
    // knows (to aim continuations at the expected byte or beside it).
    let mut model: BTreeMap<FlowId, u32> = BTreeMap::new();
    let mut clock: u64 = 1;
    let (mut inserted, mut single, mut multi) = (0u64, 0u64, 0u64);
    while let Some(op) = script.byte() {
        let Some(dt) = script.byte() else { break };
        clock += u64::from(dt) * 100_000_000;
        let src_port = 40_000 + u16::from(op >> 3 & 3);
        let direction = op >> 5 & 1;
        let Some(record) = script.u16() else { break };
        let record_seq = u32::from(record).wrapping_mul(70_001);
        let flow = (src_port, direction, record_seq);
        let mut header = ChunkHeader {
            ts_ns: clock,
            src_port,
            dst_port: 443,
            record_seq,
            direction,
            ..ChunkHeader::default()
        };
        match op & 7 {
            0 | 1 => {
                let Some(t) = script.byte() else { break };
                let total = if t & 0x80 == 0 {
                    u32::from(t) << 8 | u32::from(script.byte().unwrap_or(0))
                } else {
                    script.u32().unwrap_or(u32::MAX)
                };
                let len = usize::from(script.byte().unwrap_or(0)) * 8;
                let bytes: Vec<u8> = (0..len as u32)
                    .map(|i| pattern(record_seq.wrapping_add(i)))
                    .collect();
                header.kind = chunk_kind::HELLO_START;
                header.seq = record_seq;
                header.total_len = total;
                header.data_len = len as u16;
                let duplicates = r.stats.duplicate;
                let out = r.push(header, &bytes);
                if out.is_some() {
                    single += 1;
                } else if r.stats.duplicate == duplicates {
                    inserted += 1;
                    model.insert(flow, len as u32);
                }
                check(out, &header);
            }
            2 | 3 => {
                let Some(aim) = script.byte() else { break };
                let len = usize::from(script.byte().unwrap_or(0)) * 8;
                let done = model.get(&flow).copied().unwrap_or(0);
                let offset = match aim {
                    0..=0xbf => done,
                    _ => done.wrapping_add(u32::from(aim) - 0xc0).wrapping_sub(32),
                };
                let seq = record_seq.wrapping_add(offset);
                let bytes: Vec<u8> = (0..len as u32)
                    .map(|i| pattern(seq.wrapping_add(i)))
                    .collect();
                header.kind = chunk_kind::CONTINUATION;
                header.seq = seq;
                header.data_len = len as u16;
                header.segment = 1;
                let out = r.push(header, &bytes);
                if out.is_some() {
                    multi += 1;
                    model.remove(&flow);
                } else if let Some(n) = model.get_mut(&flow) {
                    *n = n.wrapping_add(len as u32);
                }
                check(out, &header);
            }
            4 => {
                let len = usize::from(script.byte().unwrap_or(0) & 15);
                let bytes: Vec<u8> = (0..len as u32).map(|i| 21 + i as u8).collect();
                header.kind = chunk_kind::ALERT;
                header.data_len = len as u16;
                match r.push(header, &bytes) {
                    Some(Assembled::Alert {
                        level, description, ..
                    }) => assert_eq!((level, description), (bytes[5], bytes[6])),
                    None => assert!(len < 7),
                    other => panic!("an alert chunk gave {other:?}"),
                }
            }
            5 | 6 => {
                // A kind the kernel never sends: ignored, nothing changes.
                header.kind = if op & 1 == 0 { 0 } else { 0xff };
                let before = (r.stats, r.pending());
                assert_eq!(r.push(header, &[22, 3, 3]), None);
                assert_eq!((r.stats, r.pending()), before);
            }
            _ => r.expire(clock),
        }
        let s = r.stats;
        assert!(r.pending() <= MAX_PENDING);
        assert_eq!(s.completed, single + multi);
        assert_eq!(
            inserted,
            multi + s.out_of_order + s.expired + s.evicted + r.pending() as u64,
            "{s:?}"
        );
    }
}

/// A completed record is the byte pattern of its sequence range, at its
/// stated length capped as the kernel caps it.
fn check(out: Option<Assembled>, last: &ChunkHeader) {
    let Some(out) = out else { return };
    let Assembled::Hello {
        first,
        bytes,
        segments,
    } = out
    else {
        panic!("a hello chunk gave {out:?}");
    };
    assert_eq!(first.record_seq, last.record_seq);
    assert_eq!(
        bytes.len() as u64,
        u64::from(first.total_len.min(MAX_HELLO_BYTES))
    );
    assert!(segments >= 1);
    for (i, &b) in bytes.iter().enumerate() {
        assert_eq!(
            b,
            pattern(first.record_seq.wrapping_add(i as u32)),
            "byte {i}"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/reassembly");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let data = std::fs::read(&p).expect("corpus file");
                (p, data)
            })
            .collect()
    }

    #[test]
    fn reassembly_corpus() {
        let files = corpus();
        assert!(files.len() >= 7, "{}", files.len());
        for (path, data) in &files {
            chunks(data);
            // Every cut of a script is a script too.
            for n in 0..data.len() {
                chunks(&data[..n]);
            }
            let _ = path;
        }
    }
}
