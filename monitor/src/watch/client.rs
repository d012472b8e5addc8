//! `handshake-monitor watch`: checks the filters here, so a typo fails
//! without a daemon, asks the daemon for the stream, and copies it to
//! stdout as it comes.

use std::{
    io::{self, BufRead as _, BufReader, Read, Write},
    path::Path,
};

use anyhow::bail;

use super::filter::{WatchFilter, WatchRequest};
use crate::mitigation::control::{self, Request};

/// How `relay` ended, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The connection closed: the daemon stopped.
    DaemonStopped,
    /// Whoever read stdout went away (EPIPE), e.g. `| head -1`.
    ReaderGone,
}

pub fn run(request: &WatchRequest, socket: &Path) -> anyhow::Result<()> {
    WatchFilter::parse(request)?;
    exit_quietly_on_sigint();
    let (response, mut reader) = control::exchange(socket, &Request::Watch(request.clone()))?;
    response.checked()?;
    // Records may be minutes apart.
    reader.get_ref().set_read_timeout(None)?;
    match relay(&mut reader, &mut io::stdout().lock()) {
        Ok(Ended::ReaderGone) => Ok(()),
        Ok(Ended::DaemonStopped) => bail!("the daemon stopped"),
        Err(err) => Err(anyhow::Error::new(err).context("reading from the daemon")),
    }
}

/// Copies lines from the daemon to `out`, flushing whenever everything
/// received so far is written: at once when lines trickle in, in batches
/// when they pour.
pub fn relay(from: &mut BufReader<impl Read>, out: &mut impl Write) -> io::Result<Ended> {
    let mut pending = Vec::new();
    loop {
        let read = from.read_until(b'\n', &mut pending)?;
        if read == 0 || from.buffer().is_empty() {
            match out.write_all(&pending).and_then(|()| out.flush()) {
                Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                    return Ok(Ended::ReaderGone);
                }
                other => other?,
            }
            pending.clear();
        }
        if read == 0 {
            return Ok(Ended::DaemonStopped);
        }
    }
}

/// Ctrl-C is how a watch ends: exit 0, with no message. Every line is
/// flushed as it is written, so nothing is lost by not unwinding.
fn exit_quietly_on_sigint() {
    extern "C" fn exit_zero(_: libc::c_int) {
        // SAFETY: _exit is async-signal-safe and takes no pointers.
        unsafe { libc::_exit(0) }
    }
    let handler: extern "C" fn(libc::c_int) = exit_zero;
    // SAFETY: the handler only calls _exit; installing it replaces the
    // default action of SIGINT and nothing else.
    unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
}
