//! TLS metrics: what the hellos said (bounded labels only: names of
//! versions, ciphers and alert descriptions, never SNI), and the health of
//! the capture path from kernel to events log.

use std::sync::{Arc, Mutex, atomic::Ordering};

use aya::maps::{MapData, PerCpuArray};
use monitor_common::{capture::CaptureCounters, histogram::HANDSHAKE_BOUNDS_NS};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use super::reassembly::ReassemblyStats;
use crate::{
    events::EventStats,
    promfam::{Family, desc},
};

/// Metrics updated as hellos are parsed.
#[derive(Clone)]
pub struct TlsMetrics {
    pub client_hellos: IntCounterVec,
    pub server_hellos: IntCounterVec,
    pub segments: HistogramVec,
    pub hello_duration: HistogramVec,
    pub alerts: IntCounterVec,
    pub parse_errors: IntCounterVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

impl TlsMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let seconds: Vec<f64> = HANDSHAKE_BOUNDS_NS
            .iter()
            .map(|ns| *ns as f64 / 1e9)
            .collect();
        let metrics = Self {
            client_hellos: counter(
                "handshake_tls_client_hellos_total",
                "TLS ClientHellos by the highest version offered and whether a post-quantum key share was sent.",
                &["interface", "direction", "version", "pq_key_share"],
            )?,
            server_hellos: counter(
                "handshake_tls_server_hellos_total",
                "TLS ServerHellos by negotiated version and cipher suite.",
                &["interface", "direction", "version", "cipher"],
            )?,
            segments: HistogramVec::new(
                HistogramOpts::new(
                    "handshake_tls_client_hello_segments",
                    "TCP segments a ClientHello record arrived in.",
                )
                .buckets(vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]),
                &["interface", "direction"],
            )?,
            hello_duration: HistogramVec::new(
                HistogramOpts::new(
                    "handshake_tls_hello_duration_seconds",
                    "Time from a ClientHello to the ServerHello answering it, on the interface.",
                )
                .buckets(seconds),
                &["interface", "role"],
            )?,
            alerts: counter(
                "handshake_tls_alerts_total",
                "Plaintext TLS alerts (sent before encryption starts) by level and description.",
                &["interface", "direction", "level", "description"],
            )?,
            parse_errors: counter(
                "handshake_tls_parse_errors_total",
                "Captured hello records that did not parse, by reason.",
                &["interface", "direction", "reason"],
            )?,
        };
        registry.register(Box::new(metrics.client_hellos.clone()))?;
        registry.register(Box::new(metrics.server_hellos.clone()))?;
        registry.register(Box::new(metrics.segments.clone()))?;
        registry.register(Box::new(metrics.hello_duration.clone()))?;
        registry.register(Box::new(metrics.alerts.clone()))?;
        registry.register(Box::new(metrics.parse_errors.clone()))?;
        Ok(metrics)
    }
}

const CAPTURE: &str = "handshake_tls_capture_events_total";
const REASSEMBLY: &str = "handshake_tls_reassembly_total";
const EVENTS: &str = "handshake_events_total";

/// Capture-path health: kernel counters, reassembly and events log.
pub struct CaptureCollector {
    kernel: PerCpuArray<MapData, CaptureCounters>,
    reassembly: Arc<Mutex<ReassemblyStats>>,
    events: Arc<EventStats>,
    descs: Vec<Desc>,
}

impl CaptureCollector {
    pub fn new(
        kernel: PerCpuArray<MapData, CaptureCounters>,
        reassembly: Arc<Mutex<ReassemblyStats>>,
        events: Arc<EventStats>,
    ) -> Self {
        let descs = vec![
            desc(CAPTURE, CAPTURE_HELP, &["result"]),
            desc(REASSEMBLY, REASSEMBLY_HELP, &["result"]),
            desc(EVENTS, EVENTS_HELP, &["result"]),
        ];
        Self {
            kernel,
            reassembly,
            events,
            descs,
        }
    }
}

const CAPTURE_HELP: &str = "Kernel capture of TLS records: hello and alert records and continuation \
     segments sent to the daemon, those lost (ringbuf_full, budget, collision), and segments \
     whose search for a hello gave up after the most records it skips (too_many_records).";
const REASSEMBLY_HELP: &str = "Hello records reassembled from captured segments, or given up on.";
const EVENTS_HELP: &str = "Events-log lines written, or dropped because the writer fell behind.";

impl Collector for CaptureCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut k = CaptureCounters::default();
        if let Ok(values) = self.kernel.get(&0, 0) {
            values.iter().for_each(|v| k.accumulate(v));
        }
        let mut capture = Family::counter(CAPTURE, CAPTURE_HELP);
        for (result, v) in [
            ("hello", k.hellos),
            ("continuation", k.continuations),
            ("alert", k.alerts),
            ("ringbuf_full", k.ringbuf_full),
            ("budget", k.budget_skipped),
            ("collision", k.continuation_collisions),
            ("too_many_records", k.too_many_records),
        ] {
            capture.add(&[("result", result)], v as f64);
        }
        let r = *self.reassembly.lock().unwrap_or_else(|p| p.into_inner());
        let mut reassembly = Family::counter(REASSEMBLY, REASSEMBLY_HELP);
        for (result, v) in [
            ("completed", r.completed),
            ("duplicate", r.duplicate),
            ("orphan", r.orphan),
            ("out_of_order", r.out_of_order),
            ("expired", r.expired),
            ("evicted", r.evicted),
        ] {
            reassembly.add(&[("result", result)], v as f64);
        }
        let mut events = Family::counter(EVENTS, EVENTS_HELP);
        events.add(
            &[("result", "written")],
            self.events.written.load(Ordering::Relaxed) as f64,
        );
        events.add(
            &[("result", "dropped")],
            self.events.dropped.load(Ordering::Relaxed) as f64,
        );
        vec![capture.finish(), reassembly.finish(), events.finish()]
    }
}
