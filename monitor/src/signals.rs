//! The daemon's signals: SIGTERM and SIGINT end it, SIGHUP reloads the
//! config (see `reload`); and systemd's watchdog, pinged from the same
//! event loop so that a stuck loop is noticed.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};

use crate::{
    cli::RunArgs, detector::Detector, mitigation::Mitigation, notify_systemd::Notifier, reload,
};

/// What a reload reaches into.
pub struct Live {
    pub notifier: Notifier,
    pub mitigation: Arc<Mutex<Mitigation>>,
    pub detector: Arc<Mutex<Detector>>,
    pub status: String,
}

/// Until SIGTERM or SIGINT (returned); SIGHUP reloads the config file.
pub async fn serve(args: &mut RunArgs, live: &Live) -> anyhow::Result<&'static str> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok("SIGTERM"),
            _ = int.recv() => return Ok("SIGINT"),
            _ = hup.recv() => reload_config(args, live),
        }
    }
}

fn reload_config(args: &mut RunArgs, live: &Live) {
    live.notifier.reloading();
    match reload::reread(args) {
        Ok(new) => {
            let restart_only = reload::restart_only_changes(args, &new);
            let mut mitigation = live.mitigation.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(err) = mitigation.reconfigure(new.mitigation.clone()) {
                tracing::error!("applying the reloaded mitigation settings failed: {err}");
            }
            drop(mitigation);
            live.detector
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reconfigure(new.detector, new.scan);
            reload::take_live(args, &new);
            if !restart_only.is_empty() {
                tracing::warn!(
                    settings = ?restart_only,
                    "config reloaded, but these settings only change on a restart"
                );
            }
            tracing::info!(mitigation = new.mitigation.mode.name(), "config reloaded");
            live.notifier
                .ready(&format!("{}; config reloaded", live.status));
        }
        Err(err) => {
            tracing::error!("config reload failed, the running config stays in force: {err:#}");
            live.notifier
                .ready(&format!("{}; last reload failed: {err:#}", live.status));
        }
    }
}

/// Pings systemd's watchdog from the event loop, so a stuck loop is noticed.
pub async fn ping_watchdog(notifier: Notifier, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => notifier.notify("WATCHDOG=1"),
            _ = stop.changed() => return,
        }
    }
}
