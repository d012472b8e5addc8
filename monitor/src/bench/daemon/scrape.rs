//! The real daemon, started in the bench namespace on the receiving veth:
//! its resident memory once loaded and attached at the default settings,
//! then `/metrics` scrape time over HTTP after live frames have filled its
//! per-port series (every named port slot configured, the SYN flood
//! spread over 64 destination ports, so the top-N and `other` series
//! exist too).

use std::{thread, time::Duration};

use crate::bench::{
    daemon_proc::{Daemon, Scrape},
    live::{Traffic, drive, lab::Lab},
};

const METRICS_ADDR: &str = "127.0.0.1:9879";
const SCRAPES: usize = 20;

pub struct DaemonFigures {
    pub rss_loaded_mib: f64,
    pub rss_after_mib: f64,
    /// The daemon's CPU use while the kernel handled the flood and the mix
    /// (and for the settling seconds after), in percent of one core.
    pub cpu_percent: f64,
    /// Scrape times right after start (empty flow table), and after the
    /// traffic.
    pub idle_scrape_ms: Vec<f64>,
    pub scrape_ms: Vec<f64>,
    pub series: usize,
    pub flow_entries: f64,
}

/// `SCRAPES` timed scrapes after an untimed one; (times in ms, the first).
fn scrapes(daemon: &Daemon) -> anyhow::Result<(Vec<f64>, Scrape)> {
    let first = daemon.scrape()?;
    let mut times = Vec::with_capacity(SCRAPES);
    for _ in 0..SCRAPES {
        times.push(daemon.scrape()?.time.as_secs_f64() * 1e3);
    }
    Ok((times, first))
}

pub fn measure(lab: &Lab) -> anyhow::Result<DaemonFigures> {
    let ports: Vec<String> = (0..monitor_common::ports::NAMED_PORT_SLOTS)
        .flat_map(|i| ["--port".to_string(), (8000 + i).to_string()])
        .collect();
    let mut flags = vec!["--top-ports-interval", "1"];
    flags.extend(ports.iter().map(String::as_str));
    let daemon = Daemon::start(&lab.ns, &lab.rx_if, METRICS_ADDR, &flags)?;
    let rss_loaded_mib = daemon.rss_mib()?;
    let (idle_scrape_ms, _) = scrapes(&daemon)?;
    let (cpu_before, wall) = (daemon.cpu_secs()?, std::time::Instant::now());
    drive(lab, Traffic::SynFlood)?;
    drive(lab, Traffic::Mixed)?;
    // A flow sweep and a top-ports refresh (1 s each) turn the traffic
    // into series.
    thread::sleep(Duration::from_millis(2500));
    let cpu_percent = 100.0 * (daemon.cpu_secs()? - cpu_before) / wall.elapsed().as_secs_f64();
    let (scrape_ms, first) = scrapes(&daemon)?;
    Ok(DaemonFigures {
        rss_loaded_mib,
        rss_after_mib: daemon.rss_mib()?,
        cpu_percent,
        idle_scrape_ms,
        scrape_ms,
        series: first.series,
        flow_entries: first.flow_entries,
    })
}
