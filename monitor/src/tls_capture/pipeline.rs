//! What happens to a reassembled record: parsed, fingerprinted, counted,
//! timed against its partner hello, and written to the events log.

use std::collections::HashMap;

use monitor_common::{
    capture::ChunkHeader,
    counters::Direction,
    flow::Role,
    tls::{
        TlsError, description_name, parse_client_hello_record, parse_server_hello_record,
        version_name,
    },
};

use super::{
    metrics::TlsMetrics,
    reassembly::Assembled,
    wallclock::{rfc3339, wall_time},
};
use tokio::sync::mpsc;

use crate::{
    events::{EventSink, JsonObject},
    records::{FlowHello, FlowId, Hello},
    tls::{ClientHelloSummary, ServerHelloSummary, client_hello_summary, server_hello_summary},
};

/// ClientHellos awaiting their ServerHello, at most; the oldest go first.
const MAX_AWAITING: usize = 4096;
/// A ClientHello unanswered this long is forgotten.
const AWAIT_NS: u64 = 30_000_000_000;

/// One connection's client and server ends, as (addr, port) pairs.
type Pair = ([u8; 16], u16, [u8; 16], u16, u8);

pub struct Pipeline {
    metrics: TlsMetrics,
    events: EventSink,
    /// Interface names by slot.
    interfaces: HashMap<u8, String>,
    awaiting: HashMap<Pair, (u64, Role)>,
    /// Where the handshake records take the flow's hellos.
    records: Option<mpsc::Sender<FlowHello>>,
}

impl Pipeline {
    pub fn new(metrics: TlsMetrics, events: EventSink, interfaces: HashMap<u8, String>) -> Self {
        Self {
            metrics,
            events,
            interfaces,
            awaiting: HashMap::new(),
            records: None,
        }
    }

    /// Hands every parsed hello to the handshake records too.
    pub fn with_records(mut self, records: mpsc::Sender<FlowHello>) -> Self {
        self.records = Some(records);
        self
    }

    /// Offers a hello to the records; `client_is_src`: sent by the client.
    fn offer(&self, h: &ChunkHeader, client_is_src: bool, hello: impl FnOnce() -> Hello) {
        let Some(records) = &self.records else { return };
        let (src, dst) = ((h.src_addr, h.src_port), (h.dst_addr, h.dst_port));
        let (client, server) = if client_is_src {
            (src, dst)
        } else {
            (dst, src)
        };
        let flow = FlowId {
            client,
            server,
            family: h.family,
            slot: h.slot,
        };
        // A full queue loses the join, never the hello's own event.
        let _ = records.try_send(FlowHello {
            flow,
            ts_ns: h.ts_ns,
            hello: hello(),
        });
    }

    pub fn handle(&mut self, done: Assembled) {
        match done {
            Assembled::Hello {
                first,
                bytes,
                segments,
            } => match bytes.get(5) {
                Some(1) => self.client_hello(&first, &bytes, segments),
                Some(2) => self.server_hello(&first, &bytes),
                _ => {}
            },
            Assembled::Alert {
                header,
                level,
                description,
            } => {
                let level = match level {
                    1 => "warning",
                    2 => "fatal",
                    _ => "other",
                };
                let (iface, dir) = self.labels(&header);
                self.metrics
                    .alerts
                    .with_label_values(&[iface.as_str(), dir, level, description_name(description)])
                    .inc();
            }
        }
    }

    fn labels(&self, h: &ChunkHeader) -> (String, &'static str) {
        let iface = self
            .interfaces
            .get(&h.slot)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let dir = if h.direction == Direction::Egress as u8 {
            "egress"
        } else {
            "ingress"
        };
        (iface, dir)
    }

    fn parse_error(&self, h: &ChunkHeader, err: TlsError) {
        let (iface, dir) = self.labels(h);
        self.metrics
            .parse_errors
            .with_label_values(&[iface.as_str(), dir, err.name()])
            .inc();
    }

    fn client_hello(&mut self, h: &ChunkHeader, bytes: &[u8], segments: u8) {
        let hello = match parse_client_hello_record(bytes) {
            Ok(hello) => hello,
            Err(err) => return self.parse_error(h, err),
        };
        let summary = client_hello_summary(&hello);
        let (iface, dir) = self.labels(h);
        let pq = if summary.pq_key_share {
            "true"
        } else {
            "false"
        };
        self.metrics
            .client_hellos
            .with_label_values(&[iface.as_str(), dir, version_name(summary.max_version), pq])
            .inc();
        self.metrics
            .segments
            .with_label_values(&[iface.as_str(), dir])
            .observe(f64::from(segments));
        let role = if dir == "ingress" {
            Role::Server
        } else {
            Role::Client
        };
        if self.awaiting.len() >= MAX_AWAITING {
            self.expire_oldest();
        }
        let pair = (h.src_addr, h.src_port, h.dst_addr, h.dst_port, h.slot);
        self.awaiting.insert(pair, (h.ts_ns, role));
        self.offer(h, true, || Hello::Client(summary.clone()));
        if self.events.enabled() {
            self.events
                .send(client_event(h, &iface, dir, &summary, segments));
        }
    }

    fn server_hello(&mut self, h: &ChunkHeader, bytes: &[u8]) {
        let hello = match parse_server_hello_record(bytes) {
            Ok(hello) => hello,
            Err(err) => return self.parse_error(h, err),
        };
        let summary = server_hello_summary(&hello);
        let (iface, dir) = self.labels(h);
        self.metrics
            .server_hellos
            .with_label_values(&[
                iface.as_str(),
                dir,
                version_name(summary.version),
                summary.cipher_name,
            ])
            .inc();
        self.offer(h, false, || Hello::Server(summary.clone()));
        let pair = (h.dst_addr, h.dst_port, h.src_addr, h.src_port, h.slot);
        if let Some((client_ts, role)) = self.awaiting.remove(&pair) {
            let seconds = h.ts_ns.saturating_sub(client_ts) as f64 / 1e9;
            self.metrics
                .hello_duration
                .with_label_values(&[iface.as_str(), role.name()])
                .observe(seconds);
        }
        if self.events.enabled() {
            self.events.send(server_event(h, &iface, dir, &summary));
        }
    }

    /// Forgets ClientHellos whose ServerHello never came.
    pub fn expire(&mut self) {
        let now = crate::clock::monotonic_ns();
        self.awaiting
            .retain(|_, (ts, _)| now.saturating_sub(*ts) <= AWAIT_NS);
    }

    fn expire_oldest(&mut self) {
        if let Some(key) = self
            .awaiting
            .iter()
            .min_by_key(|(_, (ts, _))| *ts)
            .map(|(k, _)| *k)
        {
            self.awaiting.remove(&key);
        }
    }
}

fn ip(family: u8, addr: &[u8; 16]) -> String {
    crate::flows::ip_addr(family, addr).to_string()
}

/// Fields every event carries.
fn common(kind: &str, h: &ChunkHeader, iface: &str, dir: &str) -> JsonObject {
    JsonObject::new()
        .str("type", kind)
        .str("ts", &rfc3339(wall_time(h.ts_ns)))
        .str("interface", iface)
        .str("direction", dir)
        .str("src_ip", &ip(h.family, &h.src_addr))
        .num("src_port", h.src_port)
        .str("dst_ip", &ip(h.family, &h.dst_addr))
        .num("dst_port", h.dst_port)
}

fn client_event(
    h: &ChunkHeader,
    iface: &str,
    dir: &str,
    s: &ClientHelloSummary,
    segments: u8,
) -> String {
    common("tls_client_hello", h, iface, dir)
        .opt_str("sni", s.sni.as_deref())
        .strs("alpn", s.alpn.iter().map(String::as_str))
        .str("tls_version", version_name(s.max_version))
        .str("legacy_version", version_name(s.legacy_version))
        .nums("cipher_suites", s.cipher_suites.iter().copied())
        .nums("extensions", s.extensions.iter().copied())
        .nums("supported_groups", s.supported_groups.iter().copied())
        .nums("key_share_groups", s.key_share_groups.iter().copied())
        .bool("pq_key_share", s.pq_key_share)
        .bool("ech", s.has_ech)
        .num("segments", segments)
        .str("ja3", &s.ja3)
        .str("ja3_string", &s.ja3_string)
        .str("ja4", &s.ja4)
        .finish()
}

fn server_event(h: &ChunkHeader, iface: &str, dir: &str, s: &ServerHelloSummary) -> String {
    common("tls_server_hello", h, iface, dir)
        .str("tls_version", version_name(s.version))
        .num("cipher_suite", s.cipher)
        .str("cipher", s.cipher_name)
        .opt_str("key_share_group", s.key_share_group_name)
        .bool("pq_key_share", s.pq)
        .bool("hello_retry_request", s.hello_retry_request)
        .str("ja3s", &s.ja3s)
        .str("ja3s_string", &s.ja3s_string)
        .finish()
}
