use std::{net::IpAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, DuplexStream},
    sync::watch,
};

use super::{
    filter::{WatchFilter, WatchRequest},
    stream::stream,
};
use crate::records::hub::{Hub, WATCH_BACKLOG, WatchItem};

fn record(n: usize) -> WatchItem {
    WatchItem {
        json: format!("{{\"type\":\"tcp_handshake\",\"n\":{n}}}"),
        line: format!("record {n}"),
        // Odd records on 443, even ones on 80.
        server_port: if n % 2 == 1 { 443 } else { 80 },
        client_ip: IpAddr::from([198, 18, 0, 1]),
        conn_state: Some("S1"),
        sni: Vec::new(),
    }
}

fn filter(port: Option<u16>) -> WatchFilter {
    WatchFilter::parse(&WatchRequest {
        port,
        ..WatchRequest::default()
    })
    .unwrap()
}

/// A watcher's connection: the end the daemon reads (stays open while
/// `client` lives) and the end the watcher reads the stream from.
struct Connection {
    client: DuplexStream,
    peer: DuplexStream,
    out: DuplexStream,
    received: DuplexStream,
}

fn connection() -> Connection {
    let (client, peer) = tokio::io::duplex(64);
    let (out, received) = tokio::io::duplex(1 << 20);
    Connection {
        client,
        peer,
        out,
        received,
    }
}

/// Publishes `count` records to a hub with one watcher that does not
/// read meanwhile, closes the hub, then lets the watcher stream: all it
/// was sent.
async fn publish_then_stream(count: usize, port: Option<u16>, json: bool) -> String {
    let hub = Hub::new();
    let records = hub.subscribe();
    for n in 0..count {
        hub.publish(|| record(n));
    }
    drop(hub);
    let mut c = connection();
    let (_stop_tx, stop) = watch::channel(false);
    stream(records, filter(port), json, c.peer, c.out, stop)
        .await
        .unwrap();
    let mut text = String::new();
    c.received.read_to_string(&mut text).await.unwrap();
    text
}

fn lines(numbers: impl Iterator<Item = usize>, json: bool) -> String {
    numbers
        .map(|n| {
            let r = record(n);
            format!("{}\n", if json { r.json } else { r.line })
        })
        .collect()
}

#[tokio::test]
async fn a_watcher_in_time_gets_every_record_and_no_notice() {
    let text = publish_then_stream(10, None, true).await;
    assert_eq!(text, lines(0..10, true));
}

#[tokio::test]
async fn a_watcher_behind_gets_the_notice_with_the_exact_count_then_the_rest() {
    let count = WATCH_BACKLOG + 37;
    let text = publish_then_stream(count, None, true).await;
    let expected = format!(
        "{{\"type\":\"watch_lost\",\"records\":37}}\n{}",
        lines(37..count, true)
    );
    assert_eq!(text, expected);
}

#[tokio::test]
async fn the_readable_notice_counts_records_before_filtering() {
    let count = WATCH_BACKLOG + 37;
    let text = publish_then_stream(count, Some(443), false).await;
    let expected = format!(
        "-- 37 records lost: this watcher fell behind --\n{}",
        lines((37..count).filter(|n| n % 2 == 1), false)
    );
    assert_eq!(text, expected);
    let text = publish_then_stream(WATCH_BACKLOG + 1, Some(80), false).await;
    assert_eq!(
        text,
        format!(
            "-- 1 record lost: this watcher fell behind --\n{}",
            lines((1..=WATCH_BACKLOG).filter(|n| n % 2 == 0), false)
        )
    );
}

#[tokio::test]
async fn the_stream_ends_when_the_daemon_stops() {
    let hub = Hub::new();
    let mut c = connection();
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(stream(
        hub.subscribe(),
        filter(None),
        false,
        c.peer,
        c.out,
        stop,
    ));
    hub.publish(|| record(1));
    let mut first = [0u8; 9];
    c.received.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"record 1\n");
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the stream ended")
        .unwrap()
        .unwrap();
    // Shut down: the watcher reads the end of the stream.
    let mut rest = String::new();
    c.received.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "");
    // The hub no longer counts it.
    assert_eq!(hub.watchers(), 0);
}

#[tokio::test]
async fn the_stream_ends_when_the_watcher_goes() {
    let hub = Hub::new();
    let c = connection();
    let (_stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(stream(
        hub.subscribe(),
        filter(None),
        true,
        c.peer,
        c.out,
        stop,
    ));
    assert_eq!(hub.watchers(), 1);
    drop(c.client);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the stream ended")
        .unwrap()
        .unwrap();
    assert_eq!(hub.watchers(), 0);
}
