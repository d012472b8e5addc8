//! SYN-flood detection: once a second, every monitored interface (and each
//! named port on it) is tested for a flood; an alert fires and resolves
//! with hysteresis, is exported as a gauge, logged once per transition and
//! written to the events log.

mod board;
pub mod notify;
pub mod signal;

use std::{collections::HashMap, time::Instant};

use monitor_common::flow::Role;

pub use board::{AlertBoard, AlertCollector};
use signal::{FloodSignal, FloodThresholds, Sample, Transition};

use crate::{
    events::{EventSink, JsonObject},
    flows::FlowTracker,
    ports::PortLabel,
    tls_capture::wallclock::{rfc3339, wall_time},
};

pub const SYN_FLOOD: &str = "SynFlood";

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
    last_tick: Option<Instant>,
    board: AlertBoard,
    events: EventSink,
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
            last_tick: None,
            board,
            events,
        }
    }

    /// Reads the server-role counters and updates every series.
    pub fn tick(&mut self, tracker: &FlowTracker) {
        let now = Instant::now();
        let seconds = self
            .last_tick
            .map_or(1.0, |t| now.duration_since(t).as_secs_f64());
        self.last_tick = Some(now);
        for (interface, slot) in self.interfaces.clone() {
            if let Ok(c) = tracker.handshakes(slot, Role::Server) {
                // SYNs over the insert budget were not tracked, but they
                // are SYNs all the same.
                let sample = Sample {
                    syns: c.started + c.insert_skipped,
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
                    syns: c.syns,
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
    }

    fn update(&mut self, key: SeriesKey, sample: Sample, seconds: f64) {
        let signal = self.signals.entry(key.clone()).or_default();
        let change = signal.tick(sample, seconds, &self.thresholds);
        let Some(reading) = signal.reading() else {
            return;
        };
        self.board.record(SYN_FLOOD, &key, reading, signal.firing());
        let Some(change) = change else { return };
        let state = match change {
            Transition::Fired => "firing",
            Transition::Resolved => "resolved",
        };
        match change {
            Transition::Fired => tracing::warn!(
                alertname = SYN_FLOOD, state, interface = %key.interface, port = %key.port,
                syn_rate = reading.syn_rate, completion_ratio = reading.completion_ratio,
                baseline = reading.baseline, "alert firing"
            ),
            Transition::Resolved => tracing::info!(
                alertname = SYN_FLOOD, state, interface = %key.interface, port = %key.port,
                "alert resolved"
            ),
        }
        if self.events.enabled() {
            let line = JsonObject::new()
                .str("type", "alert")
                .str("ts", &rfc3339(wall_time(crate::flows::monotonic_ns())))
                .str("alertname", SYN_FLOOD)
                .str("state", state)
                .str("interface", &key.interface)
                .str("port", &key.port)
                .num("syn_rate", reading.syn_rate)
                .num("completion_ratio", reading.completion_ratio)
                .num("baseline_syn_rate", reading.baseline)
                .finish();
            self.events.send(line);
        }
    }
}
