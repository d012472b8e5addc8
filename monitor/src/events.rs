//! The events log: one JSON object per line, to a file or stdout. Writing
//! happens on a task of its own behind a bounded queue, so a slow disk or a
//! stalled pipe never holds up the capture; what does not fit is counted.

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use thiserror::Error;
use tokio::{
    io::{AsyncWrite, AsyncWriteExt as _, BufWriter},
    sync::mpsc,
};

/// Lines waiting to be written before new ones are dropped.
pub const QUEUE_LINES: usize = 8192;

#[derive(Debug, Error)]
pub enum EventsError {
    #[error("cannot open the events log {path}: check the directory exists and is writable")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where events go: `-` is stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsTarget {
    Stdout,
    File(PathBuf),
}

impl EventsTarget {
    pub fn parse(text: &str) -> Self {
        if text == "-" {
            Self::Stdout
        } else {
            Self::File(PathBuf::from(text))
        }
    }
}

/// The sending side, cheap to clone; counts what it wrote and dropped.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<mpsc::Sender<String>>,
    pub stats: Arc<EventStats>,
    /// Wait for room instead of dropping (see [`EventSink::lossless`]).
    wait: bool,
}

#[derive(Default)]
pub struct EventStats {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    /// Lines a lossless sink handed to the writer: once `written + dropped`
    /// reaches it, the writer has dealt with every line sent so far.
    queued: AtomicU64,
}

impl EventSink {
    /// A sink that discards everything (no `--events`).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            stats: Arc::default(),
            wait: false,
        }
    }

    /// A sink whose `send` waits for room rather than drop a line: for a
    /// replay, which has nobody to keep pace with but must lose nothing.
    /// `send` may then only be called off the async threads.
    pub fn lossless(mut self) -> Self {
        self.wait = true;
        self
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one line (without its newline); never waits.
    pub fn send(&self, line: String) {
        let Some(tx) = &self.tx else { return };
        let sent = if self.wait {
            tx.blocking_send(line).is_ok()
        } else {
            tx.try_send(line).is_ok()
        };
        if !sent {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        } else if self.wait {
            // Only a lossless sink (a replay) is ever waited on: the live
            // daemon's lines pay for no count nobody reads.
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Blocks until the writer has written (or failed to write) every line
    /// sent so far, or `timeout` passes; whether it caught up. For a replay
    /// about to snapshot its metrics, whose `handshake_events_total` must
    /// count every line it wrote. Only for a [`EventSink::lossless`] sink,
    /// off the async threads.
    pub fn wait_written(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let done = self.stats.written.load(Ordering::Relaxed)
                + self.stats.dropped.load(Ordering::Relaxed);
            if done >= self.stats.queued.load(Ordering::Relaxed) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Opens the target and starts the writer task.
pub async fn start(target: &EventsTarget) -> Result<EventSink, EventsError> {
    open(target).await.map(|(sink, _)| sink)
}

/// [`start`], with the writer task's handle: it ends once every clone of
/// the sink is dropped and all they sent is written.
pub async fn open(
    target: &EventsTarget,
) -> Result<(EventSink, tokio::task::JoinHandle<()>), EventsError> {
    let out: Box<dyn AsyncWrite + Send + Unpin> = match target {
        EventsTarget::Stdout => Box::new(tokio::io::stdout()),
        EventsTarget::File(path) => {
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .map_err(|source| EventsError::Open {
                    path: path.clone(),
                    source,
                })?;
            Box::new(file)
        }
    };
    let (tx, rx) = mpsc::channel(QUEUE_LINES);
    let stats = Arc::new(EventStats::default());
    let writer = tokio::spawn(write_lines(rx, BufWriter::new(out), Arc::clone(&stats)));
    let sink = EventSink {
        tx: Some(tx),
        stats,
        wait: false,
    };
    Ok((sink, writer))
}

async fn write_lines(
    mut rx: mpsc::Receiver<String>,
    mut out: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
    stats: Arc<EventStats>,
) {
    let mut failing = false;
    while let Some(line) = rx.recv().await {
        let buffered = stats.written.load(Ordering::Relaxed);
        let mut ok = write_line(&mut out, &line, &stats).await;
        // Flush once the queue is empty: batches under load, no delay idle.
        while let Ok(line) = rx.try_recv() {
            ok &= write_line(&mut out, &line, &stats).await;
        }
        if out.flush().await.is_err() {
            // The batch's lines only reached the buffer: they are lost.
            let lost = stats.written.load(Ordering::Relaxed) - buffered;
            stats.written.fetch_sub(lost, Ordering::Relaxed);
            stats.dropped.fetch_add(lost, Ordering::Relaxed);
            ok = false;
        }
        if !ok && !failing {
            tracing::warn!("writing the events log failed; events are being lost");
        }
        failing = !ok;
    }
    let _ = out.flush().await;
}

async fn write_line(
    out: &mut BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
    line: &str,
    stats: &EventStats,
) -> bool {
    let ok = out.write_all(line.as_bytes()).await.is_ok() && out.write_all(b"\n").await.is_ok();
    let counter = if ok { &stats.written } else { &stats.dropped };
    counter.fetch_add(1, Ordering::Relaxed);
    ok
}

/// Builds one JSON object, fields in insertion order.
#[derive(Default)]
pub struct JsonObject {
    out: String,
}

impl JsonObject {
    pub fn new() -> Self {
        Self {
            out: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_str(&mut self.out, key);
        self.out.push(':');
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_str(&mut self.out, value);
        self
    }

    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn num(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    pub fn bool(self, key: &str, value: bool) -> Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    pub fn strs<'a>(mut self, key: &str, values: impl IntoIterator<Item = &'a str>) -> Self {
        self.key(key);
        self.out.push('[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            push_str(&mut self.out, v);
        }
        self.out.push(']');
        self
    }

    pub fn nums(mut self, key: &str, values: impl IntoIterator<Item = u16>) -> Self {
        self.key(key);
        self.out.push('[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{v}");
        }
        self.out.push(']');
        self
    }

    pub fn opt_num(self, key: &str, value: Option<impl std::fmt::Display>) -> Self {
        match value {
            Some(v) => self.num(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A nested object (a finished [`JsonObject`]), or `null`.
    pub fn object(self, key: &str, value: Option<String>) -> Self {
        match value {
            Some(v) => self.raw(key, &v),
            None => self.raw(key, "null"),
        }
    }

    /// An array of finished objects.
    pub fn objects(mut self, key: &str, values: impl IntoIterator<Item = String>) -> Self {
        self.key(key);
        self.out.push('[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(&v);
        }
        self.out.push(']');
        self
    }

    fn raw(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        self.out.push_str(value);
        self
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_str(&mut out, s);
    out
}

/// A JSON string literal (RFC 8259 section 7).
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_and_escapes() {
        let line = JsonObject::new()
            .str("type", "tls_client_hello")
            .num("src_port", 40000)
            .opt_str("sni", None)
            .strs("alpn", ["h2", "http/1.1"])
            .nums("cipher_suites", [4865, 4866])
            .str("odd", "a\"b\\c\n\u{1}")
            .bool("pq", false)
            .finish();
        assert_eq!(
            line,
            r#"{"type":"tls_client_hello","src_port":40000,"sni":null,"alpn":["h2","http/1.1"],"cipher_suites":[4865,4866],"odd":"a\"b\\c\n\u0001","pq":false}"#
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let (tx, _rx) = mpsc::channel(1);
        let sink = EventSink {
            tx: Some(tx),
            stats: Arc::default(),
            wait: false,
        };
        sink.send("a".into());
        sink.send("b".into());
        assert_eq!(sink.stats.dropped.load(Ordering::Relaxed), 1);
    }
}
