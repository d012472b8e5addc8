//! The live-frames comparisons: each case is a traffic pattern and the
//! pipelines measured on it in the same round, the first one being the
//! baseline the others are divided by.

use std::sync::Arc;

use super::{Pipeline, Receiver, Traffic};

/// Extra configuration of the monitor before it is attached (the mode a
/// pipeline measures), run on the freshly loaded programs of each round.
pub type Setup =
    Arc<dyn Fn(&mut crate::ebpf::Programs) -> anyhow::Result<()> + Send + Sync + 'static>;

pub struct LiveCase {
    pub name: &'static str,
    pub traffic: Traffic,
    pub baseline: Pipeline,
    pub measured: Vec<Pipeline>,
}

const fn bare(name: &'static str, program: &'static str) -> Pipeline {
    Pipeline {
        name,
        receiver: Receiver::Bare(program),
        tap: false,
    }
}

fn monitor(name: &'static str, setup: Option<Setup>) -> Pipeline {
    Pipeline {
        name,
        receiver: Receiver::Monitor(setup),
        tap: false,
    }
}

pub fn cases() -> Vec<LiveCase> {
    vec![
        // Pass-through: the monitor against no monitor on ordinary mixed
        // traffic, and an AF_PACKET tap on the same bare pipeline.
        LiveCase {
            name: "mixed",
            traffic: Traffic::Mixed,
            baseline: bare("bare_pass", "hs_bench_pass"),
            measured: vec![
                monitor("monitor", None),
                Pipeline {
                    name: "tap",
                    receiver: Receiver::Bare("hs_bench_pass"),
                    tap: true,
                },
            ],
        },
        // Established-flow data only (one flow, ACK|PSH, 10 bytes): the
        // pass-through cost without the handshake packets of the mix.
        LiveCase {
            name: "tcp_data",
            traffic: Traffic::TcpData,
            baseline: bare("bare_pass", "hs_bench_pass"),
            measured: vec![monitor("monitor", None)],
        },
        // SYN flood from random sources: the floor a mitigation has to
        // approach is a bare XDP_DROP.
        //
        // ENFORCE HOOK: once the daemon can enforce (drop/cookie the flood
        // in XDP), add here
        //     monitor("enforce", Some(Arc::new(|programs| { /* switch the
        //         mode map to enforce */ Ok(()) }))),
        // The setup runs on each round's freshly loaded programs before
        // the XDP program is attached; the figure comes out as
        // `live_syn_flood_enforce` against `bare_drop` (target >= 0.8).
        LiveCase {
            name: "syn_flood",
            traffic: Traffic::SynFlood,
            baseline: bare("bare_drop", "hs_bench_drop"),
            measured: vec![bare("bare_pass", "hs_bench_pass"), monitor("monitor", None)],
        },
    ]
}
