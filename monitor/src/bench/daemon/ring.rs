//! Ring-buffer events drained per second by the daemon's reader: the
//! kernel program captures ClientHellos (frames through TestRun) into
//! TLS_EVENTS until it is nearly full, then the daemon's read path (the
//! ring buffer's `next`, chunk split, reassembly: what `tls_capture`
//! does per record before parsing) drains it, timed. Lost events are the
//! kernel's ring-full count plus any shortfall between captured and read.

use std::{hint::black_box, time::Instant};

use anyhow::Context as _;
use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use monitor_common::{
    capture::{CHUNK_HEADER_LEN, CaptureCounters},
    classify::tcp_flags::{ACK, PSH},
    frames::TcpFrame,
    tls::builder::ClientHelloBuilder,
};

use crate::{
    bench::{program_mut, programs_for_bench},
    tls_capture::{reassembly::Reassembler, split_chunk},
};

/// The ring buffer's size in monitor-ebpf's tls.rs.
const RING_BYTES: usize = 4 << 20;
/// Kernel per-record header, and the record alignment.
const RECORD_OVERHEAD: usize = 8;

fn counters(capture: &crate::tls_capture::CaptureMaps) -> anyhow::Result<CaptureCounters> {
    let mut sum = CaptureCounters::default();
    for cpu in capture.counters.get(&0, 0)?.iter() {
        sum.accumulate(cpu);
    }
    Ok(sum)
}

/// One fill-and-drain. Returns (events/s drained, events lost, events).
pub fn round() -> anyhow::Result<(f64, u64, u64)> {
    let (mut programs, mut capture) = programs_for_bench(u64::MAX / 4)?;
    let hello = ClientHelloBuilder::new()
        .sni("bench.example.test")
        .alpn(&["h2"])
        .record();
    let record = (RECORD_OVERHEAD + CHUNK_HEADER_LEN + hello.len()).next_multiple_of(8);
    // Leave a tenth of the ring free: the fill must not lose anything.
    let events = (RING_BYTES * 9 / 10 / record) as u16;
    let program: &mut Xdp = program_mut(programs.ebpf_mut(), crate::loader::XDP_PROGRAM)?;
    for i in 0..events {
        let mut frame = TcpFrame::v4(ACK | PSH).with_payload(&hello);
        // A flow of its own per hello, as from distinct clients.
        frame.src_port = 1024 + i;
        let frame = frame.build();
        let opts = TestRunOptions {
            data_in: Some(&frame),
            ..Default::default()
        };
        program.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    }
    let produced = counters(&capture)?;
    let mut reassembler = Reassembler::new();
    let (mut read, mut completed) = (0u64, 0u64);
    let start = Instant::now();
    while let Some(item) = capture.ring.next() {
        read += 1;
        if let Some((header, data)) = split_chunk(&item)
            && let Some(done) = reassembler.push(header, data)
        {
            completed += 1;
            black_box(done);
        }
    }
    let elapsed = start.elapsed();
    let lost = produced.ringbuf_full + produced.hellos.saturating_sub(read);
    anyhow::ensure!(
        completed == read,
        "{read} events read but {completed} hellos reassembled"
    );
    Ok((read as f64 / elapsed.as_secs_f64(), lost, read))
}
