//! When an interface must stop answering SYNs with XDP cookies, as pure
//! logic: fed the interface's cookie counters (and what its veth peer looks
//! like, when that was asked) once a tick, it decides when the interface
//! falls back to the stack (whose own SYN cookies then take over) and when
//! it answers again. See docs/mitigation.md#when-cookie-syn-acks-cannot-leave.

use std::time::{Duration, Instant};

/// Cookie SYN-ACKs sent with no cookie ACK validated, at least, before
/// the run-time watch gives up on an interface...
pub const MIN_UNANSWERED: u64 = 64;
/// ...over at least this long.
pub const MIN_WINDOW: Duration = Duration::from_secs(3);
/// After a run-time fallback, XDP cookies are tried again this long
/// later, then twice as long after each fallback in a row...
pub const FIRST_RETRY: Duration = Duration::from_secs(60);
/// ...up to this.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);

/// Why an interface stopped answering with XDP cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its veth peer runs no native XDP program: XDP_TX frames never
    /// reach it.
    PeerCannotReceive,
    /// Cookie SYN-ACKs went out and no cookie ACK came back.
    NoValidatedAcks,
}

impl Reason {
    pub const ALL: [Reason; 2] = [Reason::PeerCannotReceive, Reason::NoValidatedAcks];

    /// The `reason` label.
    pub fn name(self) -> &'static str {
        match self {
            Reason::PeerCannotReceive => "peer_cannot_receive",
            Reason::NoValidatedAcks => "no_validated_acks",
        }
    }
}

/// The interface's cookie counters at a tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// `CookieEvent::Sent` and `CookieEvent::Validated`, cumulative.
    pub sent: u64,
    pub validated: u64,
    /// XDP_TX frames the interface failed to deliver, where it counts them
    /// (a veth); `None` elsewhere.
    pub tx_errors: Option<u64>,
    /// Some port of the interface answers SYNs with cookies now.
    pub answering: bool,
}

/// What an inspection of the veth peer found this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Receives,
    CannotReceive,
    /// Not asked, not a veth, or not inspectable.
    Unknown,
}

/// A change the daemon applies (and counts, logs and alerts on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    FellBack(Reason),
    /// Still falling back, for another reason now (not a new fallback).
    Now(Reason),
    Resumed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fallback {
    reason: Reason,
    /// When a `NoValidatedAcks` fallback tries XDP cookies again.
    retry_at: Option<Instant>,
}

/// Since when cookie SYN-ACKs have gone unanswered, and the counters then.
#[derive(Debug, Clone, Copy)]
struct Window {
    since: Instant,
    sent: u64,
    tx_errors: Option<u64>,
}

/// One interface's guard.
#[derive(Debug, Clone)]
pub struct Guard {
    fallback: Option<Fallback>,
    window: Option<Window>,
    last: Option<Reading>,
    backoff: Duration,
}

impl Default for Guard {
    fn default() -> Self {
        Self {
            fallback: None,
            window: None,
            last: None,
            backoff: FIRST_RETRY,
        }
    }
}

impl Guard {
    /// Whether the interface may answer SYNs with XDP cookies.
    pub fn allows(&self) -> bool {
        self.fallback.is_none()
    }

    pub fn reason(&self) -> Option<Reason> {
        self.fallback.map(|f| f.reason)
    }

    /// Whether the decision this tick needs the peer inspected: while it
    /// is the reason (to resume once it is fixed), and before a retry.
    pub fn wants_peer(&self, now: Instant) -> bool {
        match self.fallback {
            Some(Fallback {
                retry_at: Some(at), ..
            }) => now >= at,
            Some(_) => true,
            None => false,
        }
    }
}

/// One tick of `guard`: `reading` taken at `now`, `peer` as inspected (or
/// `Unknown`). A SYN-ACK counts as unanswered once it is a tick old (its ACK
/// has had that long); the watch restarts at every validated cookie and
/// whenever the interface stops answering.
pub fn judge(guard: &mut Guard, reading: Reading, peer: Peer, now: Instant) -> Option<Change> {
    let last = guard.last.replace(reading);
    match guard.fallback {
        Some(Fallback { reason, retry_at }) => {
            let due = retry_at.is_none_or(|at| now >= at);
            match (reason, peer) {
                (Reason::PeerCannotReceive, Peer::Receives) => resume(guard),
                (Reason::PeerCannotReceive, _) => None,
                (Reason::NoValidatedAcks, _) if !due => None,
                (Reason::NoValidatedAcks, Peer::CannotReceive) => {
                    guard.fallback = Some(Fallback {
                        reason: Reason::PeerCannotReceive,
                        retry_at: None,
                    });
                    Some(Change::Now(Reason::PeerCannotReceive))
                }
                (Reason::NoValidatedAcks, _) => resume(guard),
            }
        }
        None if peer == Peer::CannotReceive => fall_back(guard, Reason::PeerCannotReceive, None),
        None => {
            let last = last?;
            if !reading.answering || reading.validated != last.validated {
                guard.window = None;
                if reading.validated != last.validated {
                    guard.backoff = FIRST_RETRY;
                }
                return None;
            }
            let window = *guard.window.get_or_insert(Window {
                since: now,
                sent: last.sent,
                tx_errors: last.tx_errors,
            });
            // SYN-ACKs sent before the previous tick: each had a tick to
            // be answered.
            let unanswered = last.sent.saturating_sub(window.sent);
            // Where the interface counts failed XDP_TX, a flood nobody
            // answers is no reason: only frames that did not leave are.
            let undelivered = match (reading.tx_errors, window.tx_errors) {
                (Some(now), Some(then)) => now > then,
                _ => true,
            };
            if unanswered >= MIN_UNANSWERED
                && now.duration_since(window.since) >= MIN_WINDOW
                && undelivered
            {
                let retry = now + guard.backoff;
                guard.backoff = (guard.backoff * 2).min(MAX_RETRY);
                return fall_back(guard, Reason::NoValidatedAcks, Some(retry));
            }
            None
        }
    }
}

fn fall_back(guard: &mut Guard, reason: Reason, retry_at: Option<Instant>) -> Option<Change> {
    guard.fallback = Some(Fallback { reason, retry_at });
    guard.window = None;
    Some(Change::FellBack(reason))
}

fn resume(guard: &mut Guard) -> Option<Change> {
    guard.fallback = None;
    guard.window = None;
    Some(Change::Resumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn answering(sent: u64, validated: u64) -> Reading {
        Reading {
            sent,
            validated,
            tx_errors: None,
            answering: true,
        }
    }

    /// Ticks a second apart from `t0`: the changes and the tick they came at.
    fn run(guard: &mut Guard, t0: Instant, readings: &[Reading]) -> Vec<(usize, Change)> {
        readings
            .iter()
            .enumerate()
            .filter_map(|(i, r)| judge(guard, *r, Peer::Unknown, t0 + S * i as u32).map(|c| (i, c)))
            .collect()
    }

    #[test]
    fn a_peer_that_cannot_receive_falls_back_at_start_and_resumes_once_fixed() {
        let (mut g, t0) = (Guard::default(), Instant::now());
        let r = Reading::default();
        assert_eq!(
            judge(&mut g, r, Peer::CannotReceive, t0),
            Some(Change::FellBack(Reason::PeerCannotReceive))
        );
        assert!(!g.allows() && g.wants_peer(t0));
        assert_eq!(judge(&mut g, r, Peer::CannotReceive, t0 + S), None);
        assert_eq!(judge(&mut g, r, Peer::Unknown, t0 + S * 2), None);
        assert_eq!(
            judge(&mut g, r, Peer::Receives, t0 + S * 3),
            Some(Change::Resumed)
        );
        assert!(g.allows() && !g.wants_peer(t0 + S * 3));
    }

    #[test]
    fn unanswered_syn_acks_fall_back_after_sixty_four_and_three_seconds() {
        let (mut g, t0) = (Guard::default(), Instant::now());
        // 30 SYN-ACKs a second, none answered: the window opens at tick 1
        // (sent 0 at tick 0); at tick 4 it is 3 s old and holds the 90 sent
        // by tick 3.
        let readings: Vec<Reading> = (0..8).map(|i| answering(30 * i, 0)).collect();
        assert_eq!(
            run(&mut g, t0, &readings),
            [(4, Change::FellBack(Reason::NoValidatedAcks))]
        );
        assert_eq!(g.reason(), Some(Reason::NoValidatedAcks));
    }

    #[test]
    fn too_few_or_too_short_is_no_fallback() {
        let t0 = Instant::now();
        // 63 unanswered over a minute.
        let few: Vec<Reading> = (0..60).map(|i| answering(i.min(63), 0)).collect();
        assert!(run(&mut Guard::default(), t0, &few).is_empty());
        // 1000 in under three seconds, then validated.
        let mut burst: Vec<Reading> = (0..3).map(|i| answering(500 * i, 0)).collect();
        burst.push(answering(1500, 1));
        burst.push(answering(1500, 1));
        assert!(run(&mut Guard::default(), t0, &burst).is_empty());
    }

    #[test]
    fn one_validated_cookie_restarts_the_watch() {
        let (mut g, t0) = (Guard::default(), Instant::now());
        let readings = [
            answering(0, 0),
            answering(100, 0),
            answering(200, 0),
            answering(300, 1),
            answering(400, 1),
            answering(500, 1),
            answering(600, 1),
        ];
        // The window restarts at tick 4 (from 300 sent): 3 s old at tick 7.
        assert!(run(&mut g, t0, &readings).is_empty());
        assert_eq!(
            judge(&mut g, answering(700, 1), Peer::Unknown, t0 + S * 7),
            Some(Change::FellBack(Reason::NoValidatedAcks))
        );
    }

    #[test]
    fn not_answering_restarts_the_watch() {
        let mut readings: Vec<Reading> = (0..3).map(|i| answering(50 * i, 0)).collect();
        readings.push(Reading {
            answering: false,
            ..answering(150, 0)
        });
        readings.extend((0..3).map(|i| answering(150 + 50 * i, 0)));
        assert!(run(&mut Guard::default(), Instant::now(), &readings).is_empty());
    }

    #[test]
    fn frames_the_interface_delivered_are_no_reason() {
        // A flood nobody answers, on a veth whose XDP_TX errors stay flat.
        let delivered: Vec<Reading> = (0..10)
            .map(|i| Reading {
                tx_errors: Some(5),
                ..answering(1000 * i, 0)
            })
            .collect();
        assert!(run(&mut Guard::default(), Instant::now(), &delivered).is_empty());
        let dropped: Vec<Reading> = (0..10)
            .map(|i| Reading {
                tx_errors: Some(5 + 1000 * i),
                ..answering(1000 * i, 0)
            })
            .collect();
        assert_eq!(
            run(&mut Guard::default(), Instant::now(), &dropped),
            [(4, Change::FellBack(Reason::NoValidatedAcks))]
        );
    }

    /// A second-by-second clock and 100 SYN-ACKs a second.
    struct Clock {
        t: Instant,
        sent: u64,
    }

    impl Clock {
        fn tick(&mut self, g: &mut Guard, validated: u64) -> Option<Change> {
            self.t += S;
            self.sent += 100;
            judge(g, answering(self.sent, validated), Peer::Unknown, self.t)
        }

        /// Ticks to a fallback, then to the retry: seconds until it.
        fn fall_back_and_wait(&mut self, g: &mut Guard, validated: u64) -> u32 {
            let mut ticks = 0;
            while self.tick(g, validated).is_none() {
                ticks += 1;
                assert!(ticks < 10, "no fallback");
            }
            let mut waited = 1;
            while self.tick(g, validated) != Some(Change::Resumed) {
                waited += 1;
            }
            waited
        }
    }

    #[test]
    fn retries_back_off_to_an_hour_and_a_validated_cookie_resets_them() {
        let mut g = Guard::default();
        let mut clock = Clock {
            t: Instant::now(),
            sent: 0,
        };
        let waits: Vec<u32> = (0..8)
            .map(|_| clock.fall_back_and_wait(&mut g, 0))
            .collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        // A validated cookie after the retry: the next wait is the first.
        assert_eq!(clock.tick(&mut g, 1), None);
        assert_eq!(clock.fall_back_and_wait(&mut g, 1), 60);
    }

    #[test]
    fn a_retry_finds_the_peer_broken_and_waits_for_it_instead() {
        let (mut g, t0) = (Guard::default(), Instant::now());
        let readings: Vec<Reading> = (0..5).map(|i| answering(30 * i, 0)).collect();
        run(&mut g, t0, &readings);
        let retry = t0 + S * 4 + FIRST_RETRY;
        assert!(!g.wants_peer(retry - S));
        assert!(g.wants_peer(retry));
        let r = answering(120, 0);
        assert_eq!(
            judge(&mut g, r, Peer::CannotReceive, retry),
            Some(Change::Now(Reason::PeerCannotReceive))
        );
        assert_eq!(judge(&mut g, r, Peer::Unknown, retry + MAX_RETRY), None);
        assert_eq!(
            judge(&mut g, r, Peer::Receives, retry + MAX_RETRY),
            Some(Change::Resumed)
        );
    }
}
