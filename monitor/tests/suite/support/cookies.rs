//! SYN-cookie lab helpers: an echo service, a random-source SYN flooder
//! on the hub's veth, the XDP program that makes a veth deliver XDP_TX
//! frames, and the kernel's TCP counters of a namespace.

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd as _, OwnedFd},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{Xdp, XdpMode},
};
use monitor::loader::{EBPF_OBJECT, btf, kfunc};
use monitor_common::{
    classify::tcp_flags::SYN,
    frames::{Ip, TcpFrame},
};

use super::{cmd, lab::NetnsLab, netns::in_netns, rawtcp};

/// The protected port of the lab.
pub const PORT: u16 = 8080;
/// Whatever the pacing does, a flood stops after this long.
pub const FLOOD_MAX: Duration = Duration::from_secs(8);

/// Accepts connections; says "ok" and then echoes until the peer closes.
pub struct EchoService {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EchoService {
    pub fn start(ns: &str, addr: SocketAddr) -> Self {
        let listener = in_netns(ns, || TcpListener::bind(addr)).expect("listen");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                            let _ = stream.write_all(b"ok");
                            let mut buf = [0u8; 512];
                            while let Ok(n @ 1..) = stream.read(&mut buf) {
                                if stream.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for EchoService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// One short connection: connect, read "ok".
pub fn one_exchange(addr: SocketAddr) -> bool {
    one_exchange_within(addr, Duration::from_secs(3))
}

/// [`one_exchange`], the connect given `connect` (the kernel resends an
/// unanswered SYN a second later, then at growing intervals).
pub fn one_exchange_within(addr: SocketAddr, connect: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, connect) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).is_ok() && &reply == b"ok"
}

/// A real client connecting in a loop (about 40 a second) until told to
/// stop (at most 60 s): (successes, attempts).
pub fn real_client(ns: &str, addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<(u32, u32)> {
    let ns = ns.to_string();
    thread::spawn(move || {
        in_netns(&ns, || {
            let (mut ok, mut attempts) = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                attempts += 1;
                ok += u32::from(one_exchange(addr));
                thread::sleep(Duration::from_millis(25));
            }
            (ok, attempts)
        })
    })
}

/// Random-source SYNs from the hub side, straight onto the server's veth.
pub struct Flooder {
    socket: OwnedFd,
    hub_mac: [u8; 6],
    peer_mac: [u8; 6],
    server: IpAddr,
    state: u64,
}

impl Flooder {
    pub fn new(lab: &NetnsLab, v6: bool) -> Self {
        let link = lab.link();
        let socket = in_netns(&lab.hub, || rawtcp::packet_socket(&link.hub_if)).expect("socket");
        // The server routes the spoofed sources back to the hub (which
        // drops its answers), as a real network would: so with cookies
        // off its own stack answers, and queues, every SYN.
        let (net, via) = if v6 {
            ("2001:2::/48", link.hub_addr6.to_string())
        } else {
            ("198.19.0.0/16", link.hub_addr.to_string())
        };
        cmd::ip(&["-n", &link.peer_ns, "route", "add", net, "via", &via]);
        Self {
            socket,
            hub_mac: rawtcp::mac(&lab.hub, &link.hub_if),
            peer_mac: rawtcp::mac(&link.peer_ns, &link.peer_if),
            server: if v6 {
                link.peer_addr6.into()
            } else {
                link.peer_addr.into()
            },
            state: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Sends `count` SYNs at about 20,000 a second; returns how many.
    pub fn flood(&mut self, count: u32) -> u32 {
        let started = Instant::now();
        let mut sent = 0;
        while sent < count && started.elapsed() < FLOOD_MAX {
            let r = self.next();
            let ip = match self.server {
                IpAddr::V4(dst) => Ip::V4 {
                    src: [198, 19, (r >> 8) as u8, r as u8],
                    dst: dst.octets(),
                    options: Vec::new(),
                    more_fragments: false,
                },
                IpAddr::V6(dst) => {
                    let mut src = [0u8; 16];
                    src[..6].copy_from_slice(&[0x20, 0x01, 0, 2, 0, 0]);
                    src[6] = 0xff;
                    src[8..].copy_from_slice(&r.to_be_bytes());
                    Ip::V6 {
                        src,
                        dst: dst.octets(),
                        ext: Vec::new(),
                    }
                }
            };
            let mut syn = TcpFrame::new(ip, SYN);
            // Half with a Linux SYN's options, half bare (the SYN-ACK is
            // then longer than the SYN: the frame grows in XDP).
            if r >> 63 == 1 {
                syn = syn.with_syn_options();
            }
            (syn.src_port, syn.dst_port, syn.seq) =
                ((r >> 16) as u16 | 1024, PORT, (r >> 32) as u32);
            let mut frame = syn.build();
            frame[..6].copy_from_slice(&self.peer_mac);
            frame[6..12].copy_from_slice(&self.hub_mac);
            // SAFETY: a live buffer; the socket is bound to the interface.
            let n = unsafe {
                libc::send(
                    self.socket.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                )
            };
            sent += u32::from(n == frame.len() as isize);
            if sent % 200 == 0 {
                thread::sleep(Duration::from_millis(10));
            }
        }
        sent
    }
}

/// A veth delivers what XDP sends back (XDP_TX) only if its peer runs a
/// native XDP program (GRO alone queues the frames but never wakes the
/// peer for them): attach a do-nothing XDP program to the hub's end (a NIC
/// needs nothing of the kind). The returned object holds the attachment.
/// Only that program is loaded: the monitor's own would cost the verifier
/// about two seconds of CPU here, for nothing.
pub fn napi(lab: &NetnsLab) -> Ebpf {
    let reqsk = kfunc::assign_reqsk_id(Path::new(btf::KERNEL_BTF_PATH));
    let (object, _) = kfunc::patch(EBPF_OBJECT, reqsk);
    let mut ebpf = EbpfLoader::new()
        .load(object.bytes())
        .expect("loading the object");
    let pass: &mut Xdp = ebpf
        .program_mut("hs_bench_pass")
        .expect("hs_bench_pass")
        .try_into()
        .expect("an XDP program");
    pass.load().expect("loading hs_bench_pass");
    let hub_if = lab.link().hub_if.clone();
    in_netns(&lab.hub, || pass.attach(&hub_if, XdpMode::Driver))
        .expect("attaching XDP to the hub's veth");
    ebpf
}

/// TcpExt and Tcp counters of namespace `ns` (from /proc/thread-self/net).
pub fn netstat(ns: &str) -> HashMap<String, u64> {
    in_netns(ns, || {
        let mut out = HashMap::new();
        for file in ["netstat", "snmp"] {
            let text = std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
                .expect("reading /proc/net");
            let lines: Vec<&str> = text.lines().collect();
            for pair in lines.chunks(2) {
                let [names, values] = pair else { continue };
                let mut names = names.split_whitespace();
                let prefix = names.next().unwrap_or_default().trim_end_matches(':');
                for (n, v) in names.zip(values.split_whitespace().skip(1)) {
                    out.insert(format!("{prefix}{n}"), v.parse().unwrap_or(0));
                }
            }
        }
        out
    })
}
