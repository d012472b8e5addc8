//! `cargo xtask bench`: per-packet cost of the XDP program by packet
//! class, through BPF_PROG_TEST_RUN, each figure paired with an empty XDP
//! program run on the same frames in the same process, so the machine's
//! noise cancels in the difference and the ratio.

mod cases;

use std::{fmt::Write as _, time::Duration};

use anyhow::Context as _;
use aya::programs::{TestRun as _, TestRunOptions, Xdp};

pub use cases::{Case, cases};

use crate::{ebpf::Programs, flows::FlowSettings, interfaces::Interface, tls_capture::CaptureMaps};

const BASELINE_PROGRAM: &str = "hs_bench_pass";

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub unit: &'static str,
    pub value: f64,
    pub baseline: f64,
    pub ratio: f64,
}

/// Mean kernel-reported time per run of `program` over `frames`, one
/// test run each (so every frame is a new key where the case wants it).
fn mean_ns(program: &Xdp, frames: &[Vec<u8>], repeat: u32) -> anyhow::Result<f64> {
    let mut total = Duration::ZERO;
    for frame in frames {
        // With `repeat`, the kernel reports the mean duration of one run.
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..Default::default()
        };
        total += program
            .test_run(opts)
            .context("BPF_PROG_TEST_RUN")?
            .duration;
    }
    Ok(total.as_nanos() as f64 / frames.len() as f64)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs every case `rounds` times; each round is a fresh load of the
/// programs (fresh maps), the case's program runs paired with the baseline.
pub fn run(rounds: usize) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for case in cases() {
        let (mut values, mut baselines, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let settings = FlowSettings {
                inserts_per_sec_per_cpu: case.inserts_per_sec,
                ..FlowSettings::default()
            };
            let mut programs = Programs::load_with(&settings)?;
            programs.register(&Interface {
                name: "lo".into(),
                ifindex: 1,
            })?;
            programs.set_tls_budget(1_000_000, 1_000_000)?;
            // Events are read by nobody here: keep the ring buffer from
            // filling by draining it between runs.
            let mut capture = CaptureMaps::take(&mut programs)?;
            let baseline_program: &mut Xdp = programs
                .ebpf_mut()
                .program_mut(BASELINE_PROGRAM)
                .context("the baseline program is missing")?
                .try_into()?;
            baseline_program.load()?;
            for frame in &case.warmup {
                let opts = TestRunOptions {
                    data_in: Some(frame),
                    ..Default::default()
                };
                programs.xdp()?.test_run(opts)?;
            }
            let value = mean_ns(programs.xdp()?, &case.frames, case.repeat)?;
            while capture.ring.next().is_some() {}
            let baseline_program: &Xdp = programs
                .ebpf_mut()
                .program(BASELINE_PROGRAM)
                .context("the baseline program is missing")?
                .try_into()?;
            let baseline = mean_ns(baseline_program, &case.frames, case.repeat)?;
            values.push(value);
            baselines.push(baseline);
            ratios.push(value / baseline);
        }
        figures.push(Figure {
            name: format!("xdp_{}", case.name),
            unit: "ns/packet",
            value: median(values),
            baseline: median(baselines),
            ratio: median(ratios),
        });
    }
    Ok(figures)
}

pub fn table(figures: &[Figure]) -> String {
    let mut out = format!(
        "{:<28} {:>10} {:>10} {:>10} {:>7}\n",
        "benchmark", "value", "baseline", "delta", "ratio"
    );
    for f in figures {
        let _ = writeln!(
            out,
            "{:<28} {:>10.1} {:>10.1} {:>10.1} {:>7.2}   {}",
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
                .num("value", format!("{:.2}", f.value))
                .num("baseline", format!("{:.2}", f.baseline))
                .num("ratio", format!("{:.3}", f.ratio))
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
