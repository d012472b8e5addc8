//! An AF_PACKET capture of the receiving veth: what a tcpdump-style tap
//! costs the pipeline, for comparison with the monitor's XDP program.
//! Our own reader rather than tcpdump: no extra package, no process to
//! clean up, and the same count of what was captured.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
};

use anyhow::Context as _;

/// A reader thread draining an AF_PACKET socket bound to one interface.
pub struct Tap {
    stop: Arc<AtomicBool>,
    captured: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

fn socket(ifindex: u32) -> io::Result<OwnedFd> {
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket creation; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed sockaddr_ll is valid; family, protocol, ifindex set.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = all;
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // A receive timeout lets the reader see the stop flag when idle.
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    // SAFETY: SO_RCVTIMEO takes a timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

impl Tap {
    /// Opens the capture on `ifindex` (of the calling thread's namespace)
    /// and starts reading on a thread pinned to `cpu`.
    pub fn start(ifindex: u32, cpu: usize) -> anyhow::Result<Self> {
        let fd = socket(ifindex).context("opening an AF_PACKET socket")?;
        let stop = Arc::new(AtomicBool::new(false));
        let captured = Arc::new(AtomicU64::new(0));
        let (stop2, captured2) = (Arc::clone(&stop), Arc::clone(&captured));
        let thread = thread::spawn(move || {
            super::lab::pin_to_cpu(cpu);
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                // SAFETY: `buf` is writable for its length.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 {
                    captured2.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Self {
            stop,
            captured,
            thread: Some(thread),
        })
    }

    /// Frames read so far.
    pub fn captured(&self) -> u64 {
        self.captured.load(Ordering::Relaxed)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The reader wakes within its receive timeout.
            let _ = thread.join();
        }
    }
}
