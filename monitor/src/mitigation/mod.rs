//! SYN-flood mitigation, the daemon's half: writes the mode and limits the
//! XDP program applies, keeps the policy table (allowlist from the config,
//! blocks from operators and from the flood detector), expires blocks, and
//! picks offenders to block while a flood alert fires.

pub mod auto;
pub mod cidr;
pub mod client;
pub mod config;
pub mod control;
pub mod metrics;
pub mod policy;

use std::{path::PathBuf, time::Duration};

use aya::maps::{Array, MapData, PerCpuArray};
use monitor_common::mitigation::{
    Gcra, MitigationConfig, MitigationCounters, Mode, OffenderSketch, PolicyEntry, kind, origin,
};

use self::{
    cidr::{Cidr, format_duration},
    policy::{Listed, PolicyError, PolicyTable},
};
use crate::loader::pins::POLICY_MAP;

const POLICY_FILTER_MAP: &str = "HM_POLICY_FILTER";
use crate::{
    clock::monotonic_ns,
    events::{EventSink, JsonObject},
    loader::{EbpfError, Programs},
    tls_capture::wallclock::{rfc3339, wall_time},
};

pub const CONFIG_MAP: &str = "MITIGATION_CONFIG";
const STATS_MAP: &str = "MITIGATION_STATS";
const OFFENDERS_MAP: &str = "OFFENDERS";

pub const DEFAULT_CONTROL_SOCKET: &str = "/run/handshake-monitor/control.sock";

/// Everything the mitigation is configured with (config file `[mitigation]`).
#[derive(Debug, Clone, PartialEq)]
pub struct MitigationSettings {
    pub mode: Mode,
    /// SYNs per second one source may send, on each CPU.
    pub source_syn_rate: u64,
    pub source_syn_burst: u64,
    /// SYNs per second one /24 (IPv4) or /64 (IPv6) may send, on each CPU.
    pub prefix_syn_rate: u64,
    pub prefix_syn_burst: u64,
    /// A source that completed a handshake is spared the limits this long.
    pub protect_completed_for: Duration,
    /// Sources never judged.
    pub allowlist: Vec<Cidr>,
    /// Block offenders automatically while a SynFlood alert fires.
    pub auto_block: bool,
    pub auto_block_ttl: Duration,
    /// Refused SYNs in one second that make a source an offender.
    pub auto_block_min_refused: u64,
    /// At most this many automatic blocks at once.
    pub auto_block_max_entries: usize,
    /// At most this many blocks of any origin.
    pub blocklist_capacity: usize,
    pub control_socket: PathBuf,
}

impl Default for MitigationSettings {
    fn default() -> Self {
        Self {
            mode: Mode::DryRun,
            source_syn_rate: 200,
            source_syn_burst: 400,
            prefix_syn_rate: 2000,
            prefix_syn_burst: 4000,
            protect_completed_for: Duration::from_secs(600),
            allowlist: Vec::new(),
            auto_block: true,
            auto_block_ttl: Duration::from_secs(600),
            auto_block_min_refused: 50,
            auto_block_max_entries: 1024,
            blocklist_capacity: 4096,
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
        }
    }
}

impl MitigationSettings {
    fn kernel_config(&self) -> MitigationConfig {
        MitigationConfig {
            mode: self.mode as u32,
            policy_entries: 0,
            source: Gcra::new(self.source_syn_rate, self.source_syn_burst),
            prefix: Gcra::new(self.prefix_syn_rate, self.prefix_syn_burst),
            protect_ns: self.protect_completed_for.as_nanos() as u64,
            epoch: 1,
            _pad: 0,
        }
    }
}

/// Block changes since start, for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockTotals {
    pub added_manual: u64,
    pub added_auto: u64,
    pub removed: u64,
    pub expired: u64,
    /// Offenders not blocked because the automatic cap or the blocklist
    /// was full.
    pub auto_skipped_full: u64,
}

pub struct Mitigation {
    settings: MitigationSettings,
    policy: PolicyTable,
    config: Array<MapData, MitigationConfig>,
    current: MitigationConfig,
    stats: PerCpuArray<MapData, MitigationCounters>,
    offenders: PerCpuArray<MapData, OffenderSketch>,
    totals: BlockTotals,
    interfaces: Vec<(String, u32)>,
    events: EventSink,
}

impl Mitigation {
    /// Takes the maps, installs the allowlist (lifting blocks it overlaps)
    /// and writes the mode and limits. Blocks pinned by an earlier run stay.
    pub fn start(
        programs: &mut Programs,
        settings: MitigationSettings,
        interfaces: Vec<(String, u32)>,
        events: EventSink,
    ) -> Result<Self, EbpfError> {
        let policy = PolicyTable::new(
            programs.take_map(POLICY_MAP)?,
            programs.take_map(POLICY_FILTER_MAP)?,
            settings.blocklist_capacity,
        )
        .map_err(|source| EbpfError::Map {
            map: POLICY_FILTER_MAP,
            source,
        })?;
        let mut mitigation = Self {
            current: settings.kernel_config(),
            settings,
            policy,
            config: programs.take_map(CONFIG_MAP)?,
            stats: programs.take_map(STATS_MAP)?,
            offenders: programs.take_map(OFFENDERS_MAP)?,
            totals: BlockTotals::default(),
            interfaces,
            events,
        };
        let map_err = |source| EbpfError::Map {
            map: POLICY_MAP,
            source,
        };
        let allowlist = mitigation.settings.allowlist.clone();
        let lifted = mitigation
            .policy
            .set_allowlist(&allowlist, monotonic_ns())
            .map_err(map_err)?;
        for listed in lifted {
            tracing::warn!(cidr = %listed.cidr, "lifted a block left by an earlier run: the allowlist now covers it");
        }
        let kept = mitigation.policy.blocks().map_err(map_err)?.len();
        if kept > 0 {
            tracing::info!(blocks = kept, "kept the blocks of an earlier run (pinned)");
        }
        mitigation.write_config().map_err(|source| EbpfError::Map {
            map: CONFIG_MAP,
            source,
        })?;
        Ok(mitigation)
    }

    /// New settings (a config reload): mode, limits, allowlist, automatic
    /// blocks and capacity apply at once; blocks in force stay (those the
    /// new allowlist overlaps are lifted). Pin directory and control socket
    /// are the caller's to keep.
    pub fn reconfigure(&mut self, settings: MitigationSettings) -> Result<(), aya::maps::MapError> {
        let lifted = self
            .policy
            .set_allowlist(&settings.allowlist, monotonic_ns())?;
        for listed in &lifted {
            tracing::warn!(cidr = %listed.cidr, "lifted a block: the reloaded allowlist covers it");
            self.announce("removed", listed);
        }
        self.totals.removed += lifted.len() as u64;
        self.policy.set_capacity(settings.blocklist_capacity);
        let epoch = self.current.epoch;
        self.current = settings.kernel_config();
        self.current.epoch = epoch;
        self.settings = settings;
        self.write_config()
    }

    pub fn settings(&self) -> &MitigationSettings {
        &self.settings
    }

    pub fn totals(&self) -> BlockTotals {
        self.totals
    }

    pub fn interfaces(&self) -> &[(String, u32)] {
        &self.interfaces
    }

    pub fn policy(&self) -> &PolicyTable {
        &self.policy
    }

    /// Writes the settings after a change of the policy table (recounting
    /// its entries: the kernel skips the trie lookup while there are none).
    fn write_config(&mut self) -> Result<(), aya::maps::MapError> {
        self.current.policy_entries = self.policy.entries()?.len() as u32;
        self.config.set(0, self.current, 0)
    }

    /// Per-CPU counters of an interface slot, summed.
    pub fn counters(&self, slot: u32) -> Result<MitigationCounters, aya::maps::MapError> {
        let values = self.stats.get(&slot, 0)?;
        let mut sum = MitigationCounters::default();
        for v in values.iter() {
            sum.judged += v.judged;
            add(&mut sum.dropped, &v.dropped);
            add(&mut sum.dry_run, &v.dry_run);
            add(&mut sum.exempt, &v.exempt);
        }
        Ok(sum)
    }

    /// An operator's block (`handshake-monitor block add`).
    pub fn block(&mut self, cidr: Cidr, ttl: Option<Duration>) -> Result<Listed, PolicyError> {
        let now = monotonic_ns();
        let entry = PolicyEntry {
            expires_ns: ttl.map_or(0, |t| now + t.as_nanos() as u64),
            added_ns: now,
            kind: kind::BLOCK,
            origin: origin::MANUAL,
            ..PolicyEntry::default()
        };
        self.policy.block(cidr, entry)?;
        // Automatic blocks inside it would shadow it (the kernel finds
        // the longest match only) and spare protected sources there.
        for listed in self.policy.blocks().map_err(PolicyError::from)? {
            if listed.entry.origin == origin::AUTO
                && listed.cidr.prefix_len() > cidr.prefix_len()
                && listed.cidr.overlaps(&cidr)
            {
                self.policy.unblock(listed.cidr)?;
                self.totals.removed += 1;
                self.announce("removed", &listed);
            }
        }
        self.write_config()?;
        self.totals.added_manual += 1;
        tracing::info!(%cidr, ttl = %ttl.map_or("never".into(), format_duration), "blocked (operator)");
        self.announce("added", &Listed { cidr, entry });
        Ok(Listed { cidr, entry })
    }

    pub fn unblock(&mut self, cidr: Cidr) -> Result<Listed, PolicyError> {
        let entry = self.policy.unblock(cidr)?;
        self.write_config()?;
        self.totals.removed += 1;
        tracing::info!(%cidr, "unblocked (operator)");
        let listed = Listed { cidr, entry };
        self.announce("removed", &listed);
        Ok(listed)
    }

    /// Once a second: expire blocks, block the offenders of interfaces
    /// where a SynFlood alert fires, and start a new offender generation.
    pub fn tick(&mut self, flooded_interfaces: &[String]) -> Result<(), aya::maps::MapError> {
        let now = monotonic_ns();
        let expired = self.policy.expire(now)?;
        for listed in &expired {
            tracing::info!(cidr = %listed.cidr, "block expired");
            self.announce("expired", listed);
        }
        self.totals.expired += expired.len() as u64;
        let mut changed = !expired.is_empty();
        if self.settings.mode == Mode::Off {
            return if changed { self.write_config() } else { Ok(()) };
        }
        if self.settings.auto_block && !flooded_interfaces.is_empty() {
            changed |= self.block_offenders(flooded_interfaces, now)? > 0;
        }
        self.current.epoch = self.current.epoch.wrapping_add(1).max(1);
        if changed {
            self.write_config()
        } else {
            // A new offender generation only: the entry count stands.
            self.config.set(0, self.current, 0)
        }
    }

    /// Blocks the offenders of `flooded` interfaces; how many it blocked.
    fn block_offenders(
        &mut self,
        flooded: &[String],
        now: u64,
    ) -> Result<usize, aya::maps::MapError> {
        let sketches = self.offenders.get(&0, 0)?;
        let sketches: Vec<OffenderSketch> = sketches.iter().copied().collect();
        let flooded_slots: Vec<u32> = self
            .interfaces
            .iter()
            .filter(|(name, _)| flooded.contains(name))
            .map(|(_, slot)| *slot)
            .collect();
        let blocks = self.policy.blocks()?;
        let mut added = 0;
        let mut auto = blocks
            .iter()
            .filter(|l| l.entry.origin == origin::AUTO)
            .count();
        for offender in auto::merge(&sketches, self.current.epoch) {
            if offender.refused < self.settings.auto_block_min_refused {
                break;
            }
            if !flooded_slots.contains(&u32::from(offender.slot))
                || blocks.iter().any(|l| l.cidr.overlaps(&offender.cidr))
            {
                continue;
            }
            if auto >= self.settings.auto_block_max_entries {
                self.totals.auto_skipped_full += 1;
                continue;
            }
            let entry = PolicyEntry {
                expires_ns: now + self.settings.auto_block_ttl.as_nanos() as u64,
                added_ns: now,
                refused_syns: offender.refused,
                kind: kind::BLOCK,
                origin: origin::AUTO,
                slot: offender.slot,
                port: offender.port,
                ..PolicyEntry::default()
            };
            match self.policy.block(offender.cidr, entry) {
                Ok(()) => {
                    auto += 1;
                    added += 1;
                    self.totals.added_auto += 1;
                    let listed = Listed {
                        cidr: offender.cidr,
                        entry,
                    };
                    tracing::warn!(
                        cidr = %offender.cidr, refused_syns = offender.refused,
                        port = offender.port, ttl = %format_duration(self.settings.auto_block_ttl),
                        "blocked a SYN-flood offender"
                    );
                    self.announce("added", &listed);
                }
                Err(PolicyError::Full { .. }) => self.totals.auto_skipped_full += 1,
                // The allowlist never reaches the sketch; nothing else fails
                // but the map.
                Err(PolicyError::Map(err)) => return Err(err),
                Err(_) => {}
            }
        }
        Ok(added)
    }

    /// Why an entry is there, in words.
    pub fn reason(&self, entry: &PolicyEntry) -> String {
        match entry.origin {
            origin::AUTO => {
                let iface = self
                    .interfaces
                    .iter()
                    .find(|(_, slot)| *slot == u32::from(entry.slot))
                    .map_or("?", |(name, _)| name.as_str());
                format!(
                    "SynFlood on {iface} port {}: {} SYNs refused in one second",
                    entry.port, entry.refused_syns
                )
            }
            origin::MANUAL => "added by an operator".into(),
            origin::CONFIG => "config allowlist".into(),
            _ => "unknown".into(),
        }
    }

    fn announce(&self, action: &str, listed: &Listed) {
        if !self.events.enabled() {
            return;
        }
        let entry = &listed.entry;
        let mut line = JsonObject::new()
            .str("type", "block")
            .str("ts", &rfc3339(wall_time(monotonic_ns())))
            .str("action", action)
            .str("cidr", &listed.cidr.to_string())
            .str("origin", origin_name(entry.origin))
            .str("reason", &self.reason(entry));
        if entry.expires_ns != 0 {
            line = line.str("expires", &rfc3339(wall_time(entry.expires_ns)));
        }
        self.events.send(line.finish());
    }
}

pub fn origin_name(value: u8) -> &'static str {
    match value {
        origin::AUTO => "auto",
        origin::MANUAL => "manual",
        origin::CONFIG => "config",
        _ => "unknown",
    }
}

fn add<const N: usize>(sum: &mut [u64; N], values: &[u64; N]) {
    for (s, v) in sum.iter_mut().zip(values) {
        *s = s.wrapping_add(*v);
    }
}
