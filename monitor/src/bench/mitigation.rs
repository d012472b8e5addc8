//! The mitigation's modes for the benchmark: set on a round's freshly
//! loaded programs, before anything runs.

use monitor_common::mitigation::Mode;

use crate::{
    ebpf::Programs,
    events::EventSink,
    mitigation::{Mitigation, MitigationSettings},
};

/// The source every flood frame of the TestRun cases comes from (the frame
/// builder's client address).
pub const FLOOD_SOURCE: &str = "198.18.0.1";

/// Enforce mode with the default limits; `block` adds one operator block.
pub fn enforce(programs: &mut Programs, block: Option<&str>) -> anyhow::Result<()> {
    let settings = MitigationSettings {
        mode: Mode::Enforce,
        ..MitigationSettings::default()
    };
    // The slot numbers only name interfaces in logs; none are written here.
    let mut mitigation = Mitigation::start(programs, settings, Vec::new(), EventSink::disabled())?;
    if let Some(cidr) = block {
        mitigation.block(cidr.parse()?, None)?;
    }
    // Dropping `mitigation` closes its map fds; the programs keep the maps.
    Ok(())
}
