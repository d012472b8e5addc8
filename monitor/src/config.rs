//! The configuration file (TOML). Every key is optional; a flag given on
//! the command line wins over the file, the file over the built-in
//! default. Unknown keys and out-of-range values are errors that name the
//! key.

use std::{net::SocketAddr, path::Path, time::Duration};

use clap::{ArgMatches, parser::ValueSource};
use serde::Deserialize;
use thiserror::Error;

use crate::cli::RunArgs;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error(
        "config file {path} is writable by every user (mode {mode:o}): anyone could change what \
         the daemon blocks; make it owner-only writable (`chmod o-w {path}`)"
    )]
    Unsafe { path: String, mode: u32 },
    #[error("config file {path}: {key} = {value}: {why}")]
    Entry {
        path: String,
        key: &'static str,
        value: String,
        why: String,
    },
    #[error("config file {path}: {key} = {value}: {why}")]
    Invalid {
        path: String,
        key: &'static str,
        value: String,
        why: &'static str,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub monitor: MonitorSection,
    #[serde(default)]
    pub flows: FlowsSection,
    #[serde(default)]
    pub ports: PortsSection,
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(default)]
    pub records: RecordsSection,
    #[serde(default)]
    pub detector: DetectorSection,
    #[serde(default)]
    pub alerts: AlertsSection,
    #[serde(default)]
    pub mitigation: crate::mitigation::config::MitigationSection,
    #[serde(default)]
    pub syncookies: crate::syncookies::config::SyncookiesSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    pub alertmanager_url: Option<String>,
    pub resend_interval_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSection {
    pub interfaces: Option<Vec<String>>,
    pub metrics_addr: Option<String>,
    pub log_level: Option<String>,
    pub events: Option<String>,
    pub pin_dir: Option<String>,
    pub persist: Option<bool>,
    pub web_config: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsSection {
    pub table_size: Option<u32>,
    pub handshake_timeout_seconds: Option<f64>,
    pub inserts_per_sec_per_cpu: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsSection {
    pub named: Option<Vec<u16>>,
    pub top: Option<usize>,
    pub top_interval_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub hellos_per_sec_per_cpu: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsSection {
    pub per_sec_per_cpu: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSection {
    pub syn_rate_floor: Option<f64>,
    pub baseline_factor: Option<f64>,
    pub completion_ratio_max: Option<f64>,
    pub baseline_window_seconds: Option<f64>,
    pub fire_after_seconds: Option<u32>,
    pub clear_after_seconds: Option<u32>,
    pub scan_distinct_ports: Option<f64>,
    pub scan_window_seconds: Option<f64>,
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    // The daemon runs privileged and the file decides what it drops.
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
        if mode & 0o002 != 0 {
            return Err(ConfigError::Unsafe { path: shown, mode });
        }
    }
    let config: ConfigFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let message = match line {
            Some(line) => format!("line {line}: {}", e.message()),
            None => e.message().to_string(),
        };
        ConfigError::Parse {
            path: shown.clone(),
            message,
        }
    })?;
    config.validate(&shown)?;
    Ok(config)
}

fn check<T: std::fmt::Display>(
    path: &str,
    key: &'static str,
    value: Option<T>,
    ok: impl Fn(&T) -> bool,
    why: &'static str,
) -> Result<(), ConfigError> {
    match value {
        Some(v) if !ok(&v) => Err(ConfigError::Invalid {
            path: path.to_string(),
            key,
            value: v.to_string(),
            why,
        }),
        _ => Ok(()),
    }
}

impl ConfigFile {
    /// The same limits the command-line flags enforce.
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let m = &self.monitor;
        let addr = m.metrics_addr.as_deref();
        check(
            path,
            "monitor.metrics_addr",
            addr,
            |a| a.parse::<SocketAddr>().is_ok(),
            "not an ADDR:PORT socket address",
        )?;
        let level = m.log_level.as_deref();
        check(
            path,
            "monitor.log_level",
            level,
            |l| tracing_subscriber::EnvFilter::try_new(l).is_ok(),
            "use error, warn, info, debug, trace or a tracing filter",
        )?;
        let ifaces = m.interfaces.as_ref().map(|v| v.len());
        check(
            path,
            "monitor.interfaces",
            ifaces,
            |n| *n >= 1 && *n <= 64,
            "list 1 to 64 interfaces (or leave it out for the default route's)",
        )?;
        check(
            path,
            "monitor.pin_dir",
            m.pin_dir.as_deref(),
            |d| d.is_empty() || d.starts_with('/'),
            "must be an absolute path (or \"\" to pin nothing)",
        )?;
        let empty = m
            .interfaces
            .iter()
            .flatten()
            .any(|i| i.is_empty() || i.len() > 15);
        check(
            path,
            "monitor.interfaces",
            empty.then_some("[...]"),
            |_| false,
            "interface names are 1 to 15 characters",
        )?;
        let f = &self.flows;
        check(
            path,
            "flows.table_size",
            f.table_size,
            |n| (1024..=16_777_216).contains(n),
            "must be between 1024 and 16777216",
        )?;
        check(
            path,
            "flows.handshake_timeout_seconds",
            f.handshake_timeout_seconds,
            |s| (0.1..=3600.0).contains(s),
            "must be between 0.1 and 3600",
        )?;
        check(
            path,
            "flows.inserts_per_sec_per_cpu",
            f.inserts_per_sec_per_cpu,
            |n| (1..=100_000_000).contains(n),
            "must be between 1 and 100000000",
        )?;
        let p = &self.ports;
        let named = p.named.as_ref().map(|v| v.len());
        check(
            path,
            "ports.named",
            named,
            |n| *n <= 29,
            "at most 29 ports can have series of their own",
        )?;
        check(
            path,
            "ports.top",
            p.top,
            |n| *n <= 29,
            "must be between 0 and 29",
        )?;
        check(
            path,
            "ports.top_interval_seconds",
            p.top_interval_seconds,
            |s| (0.1..=3600.0).contains(s),
            "must be between 0.1 and 3600",
        )?;
        check(
            path,
            "tls.hellos_per_sec_per_cpu",
            self.tls.hellos_per_sec_per_cpu,
            |n| (1..=10_000_000).contains(n),
            "must be between 1 and 10000000",
        )?;
        check(
            path,
            "records.per_sec_per_cpu",
            self.records.per_sec_per_cpu,
            |n| (1..=10_000_000).contains(n),
            "must be between 1 and 10000000",
        )?;
        self.mitigation.validate(path)?;
        self.syncookies.validate(path)?;
        Ok(())
    }

    /// Fills every setting of `args` not given on the command line.
    pub fn apply(&self, args: &mut RunArgs, matches: Option<&ArgMatches>) {
        let from_cli = |id: &str| {
            matches.is_some_and(|m| m.value_source(id) == Some(ValueSource::CommandLine))
        };
        let m = &self.monitor;
        if let (false, Some(v)) = (from_cli("ifaces"), &m.interfaces) {
            args.ifaces = v.clone();
        }
        if let (false, Some(v)) = (from_cli("metrics_addr"), &m.metrics_addr) {
            args.metrics_addr = v.parse().unwrap_or(args.metrics_addr);
        }
        if let (false, Some(v)) = (from_cli("log_level"), &m.log_level) {
            args.log_level = v.clone();
        }
        if let (false, Some(v)) = (from_cli("events"), &m.events) {
            args.events = Some(v.clone());
        }
        let f = &self.flows;
        if let (false, Some(v)) = (from_cli("flow_table_size"), f.table_size) {
            args.flow_table_size = v;
        }
        if let (false, Some(v)) = (from_cli("handshake_timeout"), f.handshake_timeout_seconds) {
            args.handshake_timeout = Duration::from_secs_f64(v);
        }
        if let (false, Some(v)) = (from_cli("flow_inserts_per_sec"), f.inserts_per_sec_per_cpu) {
            args.flow_inserts_per_sec = v;
        }
        let p = &self.ports;
        if let (false, Some(v)) = (from_cli("ports"), &p.named) {
            args.ports = v.clone();
        }
        if let (false, Some(v)) = (from_cli("top_ports"), p.top) {
            args.top_ports = v;
        }
        if let (false, Some(v)) = (from_cli("top_ports_interval"), p.top_interval_seconds) {
            args.top_ports_interval = Duration::from_secs_f64(v);
        }
        if let (false, Some(v)) = (
            from_cli("tls_hellos_per_sec"),
            self.tls.hellos_per_sec_per_cpu,
        ) {
            args.tls_hellos_per_sec = v;
        }
        if let (false, Some(v)) = (from_cli("records_per_sec"), self.records.per_sec_per_cpu) {
            args.records_per_sec = v;
        }
        // Flags first: the file fills only what they left alone.
        let mode = args.mitigation.mode;
        let socket = args.mitigation.control_socket.clone();

        self.mitigation.apply(&mut args.mitigation);
        if from_cli("mitigation_mode") {
            args.mitigation.mode = mode;
        }
        if from_cli("control_socket") {
            args.mitigation.control_socket = socket;
        }
        if let (false, Some(v)) = (from_cli("pin_dir"), &m.pin_dir) {
            args.pins.dir = (!v.is_empty()).then(|| std::path::PathBuf::from(v));
            args.pins.explicit = true;
        }
        if let (false, Some(v)) = (from_cli("persist"), m.persist) {
            args.pins.persist = v;
        }
        if let (false, Some(v)) = (from_cli("web_config"), &m.web_config) {
            args.web_config = Some(std::path::PathBuf::from(v));
        }
        let cookie_mode = args.syncookies.mode;
        self.syncookies.apply(&mut args.syncookies);
        if from_cli("syncookies_mode") {
            args.syncookies.mode = cookie_mode;
        }
    }
}

/// The effective settings, in the config file's own format.
pub fn render(args: &RunArgs) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let ifaces = if args.ifaces.is_empty() {
        "# interfaces: not set, the default route's interface is used".to_string()
    } else {
        let list: Vec<String> = args.ifaces.iter().map(|i| quote(i)).collect();
        format!("interfaces = [{}]", list.join(", "))
    };
    let web_config = match &args.web_config {
        Some(path) => format!("web_config = {}", quote(&path.display().to_string())),
        None => "# web_config: not set, plain HTTP without authentication".to_string(),
    };
    let events = match &args.events {
        Some(e) => format!("events = {}", quote(e)),
        None => "# events: not set, no events log".to_string(),
    };
    let ports: Vec<String> = args.ports.iter().map(u16::to_string).collect();
    let alertmanager = match &args.alertmanager_url {
        Some(url) => format!("alertmanager_url = {}", quote(url)),
        None => "# alertmanager_url: not set, alerts are not pushed".to_string(),
    };
    format!(
        "[monitor]\n{ifaces}\nmetrics_addr = {}\nlog_level = {}\n{events}\n{web_config}\npin_dir = {}\npersist = {}\n\n\
         [flows]\ntable_size = {}\nhandshake_timeout_seconds = {}\ninserts_per_sec_per_cpu = {}\n\n\
         [ports]\nnamed = [{}]\ntop = {}\ntop_interval_seconds = {}\n\n\
         [tls]\nhellos_per_sec_per_cpu = {}\n\n\
         [records]\nper_sec_per_cpu = {}\n\n\
         [detector]\nsyn_rate_floor = {}\nbaseline_factor = {}\ncompletion_ratio_max = {}\n\
         baseline_window_seconds = {}\nfire_after_seconds = {}\nclear_after_seconds = {}\n\
         scan_distinct_ports = {}\nscan_window_seconds = {}\n\n\
         [alerts]\n{alertmanager}\nresend_interval_seconds = {}\n\n{}\n{}",
        quote(&args.metrics_addr.to_string()),
        quote(&args.log_level),
        quote(
            &args
                .pins
                .dir
                .as_ref()
                .map_or(String::new(), |d| d.display().to_string())
        ),
        args.pins.persist,
        args.flow_table_size,
        args.handshake_timeout.as_secs_f64(),
        args.flow_inserts_per_sec,
        ports.join(", "),
        args.top_ports,
        args.top_ports_interval.as_secs_f64(),
        args.tls_hellos_per_sec,
        args.records_per_sec,
        args.detector.syn_rate_floor,
        args.detector.baseline_factor,
        args.detector.completion_ratio_max,
        1.0 / args.detector.baseline_alpha,
        args.detector.fire_after,
        args.detector.clear_after,
        args.scan.distinct_ports,
        args.scan.window.as_secs_f64(),
        args.alert_resend_interval.as_secs_f64(),
        crate::mitigation::config::render(&args.mitigation),
        crate::syncookies::config::render(&args.syncookies),
    )
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
