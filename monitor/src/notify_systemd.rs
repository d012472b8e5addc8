//! systemd's notification protocol (`sd_notify`), without libsystemd: a
//! datagram to `$NOTIFY_SOCKET` per state change, and watchdog pings every
//! half of `$WATCHDOG_USEC` from the event loop. Outside systemd (no
//! `NOTIFY_SOCKET`) every call is a no-op.

use std::{
    os::{linux::net::SocketAddrExt as _, unix::net::UnixDatagram},
    time::Duration,
};

#[derive(Clone)]
pub struct Notifier {
    target: Option<std::os::unix::net::SocketAddr>,
}

impl Notifier {
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            match path.strip_prefix('@') {
                Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name).ok(),
                None => std::os::unix::net::SocketAddr::from_pathname(&path).ok(),
            }
        });
        Self { target }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (e.g. `READY=1\nSTATUS=...`); failures are logged
    /// once at debug level: systemd's absence must not stop the daemon.
    pub fn notify(&self, state: &str) {
        let Some(target) = &self.target else { return };
        let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), target));
        if let Err(err) = sent {
            tracing::debug!("sd_notify {state:?} failed: {err}");
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={status}"));
    }

    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=detaching");
    }

    pub fn reloading(&self) {
        self.notify("RELOADING=1\nSTATUS=reloading the config");
    }

    /// How often to ping the watchdog: half its timeout, when systemd set
    /// one for this process.
    pub fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Ok(pid) = std::env::var("WATCHDOG_PID")
            && pid.parse::<u32>().ok() != Some(std::process::id())
        {
            return None;
        }
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}
