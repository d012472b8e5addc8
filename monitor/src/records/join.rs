//! Joins the TLS hellos of a flow to its `tcp_handshake` record: a
//! completed handshake is held back for [`HOLD`] (or until its final
//! ServerHello, or its close) while its hellos arrive. The hellos and the
//! kernel's records come through two ring buffers drained apart, so a
//! hello may arrive before its handshake's record (it waits, briefly, for
//! it), and a short connection's close may arrive before its hellos: the
//! close then waits behind its handshake for [`CLOSE_WAIT`].

use std::{collections::HashMap, time::Duration};

use monitor_common::record::{FlowRecord, RecordKind};

use super::{FlowHello, FlowId, Hello};

/// How long a completed handshake waits for its hellos.
pub const HOLD: Duration = Duration::from_secs(1);
/// How long a close waits behind its held handshake for the hellos
/// still in the other ring (drained every 50 ms).
pub const CLOSE_WAIT: Duration = Duration::from_millis(300);
/// How long a hello waits for its handshake's record.
const EARLY_WAIT: Duration = Duration::from_secs(5);
/// Handshakes held at most; past it, records go out without waiting.
pub const MAX_HELD: usize = 16_384;
/// Flows with hellos waiting for their record, at most.
const MAX_EARLY: usize = 4096;
/// Hellos kept per flow: two ClientHellos around a HelloRetryRequest, the
/// HelloRetryRequest and the ServerHello.
pub const MAX_HELLOS: usize = 4;

/// A record ready to be written, with the hellos seen on its flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub record: FlowRecord,
    /// (`bpf_ktime_get_ns`, hello), in arrival order.
    pub hellos: Vec<(u64, Hello)>,
}

struct Waiting {
    finished: Finished,
    /// The connection's close, once it came.
    close: Option<Finished>,
    /// CLOCK_MONOTONIC deadline.
    until_ns: u64,
}

impl Waiting {
    fn release(self, out: &mut Vec<Finished>) {
        out.push(self.finished);
        out.extend(self.close);
    }
}

#[derive(Default)]
pub struct Joiner {
    held: HashMap<FlowId, Waiting>,
    early: HashMap<FlowId, (u64, Vec<(u64, Hello)>)>,
}

fn push(hellos: &mut Vec<(u64, Hello)>, ts: u64, hello: Hello) {
    if hellos.len() < MAX_HELLOS {
        hellos.push((ts, hello));
    }
}

impl Joiner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Handshakes held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes one record from the kernel (or a timeout from the sweep).
    pub fn record(&mut self, record: FlowRecord, now_ns: u64, out: &mut Vec<Finished>) {
        let flow = FlowId::of_key(&record.key, record.role());
        let hellos = self.early.remove(&flow).map(|(_, h)| h).unwrap_or_default();
        match record.kind() {
            RecordKind::Completed => {
                let done = hellos.iter().any(|(_, h)| h.is_final());
                let finished = Finished { record, hellos };
                if done || self.held.len() >= MAX_HELD {
                    out.push(finished);
                } else if let Some(old) = self.held.insert(
                    flow,
                    Waiting {
                        finished,
                        close: None,
                        until_ns: now_ns + HOLD.as_nanos() as u64,
                    },
                ) {
                    // The tuple's previous connection.
                    old.release(out);
                }
            }
            RecordKind::Closed => {
                let close = Finished {
                    record,
                    hellos: Vec::new(),
                };
                match self.held.get_mut(&flow) {
                    Some(waiting) if waiting.close.is_none() => {
                        waiting.close = Some(close);
                        let wait = now_ns + CLOSE_WAIT.as_nanos() as u64;
                        waiting.until_ns = waiting.until_ns.min(wait);
                    }
                    _ => out.push(close),
                }
            }
            RecordKind::Reset | RecordKind::TimedOut => out.push(Finished { record, hellos }),
        }
    }

    /// Takes one hello from the TLS capture.
    pub fn hello(&mut self, hello: FlowHello, now_ns: u64, out: &mut Vec<Finished>) {
        let last = hello.hello.is_final();
        if let Some(waiting) = self.held.get_mut(&hello.flow) {
            push(&mut waiting.finished.hellos, hello.ts_ns, hello.hello);
            if last && let Some(waiting) = self.held.remove(&hello.flow) {
                waiting.release(out);
            }
            return;
        }
        if self.early.len() >= MAX_EARLY && !self.early.contains_key(&hello.flow) {
            return;
        }
        let entry = self
            .early
            .entry(hello.flow)
            .or_insert_with(|| (now_ns, Vec::new()));
        push(&mut entry.1, hello.ts_ns, hello.hello);
    }

    /// Releases the handshakes whose hold has passed, oldest first, and
    /// forgets hellos that found no record.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<Finished>) {
        let mut due: Vec<FlowId> = self
            .held
            .iter()
            .filter(|(_, w)| w.until_ns <= now_ns)
            .map(|(id, _)| *id)
            .collect();
        due.sort_by_key(|id| self.held[id].finished.record.ts_ns);
        for id in due {
            if let Some(waiting) = self.held.remove(&id) {
                waiting.release(out);
            }
        }
        let wait = EARLY_WAIT.as_nanos() as u64;
        self.early
            .retain(|_, (seen, _)| now_ns.saturating_sub(*seen) < wait);
    }

    /// Releases everything held (the daemon is stopping).
    pub fn flush(&mut self, out: &mut Vec<Finished>) {
        self.expire(u64::MAX, out);
    }
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;
