//! Loading for `handshake-monitor replay`: the programs read the capture's
//! clock instead of the kernel's, and frames reach them through
//! BPF_PROG_TEST_RUN. Nothing is attached and nothing is pinned, so the
//! kernel frees everything when the process ends, however it ends.

use aya::programs::{TestRun as _, TestRunOptions};
use monitor_common::counters::Direction;

use super::{Clock, EbpfError, LoadSettings, Programs, mmap::WritableArray};

const REPLAY_CLOCK_MAP: &str = "REPLAY_CLOCK";

/// The time the programs read: the replayed frame's capture time, in a
/// one-entry mmapable array written in place (a map update per frame
/// would cost as much as the frame's own run).
pub struct ReplayClock {
    map: WritableArray<u64>,
}

impl ReplayClock {
    /// Sets the programs' clock (ns since the Unix epoch).
    pub fn set(&mut self, ns: u64) {
        self.map.set(0, ns);
    }
}

impl Programs {
    /// Loads the programs with the capture's clock frozen in (see
    /// `monitor-ebpf/src/clock.rs`); nothing pinned, nothing attached.
    pub fn load_for_replay(settings: &LoadSettings) -> Result<(Self, ReplayClock), EbpfError> {
        let mut programs = Self::load_object(settings, &[], Clock::Capture)?;
        let clock = ReplayClock {
            map: WritableArray::take(&mut programs, REPLAY_CLOCK_MAP)?,
        };
        Ok((programs, clock))
    }

    /// Runs one Ethernet frame through the XDP program (a frame towards
    /// the local side) or the TC egress program (one from it), as the
    /// kernel would on a registered interface; returns the verdict.
    pub fn run_frame(&mut self, direction: Direction, frame: &[u8]) -> Result<u32, EbpfError> {
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..Default::default()
        };
        let (program, result) = match direction {
            Direction::Ingress => (super::XDP_PROGRAM, self.xdp()?.test_run(opts)),
            Direction::Egress => (super::TC_PROGRAM, self.tc()?.test_run(opts)),
        };
        result
            .map(|r| r.return_value)
            .map_err(|source| EbpfError::TestRun { program, source })
    }
}
