//! In-place cost: the kernel's own run-time statistics of an attached
//! program (run_time_ns / run_cnt, what `bpftool prog show` prints with
//! `kernel.bpf_stats_enabled=1`), read before and after some traffic.

use std::os::fd::OwnedFd;

use anyhow::Context as _;
use aya::programs::{ProgramInfo, loaded_programs};

/// The kernel's BPF run-time statistics, on while this lives. Taken with
/// BPF_ENABLE_STATS, the switch behind `kernel.bpf_stats_enabled`: the
/// kernel turns it off again when the fd closes, whatever the sysctl
/// says and even if the bench dies, so there is no old value to restore.
pub struct Stats {
    _fd: OwnedFd,
}

impl Stats {
    pub fn enable() -> anyhow::Result<Self> {
        let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .context("BPF_ENABLE_STATS (kernel.bpf_stats_enabled; needs Linux 5.8+)")?;
        Ok(Self { _fd: fd })
    }
}

/// The kernel's information on the loaded program with id `id`.
pub fn program_info(id: u32) -> anyhow::Result<ProgramInfo> {
    for info in loaded_programs() {
        let info = info.context("listing the loaded BPF programs")?;
        if info.id() == id {
            return Ok(info);
        }
    }
    anyhow::bail!("no loaded BPF program has id {id}")
}

/// A program's run counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunStats {
    pub run_ns: u64,
    pub runs: u64,
}

impl RunStats {
    pub fn of(info: &ProgramInfo) -> Self {
        Self {
            run_ns: info.run_time().as_nanos() as u64,
            runs: info.run_count(),
        }
    }

    /// The counters of the loaded program with kernel id `id` (another
    /// process's, e.g. the daemon's).
    pub fn of_id(id: u32) -> anyhow::Result<Self> {
        Ok(Self::of(&program_info(id)?))
    }

    /// Mean ns per run since `before`, and the runs it averages; NaN when
    /// the program did not run.
    pub fn since(self, before: Self) -> (f64, u64) {
        let runs = self.runs.saturating_sub(before.runs);
        let ns = self.run_ns.saturating_sub(before.run_ns);
        if runs == 0 {
            return (f64::NAN, 0);
        }
        (ns as f64 / runs as f64, runs)
    }
}
