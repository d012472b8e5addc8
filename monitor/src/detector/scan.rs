//! Port-scan detection: remote sources whose SYNs the host refused with a
//! RST on many distinct ports within a window. The kernel notes refused
//! SYNs per source (`SCAN_SOURCES`); this reads and ages that table once a
//! second.

use std::{net::IpAddr, time::Duration};

use aya::maps::{HashMap as BpfHashMap, MapData};
use monitor_common::flow::{ScanKey, ScanState};

use crate::loader::{EbpfError, Programs};

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
    sources: BpfHashMap<MapData, ScanKey, ScanState>,
    thresholds: ScanThresholds,
}

impl ScanWatcher {
    pub fn new(programs: &mut Programs, thresholds: ScanThresholds) -> Result<Self, EbpfError> {
        Ok(Self {
            sources: programs.take_map("SCAN_SOURCES")?,
            thresholds,
        })
    }

    pub fn set_thresholds(&mut self, thresholds: ScanThresholds) {
        self.thresholds = thresholds;
    }

    /// The scanners of this second; sources past the window are forgotten.
    pub fn scanners(&mut self, now_ns: u64) -> Vec<Scanner> {
        let window = self.thresholds.window.as_nanos() as u64;
        let mut found = Vec::new();
        let mut expired = Vec::new();
        for item in self.sources.iter() {
            let Ok((key, state)) = item else { continue };
            let distinct = distinct_ports(state.port_bits);
            if distinct >= self.thresholds.distinct_ports {
                found.push(Scanner {
                    slot: u32::from(key.slot),
                    source: source_ip(&key),
                    distinct_ports: distinct,
                    probes: state.probes,
                });
            }
            if now_ns.saturating_sub(state.first_ns) > window {
                expired.push(key);
            }
        }
        for key in expired {
            let _ = self.sources.remove(&key);
        }
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
