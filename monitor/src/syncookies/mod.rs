//! SYN cookies from XDP, the daemon's half: loads and attaches the TC
//! ingress program that turns valid cookie ACKs into connections, decides
//! which (interface, port) pairs answer SYNs with cookies (always, or
//! while a SynFlood alert fires on the interface), and writes that into the
//! port table the kernel programs read; an interface whose cookie
//! SYN-ACKs cannot leave (a veth peer without NAPI, or no cookie ACK ever
//! coming back) is left to the stack's own SYN cookies ([`guard`]). See
//! docs/mitigation.md.

pub mod config;
mod ethtool;
mod fallback;
pub mod guard;
pub mod metrics;
mod peer;
mod rtnl;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{SchedClassifier, TcAttachType, tc::TcAttachOptions},
};
use monitor_common::syncookie::{
    CookieEvent, PortState, SyncookieConfig, SyncookieCounters, SyncookieMode, VALIDATE_GRACE_SECS,
    port_key,
};
use thiserror::Error;

use crate::{
    detector::AlertBoard,
    interfaces::Interface,
    loader::{EbpfError, Programs, btf::KERNEL_BTF_PATH, kfunc, take_map},
};

pub const TC_INGRESS_PROGRAM: &str = "hs_tc_ingress";
const PORTS_MAP: &str = "SYNCOOKIE_PORTS";
const CONFIG_MAP: &str = "SYNCOOKIE_CONFIG";
const STATS_MAP: &str = "SYNCOOKIE_STATS";

/// The `[syncookies]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncookieSettings {
    pub mode: SyncookieMode,
    /// Protected ports; empty: the `--port` ports.
    pub ports: Vec<u16>,
    /// In `on-flood`, keep answering this long after the alert clears.
    pub hold: Duration,
}

impl Default for SyncookieSettings {
    fn default() -> Self {
        Self {
            mode: SyncookieMode::Off,
            ports: Vec::new(),
            hold: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Error)]
pub enum SyncookieError {
    #[error(
        "SYN cookies need the kfunc {} (Linux 6.9 or later, CONFIG_SYN_COOKIES) and the \
         running kernel's BTF has none; set syncookies.mode = \"off\"",
        kfunc::ASSIGN_REQSK
    )]
    NoKfunc,
    #[error("SYN cookies protect no port: list them in syncookies.ports or name them with --port")]
    NoPorts,
    #[error("SYN cookies: {0}")]
    Ebpf(#[from] EbpfError),
    #[error("the kernel rejected the SYN-cookie ACK program {TC_INGRESS_PROGRAM}")]
    Load(#[source] aya::programs::ProgramError),
    #[error("attaching the SYN-cookie ACK program to {iface} (TCX ingress) failed")]
    Attach {
        iface: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("writing the SYN-cookie port table")]
    Map(#[from] aya::maps::MapError),
}

#[derive(Debug, Default, Clone, Copy)]
struct PortEntry {
    written: PortState,
    last_flood: Option<Instant>,
    last_answer: Option<Instant>,
}

pub struct Syncookies {
    settings: SyncookieSettings,
    ports: HashMap<MapData, u32, PortState>,
    config: Array<MapData, SyncookieConfig>,
    stats: PerCpuArray<MapData, SyncookieCounters>,
    interfaces: Vec<(String, u32)>,
    entries: BTreeMap<(u32, u16), PortEntry>,
    /// Smallest MTU of the interfaces: the SYN-ACK's MSS is taken from it.
    mtu: u32,
    guards: fallback::Guards,
}

impl Syncookies {
    /// Takes the maps and, unless the mode is off, loads the ACK program
    /// and attaches it at TCX ingress on every interface (links held by
    /// the loaded object, like the other programs), and checks that each
    /// interface's cookie SYN-ACKs can leave it.
    pub fn start(
        programs: &mut Programs,
        settings: SyncookieSettings,
        interfaces: &[Interface],
        slots: Vec<(String, u32)>,
    ) -> Result<Self, SyncookieError> {
        if settings.mode != SyncookieMode::Off {
            if settings.ports.is_empty() {
                return Err(SyncookieError::NoPorts);
            }
            if kfunc::assign_reqsk_id(std::path::Path::new(KERNEL_BTF_PATH)).is_none() {
                return Err(SyncookieError::NoKfunc);
            }
            let program: &mut SchedClassifier = programs
                .ebpf_mut()
                .program_mut(TC_INGRESS_PROGRAM)
                .and_then(|p| p.try_into().ok())
                .ok_or(EbpfError::Missing {
                    kind: "TC program",
                    name: TC_INGRESS_PROGRAM,
                })?;
            crate::loader::load_retrying(|| program.load()).map_err(SyncookieError::Load)?;
            for iface in interfaces {
                program
                    .attach_with_options(
                        &iface.name,
                        TcAttachType::Ingress,
                        TcAttachOptions::TcxOrder(Default::default()),
                    )
                    .map_err(|source| SyncookieError::Attach {
                        iface: iface.name.clone(),
                        source,
                    })?;
            }
        }
        let guards = if settings.mode == SyncookieMode::Off {
            fallback::Guards::default()
        } else {
            fallback::Guards::start(interfaces, &slots)
        };
        let mut this = Self {
            settings,
            ports: take_map(programs.ebpf_mut(), PORTS_MAP)?,
            config: take_map(programs.ebpf_mut(), CONFIG_MAP)?,
            stats: take_map(programs.ebpf_mut(), STATS_MAP)?,
            interfaces: slots,
            entries: BTreeMap::new(),
            mtu: interfaces
                .iter()
                .map(|i| mtu(&i.name))
                .min()
                .unwrap_or(1500),
            guards,
        };
        this.write_config()?;
        this.tick(&[], Instant::now())?;
        Ok(this)
    }

    pub fn settings(&self) -> &SyncookieSettings {
        &self.settings
    }

    pub fn interfaces(&self) -> &[(String, u32)] {
        &self.interfaces
    }

    /// Raise the `SyncookieFallback` alert on `board` (the start guard's
    /// verdicts are recorded at once).
    pub fn set_alerts(&mut self, board: AlertBoard) {
        self.guards.set_alerts(board);
    }

    /// (interface, reason, fallbacks so far) of every interface in cookie
    /// mode.
    pub fn fallbacks(&self) -> impl Iterator<Item = (&str, guard::Reason, u64)> {
        self.guards.fallbacks()
    }

    fn write_config(&mut self) -> Result<(), aya::maps::MapError> {
        let cfg = SyncookieConfig {
            ports: self
                .entries
                .values()
                .filter(|e| e.written.validate != 0)
                .count() as u32,
            mss4: mss_for(self.mtu, 40),
            mss6: mss_for(self.mtu, 60),
            ..SyncookieConfig::default()
        };
        self.config.set(0, cfg, 0)
    }

    /// Whether `port` on interface `slot` answers SYNs with cookies now.
    pub fn active(&self, slot: u32, port: u16) -> bool {
        self.entries
            .get(&(slot, port))
            .is_some_and(|e| e.written.answer != 0)
    }

    /// Once a second: which ports answer SYNs, given where SynFlood fires.
    /// A port keeps validating cookie ACKs for [`VALIDATE_GRACE_SECS`]
    /// after it stops answering, so handshakes in flight complete.
    pub fn tick(&mut self, flooded: &[String], now: Instant) -> Result<(), SyncookieError> {
        let mut changed = false;
        for (name, slot) in self.interfaces.clone() {
            self.guard(slot, now);
            let allowed = self.guards.allows(slot);
            let flood = flooded.contains(&name);
            for &port in &self.settings.ports {
                let entry = self.entries.entry((slot, port)).or_default();
                let (mode, hold) = (self.settings.mode, self.settings.hold);
                let want = decide(entry, mode, hold, flood, allowed, now);
                let answer = want.answer != 0;
                if want == entry.written {
                    continue;
                }
                if (want.answer != 0) != (entry.written.answer != 0) {
                    tracing::warn!(
                        interface = %name,
                        port,
                        mode = self.settings.mode.name(),
                        "SYN cookies {} for this port",
                        if answer { "on: XDP answers its SYNs" } else { "off: its SYNs go to the stack again" }
                    );
                }
                let key = port_key(slot, port);
                if want == PortState::default() {
                    let _ = self.ports.remove(&key);
                } else {
                    self.ports.insert(key, want, 0)?;
                }
                entry.written = want;
                changed = true;
            }
        }
        if changed {
            self.write_config()?;
        }
        Ok(())
    }

    /// Feeds interface `slot`'s guard its cookie counters.
    fn guard(&mut self, slot: u32, now: Instant) {
        let Ok(counts) = self.counters(slot) else {
            return;
        };
        let answering = self
            .entries
            .iter()
            .any(|((s, _), e)| *s == slot && e.written.answer != 0);
        let sent = counts.events[CookieEvent::Sent as usize];
        let validated = counts.events[CookieEvent::Validated as usize];
        self.guards.tick(slot, sent, validated, answering, now);
    }

    /// The counters of interface `slot`, summed over CPUs.
    pub fn counters(&self, slot: u32) -> Result<SyncookieCounters, aya::maps::MapError> {
        let values = self.stats.get(&slot, 0)?;
        let mut sum = SyncookieCounters::default();
        for cpu in values.iter() {
            for (s, v) in sum.events.iter_mut().zip(cpu.events) {
                *s = s.wrapping_add(v);
            }
        }
        Ok(sum)
    }
}

/// An interface's MTU (1500 if unreadable).
fn mtu(iface: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1500)
}

/// The MSS an MTU allows past `headers` bytes of IP and TCP header, within
/// what a u16 holds and at least the IPv4 minimum.
fn mss_for(mtu: u32, headers: u32) -> u16 {
    mtu.saturating_sub(headers).clamp(536, 65_535) as u16
}

/// What a port's entry should say now, noting the flood and the answering
/// in `entry`: answer always, or while flooded and `hold` after, unless
/// the interface's guard does not allow it; validate while answering and
/// [`VALIDATE_GRACE_SECS`] after.
fn decide(
    entry: &mut PortEntry,
    mode: SyncookieMode,
    hold: Duration,
    flood: bool,
    allowed: bool,
    now: Instant,
) -> PortState {
    if flood {
        entry.last_flood = Some(now);
    }
    let held = entry
        .last_flood
        .is_some_and(|t| now.duration_since(t) < hold);
    let answer = match mode {
        SyncookieMode::Off => false,
        SyncookieMode::Always => true,
        SyncookieMode::OnFlood => flood || held,
    } && allowed;
    if answer {
        entry.last_answer = Some(now);
    }
    let grace = Duration::from_secs(VALIDATE_GRACE_SECS);
    let validate = entry
        .last_answer
        .is_some_and(|t| now.duration_since(t) < grace);
    PortState {
        answer: u32::from(answer),
        validate: u32::from(validate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(answer: u32, validate: u32) -> PortState {
        PortState { answer, validate }
    }

    #[test]
    fn on_flood_answers_while_flooded_then_holds_then_validates() {
        let (mut e, hold, t0) = (
            PortEntry::default(),
            Duration::from_secs(30),
            Instant::now(),
        );
        let at = |s| t0 + Duration::from_secs(s);
        let on = SyncookieMode::OnFlood;
        assert_eq!(decide(&mut e, on, hold, false, true, at(0)), state(0, 0));
        assert_eq!(decide(&mut e, on, hold, true, true, at(1)), state(1, 1));
        // The alert clears at 2: held until 1 + 30.
        assert_eq!(decide(&mut e, on, hold, false, true, at(30)), state(1, 1));
        assert_eq!(decide(&mut e, on, hold, false, true, at(31)), state(0, 1));
        // Cookies of the last answered second stay valid for the grace.
        let last = 30 + VALIDATE_GRACE_SECS;
        assert_eq!(
            decide(&mut e, on, hold, false, true, at(last - 1)),
            state(0, 1)
        );
        assert_eq!(decide(&mut e, on, hold, false, true, at(last)), state(0, 0));
    }

    #[test]
    fn mss_follows_the_mtu() {
        assert_eq!((mss_for(1500, 40), mss_for(1500, 60)), (1460, 1440));
        assert_eq!(mss_for(9000, 40), 8960);
        assert_eq!(mss_for(65536, 40), 65496);
        assert_eq!(mss_for(100, 40), 536);
    }

    #[test]
    fn always_and_off_ignore_the_alert() {
        let (hold, now) = (Duration::from_secs(30), Instant::now());
        let mut e = PortEntry::default();
        assert_eq!(
            decide(&mut e, SyncookieMode::Always, hold, false, true, now),
            state(1, 1)
        );
        let mut e = PortEntry::default();
        assert_eq!(
            decide(&mut e, SyncookieMode::Off, hold, true, true, now),
            state(0, 0)
        );
    }

    #[test]
    fn a_guard_that_disallows_stops_answering_and_keeps_the_grace() {
        let (hold, t0) = (Duration::from_secs(30), Instant::now());
        let at = |s| t0 + Duration::from_secs(s);
        let always = SyncookieMode::Always;
        let mut e = PortEntry::default();
        assert_eq!(
            decide(&mut e, always, hold, false, true, at(0)),
            state(1, 1)
        );
        assert_eq!(
            decide(&mut e, always, hold, false, false, at(1)),
            state(0, 1)
        );
        let end = VALIDATE_GRACE_SECS;
        assert_eq!(
            decide(&mut e, always, hold, false, false, at(end)),
            state(0, 0)
        );
        assert_eq!(
            decide(&mut e, always, hold, false, true, at(end + 1)),
            state(1, 1)
        );
        // In on-flood, a flood while disallowed still counts for the hold.
        let (on, mut e) = (SyncookieMode::OnFlood, PortEntry::default());
        assert_eq!(decide(&mut e, on, hold, true, false, at(0)), state(0, 0));
        assert_eq!(decide(&mut e, on, hold, false, true, at(1)), state(1, 1));
    }
}
