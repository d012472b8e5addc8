//! The daemon's clock: CLOCK_MONOTONIC, the clock `bpf_ktime_get_ns`
//! reads, so ages computed here match the kernel's stamps. In a replay the
//! capture sets it instead (ns since the Unix epoch, as the programs see
//! it), and the sweep, the timeouts, the records' holds and the events'
//! times all follow the capture.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// The replayed capture's time; 0 when live.
static CAPTURE_NOW: AtomicU64 = AtomicU64::new(0);

/// The current time on the programs' clock.
pub fn monotonic_ns() -> u64 {
    let replayed = CAPTURE_NOW.load(Ordering::Relaxed);
    if replayed != 0 {
        return replayed;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// From now on the clock is the capture's: `ns` since the Unix epoch
/// (never 0).
pub fn set_capture_time(ns: u64) {
    CAPTURE_NOW.store(ns.max(1), Ordering::Relaxed);
}

/// Back to CLOCK_MONOTONIC (a replay is over).
pub fn use_kernel_clock() {
    CAPTURE_NOW.store(0, Ordering::Relaxed);
}

/// Wall-clock time of a stamp on the programs' clock.
pub fn wall_time(ts_ns: u64) -> SystemTime {
    if CAPTURE_NOW.load(Ordering::Relaxed) != 0 {
        return UNIX_EPOCH + Duration::from_nanos(ts_ns);
    }
    let now = monotonic_ns();
    if ts_ns > now {
        return SystemTime::now() + Duration::from_nanos(ts_ns - now);
    }
    SystemTime::now() - Duration::from_nanos(now - ts_ns)
}
