//! Applies the guard ([`super::guard`]) to every interface in cookie mode:
//! inspects veth peers at start (and while they are the reason, or before
//! a retry), reads the counters each tick, and turns the guard's changes
//! into what the daemon shows: the `SyncookieFallback` alert, a log line,
//! and `handshake_syncookie_fallbacks_total`.

use std::time::Instant;

use super::{
    ethtool::{Ethtool, xdp_tx_errors},
    guard::{self, Change, Guard, Peer, Reading, Reason},
    peer::{PeerFacts, PeerProbe},
};
use crate::{
    detector::{AlertBoard, SYNCOOKIE_FALLBACK, SeriesKey, signal},
    interfaces::Interface,
};

struct Watched {
    name: String,
    slot: u32,
    /// `None`: no veth, or its peer could not be found.
    probe: Option<PeerProbe>,
    /// A veth: its XDP_TX errors are read each tick.
    veth: bool,
    guard: Guard,
    /// Per [`Reason::ALL`].
    fallbacks: [u64; 2],
}

/// The guards of the interfaces in cookie mode.
#[derive(Default)]
pub struct Guards {
    watched: Vec<Watched>,
    /// For the veths' statistics, in the daemon's namespace.
    ethtool: Option<Ethtool>,
    alerts: Option<AlertBoard>,
}

impl Guards {
    /// Inspects every interface of `slots` that is attached (in
    /// `interfaces`); interfaces whose peer cannot receive XDP_TX start
    /// in fallback.
    pub fn start(interfaces: &[Interface], slots: &[(String, u32)]) -> Self {
        let mut this = Self {
            ethtool: Ethtool::open().ok(),
            ..Self::default()
        };
        let now = Instant::now();
        for (name, slot) in slots {
            let Some(iface) = interfaces.iter().find(|i| &i.name == name) else {
                continue;
            };
            let (probe, veth) = match PeerProbe::find(name, iface.ifindex) {
                Ok(Some(probe)) => (Some(probe), true),
                Ok(None) => (None, false),
                Err(err) => {
                    tracing::warn!(
                        interface = %name,
                        "SYN cookies: cannot inspect this veth's peer ({err}); if it runs neither \
                         an XDP program nor GRO, no cookie SYN-ACK reaches it, and only the \
                         run-time watch (no validated cookie ACKs) notices"
                    );
                    (None, true)
                }
            };
            let mut watched = Watched {
                name: name.clone(),
                slot: *slot,
                probe,
                veth,
                guard: Guard::default(),
                fallbacks: [0; 2],
            };
            let peer = watched.inspect();
            if let Some(change) = guard::judge(&mut watched.guard, Reading::default(), peer, now) {
                watched.apply(change, None);
            }
            this.watched.push(watched);
        }
        this
    }

    /// Alerts go to `board` from now on.
    pub fn set_alerts(&mut self, board: AlertBoard) {
        self.alerts = Some(board);
        self.record_alerts();
    }

    /// Whether interface `slot` may answer SYNs with XDP cookies.
    pub fn allows(&self, slot: u32) -> bool {
        self.watched
            .iter()
            .find(|w| w.slot == slot)
            .is_none_or(|w| w.guard.allows())
    }

    /// One tick of interface `slot`'s guard: its cookie counters
    /// (`sent`, `validated`) and whether it answers now.
    pub fn tick(&mut self, slot: u32, sent: u64, validated: u64, answering: bool, now: Instant) {
        let ethtool = self.ethtool.as_ref();
        let Some(w) = self.watched.iter_mut().find(|w| w.slot == slot) else {
            return;
        };
        let tx_errors = w
            .veth
            .then(|| xdp_tx_errors(&ethtool?.stats(&w.name).ok()?))
            .flatten();
        let reading = Reading {
            sent,
            validated,
            tx_errors,
            answering,
        };
        let peer = if w.guard.wants_peer(now) {
            w.inspect()
        } else {
            Peer::Unknown
        };
        if let Some(change) = guard::judge(&mut w.guard, reading, peer, now) {
            w.apply(change, Some(reading));
        }
        self.record_alerts();
    }

    fn record_alerts(&self) {
        let Some(board) = &self.alerts else { return };
        for w in &self.watched {
            let key = SeriesKey {
                interface: w.name.clone(),
                port: "all".into(),
            };
            let reading = signal::Reading {
                syn_rate: 0.0,
                completion_ratio: 0.0,
                baseline: 0.0,
                flood: false,
            };
            board.record(SYNCOOKIE_FALLBACK, &key, reading, !w.guard.allows());
        }
    }

    /// (interface, reason, fallbacks so far) of every watched interface.
    pub fn fallbacks(&self) -> impl Iterator<Item = (&str, Reason, u64)> {
        self.watched.iter().flat_map(|w| {
            Reason::ALL
                .iter()
                .zip(w.fallbacks)
                .map(|(r, n)| (w.name.as_str(), *r, n))
        })
    }
}

impl Watched {
    /// The peer as it is now, logged if it cannot be read.
    fn inspect(&mut self) -> Peer {
        let Some(probe) = self.probe.as_mut() else {
            return Peer::Unknown;
        };
        match probe.inspect() {
            Ok(facts) if facts.receives() => Peer::Receives,
            Ok(facts) => {
                if self.guard.allows() {
                    warn_peer(&self.name, &facts);
                }
                Peer::CannotReceive
            }
            Err(err) => {
                tracing::warn!(interface = %self.name, "SYN cookies: inspecting the veth's peer: {err}");
                Peer::Unknown
            }
        }
    }

    fn apply(&mut self, change: Change, reading: Option<Reading>) {
        let reason = match change {
            Change::FellBack(reason) => {
                let i = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
                self.fallbacks[i] += 1;
                reason
            }
            Change::Now(reason) => reason,
            Change::Resumed => {
                tracing::info!(
                    alertname = SYNCOOKIE_FALLBACK,
                    state = "resolved",
                    interface = %self.name,
                    "SYN cookies from XDP answer on this interface again"
                );
                return;
            }
        };
        tracing::warn!(
            alertname = SYNCOOKIE_FALLBACK,
            state = "firing",
            interface = %self.name,
            reason = reason.name(),
            cookie_syn_acks_sent = reading.map(|r| r.sent),
            cookie_acks_validated = reading.map(|r| r.validated),
            xdp_tx_errors = reading.and_then(|r| r.tx_errors),
            "SYN cookies from XDP off on this interface: {}; its SYNs go to the kernel's stack \
             (and its own SYN cookies) {}",
            match reason {
                Reason::PeerCannotReceive => "its veth peer cannot receive XDP_TX frames",
                Reason::NoValidatedAcks => "cookie SYN-ACKs went out and no cookie ACK came back",
            },
            match reason {
                Reason::PeerCannotReceive => "until the peer runs a native XDP program",
                Reason::NoValidatedAcks => "until XDP cookies are tried again (backing off)",
            },
        );
    }
}

fn warn_peer(iface: &str, facts: &PeerFacts) {
    tracing::warn!(
        interface = %iface,
        peer = %facts.describe(),
        peer_gro = facts.gro,
        fix = %facts.fix(),
        "SYN cookies: the veth peer runs no native XDP program, so the frames XDP sends \
         back (XDP_TX), cookie SYN-ACKs included, never reach it (without NAPI they are \
         dropped; with GRO alone they wait in its ring, never woken); attach a native XDP \
         program to the peer (one that passes everything will do, `fix`) and XDP cookies \
         resume by themselves"
    );
}
