//! Offenders: the sources (or prefixes) the rate limits refused most in
//! the last second, merged from every CPU's heavy-hitter sketch.

use std::collections::HashMap;

use monitor_common::mitigation::{OffenderSketch, PolicyKey};

use super::cidr::Cidr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offender {
    pub cidr: Cidr,
    /// SYNs refused in the sketch's generation, all CPUs.
    pub refused: u64,
    pub slot: u8,
    pub port: u16,
}

/// The offenders of generation `epoch`, most refused first.
pub fn merge(sketches: &[OffenderSketch], epoch: u32) -> Vec<Offender> {
    let mut merged: HashMap<Cidr, Offender> = HashMap::new();
    for sketch in sketches {
        for slot in &sketch.slots {
            if slot.epoch != epoch || slot.count == 0 {
                continue;
            }
            let key = PolicyKey {
                prefix_len: u32::from(slot.prefix_len),
                addr: slot.addr,
            };
            let Some(cidr) = Cidr::from_policy_key(&key) else {
                continue;
            };
            merged
                .entry(cidr)
                .and_modify(|o| o.refused += u64::from(slot.count))
                .or_insert(Offender {
                    cidr,
                    refused: u64::from(slot.count),
                    slot: slot.slot,
                    port: slot.port,
                });
        }
    }
    let mut offenders: Vec<Offender> = merged.into_values().collect();
    offenders.sort_by(|a, b| b.refused.cmp(&a.refused).then(a.cidr.cmp(&b.cidr)));
    offenders
}

#[cfg(test)]
mod tests {
    use monitor_common::mitigation::{OFFENDER_SLOTS, OffenderSlot, mapped};

    use super::*;

    fn sketch_with(entries: &[([u8; 4], u8, u32, u32)]) -> OffenderSketch {
        let mut sketch = OffenderSketch::default();
        for (i, (v4, len, count, epoch)) in entries.iter().enumerate() {
            let mut raw = [0u8; 16];
            raw[..4].copy_from_slice(v4);
            sketch.slots[i % OFFENDER_SLOTS] = OffenderSlot {
                addr: mapped(&raw, 4),
                prefix_len: *len,
                count: *count,
                epoch: *epoch,
                slot: 1,
                port: 80,
                ..OffenderSlot::default()
            };
        }
        sketch
    }

    #[test]
    fn sums_cpus_and_skips_old_generations() {
        let cpu0 = sketch_with(&[
            ([198, 18, 0, 100], 128, 300, 5),
            ([198, 18, 0, 9], 128, 50, 4),
        ]);
        let cpu1 = sketch_with(&[
            ([198, 18, 0, 100], 128, 200, 5),
            ([198, 18, 7, 0], 120, 80, 5),
        ]);
        let offenders = merge(&[cpu0, cpu1], 5);
        let summary: Vec<(String, u64)> = offenders
            .iter()
            .map(|o| (o.cidr.to_string(), o.refused))
            .collect();
        assert_eq!(
            summary,
            [
                ("198.18.0.100/32".to_string(), 500),
                ("198.18.7.0/24".to_string(), 80)
            ]
        );
        assert_eq!((offenders[0].slot, offenders[0].port), (1, 80));
    }
}
