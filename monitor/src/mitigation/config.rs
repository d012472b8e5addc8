//! The config file's `[mitigation]` section.

use std::{path::PathBuf, time::Duration};

use monitor_common::mitigation::Mode;
use serde::Deserialize;

use super::{MitigationSettings, cidr::Cidr};
use crate::config::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MitigationSection {
    pub mode: Option<String>,
    pub source_syn_rate: Option<u64>,
    pub source_syn_burst: Option<u64>,
    pub prefix_syn_rate: Option<u64>,
    pub prefix_syn_burst: Option<u64>,
    pub protect_completed_seconds: Option<u64>,
    pub allowlist: Option<Vec<String>>,
    pub auto_block: Option<bool>,
    pub auto_block_ttl_seconds: Option<u64>,
    pub auto_block_min_refused: Option<u64>,
    pub auto_block_max_entries: Option<usize>,
    pub blocklist_capacity: Option<usize>,
    pub control_socket: Option<String>,
}

pub fn parse_mode(text: &str) -> Result<Mode, String> {
    Mode::from_name(text)
        .ok_or_else(|| format!("{text:?} is not a mode (use off, dry-run or enforce)"))
}

const MAX_RATE: u64 = 10_000_000;

impl MitigationSection {
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, value: String, why: String| ConfigError::Entry {
            path: path.to_string(),
            key,
            value,
            why,
        };
        if let Some(mode) = &self.mode {
            parse_mode(mode).map_err(|why| invalid("mitigation.mode", mode.clone(), why))?;
        }
        for (key, value) in [
            ("mitigation.source_syn_rate", self.source_syn_rate),
            ("mitigation.source_syn_burst", self.source_syn_burst),
            ("mitigation.prefix_syn_rate", self.prefix_syn_rate),
            ("mitigation.prefix_syn_burst", self.prefix_syn_burst),
            (
                "mitigation.auto_block_min_refused",
                self.auto_block_min_refused,
            ),
        ] {
            if let Some(v) = value
                && !(1..=MAX_RATE).contains(&v)
            {
                // 0 would refuse every SYN: a config that blocks everything.
                return Err(invalid(
                    key,
                    v.to_string(),
                    format!("must be between 1 and {MAX_RATE} (0 would refuse every SYN)"),
                ));
            }
        }
        if let Some(v) = self.protect_completed_seconds
            && v > 7 * 86_400
        {
            return Err(invalid(
                "mitigation.protect_completed_seconds",
                v.to_string(),
                "must be at most 604800 (a week)".into(),
            ));
        }
        if let Some(v) = self.auto_block_ttl_seconds
            && !(1..=365 * 86_400).contains(&v)
        {
            return Err(invalid(
                "mitigation.auto_block_ttl_seconds",
                v.to_string(),
                "must be between 1 and 31536000 (a year)".into(),
            ));
        }
        let capacity = self
            .blocklist_capacity
            .unwrap_or(MitigationSettings::default().blocklist_capacity);
        if let Some(v) = self.blocklist_capacity
            && !(1..=65_536).contains(&v)
        {
            return Err(invalid(
                "mitigation.blocklist_capacity",
                v.to_string(),
                "must be between 1 and 65536".into(),
            ));
        }
        if let Some(v) = self.auto_block_max_entries
            && v > capacity
        {
            return Err(invalid(
                "mitigation.auto_block_max_entries",
                v.to_string(),
                format!("must be at most mitigation.blocklist_capacity ({capacity})"),
            ));
        }
        for entry in self.allowlist.iter().flatten() {
            entry.parse::<Cidr>().map_err(|err| {
                invalid(
                    "mitigation.allowlist",
                    format!("{entry:?}"),
                    err.to_string(),
                )
            })?;
        }
        if let Some(v) = &self.control_socket
            && !v.starts_with('/')
        {
            return Err(invalid(
                "mitigation.control_socket",
                format!("{v:?}"),
                "must be an absolute path".into(),
            ));
        }
        Ok(())
    }

    /// Fills the settings from the file (validated: parses cannot fail).
    pub fn apply(&self, s: &mut MitigationSettings) {
        if let Some(v) = self.mode.as_deref().and_then(|m| parse_mode(m).ok()) {
            s.mode = v;
        }
        let set = |target: &mut u64, value: Option<u64>| {
            if let Some(v) = value {
                *target = v;
            }
        };
        set(&mut s.source_syn_rate, self.source_syn_rate);
        set(&mut s.source_syn_burst, self.source_syn_burst);
        set(&mut s.prefix_syn_rate, self.prefix_syn_rate);
        set(&mut s.prefix_syn_burst, self.prefix_syn_burst);
        set(&mut s.auto_block_min_refused, self.auto_block_min_refused);
        if let Some(v) = self.protect_completed_seconds {
            s.protect_completed_for = Duration::from_secs(v);
        }
        if let Some(v) = &self.allowlist {
            s.allowlist = v.iter().filter_map(|c| c.parse().ok()).collect();
        }
        if let Some(v) = self.auto_block {
            s.auto_block = v;
        }
        if let Some(v) = self.auto_block_ttl_seconds {
            s.auto_block_ttl = Duration::from_secs(v);
        }
        if let Some(v) = self.auto_block_max_entries {
            s.auto_block_max_entries = v;
        }
        if let Some(v) = self.blocklist_capacity {
            s.blocklist_capacity = v;
        }
        if let Some(v) = &self.control_socket {
            s.control_socket = PathBuf::from(v);
        }
    }
}

/// The section as `check-config` prints it.
pub fn render(s: &MitigationSettings) -> String {
    let quote = |text: &str| toml::Value::String(text.to_string()).to_string();
    let allow: Vec<String> = s.allowlist.iter().map(|c| quote(&c.to_string())).collect();
    format!(
        "[mitigation]\nmode = {}\nsource_syn_rate = {}\nsource_syn_burst = {}\n\
         prefix_syn_rate = {}\nprefix_syn_burst = {}\nprotect_completed_seconds = {}\n\
         allowlist = [{}]\nauto_block = {}\nauto_block_ttl_seconds = {}\n\
         auto_block_min_refused = {}\nauto_block_max_entries = {}\nblocklist_capacity = {}\n\
         control_socket = {}\n",
        quote(s.mode.name()),
        s.source_syn_rate,
        s.source_syn_burst,
        s.prefix_syn_rate,
        s.prefix_syn_burst,
        s.protect_completed_for.as_secs(),
        allow.join(", "),
        s.auto_block,
        s.auto_block_ttl.as_secs(),
        s.auto_block_min_refused,
        s.auto_block_max_entries,
        s.blocklist_capacity,
        quote(&s.control_socket.display().to_string()),
    )
}
