//! The mitigation's modes for the benchmark: set on a round's freshly
//! loaded programs, before anything runs.

use monitor_common::mitigation::Mode;

use crate::{
    events::EventSink,
    loader::Programs,
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

/// The port the SYN-cookie case's SYNs go to (the frame builder's).
pub const COOKIE_PORT: u16 = 443;

/// SYN cookies always on for [`COOKIE_PORT`] on `lo` (slot 0, the bench's
/// only interface); the ACK program is loaded but attached nowhere.
pub fn syncookies(programs: &mut Programs) -> anyhow::Result<()> {
    cookies_for(programs, vec![COOKIE_PORT])
}

fn cookies_for(programs: &mut Programs, ports: Vec<u16>) -> anyhow::Result<()> {
    let settings = crate::syncookies::SyncookieSettings {
        mode: monitor_common::syncookie::SyncookieMode::Always,
        ports,
        ..Default::default()
    };
    crate::syncookies::Syncookies::start(programs, settings, &[], vec![("lo".into(), 0)])?;
    Ok(())
}
