//! The alerts' current state, shared with the metrics endpoint.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
};

use super::{SeriesKey, signal::Reading};
use crate::promfam::{Family, desc};

const FIRING: &str = "handshake_alert_firing";
const SYN_RATE: &str = "handshake_detector_syn_rate";
const BASELINE: &str = "handshake_detector_baseline_syn_rate";
const COMPLETION: &str = "handshake_detector_completion_ratio";

const FIRING_HELP: &str =
    "1 while the alert fires, 0 once it has resolved (series appear after the first evaluation).";
const SYN_RATE_HELP: &str = "SYNs per second received in the last evaluation (server role).";
const BASELINE_HELP: &str =
    "Learned normal SYN rate per second; a flood must exceed it several times over.";
const COMPLETION_HELP: &str = "Share of the last evaluation's SYNs that completed a handshake.";

#[derive(Clone, Debug)]
struct Entry {
    reading: Reading,
    firing: bool,
    /// When the current (or last) firing began, and when it resolved.
    starts_at: Option<SystemTime>,
    ends_at: Option<SystemTime>,
}

/// (alertname, interface, port).
pub type AlertKey = (&'static str, String, String);

/// An alert's state for notifiers.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertState {
    pub key: AlertKey,
    pub firing: bool,
    pub starts_at: SystemTime,
    pub ends_at: Option<SystemTime>,
    pub reading: Reading,
}

/// Every alert series to its latest state.
#[derive(Clone, Default)]
pub struct AlertBoard(Arc<Mutex<BTreeMap<AlertKey, Entry>>>);

impl AlertBoard {
    pub fn record(&self, alertname: &'static str, key: &SeriesKey, reading: Reading, firing: bool) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry((alertname, key.interface.clone(), key.port.clone()))
            .or_insert(Entry {
                reading,
                firing: false,
                starts_at: None,
                ends_at: None,
            });
        if firing && !entry.firing {
            entry.starts_at = Some(crate::clock::wall_time(crate::clock::monotonic_ns()));
            entry.ends_at = None;
        } else if !firing && entry.firing {
            entry.ends_at = Some(crate::clock::wall_time(crate::clock::monotonic_ns()));
        }
        entry.reading = reading;
        entry.firing = firing;
    }

    /// Interfaces on which an `alertname` alert fires now (any port).
    pub fn firing_interfaces(&self, alertname: &str) -> Vec<String> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = map
            .iter()
            .filter(|((name, _, _), e)| *name == alertname && e.firing)
            .map(|((_, interface, _), _)| interface.clone())
            .collect();
        names.dedup();
        names
    }

    /// Alerts that have fired at least once, firing or resolved.
    pub fn fired(&self) -> Vec<AlertState> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter_map(|(key, e)| {
                Some(AlertState {
                    key: key.clone(),
                    firing: e.firing,
                    starts_at: e.starts_at?,
                    ends_at: e.ends_at,
                    reading: e.reading,
                })
            })
            .collect()
    }
}

pub struct AlertCollector {
    board: AlertBoard,
    descs: Vec<Desc>,
}

impl AlertCollector {
    pub fn new(board: AlertBoard) -> Self {
        let series = ["interface", "port"];
        let descs = vec![
            desc(FIRING, FIRING_HELP, &["alertname", "interface", "port"]),
            desc(SYN_RATE, SYN_RATE_HELP, &series),
            desc(BASELINE, BASELINE_HELP, &series),
            desc(COMPLETION, COMPLETION_HELP, &series),
        ];
        Self { board, descs }
    }
}

impl Collector for AlertCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let map = self.board.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut firing = Family::gauge(FIRING, FIRING_HELP);
        let mut rate = Family::gauge(SYN_RATE, SYN_RATE_HELP);
        let mut baseline = Family::gauge(BASELINE, BASELINE_HELP);
        let mut completion = Family::gauge(COMPLETION, COMPLETION_HELP);
        for ((alertname, interface, port), e) in map.iter() {
            let series = [("interface", interface.as_str()), ("port", port.as_str())];
            let labels = [("alertname", *alertname), series[0], series[1]];
            firing.add(&labels, if e.firing { 1.0 } else { 0.0 });
            // The readings are the flood test's; other alerts have none.
            if *alertname != super::SYN_FLOOD {
                continue;
            }
            rate.add(&series, e.reading.syn_rate);
            baseline.add(&series, e.reading.baseline);
            completion.add(&series, e.reading.completion_ratio);
        }
        vec![
            firing.finish(),
            rate.finish(),
            baseline.finish(),
            completion.finish(),
        ]
    }
}
