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
pub(super) mod lab;
mod tap;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aya::{
    maps::Array,
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
pub use cases::{LiveCase, Setup, cases};
use monitor_common::{
    classify::tcp_flags::{ACK, PSH},
    frames::TcpFrame,
};

use super::{Figure, median, program_mut};
use crate::{interfaces::Interface, loader::Programs};

const GENERATOR: &str = "hs_bench_gen";
const GEN_CONFIG_MAP: &str = "BENCH_GEN_CONFIG";
/// Frames per test run; the time bound is checked between runs.
const CHUNK: u32 = 100_000;
/// Bounds of one pipeline measurement, whichever comes first.
const MAX_FRAMES: u64 = 5_000_000;
const RUN_TIME: Duration = Duration::from_millis(500);
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
    /// The monitor's XDP program, registered for the interface, after an
    /// optional setup (e.g. a mitigation mode).
    Monitor(Option<Setup>),
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
        generate(&mut programs, &lab.rx_if)
    })?
}

pub fn run(rounds: usize, cases: &[LiveCase]) -> anyhow::Result<Vec<Figure>> {
    let lab = lab::Lab::new().context("creating the bench namespace")?;
    lab.run_inside(|| inside(&lab, rounds, cases))?
}

fn inside(lab: &lab::Lab, rounds: usize, cases: &[LiveCase]) -> anyhow::Result<Vec<Figure>> {
    lab::pin_to_cpu(GEN_CPU);
    let gen_ifindex = lab::ifindex(&lab.gen_if)?;
    let rx = Interface {
        name: lab.rx_if.clone(),
        ifindex: lab::ifindex(&lab.rx_if)?,
    };
    let mut figures = Vec::new();
    for case in cases {
        let pipelines: Vec<&Pipeline> = std::iter::once(&case.baseline)
            .chain(&case.measured)
            .collect();
        let mut mpps: Vec<Vec<f64>> = vec![Vec::new(); pipelines.len()];
        for round in 0..rounds {
            let mut programs = Programs::load()?;
            let _capture = crate::tls_capture::CaptureMaps::take(&mut programs)?;
            write_gen_config(&mut programs, gen_ifindex, case.traffic.mode())?;
            let mut order: Vec<usize> = (0..pipelines.len()).collect();
            // Alternate the order so drift within a round favours nobody.
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let value = measure(&mut programs, pipelines[i], &rx)
                    .with_context(|| format!("live {} {}", case.name, pipelines[i].name))?;
                mpps[i].push(value);
            }
        }
        figures.extend(case_figures(case.name, &pipelines, &mpps));
    }
    Ok(figures)
}

/// Mpps of each measured pipeline against the baseline, the same as
/// per-packet cost of the whole path, and, where a case has both a
/// monitor and a tap, the monitor's extra cost over the baseline against
/// the tap's.
fn case_figures(case: &str, pipelines: &[&Pipeline], mpps: &[Vec<f64>]) -> Vec<Figure> {
    let ns = |m: f64| 1e3 / m;
    let paired = |a: usize, f: &dyn Fn(f64, f64) -> (f64, f64)| {
        let (mut values, mut baselines, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for (&x, &b) in mpps[a].iter().zip(&mpps[0]) {
            let (v, base) = f(x, b);
            values.push(v);
            baselines.push(base);
            ratios.push(v / base);
        }
        (median(values), median(baselines), median(ratios))
    };
    let mut out = Vec::new();
    for (i, p) in pipelines.iter().enumerate().skip(1) {
        let (value, baseline, ratio) = paired(i, &|x, b| (x, b));
        out.push(Figure {
            name: format!("live_{case}_{}", p.name),
            unit: "Mpps",
            value,
            baseline,
            ratio,
        });
        let (value, baseline, ratio) = paired(i, &|x, b| (ns(x), ns(b)));
        out.push(Figure {
            name: format!("live_{case}_{}_ns", p.name),
            unit: "ns/packet",
            value,
            baseline,
            ratio,
        });
    }
    let find = |name: &str| pipelines.iter().position(|p| p.name == name);
    if let (Some(m), Some(t)) = (find("monitor"), find("tap")) {
        let extras: Vec<(f64, f64)> = (0..mpps[0].len())
            .map(|r| {
                let bare = ns(mpps[0][r]);
                (ns(mpps[m][r]) - bare, ns(mpps[t][r]) - bare)
            })
            .collect();
        out.push(Figure {
            name: format!("live_{case}_monitor_vs_tap_extra_ns"),
            unit: "ns/packet",
            value: median(extras.iter().map(|e| e.0).collect()),
            baseline: median(extras.iter().map(|e| e.1).collect()),
            ratio: median(extras.iter().map(|e| e.0 / e.1).collect()),
        });
    }
    out
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

enum Attached {
    Bare(&'static str, XdpLinkId),
    Monitor(XdpLinkId),
}

fn loaded<'a>(programs: &'a mut Programs, name: &str) -> anyhow::Result<&'a mut Xdp> {
    let program: &mut Xdp = program_mut(programs.ebpf_mut(), name)?;
    if program.fd().is_err() {
        program.load().with_context(|| format!("loading {name}"))?;
    }
    Ok(program)
}

/// One pipeline, one bounded run: attach, generate, detach.
fn measure(programs: &mut Programs, pipeline: &Pipeline, rx: &Interface) -> anyhow::Result<f64> {
    // Native mode: the frames arrive as xdp_frames through the veth's
    // NAPI, as from a NIC driver.
    let attached = match &pipeline.receiver {
        Receiver::Bare(name) => {
            let id = loaded(programs, name)?.attach_to_if_index(rx.ifindex, XdpMode::Driver)?;
            Attached::Bare(name, id)
        }
        Receiver::Monitor(setup) => {
            programs.register(rx)?;
            if let Some(setup) = setup {
                setup(programs).context("the pipeline's setup")?;
            }
            Attached::Monitor(
                programs
                    .xdp()?
                    .attach_to_if_index(rx.ifindex, XdpMode::Driver)?,
            )
        }
    };
    let tap = if pipeline.tap {
        Some(tap::Tap::start(rx.ifindex, TAP_CPU)?)
    } else {
        None
    };
    let result = generate(programs, &rx.name);
    if let Some(tap) = &tap
        && tap.captured() == 0
    {
        eprintln!("handshake-monitor-bench: the AF_PACKET tap captured nothing");
    }
    drop(tap);
    match attached {
        Attached::Bare(name, id) => loaded(programs, name)?.detach(id)?,
        Attached::Monitor(id) => programs.xdp()?.detach(id)?,
    }
    result
}

/// Runs the generator within the bounds; returns Mpps received.
fn generate(programs: &mut Programs, rx_if: &str) -> anyhow::Result<f64> {
    let generator = loaded(programs, GENERATOR)?;
    let frame = template();
    let run = |repeat| {
        let opts = TestRunOptions {
            data_in: Some(&frame),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
            ..Default::default()
        };
        generator
            .test_run(opts)
            .context("live-frames BPF_PROG_TEST_RUN (needs Linux 5.18+)")
    };
    // Unmeasured: the page pool and the receiver's caches warm up.
    run(CHUNK / 10)?;
    let before = lab::rx_packets(rx_if)?;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < MAX_FRAMES && start.elapsed() < RUN_TIME {
        run(CHUNK)?;
        sent += u64::from(CHUNK);
    }
    let elapsed = start.elapsed();
    let received = lab::rx_packets(rx_if)?.wrapping_sub(before);
    if received == 0 {
        bail!("no generated frame arrived on {rx_if} ({sent} sent)");
    }
    Ok(f64::from(received) / elapsed.as_secs_f64() / 1e6)
}
