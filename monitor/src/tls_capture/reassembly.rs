//! Hello record reassembly: the pure logic lives in
//! `monitor_common::reassembly`, next to the chunk format it consumes, so
//! the fuzz crate (which depends on `monitor-common` only) exercises the
//! same code the daemon runs.

pub use monitor_common::reassembly::*;
