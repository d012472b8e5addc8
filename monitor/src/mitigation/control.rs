//! The control socket: a Unix stream socket, owner-only (directory 0700,
//! socket 0600), through which `handshake-monitor block ...` talks to the
//! running daemon. One JSON request line, one JSON response line; a
//! `watch` request's response is followed by its records, one a line,
//! until either side goes.
//!
//! A socket rather than the pinned maps directly: the daemon alone knows
//! the allowlist, the capacity and the reasons, so every check happens in
//! one place and nothing is half-applied.

use std::{
    io::{self, BufRead as _, BufReader, Write as _},
    os::unix::{fs::DirBuilderExt as _, fs::PermissionsExt as _, net::UnixStream},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _},
    net::UnixListener,
    sync::watch,
};

use super::{Mitigation, cidr::Cidr, origin_name, policy::Listed};
use crate::records::hub::Hub;
use crate::status::StatusSource;
use crate::watch::{filter::WatchFilter, filter::WatchRequest, stream};
use crate::{clock::monotonic_ns, flows::FlowTracker};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Add {
        cidr: String,
        /// Seconds; absent: until removed.
        ttl_secs: Option<u64>,
    },
    Remove {
        cidr: String,
    },
    List,
    /// `handshake-monitor status` and `top`.
    Status,
    /// `handshake-monitor watch`: records as they finish.
    Watch(WatchRequest),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub entries: Vec<BlockView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<crate::status::Status>>,
}

/// One block as `block list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockView {
    pub cidr: String,
    /// `manual` or `auto`.
    pub origin: String,
    /// Seconds until it expires; absent: never.
    pub expires_in_secs: Option<u64>,
    pub age_secs: u64,
    pub reason: String,
}

impl Response {
    /// The response, or its error as the command's.
    pub fn checked(self) -> anyhow::Result<Self> {
        if self.ok {
            return Ok(self);
        }
        anyhow::bail!(
            "{}",
            self.error.unwrap_or_else(|| "the daemon refused".into())
        )
    }

    fn error(err: impl std::fmt::Display) -> Self {
        Self {
            ok: false,
            error: Some(err.to_string()),
            entries: Vec::new(),
            status: None,
        }
    }

    fn entries(entries: Vec<BlockView>) -> Self {
        Self {
            ok: true,
            error: None,
            entries,
            status: None,
        }
    }
}

fn view(mitigation: &Mitigation, listed: &Listed, now: u64) -> BlockView {
    let e = &listed.entry;
    BlockView {
        cidr: listed.cidr.to_string(),
        origin: origin_name(e.origin).to_string(),
        // Rounded to the nearest second: a block just added for 1h shows 1h.
        expires_in_secs: (e.expires_ns != 0)
            .then(|| (e.expires_ns.saturating_sub(now) + 500_000_000) / 1_000_000_000),
        age_secs: now.saturating_sub(e.added_ns) / 1_000_000_000,
        reason: mitigation.reason(e),
    }
}

/// Applies one request to the daemon's mitigation (or reads its status).
pub fn handle(
    mitigation: &mut Mitigation,
    tracker: &FlowTracker,
    source: &StatusSource,
    hub: &Hub,
    request: Request,
) -> Response {
    let now = monotonic_ns();
    let parse = |text: &str| text.parse::<Cidr>().map_err(Response::error);
    match request {
        Request::Add { cidr, ttl_secs } => {
            let cidr = match parse(&cidr) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let ttl = match ttl_secs {
                Some(0) => return Response::error("ttl must be more than zero"),
                Some(s) if Duration::from_secs(s) > super::cidr::MAX_TTL => {
                    return Response::error("ttl must be at most a year");
                }
                Some(s) => Some(Duration::from_secs(s)),
                None => None,
            };
            match mitigation.block(cidr, ttl) {
                Ok(listed) => Response::entries(vec![view(mitigation, &listed, now)]),
                Err(err) => Response::error(format!("{:#}", anyhow::Error::from(err))),
            }
        }
        Request::Remove { cidr } => {
            let cidr = match parse(&cidr) {
                Ok(c) => c,
                Err(r) => return r,
            };
            match mitigation.unblock(cidr) {
                Ok(listed) => Response::entries(vec![view(mitigation, &listed, now)]),
                Err(err) => Response::error(format!("{:#}", anyhow::Error::from(err))),
            }
        }
        Request::Status => {
            let mut status = source.read(tracker, mitigation);
            status.watchers = hub.watchers() as u64;
            Response {
                status: Some(Box::new(status)),
                ..Response::entries(Vec::new())
            }
        }
        // A stream, not an answer: `answer` serves it on its connection.
        Request::Watch(_) => Response::error("watch needs a connection of its own"),
        Request::List => match mitigation.policy().blocks() {
            Ok(blocks) => Response::entries(
                blocks
                    .iter()
                    .filter(|l| l.entry.blocks(now))
                    .map(|l| view(mitigation, l, now))
                    .collect(),
            ),
            Err(err) => Response::error(format!("reading the policy table: {err}")),
        },
    }
}

/// Binds the socket, owner-only. A socket that still answers belongs to a
/// running daemon: refuse to steal it. One that does not is stale.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the control socket directory {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another handshake-monitor answers on control socket {}; stop it first, or give \
                 this one another --control-socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale control socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making control socket {} owner-only", path.display()))?;
    Ok(listener)
}

/// What the requests act on.
struct Daemon {
    mitigation: Arc<Mutex<Mitigation>>,
    source: StatusSource,
    hub: Hub,
}

/// Serves requests until `stop`; removes the socket on the way out.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    mitigation: Arc<Mutex<Mitigation>>,
    source: StatusSource,
    hub: Hub,
    mut stop: watch::Receiver<bool>,
) {
    let daemon = Arc::new(Daemon {
        mitigation,
        source,
        hub,
    });
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!("control socket accept failed: {err}");
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let daemon = Arc::clone(&daemon);
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(err) = answer(stream, &daemon, stop).await {
                tracing::debug!("control connection: {err}");
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// Longest request accepted; a request is a few dozen bytes.
const MAX_REQUEST: u64 = 4096;

async fn answer(
    stream: tokio::net::UnixStream,
    daemon: &Daemon,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request within 5 s"))??;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Watch(request)) => {
            let read = reader.into_inner().into_inner();
            return watch_stream(&request, &daemon.hub, read, write, stop).await;
        }
        Ok(request) => {
            // The flow sweep locks the tracker, then the mitigation: the
            // same order here, or a status during a sweep deadlocks both.
            let tracker = daemon
                .source
                .tracker
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut m = daemon.mitigation.lock().unwrap_or_else(|p| p.into_inner());
            handle(&mut m, &tracker, &daemon.source, &daemon.hub, request)
        }
        Err(err) => Response::error(format!("malformed request: {err}")),
    };
    send(&mut write, &response).await?;
    write.shutdown().await
}

async fn send(
    write: &mut (impl tokio::io::AsyncWrite + Unpin),
    response: &Response,
) -> io::Result<()> {
    let mut out = serde_json::to_string(response).map_err(io::Error::other)?;
    out.push('\n');
    write.write_all(out.as_bytes()).await
}

/// A bad filter gets an error response; a good one an ok response sent
/// once subscribed, so no record published after it is missed, and then
/// the stream.
async fn watch_stream(
    request: &WatchRequest,
    hub: &Hub,
    read: tokio::net::unix::OwnedReadHalf,
    mut write: tokio::net::unix::OwnedWriteHalf,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let filter = match WatchFilter::parse(request) {
        Ok(filter) => filter,
        Err(err) => {
            send(&mut write, &Response::error(err)).await?;
            return write.shutdown().await;
        }
    };
    let records = hub.subscribe();
    send(&mut write, &Response::entries(Vec::new())).await?;
    stream::stream(records, filter, request.json, read, write, stop).await
}

/// The client side: one request to the daemon behind `path`.
pub fn request(path: &Path, request: &Request) -> anyhow::Result<Response> {
    Ok(exchange(path, request)?.0)
}

/// Sends `request`: the daemon's answer, and the connection, on which a
/// `watch` answer's records follow.
pub fn exchange(
    path: &Path,
    request: &Request,
) -> anyhow::Result<(Response, BufReader<UnixStream>)> {
    let mut stream = connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .with_context(|| format!("sending to {}", path.display()))?;
    let mut reply = String::new();
    let mut reader = BufReader::new(stream);
    reader
        .read_line(&mut reply)
        .with_context(|| format!("reading the daemon's answer on {}", path.display()))?;
    let response =
        serde_json::from_str(&reply).with_context(|| format!("the daemon's answer {reply:?}"))?;
    Ok((response, reader))
}

/// A connection to the daemon behind `path`, or an error saying what to do.
pub fn connect(path: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "no handshake-monitor daemon is running (nothing answers on {}); start one with \
             `handshake-monitor run`, or pass the daemon's --control-socket",
            path.display()
        ),
        io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "permission denied on control socket {}: it is owner-only; run this as the daemon's \
             user (usually root, e.g. with sudo)",
            path.display()
        ),
        _ => anyhow::Error::new(err).context(format!("connecting to {}", path.display())),
    })
}
