//! What became of the records, and the TCP→TLS hello timings of the
//! handshakes they describe, per named port.

use std::sync::{Arc, Mutex};

use aya::maps::{MapData, PerCpuArray};
use monitor_common::{histogram::HANDSHAKE_BOUNDS_NS, record::RecordCounters};
use prometheus::{
    HistogramOpts, HistogramVec, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::promfam::{Family, desc};

const RECORDS: &str = "handshake_records_total";
const RECORDS_HELP: &str = "Handshake records: emitted one per flow, aggregated into \
     per-prefix timeout lines, or not written (over_budget, ring_full: kernel side; \
     timeout_unseen: a new SYN took the slot before the sweep saw the timeout; \
     timeout_overflow: more timeouts in one sweep than it collects).";

/// Daemon-side counts, kept by the records task.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordTotals {
    pub emitted: u64,
    pub aggregated: u64,
    pub timeout_unseen: u64,
    pub timeout_overflow: u64,
}

/// The hello timings, observed as records are emitted.
#[derive(Clone)]
pub struct HelloTimings {
    pub ack_to_client_hello: HistogramVec,
    pub client_hello_to_server_hello: HistogramVec,
}

impl HelloTimings {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let seconds: Vec<f64> = HANDSHAKE_BOUNDS_NS
            .iter()
            .map(|ns| *ns as f64 / 1e9)
            .collect();
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(seconds.clone()),
                &["interface", "role", "port"],
            )
        };
        let timings = Self {
            ack_to_client_hello: histogram(
                "handshake_tls_ack_to_client_hello_seconds",
                "Time from a handshake's final ACK to its first TLS ClientHello, per named port.",
            )?,
            client_hello_to_server_hello: histogram(
                "handshake_tls_client_hello_to_server_hello_seconds",
                "Time from a flow's first TLS ClientHello to its ServerHello (a \
                 HelloRetryRequest round trip included), per named port.",
            )?,
        };
        registry.register(Box::new(timings.ack_to_client_hello.clone()))?;
        registry.register(Box::new(timings.client_hello_to_server_hello.clone()))?;
        Ok(timings)
    }
}

pub struct RecordCollector {
    kernel: PerCpuArray<MapData, RecordCounters>,
    totals: Arc<Mutex<RecordTotals>>,
    descs: Vec<Desc>,
}

impl RecordCollector {
    pub fn new(
        kernel: PerCpuArray<MapData, RecordCounters>,
        totals: Arc<Mutex<RecordTotals>>,
    ) -> Self {
        Self {
            kernel,
            totals,
            descs: vec![desc(RECORDS, RECORDS_HELP, &["result"])],
        }
    }
}

impl Collector for RecordCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut k = RecordCounters::default();
        if let Ok(values) = self.kernel.get(&0, 0) {
            for v in values.iter() {
                k.written += v.written;
                k.over_budget += v.over_budget;
                k.ring_full += v.ring_full;
            }
        }
        let t = *self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let mut family = Family::counter(RECORDS, RECORDS_HELP);
        for (result, v) in [
            ("emitted", t.emitted),
            ("aggregated", t.aggregated),
            ("over_budget", k.over_budget),
            ("ring_full", k.ring_full),
            ("timeout_unseen", t.timeout_unseen),
            ("timeout_overflow", t.timeout_overflow),
        ] {
            family.add(&[("result", result)], v as f64);
        }
        vec![family.finish()]
    }
}
