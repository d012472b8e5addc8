//! What the replay did with each frame: the programs' verdicts, and the
//! frames it could not run, by reason.

use std::collections::BTreeMap;

use monitor_common::counters::Direction;

pub const TC_ACT_SHOT: u32 = 2;

/// Verdicts and skips, frame by frame.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ingress: u64,
    pub egress: u64,
    /// Program verdicts by name (`xdp_pass`, `xdp_drop`, `tc_ok`, ...).
    pub verdicts: BTreeMap<String, u64>,
    /// Frames not run, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
}

impl Tally {
    /// Every verdict and skip reason with its count (skips as
    /// `skipped_REASON`), for the metrics.
    pub fn results(&self) -> impl Iterator<Item = (String, u64)> {
        let skipped = self
            .skipped
            .iter()
            .map(|(reason, n)| (format!("skipped_{reason}"), *n));
        self.verdicts
            .iter()
            .map(|(name, n)| (name.clone(), *n))
            .chain(skipped)
    }

    pub fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    pub fn verdict(&mut self, direction: Direction, verdict: u32) {
        let name = match (direction, verdict) {
            (Direction::Ingress, 0) => "xdp_aborted",
            (Direction::Ingress, 1) => "xdp_drop",
            (Direction::Ingress, 2) => "xdp_pass",
            (Direction::Ingress, 3) => "xdp_tx",
            (Direction::Ingress, 4) => "xdp_redirect",
            (Direction::Egress, 0) => "tc_ok",
            (Direction::Egress, TC_ACT_SHOT) => "tc_shot",
            (Direction::Egress, u32::MAX) => "tc_unspec",
            (Direction::Ingress, _) => "xdp_other",
            (Direction::Egress, _) => "tc_other",
        };
        match direction {
            Direction::Ingress => self.ingress += 1,
            Direction::Egress => self.egress += 1,
        }
        *self.verdicts.entry(name.to_string()).or_default() += 1;
    }
}
