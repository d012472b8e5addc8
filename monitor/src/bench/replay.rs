//! `handshake-monitor replay`'s throughput on one core: frames per second
//! through the real programs and the daemon's parts (the replay engine on
//! a capture of ordinary traffic: HTTP and TLS connections, open to close)
//! against reading the same file and doing nothing with its frames.

use std::{ops::ControlFlow, path::Path, time::Instant};

use anyhow::Context as _;
use monitor_common::{
    classify::tcp_flags::{ACK, FIN, PSH, SYN},
    frames::TcpFrame,
    tls::{builder::ClientHelloBuilder, samples},
};

use super::Figure;
use crate::{
    cli::RunArgs,
    events::EventSink,
    replay::{
        engine::Engine,
        input::{self, Item},
        link,
        local::LocalSide,
        pcap_write::PcapWriter,
    },
};

/// Connections in the capture, 10 frames each.
const CONNECTIONS: u32 = 10_000;
/// 2026-12-07T00:00:00Z, the capture's first frame.
const CAPTURE_START_NS: u64 = 1_796_601_600_000_000_000;
/// The floor for ordinary traffic on one core.
pub const TARGET_FRAMES_PER_SEC: f64 = 200_000.0;

pub fn run(rounds: usize) -> anyhow::Result<Vec<Figure>> {
    let dir = std::env::temp_dir().join(format!("hm-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the bench's capture directory")?;
    let path = dir.join("ordinary.pcap");
    let result = measure(&path, rounds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(path: &Path, rounds: usize) -> anyhow::Result<Vec<Figure>> {
    let frames = write_capture(path)?;
    let mut pairs = Vec::new();
    for _ in 0..rounds {
        let read = read_only(path)?;
        let replayed = replay(path)?;
        pairs.push((frames as f64 / replayed, frames as f64 / read));
    }
    let median = |values: Vec<f64>| super::median(values);
    let per_frame = |rate: f64| 1e9 / rate;
    let value = median(pairs.iter().map(|p| p.0).collect());
    let baseline = median(pairs.iter().map(|p| p.1).collect());
    eprintln!(
        "handshake-monitor-bench: replay {frames} frames: {value:.0} frames/s ({:.0} ns/frame), \
         reading alone {baseline:.0} frames/s ({:.0} ns/frame); target {TARGET_FRAMES_PER_SEC:.0}",
        per_frame(value),
        per_frame(baseline)
    );
    Ok(vec![
        super::paired("replay_frames_per_sec", "frames/s", &pairs),
        Figure {
            name: "replay_against_target".into(),
            unit: "frames/s",
            value,
            baseline: TARGET_FRAMES_PER_SEC,
            ratio: value / TARGET_FRAMES_PER_SEC,
        },
    ])
}

/// Seconds to read the file and touch every frame.
fn read_only(path: &Path) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut bytes = 0u64;
    let report = input::read_file(path, |item| {
        if let Item::Frame(frame) = item {
            bytes += u64::from(frame.ethernet[frame.ethernet.len() - 1]);
        }
        ControlFlow::Continue(())
    });
    std::hint::black_box(bytes);
    report
        .error
        .map_or(Ok(()), |e| Err(e).context("reading the capture"))?;
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds to replay the file, loading excluded (it is the same for any
/// capture): every frame run, the rings drained, the timers fired, the
/// final sweep and metrics.
fn replay(path: &Path) -> anyhow::Result<f64> {
    let local = LocalSide::given(vec!["198.18.0.2/32".parse()?]);
    let mut engine = Engine::new(&RunArgs::defaults(), "bench", local, EventSink::disabled())?;
    let start = Instant::now();
    let mut failure = None;
    let report = input::read_file(path, |item| {
        if let Item::Frame(frame) = item
            && let Err(err) = engine.frame(frame.ts_ns, frame.ethernet, frame.captured)
        {
            failure = Some(err);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if let Some(err) = failure {
        return Err(err).context("replaying a frame");
    }
    report
        .error
        .map_or(Ok(()), |e| Err(e).context("reading the capture"))?;
    engine.finish();
    std::hint::black_box(crate::metrics::render(engine.registry()));
    Ok(start.elapsed().as_secs_f64())
}

/// The capture: connections to 198.18.0.2 on 80 and 443, one after the
/// other 2 ms apart, each open to close; the TLS ones carry a ClientHello
/// and a real ServerHello. Returns the frame count.
fn write_capture(path: &Path) -> anyhow::Result<u64> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut out = PcapWriter::new(file, u32::from(link::ETHERNET), true)?;
    let client_hello = ClientHelloBuilder::new()
        .sni("bench.example.test")
        .alpn(&["h2", "http/1.1"])
        .record();
    let server_hello = samples::ALL
        .iter()
        .find(|(stem, _)| !samples::is_client(stem))
        .map(|(_, hex)| samples::bytes(hex))
        .context("no ServerHello sample")?;
    let request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec();
    let response = vec![b'x'; 1200];
    let mut ts = CAPTURE_START_NS;
    let mut frames = 0u64;
    for i in 0..CONNECTIONS {
        let tls = i % 2 == 1;
        let client = [198, 18, 1 + (i / 250 % 200) as u8, (i % 250) as u8 + 1];
        let port = 20_000 + (i % 40_000) as u16;
        let server_port = if tls { 443 } else { 80 };
        let (c, s) = (
            1_000_000u32.wrapping_mul(i + 1),
            7_000_000u32.wrapping_mul(i + 3),
        );
        let (ask, answer) = if tls {
            (client_hello.clone(), server_hello.clone())
        } else {
            (request.clone(), response.clone())
        };
        let (ask_len, answer_len) = (ask.len() as u32, answer.len() as u32);
        let segments: [(bool, u8, u32, u32, Vec<u8>); 10] = [
            (true, SYN, c, 0, Vec::new()),
            (false, SYN | ACK, s, c + 1, Vec::new()),
            (true, ACK, c + 1, s + 1, Vec::new()),
            (true, PSH | ACK, c + 1, s + 1, ask),
            (false, ACK, s + 1, c + 1 + ask_len, Vec::new()),
            (false, PSH | ACK, s + 1, c + 1 + ask_len, answer),
            (true, ACK, c + 1 + ask_len, s + 1 + answer_len, Vec::new()),
            (
                true,
                FIN | ACK,
                c + 1 + ask_len,
                s + 1 + answer_len,
                Vec::new(),
            ),
            (
                false,
                FIN | ACK,
                s + 1 + answer_len,
                c + 2 + ask_len,
                Vec::new(),
            ),
            (true, ACK, c + 2 + ask_len, s + 2 + answer_len, Vec::new()),
        ];
        for (to_server, flags, seq, ack, payload) in segments {
            let server = [198, 18, 0, 2];
            let frame = if to_server {
                TcpFrame::v4_segment(client, server, (port, server_port), flags, seq, ack)
            } else {
                TcpFrame::v4_segment(server, client, (server_port, port), flags, seq, ack)
            }
            .with_payload(&payload);
            out.write(ts, &frame.build())?;
            ts += 200_000;
            frames += 1;
        }
        ts += 2_000_000;
    }
    out.into_inner()?;
    Ok(frames)
}
