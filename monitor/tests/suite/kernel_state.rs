//! The kernel view: the daemon's tp_btf programs count TCP state
//! transitions, SYN-ACK retransmits and resets of its own network
//! namespace, exactly, while other namespaces on the machine are busy.
//!
//! Needs root (namespaces, BPF); run with `cargo xtask test -- kernel_state::`.

#[path = "kernel_state/raw_syn.rs"]
mod raw_syn;
use crate::support;
#[path = "kernel_state/view.rs"]
mod view;

use std::{
    io,
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    thread,
    time::Duration,
};

use support::{cmd, daemon::Daemon, lab::NetnsLab, netns::in_netns, require_root, traffic};
use view::{KernelView, Observer};

const SERVER_PORT: u16 = 8080;
/// Nothing listens here in any lab namespace.
const CLOSED_PORT: u16 = 9;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the client's kernel does for each connection of
/// `traffic::exchange`: it closes first (shutdown, then reads the server's
/// FIN), so its close is the active one; the timewait socket that follows
/// is a separate object the tracepoint does not report, so the full socket
/// goes FIN_WAIT2 -> CLOSE.
fn client_transitions(n: usize) -> KernelView {
    KernelView::with_transitions(&[
        ("CLOSE", "SYN_SENT", n),
        ("SYN_SENT", "ESTABLISHED", n),
        ("ESTABLISHED", "FIN_WAIT1", n),
        ("FIN_WAIT1", "FIN_WAIT2", n),
        ("FIN_WAIT2", "CLOSE", n),
    ])
}

/// `count` connections to `addr` from `ns` that must be refused (RST).
fn refused_connections(ns: &str, addr: SocketAddr, count: usize) {
    in_netns(ns, || {
        for i in 0..count {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {}
                other => panic!("connection {i} to {addr} should be refused: {other:?}"),
            }
        }
    });
}

/// Busy TCP in another lab while the test's own traffic runs: clean
/// connections and refused ones, both ends outside the observed namespace.
fn other_lab_traffic(lab: &NetnsLab) {
    let link = lab.link();
    let server_addr = SocketAddr::from((link.peer_addr, SERVER_PORT));
    let server = traffic::Server::start(&link.peer_ns, server_addr, 7);
    traffic::exchange_many(&lab.hub, server_addr, 7);
    server.join();
    refused_connections(&lab.hub, SocketAddr::from((link.peer_addr, CLOSED_PORT)), 3);
}

/// The daemon in the client's namespace: every transition of the client's
/// sockets, exactly, and nothing of the server's namespace or of another
/// lab running at the same time.
#[test]
fn client_transitions_exactly_and_only_its_own_namespace() {
    const N: usize = 10;
    require_root();
    let lab = NetnsLab::pair();
    let other = NetnsLab::pair();
    let link = lab.link();
    let daemon = Daemon::start(&lab.hub, &[&link.hub_if], 19891);
    let mut observer = Observer::new(&daemon);

    thread::scope(|scope| {
        scope.spawn(|| other_lab_traffic(&other));
        let server_addr = SocketAddr::from((link.peer_addr, SERVER_PORT));
        let server = traffic::Server::start(&link.peer_ns, server_addr, N);
        traffic::exchange_many(&lab.hub, server_addr, N);
        server.join();
    });
    observer.assert_settles_at(&client_transitions(N));
}

/// The same over IPv6: the programs read the namespace, not addresses.
#[test]
fn client_transitions_over_ipv6() {
    const N: usize = 4;
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let daemon = Daemon::start(&lab.hub, &[&link.hub_if], 19892);
    let mut observer = Observer::new(&daemon);
    let server_addr = SocketAddr::new(IpAddr::V6(link.peer_addr6), SERVER_PORT);
    let server = traffic::Server::start(&link.peer_ns, server_addr, N);
    traffic::exchange_many(&lab.hub, server_addr, N);
    server.join();
    observer.assert_settles_at(&client_transitions(N));
}

/// The daemon in the server's namespace. listen() is CLOSE -> LISTEN; each
/// accepted socket is reported from the moment the handshake completes, as
/// a clone of the listener (LISTEN -> SYN_RECV): the request socket that
/// answered the SYN (NEW_SYN_RECV) is never reported. The client closes
/// first, so the server's close is passive; closing the listener is
/// LISTEN -> CLOSE.
#[test]
fn server_transitions_exactly() {
    const N: usize = 10;
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let daemon = Daemon::start(&lab.hub, &[&link.hub_if], 19893);
    let mut observer = Observer::new(&daemon);

    let server_addr = SocketAddr::from((link.hub_addr, SERVER_PORT));
    let server = traffic::Server::start(&lab.hub, server_addr, N);
    traffic::exchange_many(&link.peer_ns, server_addr, N);
    server.join();

    let mut want = KernelView::with_transitions(&[
        ("LISTEN", "SYN_RECV", N),
        ("SYN_RECV", "ESTABLISHED", N),
        ("ESTABLISHED", "CLOSE_WAIT", N),
        ("CLOSE_WAIT", "LAST_ACK", N),
        ("LAST_ACK", "CLOSE", N),
    ]);
    want.add("CLOSE", "LISTEN", 1);
    want.add("LISTEN", "CLOSE", 1);
    observer.assert_settles_at(&want);
}

/// SYNs to a closed port: the server's namespace sends a RST for each (with
/// no socket: the programs take the namespace from the receiving device),
/// the client's receives one for each and its socket goes SYN_SENT ->
/// CLOSE. One daemon on each side.
#[test]
fn resets_sent_and_received() {
    const ATTEMPTS: usize = 5;
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let server_side = Daemon::start(&link.peer_ns, &[&link.peer_if], 19894);
    let client_side = Daemon::start(&lab.hub, &[&link.hub_if], 19895);
    let mut server_view = Observer::new(&server_side);
    let mut client_view = Observer::new(&client_side);

    refused_connections(
        &lab.hub,
        SocketAddr::from((link.peer_addr, CLOSED_PORT)),
        ATTEMPTS,
    );

    let sent = KernelView {
        resets_sent: ATTEMPTS as i64,
        ..KernelView::default()
    };
    server_view.assert_settles_at(&sent);
    let received = KernelView {
        resets_received: ATTEMPTS as i64,
        ..KernelView::with_transitions(&[
            ("CLOSE", "SYN_SENT", ATTEMPTS),
            ("SYN_SENT", "CLOSE", ATTEMPTS),
        ])
    };
    client_view.assert_settles_at(&received);
}

/// An abort (SO_LINGER 0, then close) on loopback, both ends in the
/// daemon's namespace: one RST sent by the aborting socket (the reset
/// tracepoint then has a socket and no packet), one received by its peer,
/// and both sockets go ESTABLISHED -> CLOSE without a FIN.
#[test]
fn abort_resets_on_loopback() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let daemon = Daemon::start(&lab.hub, &[&link.hub_if], 19897);
    let mut observer = Observer::new(&daemon);

    in_netns(&lab.hub, || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding on loopback");
        let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connecting");
        let (mut accepted, _) = listener.accept().expect("accepting");
        drop(listener);
        abort(client);
        accepted
            .set_read_timeout(Some(CONNECT_TIMEOUT))
            .expect("read timeout");
        // Wait for the RST to have reset the accepted socket, so that
        // closing it is no transition of its own.
        let read = io::Read::read(&mut accepted, &mut [0u8; 16]);
        assert!(
            matches!(&read, Err(err) if err.kind() == io::ErrorKind::ConnectionReset),
            "the accepted socket should be reset: {read:?}"
        );
    });

    let want = KernelView {
        resets_sent: 1,
        resets_received: 1,
        ..KernelView::with_transitions(&[
            ("CLOSE", "LISTEN", 1),
            ("LISTEN", "CLOSE", 1),
            ("CLOSE", "SYN_SENT", 1),
            ("SYN_SENT", "ESTABLISHED", 1),
            ("LISTEN", "SYN_RECV", 1),
            ("SYN_RECV", "ESTABLISHED", 1),
            ("ESTABLISHED", "CLOSE", 2),
        ])
    };
    observer.assert_settles_at(&want);
}

/// Closes `stream` with SO_LINGER 0: the kernel sends a RST instead of a
/// FIN.
fn abort(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open (owned by `stream`) and `linger` is valid for
    // the size passed.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&stream),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(stream);
}

/// A SYN whose SYN-ACK goes nowhere: the listener retransmits the SYN-ACK
/// after the initial RTO (1 s), then 2 s later. Closing the listener once
/// the first retransmit is counted stops the second. The listener's own
/// CLOSE -> LISTEN -> CLOSE is counted; the half-open request socket is
/// never a full socket, so it makes no transition.
#[test]
fn synack_retransmit() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let daemon = Daemon::start(&link.peer_ns, &[&link.peer_if], 19896);
    let mut observer = Observer::new(&daemon);

    let listen_addr = SocketAddr::from((link.peer_addr, SERVER_PORT));
    let listener = in_netns(&link.peer_ns, || TcpListener::bind(listen_addr))
        .unwrap_or_else(|err| panic!("binding {listen_addr}: {err}"));
    // An address nobody owns, whose frames go to a MAC nobody has: the
    // SYN-ACKs are dropped and no RST ever comes back.
    let [a, b, c, _] = link.peer_addr.octets();
    let ghost = std::net::Ipv4Addr::new(a, b, c, 77);
    cmd::ip(&[
        "-n",
        &link.peer_ns,
        "neigh",
        "replace",
        &ghost.to_string(),
        "lladdr",
        "02:00:00:00:00:77",
        "dev",
        &link.peer_if,
        "nud",
        "permanent",
    ]);
    raw_syn::send_syn(&lab.hub, ghost, listen_addr);

    let retransmitted = support::wait_until(Duration::from_secs(5), || {
        observer.delta().synack_retransmits >= 1
    });
    drop(listener);
    assert!(retransmitted, "no SYN-ACK retransmit counted within 5 s");
    // Past the time of the second retransmit (3 s after the SYN).
    thread::sleep(Duration::from_millis(2500));
    let want = KernelView {
        synack_retransmits: 1,
        ..KernelView::with_transitions(&[("CLOSE", "LISTEN", 1), ("LISTEN", "CLOSE", 1)])
    };
    observer.assert_settles_at(&want);
}
