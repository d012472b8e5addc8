//! The loaded programs fed frames through BPF_PROG_TEST_RUN on loopback,
//! with the packet counters read around each run: shared by the hostile
//! frame and the limits tests.

use aya::programs::{TestRun as _, TestRunOptions};
use monitor::{
    flows::FlowSettings,
    interfaces::Interface,
    loader::{CounterReader, LoadSettings, Programs},
};
use monitor_common::{
    classify::{FlagClass, classify},
    counters::{Direction, DirectionCounters},
    parse::{SkipReason, parse_tcp},
};

pub const XDP_PASS: u32 = 2;
/// TC_ACT_UNSPEC (-1): hand the packet to the next program / default.
pub const TC_ACT_UNSPEC: u32 = u32::MAX;
/// Test runs execute on the loopback device of the caller's namespace.
pub const LOOPBACK: u32 = 1;

pub struct Harness {
    pub programs: Programs,
    pub counters: CounterReader,
    pub slot: u32,
}

impl Harness {
    /// The programs as a bare `Programs::load()` leaves them (mitigation
    /// off), with loopback registered.
    pub fn new() -> Self {
        Self::with(&FlowSettings::default())
    }

    pub fn with(flows: &FlowSettings) -> Self {
        super::require_root();
        let mut programs = Programs::load_with(&LoadSettings::from(flows)).expect("load programs");
        let lo = Interface {
            name: "lo".into(),
            ifindex: LOOPBACK,
        };
        let slot = programs.register(&lo).expect("register lo");
        let counters = programs.take_counters().expect("counters");
        Self {
            programs,
            counters,
            slot,
        }
    }

    pub fn read(&self, direction: Direction) -> DirectionCounters {
        self.counters
            .read(self.slot, direction)
            .expect("read counters")
    }

    /// The verdict, or the kernel's refusal to run the frame at all.
    pub fn run(&mut self, direction: Direction, frame: &[u8]) -> Result<u32, String> {
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..Default::default()
        };
        let result = match direction {
            Direction::Ingress => self.programs.xdp().unwrap().test_run(opts),
            Direction::Egress => self.programs.tc().unwrap().test_run(opts),
        };
        result.map(|r| r.return_value).map_err(|e| e.to_string())
    }
}

/// `after - before`, class by class.
pub fn delta(after: &DirectionCounters, before: &DirectionCounters) -> DirectionCounters {
    let mut d = DirectionCounters::default();
    for (x, (a, b)) in d.tcp.iter_mut().zip(after.tcp.iter().zip(&before.tcp)) {
        *x = a - b;
    }
    let pairs = after.skipped.iter().zip(&before.skipped);
    for (x, (a, b)) in d.skipped.iter_mut().zip(pairs) {
        *x = a - b;
    }
    d
}

/// Sum over every class and skip reason.
pub fn total(c: &DirectionCounters) -> u64 {
    c.tcp.iter().chain(&c.skipped).sum()
}

/// What the host parser makes of a frame: its class, or why it was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Tcp(FlagClass),
    Skip(SkipReason),
}

impl Expect {
    pub fn of(frame: &[u8]) -> Self {
        match parse_tcp(frame) {
            Ok(p) => Self::Tcp(classify(p.flags, p.payload_len)),
            Err(reason) => Self::Skip(reason),
        }
    }

    /// The counters one frame of this kind advances: exactly one, by one.
    pub fn counters(self) -> DirectionCounters {
        let mut c = DirectionCounters::default();
        match self {
            Self::Tcp(class) => c.tcp[class as usize] = 1,
            Self::Skip(reason) => c.skipped[reason as usize] = 1,
        }
        c
    }
}

/// An untagged IPv4/IPv6 frame cut before the end of its fixed IP header:
/// the kernel will not build an skb for a TC test run from it.
pub fn ip_header_incomplete(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x00]) => frame.len() < 14 + 20,
        Some([0x86, 0xdd]) => frame.len() < 14 + 40,
        _ => false,
    }
}
