//! The once-a-second work, live and in a replay alike: end the handshakes
//! past their timeout, measure the tables, run the flood detector, then the
//! mitigation (expiry, offenders) and the SYN cookies.

use std::{
    io,
    sync::{Arc, Mutex},
};

use crate::{
    detector::{AlertBoard, Detector, SYN_FLOOD},
    flows::{Activity, FlowTracker},
    mitigation::Mitigation,
    records::timeouts::TimeoutBatch,
    syncookies::Syncookies,
};

/// What follows the sweep: the mitigation, the cookies (none in a replay)
/// and the board where floods fire.
pub struct Followers {
    pub mitigation: Arc<Mutex<Mitigation>>,
    pub cookies: Option<Arc<Mutex<Syncookies>>>,
    pub board: AlertBoard,
}

/// When a sweep happens.
#[derive(Debug, Clone, Copy)]
pub enum At {
    /// Now, read once the tracker is locked: a scrape's sweep may have
    /// held the lock meanwhile, and the sweep's time must not go back.
    Now,
    /// A replay's deadline on the capture's clock.
    Time(u64),
}

/// One sweep; returns its result and the handshakes it found timed out,
/// for their records.
pub fn once(
    tracker: &Mutex<FlowTracker>,
    detector: &Mutex<Detector>,
    followers: &Followers,
    at: At,
    activity: Activity,
) -> (io::Result<()>, TimeoutBatch) {
    let mut tracker = tracker.lock().unwrap_or_else(|p| p.into_inner());
    let now_ns = match at {
        At::Now => crate::clock::monotonic_ns(),
        At::Time(ns) => ns,
    };
    let swept = tracker.sweep_after(now_ns, activity);
    let batch = timeout_batch(&mut tracker, now_ns);
    // Then the flood test, on counters as fresh as the sweep's.
    detector
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .tick(&tracker);
    drop(tracker);
    let flooded = followers.board.firing_interfaces(SYN_FLOOD);
    let mut mitigation = followers
        .mitigation
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Err(err) = mitigation.tick(&flooded) {
        tracing::warn!("mitigation tick failed: {err}");
    }
    drop(mitigation);
    if let Some(cookies) = &followers.cookies {
        let mut cookies = cookies.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(err) = cookies.tick(&flooded, std::time::Instant::now()) {
            tracing::warn!("SYN-cookie tick failed: {err}");
        }
    }
    (swept, batch)
}

/// The handshakes the sweep found timed out, for their records.
fn timeout_batch(tracker: &mut FlowTracker, now_ns: u64) -> TimeoutBatch {
    let fresh = tracker.take_fresh_timeouts();
    TimeoutBatch {
        expired: fresh.expired,
        overflow: fresh.overflow,
        total_timeouts: tracker.totals().timed_out.values().sum(),
        now_ns,
        timeout_ns: tracker.settings().handshake_timeout.as_nanos() as u64,
    }
}
