//! `flood_host`: what a random-source SYN flood costs the host the
//! monitor runs on, measured in place. Two namespaces and a veth pair
//! ([`lab`]), `python3 -m http.server` on 8080 behind the monitored end
//! ([`server`]), a paced, bounded SYN flood from the attacker end
//! ([`sender`]) with a real client beside it ([`client`]); first with no
//! monitor (an empty XDP program on the server end, which is also the
//! in-place baseline), then with the real `handshake-monitor` daemon at
//! its defaults and in each mode. Per run: the host's idle CPU, the
//! daemon's CPU, the attached program's ns per packet (bpf stats), the
//! client's median and p99 latency.

mod client;
mod lab;
mod netstat;
mod path;
mod sender;
mod server;

use std::{
    net::SocketAddr,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use aya::programs::{Xdp, XdpMode};
use monitor_common::{
    mitigation::{MitigationConfig, Mode},
    syncookie::SyncookieConfig,
};

use self::{
    client::Latencies, lab::FloodLab, netstat::LossCounters, path::PathCost, path::PathStats,
    sender::FloodReport, server::HttpServer,
};
use super::{
    Figure,
    daemon_proc::Daemon,
    inplace::{RunStats, Stats, program_info},
    live::lab::{enter, pin_to_cpu, run_in},
    procstat, readback,
};
use crate::loader::Programs;

/// The user's hping3 `--flood` rate on this kind of machine: below the
/// default insert budget (100,000 per CPU), so every SYN is tracked.
const FLOOD_RATE: u64 = 90_000;
const FLOOD_TIME: Duration = Duration::from_secs(6);
/// The client alone, before the floods of a round.
const QUIET_TIME: Duration = Duration::from_secs(2);
/// Between runs: the SYN-ACK retransmits and the daemon's exit settle.
const SETTLE: Duration = Duration::from_secs(1);
const SERVER_PORT: u16 = 8080;
/// Inside the server namespace: no other daemon's port.
const METRICS_ADDR: &str = "127.0.0.1:9879";
/// The lead's targets: daemon CPU (% of one core) under this flood.
const DAEMON_CPU_TARGET: f64 = 5.0;
/// Each round runs every mode for [`FLOOD_TIME`]: at most this many.
pub const MAX_ROUNDS: usize = 2;
const SENDER_CPU: usize = 0;

/// One of the daemon's runs: a name, the flags on top of its defaults,
/// and what its attached program must then see (checked through the
/// kernel before the flood).
struct DaemonMode {
    name: &'static str,
    flags: &'static [&'static str],
    mitigation_mode: Mode,
    cookie_ports: u32,
}

const MODES: &[DaemonMode] = &[
    DaemonMode {
        name: "default",
        flags: &[],
        mitigation_mode: Mode::DryRun,
        cookie_ports: 0,
    },
    DaemonMode {
        name: "off",
        flags: &["--mitigation", "off"],
        mitigation_mode: Mode::Off,
        cookie_ports: 0,
    },
    DaemonMode {
        name: "enforce",
        flags: &["--mitigation", "enforce"],
        mitigation_mode: Mode::Enforce,
        cookie_ports: 0,
    },
    // Above the insert budget: the regime of a flood bigger than the
    // budget (here, the budget is made smaller than the flood).
    DaemonMode {
        name: "default_over_budget",
        flags: &["--flow-inserts-per-sec", "1000"],
        mitigation_mode: Mode::DryRun,
        cookie_ports: 0,
    },
    DaemonMode {
        name: "off_over_budget",
        flags: &["--mitigation", "off", "--flow-inserts-per-sec", "1000"],
        mitigation_mode: Mode::Off,
        cookie_ports: 0,
    },
    DaemonMode {
        name: "syncookies",
        flags: &["--syncookies", "always", "--port", "8080"],
        mitigation_mode: Mode::DryRun,
        cookie_ports: 1,
    },
];

/// One run's measurements.
struct Run {
    idle_percent: f64,
    daemon_cpu: f64,
    inplace_ns: f64,
    /// Every program of ours per flood SYN (empty for the quiet runs).
    path: PathCost,
    latency: Latencies,
    flood: FloodReport,
    flow_entries: f64,
    losses: LossCounters,
}

fn server_addr() -> SocketAddr {
    SocketAddr::from((lab::SERVER_ADDR, SERVER_PORT))
}

/// Loads (once) and attaches `hs_bench_pass` of `programs` to `ifname` in
/// `ns`, native mode; returns the link to detach.
fn attach_pass(
    programs: &mut Programs,
    ns: &str,
    ifname: &str,
) -> anyhow::Result<aya::programs::xdp::XdpLinkId> {
    let program: &mut Xdp = super::program_mut(programs.ebpf_mut(), "hs_bench_pass")?;
    if program.fd().is_err() {
        program.load().context("loading hs_bench_pass")?;
    }
    let name = ifname.to_string();
    let id = run_in(ns, move || -> anyhow::Result<_> {
        let index = super::live::lab::ifindex(&name)?;
        Ok(program.attach_to_if_index(index, XdpMode::Driver)?)
    })??;
    Ok(id)
}

/// The flood and the client at once, for [`FLOOD_TIME`] (client only for
/// `quiet`), around the counters of program `prog_id` and the daemon.
fn measure(
    lab: &FloodLab,
    prog_id: u32,
    daemon: Option<&Daemon>,
    quiet: bool,
) -> anyhow::Result<Run> {
    let duration = if quiet { QUIET_TIME } else { FLOOD_TIME };
    let host = procstat::HostCpu::now()?;
    let cpu = daemon.map(Daemon::cpu_secs).transpose()?;
    let prog = RunStats::of_id(prog_id)?;
    let path = PathStats::start(prog_id)?;
    let losses = LossCounters::read(&lab.attacker_ns, &lab.attacker_if)?;
    let wall = Instant::now();
    let (latency, flood) = thread::scope(|scope| -> anyhow::Result<_> {
        let client = scope.spawn(|| -> anyhow::Result<Latencies> {
            enter(&lab.attacker_ns)?;
            Ok(client::run(server_addr(), duration))
        });
        let flood = if quiet {
            FloodReport { sent: 0, secs: 0.0 }
        } else {
            scope
                .spawn(|| -> anyhow::Result<FloodReport> {
                    enter(&lab.attacker_ns)?;
                    pin_to_cpu(SENDER_CPU);
                    sender::flood(lab::SERVER_ADDR, SERVER_PORT, FLOOD_RATE, duration)
                })
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))?
        };
        let latency = client
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        Ok((latency, flood))
    })?;
    let secs = wall.elapsed().as_secs_f64();
    let idle_percent = procstat::HostCpu::now()?.idle_percent_since(host);
    let daemon_cpu = match (daemon, cpu) {
        (Some(d), Some(before)) => 100.0 * (d.cpu_secs()? - before) / secs,
        _ => f64::NAN,
    };
    let (inplace_ns, _) = RunStats::of_id(prog_id)?.since(prog);
    let path = if quiet {
        PathCost::default()
    } else {
        path.per_syn(flood.sent)?
    };
    let losses = LossCounters::read(&lab.attacker_ns, &lab.attacker_if)?.since(losses);
    let flow_entries = match daemon {
        Some(d) => d.scrape()?.flow_entries,
        None => f64::NAN,
    };
    Ok(Run {
        idle_percent,
        daemon_cpu,
        inplace_ns,
        path,
        latency,
        flood,
        flow_entries,
        losses,
    })
}

/// No monitor: the empty program on the server end.
fn without_monitor(lab: &FloodLab, empty: &mut Programs, quiet: bool) -> anyhow::Result<Run> {
    let link = attach_pass(empty, &lab.server_ns, &lab.server_if)?;
    let prog_id = lab.server_xdp_prog_id()?;
    let run = measure(lab, prog_id, None, quiet);
    let program: &mut Xdp = super::program_mut(empty.ebpf_mut(), "hs_bench_pass")?;
    program.detach(link)?;
    run
}

fn with_daemon(lab: &FloodLab, mode: &DaemonMode) -> anyhow::Result<Run> {
    let daemon = Daemon::start(&lab.server_ns, &lab.server_if, METRICS_ADDR, mode.flags)?;
    let prog_id = lab.server_xdp_prog_id()?;
    let info = program_info(prog_id)?;
    let mitigation: MitigationConfig = readback::first(&info, crate::mitigation::CONFIG_MAP)?;
    let cookies: SyncookieConfig = readback::first(&info, "SYNCOOKIE_CONFIG")?;
    let seen = (mitigation.mode, mitigation.policy_entries, cookies.ports);
    let want = (mode.mitigation_mode as u32, 0, mode.cookie_ports);
    ensure!(
        seen == want,
        "the daemon's program sees (mitigation mode, policy entries, cookie ports) = {seen:?}, \
         {want:?} expected"
    );
    measure(lab, prog_id, Some(&daemon), false)
    // Dropping the daemon stops it; its programs detach with it.
}

pub fn run(rounds: usize) -> anyhow::Result<Vec<Figure>> {
    let lab = FloodLab::new().context("creating the flood lab")?;
    let _stats = Stats::enable()?;
    // The attacker end's empty program, attached for the whole section.
    let mut peer = Programs::load()?;
    attach_pass(&mut peer, &lab.attacker_ns, &lab.attacker_if)?;
    // A second load: its hs_bench_pass has run counters of its own.
    let mut empty = Programs::load()?;
    let _server = HttpServer::start(&lab.server_ns, server_addr(), &lab.attacker_ns)?;
    let rounds = rounds.clamp(1, MAX_ROUNDS);
    let mut quiet = Vec::new();
    // Index 0: no monitor; then MODES.
    let mut runs: Vec<Vec<Run>> = (0..=MODES.len()).map(|_| Vec::new()).collect();
    for round in 0..rounds {
        quiet.push(without_monitor(&lab, &mut empty, true).context("flood_host quiet")?);
        let mut order: Vec<usize> = (0..=MODES.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            thread::sleep(SETTLE);
            // For chasing one mode's figures: `HM_FLOOD_MODES=none,syncookies`.
            if let Ok(only) = std::env::var("HM_FLOOD_MODES") {
                let name = if i == 0 { "none" } else { MODES[i - 1].name };
                if !only.split(',').any(|m| m == name) {
                    continue;
                }
            }
            let run = if i == 0 {
                without_monitor(&lab, &mut empty, false).context("flood_host none")?
            } else {
                let mode = &MODES[i - 1];
                with_daemon(&lab, mode).with_context(|| format!("flood_host {}", mode.name))?
            };
            runs[i].push(run);
        }
    }
    Ok(figures(&quiet, &runs))
}

fn figures(quiet: &[Run], runs: &[Vec<Run>]) -> Vec<Figure> {
    let none = &runs[0];
    let pairs = |of: &[Run], base: &[Run], f: &dyn Fn(&Run) -> f64| -> Vec<(f64, f64)> {
        of.iter().zip(base).map(|(r, b)| (f(r), f(b))).collect()
    };
    let p50 = |r: &Run| r.latency.quantile(0.5);
    let p99 = |r: &Run| r.latency.quantile(0.99);
    let idle = |r: &Run| r.idle_percent;
    let mut out = vec![
        // The flood alone, against the quiet client of the same round.
        paired(
            "flood_host_none_host_idle".into(),
            "% idle",
            pairs(none, quiet, &idle),
        ),
        paired(
            "flood_host_none_latency_p50_ms".into(),
            "ms",
            pairs(none, quiet, &p50),
        ),
        paired(
            "flood_host_none_latency_p99_ms".into(),
            "ms",
            pairs(none, quiet, &p99),
        ),
    ];
    let flood_figures = |out: &mut Vec<Figure>, name: &str, mine: &[Run]| {
        out.push(paired(
            format!("flood_host_{name}_syn_rate"),
            "SYN/s",
            mine.iter()
                .map(|r| (r.flood.rate(), FLOOD_RATE as f64))
                .collect(),
        ));
        out.push(paired(
            format!("flood_host_{name}_client_failures"),
            "requests",
            mine.iter()
                .map(|r| (r.latency.failed as f64, r.latency.ms.len() as f64))
                .collect(),
        ));
        // The tail's cause: a request that lost its SYN waits 1 s.
        out.push(paired(
            format!("flood_host_{name}_client_syn_retransmits"),
            "SYNs",
            mine.iter()
                .map(|r| {
                    (
                        r.losses.client_syn_retransmits as f64,
                        r.latency.ms.len() as f64,
                    )
                })
                .collect(),
        ));
        out.push(paired(
            format!("flood_host_{name}_ring_drops"),
            "frames",
            mine.iter()
                .map(|r| (r.losses.ring_drops as f64, r.flood.sent as f64))
                .collect(),
        ));
    };
    flood_figures(&mut out, "none", none);
    out.push(paired(
        "flood_host_none_inplace_ns".into(),
        "ns/packet",
        none.iter().map(|r| (r.inplace_ns, r.inplace_ns)).collect(),
    ));
    for (i, mode) in MODES.iter().enumerate() {
        let (name, mine) = (mode.name, &runs[i + 1]);
        if mine.is_empty() {
            continue;
        }
        out.push(paired(
            format!("flood_host_{name}_daemon_cpu"),
            "% of a core",
            mine.iter()
                .map(|r| (r.daemon_cpu, DAEMON_CPU_TARGET))
                .collect(),
        ));
        out.push(paired(
            format!("flood_host_{name}_host_idle"),
            "% idle",
            pairs(mine, none, &idle),
        ));
        out.push(paired(
            format!("flood_host_{name}_inplace_ns"),
            "ns/packet",
            pairs(mine, none, &|r| r.inplace_ns),
        ));
        path::figures(
            &mut out,
            name,
            &pairs(mine, none, &|r| r.path.total()),
            mine,
        );
        out.push(paired(
            format!("flood_host_{name}_latency_p50_ms"),
            "ms",
            pairs(mine, none, &p50),
        ));
        out.push(paired(
            format!("flood_host_{name}_latency_p99_ms"),
            "ms",
            pairs(mine, none, &p99),
        ));
        let table = f64::from(crate::cli::RunArgs::defaults().flow_table_size);
        out.push(paired(
            format!("flood_host_{name}_flow_entries"),
            "flows",
            mine.iter().map(|r| (r.flow_entries, table)).collect(),
        ));
        flood_figures(&mut out, name, mine);
    }
    out
}

/// [`super::paired`] for the figures built here from collected pairs.
fn paired(name: String, unit: &'static str, pairs: Vec<(f64, f64)>) -> Figure {
    super::paired(&name, unit, &pairs)
}
