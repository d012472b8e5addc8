//! Prometheus metrics. Kernel counters are read at scrape time, so a scrape
//! always sees the kernel's current totals and nothing polls in between.

use std::sync::Mutex;

use monitor_common::{
    classify::FlagClass, counters::Direction, flow::Untracked, parse::SkipReason,
};
use prometheus::{
    Encoder as _, IntCounterVec, IntGaugeVec, Opts, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::loader::{Attachment, CounterReader};

pub const TCP_PACKETS: &str = "handshake_tcp_packets_total";
pub const SKIPPED_PACKETS: &str = "handshake_parser_skipped_packets_total";
pub const UNTRACKED_SEGMENTS: &str = "handshake_tcp_untracked_segments_total";
pub const BUILD_INFO: &str = "handshake_build_info";
pub const INTERFACE_INFO: &str = "handshake_interface_info";

/// Reads the per-CPU packet counters of every attached interface.
pub struct PacketCollector {
    reader: Mutex<CounterReader>,
    interfaces: Vec<(String, u32)>,
    descs: Vec<Desc>,
}

fn tcp_packets_vec() -> IntCounterVec {
    IntCounterVec::new(
        Opts::new(
            TCP_PACKETS,
            "TCP packets seen on a monitored interface, by direction and flag class.",
        ),
        &["interface", "direction", "flag"],
    )
    .expect("static metric definition")
}

fn skipped_packets_vec() -> IntCounterVec {
    IntCounterVec::new(
        Opts::new(
            SKIPPED_PACKETS,
            "Packets the parser did not follow (passed untouched), by direction and reason.",
        ),
        &["interface", "direction", "reason"],
    )
    .expect("static metric definition")
}

fn untracked_segments_vec() -> IntCounterVec {
    IntCounterVec::new(
        Opts::new(
            UNTRACKED_SEGMENTS,
            "SYN-ACK, FIN and RST segments of no tracked flow (connections older than the \
             daemon, flows not admitted or evicted, scans), by direction and flag.",
        ),
        &["interface", "direction", "flag"],
    )
    .expect("static metric definition")
}

impl PacketCollector {
    pub fn new(reader: CounterReader, attachments: &[Attachment]) -> Self {
        let descs = [
            tcp_packets_vec(),
            skipped_packets_vec(),
            untracked_segments_vec(),
        ]
        .iter()
        .flat_map(|v| v.desc().into_iter().cloned())
        .collect();
        Self {
            reader: Mutex::new(reader),
            interfaces: attachments
                .iter()
                .map(|a| (a.iface.name.clone(), a.slot))
                .collect(),
            descs,
        }
    }
}

impl Collector for PacketCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let packets = tcp_packets_vec();
        let skipped = skipped_packets_vec();
        let untracked = untracked_segments_vec();
        let reader = match self.reader.lock() {
            Ok(reader) => reader,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (name, slot) in &self.interfaces {
            for direction in Direction::ALL {
                let counters = match reader.read(*slot, direction) {
                    Ok(c) => c,
                    Err(err) => {
                        tracing::warn!(interface = %name, "reading the packet counters failed: {err}");
                        continue;
                    }
                };
                let dir = direction.name();
                for class in FlagClass::ALL {
                    packets
                        .with_label_values(&[name.as_str(), dir, class.name()])
                        .inc_by(counters.tcp[class as usize]);
                }
                for what in Untracked::ALL {
                    untracked
                        .with_label_values(&[name.as_str(), dir, what.name()])
                        .inc_by(counters.untracked[what as usize]);
                }
                for reason in SkipReason::ALL {
                    skipped
                        .with_label_values(&[name.as_str(), dir, reason.name()])
                        .inc_by(counters.skipped[reason as usize]);
                }
            }
        }
        let mut families = packets.collect();
        families.extend(skipped.collect());
        families.extend(untracked.collect());
        families
    }
}

/// The registry of everything `/metrics` serves.
pub fn registry(reader: CounterReader, attachments: &[Attachment]) -> prometheus::Result<Registry> {
    let registry = Registry::new();
    registry.register(Box::new(PacketCollector::new(reader, attachments)))?;

    let build = IntGaugeVec::new(
        Opts::new(
            BUILD_INFO,
            "Always 1; the version label names the running build.",
        ),
        &["version"],
    )?;
    build.with_label_values(&[crate::VERSION]).set(1);
    registry.register(Box::new(build))?;

    let info = IntGaugeVec::new(
        Opts::new(
            INTERFACE_INFO,
            "Always 1 per monitored interface; labels say how the programs are attached.",
        ),
        &["interface", "xdp_mode", "tc_mode"],
    )?;
    for a in attachments {
        info.with_label_values(&[a.iface.name.as_str(), a.xdp.name(), a.tc.name()])
            .set(1);
    }
    registry.register(Box::new(info))?;
    Ok(registry)
}

/// Text exposition format of everything in `registry`.
pub fn render(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(err) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::warn!("encoding metrics failed: {err}");
    }
    out
}
