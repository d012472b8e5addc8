//! CPU time from /proc: a process's (utime + stime) and the host's idle
//! share (/proc/stat).

use std::fs;

use anyhow::Context as _;

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    hz.max(1.0)
}

/// CPU time process `pid` has used, user and system, in seconds.
pub fn process_cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces, inside
    // parentheses): utime and stime are the 12th and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .context("short /proc/PID/stat")?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    Ok(ticks / clock_ticks())
}

/// The host's CPU time so far, in ticks: (idle + iowait, total).
#[derive(Debug, Clone, Copy)]
pub struct HostCpu {
    idle: u64,
    total: u64,
}

impl HostCpu {
    pub fn now() -> anyhow::Result<Self> {
        let stat = fs::read_to_string("/proc/stat")?;
        let line = stat
            .lines()
            .find(|l| l.starts_with("cpu "))
            .context("no cpu line in /proc/stat")?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is
        // already inside user and nice).
        let total = fields.iter().take(8).sum();
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        Ok(Self { idle, total })
    }

    /// Idle share of every CPU since `before`, in percent.
    pub fn idle_percent_since(self, before: Self) -> f64 {
        let total = self.total.saturating_sub(before.total).max(1);
        100.0 * self.idle.saturating_sub(before.idle) as f64 / total as f64
    }
}
