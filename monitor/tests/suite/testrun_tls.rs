//! TLS capture through the loaded XDP program (BPF_PROG_TEST_RUN): a
//! post-quantum ClientHello split over three segments comes out of the ring
//! buffer whole and in order; a ClientHello behind a ChangeCipherSpec
//! record in the same segment is found, within the bound on records
//! skipped; other payloads are left alone.
//!
//! Needs root: run through `cargo xtask test`.

use crate::support;

use aya::programs::{TestRun as _, TestRunOptions};
use monitor::{
    interfaces::Interface,
    loader::Programs,
    tls_capture::{
        CaptureMaps,
        reassembly::{Assembled, Reassembler},
        split_chunk,
    },
};
use monitor_common::{
    capture::{CaptureCounters, ChunkHeader, MAX_RECORDS_SKIPPED},
    classify::tcp_flags::{ACK, PSH},
    frames::TcpFrame,
    tls::{builder::ClientHelloBuilder, parse_client_hello_record},
};

const ISN: u32 = 7_000;

struct Lab {
    programs: Programs,
    maps: CaptureMaps,
}

impl Lab {
    fn new(budget_per_sec: u64) -> Self {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "needs root: run `cargo xtask test`"
        );
        let mut programs = Programs::load().expect("load programs");
        programs
            .register(&Interface {
                name: "lo".into(),
                ifindex: 1,
            })
            .expect("register lo");
        programs
            .set_tls_budget(budget_per_sec, budget_per_sec.min(100))
            .expect("tls budget");
        let maps = CaptureMaps::take(&mut programs).expect("capture maps");
        Self { programs, maps }
    }

    /// One data segment from the client, `payload` at sequence `seq`.
    fn segment(&mut self, seq: u32, payload: &[u8]) {
        let mut frame = TcpFrame::v4(ACK | PSH).with_payload(payload);
        (frame.seq, frame.ack) = (seq, 1);
        let bytes = frame.build();
        let opts = TestRunOptions {
            data_in: Some(&bytes),
            ..Default::default()
        };
        self.programs
            .xdp()
            .unwrap()
            .test_run(opts)
            .expect("test run");
    }

    fn drain(&mut self) -> Vec<Assembled> {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        while let Some(item) = self.maps.ring.next() {
            let (header, data) = split_chunk(&item).expect("a whole chunk");
            out.extend(r.push(header, data));
        }
        out
    }

    fn counters(&self) -> CaptureCounters {
        let mut sum = CaptureCounters::default();
        let values = self.maps.counters.get(&0, 0).expect("capture counters");
        values.iter().for_each(|v| sum.accumulate(v));
        sum
    }
}

/// The header, bytes and segment count of the only record in `done`, a
/// hello.
fn the_one_hello(done: &[Assembled]) -> (&ChunkHeader, &Vec<u8>, u8) {
    match done {
        [
            Assembled::Hello {
                first,
                bytes,
                segments,
            },
        ] => (first, bytes, *segments),
        _ => panic!("not one hello: {done:?}"),
    }
}

fn pq_client_hello() -> Vec<u8> {
    // An X25519MLKEM768 key share (1216 bytes) makes a ~1.5 KB hello.
    ClientHelloBuilder::new()
        .sni("pq.example.test")
        .supported_versions(&[0x0304])
        .supported_groups(&[0x11ec, 0x001d])
        .key_shares(&[(0x11ec, 1216), (0x001d, 32)])
        .record()
}

#[test]
fn a_client_hello_over_three_segments_is_captured_whole() {
    let mut lab = Lab::new(1000);
    let record = pq_client_hello();
    assert!(record.len() > 1300, "{}", record.len());
    let cuts = [0, 500, 1000, record.len()];
    for w in cuts.windows(2) {
        lab.segment(ISN + w[0] as u32, &record[w[0]..w[1]]);
    }
    let done = lab.drain();
    let (_, bytes, segments) = the_one_hello(&done);
    assert_eq!(segments, 3);
    assert_eq!(bytes, &record);
    let hello = parse_client_hello_record(bytes).expect("parses");
    assert_eq!(hello.sni(), Some(&b"pq.example.test"[..]));
    let c = lab.counters();
    assert_eq!((c.hellos, c.continuations, c.ringbuf_full), (1, 2, 0));
}

#[test]
fn other_payloads_and_unexpected_segments_are_not_captured() {
    let mut lab = Lab::new(1000);
    lab.segment(ISN, b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n");
    // Application data, a Finished-like handshake record, a lone
    // continuation-looking segment.
    lab.segment(ISN + 100, &[23, 3, 3, 0, 5, 1, 2, 3, 4, 5]);
    lab.segment(ISN + 200, &[22, 3, 3, 0, 4, 20, 0, 0, 0]);
    lab.segment(ISN + 300, &[0x42; 64]);
    // A hello behind application data is not looked for.
    let hello = ClientHelloBuilder::new().sni("a.example.test").record();
    lab.segment(ISN + 400, &[&APP_DATA[..], &hello].concat());
    lab.segment(ISN + 1000, &[&CCS[..], &APP_DATA, &hello].concat());
    assert!(lab.drain().is_empty());
    assert_eq!(lab.counters(), CaptureCounters::default());
}

#[test]
fn the_budget_bounds_captures() {
    let mut lab = Lab::new(1);
    let hello = ClientHelloBuilder::new().sni("a.example.test").record();
    support::pin_to_cpu0();
    for i in 0..5 {
        lab.segment(ISN + i * 10_000, &hello);
    }
    let c = lab.counters();
    assert_eq!((c.hellos, c.budget_skipped), (1, 4));
    assert_eq!(lab.drain().len(), 1);
}

/// A ChangeCipherSpec record, as a TLS 1.3 client in middlebox-compatibility
/// mode sends it before its second ClientHello.
const CCS: [u8; 6] = [20, 3, 3, 0, 1, 1];
const APP_DATA: [u8; 10] = [23, 3, 3, 0, 5, 1, 2, 3, 4, 5];

#[test]
fn a_client_hello_behind_a_change_cipher_spec_is_captured() {
    let mut lab = Lab::new(1000);
    let record = ClientHelloBuilder::new()
        .sni("retry.example.test")
        .supported_versions(&[0x0304])
        .key_shares(&[(0x001d, 32)])
        .record();
    lab.segment(ISN, &[&CCS[..], &record].concat());
    let done = lab.drain();
    let (first, bytes, segments) = the_one_hello(&done);
    // The chunk starts at the hello, 6 bytes into the segment.
    assert_eq!((first.seq, first.record_seq), (ISN + 6, ISN + 6));
    assert_eq!(first.total_len as usize, record.len());
    assert_eq!((first.src_port, first.dst_port), (40000, 443));
    assert_eq!(segments, 1);
    assert_eq!(bytes, &record);
    let hello = parse_client_hello_record(bytes).expect("parses");
    assert_eq!(hello.sni(), Some(&b"retry.example.test"[..]));
    let c = lab.counters();
    assert_eq!((c.hellos, c.continuations, c.too_many_records), (1, 0, 0));
}

#[test]
fn a_hello_found_behind_records_is_followed_into_the_next_segment() {
    let mut lab = Lab::new(1000);
    let record = pq_client_hello();
    let alert = [21, 3, 3, 0, 2, 1, 0];
    let first = [&CCS[..], &alert, &record[..800]].concat();
    lab.segment(ISN, &first);
    lab.segment(ISN + first.len() as u32, &record[800..]);
    let done = lab.drain();
    let (header, bytes, segments) = the_one_hello(&done);
    assert_eq!(header.record_seq, ISN + 13);
    assert_eq!(segments, 2);
    assert_eq!(bytes, &record);
    let c = lab.counters();
    assert_eq!((c.hellos, c.continuations, c.alerts), (1, 1, 0));
}

#[test]
fn a_hello_behind_more_records_than_the_bound_is_not_captured() {
    let mut lab = Lab::new(1000);
    let hello = ClientHelloBuilder::new().sni("a.example.test").record();
    let at_bound = [CCS; MAX_RECORDS_SKIPPED as usize].concat();
    let past_bound = [CCS; MAX_RECORDS_SKIPPED as usize + 1].concat();
    lab.segment(ISN, &[&past_bound[..], &hello].concat());
    assert!(lab.drain().is_empty());
    let c = lab.counters();
    assert_eq!((c.hellos, c.too_many_records), (0, 1));
    // At the bound: found.
    lab.segment(ISN + 10_000, &[&at_bound[..], &hello].concat());
    let done = lab.drain();
    let (first, bytes, _) = the_one_hello(&done);
    assert_eq!(first.record_seq, ISN + 10_000 + at_bound.len() as u32);
    assert_eq!(bytes, &hello);
    let c = lab.counters();
    assert_eq!((c.hellos, c.too_many_records), (1, 1));
}
