//! A live case's figures from its rounds' samples: throughput and
//! whole-path ns against the case's baseline pipeline, the in-place ns of
//! each attached program against `bare_pass`'s, the monitor's extra cost
//! against a tap's, and the table's fill where the case fills it.

use anyhow::Context as _;

use super::{LiveCase, Pipeline, Receiver, Sample, Table};
use crate::bench::{Figure, median};

/// value/baseline/ratio medians over rounds of `f(sample, baseline)`.
fn paired(
    samples: &[Sample],
    baselines: &[Sample],
    f: impl Fn(&Sample, &Sample) -> (f64, f64),
) -> (f64, f64, f64) {
    let (mut values, mut bases, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for (s, b) in samples.iter().zip(baselines) {
        let (v, base) = f(s, b);
        values.push(v);
        bases.push(base);
        ratios.push(v / base);
    }
    (median(values), median(bases), median(ratios))
}

fn figure(name: String, unit: &'static str, (value, baseline, ratio): (f64, f64, f64)) -> Figure {
    Figure {
        name,
        unit,
        value,
        baseline,
        ratio,
    }
}

pub fn case(
    case: &LiveCase,
    pipelines: &[&Pipeline],
    samples: &[Vec<Sample>],
) -> anyhow::Result<Vec<Figure>> {
    let name = case.name;
    let ns = |mpps: f64| 1e3 / mpps;
    let find = |wanted: &str| pipelines.iter().position(|p| p.name == wanted);
    let pass = pipelines
        .iter()
        .position(|p| matches!(p.receiver, Receiver::Bare("hs_bench_pass")) && !p.tap)
        .with_context(|| format!("live case {name} has no bare_pass pipeline"))?;
    let mut out = Vec::new();
    for (i, p) in pipelines.iter().enumerate().skip(1) {
        let mine = &samples[i];
        out.push(figure(
            format!("live_{name}_{}", p.name),
            "Mpps",
            paired(mine, &samples[0], |s, b| (s.mpps, b.mpps)),
        ));
        out.push(figure(
            format!("live_{name}_{}_ns", p.name),
            "ns/packet",
            paired(mine, &samples[0], |s, b| (ns(s.mpps), ns(b.mpps))),
        ));
        if i != pass {
            out.push(figure(
                format!("live_{name}_{}_inplace_ns", p.name),
                "ns/packet",
                paired(mine, &samples[pass], |s, b| (s.inplace_ns, b.inplace_ns)),
            ));
        }
    }
    if let (Some(m), Some(t)) = (find("default"), find("tap")) {
        let extras: Vec<(f64, f64)> = (0..samples[0].len())
            .map(|r| {
                let bare = ns(samples[0][r].mpps);
                (ns(samples[m][r].mpps) - bare, ns(samples[t][r].mpps) - bare)
            })
            .collect();
        out.push(Figure {
            name: format!("live_{name}_monitor_vs_tap_extra_ns"),
            unit: "ns/packet",
            value: median(extras.iter().map(|e| e.0).collect()),
            baseline: median(extras.iter().map(|e| e.1).collect()),
            ratio: median(extras.iter().map(|e| e.0 / e.1).collect()),
        });
    }
    if case.table == Table::Full {
        let entries: Vec<f64> = samples
            .iter()
            .flatten()
            .filter_map(|s| s.entries)
            .map(|e| e as f64)
            .collect();
        if !entries.is_empty() {
            let capacity = f64::from(crate::cli::RunArgs::defaults().flow_table_size);
            let value = median(entries);
            out.push(Figure {
                name: format!("live_{name}_table_entries"),
                unit: "flows",
                value,
                baseline: capacity,
                ratio: value / capacity,
            });
        }
    }
    Ok(out)
}
