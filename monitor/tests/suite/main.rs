//! The integration suite: one test binary, a module per area.
//!
//! One binary instead of one per file: each used to link the whole daemon
//! library (38 links of tens of MB in every fresh build), and cargo ran the
//! binaries one after another, so a binary's slowest test held up every
//! test of the next. Here every test of every area shares one pool of test
//! threads; each lab test builds its own namespaces, so they may overlap.
//!
//! Pick an area by its module path: `cargo xtask test -- replay::`, or a
//! single test by name. Most tests need root: run them through
//! `cargo xtask test`, which runs this binary through `sudo -E` when needed.

#[allow(
    dead_code,
    reason = "the support module serves every area; not each area uses every helper"
)]
mod support;

mod alertmanager;
mod blocklist;
mod bypass;
mod config;
mod deploy_grafana;
mod deploy_kubernetes;
mod deploy_prometheus;
mod deploy_systemd;
mod detector;
mod e2e;
mod errors;
mod kernel_state;
mod lifecycle;
mod limits;
mod mitigation;
mod persist;
mod ports;
mod records;
mod replay;
mod replay_behaviour;
mod replay_clock;
mod replay_files;
mod status;
mod syncookies;
mod syncookies_guard;
mod systemd_reload;
mod testrun;
mod testrun_bypass;
mod testrun_flows;
mod testrun_hostile;
mod testrun_mitigation;
mod testrun_scan;
mod testrun_syncookies;
mod testrun_tables;
mod testrun_tls;
mod tls;
mod watch;
mod web_config;
