//! Command line: `handshake-monitor run [--iface IF]... [--metrics-addr
//! ADDR:PORT] [--log-level L]`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, builder::TypedValueParser as _};
use monitor_common::mitigation::Mode;

use crate::mitigation::DEFAULT_CONTROL_SOCKET;

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
    Run(Box<RunArgs>),
    /// Check a config file and print the settings it results in.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Remove everything a daemon pinned (links, so programs detach, and
    /// maps, so counters and blocks are lost). Refused while a daemon runs.
    Detach {
        /// The pin directory the daemon used.
        #[arg(long, value_name = "DIR", default_value = crate::loader::pins::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// The daemon's control socket (to check that none runs).
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
        control_socket: PathBuf,
    },
    /// Summarise the running daemon: interfaces and attach modes,
    /// mitigation mode, firing alerts, top ports, drops.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
        control_socket: PathBuf,
    },
    /// The status, refreshed once a second, with rates.
    Top {
        /// Stop after N refreshes (default: until interrupted).
        #[arg(long, value_name = "N")]
        iterations: Option<u64>,
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
        control_socket: PathBuf,
    },
    /// Stream the running daemon's handshake records as they are made,
    /// filtered (docs/records.md#watch); until interrupted.
    Watch(WatchArgs),
    /// Run capture files (pcap, pcapng) through the kernel programs, with
    /// the daemon's outputs: events, metrics, a summary (docs/replay.md).
    /// Attaches nothing.
    Replay(Box<crate::replay::args::ReplayArgs>),
    /// Add, remove or list blocks in the running daemon's blocklist.
    Block {
        #[command(subcommand)]
        action: BlockAction,
        /// The running daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET, global = true)]
        control_socket: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BlockAction {
    /// Block new connections (SYNs) from CIDR (or a single address).
    Add {
        cidr: String,
        /// How long the block lasts, e.g. 90s, 10m, 2h, 1d; default: until
        /// removed.
        #[arg(long, value_name = "DURATION", value_parser = crate::mitigation::cidr::parse_duration)]
        ttl: Option<Duration>,
    },
    /// Remove the block of exactly CIDR.
    Remove { cidr: String },
    /// List the blocks in force, with their remaining time and reason.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// The filters and the form, as sent to the daemon.
    #[command(flatten)]
    pub request: crate::watch::filter::WatchRequest,
    /// The running daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
    pub control_socket: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// TOML config file; flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Interface to monitor; repeat for several. Default: the interface
    /// of the default route.
    #[arg(long = "iface", value_name = "IF")]
    pub ifaces: Vec<String>,

    /// TLS and basic authentication for the metrics endpoint, in the web
    /// config format of node_exporter (tls_server_config, basic_auth_users).
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,

    /// Address and port of the /metrics and /healthz endpoint.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: SocketAddr,

    /// Entries of the flow table (established connections), and about as
    /// many slots of the half-open table (handshakes from SYN to final ACK).
    #[arg(long, value_name = "N", default_value_t = crate::flows::DEFAULT_TABLE_SIZE,
          value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub flow_table_size: u32,

    /// Seconds after its SYN a handshake that has not completed counts as
    /// timed_out (default: Linux's SYN-ACK retry span, 63 s).
    #[arg(long, value_name = "SECONDS", default_value = "63", value_parser = parse_seconds)]
    pub handshake_timeout: Duration,

    /// Flows each CPU may start tracking per second; SYNs beyond that are
    /// counted but not tracked, so a SYN flood cannot churn the table.
    #[arg(long, value_name = "N", default_value_t = crate::flows::DEFAULT_INSERTS_PER_SEC_PER_CPU,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub flow_inserts_per_sec: u64,

    /// A port whose handshakes get series of their own (`port` label);
    /// repeat for several. Local port for the server role, remote port for
    /// the client role.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// How many more ports, the busiest by SYNs, get series of their own;
    /// every other port is counted as `other` in its IANA class.
    #[arg(long, value_name = "N", default_value_t = crate::ports::DEFAULT_TOP_PORTS,
          value_parser = clap::value_parser!(u16).range(0..=29).map(usize::from))]
    pub top_ports: usize,

    /// Seconds between re-choosing the automatic top ports.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub top_ports_interval: Duration,

    /// Write one JSON line per TLS ClientHello and ServerHello, and one
    /// record per handshake and per connection close, to PATH (`-` for
    /// stdout); see docs/events.md.
    #[arg(long, value_name = "PATH")]
    pub events: Option<String>,

    /// TLS hello captures each CPU may start per second; hellos beyond are
    /// counted (`handshake_tls_capture_events_total{result="budget"}`), not
    /// captured, so a flood of hellos cannot flood the daemon.
    #[arg(long, value_name = "N", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub tls_hellos_per_sec: u64,

    /// Handshake records (completions, resets, closes) each CPU's programs
    /// may write per second; beyond, records are counted
    /// (`handshake_records_total{result="over_budget"}`), not written.
    #[arg(long, value_name = "N", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub records_per_sec: u64,

    /// Push alerts to this Alertmanager (v2 API), e.g.
    /// http://127.0.0.1:9093.
    #[arg(long, value_name = "URL")]
    pub alertmanager_url: Option<String>,

    /// Seconds between re-sends of a firing alert to Alertmanager.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub alert_resend_interval: Duration,

    /// SYN-flood detection thresholds: set in the config file's
    /// `[detector]` section.
    #[arg(skip)]
    pub detector: crate::detector::signal::FloodThresholds,

    /// Port-scan detection thresholds: the config file's `[detector]`
    /// section too.
    #[arg(skip)]
    pub scan: crate::detector::scan::ScanThresholds,

    /// SYN-flood mitigation: off, dry-run (judge and count, drop nothing)
    /// or enforce (drop what the blocklist and the rate limits refuse).
    #[arg(long = "mitigation", value_name = "MODE", default_value = "dry-run",
          value_parser = crate::mitigation::config::parse_mode)]
    pub mitigation_mode: Mode,

    /// SYN cookies from XDP for the protected ports (`[syncookies] ports`,
    /// default the `--port` ports): off, on-flood (while a SynFlood alert
    /// fires on the interface) or always.
    #[arg(long = "syncookies", value_name = "MODE", default_value = "off",
          value_parser = crate::syncookies::config::parse_mode)]
    pub syncookies_mode: monitor_common::syncookie::SyncookieMode,

    /// The rest of the SYN-cookie settings: the config file's
    /// `[syncookies]` section.
    #[arg(skip)]
    pub syncookies: crate::syncookies::SyncookieSettings,

    /// Unix socket `handshake-monitor block`, `status`, `top` and `watch`
    /// talk to (owner-only).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
    pub control_socket: PathBuf,

    /// bpffs directory for pinned state (the blocklist always; with
    /// --persist every map and link); an empty value pins nothing.
    #[arg(long, value_name = "DIR", value_parser = clap::value_parser!(String))]
    pub pin_dir: Option<String>,

    /// Pin every map and the XDP/TC links, so a restart or upgrade keeps
    /// enforcing and counting with no gap; programs stay attached after
    /// exit (`handshake-monitor detach` removes them).
    #[arg(long)]
    pub persist: bool,

    /// The pin settings the flags and the config file give.
    #[arg(skip)]
    pub pins: crate::loader::pins::PinSettings,

    /// The rest of the mitigation settings: the config file's
    /// `[mitigation]` section.
    #[arg(skip)]
    pub mitigation: crate::mitigation::MitigationSettings,

    /// The process's command line, for re-reading the config on SIGHUP
    /// with the same flags winning.
    #[arg(skip)]
    pub argv: Vec<String>,

    /// Log level: error, warn, info, debug or trace (or a tracing filter
    /// directive such as `monitor=debug`).
    #[arg(long, value_name = "L", default_value = "info", value_parser = parse_log_level)]
    pub log_level: String,
}

impl RunArgs {
    /// Copies the mitigation flags into the mitigation settings (before the
    /// config file fills in the rest).
    pub fn absorb_flags(&mut self) {
        self.mitigation.mode = self.mitigation_mode;
        self.syncookies.mode = self.syncookies_mode;
        self.mitigation.control_socket = self.control_socket.clone();
        if let Some(dir) = &self.pin_dir {
            self.pins.dir = (!dir.is_empty()).then(|| PathBuf::from(dir));
            self.pins.explicit = true;
        }
        self.pins.persist = self.persist;
    }

    pub fn port_settings(&self) -> crate::ports::PortSettings {
        let mut configured = self.ports.clone();
        configured.sort_unstable();
        configured.dedup();
        crate::ports::PortSettings {
            configured,
            top_n: self.top_ports,
            rebalance_interval: self.top_ports_interval,
        }
    }

    /// Refuses more `--port` ports than have series slots.
    pub fn check_ports(&self) -> anyhow::Result<()> {
        let configured = self.port_settings().configured.len();
        let limit = monitor_common::ports::NAMED_PORT_SLOTS as usize;
        if configured > limit {
            anyhow::bail!(
                "{configured} ports given with --port; at most {limit} ports can have series of their own"
            );
        }
        Ok(())
    }

    pub fn record_settings(&self) -> crate::records::RecordSettings {
        crate::records::RecordSettings {
            per_sec_per_cpu: self.records_per_sec,
            named_ports: self.port_settings().configured,
        }
    }

    pub fn flow_settings(&self) -> crate::flows::FlowSettings {
        crate::flows::FlowSettings {
            table_size: self.flow_table_size,
            handshake_timeout: self.handshake_timeout,
            inserts_per_sec_per_cpu: self.flow_inserts_per_sec,
            insert_burst: crate::flows::DEFAULT_INSERT_BURST.min(self.flow_inserts_per_sec),
        }
    }
}

pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.1..=3600.0).contains(&seconds) {
        return Err("must be between 0.1 and 3600 seconds".into());
    }
    Ok(Duration::from_secs_f64(seconds))
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

impl RunArgs {
    /// Every setting at its built-in default.
    pub fn defaults() -> Self {
        match Cli::try_parse_from(["handshake-monitor", "run"]) {
            Ok(Cli {
                command: Command::Run(mut args),
            }) => {
                args.absorb_flags();
                *args
            }
            _ => unreachable!("`run` without flags always parses"),
        }
    }
}
