use alloc::{vec, vec::Vec};

use crate::capture::{ChunkHeader, MAX_HELLO_BYTES, chunk_kind};

use super::*;

fn header(kind: u8, seq: u32, record_seq: u32, total: u32, len: usize, ts: u64) -> ChunkHeader {
    ChunkHeader {
        ts_ns: ts,
        src_port: 40000,
        dst_port: 443,
        seq,
        record_seq,
        total_len: total,
        data_len: len as u16,
        kind,
        ..ChunkHeader::default()
    }
}

fn record(total: usize) -> Vec<u8> {
    (0..total).map(|i| i as u8).collect()
}

/// Feeds `rec` split at `cuts` (offsets), returning the completed record.
fn feed(r: &mut Reassembler, rec: &[u8], cuts: &[usize]) -> Option<Assembled> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(rec.len());
    let mut out = None;
    for (i, w) in bounds.windows(2).enumerate() {
        let kind = if i == 0 {
            chunk_kind::HELLO_START
        } else {
            chunk_kind::CONTINUATION
        };
        let h = header(
            kind,
            1000 + w[0] as u32,
            1000,
            rec.len() as u32,
            w[1] - w[0],
            1,
        );
        out = r.push(h, &rec[w[0]..w[1]]);
    }
    out
}

#[test]
fn every_split_point_reassembles_the_same_bytes() {
    let rec = record(300);
    for cut in 1..rec.len() {
        let mut r = Reassembler::new();
        match feed(&mut r, &rec, &[cut]) {
            Some(Assembled::Hello {
                bytes, segments, ..
            }) => {
                assert_eq!(bytes, rec);
                assert_eq!(segments, 2);
            }
            other => panic!("cut {cut}: {other:?}"),
        }
        assert_eq!(r.pending(), 0);
    }
}

#[test]
fn three_segments_and_trailing_bytes_beyond_the_record() {
    let rec = record(2000);
    let mut r = Reassembler::new();
    let out = feed(&mut r, &rec, &[700, 1400]);
    assert!(matches!(out, Some(Assembled::Hello { segments: 3, .. })));
    // A single chunk longer than the record is cut to it.
    let mut longer = rec.clone();
    longer.extend_from_slice(b"next record");
    let h = header(chunk_kind::HELLO_START, 5, 5, 2000, longer.len(), 1);
    let Some(Assembled::Hello { bytes, .. }) = r.push(h, &longer) else {
        panic!()
    };
    assert_eq!(bytes, rec);
}

#[test]
fn retransmissions_gaps_and_orphans_are_counted() {
    let rec = record(100);
    let mut r = Reassembler::new();
    r.push(
        header(chunk_kind::HELLO_START, 1000, 1000, 100, 40, 1),
        &rec[..40],
    );
    r.push(
        header(chunk_kind::HELLO_START, 1000, 1000, 100, 40, 1),
        &rec[..40],
    );
    assert_eq!(r.stats.duplicate, 1);
    // A gap: bytes 50.. arrive before 40..50.
    r.push(
        header(chunk_kind::CONTINUATION, 1050, 1000, 100, 50, 1),
        &rec[50..],
    );
    assert_eq!(r.stats.out_of_order, 1);
    assert_eq!(r.pending(), 0);
    r.push(
        header(chunk_kind::CONTINUATION, 1040, 1000, 100, 10, 1),
        &rec[40..50],
    );
    assert_eq!(r.stats.orphan, 1);
}

#[test]
fn pending_records_expire_and_are_bounded() {
    let mut r = Reassembler::new();
    for i in 0..(MAX_PENDING as u32 + 10) {
        r.push(
            header(
                chunk_kind::HELLO_START,
                i * 1000,
                i * 1000,
                100,
                10,
                u64::from(i),
            ),
            &[0; 10],
        );
    }
    assert_eq!(r.pending(), MAX_PENDING);
    assert_eq!(r.stats.evicted, 10);
    r.expire(PENDING_TIMEOUT_NS + 100 + MAX_PENDING as u64);
    assert_eq!(r.pending(), 0);
    assert_eq!(r.stats.expired, MAX_PENDING as u64);
}

#[test]
fn alerts_pass_straight_through() {
    let mut r = Reassembler::new();
    let h = header(chunk_kind::ALERT, 1, 1, 7, 7, 1);
    let out = r.push(h, &[21, 3, 3, 0, 2, 2, 40]);
    assert!(matches!(
        out,
        Some(Assembled::Alert {
            level: 2,
            description: 40,
            ..
        })
    ));
    assert_eq!(r.push(h, &[21, 3, 3]), None);
}

/// Found by the `reassembly` fuzz target: a first chunk stating a record
/// of u32::MAX bytes made the reassembler reserve 4 GiB. The stated length
/// is now capped at the kernel's own cap, for the reservation and for the
/// record.
#[test]
fn a_stated_length_beyond_the_kernel_cap_is_capped() {
    let mut r = Reassembler::new();
    let h = header(chunk_kind::HELLO_START, 0, 0, u32::MAX, 10, 1);
    assert_eq!(r.push(h, &[22; 10]), None);
    assert_eq!(r.pending(), 1);
    let rec = record(MAX_HELLO_BYTES as usize);
    let mut seq = 10;
    let mut out = None;
    for chunk in rec[10..].chunks(4096) {
        let c = header(chunk_kind::CONTINUATION, seq, 0, u32::MAX, chunk.len(), 1);
        out = r.push(c, chunk);
        seq += chunk.len() as u32;
    }
    let Some(Assembled::Hello {
        bytes, segments, ..
    }) = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(bytes.len(), MAX_HELLO_BYTES as usize);
    assert_eq!(segments, 5);
    assert_eq!(r.pending(), 0);
    // The crashing input itself, through the fuzz checks.
    crate::reassembly::fuzz::chunks(&[0, 0, 4, 3, 132, 10, 0]);
}
