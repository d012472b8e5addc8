//! handshake-monitor daemon: loads the kernel programs, attaches them to the
//! monitored interfaces, and serves what they count as Prometheus metrics.

pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cpu;
pub mod daemon;
pub mod detector;
pub mod events;
pub mod flow_metrics;
pub mod flows;
pub mod half_open;
pub mod http;
pub mod interfaces;
pub mod kernel_state;
#[cfg(test)]
mod layers_tests;
pub mod loader;
pub mod metrics;
pub mod mitigation;
pub mod notify_systemd;
pub mod port_metrics;
pub mod ports;
pub mod preflight;
pub mod privilege;
pub mod promfam;
pub mod records;
pub mod reload;
pub mod replay;
pub mod signals;
pub mod status;
pub mod sweep;
pub mod syncookies;
pub mod tls;
pub mod tls_capture;
pub mod watch;
pub mod webconfig;

/// Version reported by `--version` and `handshake_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
