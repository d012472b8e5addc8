//! The server side of a lifecycle test (a listener and a daemon on the
//! server's veth), and kernel sockets driven into chosen ends.

use std::{
    io::{self, ErrorKind, Read as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    thread,
    time::{Duration, Instant},
};

use super::{handshakes::Monitor, lab::NetnsLab, netns::in_netns, rawtcp::RawClient, require_root};

pub const SERVER_PORT: u16 = 8080;
/// Everything here answers in milliseconds; this only bounds a loss.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A lab whose peer namespace listens on [`SERVER_PORT`] and runs a daemon
/// on its veth, so the daemon sees the server role. Fields drop in order:
/// the daemon first, the namespaces last.
pub struct ServerSide {
    pub monitor: Monitor,
    pub listener: TcpListener,
    pub lab: NetnsLab,
}

impl ServerSide {
    pub fn start(metrics_port: u16, daemon_args: &[&str]) -> Self {
        require_root();
        let lab = NetnsLab::pair();
        let link = lab.link();
        let monitor = Monitor::start(&link.peer_ns, &link.peer_if, metrics_port, daemon_args);
        let addr = SocketAddr::from((link.peer_addr, SERVER_PORT));
        let listener = in_netns(&link.peer_ns, || TcpListener::bind(addr))
            .unwrap_or_else(|err| panic!("listening on {addr}: {err}"));
        Self {
            monitor,
            listener,
            lab,
        }
    }

    /// A raw client in the hub namespace (see [`RawClient`]).
    pub fn raw_client(&self) -> RawClient {
        RawClient::new(&self.lab.hub, self.lab.link(), SERVER_PORT)
    }

    /// A kernel connection from the hub: (client end, server end).
    pub fn connect(&self) -> (TcpStream, TcpStream) {
        let addr = SocketAddr::from((self.lab.link().peer_addr, SERVER_PORT));
        let client = in_netns(&self.lab.hub, || {
            TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        })
        .unwrap_or_else(|err| panic!("connecting to {addr}: {err}"));
        client
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        (client, accept_within(&self.listener, IO_TIMEOUT))
    }
}

/// Accepts one connection within `timeout` (std has no accept timeout).
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                stream
                    .set_read_timeout(Some(timeout))
                    .expect("read timeout");
                return stream;
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(err) => panic!("no connection accepted within {timeout:?}: {err}"),
        }
    }
}

/// Closes `stream` with SO_LINGER 0, which makes the kernel send a RST
/// instead of a FIN.
pub fn abort(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: linger is a valid struct linger of the size passed, and the
    // fd stays open for the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(stream);
}

/// The peer's FIN: a read returns end of file.
pub fn expect_eof(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let n = stream.read(&mut byte).expect("reading up to the FIN");
    assert_eq!(n, 0, "end of file after the peer's FIN");
}

/// The peer's RST: a read fails with ECONNRESET.
pub fn expect_reset(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let err = stream.read(&mut byte).expect_err("a reset connection");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}
