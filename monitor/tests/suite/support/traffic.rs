//! Real TCP conversations through the kernel's own stack, with a clean
//! four-way close, so each connection puts exactly one SYN, SYN-ACK and FIN
//! each way on the wire.

use std::{
    io::{self, Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::netns::in_netns;

const REQUEST: &[u8] = b"ping\n";
const REPLY: &[u8] = b"pong\n";
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for a whole server run; a test with a lost client fails here.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);

/// A server in a lab namespace answering a fixed number of connections.
pub struct Server {
    handle: JoinHandle<io::Result<()>>,
}

impl Server {
    /// Listens on `addr` inside `ns` and serves `connections` exchanges,
    /// one at a time, on a background thread.
    pub fn start(ns: &str, addr: SocketAddr, connections: usize) -> Self {
        let listener = in_netns(ns, || TcpListener::bind(addr))
            .unwrap_or_else(|err| panic!("binding {addr} in {ns}: {err}"));
        let handle = thread::spawn(move || serve(&listener, connections));
        Self { handle }
    }

    /// Waits for the server to have served all its connections.
    pub fn join(self) {
        match self.handle.join() {
            Ok(result) => result.expect("the server failed"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn serve(listener: &TcpListener, connections: usize) -> io::Result<()> {
    // Non-blocking accept polled against a deadline: std has no accept
    // timeout, and a client that never comes must not hang the test.
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + SERVER_TIMEOUT;
    for _ in 0..connections {
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "no client came"));
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                Err(err) => return Err(err),
            }
        };
        answer(stream)?;
    }
    Ok(())
}

/// Server side: read the request, reply, then wait for the client's FIN
/// before closing, so the server's FIN is the second one and no RST is
/// ever needed.
fn answer(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = [0u8; REQUEST.len()];
    stream.read_exact(&mut request)?;
    if request != REQUEST {
        return Err(io::Error::other(format!("unexpected request {request:?}")));
    }
    stream.write_all(REPLY)?;
    expect_eof(&mut stream)
}

/// Client side, run inside `ns`: `count` sequential exchanges with the
/// server at `addr`.
pub fn exchange_many(ns: &str, addr: SocketAddr, count: usize) {
    in_netns(ns, || {
        for i in 0..count {
            exchange(addr).unwrap_or_else(|err| panic!("connection {i} to {addr}: {err}"));
        }
    });
}

/// Client side of one connection: request, reply, then the client closes
/// first (FIN) and reads the server's FIN before closing the socket.
fn exchange(addr: SocketAddr) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(REQUEST)?;
    let mut reply = [0u8; REPLY.len()];
    stream.read_exact(&mut reply)?;
    if reply != REPLY {
        return Err(io::Error::other(format!("unexpected reply {reply:?}")));
    }
    stream.shutdown(Shutdown::Write)?;
    expect_eof(&mut stream)
}

fn expect_eof(stream: &mut TcpStream) -> io::Result<()> {
    let mut extra = [0u8; 64];
    match stream.read(&mut extra)? {
        0 => Ok(()),
        n => Err(io::Error::other(format!("{n} unexpected bytes before EOF"))),
    }
}
