//! The whole path of a flood SYN, in place: the run time of every program
//! of the daemon that a SYN and its answer pass through (XDP ingress, TC
//! egress for the SYN-ACK, TC ingress with cookies, the tracepoints), over
//! one window, per SYN sent. One program alone hides the rest: the TC
//! egress program's share was as large as the XDP program's and nobody
//! measured it.

use anyhow::Context as _;
use aya::programs::loaded_programs;

use crate::bench::{Figure, inplace::RunStats};

/// Every program of the daemon and its counters at the start of a window.
pub struct PathStats {
    programs: Vec<(String, u32, RunStats)>,
}

impl PathStats {
    /// The programs with kernel id `first_id` or above whose names are the
    /// monitor's (`hs_`): the daemon loads its XDP program (`first_id`)
    /// first and the others after it, and the bench's own copies were
    /// loaded before the daemon started. Without a daemon, `first_id` is
    /// the empty program on the server end.
    pub fn start(first_id: u32) -> anyhow::Result<Self> {
        let mut programs = Vec::new();
        for info in loaded_programs() {
            let info = info.context("listing the loaded BPF programs")?;
            let Some(name) = info.name_as_str() else {
                continue;
            };
            if info.id() >= first_id && name.starts_with("hs_") {
                programs.push((name.to_owned(), info.id(), RunStats::of(&info)));
            }
        }
        Ok(Self { programs })
    }

    /// What each program spent over the window, per SYN of `syns`.
    pub fn per_syn(&self, syns: u64) -> anyhow::Result<PathCost> {
        let mut by_program = Vec::new();
        for (name, id, before) in &self.programs {
            let now = RunStats::of_id(*id)?;
            let ns = now.run_ns.saturating_sub(before.run_ns) as f64;
            by_program.push((name.clone(), ns / syns.max(1) as f64));
        }
        Ok(PathCost { by_program })
    }
}

/// ns per flood SYN, by program.
#[derive(Debug, Default)]
pub struct PathCost {
    by_program: Vec<(String, f64)>,
}

impl PathCost {
    /// Every program together: the cost of the whole path.
    pub fn total(&self) -> f64 {
        self.by_program.iter().map(|(_, ns)| ns).sum()
    }

    /// The program named `name` (0 when it was not loaded).
    pub fn of(&self, name: &str) -> f64 {
        self.by_program
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, ns)| ns)
            .sum()
    }

    /// Everything but the XDP and TC egress programs: the tracepoints and,
    /// with cookies, the TC ingress program.
    pub fn others(&self) -> f64 {
        self.total() - self.of(XDP) - self.of(EGRESS)
    }
}

pub const XDP: &str = crate::loader::XDP_PROGRAM;
pub const EGRESS: &str = crate::loader::TC_PROGRAM;

/// One part of the path, read from the whole.
type Part = fn(&PathCost) -> f64;

/// One mode's whole-path figures: the sum against the empty program of
/// the same round (`totals`, this mode's and the baseline's, per round),
/// and each part alone (against the sum).
pub(super) fn figures(
    out: &mut Vec<Figure>,
    mode: &str,
    totals: &[(f64, f64)],
    runs: &[super::Run],
) {
    out.push(super::paired(
        format!("flood_host_{mode}_path_ns_per_syn"),
        "ns/SYN",
        totals.to_vec(),
    ));
    let parts: [(&str, Part); 3] = [
        ("xdp", |p| p.of(XDP)),
        ("egress", |p| p.of(EGRESS)),
        ("others", PathCost::others),
    ];
    for (part, of) in parts {
        out.push(super::paired(
            format!("flood_host_{mode}_path_{part}_ns_per_syn"),
            "ns/SYN",
            runs.iter().map(|r| (of(&r.path), r.path.total())).collect(),
        ));
    }
}
