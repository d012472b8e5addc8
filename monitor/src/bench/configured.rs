//! The monitor as `handshake-monitor run` sets it up, for the live
//! pipelines: settings from the daemon's own defaults
//! ([`RunArgs::defaults`], what `run` without flags parses to), changed
//! only where a pipeline names a flag, then the kernel-side steps of
//! `daemon::run` in its order: load with the flow settings, attach, TLS
//! budget, mitigation, SYN cookies. Each pipeline gets freshly loaded
//! programs, and the config maps the attached program reads are checked
//! through the kernel before and after, so nothing one pipeline set can
//! reach the next.

use anyhow::{Context as _, ensure};
use monitor_common::{
    mitigation::{MitigationConfig, Mode},
    syncookie::{SyncookieConfig, SyncookieMode},
};

use super::readback;
use crate::{
    cli::RunArgs,
    events::EventSink,
    interfaces::Interface,
    loader::{LoadSettings, Programs, XdpAttachMode},
    mitigation::{self, Mitigation},
    syncookies::Syncookies,
    tls_capture::CaptureMaps,
};

const MITIGATION_CONFIG_MAP: &str = mitigation::CONFIG_MAP;
const SYNCOOKIE_CONFIG_MAP: &str = "SYNCOOKIE_CONFIG";

/// What a monitor pipeline changes from the daemon's defaults, as the
/// flags that would do it.
#[derive(Debug, Clone)]
pub enum MonitorMode {
    /// `--mitigation off`.
    Off,
    /// No flag: the daemon's default (mitigation dry-run).
    Default,
    /// `--mitigation enforce`.
    Enforce,
    /// `--mitigation enforce` and `handshake-monitor block add CIDR`.
    EnforceBlocking(&'static str),
    /// `--syncookies always` for these ports (`[syncookies] ports`).
    Syncookies(Vec<u16>),
}

impl MonitorMode {
    fn apply(&self, args: &mut RunArgs) {
        args.mitigation.mode = match self {
            Self::Off => Mode::Off,
            Self::Enforce | Self::EnforceBlocking(_) => Mode::Enforce,
            Self::Default | Self::Syncookies(_) => args.mitigation.mode,
        };
        if let Self::Syncookies(ports) = self {
            args.syncookies.mode = SyncookieMode::Always;
            args.syncookies.ports = ports.clone();
        }
    }
}

/// The settings `handshake-monitor run` would run with, given `mode` and,
/// where a case sets it, `--flow-inserts-per-sec`.
pub fn daemon_args(mode: &MonitorMode, inserts_per_sec: Option<u64>) -> RunArgs {
    let mut args = RunArgs::defaults();
    if let Some(n) = inserts_per_sec {
        args.flow_inserts_per_sec = n;
    }
    mode.apply(&mut args);
    args
}

/// A loaded, attached and configured monitor; dropping it detaches.
pub struct Monitor {
    // Dropped first: they hold map fds of `programs`.
    _mitigation: Mitigation,
    _cookies: Syncookies,
    _capture: CaptureMaps,
    pub programs: Programs,
}

/// Fresh programs attached to `iface` as the daemon attaches them, still
/// unconfigured (the zeroed maps of a fresh load, checked).
pub struct Attached {
    pub programs: Programs,
    args: RunArgs,
    slot: u32,
    iface: Interface,
}

pub fn attach(
    iface: &Interface,
    mode: &MonitorMode,
    inserts_per_sec: Option<u64>,
) -> anyhow::Result<Attached> {
    let args = daemon_args(mode, inserts_per_sec);
    let mut programs = Programs::load_with(&LoadSettings::from(&args.flow_settings()))?;
    let attachment = programs.attach(iface)?;
    ensure!(
        attachment.xdp == XdpAttachMode::Native,
        "{} took XDP only in generic mode",
        iface.name
    );
    let fresh = kernel_view(&mut programs)?;
    ensure!(
        fresh.mitigation_mode == 0 && fresh.policy_entries == 0 && fresh.cookie_ports == 0,
        "freshly loaded programs are not in their zeroed state: {fresh:?}"
    );
    Ok(Attached {
        programs,
        args,
        slot: attachment.slot,
        iface: iface.clone(),
    })
}

impl Attached {
    /// The rest of the daemon's start: TLS budget, mitigation, cookies;
    /// then the kernel's view is checked against what was asked.
    pub fn configure(mut self, mode: &MonitorMode) -> anyhow::Result<Monitor> {
        let args = &self.args;
        let programs = &mut self.programs;
        programs.set_tls_budget(args.tls_hellos_per_sec, args.tls_hellos_per_sec.min(2_000))?;
        let capture = CaptureMaps::take(programs)?;
        let named = vec![(self.iface.name.clone(), self.slot)];
        let mut mitigation = Mitigation::start(
            programs,
            args.mitigation.clone(),
            named.clone(),
            EventSink::disabled(),
        )?;
        if let MonitorMode::EnforceBlocking(cidr) = mode {
            mitigation.block(cidr.parse()?, None)?;
        }
        let cookies = Syncookies::start(
            programs,
            args.syncookies.clone(),
            std::slice::from_ref(&self.iface),
            named,
        )?;
        let seen = kernel_view(programs)?;
        let want = KernelView {
            mitigation_mode: args.mitigation.mode as u32,
            policy_entries: u32::from(matches!(mode, MonitorMode::EnforceBlocking(_))),
            cookie_ports: match mode {
                MonitorMode::Syncookies(ports) => ports.len() as u32,
                _ => 0,
            },
        };
        ensure!(
            seen == want,
            "the attached program sees {seen:?}, the pipeline asked for {want:?}"
        );
        Ok(Monitor {
            _mitigation: mitigation,
            _cookies: cookies,
            _capture: capture,
            programs: self.programs,
        })
    }
}

/// The settings the attached XDP program judges SYNs by.
#[derive(Debug, PartialEq, Eq)]
struct KernelView {
    mitigation_mode: u32,
    policy_entries: u32,
    cookie_ports: u32,
}

fn kernel_view(programs: &mut Programs) -> anyhow::Result<KernelView> {
    let info = programs.xdp()?.info()?;
    let m: MitigationConfig =
        readback::first(&info, MITIGATION_CONFIG_MAP).context("reading back the mitigation")?;
    let c: SyncookieConfig =
        readback::first(&info, SYNCOOKIE_CONFIG_MAP).context("reading back the SYN cookies")?;
    Ok(KernelView {
        mitigation_mode: m.mode,
        policy_entries: m.policy_entries,
        cookie_ports: c.ports,
    })
}
