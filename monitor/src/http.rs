//! The metrics endpoint: a deliberately small HTTP/1.1 server serving
//! `GET /metrics` and `GET /healthz`, one request per connection.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use prometheus::Registry;
use thiserror::Error;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpListener,
    sync::watch,
};

use crate::webconfig::WebConfig;

/// Longest request head accepted; scrapers send a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A client that has not sent its request by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum HttpError {
    #[error(
        "metrics address {addr} is already in use by another process; pick a free one with \
         --metrics-addr ADDR:PORT"
    )]
    AddrInUse { addr: SocketAddr },
    #[error("cannot listen on metrics address {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Binds the listener before anything is attached, so a bad address fails
/// the start with nothing to undo.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            HttpError::AddrInUse { addr }
        } else {
            HttpError::Bind { addr, source }
        }
    })
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    web: Option<Arc<WebConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let registry = Arc::clone(&registry);
                    let web = web.clone();
                    tokio::spawn(async move {
                        let served = match web.as_ref().and_then(|w| w.tls.clone()) {
                            Some(tls) => match tokio::time::timeout(REQUEST_TIMEOUT, tls.accept(stream)).await {
                                Ok(Ok(stream)) => handle(stream, &registry, web.as_deref()).await,
                                Ok(Err(err)) => Err(err),
                                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
                            },
                            None => handle(stream, &registry, web.as_deref()).await,
                        };
                        if let Err(err) = served {
                            tracing::debug!("metrics connection: {err}");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!("accepting a metrics connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    registry: &Registry,
    web: Option<&WebConfig>,
) -> io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request head timed out"))??;
    let text = String::from_utf8_lossy(&head);
    let path = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("");
    let response = match web {
        Some(web) if !web.authorized(path, &text) => unauthorized(),
        _ => respond(&head, registry),
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD {
            break;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// The full response to a request head.
pub fn respond(head: &[u8], registry: &Registry) -> Vec<u8> {
    let request_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if head.len() > MAX_REQUEST_HEAD {
        return response(431, "text/plain", b"request header too large\n", false);
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return response(405, "text/plain", b"only GET and HEAD\n", false);
    }
    match path {
        "/metrics" => response(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            &crate::metrics::render(registry),
            head_only,
        ),
        "/healthz" => response(200, "text/plain", b"ok\n", head_only),
        "/" => response(
            200,
            "text/html",
            b"<html><body><a href=\"/metrics\">metrics</a> <a href=\"/healthz\">healthz</a></body></html>\n",
            head_only,
        ),
        _ => response(404, "text/plain", b"not found: try /metrics or /healthz\n", head_only),
    }
}

fn unauthorized() -> Vec<u8> {
    let body = b"unauthorized: this endpoint needs HTTP basic authentication\n";
    let mut out = format!(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"handshake-monitor\"\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_line(resp: &[u8]) -> String {
        String::from_utf8_lossy(resp)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn routes() {
        let r = Registry::new();
        assert_eq!(
            status_line(&respond(b"GET /healthz HTTP/1.1\r\n\r\n", &r)),
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            status_line(&respond(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", &r)),
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            status_line(&respond(b"GET /nope HTTP/1.1\r\n\r\n", &r)),
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            status_line(&respond(b"POST /metrics HTTP/1.1\r\n\r\n", &r)),
            "HTTP/1.1 405 Method Not Allowed"
        );
        assert_eq!(
            status_line(&respond(b"", &r)),
            "HTTP/1.1 405 Method Not Allowed"
        );
    }

    #[test]
    fn head_has_no_body() {
        let r = Registry::new();
        let resp = String::from_utf8(respond(b"HEAD /healthz HTTP/1.1\r\n\r\n", &r)).unwrap();
        assert!(resp.ends_with("\r\n\r\n"));
        assert!(resp.contains("Content-Length: 3"));
    }
}
