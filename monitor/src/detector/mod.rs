//! SYN-flood detection: once a second, every monitored interface (and each
//! named port on it) is tested for a flood; an alert fires and resolves
//! with hysteresis, is exported as a gauge, logged once per transition and
//! written to the events log.

mod board;
pub mod notify;
pub mod scan;
pub mod signal;

use std::collections::HashMap;

use monitor_common::flow::Role;

pub use board::{AlertBoard, AlertCollector};
use scan::{ScanWatcher, Scanner};
use signal::{FloodSignal, FloodThresholds, Reading, Sample, Transition};

use crate::{
    events::{EventSink, JsonObject},
    flows::FlowTracker,
    ports::PortLabel,
    tls_capture::wallclock::{rfc3339, wall_time},
};

pub const SYN_FLOOD: &str = "SynFlood";
pub const PORT_SCAN: &str = "PortScan";
/// SYN cookies from XDP stopped answering on an interface (raised by
/// `crate::syncookies`, not by the detector's tick).
pub const SYNCOOKIE_FALLBACK: &str = "SyncookieFallback";

/// What one series covers: a whole interface, or one named port on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub interface: String,
    /// A port number, or `all`.
    pub port: String,
}

pub struct Detector {
    thresholds: FloodThresholds,
    interfaces: Vec<(String, u32)>,
    signals: HashMap<SeriesKey, FloodSignal>,
    /// The last evaluation, on the programs' clock (the capture's in a
    /// replay, so rates are per capture second).
    last_tick_ns: Option<u64>,
    board: AlertBoard,
    events: EventSink,
    scan: Option<ScanWatcher>,
    /// Per interface slot: port scan firing, and quiet seconds since.
    scanning: HashMap<u32, (bool, u32)>,
}

impl Detector {
    pub fn new(
        thresholds: FloodThresholds,
        interfaces: Vec<(String, u32)>,
        board: AlertBoard,
        events: EventSink,
    ) -> Self {
        Self {
            thresholds,
            interfaces,
            signals: HashMap::new(),
            last_tick_ns: None,
            board,
            events,
            scan: None,
            scanning: HashMap::new(),
        }
    }

    /// New thresholds (a config reload); learned baselines and alert states
    /// carry on.
    pub fn reconfigure(&mut self, thresholds: FloodThresholds, scan: scan::ScanThresholds) {
        self.thresholds = thresholds;
        if let Some(watcher) = self.scan.as_mut() {
            watcher.set_thresholds(scan);
        }
    }

    /// Also watch for port scans.
    pub fn with_scan_watcher(mut self, scan: ScanWatcher) -> Self {
        self.scan = Some(scan);
        self
    }

    /// Reads the server-role counters and updates every series.
    pub fn tick(&mut self, tracker: &FlowTracker) {
        let now = crate::clock::monotonic_ns();
        let seconds = self
            .last_tick_ns
            .map_or(1.0, |t| now.saturating_sub(t) as f64 / 1e9);
        self.last_tick_ns = Some(now);
        for (interface, slot) in self.interfaces.clone() {
            if let Ok(c) = tracker.handshakes(slot, Role::Server) {
                // SYNs over the insert budget were not tracked, and SYNs
                // the mitigation dropped never got that far, but they are
                // SYNs all the same: a mitigated flood is still a flood.
                let refused = tracker.ports().refused_syns(slot).unwrap_or(0);
                let sample = Sample {
                    syns: c.inserts + c.insert_skipped + refused,
                    completed: c.completed,
                };
                self.update(
                    SeriesKey {
                        interface: interface.clone(),
                        port: "all".into(),
                    },
                    sample,
                    seconds,
                );
            }
            for label in tracker.ports().labels() {
                let PortLabel::Named(port) = label else {
                    continue;
                };
                let Ok(c) = tracker.ports().counters(slot, Role::Server, label) else {
                    continue;
                };
                let sample = Sample {
                    syns: c.syns + c.refused_syns,
                    completed: c.completed,
                };
                self.update(
                    SeriesKey {
                        interface: interface.clone(),
                        port: port.to_string(),
                    },
                    sample,
                    seconds,
                );
            }
        }
        self.tick_scans();
    }

    /// One second of the port-scan watch: fires per interface as soon as a
    /// scanner shows, resolves after the flood test's quiet streak.
    fn tick_scans(&mut self) {
        let Some(scan) = self.scan.as_mut() else {
            return;
        };
        let scanners = scan.scanners(crate::clock::monotonic_ns());
        for (interface, slot) in self.interfaces.clone() {
            let mine: Vec<&Scanner> = scanners.iter().filter(|s| s.slot == slot).collect();
            let (firing, quiet) = self.scanning.entry(slot).or_insert((false, 0));
            let change = match (mine.is_empty(), *firing) {
                (false, false) => Some(Transition::Fired),
                (true, true) if *quiet + 1 >= self.thresholds.clear_after => {
                    Some(Transition::Resolved)
                }
                _ => None,
            };
            *quiet = if mine.is_empty() { *quiet + 1 } else { 0 };
            if let Some(change) = change {
                *firing = change == Transition::Fired;
                *quiet = 0;
            }
            let probes: u32 = mine.iter().map(|s| s.probes).sum();
            let reading = Reading {
                syn_rate: f64::from(probes),
                completion_ratio: 0.0,
                baseline: 0.0,
                flood: !mine.is_empty(),
            };
            let key = SeriesKey {
                interface,
                port: "all".into(),
            };
            self.board.record(PORT_SCAN, &key, reading, *firing);
            if let Some(change) = change {
                self.announce(PORT_SCAN, &key, change, reading, &mine);
            }
        }
    }

    fn update(&mut self, key: SeriesKey, sample: Sample, seconds: f64) {
        let signal = self.signals.entry(key.clone()).or_default();
        let change = signal.tick(sample, seconds, &self.thresholds);
        let Some(reading) = signal.reading() else {
            return;
        };
        self.board.record(SYN_FLOOD, &key, reading, signal.firing());
        let Some(change) = change else { return };
        self.announce(SYN_FLOOD, &key, change, reading, &[]);
    }
}

impl Detector {
    /// One log line and one event per transition.
    fn announce(
        &self,
        alertname: &str,
        key: &SeriesKey,
        change: Transition,
        reading: Reading,
        scanners: &[&Scanner],
    ) {
        let state = match change {
            Transition::Fired => "firing",
            Transition::Resolved => "resolved",
        };
        let sources: Vec<String> = scanners.iter().map(|s| s.source.to_string()).collect();
        match change {
            Transition::Fired => tracing::warn!(
                alertname, state, interface = %key.interface, port = %key.port,
                syn_rate = reading.syn_rate, completion_ratio = reading.completion_ratio,
                baseline = reading.baseline, sources = ?sources, "alert firing"
            ),
            Transition::Resolved => tracing::info!(
                alertname, state, interface = %key.interface, port = %key.port, "alert resolved"
            ),
        }
        if !self.events.enabled() {
            return;
        }
        let mut line = JsonObject::new()
            .str("type", "alert")
            .str("ts", &rfc3339(wall_time(crate::clock::monotonic_ns())))
            .str("alertname", alertname)
            .str("state", state)
            .str("interface", &key.interface)
            .str("port", &key.port);
        line = if alertname == PORT_SCAN {
            line.strs("sources", sources.iter().map(String::as_str))
                .num("probes", reading.syn_rate)
        } else {
            line.num("syn_rate", reading.syn_rate)
                .num("completion_ratio", reading.completion_ratio)
                .num("baseline_syn_rate", reading.baseline)
        };
        self.events.send(line.finish());
    }
}
