//! `cargo xtask bench`: what the monitor costs, each figure paired with a
//! baseline taken in the same round and process, so the machine's noise
//! cancels in the difference and the ratio. Sections:
//! - [`testrun`]: per-packet cost of the XDP and TC programs by packet
//!   class (BPF_PROG_TEST_RUN) against empty programs;
//! - [`live`]: throughput of live-frames pipelines through a veth pair,
//!   with and without the monitor (set up as the daemon sets it up, in
//!   each mitigation mode), and against an AF_PACKET tap; next to each,
//!   the attached program's in-place ns from the kernel's bpf stats;
//! - [`daemon`]: ring-buffer drain rate, ClientHello parsing, `/metrics`
//!   scrape time and resident memory of the daemon side;
//! - [`flood`]: a random-source SYN flood against a real server with the
//!   real daemon in each mode: host and daemon CPU, in-place ns per SYN,
//!   a real client's latency;
//! - [`replay`]: `handshake-monitor replay`'s frames per second against
//!   reading the same capture file.

mod cases;
mod configured;
mod daemon;
mod daemon_proc;
mod flood;
mod inplace;
pub(crate) mod live;
mod mitigation;
mod procstat;
mod readback;
mod replay;
mod testrun;

use std::fmt::Write as _;

use anyhow::Context as _;
use aya::{Ebpf, programs::Program};

pub use cases::{Case, cases};
pub use configured::MonitorMode;
pub use live::{LiveCase, Pipeline, Table};

use crate::{
    interfaces::Interface,
    loader::{LoadSettings, Programs},
    tls_capture::CaptureMaps,
};

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub unit: &'static str,
    pub value: f64,
    pub baseline: f64,
    pub ratio: f64,
}

/// The parts of the bench, in the order they run.
pub const SECTIONS: &[&str] = &["xdp", "tc", "live", "daemon", "flood", "replay"];

/// The middle value; of an even count, the mean of the middle two.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n.is_multiple_of(2) && n > 0 {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    } else {
        values[n / 2]
    }
}

/// A figure from (value, baseline) pairs, one per round: the medians of
/// each and of their ratios.
fn paired(name: &str, unit: &'static str, rounds: &[(f64, f64)]) -> Figure {
    Figure {
        name: name.into(),
        unit,
        value: median(rounds.iter().map(|r| r.0).collect()),
        baseline: median(rounds.iter().map(|r| r.1).collect()),
        ratio: median(rounds.iter().map(|r| r.0 / r.1).collect()),
    }
}

/// Runs the sections named in `only` (all when empty), `rounds` rounds per
/// figure; each figure is the median of its rounds.
pub fn run(rounds: usize, only: &[String]) -> anyhow::Result<Vec<Figure>> {
    let wanted = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
    let mut figures = Vec::new();
    let timed = |name: &str, f: &dyn Fn() -> anyhow::Result<Vec<Figure>>| {
        let start = std::time::Instant::now();
        let out = f();
        eprintln!(
            "handshake-monitor-bench: {name} took {:.0} s",
            start.elapsed().as_secs_f64()
        );
        out
    };
    if wanted("xdp") {
        figures.extend(timed("xdp", &|| testrun::xdp(rounds)).context("XDP per-packet figures")?);
    }
    if wanted("tc") {
        figures.extend(timed("tc", &|| testrun::tc(rounds)).context("TC per-packet figures")?);
    }
    if wanted("live") {
        let run = || live::run(rounds, &live::cases());
        figures.extend(timed("live", &run).context("live-frames figures")?);
    }
    if wanted("daemon") {
        figures.extend(timed("daemon", &|| daemon::run(rounds)).context("daemon-side figures")?);
    }
    if wanted("flood") {
        figures.extend(timed("flood", &|| flood::run(rounds)).context("flood_host figures")?);
    }
    if wanted("replay") {
        figures.extend(timed("replay", &|| replay::run(rounds)).context("replay figures")?);
    }
    Ok(figures)
}

/// Fresh programs for one round: the flow insert budget of the case, the
/// loopback registered (TestRun frames arrive on `lo`), a TLS budget that
/// never runs out, and the capture maps taken so the caller can drain them.
fn programs_for_bench(inserts_per_sec: u64) -> anyhow::Result<(Programs, CaptureMaps)> {
    let settings = LoadSettings {
        flow_inserts_per_sec_per_cpu: inserts_per_sec,
        ..LoadSettings::default()
    };
    let mut programs = Programs::load_with(&settings)?;
    programs.register(&Interface {
        name: "lo".into(),
        ifindex: 1,
    })?;
    programs.set_tls_budget(1_000_000_000, 1_000_000_000)?;
    let capture = CaptureMaps::take(&mut programs)?;
    Ok((programs, capture))
}

/// Program `name` of the loaded object, as its concrete type.
fn program_mut<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut P>
where
    &'a mut P: TryFrom<&'a mut Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .with_context(|| format!("the BPF object has no program {name} (rebuild)"))?;
    program
        .try_into()
        .with_context(|| format!("program {name} is not of the expected type"))
}

pub fn table(figures: &[Figure]) -> String {
    let mut out = format!(
        "{:<36} {:>11} {:>11} {:>11} {:>7}\n",
        "benchmark", "value", "baseline", "delta", "ratio"
    );
    for f in figures {
        let _ = writeln!(
            out,
            "{:<36} {:>11.3} {:>11.3} {:>11.3} {:>7.3}   {}",
            f.name,
            f.value,
            f.baseline,
            f.value - f.baseline,
            f.ratio,
            f.unit
        );
    }
    out
}

pub fn json(figures: &[Figure], kernel: &str, cpu: &str) -> String {
    let results: Vec<String> = figures
        .iter()
        .map(|f| {
            crate::events::JsonObject::new()
                .str("name", &f.name)
                .str("unit", f.unit)
                .num("value", format!("{:.3}", f.value))
                .num("baseline", format!("{:.3}", f.baseline))
                .num("ratio", format!("{:.4}", f.ratio))
                .finish()
        })
        .collect();
    format!(
        "{{\"kernel\":{},\"cpu\":{},\"results\":[{}]}}\n",
        crate::events::json_string(kernel),
        crate::events::json_string(cpu),
        results.join(",")
    )
}
