//! handshake-monitor daemon: loads the kernel programs, attaches them to the
//! monitored interfaces, and serves what they count as Prometheus metrics.

pub mod attach;
pub mod bench;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detector;
pub mod ebpf;
pub mod events;
pub mod flow_metrics;
pub mod flows;
pub mod half_open;
pub mod http;
pub mod interfaces;
pub mod kernel_state;
pub mod links;
pub mod map_batch;
pub mod metrics;
pub mod mitigation;
pub mod notify_systemd;
pub mod pins;
pub mod port_metrics;
pub mod ports;
pub mod preflight;
pub mod privilege;
pub mod promfam;
pub mod reload;
pub mod signals;
pub mod status;
pub mod syncookies;
pub mod tls;
pub mod tls_capture;
pub mod webconfig;

/// The kernel object built by `build.rs` from `monitor-ebpf`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// Version reported by `--version` and `handshake_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
