//! The programs' clock. Live, the kernel's; in `handshake-monitor replay`,
//! the capture's: the daemon loads the object with `REPLAY` set to 1 and
//! writes each frame's capture time into `REPLAY_CLOCK` before running it.
//! `REPLAY` sits in `.rodata`, which the loader freezes: the verifier knows
//! its value and removes the branch not taken, so the live programs carry
//! neither the map lookup nor the test.

use aya_ebpf::{
    helpers::generated::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns},
    macros::map,
    maps::Array,
};

/// 1 when loaded for a replay; set with `EbpfLoader::set_global`.
#[unsafe(no_mangle)]
static REPLAY: u8 = 0;

/// `BPF_F_MMAPABLE`: the replay writes the time in place.
const MMAPABLE: u32 = 1 << 10;

/// The replayed frame's capture time, ns since the Unix epoch.
#[map]
static REPLAY_CLOCK: Array<u64> = Array::with_max_entries(1, MMAPABLE);

#[inline(always)]
fn replaying() -> bool {
    // SAFETY: a plain read of a static; volatile so the compiler keeps
    // the load for the verifier to resolve instead of folding the 0.
    unsafe { core::ptr::read_volatile(&REPLAY) != 0 }
}

/// The capture time. The kernel clock on the (never taken) null path keeps
/// the result an unknown scalar to the verifier, as live: a constant there
/// would split its states at every later test of the time and exhaust its
/// instruction budget.
#[inline(always)]
fn replay_now() -> u64 {
    match REPLAY_CLOCK.get(0) {
        Some(now) => *now,
        // SAFETY: no preconditions.
        None => unsafe { bpf_ktime_get_ns() },
    }
}

/// The precise clock (`bpf_ktime_get_ns`, CLOCK_MONOTONIC).
///
/// A BPF-to-BPF call, not inlined: inlined at each of its callers the
/// switch lets the compiler merge and reorder the callers' code around it,
/// and the verifier's walk of the XDP program outgrows its budget.
#[inline(never)]
pub fn now() -> u64 {
    if replaying() {
        return replay_now();
    }
    // SAFETY: no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// The coarse clock (a jiffy's resolution, a few ns where the precise one
/// costs ~25): enough for budgets, rate limits, block expiry and timeouts.
/// Not inlined, as [`now`] (measured: inlined here alone, the live XDP
/// program again outgrows the verifier's budget).
#[inline(never)]
pub fn coarse_now() -> u64 {
    if replaying() {
        return replay_now();
    }
    // SAFETY: no preconditions.
    unsafe { bpf_ktime_get_coarse_ns() }
}
