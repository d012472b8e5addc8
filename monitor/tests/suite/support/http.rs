//! A plain-std HTTP/1.1 GET, enough for /metrics and /healthz.

use std::{
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use super::netns::in_netns;

const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `path` from `addr` inside namespace `ns`; returns the body of a 200
/// response, and an error for anything else.
pub fn get(ns: &str, addr: SocketAddr, path: &str) -> io::Result<String> {
    in_netns(ns, || get_here(addr, path))
}

fn get_here(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8(response).map_err(io::Error::other)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("no end of headers in {response:?}")))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200 ") {
        return Err(io::Error::other(format!("GET {path}: {status}")));
    }
    Ok(body.to_string())
}
