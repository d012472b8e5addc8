//! End to end: the TCP lifecycle metrics (handshakes in both roles, their
//! phases, retransmissions, anomalies, half-open timeouts, closes) for
//! connections made by the kernel's own stack and by a raw client that
//! misbehaves on purpose (support::rawtcp).
//!
//! In each lab the hub namespace is the client side and the peer namespace
//! hosts the server: a daemon on the peer's veth sees the server role, one
//! on the hub's veth the client role. Each test checks the traffic it made
//! with the per-flag packet counter too, so a failure tells a broken test
//! client from a miscounting daemon.
//!
//! Needs root (namespaces, BPF); run with `cargo xtask test -- lifecycle::`.

use crate::support;

use std::{
    io::ErrorKind,
    net::{Shutdown, SocketAddr, TcpStream},
    thread,
    time::{Duration, Instant},
};

use monitor_common::classify::tcp_flags::RST;
use support::{
    handshakes::{
        CLIENT, Monitor, SERVER, SETTLE_TIMEOUT, SYN_TO_SYNACK, SYNACK_TO_ACK, Series, Series::*,
    },
    lab::NetnsLab,
    netns::in_netns,
    require_root,
    sockets::{
        IO_TIMEOUT, SERVER_PORT, ServerSide, abort, accept_within, expect_eof, expect_reset,
    },
    traffic,
};

/// The series the server-side tests wait for.
const SERVER_COMPLETED: Series = Handshakes(SERVER, "completed");

/// Both ends of N kernel connections at once. support::traffic closes
/// client first: the initiator is remote for the server, local for the
/// client.
#[test]
fn kernel_connections_in_both_roles() {
    const N: usize = 10;
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let server = Monitor::start(&link.peer_ns, &link.peer_if, 19901, &[]);
    let client = Monitor::start(&lab.hub, &link.hub_if, 19902, &[]);
    let addr = SocketAddr::from((link.peer_addr, SERVER_PORT));
    let listener = traffic::Server::start(&link.peer_ns, addr, N);
    traffic::exchange_many(&lab.hub, addr, N);
    listener.join();

    let n = N as f64;
    let s = server.settled("N closes", |s| s.closes() >= n);
    s.expect_clean(SERVER, N, "remote");
    let c = client.settled("N closes", |s| s.closes() >= n);
    c.expect_clean(CLIENT, N, "local");
}

/// A SYN to a port nobody listens on is answered with a RST: a reset
/// handshake for the client, and nothing ever half-open.
#[test]
fn syn_to_a_closed_port_is_a_client_reset() {
    const ATTEMPTS: usize = 3;
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let client = Monitor::start(&lab.hub, &link.hub_if, 19903, &[]);
    let addr = SocketAddr::from((link.peer_addr, SERVER_PORT));
    in_netns(&lab.hub, || {
        for _ in 0..ATTEMPTS {
            let err = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect_err("nothing listens");
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        }
    });
    let a = ATTEMPTS as f64;
    let c = client.settled_at(Handshakes(CLIENT, "reset"), a);
    c.expect(&[
        (Packets("egress", "syn"), a),
        (Packets("ingress", "rst"), a),
        (Handshakes(CLIENT, "reset"), a),
        (Handshakes(CLIENT, "completed"), 0.0),
        (Handshakes(CLIENT, "timed_out"), 0.0),
        (HalfOpen(CLIENT), 0.0),
        (Phase(CLIENT, SYN_TO_SYNACK, "count"), 0.0),
    ]);
    c.expect_idle(SERVER);
}

/// A SYN never followed by the final ACK: half-open until the timeout,
/// then timed out. The server kernel retransmits its SYN-ACK after 1 s and
/// 3 s (TCP_TIMEOUT_INIT, doubling), which the daemon counts.
#[test]
fn half_open_handshake_times_out() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    /// The sweep runs once a second; the rest is scheduling margin.
    const SWEEP_MARGIN: Duration = Duration::from_millis(2500);
    let side = ServerSide::start(19904, &["--handshake-timeout", "2"]);
    let raw = side.raw_client();
    let t0 = Instant::now();
    raw.syn();
    let first = raw.expect_syn_ack();

    // Between the first retransmission (1 s) and the second (3 s): once
    // the first is here and counted.
    let second_due = t0 + Duration::from_millis(2500);
    let again = raw
        .recv(second_due.saturating_duration_since(Instant::now()))
        .expect("the 1 s retransmission");
    assert!(again.is_syn_ack() && again.seq == first.seq, "{again:?}");
    let counted = side.monitor.wait_for(
        "the SYN-ACK retransmission counted",
        second_due.saturating_duration_since(Instant::now()),
        |s| s.value(SynAckRetransmits(SERVER)) >= 1.0,
    );
    counted.expect(&[
        (Packets("ingress", "syn"), 1.0),
        (Packets("egress", "syn_ack"), 2.0),
        // The client's kernel dropped the SYN-ACKs without a word.
        (Packets("ingress", "rst"), 0.0),
        (HalfOpen(SERVER), 1.0),
        (SynAckRetransmits(SERVER), 1.0),
        (Handshakes(SERVER, "timed_out"), 0.0),
        (Handshakes(SERVER, "completed"), 0.0),
    ]);

    let left = (t0 + TIMEOUT + SWEEP_MARGIN).saturating_duration_since(Instant::now());
    let s = side
        .monitor
        .wait_for_value(Handshakes(SERVER, "timed_out"), 1.0, left);
    s.expect(&[
        (Handshakes(SERVER, "timed_out"), 1.0),
        (HalfOpen(SERVER), 0.0),
        (Handshakes(SERVER, "completed"), 0.0),
        (Handshakes(SERVER, "reset"), 0.0),
        (Packets("ingress", "rst"), 0.0),
    ]);
    // The 3 s retransmission may or may not have come by now.
    let retransmits = s.value(SynAckRetransmits(SERVER));
    assert!(
        (1.0..=2.0).contains(&retransmits),
        "{retransmits}:\n{}",
        s.text
    );
}

/// A final ACK acknowledging y+2 instead of y+1 is an anomaly and does not
/// complete the handshake; the right ACK afterwards does.
///
/// Linux answers the bad ACK with a RST from the listener (tcp_check_req
/// hands the segment back to the listener, which resets any ACK), with
/// seq = the bad ack, but it keeps the request socket: the right ACK then
/// completes the connection and accept() returns it (checked here). So
/// that RST must not count as a reset of the handshake.
#[test]
fn wrong_final_ack_is_an_anomaly() {
    let side = ServerSide::start(19905, &[]);
    let raw = side.raw_client();
    raw.syn();
    let y = raw.expect_syn_ack().seq;
    raw.ack(y.wrapping_add(2));
    let answer = raw.recv(IO_TIMEOUT).expect("an answer to the bad ACK");
    assert!(
        answer.flags & RST != 0 && answer.seq == y.wrapping_add(2),
        "{answer:?}"
    );
    let bad_ack = Anomalies(SERVER, "ack_bad_ack");
    let s = side.monitor.wait_for_value(bad_ack, 1.0, SETTLE_TIMEOUT);
    s.expect(&[
        (Handshakes(SERVER, "completed"), 0.0),
        (HalfOpen(SERVER), 1.0),
    ]);

    raw.ack(y.wrapping_add(1));
    let _accepted = accept_within(&side.listener, IO_TIMEOUT);
    let s = side.monitor.settled_at(SERVER_COMPLETED, 1.0);
    s.expect(&[
        (Packets("ingress", "ack"), 2.0),
        (Packets("egress", "rst"), 1.0),
        (Anomalies(SERVER, "ack_bad_ack"), 1.0),
        (Anomalies(SERVER, "ack_bad_seq"), 0.0),
        (Anomalies(SERVER, "synack_bad_ack"), 0.0),
        (SERVER_COMPLETED, 1.0),
        (Handshakes(SERVER, "reset"), 0.0),
        (HalfOpen(SERVER), 0.0),
        (Phase(SERVER, SYNACK_TO_ACK, "count"), 1.0),
    ]);
}

/// The final ACK held for D = 300 ms shows in the synack_to_ack histogram:
/// its sum is D, and it lands between the 0.25 and 0.5 bounds.
#[test]
fn delayed_final_ack_is_timed() {
    const DELAY: Duration = Duration::from_millis(300);
    const TOLERANCE: f64 = 0.020;
    let side = ServerSide::start(19906, &[]);
    let raw = side.raw_client();
    raw.syn();
    let syn_ack = raw.expect_syn_ack();
    thread::sleep((syn_ack.at + DELAY).saturating_duration_since(Instant::now()));
    raw.ack(syn_ack.seq.wrapping_add(1));
    // The server's application gets the connection.
    let _accepted = accept_within(&side.listener, IO_TIMEOUT);

    let s = side.monitor.settled_at(SERVER_COMPLETED, 1.0);
    s.expect(&[
        (SERVER_COMPLETED, 1.0),
        (Phase(SERVER, SYNACK_TO_ACK, "count"), 1.0),
        (Bucket(SERVER, SYNACK_TO_ACK, "0.25"), 0.0),
        (Bucket(SERVER, SYNACK_TO_ACK, "0.5"), 1.0),
        (Bucket(SERVER, SYNACK_TO_ACK, "+Inf"), 1.0),
        (Phase(SERVER, SYN_TO_SYNACK, "count"), 1.0),
    ]);
    let sum = s.value(Phase(SERVER, SYNACK_TO_ACK, "sum"));
    let want = DELAY.as_secs_f64();
    assert!(
        (sum - want).abs() <= TOLERANCE,
        "sum {sum}, want {want}:\n{}",
        s.text
    );
    // The kernel answers a SYN at once, in the softirq that received it.
    let syn_to_synack = s.value(Phase(SERVER, SYN_TO_SYNACK, "sum"));
    assert!(syn_to_synack < 0.05, "{syn_to_synack}:\n{}", s.text);
}

/// Closes seen from the server: graceful either way round, and aborted
/// (SO_LINGER 0 sends a RST) by either end. Local is the server.
#[test]
fn closes_by_kind_and_initiator() {
    let side = ServerSide::start(19907, &[]);
    let m = &side.monitor;
    // Each close is waited for before the next, so none can be mistaken
    // for another.
    let wait = |kind, initiator| m.wait_for_value(Closes(kind, initiator), 1.0, SETTLE_TIMEOUT);

    let (mut client, mut server) = side.connect();
    server.shutdown(Shutdown::Write).expect("server FIN");
    expect_eof(&mut client);
    drop(client);
    expect_eof(&mut server);
    wait("graceful", "local");

    let (mut client, mut server) = side.connect();
    client.shutdown(Shutdown::Write).expect("client FIN");
    expect_eof(&mut server);
    drop(server);
    expect_eof(&mut client);
    wait("graceful", "remote");

    let (client, mut server) = side.connect();
    abort(client);
    expect_reset(&mut server);
    wait("reset", "remote");

    let (mut client, server) = side.connect();
    abort(server);
    expect_reset(&mut client);
    wait("reset", "local");

    let s = m.settled("4 closes", |s| s.closes() >= 4.0);
    s.expect(&[
        (Packets("ingress", "rst"), 1.0),
        (Packets("egress", "rst"), 1.0),
        (Closes("graceful", "local"), 1.0),
        (Closes("graceful", "remote"), 1.0),
        (Closes("graceful", "simultaneous"), 0.0),
        (Closes("reset", "local"), 1.0),
        (Closes("reset", "remote"), 1.0),
        (Closes("reset", "simultaneous"), 0.0),
        (Handshakes(SERVER, "completed"), 4.0),
        (ConnectionDurations(SERVER), 4.0),
        (HalfOpen(SERVER), 0.0),
    ]);
}

/// The same SYN (same ISN) twice is one handshake with one SYN
/// retransmission. Linux answers the repeated SYN of a pending request by
/// sending its SYN-ACK again (tcp_check_req), so there is one SYN-ACK
/// retransmission too.
#[test]
fn repeated_syn_is_a_retransmission() {
    let side = ServerSide::start(19908, &[]);
    let raw = side.raw_client();
    raw.syn();
    let first = raw.expect_syn_ack();
    raw.syn();
    let second = raw.expect_syn_ack();
    assert_eq!(second.seq, first.seq, "the same request answers again");
    raw.ack(first.seq.wrapping_add(1));
    let _accepted = accept_within(&side.listener, IO_TIMEOUT);

    let s = side.monitor.settled_at(SERVER_COMPLETED, 1.0);
    s.expect(&[
        (Packets("ingress", "syn"), 2.0),
        (Packets("egress", "syn_ack"), 2.0),
        (SynRetransmits(SERVER), 1.0),
        (SynAckRetransmits(SERVER), 1.0),
        (SERVER_COMPLETED, 1.0),
        (Handshakes(SERVER, "reset"), 0.0),
        (HalfOpen(SERVER), 0.0),
        (Phase(SERVER, SYN_TO_SYNACK, "count"), 1.0),
        (Phase(SERVER, SYNACK_TO_ACK, "count"), 1.0),
    ]);
}
