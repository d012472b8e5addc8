//! The config file's `[syncookies]` section.

use std::time::Duration;

use monitor_common::syncookie::SyncookieMode;
use serde::Deserialize;

use super::SyncookieSettings;
use crate::config::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncookiesSection {
    pub mode: Option<String>,
    pub ports: Option<Vec<u16>>,
    pub hold_seconds: Option<u64>,
}

pub fn parse_mode(text: &str) -> Result<SyncookieMode, String> {
    SyncookieMode::from_name(text)
        .ok_or_else(|| format!("{text:?} is not a mode (use off, on-flood or always)"))
}

impl SyncookiesSection {
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, value: String, why: String| ConfigError::Entry {
            path: path.to_string(),
            key,
            value,
            why,
        };
        if let Some(mode) = &self.mode {
            parse_mode(mode).map_err(|why| invalid("syncookies.mode", mode.clone(), why))?;
        }
        if let Some(ports) = &self.ports {
            if ports.contains(&0) {
                return Err(invalid(
                    "syncookies.ports",
                    format!("{ports:?}"),
                    "port 0 cannot be listened on".into(),
                ));
            }
            if ports.len() > 64 {
                return Err(invalid(
                    "syncookies.ports",
                    format!("{} ports", ports.len()),
                    "at most 64 ports".into(),
                ));
            }
        }
        if let Some(v) = self.hold_seconds
            && v > 3600
        {
            return Err(invalid(
                "syncookies.hold_seconds",
                v.to_string(),
                "must be at most 3600 (an hour)".into(),
            ));
        }
        Ok(())
    }

    /// Fills the settings from the file (validated: parses cannot fail).
    pub fn apply(&self, s: &mut SyncookieSettings) {
        if let Some(v) = self.mode.as_deref().and_then(|m| parse_mode(m).ok()) {
            s.mode = v;
        }
        if let Some(v) = &self.ports {
            s.ports = v.clone();
        }
        if let Some(v) = self.hold_seconds {
            s.hold = Duration::from_secs(v);
        }
    }
}

/// The section as `check-config` prints it.
pub fn render(s: &SyncookieSettings) -> String {
    let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
    format!(
        "[syncookies]\nmode = \"{}\"\nports = [{}]\nhold_seconds = {}\n",
        s.mode.name(),
        ports.join(", "),
        s.hold.as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> SyncookiesSection {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn errors_name_the_key() {
        let err = section("mode = \"sometimes\"")
            .validate("f.toml")
            .unwrap_err();
        assert!(err.to_string().contains("syncookies.mode"), "{err}");
        let err = section("ports = [0]").validate("f.toml").unwrap_err();
        assert!(err.to_string().contains("syncookies.ports"), "{err}");
        let err = section("hold_seconds = 99999")
            .validate("f.toml")
            .unwrap_err();
        assert!(err.to_string().contains("syncookies.hold_seconds"), "{err}");
        assert!(toml::from_str::<SyncookiesSection>("port = [1]").is_err());
    }

    #[test]
    fn applies_and_renders() {
        let s = section("mode = \"on-flood\"\nports = [443, 80]\nhold_seconds = 5");
        s.validate("f.toml").expect("valid");
        let mut settings = SyncookieSettings::default();
        s.apply(&mut settings);
        assert_eq!(settings.mode, SyncookieMode::OnFlood);
        assert_eq!(settings.ports, vec![443, 80]);
        assert_eq!(settings.hold, Duration::from_secs(5));
        let text = render(&settings);
        assert!(
            text.contains("mode = \"on-flood\"\nports = [443, 80]"),
            "{text}"
        );
    }
}
