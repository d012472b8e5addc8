//! Command line: `handshake-monitor run [--iface IF]... [--metrics-addr
//! ADDR:PORT] [--log-level L]`.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

/// Default metrics port: outside the ports of Prometheus (9090-9094),
/// node_exporter (9100), blackbox (9115) and the other common exporters.
pub const DEFAULT_METRICS_PORT: u16 = 9879;
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9879";

#[derive(Debug, Parser)]
#[command(
    name = "handshake-monitor",
    version,
    about = "Watches TCP handshakes from XDP and TC and exports them as Prometheus metrics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to the interfaces and serve metrics until SIGINT/SIGTERM.
    Run(RunArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Interface to monitor; repeat for several. Default: the interface
    /// of the default route.
    #[arg(long = "iface", value_name = "IF")]
    pub ifaces: Vec<String>,

    /// Address and port of the /metrics and /healthz endpoint.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: SocketAddr,

    /// Log level: error, warn, info, debug or trace (or a tracing filter
    /// directive such as `monitor=debug`).
    #[arg(long, value_name = "L", default_value = "info", value_parser = parse_log_level)]
    pub log_level: String,
}

fn parse_log_level(level: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| level.to_string())
        .map_err(|_| {
            "use error, warn, info, debug, trace or a tracing filter such as monitor=debug".into()
        })
}

/// Logs go to stderr, where journald picks them up; no colours when stderr
/// is not a terminal. `level` was validated by the argument parser.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}
