//! Live-frames throughput: a generator XDP program run through
//! BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES redirects real frames
//! out of one veth end; they arrive on its peer, where the pipeline under
//! test (a bare program, the monitor, or a bare program plus an AF_PACKET
//! tap) receives them in native XDP. Throughput is frames received (the
//! peer's rx counter) over wall time. Generation, veth delivery and the
//! receive path all run on the generating CPU (the receive NAPI is polled
//! when the generator's batch re-enables softirqs), so a pipeline's
//! Mpps is one core's worth and its inverse is the per-packet cost of the
//! whole path. aya 0.14's TestRunOptions carries the live-frames flag and
//! batch size, so no raw bpf(2) call is needed.

mod cases;
mod figures;
pub(super) mod lab;
mod tap;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aya::{
    maps::Array,
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
pub use cases::{LiveCase, Table, cases};
use monitor_common::{
    classify::tcp_flags::{ACK, PSH},
    frames::TcpFrame,
};

use super::{
    Figure,
    configured::{self, MonitorMode},
    inplace::{RunStats, Stats},
    program_mut,
};
use crate::{cli::RunArgs, interfaces::Interface, loader::Programs};

const GENERATOR: &str = "hs_bench_gen";
const GEN_CONFIG_MAP: &str = "BENCH_GEN_CONFIG";
/// The flow table the full-table cases fill and count.
/// Frames per test run; the time bound is checked between runs.
const CHUNK: u32 = 100_000;
/// Bounds of one pipeline measurement, whichever comes first.
pub(super) const MAX_FRAMES: u64 = 5_000_000;
const RUN_TIME: Duration = Duration::from_millis(300);
/// Frames the kernel generates between two flushes of the redirect queue.
const BATCH: u32 = 64;
const GEN_CPU: usize = 0;
/// The tap's reader runs on the other core, as tcpdump would.
const TAP_CPU: usize = 1;
const FRAME_LEN: usize = 64;

/// What the generator sends (its mode numbers are in monitor-ebpf's
/// bench.rs).
#[derive(Clone, Copy)]
pub enum Traffic {
    /// The template as it is: data on one established-looking flow.
    TcpData,
    Mixed,
    SynFlood,
    /// SYNs from one source (198.18.0.66), random ports.
    SynFloodOneSource,
}

impl Traffic {
    const fn mode(self) -> u32 {
        match self {
            Self::TcpData => 0,
            Self::Mixed => 1,
            Self::SynFlood => 2,
            Self::SynFloodOneSource => 3,
        }
    }
}

pub enum Receiver {
    /// One of the bench's bare XDP programs.
    Bare(&'static str),
    /// The monitor's programs, freshly loaded, attached and configured as
    /// the daemon does it, in this mode.
    Monitor(MonitorMode),
}

pub struct Pipeline {
    pub name: &'static str,
    pub receiver: Receiver,
    /// An AF_PACKET capture reads the receiving interface meanwhile.
    pub tap: bool,
}

/// The generator's 64-byte template: IPv4 TCP, 10 payload bytes, to a MAC
/// that is not the receiver's (the stack drops it early on XDP_PASS, the
/// same way in every pipeline).
fn template() -> Vec<u8> {
    let frame = TcpFrame::v4(ACK | PSH).with_payload(&[0x42; 10]).build();
    debug_assert_eq!(frame.len(), FRAME_LEN);
    frame
}

/// Sends one bounded run of `traffic` into the lab's receiving veth,
/// whatever is attached there (to give the real daemon something to
/// count). Returns Mpps received.
pub(super) fn drive(lab: &lab::Lab, traffic: Traffic) -> anyhow::Result<f64> {
    lab.run_inside(|| {
        lab::pin_to_cpu(GEN_CPU);
        let mut programs = Programs::load()?;
        write_gen_config(&mut programs, lab::ifindex(&lab.gen_if)?, traffic.mode())?;
        generate(&mut programs, &lab.rx_if, MAX_FRAMES)
    })?
}

pub fn run(rounds: usize, cases: &[LiveCase]) -> anyhow::Result<Vec<Figure>> {
    let lab = lab::Lab::new().context("creating the bench namespace")?;
    let _stats = Stats::enable()?;
    lab.run_inside(|| inside(&lab, rounds, cases))?
}

/// What one pipeline's run measured.
#[derive(Clone, Copy)]
pub struct Sample {
    pub mpps: f64,
    /// Mean ns per run of the attached program (bpf stats).
    pub inplace_ns: f64,
    /// Flows in the table when the run started (full-table cases).
    pub entries: Option<u64>,
}

fn inside(lab: &lab::Lab, rounds: usize, cases: &[LiveCase]) -> anyhow::Result<Vec<Figure>> {
    lab::pin_to_cpu(GEN_CPU);
    let gen_ifindex = lab::ifindex(&lab.gen_if)?;
    let rx = Interface {
        name: lab.rx_if.clone(),
        ifindex: lab::ifindex(&lab.rx_if)?,
    };
    // The generator and the bare programs (stateless); every monitor
    // pipeline loads programs of its own.
    let mut generator = Programs::load()?;
    // A veth delivers what XDP sends back (the cookie SYN-ACKs) only to a
    // peer running a native XDP program; without one the daemon's guard
    // rightly leaves SYNs to the stack. Held for the whole section.
    let mut napi = Programs::load()?;
    loaded(&mut napi, "hs_bench_pass")?.attach_to_if_index(gen_ifindex, XdpMode::Driver)?;
    let mut figures = Vec::new();
    for case in cases {
        let pipelines: Vec<&Pipeline> = std::iter::once(&case.baseline)
            .chain(&case.measured)
            .collect();
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); pipelines.len()];
        write_gen_config(&mut generator, gen_ifindex, case.traffic.mode())?;
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..pipelines.len()).collect();
            // Alternate the order so drift within a round favours nobody.
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let sample = measure(&mut generator, case, pipelines[i], &rx)
                    .with_context(|| format!("live {} {}", case.name, pipelines[i].name))?;
                samples[i].push(sample);
            }
        }
        figures.extend(figures::case(case, &pipelines, &samples)?);
    }
    Ok(figures)
}

fn write_gen_config(programs: &mut Programs, ifindex: u32, mode: u32) -> anyhow::Result<()> {
    let map = programs
        .ebpf_mut()
        .map_mut(GEN_CONFIG_MAP)
        .context("the BPF object has no generator config map (rebuild)")?;
    let mut config: Array<_, u32> = Array::try_from(map)?;
    config.set(0, ifindex, 0)?;
    config.set(1, mode, 0)?;
    Ok(())
}

fn loaded<'a>(programs: &'a mut Programs, name: &str) -> anyhow::Result<&'a mut Xdp> {
    let program: &mut Xdp = program_mut(programs.ebpf_mut(), name)?;
    if program.fd().is_err() {
        program.load().with_context(|| format!("loading {name}"))?;
    }
    Ok(program)
}

/// One pipeline, one bounded run: attach (and configure), generate,
/// detach. The in-place figure is the attached program's own run time
/// over the measured run.
fn measure(
    generator: &mut Programs,
    case: &LiveCase,
    pipeline: &Pipeline,
    rx: &Interface,
) -> anyhow::Result<Sample> {
    match &pipeline.receiver {
        Receiver::Bare(name) => {
            // Native mode: the frames arrive as xdp_frames through the
            // veth's NAPI, as from a NIC driver.
            let program = loaded(generator, name)?;
            let id = program.attach_to_if_index(rx.ifindex, XdpMode::Driver)?;
            let before = RunStats::of(&program.info()?);
            let tap = pipeline
                .tap
                .then(|| tap::Tap::start(rx.ifindex, TAP_CPU))
                .transpose()?;
            let mpps = generate(generator, &rx.name, case.max_frames);
            if let Some(tap) = &tap
                && tap.captured() == 0
            {
                eprintln!("handshake-monitor-bench: the AF_PACKET tap captured nothing");
            }
            drop(tap);
            let program = loaded(generator, name)?;
            let after = RunStats::of(&program.info()?);
            program.detach(id)?;
            Ok(Sample {
                mpps: mpps?,
                inplace_ns: after.since(before).0,
                entries: None,
            })
        }
        Receiver::Monitor(mode) => {
            let mut attached = configured::attach(rx, mode, case.inserts_per_sec)?;
            let entries = match case.table {
                Table::Fresh => None,
                Table::Full => Some(fill(generator, &mut attached.programs, &rx.name)?),
            };
            let mut monitor = attached.configure(mode)?;
            let before = RunStats::of(&monitor.programs.xdp()?.info()?);
            let mpps = generate(generator, &rx.name, case.max_frames)?;
            let after = RunStats::of(&monitor.programs.xdp()?.info()?);
            // Dropping the monitor detaches it.
            drop(monitor);
            Ok(Sample {
                mpps,
                inplace_ns: after.since(before).0,
                entries,
            })
        }
    }
}

/// Fills the half-open table of the attached `monitor` (where a SYN
/// flood lands) with twice its capacity of the case's traffic; returns
/// the slots it then holds, read in place. The generator's frames are all
/// received on its CPU, so they fill that CPU's partition.
fn fill(generator: &mut Programs, monitor: &mut Programs, rx_if: &str) -> anyhow::Result<u64> {
    let capacity = RunArgs::defaults().flow_table_size;
    pump(generator, 2 * u64::from(capacity))?;
    let table = crate::half_open::HalfOpenTable::take(monitor)?;
    let mut used = 0u64;
    table.scan(crate::clock::monotonic_ns(), u64::MAX, |_, _| used += 1);
    let partition = table.slots() as u64 / aya::util::nr_cpus().map_or(1, |n| n as u64);
    if used < partition * 9 / 10 {
        bail!("the fill left {used} handshakes in a partition of {partition} slots on {rx_if}");
    }
    Ok(used)
}

/// Runs the generator over `frames` frames, unmeasured.
fn pump(programs: &mut Programs, frames: u64) -> anyhow::Result<()> {
    let generator = loaded(programs, GENERATOR)?;
    let frame = template();
    let mut left = frames;
    while left > 0 {
        let repeat = left.min(u64::from(CHUNK)) as u32;
        let opts = TestRunOptions {
            data_in: Some(&frame),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
            ..Default::default()
        };
        generator
            .test_run(opts)
            .context("live-frames BPF_PROG_TEST_RUN (needs Linux 5.18+)")?;
        left -= u64::from(repeat);
    }
    Ok(())
}

/// Runs the generator within the bounds; returns Mpps received.
fn generate(programs: &mut Programs, rx_if: &str, max_frames: u64) -> anyhow::Result<f64> {
    // Unmeasured: the page pool and the receiver's caches warm up.
    pump(programs, u64::from(CHUNK / 10).min(max_frames / 10))?;
    let generator = loaded(programs, GENERATOR)?;
    let frame = template();
    let chunk = u64::from(CHUNK).min(max_frames);
    let before = lab::rx_packets(rx_if)?;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < max_frames && start.elapsed() < RUN_TIME {
        let opts = TestRunOptions {
            data_in: Some(&frame),
            repeat: chunk as u32,
            attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
            ..Default::default()
        };
        generator
            .test_run(opts)
            .context("live-frames BPF_PROG_TEST_RUN (needs Linux 5.18+)")?;
        sent += chunk;
    }
    let elapsed = start.elapsed();
    let received = lab::rx_packets(rx_if)?.wrapping_sub(before);
    if received == 0 {
        bail!("no generated frame arrived on {rx_if} ({sent} sent)");
    }
    Ok(f64::from(received) / elapsed.as_secs_f64() / 1e6)
}
