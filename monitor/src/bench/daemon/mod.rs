//! Daemon-side figures: ring-buffer drain rate, ClientHello parsing on one
//! core, `/metrics` scrape time and resident memory. Where no baseline
//! program exists, the baseline is the target and the ratio is
//! value/target (see docs/benchmarks.md).

mod hello;
mod ring;
mod scrape;
mod sweep;

use super::{Figure, median};

const RING_TARGET_EVENTS_PER_SEC: f64 = 1e6;
const SCRAPE_TARGET_MS: f64 = 50.0;
const RSS_TARGET_MIB: f64 = 64.0;

/// A figure from per-round (value, baseline) pairs.
fn against_target(name: &str, unit: &'static str, value: f64, target: f64) -> Figure {
    Figure {
        name: name.into(),
        unit,
        value,
        baseline: target,
        ratio: value / target,
    }
}

pub fn run(rounds: usize) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let (mut rates, mut lost, mut events) = (Vec::new(), 0u64, 0u64);
    for _ in 0..rounds {
        let (rate, l, n) = ring::round()?;
        rates.push(rate);
        lost += l;
        events += n;
    }
    figures.push(against_target(
        "ringbuf_drain",
        "events/s",
        median(rates),
        RING_TARGET_EVENTS_PER_SEC,
    ));
    // Baseline: the events of every round; ratio: the share lost.
    figures.push(Figure {
        name: "ringbuf_drain_lost".into(),
        unit: "events",
        value: lost as f64,
        baseline: events as f64,
        ratio: lost as f64 / events.max(1) as f64,
    });
    let hellos: Vec<(f64, f64)> = (0..rounds)
        .map(|_| hello::round())
        .collect::<Result<_, _>>()?;
    figures.push(hello::figure(&hellos));
    // One daemon start per bench run: starting it takes seconds.
    let lab = super::live::lab::Lab::new()?;
    let daemon = scrape::measure(&lab)?;
    eprintln!(
        "handshake-monitor-bench: /metrics served {} series; {} flows in the table",
        daemon.series, daemon.flow_entries
    );
    figures.push(against_target(
        "metrics_scrape_idle",
        "ms",
        median(daemon.idle_scrape_ms),
        SCRAPE_TARGET_MS,
    ));
    figures.push(against_target(
        "metrics_scrape",
        "ms",
        median(daemon.scrape_ms),
        SCRAPE_TARGET_MS,
    ));
    // Baseline: the table's default capacity; ratio: how full it was.
    figures.push(against_target(
        "metrics_scrape_flow_entries",
        "flows",
        daemon.flow_entries,
        f64::from(crate::flows::DEFAULT_TABLE_SIZE),
    ));
    figures.push(against_target(
        "daemon_rss_loaded",
        "MiB",
        daemon.rss_loaded_mib,
        RSS_TARGET_MIB,
    ));
    figures.push(against_target(
        "daemon_rss_after_traffic",
        "MiB",
        daemon.rss_after_mib,
        RSS_TARGET_MIB,
    ));
    // No target in the issue: against one whole core.
    figures.push(against_target(
        "daemon_cpu_during_traffic",
        "% of a core",
        daemon.cpu_percent,
        100.0,
    ));
    let full = sweep::measure()?;
    eprintln!(
        "handshake-monitor-bench: full tables: {} half-open slots used, {} flows",
        full.half_open_used, full.flows
    );
    figures.push(against_target(
        "sweep_full_tables_scan",
        "ms",
        full.scan_ms,
        1000.0,
    ));
    figures.push(against_target(
        "sweep_full_tables_count",
        "ms",
        full.count_ms,
        5000.0,
    ));
    figures.push(against_target(
        "sweep_full_tables_cpu",
        "% of a core",
        full.cpu_percent(),
        5.0,
    ));
    Ok(figures)
}
