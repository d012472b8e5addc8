//! Port-scan detection: remote sources whose SYNs the host refused with a
//! RST on many distinct ports within a window. The kernel notes refused
//! SYNs per source in a per-CPU direct-mapped table (`SCAN_TABLE`, see
//! `monitor_common::scan`); this reads it in place once a second and
//! merges each source's partitions.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use aya::maps::{Array, MapData};
use monitor_common::{
    flow::{ScanKey, ScanState},
    scan::{ScanConfig, ScanSlot},
};

use crate::loader::{EbpfError, Programs, mmap::MappedArray};

/// When a source is a scanner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanThresholds {
    /// Distinct refused ports (estimated) that make a scan.
    pub distinct_ports: f64,
    /// Window a source's refused SYNs are counted over.
    pub window: Duration,
}

impl Default for ScanThresholds {
    fn default() -> Self {
        Self {
            distinct_ports: 20.0,
            window: Duration::from_secs(10),
        }
    }
}

/// A source seen scanning.
#[derive(Debug, Clone, PartialEq)]
pub struct Scanner {
    pub slot: u32,
    pub source: IpAddr,
    pub distinct_ports: f64,
    pub probes: u32,
}

/// Distinct ports behind a 64-bit port-hash bitmap (linear counting).
pub fn distinct_ports(bits: u64) -> f64 {
    let zeros = f64::from(bits.count_zeros());
    if zeros == 0.0 {
        // Saturated: at least this many.
        return 64.0 * 64f64.ln();
    }
    -64.0 * (zeros / 64.0).ln()
}

pub struct ScanWatcher {
    table: MappedArray<ScanSlot>,
    config: Array<MapData, ScanConfig>,
    thresholds: ScanThresholds,
}

impl ScanWatcher {
    pub fn new(programs: &mut Programs, thresholds: ScanThresholds) -> Result<Self, EbpfError> {
        let mut watcher = Self {
            table: MappedArray::take(programs, "SCAN_TABLE")?,
            config: programs.take_map("SCAN_CONFIG")?,
            thresholds,
        };
        watcher.write_config()?;
        Ok(watcher)
    }

    /// The kernel's half: the window, and the table's split over CPUs.
    fn write_config(&mut self) -> Result<(), EbpfError> {
        let cpus = aya::util::nr_cpus().map_or(1, |n| n as u32);
        let config = ScanConfig::new(self.thresholds.window.as_nanos() as u64, cpus);
        self.config
            .set(0, config, 0)
            .map_err(|source| EbpfError::Map {
                map: "SCAN_CONFIG",
                source,
            })
    }

    pub fn set_thresholds(&mut self, thresholds: ScanThresholds) {
        self.thresholds = thresholds;
        if let Err(err) = self.write_config() {
            tracing::warn!("updating the scan window in the kernel failed: {err}");
        }
    }

    /// The scanners of this second: sources within the window, their
    /// partitions merged.
    pub fn scanners(&mut self, now_ns: u64) -> Vec<Scanner> {
        let window = self.thresholds.window.as_nanos() as u64;
        let mut sources: HashMap<ScanKey, ScanState> = HashMap::new();
        for i in 0..self.table.len() {
            let entry = self.table.get(i);
            if entry.state.probes == 0 || now_ns.saturating_sub(entry.state.first_ns) > window {
                continue;
            }
            sources
                .entry(entry.key)
                .and_modify(|s| s.merge(&entry.state))
                .or_insert(entry.state);
        }
        let mut found: Vec<Scanner> = sources
            .into_iter()
            .filter_map(|(key, state)| {
                let distinct = distinct_ports(state.port_bits);
                (distinct >= self.thresholds.distinct_ports).then(|| Scanner {
                    slot: u32::from(key.slot),
                    source: source_ip(&key),
                    distinct_ports: distinct,
                    probes: state.probes,
                })
            })
            .collect();
        found.sort_by_key(|s| (s.slot, s.source));
        found
    }
}

fn source_ip(key: &ScanKey) -> IpAddr {
    crate::flows::ip_addr(key.family, &key.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(ports: impl IntoIterator<Item = u16>) -> u64 {
        let mut s = ScanState::default();
        ports.into_iter().for_each(|p| s.note(p));
        s.port_bits
    }

    #[test]
    fn one_port_many_times_is_one_port() {
        assert!(distinct_ports(bits([22; 50])) < 1.5);
    }

    #[test]
    fn thirty_ports_estimate_near_thirty() {
        let d = distinct_ports(bits(1..=30));
        assert!((20.0..45.0).contains(&d), "{d}");
    }

    #[test]
    fn nothing_is_zero() {
        assert_eq!(distinct_ports(0), 0.0);
    }
}
