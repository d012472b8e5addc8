//! `cargo xtask soak [--minutes N]`: a bounded long run (default 10
//! minutes) of mixed real traffic with SYN floods switched on and off, in
//! the demo's lab. It checks what the product promises over time:
//! - memory stays flat (resident size at the end within 10% + 4 MiB of
//!   the size after the first minute);
//! - no data is lost beyond the counted drops (no events-log line dropped,
//!   no TLS capture lost to a full ring buffer, every real request
//!   answered);
//! - the daemon exits cleanly and leaves no program attached and no BPF
//!   program or map of its own loaded.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    env,
    lab::{self, Lab},
    proc, setup,
};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// A flood every this often, for a third of it.
const FLOOD_PERIOD: Duration = Duration::from_secs(60);

pub fn run(args: &[String]) -> Result<()> {
    let minutes = parse_minutes(args)?;
    if !env::is_root() {
        eprintln!("xtask soak: namespaces and BPF need root; re-running through sudo");
        let me = std::env::current_exe().context("locating the xtask binary")?;
        let mut cmd = std::process::Command::new("sudo");
        cmd.arg("-E").arg(me).arg("soak").args(args);
        return proc::run(&mut cmd);
    }
    setup::run()?;
    proc::run(&mut proc::cargo(["build", "--release", "-p", "monitor"]))?;
    let binary = env::target_dir().join("release/handshake-monitor");
    let (progs_before, maps_before) = (bpf_objects("prog")?, bpf_objects("map")?);
    let work = std::env::temp_dir().join(format!("hmsoak-{}", std::process::id()));
    let mut lab = Lab::new(work);
    lab.build()?;
    lab.start_daemon(&binary, &[])?;
    lab.start_servers()?;
    let pid = lab.daemon_pid().context("no daemon pid")?;

    let total = Duration::from_secs(minutes * 60);
    let started = Instant::now();
    let mut next_sample = started;
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut requests = 0usize;
    while started.elapsed() < total {
        let into_period = started.elapsed().as_secs() % FLOOD_PERIOD.as_secs();
        if into_period < FLOOD_PERIOD.as_secs() / 3 {
            // hping3 bounded in count (and by `timeout`), about 2 s.
            lab.flood()?;
        }
        lab.clients_n(10, 5)?;
        requests += 16;
        if Instant::now() >= next_sample {
            let rss = rss_kib(pid)?;
            samples.push((started.elapsed().as_secs(), rss));
            eprintln!(
                "xtask soak: {:>4} s: RSS {} KiB, {requests} requests answered",
                started.elapsed().as_secs(),
                rss
            );
            next_sample += SAMPLE_EVERY;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let metrics = lab.scrape()?;
    let status = lab.stop_daemon()?;
    let attached = lab::in_ns_ok(
        lab::SERVER_NS,
        "sh",
        &[
            "-c",
            &format!("ip link show dev {} | grep -q xdp", lab::SERVER_IF),
        ],
    );
    drop(lab);
    let (progs_after, maps_after) = (bpf_objects("prog")?, bpf_objects("map")?);

    let mut failures = Vec::new();
    if !status.success() {
        failures.push(format!("the daemon exited with {status}"));
    }
    if attached {
        failures.push("an XDP program was still attached after exit".into());
    }
    if progs_after > progs_before || maps_after > maps_before {
        failures.push(format!(
            "BPF objects leaked: programs {progs_before} -> {progs_after}, maps {maps_before} -> {maps_after}"
        ));
    }
    let baseline = samples
        .iter()
        .find(|(secs, _)| *secs >= 60)
        .or(samples.first())
        .map(|(_, rss)| *rss)
        .unwrap_or(0);
    let last = samples.last().map(|(_, rss)| *rss).unwrap_or(0);
    if last > baseline + baseline / 10 + 4096 {
        failures.push(format!(
            "memory grew: {baseline} KiB after the first minute, {last} KiB at the end"
        ));
    }
    for (name, labels) in [
        ("handshake_events_total", "result=\"dropped\""),
        (
            "handshake_tls_capture_events_total",
            "result=\"ringbuf_full\"",
        ),
    ] {
        let lost = sample(&metrics, name, labels);
        if lost != Some(0.0) {
            failures.push(format!("{name}{{{labels}}} is {lost:?}, not 0"));
        }
    }
    println!(
        "soak: {minutes} min, {requests} requests answered, RSS {baseline} -> {last} KiB, \
         programs {progs_before} -> {progs_after}, maps {maps_before} -> {maps_after}"
    );
    if !failures.is_empty() {
        bail!("soak failed:\n  {}", failures.join("\n  "));
    }
    println!("soak: passed");
    Ok(())
}

fn parse_minutes(args: &[String]) -> Result<u64> {
    match args {
        [] => Ok(10),
        [flag, n] if flag == "--minutes" => {
            let n: u64 = n.parse().context("--minutes takes a whole number")?;
            if !(1..=120).contains(&n) {
                bail!("--minutes must be between 1 and 120");
            }
            Ok(n)
        }
        _ => bail!("usage: cargo xtask soak [--minutes N]"),
    }
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("the daemon is gone")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// How many of the daemon's BPF programs (`hs_*`) or maps (its
/// distinctive names) the kernel holds: other BPF users on the machine do
/// not count.
fn bpf_objects(kind: &str) -> Result<usize> {
    let out = std::process::Command::new("bpftool")
        .args([kind, "list", "--json"])
        .output()
        .context("running bpftool")?;
    let list: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let ours = |name: &str| match kind {
        "prog" => name.starts_with("hs_"),
        _ => OUR_MAPS.contains(&name),
    };
    Ok(list
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("name").and_then(|n| n.as_str()))
                .filter(|name| ours(name))
                .count()
        })
        .unwrap_or(0))
}

/// Maps of the daemon's object with names no other tool is likely to use
/// (as the kernel shows them: at most 15 characters).
const OUR_MAPS: &[&str] = &[
    "FLOWS",
    "HANDSHAKES",
    "HM_POLICY",
    "HM_PROTECTED",
    "TLS_EVENTS",
    "MITIGATION_STAT",
    "IFINDEX_SLOTS",
];

fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
