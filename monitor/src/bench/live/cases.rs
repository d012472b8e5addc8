//! The live-frames comparisons: each case is a traffic pattern and the
//! pipelines measured on it in the same round, the first one being the
//! baseline the others are divided by. Every case has a `bare_pass`
//! pipeline: its in-place cost is what the others' is taken against.

use super::{Pipeline, Receiver, Traffic};
use crate::bench::configured::MonitorMode;

/// Where the flow table stands when a pipeline's measured run starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Freshly loaded: empty, filled only by the run itself.
    Fresh,
    /// Filled beforehand with twice its capacity of distinct SYNs: every
    /// insert of the run evicts (LRU), every lookup searches a full table.
    Full,
}

pub struct LiveCase {
    pub name: &'static str,
    pub traffic: Traffic,
    /// `--flow-inserts-per-sec` for the monitor pipelines; None: the
    /// daemon's default (100,000 per CPU, burst 10,000).
    pub inserts_per_sec: Option<u64>,
    pub table: Table,
    /// Frames at most in one pipeline's measured run (the time bound
    /// applies too).
    pub max_frames: u64,
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

const BARE_PASS: Pipeline = bare("bare_pass", "hs_bench_pass");

fn monitor(name: &'static str, mode: MonitorMode) -> Pipeline {
    Pipeline {
        name,
        receiver: Receiver::Monitor(mode),
        tap: false,
    }
}

/// Far above any rate the generator reaches on one core: every SYN is
/// inserted.
const UNLIMITED_INSERTS: u64 = 100_000_000;
/// The live flood's 64 destination ports (see monitor-ebpf's bench.rs).
fn flood_ports() -> Vec<u16> {
    (8000..8064).collect()
}
/// A source of the random-source flood's range: blocking it puts one
/// entry in the policy table, so every SYN pays the trie lookup, and
/// almost every SYN passes it.
const ONE_RANDOM_SOURCE: &str = "198.18.0.66";

/// Every mode of the mitigation on a random-source SYN flood, against a
/// bare XDP_DROP and with a bare XDP_PASS beside them.
fn every_mode() -> Vec<Pipeline> {
    vec![
        BARE_PASS,
        monitor("off", MonitorMode::Off),
        monitor("default", MonitorMode::Default),
        monitor("enforce", MonitorMode::Enforce),
        monitor(
            "enforce_blocklist",
            MonitorMode::EnforceBlocking(ONE_RANDOM_SOURCE),
        ),
        // Every SYN answered with a cookie SYN-ACK (XDP_TX back to the
        // generator's veth, which drops it).
        monitor("syncookies", MonitorMode::Syncookies(flood_ports())),
    ]
}

fn syn_flood(
    name: &'static str,
    inserts_per_sec: Option<u64>,
    table: Table,
    max_frames: u64,
) -> LiveCase {
    LiveCase {
        name,
        traffic: Traffic::SynFlood,
        inserts_per_sec,
        table,
        max_frames,
        baseline: bare("bare_drop", "hs_bench_drop"),
        measured: every_mode(),
    }
}

pub fn cases() -> Vec<LiveCase> {
    vec![
        // Pass-through: the monitor at the daemon's defaults against no
        // monitor on ordinary mixed traffic, and an AF_PACKET tap on the
        // same bare pipeline.
        LiveCase {
            name: "mixed",
            traffic: Traffic::Mixed,
            inserts_per_sec: None,
            table: Table::Fresh,
            max_frames: super::MAX_FRAMES,
            baseline: BARE_PASS,
            measured: vec![
                monitor("default", MonitorMode::Default),
                Pipeline {
                    name: "tap",
                    receiver: Receiver::Bare("hs_bench_pass"),
                    tap: true,
                },
            ],
        },
        // Established-flow data only (one flow, ACK|PSH, 10 bytes).
        LiveCase {
            name: "tcp_data",
            traffic: Traffic::TcpData,
            inserts_per_sec: None,
            table: Table::Fresh,
            max_frames: super::MAX_FRAMES,
            baseline: BARE_PASS,
            measured: vec![monitor("default", MonitorMode::Default)],
        },
        // Random-source SYN floods. Below the insert budget (the budget
        // set far above the flood: every SYN is inserted, what a flood
        // under 100k SYN/s per CPU costs at the defaults), table empty at
        // the start and bounded to 100,000 SYNs so it stays under 40 %
        // full; then the same into a full table.
        syn_flood(
            "syn_flood_under_budget",
            Some(UNLIMITED_INSERTS),
            Table::Fresh,
            100_000,
        ),
        syn_flood(
            "syn_flood_under_budget_full",
            Some(UNLIMITED_INSERTS),
            Table::Full,
            super::MAX_FRAMES,
        ),
        // Above it: the daemon's default budget against a flood of about
        // 1 Mpps on one CPU: one SYN in ten or so is inserted.
        syn_flood(
            "syn_flood_over_budget",
            None,
            Table::Fresh,
            super::MAX_FRAMES,
        ),
        // SYN flood from one source, the flood the blocklist is for: the
        // monitor at its defaults passes it to the stack; in enforce mode,
        // with the source blocked, XDP drops it.
        LiveCase {
            name: "syn_flood_one_source",
            traffic: Traffic::SynFloodOneSource,
            inserts_per_sec: None,
            table: Table::Fresh,
            max_frames: super::MAX_FRAMES,
            baseline: bare("bare_drop", "hs_bench_drop"),
            measured: vec![
                BARE_PASS,
                monitor("default", MonitorMode::Default),
                monitor(
                    "enforce_blocked",
                    MonitorMode::EnforceBlocking("198.18.0.66"),
                ),
            ],
        },
    ]
}
