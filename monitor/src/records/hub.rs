//! Where finished records go besides the events log: every `watch`
//! client subscribes here. A broadcast channel, so a slow watcher never
//! holds up the daemon: it falls behind, loses the oldest lines, and is
//! told how many (`RecvError::Lagged`).

use std::{net::IpAddr, sync::Arc};

use tokio::sync::broadcast;

/// Records a watcher may fall behind by before it loses some.
pub const WATCH_BACKLOG: usize = 1024;

/// One record as watchers receive it: both renderings, and the fields
/// the watch filters test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchItem {
    /// The events-log object (`--json`), without a newline.
    pub json: String,
    /// The readable one-line form, without a newline.
    pub line: String,
    /// The server port (0 for an aggregate line of every port).
    pub server_port: u16,
    /// The client (an aggregate line's prefix address).
    pub client_ip: IpAddr,
    /// Zeek `conn_state` (an aggregate line's too: `S0` or `S1`).
    pub conn_state: Option<&'static str>,
    /// SNIs of the flow's ClientHellos.
    pub sni: Vec<String>,
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<WatchItem>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(WATCH_BACKLOG).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchItem>> {
        self.tx.subscribe()
    }

    /// Watchers connected now.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Sends to every watcher; free when nobody watches.
    pub fn publish(&self, item: impl FnOnce() -> WatchItem) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::new(item()));
        }
    }
}
