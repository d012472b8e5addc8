//! What the loader needs to know before the verifier runs: the flow
//! table's size (a map size, fixed at load) and its insert budget. The
//! features' settings (`flows::FlowSettings`) convert into this, so the
//! loader does not depend on them.

/// Settings fixed when the object is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSettings {
    /// Entries of the LRU flow table.
    pub flow_table_size: u32,
    /// Flows each CPU may start per second.
    pub flow_inserts_per_sec_per_cpu: u64,
    /// Flow inserts a CPU may make in one burst above that rate.
    pub flow_insert_burst: u64,
}

impl LoadSettings {
    /// The defaults, also the flow settings' defaults.
    pub const DEFAULT: Self = Self {
        flow_table_size: 262_144,
        flow_inserts_per_sec_per_cpu: 100_000,
        flow_insert_burst: 10_000,
    };
}

impl Default for LoadSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}
