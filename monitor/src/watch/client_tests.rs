use std::io::{self, BufReader, Read, Write};

use super::client::{Ended, relay};

/// Hands out its chunks one `read` at a time, as a socket would.
struct Chunks(Vec<&'static [u8]>);

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Ok(0);
        }
        let chunk = self.0.remove(0);
        buf[..chunk.len()].copy_from_slice(chunk);
        Ok(chunk.len())
    }
}

/// Records what reached it at each flush.
#[derive(Default)]
struct Flushes {
    pending: Vec<u8>,
    flushed: Vec<String>,
}

impl Write for Flushes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let text = String::from_utf8(std::mem::take(&mut self.pending)).unwrap();
        if !text.is_empty() {
            self.flushed.push(text);
        }
        Ok(())
    }
}

#[test]
fn each_arrival_is_flushed_whole_lines_together() {
    let mut from = BufReader::new(Chunks(vec![b"one\n", b"two\nthr", b"ee\nfour\n"]));
    let mut out = Flushes::default();
    assert_eq!(relay(&mut from, &mut out).unwrap(), Ended::DaemonStopped);
    // A line split across reads waits for its end; lines read together
    // are flushed together.
    assert_eq!(out.flushed, ["one\n", "two\nthree\nfour\n"]);
}

/// A stdout whose every write fails with `kind`.
struct Failing(io::ErrorKind);

impl Write for Failing {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(self.0))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut from = BufReader::new(Chunks(vec![b"one\n", b"two\n"]));
    let mut closed = Failing(io::ErrorKind::BrokenPipe);
    assert_eq!(relay(&mut from, &mut closed).unwrap(), Ended::ReaderGone);
}

#[test]
fn other_write_errors_are_errors() {
    let mut from = BufReader::new(Chunks(vec![b"one\n"]));
    let err = relay(&mut from, &mut Failing(io::ErrorKind::StorageFull)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
}
