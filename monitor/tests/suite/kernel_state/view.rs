//! The daemon's kernel view (tracepoint metrics) read back from scrapes,
//! with the scrapes' own connections accounted for.
//!
//! A scrape is itself a TCP connection in the daemon's namespace (the
//! test's client on loopback, the daemon's server), so every scrape shows
//! up in `handshake_tcp_state_transitions_total`. Its cost is the fixed set
//! [`SCRAPE`]: the opening half lands before the daemon reads its counters,
//! the closing half after, so scrape k's closing half and scrape k+1's
//! opening half add up to one whole connection. With k scrapes after the
//! baseline, the counters have moved by k * [`SCRAPE`] plus whatever the
//! test did, exactly.

use std::{collections::BTreeMap, time::Duration};

use crate::support::{cookies::netstat, daemon::Daemon, prom, wait_until};

const TRANSITIONS: &str = "handshake_tcp_state_transitions_total";
/// The kernel counts synchronously; this absorbs scheduling noise only.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a rebaseline may take: the last /healthz poll of the start-up
/// may still be closing when the first scrape runs.
const BASELINE_TIMEOUT: Duration = Duration::from_secs(10);

/// One scrape connection, both ends in the daemon's namespace.
pub const SCRAPE: [(&str, &str); 10] = [
    // The test's client: the daemon answers and closes first, so the
    // client's close is the passive one.
    ("CLOSE", "SYN_SENT"),
    ("SYN_SENT", "ESTABLISHED"),
    ("ESTABLISHED", "CLOSE_WAIT"),
    ("CLOSE_WAIT", "LAST_ACK"),
    ("LAST_ACK", "CLOSE"),
    // The daemon's accepted socket: born as LISTEN -> SYN_RECV when the
    // handshake completes, active close. TIME_WAIT belongs to a separate
    // timewait socket the tracepoint never sees, so FIN_WAIT2 -> CLOSE.
    ("LISTEN", "SYN_RECV"),
    ("SYN_RECV", "ESTABLISHED"),
    ("ESTABLISHED", "FIN_WAIT1"),
    ("FIN_WAIT1", "FIN_WAIT2"),
    ("FIN_WAIT2", "CLOSE"),
];

/// Everything the tracepoint metrics say, as signed numbers so that
/// differences can be shown as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelView {
    /// Non-zero cells only.
    pub transitions: BTreeMap<(String, String), i64>,
    pub synack_retransmits: i64,
    pub resets_sent: i64,
    pub resets_received: i64,
    pub unattributed: i64,
}

impl KernelView {
    pub fn parse(text: &str) -> Self {
        let mut transitions = BTreeMap::new();
        let prefix = format!("{TRANSITIONS}{{from=\"");
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let parsed = (|| {
                let (from, rest) = rest.split_once("\",to=\"")?;
                let (to, value) = rest.split_once("\"} ")?;
                Some((from, to, value.trim().parse::<i64>().ok()?))
            })();
            let (from, to, value) = parsed.unwrap_or_else(|| panic!("unparsable line {line:?}"));
            transitions.insert((from.to_string(), to.to_string()), value);
        }
        let get = |name, labels: &[(&str, &str)]| prom::expect(text, name, labels) as i64;
        let resets = "handshake_kernel_resets_total";
        Self {
            transitions,
            synack_retransmits: get("handshake_kernel_synack_retransmits_total", &[]),
            resets_sent: get(resets, &[("direction", "sent")]),
            resets_received: get(resets, &[("direction", "received")]),
            unattributed: get("handshake_kernel_unattributed_events_total", &[]),
        }
    }

    /// A view with these transition counts and no other events.
    pub fn with_transitions(counts: &[(&str, &str, usize)]) -> Self {
        let mut view = Self::default();
        for &(from, to, count) in counts {
            view.add(from, to, count as i64);
        }
        view
    }

    pub fn add(&mut self, from: &str, to: &str, count: i64) {
        let cell = self
            .transitions
            .entry((from.to_string(), to.to_string()))
            .or_insert(0);
        *cell += count;
        if *cell == 0 {
            self.transitions.remove(&(from.to_string(), to.to_string()));
        }
    }

    /// `self - base - scrapes * SCRAPE`.
    fn minus(&self, base: &Self, scrapes: i64) -> Self {
        let mut out = self.clone();
        for ((from, to), count) in &base.transitions {
            out.add(from, to, -count);
        }
        for (from, to) in SCRAPE {
            out.add(from, to, -scrapes);
        }
        out.synack_retransmits -= base.synack_retransmits;
        out.resets_sent -= base.resets_sent;
        out.resets_received -= base.resets_received;
        out.unattributed -= base.unattributed;
        out
    }
}

/// Reads a daemon's kernel view relative to a baseline taken when the
/// namespace was quiet.
pub struct Observer<'a> {
    daemon: &'a Daemon,
    baseline: KernelView,
    /// Scrapes since the baseline.
    scrapes: i64,
    /// The namespace's own count of RSTs sent (`Tcp: OutRsts`) at the
    /// baseline.
    out_rsts: i64,
}

impl<'a> Observer<'a> {
    /// Takes a baseline once one idle scrape costs exactly [`SCRAPE`],
    /// which also proves that cost.
    pub fn new(daemon: &'a Daemon) -> Self {
        let mut observer = Self {
            daemon,
            baseline: KernelView::parse(&daemon.scrape()),
            scrapes: 0,
            out_rsts: 0,
        };
        let mut last = KernelView::default();
        let quiet = wait_until(BASELINE_TIMEOUT, || {
            let now = KernelView::parse(&daemon.scrape());
            last = now.minus(&observer.baseline, 1);
            observer.baseline = now;
            last == KernelView::default()
        });
        assert!(
            quiet,
            "an idle scrape never cost exactly one scrape connection; last difference: {last:#?}"
        );
        observer.out_rsts = observer.kernel_out_rsts();
        observer
    }

    /// The delta, and `want` with the RSTs the kernel counted meanwhile
    /// (read first: one sent between the two reads shows as a difference
    /// until the next poll).
    fn compare(&mut self, want: &KernelView) -> (KernelView, KernelView) {
        let mut expected = want.clone();
        expected.resets_sent = self.kernel_out_rsts() - self.out_rsts;
        (self.delta(), expected)
    }

    /// RSTs the daemon's namespace has sent, by its own SNMP counter.
    fn kernel_out_rsts(&self) -> i64 {
        netstat(self.daemon.ns())
            .get("TcpOutRsts")
            .copied()
            .unwrap_or_else(|| panic!("no Tcp OutRsts in {}", self.daemon.ns())) as i64
    }

    /// What happened since the baseline, scrapes taken out.
    pub fn delta(&mut self) -> KernelView {
        let text = self.daemon.scrape();
        self.scrapes += 1;
        KernelView::parse(&text).minus(&self.baseline, self.scrapes)
    }

    /// Waits until the delta is `want`, then checks it again after a pause,
    /// so that over-counting shows as well.
    ///
    /// The RSTs sent are the kernel's own count over the same time
    /// (`Tcp: OutRsts`), at least the ones `want` plans: on a loaded
    /// machine a segment retransmitted after its socket closed draws one
    /// more, which the daemon must count as well.
    pub fn assert_settles_at(&mut self, want: &KernelView) {
        let (mut got, mut expected) = (KernelView::default(), want.clone());
        wait_until(SETTLE_TIMEOUT, || {
            (got, expected) = self.compare(want);
            got == expected
        });
        if got == expected {
            std::thread::sleep(Duration::from_millis(300));
            (got, expected) = self.compare(want);
        }
        assert!(
            expected.resets_sent >= want.resets_sent,
            "the kernel sent {} RSTs, fewer than the {} planned",
            expected.resets_sent,
            want.resets_sent
        );
        assert_eq!(
            got,
            expected,
            "kernel view (since the baseline, scrapes taken out) is wrong\nstderr:\n{}",
            self.daemon.stderr()
        );
    }
}
