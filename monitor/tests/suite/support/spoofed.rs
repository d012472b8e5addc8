//! Spoofed SYNs from fixed, seeded sources: a flood a test can repeat.
//!
//! `hping3 --rand-source` draws new sources every run, and the half-open
//! table is direct-mapped: two of a few hundred random tuples share a slot
//! often enough (the birthday bound) that a test assuming none did failed
//! about one run in four. Here the tuples are a function of the seed, the
//! frames leave from the thread that sends them (pinned, when asked, to CPU
//! 0: a veth runs its peer's XDP program on the sending CPU, so the tuples
//! land in one per-CPU partition, the same one `replay` uses), and the
//! expectations of the tests that use them still count what the kernel
//! reports it displaced rather than assuming nothing was.

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, OwnedFd},
    thread,
    time::{Duration, Instant},
};

use monitor_common::{
    classify::tcp_flags::SYN,
    frames::{Ip, TcpFrame},
};

use super::{lab::Link, netns::in_netns, rawtcp};

/// Whatever the pacing, a burst stops after this long.
const BURST_MAX: Duration = Duration::from_secs(10);

pub struct SpoofedSyns {
    socket: OwnedFd,
    hub_mac: [u8; 6],
    peer_mac: [u8; 6],
    server: Ipv4Addr,
    port: u16,
    state: u64,
}

impl SpoofedSyns {
    /// SYNs to `port` on the peer end of `link`, sent from the hub end
    /// (`hub_ns`), their sources, ports and ISNs drawn from `seed`. The
    /// sources are in 198.19.0.0/16, which the lab routes nowhere: the
    /// server's SYN-ACKs go unanswered and the handshakes time out.
    pub fn new(hub_ns: &str, link: &Link, port: u16, seed: u64) -> Self {
        let socket = in_netns(hub_ns, || rawtcp::packet_socket(&link.hub_if))
            .unwrap_or_else(|err| panic!("AF_PACKET socket on {}: {err}", link.hub_if));
        Self {
            socket,
            hub_mac: rawtcp::mac(hub_ns, &link.hub_if),
            peer_mac: rawtcp::mac(&link.peer_ns, &link.peer_if),
            server: link.peer_addr,
            port,
            // xorshift64 has no zero state.
            state: seed | 1,
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// The next SYN's frame, and its tuple's source.
    fn frame(&mut self) -> Vec<u8> {
        let r = self.next();
        let ip = Ip::V4 {
            src: [198, 19, (r >> 8) as u8, r as u8],
            dst: self.server.octets(),
            options: Vec::new(),
            more_fragments: false,
        };
        let mut syn = TcpFrame::new(ip, SYN).with_syn_options();
        (syn.src_port, syn.dst_port, syn.seq) =
            ((r >> 16) as u16 | 1024, self.port, (r >> 32) as u32);
        let mut frame = syn.build();
        frame[..6].copy_from_slice(&self.peer_mac);
        frame[6..12].copy_from_slice(&self.hub_mac);
        frame
    }

    /// Sends `count` SYNs, `per_ms` to a millisecond, from the calling
    /// thread; returns how many the socket took (all of them, unless the
    /// burst ran past its time bound).
    pub fn send(&mut self, count: u32, per_ms: u32) -> u32 {
        let started = Instant::now();
        let mut sent = 0;
        while sent < count && started.elapsed() < BURST_MAX {
            let frame = self.frame();
            // SAFETY: a live buffer; the socket is bound to the interface.
            let n = unsafe {
                libc::send(
                    self.socket.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                )
            };
            if n == frame.len() as isize {
                sent += 1;
                if sent % per_ms.max(1) == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
        sent
    }

    /// `send` from a thread of its own kept on CPU 0: every SYN then takes
    /// its half-open slot in CPU 0's partition, as in a replay.
    pub fn send_from_cpu0(mut self, count: u32, per_ms: u32) -> u32 {
        thread::scope(|s| {
            s.spawn(|| {
                super::pin_to_cpu0();
                self.send(count, per_ms)
            })
            .join()
            .expect("the SYN sender panicked")
        })
    }
}
