//! End to end: SYN cookies from XDP against a random-source spoofed SYN
//! flood (sources from 198.19.0.0/16 and 2001:2:0:ff00::/56, bounded in
//! count and time) while a real client connects in a loop. With cookies
//! on, the real client's handshakes complete through the cookie path
//! (bpf_sk_assign_tcp_reqsk), the server's listen queue never overflows
//! and the flood's SYNs never reach its stack; with them off, they do.
//! An established connection survives the mode switching on and off.
//!
//! Needs root (namespaces, BPF, AF_PACKET); run with
//! `cargo test -p monitor --test syncookies`.

#[allow(
    dead_code,
    reason = "each test binary uses a different part of the support module"
)]
mod support;

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use aya::programs::{Xdp, XdpMode};
use monitor::ebpf::Programs;
use monitor_common::{
    classify::tcp_flags::SYN,
    frames::{Ip, TcpFrame},
};
use support::{
    cmd, handshakes::Monitor, lab::NetnsLab, netns::in_netns, prom, rawtcp, require_root,
    wait_until,
};

const PORT: u16 = 8080;
const FLOOD_SYNS: u32 = 50_000;
/// Whatever the pacing does, the flood stops after this long.
const FLOOD_MAX: Duration = Duration::from_secs(8);

/// Accepts connections; says "ok" and then echoes until the peer closes.
struct EchoService {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EchoService {
    fn start(ns: &str, addr: SocketAddr) -> Self {
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
fn one_exchange(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).is_ok() && &reply == b"ok"
}

/// A real client connecting in a loop (about 40 a second) until told to
/// stop (at most 60 s): (successes, attempts).
fn real_client(ns: &str, addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<(u32, u32)> {
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
struct Flooder {
    socket: OwnedFd,
    hub_mac: [u8; 6],
    peer_mac: [u8; 6],
    server: IpAddr,
    state: u64,
}

impl Flooder {
    fn new(lab: &NetnsLab, v6: bool) -> Self {
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
    fn flood(&mut self, count: u32) -> u32 {
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

/// A veth delivers what XDP sends back (XDP_TX) only if its peer runs
/// NAPI, which an XDP program (or GRO) turns on: attach a do-nothing XDP
/// program to the hub's end (a NIC needs nothing of the kind). The
/// returned object holds the attachment.
fn napi(lab: &NetnsLab) -> Programs {
    let mut programs = Programs::load().expect("loading the programs");
    let pass: &mut Xdp = programs
        .ebpf_mut()
        .program_mut("hs_bench_pass")
        .expect("hs_bench_pass")
        .try_into()
        .expect("an XDP program");
    pass.load().expect("loading hs_bench_pass");
    let hub_if = lab.link().hub_if.clone();
    in_netns(&lab.hub, || pass.attach(&hub_if, XdpMode::Driver))
        .expect("attaching XDP to the hub's veth");
    programs
}

/// TcpExt and Tcp counters of namespace `ns` (from /proc/thread-self/net).
fn netstat(ns: &str) -> HashMap<String, u64> {
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

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, key: &str) -> u64 {
    after[key] - before[key]
}

fn cookie_metric(monitor: &Monitor, event: &str) -> f64 {
    let name = format!("handshake_syncookie_{event}_total");
    prom::value(
        &monitor.scrape().text,
        &name,
        &[("interface", monitor.iface.as_str())],
    )
    .unwrap_or(-1.0)
}

fn flood_run(v6: bool, mode: &str) {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let _napi = napi(&lab);
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19941 + u16::from(v6),
        &[
            "--port",
            "8080",
            "--syncookies",
            mode,
            "--mitigation",
            "off",
        ],
    );
    let server: IpAddr = if v6 {
        link.peer_addr6.into()
    } else {
        link.peer_addr.into()
    };
    let addr = SocketAddr::new(server, PORT);
    let _service = EchoService::start(&link.peer_ns, addr);
    let mut flooder = Flooder::new(&lab, v6);
    let before = netstat(&link.peer_ns);
    let stop = Arc::new(AtomicBool::new(false));
    let client = real_client(&lab.hub, addr, Arc::clone(&stop));
    thread::sleep(Duration::from_millis(300));
    let sent = flooder.flood(FLOOD_SYNS);
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (ok, attempts) = client.join().expect("client thread");
    let after = netstat(&link.peer_ns);
    let d = |key| delta(&before, &after, key);
    let stack_syns = d("TcpInSegs");
    eprintln!(
        "mode {mode} v6 {v6}: flood {sent} SYNs; real client {ok}/{attempts}; server stack: \
         InSegs +{stack_syns}, SyncookiesSent +{}, ListenOverflows +{}, ListenDrops +{}; \
         XDP cookies sent {}, handed {}",
        d("TcpExtSyncookiesSent"),
        d("TcpExtListenOverflows"),
        d("TcpExtListenDrops"),
        cookie_metric(&monitor, "sent"),
        cookie_metric(&monitor, "handed"),
    );
    assert!(sent > FLOOD_SYNS / 2, "the flood sent only {sent} SYNs");
    if mode == "off" {
        // The contrast: the stack took the flood, and had to fall back on
        // its own cookies or drop.
        assert!(stack_syns >= u64::from(sent) / 2, "InSegs +{stack_syns}");
        assert!(
            d("TcpExtSyncookiesSent") + d("TcpExtListenDrops") > 0,
            "the listen queue never filled: {after:?}"
        );
        return;
    }
    assert!(attempts >= 40, "only {attempts} attempts");
    assert!(
        f64::from(ok) >= 0.99 * f64::from(attempts),
        "real client: {ok} of {attempts}"
    );
    for key in [
        "TcpExtSyncookiesSent",
        "TcpExtListenOverflows",
        "TcpExtListenDrops",
    ] {
        assert_eq!(d(key), 0, "{key} moved");
    }
    // The real client's segments only (a handful per connection).
    assert!(
        stack_syns < u64::from(attempts) * 20,
        "the stack saw {stack_syns} segments: the flood reached it"
    );
    assert!(cookie_metric(&monitor, "sent") >= f64::from(sent) * 0.95);
    assert!(cookie_metric(&monitor, "handed") >= f64::from(ok));
}

#[test]
fn cookies_carry_real_clients_through_a_random_source_flood_ipv4() {
    flood_run(false, "always");
}

#[test]
fn cookies_carry_real_clients_through_a_random_source_flood_ipv6() {
    flood_run(true, "always");
}

#[test]
fn without_cookies_the_flood_reaches_the_listen_queue() {
    flood_run(false, "off");
}

fn active(monitor: &Monitor) -> f64 {
    prom::value(
        &monitor.scrape().text,
        "handshake_syncookie_active",
        &[("interface", monitor.iface.as_str()), ("port", "8080")],
    )
    .unwrap_or(-1.0)
}

/// A long-lived connection: after the greeting, each exchange sends a line
/// and expects it echoed.
struct Session(TcpStream);

impl Session {
    fn open(ns: &str, addr: SocketAddr) -> Self {
        let mut stream = in_netns(ns, || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        })
        .expect("connecting the long-lived session");
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut hello = [0u8; 2];
        stream.read_exact(&mut hello).expect("greeting");
        Self(stream)
    }

    fn exchange(&mut self, what: &str) -> bool {
        let line = format!("{what}\n");
        let mut back = vec![0u8; line.len()];
        self.0.write_all(line.as_bytes()).is_ok()
            && self.0.read_exact(&mut back).is_ok()
            && back == line.as_bytes()
    }
}

#[test]
fn established_connections_survive_cookies_switching_on_and_off() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let _napi = napi(&lab);
    let config = std::env::temp_dir().join(format!("hmt-{}-cookies.toml", std::process::id()));
    std::fs::write(
        &config,
        "[syncookies]\nmode = \"on-flood\"\nhold_seconds = 1\n",
    )
    .unwrap();
    let monitor = Monitor::start(
        &link.peer_ns,
        &link.peer_if,
        19944,
        &[
            "--port",
            "8080",
            "--mitigation",
            "off",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_file(&config);
    let addr = SocketAddr::new(link.peer_addr.into(), PORT);
    let _service = EchoService::start(&link.peer_ns, addr);
    let mut before = Session::open(&lab.hub, addr);
    assert!(before.exchange("before"), "no echo before the flood");
    assert_eq!(active(&monitor), 0.0);

    let mut flooder = Flooder::new(&lab, false);
    let flood = thread::spawn(move || flooder.flood(120_000));
    let on = wait_until(Duration::from_secs(6), || active(&monitor) == 1.0);
    assert!(on, "cookies never switched on\n{}", monitor.scrape().text);
    assert!(before.exchange("during"), "the established session broke");
    // A session made through a cookie while they are on.
    let mut during = Session::open(&lab.hub, addr);
    assert!(during.exchange("made from a cookie"));
    let sent = flood.join().expect("flood thread");
    assert!(sent > 10_000);

    let off = wait_until(Duration::from_secs(20), || active(&monitor) == 0.0);
    assert!(off, "cookies never switched off\n{}", monitor.scrape().text);
    assert!(before.exchange("after"), "the first session broke");
    assert!(during.exchange("after"), "the cookie-made session broke");
    // And new connections go to the stack again.
    let mut fresh = Session::open(&lab.hub, addr);
    assert!(fresh.exchange("fresh"));
    assert!(cookie_metric(&monitor, "handed") >= 1.0);
}
