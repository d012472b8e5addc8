//! SIGHUP (`systemctl reload`): re-read the config file and apply, without
//! detaching anything or losing a counter, what can change while running:
//! the mitigation (mode, limits, allowlist, automatic blocks, capacity) and
//! the detector's thresholds. Settings that only a restart can change are
//! named in a warning. A config that does not load changes nothing.

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _};

use crate::{
    cli::{Cli, Command, RunArgs},
    config,
};

/// The settings `argv` and the config file give now, the command line
/// still winning over the file.
pub fn reread(running: &RunArgs) -> anyhow::Result<RunArgs> {
    let path = running
        .config
        .as_ref()
        .context("the daemon was started without --config: there is no file to re-read")?;
    let matches = Cli::command()
        .try_get_matches_from(&running.argv)
        .context("re-parsing the command line")?;
    let Command::Run(mut fresh) = Cli::from_arg_matches(&matches)?.command else {
        anyhow::bail!("the command line is not a `run` command line");
    };
    fresh.absorb_flags();
    let file = config::load(path)?;
    file.apply(&mut fresh, matches.subcommand_matches("run"));
    fresh.argv = running.argv.clone();
    Ok(*fresh)
}

/// Settings that differ between `old` and `new` but only change on a
/// restart.
pub fn restart_only_changes(old: &RunArgs, new: &RunArgs) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("monitor.interfaces", old.ifaces != new.ifaces);
    check("monitor.metrics_addr", old.metrics_addr != new.metrics_addr);
    check("monitor.log_level", old.log_level != new.log_level);
    check("monitor.events", old.events != new.events);
    check(
        "flows.table_size",
        old.flow_table_size != new.flow_table_size,
    );
    check(
        "flows.handshake_timeout_seconds",
        old.handshake_timeout != new.handshake_timeout,
    );
    check(
        "flows.inserts_per_sec_per_cpu",
        old.flow_inserts_per_sec != new.flow_inserts_per_sec,
    );
    check("ports.named", old.ports != new.ports);
    check("ports.top", old.top_ports != new.top_ports);
    check(
        "ports.top_interval_seconds",
        old.top_ports_interval != new.top_ports_interval,
    );
    check(
        "tls.hellos_per_sec_per_cpu",
        old.tls_hellos_per_sec != new.tls_hellos_per_sec,
    );
    check(
        "records.per_sec_per_cpu",
        old.records_per_sec != new.records_per_sec,
    );
    check(
        "alerts.alertmanager_url",
        old.alertmanager_url != new.alertmanager_url,
    );
    check(
        "alerts.resend_interval_seconds",
        old.alert_resend_interval != new.alert_resend_interval,
    );
    check("monitor.pin_dir", old.pins.dir != new.pins.dir);
    check("monitor.persist", old.pins.persist != new.pins.persist);
    check("monitor.web_config", old.web_config != new.web_config);
    check(
        "mitigation.control_socket",
        old.mitigation.control_socket != new.mitigation.control_socket,
    );
    check("syncookies", old.syncookies != new.syncookies);
    changed
}

/// `running` with the live settings of `new` taken over (the rest stays
/// what is really in force).
pub fn take_live(running: &mut RunArgs, new: &RunArgs) {
    let socket = running.mitigation.control_socket.clone();
    running.mitigation = new.mitigation.clone();
    running.mitigation.control_socket = socket;
    running.detector = new.detector;
    running.scan = new.scan;
}
