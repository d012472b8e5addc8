//! What a watcher asks for: the `watch` request as it travels over the
//! control socket, and the filter the daemon makes of it. The client
//! parses it too, so a typo fails before any daemon is asked; the daemon
//! parses it again, since anything may connect to its socket.

use monitor_common::record::ConnState;
use serde::{Deserialize, Serialize};

use crate::{
    mitigation::cidr::{Cidr, CidrError},
    records::hub::WatchItem,
};

/// `{"op":"watch", ...}` without its `op`: the filters as given, which
/// are also the command's flags (the doc comments are their help).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct WatchRequest {
    /// Only records of this server port.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Only records in this connection state (S0, S1, SF, REJ, RSTO, RSTR,
    /// RSTOS0; any case); repeat or separate with commas for several.
    #[arg(long, value_name = "S")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<String>,
    /// Only records with this SNI: a host name, or `*.example.com` for
    /// any name under example.com.
    #[arg(long, value_name = "PATTERN")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Only records of clients in CIDR (or of a single address).
    #[arg(long, value_name = "CIDR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Print each record as its events-log JSON line instead of text.
    #[arg(long)]
    #[serde(default)]
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("--port 0: a server port is 1 to 65535")]
    Port,
    #[error("--state {0:?}: unknown connection state (use {states})", states = state_names())]
    State(String),
    #[error("--state {0:?}: an empty connection state")]
    EmptyState(String),
    #[error(
        "--sni {0:?}: expected a host name (www.example.com) or a leading wildcard (*.example.com)"
    )]
    Sni(String),
    /// Not a `source`: the message already says it all.
    #[error("--client: {0}")]
    Client(CidrError),
}

/// The records' states, as the error lists them: `S0, S1, ... or RSTOS0`.
fn state_names() -> String {
    let names: Vec<&str> = ConnState::ALL.iter().map(|s| s.name()).collect();
    match names.split_last() {
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// An SNI pattern, lower-cased: host names compare without ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SniPattern {
    Exact(String),
    /// `*.example.com` kept as `.example.com`: at least one label more.
    Suffix(String),
}

impl SniPattern {
    fn parse(text: &str) -> Result<Self, FilterError> {
        let bad = || FilterError::Sni(text.to_string());
        let (suffix, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let valid_name = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c != '*' && !c.is_whitespace() && !c.is_control());
        if !valid_name {
            return Err(bad());
        }
        let name = name.to_ascii_lowercase();
        Ok(if suffix {
            Self::Suffix(format!(".{name}"))
        } else {
            Self::Exact(name)
        })
    }

    fn matches(&self, sni: &str) -> bool {
        match self {
            Self::Exact(name) => sni.eq_ignore_ascii_case(name),
            Self::Suffix(suffix) => {
                let (sni, suffix) = (sni.as_bytes(), suffix.as_bytes());
                sni.len() > suffix.len()
                    && sni[sni.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// Which records a watcher gets: every given filter must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchFilter {
    port: Option<u16>,
    /// Empty: any state.
    states: Vec<ConnState>,
    sni: Option<SniPattern>,
    client: Option<Cidr>,
}

impl WatchFilter {
    pub fn parse(request: &WatchRequest) -> Result<Self, FilterError> {
        if request.port == Some(0) {
            return Err(FilterError::Port);
        }
        let mut states = Vec::new();
        for given in &request.state {
            for name in given.split(',').map(str::trim) {
                if name.is_empty() {
                    return Err(FilterError::EmptyState(given.clone()));
                }
                let state = ConnState::ALL
                    .into_iter()
                    .find(|s| s.name().eq_ignore_ascii_case(name))
                    .ok_or_else(|| FilterError::State(name.to_string()))?;
                if !states.contains(&state) {
                    states.push(state);
                }
            }
        }
        Ok(Self {
            port: request.port,
            states,
            sni: request.sni.as_deref().map(SniPattern::parse).transpose()?,
            client: request
                .client
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(FilterError::Client)?,
        })
    }

    pub fn matches(&self, item: &WatchItem) -> bool {
        self.port.is_none_or(|p| p == item.server_port)
            && (self.states.is_empty()
                || item
                    .conn_state
                    .is_some_and(|s| self.states.iter().any(|w| w.name() == s)))
            && self
                .sni
                .as_ref()
                .is_none_or(|p| item.sni.iter().any(|s| p.matches(s)))
            && self.client.is_none_or(|c| c.contains(item.client_ip))
    }
}
