//! Handshake records, daemon half (the kernel half is
//! `monitor-ebpf/src/records.rs`): one `tcp_handshake` line when a
//! handshake's outcome is known and one `tcp_close` line when a tracked
//! connection ends, to the events log and to `watch`.
//!
//! The kernel writes completions, resets and closes of flows that took a
//! half-open slot; timeouts come from the daemon's once-a-second sweep of
//! the half-open table ([`timeouts`]), aggregated under a flood; the TLS
//! hellos of a completed handshake join its record within a short hold
//! ([`join`]).

pub mod hub;
pub mod join;
pub mod metrics;
pub mod render;
mod task;
pub mod timeouts;

use std::net::IpAddr;

use monitor_common::flow::{FlowKey, Role};

pub use task::{
    DRAIN_INTERVAL, RecordCore, RecordInputs, RecordParts, RecordSettings, prepare, start,
};

use crate::{
    flows::ip_addr,
    tls::{ClientHelloSummary, ServerHelloSummary},
};

/// A flow's two ends, client first, on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId {
    pub client: ([u8; 16], u16),
    pub server: ([u8; 16], u16),
    pub family: u8,
    pub slot: u8,
}

impl FlowId {
    /// The flow of a kernel key, whose local end plays `role`.
    pub fn of_key(key: &FlowKey, role: Role) -> Self {
        let local = (key.local_addr, key.local_port);
        let remote = (key.remote_addr, key.remote_port);
        let (client, server) = match role {
            Role::Server => (remote, local),
            Role::Client => (local, remote),
        };
        Self {
            client,
            server,
            family: key.family,
            slot: key.slot,
        }
    }

    pub fn client_ip(&self) -> IpAddr {
        ip_addr(self.family, &self.client.0)
    }

    pub fn server_ip(&self) -> IpAddr {
        ip_addr(self.family, &self.server.0)
    }
}

/// A parsed hello of some flow, as the TLS capture hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    Client(ClientHelloSummary),
    Server(ServerHelloSummary),
}

impl Hello {
    /// A ServerHello that is not a HelloRetryRequest: the last hello.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Server(s) if !s.hello_retry_request)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowHello {
    pub flow: FlowId,
    /// `bpf_ktime_get_ns` of the hello's first segment.
    pub ts_ns: u64,
    pub hello: Hello,
}
