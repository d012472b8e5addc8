//! What the loader needs to know before the verifier runs: the flow
//! tables' size (map sizes, fixed at load), the insert budget and the
//! handshake timeout the programs apply. The
//! features' settings (`flows::FlowSettings`) convert into this, so the
//! loader does not depend on them.

use monitor_common::{
    flow::RateLimit,
    half_open::{FlowConfig, MAX_PARTITIONS},
};

/// Settings fixed when the object is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSettings {
    /// Entries of the LRU flow table.
    pub flow_table_size: u32,
    /// Flows each CPU may start per second.
    pub flow_inserts_per_sec_per_cpu: u64,
    /// Flow inserts a CPU may make in one burst above that rate.
    pub flow_insert_burst: u64,
    /// A half-open handshake older than this has timed out.
    pub handshake_timeout_ns: u64,
}

impl LoadSettings {
    /// The defaults, also the flow settings' defaults.
    pub const DEFAULT: Self = Self {
        flow_table_size: 262_144,
        flow_inserts_per_sec_per_cpu: 100_000,
        flow_insert_burst: 10_000,
        // Linux gives up on a SYN-ACK after 5 retries (tcp_synack_retries):
        // sent at 0 s, retried at 1, 3, 7, 15 and 31 s, dropped 32 s after
        // the last.
        handshake_timeout_ns: 63_000_000_000,
    };

    /// What the programs read: the insert budget, the timeout and the
    /// half-open table's partitions (one per possible CPU).
    pub fn kernel_config(&self) -> FlowConfig {
        let partitions = aya::util::nr_cpus().map_or(1, |n| n as u32);
        FlowConfig::new(
            RateLimit {
                per_sec_per_cpu: self.flow_inserts_per_sec_per_cpu,
                burst: self.flow_insert_burst,
            },
            self.handshake_timeout_ns,
            self.flow_table_size,
            partitions.min(MAX_PARTITIONS),
        )
    }
}

impl Default for LoadSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}
