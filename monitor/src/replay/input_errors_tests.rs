//! Damaged, foreign and unusual inputs; large and many-record files.

use super::*;

fn three_frames() -> Vec<u8> {
    let (a, b, c) = (ethernet(1, 60), ethernet(2, 60), ethernet(3, 60));
    pcap(1, true, &[(T0, &a), (T0 + 1, &b), (T0 + 2, &c)])
}

/// SHB (28 bytes), IDB (20), then two 60-byte EPBs (92 each).
fn two_epbs() -> Vec<u8> {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let id = w.add_interface(link::ETHERNET, None).unwrap();
    w.write(id, T0, &ethernet(1, 60)).unwrap();
    w.write(id, T0, &ethernet(2, 60)).unwrap();
    w.into_inner().unwrap()
}
const SECOND_EPB: usize = 28 + 20 + 92;

#[test]
fn truncated_record_keeps_the_frames_before_it() {
    let file = three_frames();
    let third = 24 + 2 * (16 + 60);
    for cut in [third + 8, third + 16 + 30] {
        let (got, rep) = read(&file[..cut]);
        assert_eq!(got.len(), 2);
        let error = InputError::Truncated {
            after_records: 2,
            offset: third as u64,
        };
        assert_eq!(rep, with_error(report(2, 2, &[]), error));
    }
    let error = read(&file[..third + 8]).1.error.unwrap();
    assert_eq!(
        error.to_string(),
        "truncated: the file ends inside a record at byte 176 (after 2 records)"
    );
}

#[test]
fn truncated_headers_and_pcapng_blocks() {
    let truncated = |after_records, offset| InputError::Truncated {
        after_records,
        offset,
    };
    assert_eq!(read(&three_frames()[..10]).1.error, Some(truncated(0, 0)));
    let file = two_epbs();
    assert_eq!(read(&file[..20]).1.error, Some(truncated(0, 0)));
    let (got, rep) = read(&file[..SECOND_EPB + 50]);
    assert_eq!(got.len(), 1);
    let error = truncated(1, SECOND_EPB as u64);
    assert_eq!(rep, with_error(report(1, 1, &[]), error));
}

#[test]
fn corrupt_block_lengths_keep_the_frames_before_them() {
    let mut file = two_epbs();
    file[SECOND_EPB + 88..SECOND_EPB + 92].copy_from_slice(&96u32.to_le_bytes());
    let (got, rep) = read(&file);
    assert_eq!(got, [frame(T0 / 1_000 * 1_000, &ethernet(1, 60))]);
    let error = InputError::Corrupt {
        offset: SECOND_EPB as u64,
        detail: "trailing block total length 96 differs from the leading 92".into(),
    };
    assert_eq!(
        error.to_string(),
        "corrupt block at byte 140: trailing block total length 96 differs from the leading 92"
    );
    assert_eq!(rep, with_error(report(1, 1, &[]), error));

    let mut file = two_epbs();
    file[SECOND_EPB + 4..SECOND_EPB + 8].copy_from_slice(&91u32.to_le_bytes());
    let error = InputError::Corrupt {
        offset: SECOND_EPB as u64,
        detail: "block total length 91 is not a multiple of 4 between 12 and 33554432".into(),
    };
    assert_eq!(read(&file).1, with_error(report(1, 1, &[]), error));
}

#[test]
fn absurd_record_length_is_corrupt_not_buffered() {
    let mut file = three_frames();
    let second = 24 + 16 + 60;
    file[second + 8..second + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let error = InputError::Corrupt {
        offset: second as u64,
        detail: "record claims 2147483647 captured bytes, more than the 32 MiB limit".into(),
    };
    assert_eq!(read(&file).1, with_error(report(1, 1, &[]), error));
}

#[test]
fn empty_header_only_and_foreign_files() {
    let (got, rep) = read(&[]);
    assert!(got.is_empty());
    assert_eq!(rep, with_error(report(0, 0, &[]), InputError::Empty));
    assert_eq!(InputError::Empty.to_string(), "empty file");

    assert_eq!(read(&pcap(1, false, &[])), (vec![], report(0, 0, &[])));
    let shb_only = PcapNgWriter::new(Vec::new()).unwrap().into_inner().unwrap();
    assert_eq!(read(&shb_only), (vec![], report(0, 0, &[])));

    let error = read(b"GET / HTTP/1.1\r\n").1.error.unwrap();
    assert_eq!(
        error,
        InputError::NotCapture {
            first_bytes: b"GET / HT".to_vec()
        }
    );
    assert_eq!(
        error.to_string(),
        "not a pcap or pcapng file (first bytes 47 45 54 20 2f 20 48 54)"
    );
    let error = read(&[0xa1, 0xb2]).1.error;
    assert_eq!(
        error,
        Some(InputError::NotCapture {
            first_bytes: vec![0xa1, 0xb2]
        })
    );
}

#[test]
fn files_are_read_from_disk_and_missing_ones_reported() {
    let path = std::env::temp_dir().join(format!("replay-input-{}.pcap", std::process::id()));
    let file = three_frames();
    std::fs::write(&path, &file).unwrap();
    let mut frames = 0;
    let rep = read_file(&path, |_| {
        frames += 1;
        ControlFlow::Continue(())
    });
    std::fs::remove_file(&path).unwrap();
    assert_eq!((frames, rep), (3, report(3, 3, &[])));

    let rep = read_file(&path, |_| ControlFlow::Continue(()));
    let Some(InputError::Open { path: p, kind, .. }) = &rep.error else {
        panic!("expected Open, got {rep:?}");
    };
    assert_eq!((p, *kind), (&path, io::ErrorKind::NotFound));
    assert_eq!(rep.records, 0);
}

#[test]
fn break_stops_reading() {
    let mut seen = 0;
    let rep = read_from(&three_frames()[..], |_| {
        seen += 1;
        if seen == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!((seen, rep), (2, report(2, 2, &[])));
}

struct FailAfter<'a> {
    bytes: &'a [u8],
}

impl Read for FailAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.bytes.is_empty() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

#[test]
fn read_error_reports_its_offset_after_the_frames_before_it() {
    let data = ethernet(9, 100);
    let packets: Vec<(u64, &[u8])> = (0..30_000).map(|i| (T0 + i, &data[..])).collect();
    let file = pcap(1, true, &packets);
    let limit = 1_500_000;
    let mut frames = 0u64;
    let rep = read_from(
        FailAfter {
            bytes: &file[..limit],
        },
        |_| {
            frames += 1;
            ControlFlow::Continue(())
        },
    );
    let records = (limit as u64 - 24) / 116;
    let error = InputError::Read {
        offset: 24 + records * 116,
        kind: io::ErrorKind::Other,
        reason: "disk on fire".into(),
    };
    assert_eq!(frames, records);
    assert_eq!(rep, with_error(report(records, records, &[]), error));
}

#[test]
fn records_larger_than_the_buffer_grow_it() {
    let (big, small) = (ethernet(1, 3 << 20), ethernet(2, 60));
    let (got, rep) = read(&pcap(1, true, &[(T0, &big), (T0 + 1, &small)]));
    assert_eq!(got, [frame(T0, &big), frame(T0 + 1, &small)]);
    assert_eq!(rep, report(2, 2, &[]));
}

#[test]
fn many_records_across_refills_and_short_reads() {
    let frames: Vec<Vec<u8>> = (0..30_000usize)
        .map(|i| ethernet(i as u8, 60 + i % 200))
        .collect();
    let mut legacy = PcapWriter::new(Vec::new(), 1, true).unwrap();
    let mut ng = PcapNgWriter::new(Vec::new()).unwrap();
    let id = ng.add_interface(link::ETHERNET, Some(9)).unwrap();
    for (i, data) in frames.iter().enumerate() {
        legacy.write(T0 + i as u64, data).unwrap();
        ng.write(id, T0 + i as u64, data).unwrap();
    }
    let expected: Vec<Got> = frames
        .iter()
        .enumerate()
        .map(|(i, data)| frame(T0 + i as u64, data))
        .collect();
    for file in [legacy.into_inner().unwrap(), ng.into_inner().unwrap()] {
        assert!(file.len() > 2 << 20);
        for chunk in [usize::MAX, 1_000, 7] {
            let (got, rep) = read_with(&file, chunk);
            assert!(got == expected, "chunk {chunk}");
            assert_eq!(rep, report(30_000, 30_000, &[]));
        }
    }
}
