//! The daemon side of TLS capture: drain the kernel's ring buffer,
//! reassemble hello records, and hand them to the parser and its outputs.

pub mod metrics;
mod pipeline;
pub mod reassembly;
pub mod wallclock;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use monitor_common::capture::{CHUNK_HEADER_LEN, CaptureCounters, ChunkHeader};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::watch,
};

pub use pipeline::Pipeline;
use reassembly::{Reassembler, ReassemblyStats};

use crate::loader::{EbpfError, Programs};

/// The kernel objects of the capture path, taken out of the loaded object.
pub struct CaptureMaps {
    pub ring: RingBuf<MapData>,
    pub counters: PerCpuArray<MapData, CaptureCounters>,
}

impl CaptureMaps {
    pub fn take(programs: &mut Programs) -> Result<Self, EbpfError> {
        Ok(Self {
            ring: programs.take_map("TLS_EVENTS")?,
            counters: programs.take_map("TLS_COUNTERS")?,
        })
    }
}

/// The kernel wakes the reader only past a fill threshold; below it, this
/// timer drains what has accumulated.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

/// Reassembly and the pipeline behind it, whoever drains the ring: the
/// daemon's task, or a replay frame by frame.
pub struct Capture {
    reassembler: Reassembler,
    pipeline: Pipeline,
    stats: Arc<Mutex<ReassemblyStats>>,
}

impl Capture {
    pub fn new(pipeline: Pipeline, stats: Arc<Mutex<ReassemblyStats>>) -> Self {
        Self {
            reassembler: Reassembler::new(),
            pipeline,
            stats,
        }
    }

    /// Takes every chunk the kernel wrote and handles the hellos they
    /// complete.
    pub fn drain(&mut self, ring: &mut RingBuf<MapData>) {
        while let Some(item) = ring.next() {
            let Some((header, data)) = split_chunk(&item) else {
                continue;
            };
            if let Some(done) = self.reassembler.push(header, data) {
                self.pipeline.handle(done);
            }
        }
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = self.reassembler.stats;
    }

    /// Drains, then forgets partial hellos and unanswered ClientHellos
    /// past their time.
    pub fn expire(&mut self, ring: &mut RingBuf<MapData>) {
        self.drain(ring);
        self.reassembler.expire(crate::clock::monotonic_ns());
        self.pipeline.expire();
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = self.reassembler.stats;
    }
}

/// Drains the ring buffer until `stop`, feeding `capture`.
pub async fn run(ring: RingBuf<MapData>, mut capture: Capture, mut stop: watch::Receiver<bool>) {
    // SAFETY: the RingBuf owns its map fd for as long as the AsyncFd owns
    // the RingBuf, and always reports that same fd.
    let registered = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) };
    let mut ring = match registered {
        Ok(fd) => fd,
        Err(err) => {
            tracing::error!("cannot poll the TLS ring buffer: {err}; TLS capture is off");
            return;
        }
    };
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => match guard {
                Ok(mut guard) => {
                    capture.drain(guard.get_inner_mut());
                    guard.clear_ready();
                }
                Err(err) => {
                    tracing::error!("polling the TLS ring buffer failed: {err}; TLS capture stops");
                    return;
                }
            },
            _ = tick.tick() => capture.expire(ring.get_mut()),
            _ = stop.changed() => return,
        }
    }
}

/// The header and payload of one ring-buffer record.
pub fn split_chunk(record: &[u8]) -> Option<(ChunkHeader, &[u8])> {
    let head = record.get(..CHUNK_HEADER_LEN)?;
    // SAFETY: `head` is exactly size_of::<ChunkHeader>() bytes and every
    // bit pattern is a valid ChunkHeader (integers only).
    let header = unsafe { std::ptr::read_unaligned(head.as_ptr().cast::<ChunkHeader>()) };
    let data = record.get(CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + usize::from(header.data_len))?;
    Some((header, data))
}
