//! Shared machinery for the end-to-end tests: network namespace labs, the
//! real daemon binary under a guard, traffic, scraping and attachment checks.
//!
//! Every helper is bounded in time: a broken daemon or kernel makes a test
//! fail with a message, never hang.

pub mod alertmanager;
pub mod attach;
pub mod bpffs;
pub mod capture_files;
pub mod cmd;
pub mod cookies;
pub mod daemon;
pub mod deploy;
pub mod handshakes;
pub mod http;
pub mod lab;
pub mod netns;
pub mod openssl;
pub mod privilege;
pub mod prom;
pub mod rawtcp;
pub mod replay;
pub mod replay_checks;
pub mod sockets;
pub mod spoofed;
pub mod testrun;
pub mod traffic;
pub mod watcher;

use std::{
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

/// These tests create namespaces, attach BPF programs and switch network
/// namespaces: without root they cannot say anything, and a silent skip
/// would read as a pass.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the end-to-end tests must run as root (they create network namespaces and attach \
         BPF programs); run them with sudo or in a root container"
    );
}

/// A number unique within this test process, for names and subnets.
pub fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it
/// held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Keeps the calling thread on CPU 0, for tests of per-CPU budgets.
pub fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(rc, 0, "sched_setaffinity");
    }
}
