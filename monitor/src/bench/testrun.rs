//! Per-packet cost through BPF_PROG_TEST_RUN: the monitor's XDP and TC
//! programs on each packet class, paired with an empty program of the same
//! type run on the same frames in the same round.

use std::time::Duration;

use anyhow::Context as _;
use aya::programs::{ProgramError, SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp};

use super::{Figure, cases::Case, median, programs_for_bench};

const XDP_BASELINE: &str = "hs_bench_pass";
const TC_BASELINE: &str = "hs_bench_tc_pass";

/// Which of the monitor's programs a figure measures.
#[derive(Clone, Copy)]
enum Hook {
    Xdp,
    Tc,
}

impl Hook {
    const fn prefix(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::Tc => "tc",
        }
    }
}

/// Mean kernel-reported time per run of `program` over `frames`, one
/// test run each (so every frame is a new key where the case wants it).
fn mean_ns<P>(program: &P, frames: &[Vec<u8>], repeat: u32) -> anyhow::Result<f64>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut total = Duration::ZERO;
    for frame in frames {
        // With `repeat`, the kernel reports the mean duration of one run.
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..Default::default()
        };
        let run: Result<TestRunResult, ProgramError> = program.test_run(opts);
        total += run.context("BPF_PROG_TEST_RUN")?.duration;
    }
    Ok(total.as_nanos() as f64 / frames.len() as f64)
}

fn warm<P>(program: &P, frames: &[Vec<u8>]) -> anyhow::Result<()>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    for frame in frames {
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..Default::default()
        };
        program.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    }
    Ok(())
}

/// One round of one case: fresh maps, the monitor's program, then the
/// empty one. Returns (value, baseline).
fn round(case: &Case, hook: Hook) -> anyhow::Result<(f64, f64)> {
    let (mut programs, mut capture) = programs_for_bench(case.inserts_per_sec)?;
    if let Some(setup) = case.setup {
        setup(&mut programs)?;
    }
    let ebpf = programs.ebpf_mut();
    let value = match hook {
        Hook::Xdp => {
            let program: &mut Xdp = super::program_mut(ebpf, crate::loader::XDP_PROGRAM)?;
            warm(program, &case.warmup)?;
            mean_ns(program, &case.frames, case.repeat)?
        }
        Hook::Tc => {
            let program: &mut SchedClassifier =
                super::program_mut(ebpf, crate::loader::TC_PROGRAM)?;
            warm(program, &case.warmup)?;
            mean_ns(program, &case.frames, case.repeat)?
        }
    };
    // Events are read by nobody here: keep the ring buffer from filling.
    while capture.ring.next().is_some() {}
    let baseline = match hook {
        Hook::Xdp => {
            let program: &mut Xdp = super::program_mut(ebpf, XDP_BASELINE)?;
            program.load().context("loading the XDP baseline")?;
            mean_ns(program, &case.frames, case.repeat)?
        }
        Hook::Tc => {
            let program: &mut SchedClassifier = super::program_mut(ebpf, TC_BASELINE)?;
            program.load().context("loading the TC baseline")?;
            mean_ns(program, &case.frames, case.repeat)?
        }
    };
    Ok((value, baseline))
}

fn measure(cases: &[Case], hook: Hook, rounds: usize) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for case in cases {
        let (mut values, mut baselines, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let (value, baseline) =
                round(case, hook).with_context(|| format!("{}_{}", hook.prefix(), case.name))?;
            values.push(value);
            baselines.push(baseline);
            ratios.push(value / baseline);
        }
        figures.push(Figure {
            name: format!("{}_{}", hook.prefix(), case.name),
            unit: "ns/packet",
            value: median(values),
            baseline: median(baselines),
            ratio: median(ratios),
        });
    }
    Ok(figures)
}

/// XDP ingress per packet class.
pub fn xdp(rounds: usize) -> anyhow::Result<Vec<Figure>> {
    measure(&super::cases(), Hook::Xdp, rounds)
}

/// TC egress per packet class: the same frames, as the stack would hand
/// them to the egress hook.
pub fn tc(rounds: usize) -> anyhow::Result<Vec<Figure>> {
    measure(&super::cases(), Hook::Tc, rounds)
}
