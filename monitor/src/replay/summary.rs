//! The replay's short report on stderr: what was read, what ran, what the
//! programs made of it. Its figures are the metrics' own, read back from
//! the final snapshot, so the two cannot disagree.

use std::{fmt::Write as _, path::PathBuf};

use prometheus::proto::{MetricFamily, MetricType};

use super::{engine::Tally, input::FileReport, local::LocalSide};
use crate::tls_capture::wallclock::rfc3339;

pub struct Summary<'a> {
    pub files: &'a [(PathBuf, FileReport)],
    pub tally: &'a Tally,
    pub local: &'a LocalSide,
    /// First and last capture time.
    pub span: Option<(u64, u64)>,
    pub metrics: &'a [MetricFamily],
    pub interrupted: bool,
}

/// The sum of `name`'s series whose labels include every `(label, value)`
/// of `with`.
pub fn sum(families: &[MetricFamily], name: &str, with: &[(&str, &str)]) -> f64 {
    let Some(family) = families.iter().find(|f| f.name() == name) else {
        return 0.0;
    };
    family
        .get_metric()
        .iter()
        .filter(|m| {
            with.iter().all(|(label, value)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *label && l.value() == *value)
            })
        })
        .map(|m| match family.get_field_type() {
            MetricType::COUNTER => m.get_counter().get_value(),
            _ => m.get_gauge().get_value(),
        })
        .sum()
}

impl Summary<'_> {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let frames: u64 = self.files.iter().map(|(_, r)| r.records).sum();
        let skipped: u64 = self.tally.skipped.values().sum();
        let _ = writeln!(
            out,
            "replay: {} file(s), {frames} frames: {} through XDP (towards the local side), {} through TC egress, {skipped} skipped{}",
            self.files.len(),
            self.tally.ingress,
            self.tally.egress,
            list(self.tally.skipped.iter().map(|(k, v)| (k.to_string(), *v))),
        );
        let addrs = self.local.addresses();
        let shown: Vec<String> = addrs.iter().take(8).map(ToString::to_string).collect();
        let more = addrs.len().saturating_sub(shown.len());
        let _ = writeln!(
            out,
            "local side: {}{}{}",
            self.local.source().describe(),
            if shown.is_empty() {
                String::new()
            } else {
                format!(": {}", shown.join(", "))
            },
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        if let Some((first, last)) = self.span {
            let _ = writeln!(
                out,
                "capture time: {} to {} ({:.3} s)",
                rfc3339(crate::clock::wall_time(first)),
                rfc3339(crate::clock::wall_time(last)),
                (last - first) as f64 / 1e9
            );
        }
        let m = self.metrics;
        let handshakes = "handshake_tcp_handshakes_total";
        let results = ["completed", "reset", "timed_out", "displaced"];
        let by_result: Vec<(String, u64)> = results
            .iter()
            .map(|r| (r.to_string(), sum(m, handshakes, &[("result", r)]) as u64))
            .collect();
        let _ = writeln!(
            out,
            "handshakes: {} SYNs tracked{}, {} still half-open",
            sum(m, "handshake_half_open_table_starts_total", &[]) as u64,
            list(by_result.into_iter()),
            sum(m, "handshake_tcp_half_open", &[]) as u64,
        );
        let _ = writeln!(
            out,
            "flows: {} established (entered the flow table), {} in it at the end",
            sum(m, "handshake_flow_table_inserts_total", &[]) as u64,
            sum(m, "handshake_flow_table_entries", &[]) as u64,
        );
        let _ = writeln!(
            out,
            "tls: {} ClientHellos, {} ServerHellos; records: {} written",
            sum(m, "handshake_tls_client_hellos_total", &[]) as u64,
            sum(m, "handshake_tls_server_hellos_total", &[]) as u64,
            sum(m, "handshake_records_total", &[("result", "emitted")]) as u64,
        );
        let _ = writeln!(
            out,
            "verdicts: {}; the mitigation would have dropped {} (dry-run) and dropped {}",
            pairs(self.tally.verdicts.iter().map(|(k, v)| (k.clone(), *v))),
            sum(m, "handshake_mitigation_dry_run_drops_total", &[]) as u64,
            sum(m, "handshake_xdp_dropped_packets_total", &[]) as u64,
        );
        for (path, report) in self.files {
            if let Some(err) = &report.error {
                let _ = writeln!(
                    out,
                    "{}: {err}; replayed the {} records before it",
                    path.display(),
                    report.records
                );
            }
        }
        if self.interrupted {
            out.push_str("interrupted: the outputs cover the frames replayed until then\n");
        }
        out
    }
}

/// `a 1, b 2`, or `none`.
fn pairs(items: impl Iterator<Item = (String, u64)>) -> String {
    let parts: Vec<String> = items.map(|(k, v)| format!("{k} {v}")).collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

/// ` (a 1, b 2)` after a count, or nothing for no items.
fn list(items: impl Iterator<Item = (String, u64)>) -> String {
    match pairs(items).as_str() {
        "none" => String::new(),
        some => format!(" ({some})"),
    }
}
