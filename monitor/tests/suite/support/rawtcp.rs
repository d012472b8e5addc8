//! A TCP client made of hand-built Ethernet frames: it sends only the
//! segments a test asks for, when the test asks, so a handshake can be left
//! half-open, answered wrongly or late, which the kernel's own stack never
//! does.
//!
//! Frames leave through an AF_PACKET socket bound to the hub's veth, from
//! an address in the link's /24 that no namespace owns. A static neighbour
//! entry on the server side sends the server's answers to the hub veth's
//! MAC. There the hub kernel drops them without a word (the address is not
//! local and the hub does not forward, so no RST and no ICMP), while the
//! packet socket still reads them: nothing but this client answers the
//! server.

use std::{
    io,
    mem::size_of,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use monitor_common::{
    classify::tcp_flags::{ACK, RST, SYN},
    frames::{Ip, TcpFrame},
};

use super::{cmd, lab::Link, netns::in_netns};

/// The server answers in microseconds; this only bounds a lost frame.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
const IPPROTO_TCP: u8 = 6;
/// Host byte of the client's address: outside the lab's .1 and .2.
const CLIENT_HOST: u8 = 100;

/// One segment the server sent to the client.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// When the packet socket read it.
    pub at: Instant,
}

impl Segment {
    pub fn is_syn_ack(&self) -> bool {
        self.flags & (SYN | ACK | RST) == SYN | ACK
    }
}

pub struct RawClient {
    socket: OwnedFd,
    hub_mac: [u8; 6],
    peer_mac: [u8; 6],
    pub addr: Ipv4Addr,
    pub server: Ipv4Addr,
    pub port: u16,
    pub server_port: u16,
    /// The client's initial sequence number (x).
    pub isn: u32,
}

impl RawClient {
    /// A client on the hub end of `link` (the hub being `hub_ns`) for a
    /// server on the peer end, at `server_port`.
    pub fn new(hub_ns: &str, link: &Link, server_port: u16) -> Self {
        let [a, b, c, _] = link.hub_addr.octets();
        let addr = Ipv4Addr::new(a, b, c, CLIENT_HOST);
        let hub_mac = mac(hub_ns, &link.hub_if);
        let peer_mac = mac(&link.peer_ns, &link.peer_if);
        // The server must not ARP for a client nobody will answer for.
        let (addr_s, mac_s) = (addr.to_string(), format_mac(hub_mac));
        cmd::ip(&[
            "-n",
            &link.peer_ns,
            "neigh",
            "replace",
            &addr_s,
            "lladdr",
            &mac_s,
            "dev",
            &link.peer_if,
            "nud",
            "permanent",
        ]);
        // New namespaces do not forward; make sure, since a forwarding hub
        // would answer the server with ICMP.
        let sysctl = ["netns", "exec", hub_ns, "sysctl", "-qw"];
        cmd::run("ip", &[&sysctl[..], &["net.ipv4.ip_forward=0"]].concat());
        let socket = in_netns(hub_ns, || packet_socket(&link.hub_if))
            .unwrap_or_else(|err| panic!("AF_PACKET socket on {}: {err}", link.hub_if));
        Self {
            socket,
            hub_mac,
            peer_mac,
            addr,
            server: link.peer_addr,
            port: 40_100,
            server_port,
            isn: 0x1000_0000,
        }
    }

    /// Sends one segment from the client to the server.
    pub fn send(&self, flags: u8, seq: u32, ack: u32) {
        let ip = Ip::V4 {
            src: self.addr.octets(),
            dst: self.server.octets(),
            options: Vec::new(),
            more_fragments: false,
        };
        let mut segment = TcpFrame::new(ip, flags);
        (segment.src_port, segment.dst_port) = (self.port, self.server_port);
        (segment.seq, segment.ack) = (seq, ack);
        let mut frame = segment.build();
        // The builder's MACs are placeholders: the server's veth only
        // takes frames addressed to it.
        frame[..6].copy_from_slice(&self.peer_mac);
        frame[6..12].copy_from_slice(&self.hub_mac);
        // SAFETY: frame is a live buffer of frame.len() bytes; the socket
        // is bound, so no destination address is needed.
        let sent = unsafe {
            libc::send(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
            )
        };
        assert_eq!(
            sent,
            frame.len() as isize,
            "sending a frame: {}",
            io::Error::last_os_error()
        );
    }

    pub fn syn(&self) {
        self.send(SYN, self.isn, 0);
    }

    /// The final ACK of the handshake, acknowledging `ack`.
    pub fn ack(&self, ack: u32) {
        self.send(ACK, self.isn.wrapping_add(1), ack);
    }

    /// The next segment the server sends this client, within `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Segment> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
            assert!(ready >= 0, "poll: {}", io::Error::last_os_error());
            if ready == 0 {
                return None;
            }
            // SAFETY: an all-zero sockaddr_ll is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and from are writable for the lengths passed.
            let n = unsafe {
                libc::recvfrom(
                    self.socket.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&raw mut from).cast(),
                    &mut from_len,
                )
            };
            assert!(n >= 0, "recvfrom: {}", io::Error::last_os_error());
            // ETH_P_ALL hands back our own frames too, as outgoing.
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            if let Some(segment) = self.parse(&buf[..n as usize]) {
                return Some(segment);
            }
        }
    }

    /// The next segment, which must be a SYN-ACK for our SYN.
    pub fn expect_syn_ack(&self) -> Segment {
        let segment = self
            .recv(ANSWER_TIMEOUT)
            .expect("no SYN-ACK from the server");
        assert!(segment.is_syn_ack(), "expected a SYN-ACK, got {segment:?}");
        assert_eq!(
            segment.ack,
            self.isn.wrapping_add(1),
            "the SYN-ACK acknowledges x+1"
        );
        segment
    }

    /// A TCP segment from the server to this client, or None for anything
    /// else on the wire.
    fn parse(&self, frame: &[u8]) -> Option<Segment> {
        let at = Instant::now();
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if frame.len() < 34 || frame[12..14] != ETH_P_IP.to_be_bytes() || frame[23] != IPPROTO_TCP {
            return None;
        }
        let tcp = 14 + usize::from(frame[14] & 0x0f) * 4;
        let ours = frame[26..30] == self.server.octets() && frame[30..34] == self.addr.octets();
        if !ours || frame.len() < tcp + 20 {
            return None;
        }
        let t = &frame[tcp..];
        let ports = (
            u16::from_be_bytes([t[0], t[1]]),
            u16::from_be_bytes([t[2], t[3]]),
        );
        (ports == (self.server_port, self.port)).then(|| Segment {
            flags: t[13],
            seq: be32(&t[4..8]),
            ack: be32(&t[8..12]),
            at,
        })
    }
}

/// An AF_PACKET socket bound to `ifname`, made in the calling thread's
/// namespace.
pub fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    let protocol = ETH_P_ALL.to_be();
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol.into(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: name is NUL-terminated.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = ifindex as i32;
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_ll of the length passed.
    if unsafe { libc::bind(fd, (&raw const addr).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// The MAC address of `ifname` in `ns`, from `ip link show`.
pub fn mac(ns: &str, ifname: &str) -> [u8; 6] {
    let out = cmd::ip(&["-n", ns, "link", "show", "dev", ifname]);
    let text = out
        .split_whitespace()
        .skip_while(|word| *word != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no link/ether in {out}"));
    let mut mac = [0u8; 6];
    for (byte, hex) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad MAC {text}"));
    }
    mac
}

pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}
