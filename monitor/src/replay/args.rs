//! `handshake-monitor replay FILE... [--local CIDR]... [--events PATH]
//! [--metrics-out PATH] [--speed N | --as-fast-as-possible]`.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use monitor_common::mitigation::Mode;

use crate::{cli::RunArgs, config, mitigation::cidr::Cidr};

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Capture files, pcap or pcapng, replayed one after the other in the
    /// order given.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The monitored host's network or address: frames towards it go
    /// through the XDP program, frames from it through TC egress; repeat
    /// for several. Default: the addresses that answer SYNs in the capture
    /// (docs/replay.md).
    #[arg(long = "local", value_name = "CIDR")]
    pub local: Vec<Cidr>,

    /// Write the TLS hellos, handshake records and alerts as JSON lines to
    /// PATH (`-`: stdout), as `run --events` does.
    #[arg(long, value_name = "PATH")]
    pub events: Option<String>,

    /// Write the final metrics, in the Prometheus text format, to PATH
    /// (`-`: stdout). Default: printed to stdout after the events, unless
    /// the events go to stdout.
    #[arg(long, value_name = "PATH")]
    pub metrics_out: Option<String>,

    /// Replay at N times the capture's own pace (1: as captured). The
    /// outputs do not depend on it: the programs read the capture's clock.
    #[arg(long, value_name = "N", conflicts_with = "as_fast_as_possible",
          value_parser = parse_speed)]
    pub speed: Option<f64>,

    /// Replay without pauses (the default).
    #[arg(long)]
    pub as_fast_as_possible: bool,

    /// The name the metrics and events give the replayed interface.
    #[arg(long, value_name = "NAME", default_value = "replay")]
    pub iface_name: String,

    /// TOML config file of `run` (docs/config.md): its thresholds, limits,
    /// ports and mitigation settings apply to the replay.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// As `run --handshake-timeout`.
    #[arg(long, value_name = "SECONDS", value_parser = crate::cli::parse_seconds)]
    pub handshake_timeout: Option<Duration>,

    /// As `run --port`; repeat for several.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// As `run --mitigation`: the verdicts are the programs' own, counted
    /// (dry-run, the default) or taken (enforce: the frame's verdict is
    /// XDP_DROP, and the stack would never have seen it).
    #[arg(long = "mitigation", value_name = "MODE",
          value_parser = crate::mitigation::config::parse_mode)]
    pub mitigation: Option<Mode>,

    /// Log level, as `run --log-level`.
    #[arg(long, value_name = "L", default_value = "warn")]
    pub log_level: String,
}

impl ReplayArgs {
    /// The daemon's settings for the replay: the built-in defaults, then
    /// the config file, then the flags given here.
    pub fn settings(&self) -> anyhow::Result<RunArgs> {
        let mut run = RunArgs::defaults();
        if let Some(path) = &self.config {
            config::load(path)?.apply(&mut run, None);
        }
        if let Some(timeout) = self.handshake_timeout {
            run.handshake_timeout = timeout;
        }
        if !self.ports.is_empty() {
            run.ports = self.ports.clone();
        }
        if let Some(mode) = self.mitigation {
            run.mitigation.mode = mode;
        }
        run.check_ports()?;
        Ok(run)
    }

    /// Capture seconds per wall-clock second, or none for no pauses.
    pub fn pace(&self) -> Option<f64> {
        if self.as_fast_as_possible {
            return None;
        }
        self.speed
    }
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(speed) if speed.is_finite() && speed > 0.0 => Ok(speed),
        _ => Err(format!("{text:?} is not a positive speed factor")),
    }
}
