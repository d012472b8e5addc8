//! The live-frames comparisons: each case is a traffic pattern and the
//! pipelines measured on it in the same round, the first one being the
//! baseline the others are divided by.

use std::sync::Arc;

use super::{Pipeline, Receiver, Traffic};

/// Extra configuration of the monitor before it is attached (the mode a
/// pipeline measures), run on the freshly loaded programs of each round.
pub type Setup =
    Arc<dyn Fn(&mut crate::loader::Programs) -> anyhow::Result<()> + Send + Sync + 'static>;

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
        // approach is a bare XDP_DROP. In enforce mode no random source
        // exceeds its limit, and in a half-second run no /24 spends its
        // burst either: the flood passes, paying for the judgment (the
        // SYN-cookie mode is the answer to this flood).
        LiveCase {
            name: "syn_flood",
            traffic: Traffic::SynFlood,
            baseline: bare("bare_drop", "hs_bench_drop"),
            measured: vec![
                bare("bare_pass", "hs_bench_pass"),
                monitor("monitor", None),
                monitor(
                    "enforce",
                    Some(Arc::new(|programs| {
                        crate::bench::mitigation::enforce(programs, None)
                    })),
                ),
                // Every SYN answered with a cookie SYN-ACK (XDP_TX back
                // to the generator's veth, which drops it).
                monitor(
                    "syncookies",
                    Some(Arc::new(crate::bench::mitigation::syncookies_flood)),
                ),
            ],
        },
        // SYN flood from one source, the flood the blocklist is for: the
        // monitor alone passes it to the stack; in enforce mode, with the
        // source blocked, XDP drops it.
        LiveCase {
            name: "syn_flood_one_source",
            traffic: Traffic::SynFloodOneSource,
            baseline: bare("bare_drop", "hs_bench_drop"),
            measured: vec![
                monitor("monitor", None),
                monitor(
                    "enforce_blocked",
                    Some(Arc::new(|programs| {
                        crate::bench::mitigation::enforce(programs, Some("198.18.0.66"))
                    })),
                ),
            ],
        },
    ]
}
