//! The daemon's side of one watcher: records from the hub, filtered,
//! written to the connection until the watcher goes or the daemon stops.
//! The publisher never waits for it: a watcher that cannot keep up loses
//! the oldest records in the hub and gets a notice saying how many.

use std::{io, sync::Arc};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    sync::{
        broadcast::{
            Receiver,
            error::{RecvError, TryRecvError},
        },
        watch,
    },
};

use super::filter::WatchFilter;
use crate::records::hub::WatchItem;

/// Bytes gathered from records already waiting before one write; when
/// records trickle in, each is written as it comes.
const BATCH_BYTES: usize = 64 * 1024;

/// A record or the notice of lost ones, as the watcher asked for them.
pub fn render(item: &WatchItem, json: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if json { &item.json } else { &item.line }.as_bytes());
    out.push(b'\n');
}

/// The notice of `lost` records (counted before filtering: the watcher
/// fell behind on everything published).
pub fn lost_notice(lost: u64, json: bool) -> String {
    if json {
        format!("{{\"type\":\"watch_lost\",\"records\":{lost}}}\n")
    } else {
        let records = if lost == 1 { "record" } else { "records" };
        format!("-- {lost} {records} lost: this watcher fell behind --\n")
    }
}

/// Streams until `peer` closes (the watcher went), `stop` changes (the
/// daemon stops) or the hub is gone, then shuts `out` down.
pub async fn stream(
    mut records: Receiver<Arc<WatchItem>>,
    filter: WatchFilter,
    json: bool,
    mut peer: impl AsyncRead + Unpin,
    mut out: impl AsyncWrite + Unpin,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut batch = Vec::new();
    // A watcher sends nothing after its request: reading is only how its
    // going away is noticed while no record comes.
    let mut ignored = [0u8; 256];
    loop {
        let first = tokio::select! {
            received = records.recv() => received,
            read = peer.read(&mut ignored) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
            _ = stop.changed() => return out.shutdown().await,
        };
        let mut next = Some(first);
        let mut hub_gone = false;
        while let Some(received) = next.take() {
            match received {
                Ok(item) if filter.matches(&item) => render(&item, json, &mut batch),
                Ok(_) => {}
                Err(RecvError::Lagged(lost)) => {
                    batch.extend_from_slice(lost_notice(lost, json).as_bytes());
                }
                Err(RecvError::Closed) => hub_gone = true,
            }
            if hub_gone || batch.len() >= BATCH_BYTES {
                break;
            }
            next = match records.try_recv() {
                Ok(item) => Some(Ok(item)),
                Err(TryRecvError::Lagged(lost)) => Some(Err(RecvError::Lagged(lost))),
                Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                Err(TryRecvError::Empty) => None,
            };
        }
        if !batch.is_empty() {
            tokio::select! {
                written = out.write_all(&batch) => written?,
                _ = stop.changed() => return out.shutdown().await,
            }
            out.flush().await?;
            batch.clear();
        }
        if hub_gone {
            return out.shutdown().await;
        }
    }
}
