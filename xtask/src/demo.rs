//! `cargo xtask demo`: a guided minute for newcomers. Builds a two-namespace
//! lab, starts the daemon on the server end (mitigation enforcing), drives
//! real HTTP and TLS clients and a short bounded SYN flood from a spoofed
//! address, then shows what the daemon saw: its status, its blocklist,
//! metrics and events. Everything it starts is stopped, and the
//! namespaces deleted, on every way out.

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{env, lab::Lab, proc, setup};

pub fn run() -> Result<()> {
    run_with(|cmd| cmd)
}

/// [`run`], its build of the daemon adjusted by `build` (the test pipeline
/// passes its own compiler settings, so the daemon it built is reused).
pub fn run_with(build: impl Fn(&mut Command) -> &mut Command) -> Result<()> {
    if !env::is_root() {
        eprintln!("xtask demo: namespaces and BPF need root; re-running through sudo");
        let me = std::env::current_exe().context("locating the xtask binary")?;
        // `sudo -E` passes the build settings on to the demo's own build.
        return proc::run(build(Command::new("sudo").arg("-E").arg(me).arg("demo")));
    }
    setup::run()?;
    proc::run(build(&mut proc::cargo(["build", "-p", "monitor"])))?;
    let binary = env::target_dir().join("debug/handshake-monitor");
    let work = std::env::temp_dir().join(format!("hmdemo-{}", std::process::id()));
    let mut lab = Lab::new(work);
    lab.build()?;
    let started = Instant::now();
    lab.start_daemon(&binary, &[])?;
    lab.start_servers()?;
    section("real clients: 20 HTTP requests, 10 HTTPS requests, one TLS 1.2 handshake");
    lab.clients()?;
    section("a SYN flood: 20,000 SYNs from spoofed 198.18.77.100 at ~10,000/s (hping3)");
    lab.flood()?;
    // Two detector ticks: the alert fires, the offender is blocked.
    thread::sleep(Duration::from_secs(3));
    section("what the daemon saw: handshake-monitor status");
    lab.show(&binary, &["status"])?;
    section("its blocklist: handshake-monitor block list");
    lab.show(&binary, &["block", "list"])?;
    section("a few of its metrics (curl /metrics)");
    lab.metrics()?;
    section("the last events of its events log");
    lab.events()?;
    eprintln!(
        "\nxtask demo: done in {:.0?}; the lab is being torn down",
        started.elapsed()
    );
    Ok(())
}

fn section(title: &str) {
    println!("\n=== {title}");
}
