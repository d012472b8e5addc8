//! One hand-made SYN from an address no namespace owns, for a handshake
//! the kernel's own client would never leave half-open.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
    os::fd::{FromRawFd as _, OwnedFd},
};

use monitor_common::{
    classify::tcp_flags::SYN,
    frames::{Ip, TcpFrame},
};

use crate::support::netns::in_netns;

const ETHERNET_HEADER: usize = 14;

/// Sends one IPv4 SYN from `src` to `dst` out of namespace `ns`, through a
/// raw IP socket (the kernel routes it and resolves the next hop; the
/// source address is ours to choose).
pub fn send_syn(ns: &str, src: Ipv4Addr, dst: SocketAddr) {
    let SocketAddr::V4(dst) = dst else {
        panic!("send_syn is IPv4 only, got {dst}");
    };
    let mut frame = TcpFrame::new(
        Ip::V4 {
            src: src.octets(),
            dst: dst.ip().octets(),
            options: Vec::new(),
            more_fragments: false,
        },
        SYN,
    )
    .with_syn_options();
    frame.dst_port = dst.port();
    let packet = frame.build()[ETHERNET_HEADER..].to_vec();
    in_netns(ns, || {
        // SAFETY: plain socket(2); the fd is owned (and closed) below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: packet and addr are valid for the lengths passed.
        let sent = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(
            sent,
            packet.len() as isize,
            "sending the SYN: {}",
            io::Error::last_os_error()
        );
    });
}
