//! deploy/grafana/handshake-monitor.json: valid JSON, a well-formed
//! dashboard, and every metric name its PromQL uses is one the real daemon
//! exports (scraped after real TCP and TLS traffic, so that the metrics
//! that appear with their first observation are there too) or a recording
//! rule of deploy/prometheus.
//!
//! The scrape test needs root (namespaces, BPF); run with
//! `cargo xtask test -- deploy_grafana::`.

use crate::support;

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use serde_json::Value;
use support::{
    deploy::{declared_names, read_deploy, recording_rules},
    handshakes::{Monitor, SERVER, Series},
    lab::NetnsLab,
    openssl::{Cert, TlsServer, s_client},
    require_root, traffic, wait_until,
};

const DASHBOARD: &str = "grafana/handshake-monitor.json";
const RULES: &str = "prometheus/handshake-monitor.rules.yml";
const METRICS_PORT: u16 = 19968;
const SERVICE_PORT: u16 = 8080;
const TLS_PORT: u16 = 8443;

fn dashboard() -> Value {
    serde_json::from_str(&read_deploy(DASHBOARD))
        .unwrap_or_else(|err| panic!("{DASHBOARD} is not valid JSON: {err}"))
}

/// Every panel, rows' collapsed panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dash["panels"].as_array().expect("a panels array") {
        all.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            all.extend(inner);
        }
    }
    all
}

/// Every PromQL expression: the panels' targets and the template
/// variables' queries, each with where it is.
fn expressions(dash: &Value) -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    for panel in panels(dash) {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_else(|| {
                panic!("panel {title:?} has a target without a PromQL expr: {target}")
            });
            exprs.push((format!("panel {title:?}"), expr.to_string()));
        }
    }
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] == "query" {
            let query = var["query"]["query"]
                .as_str()
                .or(var["query"].as_str())
                .expect("a query variable's query");
            exprs.push((format!("variable ${}", var["name"]), query.to_string()));
        }
    }
    exprs
}

/// The metric-like identifiers of a PromQL expression that belong to the
/// project: `handshake_...` metrics and `handshake:...` recording rules.
/// String literals (label values such as `handshake_failure`) are skipped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.chars().peekable();
    let mut word = String::new();
    let mut flush = |word: &mut String| {
        if word.starts_with("handshake_") || word.starts_with("handshake:") {
            names.insert(word.clone());
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                flush(&mut word);
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        d if d == c => break,
                        _ => {}
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' => word.push(c),
            _ => flush(&mut word),
        }
    }
    flush(&mut word);
    names
}

#[test]
fn the_dashboard_is_well_formed() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "handshake-monitor");
    let mut ids = BTreeSet::new();
    for panel in panels(&dash) {
        let title = panel["title"].as_str().expect("every panel has a title");
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} ({title:?}) is used twice");
        for key in ["h", "w", "x", "y"] {
            assert!(
                panel["gridPos"][key].is_u64(),
                "panel {title:?} lacks gridPos.{key}"
            );
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title:?} should use the $datasource variable"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        if panel["type"] == "heatmap" {
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(
                    target["format"] == "heatmap"
                        && expr.contains("_bucket")
                        && expr.contains("by (le)"),
                    "heatmap {title:?} should sum histogram buckets by le: {target}"
                );
            }
        }
    }
    let variables: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, ["datasource", "instance", "interface"]);
    // What the dashboard is for, by the metrics it shows.
    let all: BTreeSet<String> = expressions(&dash)
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .collect();
    for needed in [
        "handshake_tcp_handshakes_total",
        "handshake_tcp_half_open",
        "handshake_tcp_handshake_duration_seconds_bucket",
        "handshake_tls_client_hellos_total",
        "handshake:tls_client_hellos_pq:ratio_rate5m",
        "handshake_alert_firing",
        "handshake_xdp_dropped_packets_total",
        "handshake_blocklist_entries",
        "handshake_tls_capture_events_total",
        "handshake_flow_table_entries",
    ] {
        assert!(all.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn the_tokenizer_skips_label_values() {
    assert_eq!(
        metric_names(
            "sum by (le) (rate(handshake_tls_alerts_total{description=\"handshake_failure\"}[5m])) \
             / handshake:tcp_syns:rate5m"
        ),
        BTreeSet::from([
            "handshake_tls_alerts_total".to_string(),
            "handshake:tcp_syns:rate5m".to_string()
        ])
    );
}

#[test]
fn every_metric_the_dashboard_uses_is_exported_by_the_daemon() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let monitor = Monitor::start(&link.peer_ns, &link.peer_if, METRICS_PORT, &[]);

    // TCP conversations, a TLS 1.3 handshake (ClientHello, ServerHello,
    // hello duration) and a refused version (a plaintext alert).
    let addr = SocketAddr::from((link.peer_addr, SERVICE_PORT));
    let server = traffic::Server::start(&link.peer_ns, addr, 3);
    traffic::exchange_many(&lab.hub, addr, 3);
    server.join();
    monitor.wait_for_value(
        Series::Handshakes(SERVER, "completed"),
        3.0,
        Duration::from_secs(10),
    );
    let cert = Cert::new();
    let peer = link.peer_addr.to_string();
    {
        let _tls = TlsServer::start(&link.peer_ns, &cert, TLS_PORT, 1, &[]);
        let out = s_client(&lab.hub, &peer, TLS_PORT, &["-tls1_3"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Cipher"),
            "s_client did not complete a TLS 1.3 handshake: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    {
        let _tls = TlsServer::start(&link.peer_ns, &cert, TLS_PORT, 1, &["-tls1_2"]);
        let _ = s_client(&lab.hub, &peer, TLS_PORT, &["-tls1_3"]);
    }
    // Some families appear with their first observation or evaluation (TLS,
    // the detector's once-a-second readings): wait for them, bounded.
    let rules = recording_rules(&read_deploy(RULES));
    assert!(rules.len() >= 10, "recording rules found: {rules:?}");
    let used: Vec<(String, String)> = expressions(&dashboard())
        .into_iter()
        .flat_map(|(place, expr)| {
            metric_names(&expr)
                .into_iter()
                .map(move |name| (place.clone(), name))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut known = BTreeSet::new();
    let unknown = |known: &BTreeSet<String>| -> Vec<String> {
        used.iter()
            .filter(|(_, name)| !known.contains(name) && !rules.contains(name))
            .map(|(place, name)| format!("{place}: {name}"))
            .collect()
    };
    wait_until(Duration::from_secs(10), || {
        known = declared_names(&monitor.scrape().text);
        unknown(&known).is_empty()
    });
    let unknown = unknown(&known);
    assert!(
        unknown.is_empty(),
        "the dashboard uses metrics the daemon does not export (within 10 s of real TCP and \
         TLS traffic) and no recording rule makes:\n{}\nexported: {known:#?}",
        unknown.join("\n")
    );
}
