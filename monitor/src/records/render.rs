//! A finished record as the events log writes it (one JSON object) and as
//! `watch` shows it (one readable line with the handshake's arithmetic).

use std::{fmt::Write as _, net::IpAddr};

use monitor_common::{
    community_id::community_id_v1,
    flow::Anomaly,
    record::{FlowRecord, HandshakeOutcome, RecordKind},
    tls::version_name,
};

use super::{FlowId, Hello, hub::WatchItem, join::Finished, timeouts::Aggregate};
use crate::{
    events::JsonObject,
    tls::{ClientHelloSummary, ServerHelloSummary},
    tls_capture::wallclock::{rfc3339, wall_time},
};

const TCP: u8 = 6;

fn ts(ns: u64) -> String {
    rfc3339(wall_time(ns))
}

fn us(ns: u64) -> u64 {
    ns / 1000
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// The record's flow and its Community ID (client as the originator).
pub fn community_id(flow: &FlowId) -> String {
    community_id_v1(
        0,
        TCP,
        flow.client_ip(),
        flow.client.1,
        flow.server_ip(),
        flow.server.1,
    )
}

/// Names of the sequence checks that failed on the flow.
pub fn seq_checks(r: &FlowRecord) -> Vec<&'static str> {
    Anomaly::ALL
        .into_iter()
        .filter(|a| r.state.anomalies & (1 << *a as u8) != 0)
        .map(Anomaly::name)
        .collect()
}

/// Fields every record starts with.
fn flow_fields(kind: &str, at_ns: u64, r: &FlowRecord, flow: &FlowId, iface: &str) -> JsonObject {
    JsonObject::new()
        .str("type", kind)
        .str("ts", &ts(at_ns))
        .str("interface", iface)
        .str("role", r.role().name())
        .str("client_ip", &flow.client_ip().to_string())
        .num("client_port", flow.client.1)
        .str("server_ip", &flow.server_ip().to_string())
        .num("server_port", flow.server.1)
        .str("community_id", &community_id(flow))
}

fn synack_seen(r: &FlowRecord) -> bool {
    r.state.synack_ns != 0
}

/// The `tcp_handshake` record.
pub fn handshake(f: &Finished, iface: &str) -> WatchItem {
    let r = &f.record;
    let flow = FlowId::of_key(&r.key, r.role());
    let s = &r.state;
    let outcome = r.outcome().unwrap_or(HandshakeOutcome::Completed);
    let synack = synack_seen(r);
    let completed = r.kind() == RecordKind::Completed;
    let tls = Tls::of(f);
    let json = flow_fields("tcp_handshake", s.syn_ns, r, &flow, iface)
        .str("outcome", outcome.name())
        .str("conn_state", r.conn_state().name())
        .num("client_isn", s.client_isn)
        .opt_num("server_isn", synack.then_some(s.server_isn))
        .strs("seq_checks", seq_checks(r))
        .opt_num(
            "syn_to_synack_us",
            synack.then(|| us(s.synack_ns.saturating_sub(s.syn_ns))),
        )
        .opt_num(
            "synack_to_ack_us",
            completed.then(|| us(s.established_ns.saturating_sub(s.synack_ns))),
        )
        .opt_num(
            "syn_to_rst_us",
            (r.kind() == RecordKind::Reset).then(|| us(r.ts_ns.saturating_sub(s.syn_ns))),
        )
        .num("syn_retransmits", s.syn_retransmits)
        .num("synack_retransmits", s.synack_retransmits)
        .object("tls", tls.as_ref().map(|t| t.json(s.established_ns)))
        .finish();
    let mut line = format!(
        "{} → {} {} {} on {iface} ({}): SYN {}{}",
        endpoint(flow.client_ip(), flow.client.1),
        endpoint(flow.server_ip(), flow.server.1),
        r.conn_state().name(),
        outcome.name(),
        r.role().name(),
        s.client_isn,
        retransmits(s.syn_retransmits),
    );
    if synack {
        let _ = write!(
            line,
            " → SYN-ACK {}{} (ack {} = x+1, {})",
            s.server_isn,
            retransmits(s.synack_retransmits),
            s.client_isn.wrapping_add(1),
            ms(s.synack_ns.saturating_sub(s.syn_ns)),
        );
    }
    match r.kind() {
        RecordKind::Completed => {
            let _ = write!(
                line,
                " → ACK {} (= y+1, {})",
                s.server_isn.wrapping_add(1),
                ms(s.established_ns.saturating_sub(s.synack_ns))
            );
        }
        RecordKind::Reset => {
            let by = if r.from_client() { "client" } else { "server" };
            let _ = write!(
                line,
                " → RST from the {by} ({})",
                ms(r.ts_ns.saturating_sub(s.syn_ns))
            );
        }
        _ => {
            let waited = r.ts_ns.saturating_sub(s.syn_ns) as f64 / 1e9;
            let missing = if synack { "ACK" } else { "answer" };
            let _ = write!(line, " → no {missing} in {waited:.0} s");
        }
    }
    let checks = seq_checks(r);
    if !checks.is_empty() {
        let _ = write!(line, " [failed checks: {}]", checks.join(", "));
    }
    if let Some(tls) = &tls {
        let _ = write!(line, " | {}", tls.line());
    }
    let sni = tls.map(|t| t.snis()).unwrap_or_default();
    flow_item(json, line, r, &flow, sni)
}

/// A flow record as watchers receive it.
fn flow_item(
    json: String,
    line: String,
    r: &FlowRecord,
    flow: &FlowId,
    sni: Vec<String>,
) -> WatchItem {
    WatchItem {
        json,
        line,
        server_port: flow.server.1,
        client_ip: flow.client_ip(),
        conn_state: Some(r.conn_state().name()),
        sni,
    }
}

fn retransmits(n: u8) -> String {
    match n {
        0 => String::new(),
        1 => " (1 retransmit)".into(),
        n => format!(" ({n} retransmits)"),
    }
}

/// The `tcp_close` record.
pub fn close(f: &Finished, iface: &str) -> WatchItem {
    let r = &f.record;
    let flow = FlowId::of_key(&r.key, r.role());
    let s = &r.state;
    let by = r.closed_by().map_or("unknown", |c| c.name());
    let duration_ns = r.ts_ns.saturating_sub(s.established_ns);
    let json = flow_fields("tcp_close", r.ts_ns, r, &flow, iface)
        .str("conn_state", r.conn_state().name())
        .str("close_kind", r.close_kind().name())
        .str("closed_by", by)
        .num("duration_ms", format!("{:.3}", duration_ns as f64 / 1e6))
        .str("established_ts", &ts(s.established_ns))
        .num("client_isn", s.client_isn)
        .num("server_isn", s.server_isn)
        .num("syn_retransmits", s.syn_retransmits)
        .num("synack_retransmits", s.synack_retransmits)
        .finish();
    let how = match r.close_kind() {
        monitor_common::flow::CloseKind::Graceful if by == "both" => {
            "closed gracefully by both ends at once".to_string()
        }
        monitor_common::flow::CloseKind::Graceful => format!("closed gracefully by the {by}"),
        monitor_common::flow::CloseKind::Reset => format!("reset by the {by}"),
    };
    let line = format!(
        "{} → {} {} on {iface} ({}): {how} after {:.3} s",
        endpoint(flow.client_ip(), flow.client.1),
        endpoint(flow.server_ip(), flow.server.1),
        r.conn_state().name(),
        r.role().name(),
        duration_ns as f64 / 1e9,
    );
    flow_item(json, line, r, &flow, Vec::new())
}

/// A `tcp_handshake_aggregate` line: timeouts of one source prefix.
pub fn aggregate(a: &Aggregate, iface: &str, now_ns: u64) -> WatchItem {
    let prefix = a.prefix_text();
    let json = JsonObject::new()
        .str("type", "tcp_handshake_aggregate")
        .str("ts", &ts(now_ns))
        .str("interface", iface)
        .str("role", a.role.name())
        .str("outcome", HandshakeOutcome::TimedOut.name())
        .str("conn_state", a.conn_state.name())
        .str("client_prefix", &prefix)
        .num("prefixes", a.prefixes)
        .opt_num("server_port", a.server_port)
        .num("count", a.count)
        .str("first_syn_ts", &ts(a.first_syn_ns))
        .str("last_syn_ts", &ts(a.last_syn_ns))
        .finish();
    let port = a
        .server_port
        .map_or_else(|| "any port".to_string(), |p| format!(":{p}"));
    let line = format!(
        "{prefix} → {port} {} ×{} timed out on {iface} ({}) (aggregated{})",
        a.conn_state.name(),
        a.count,
        a.role.name(),
        if a.prefixes > 1 {
            format!(", {} prefixes", a.prefixes)
        } else {
            String::new()
        },
    );
    WatchItem {
        json,
        line,
        server_port: a.server_port.unwrap_or(0),
        client_ip: a.prefix_ip(),
        conn_state: Some(a.conn_state.name()),
        sni: Vec::new(),
    }
}

/// The hellos of one flow, in order.
struct Tls<'a> {
    clients: Vec<(u64, &'a ClientHelloSummary)>,
    retry: Option<&'a ServerHelloSummary>,
    server: Option<(u64, &'a ServerHelloSummary)>,
}

impl<'a> Tls<'a> {
    fn of(f: &'a Finished) -> Option<Self> {
        let mut tls = Tls {
            clients: Vec::new(),
            retry: None,
            server: None,
        };
        for (ts, hello) in &f.hellos {
            match hello {
                Hello::Client(c) => tls.clients.push((*ts, c)),
                Hello::Server(s) if s.hello_retry_request => tls.retry = Some(s),
                Hello::Server(s) => tls.server = Some((*ts, s)),
            }
        }
        (!tls.clients.is_empty() || tls.server.is_some()).then_some(tls)
    }

    fn snis(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter_map(|(_, c)| c.sni.clone())
            .collect()
    }

    fn first_client_ns(&self) -> Option<u64> {
        self.clients.first().map(|(ts, _)| *ts)
    }

    fn hello_ns(&self) -> Option<u64> {
        Some(self.server?.0.saturating_sub(self.first_client_ns()?))
    }

    fn json(&self, established_ns: u64) -> String {
        let clients = self.clients.iter().map(|(ts_ns, c)| {
            JsonObject::new()
                .str("ts", &ts(*ts_ns))
                .opt_str("sni", c.sni.as_deref())
                .strs("alpn", c.alpn.iter().map(String::as_str))
                .str("tls_version", version_name(c.max_version))
                .nums("key_share_groups", c.key_share_groups.iter().copied())
                .str("ja3", &c.ja3)
                .str("ja4", &c.ja4)
                .finish()
        });
        let server = self.server.map(|(ts_ns, s)| {
            JsonObject::new()
                .str("ts", &ts(ts_ns))
                .str("tls_version", version_name(s.version))
                .str("cipher", s.cipher_name)
                .opt_str("key_share_group", s.key_share_group_name)
                .str("ja3s", &s.ja3s)
                .finish()
        });
        JsonObject::new()
            .objects("client_hellos", clients)
            .object("server_hello", server)
            .bool("hello_retry_request", self.retry.is_some())
            .opt_str(
                "hello_retry_group",
                self.retry.and_then(|r| r.key_share_group_name),
            )
            .opt_num(
                "ack_to_client_hello_us",
                self.first_client_ns()
                    .map(|c| us(c.saturating_sub(established_ns))),
            )
            .opt_num("client_hello_to_server_hello_us", self.hello_ns().map(us))
            .finish()
    }

    fn line(&self) -> String {
        let mut out = String::new();
        for (i, (_, c)) in self.clients.iter().enumerate() {
            if i > 0 {
                let group = self
                    .retry
                    .and_then(|r| r.key_share_group_name)
                    .unwrap_or("?");
                let _ = write!(out, " → HelloRetryRequest group={group} → ");
            }
            let _ = write!(
                out,
                "{} ClientHello sni={} alpn={} JA4 {}",
                version_name(c.max_version),
                c.sni.as_deref().unwrap_or("-"),
                if c.alpn.is_empty() {
                    "-".to_string()
                } else {
                    c.alpn.join(",")
                },
                c.ja4
            );
        }
        if let Some((_, s)) = self.server {
            if !out.is_empty() {
                out.push_str(" → ");
            }
            let _ = write!(
                out,
                "ServerHello {} {}{}",
                version_name(s.version),
                s.cipher_name,
                s.key_share_group_name
                    .map(|g| format!(" {g}"))
                    .unwrap_or_default()
            );
            if let Some(ns) = self.hello_ns() {
                let _ = write!(out, " ({})", ms(ns));
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
