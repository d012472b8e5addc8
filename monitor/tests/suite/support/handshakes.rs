//! The daemon on one interface, and its TCP lifecycle metrics read back.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use super::{
    daemon::{BINARY, Daemon},
    prom, wait_until,
};

pub const SERVER: &str = "server";
pub const CLIENT: &str = "client";
pub const SYN_TO_SYNACK: &str = "syn_to_synack";
pub const SYNACK_TO_ACK: &str = "synack_to_ack";
/// The same bound as `Daemon::start`: loading takes well under a second.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Counters lag the traffic by scheduling noise only.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Two evaluations of the flood detector (once a second), with a margin.
const FLOOD_EVALUATIONS_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon watching one interface.
pub struct Monitor {
    pub daemon: Daemon,
    pub iface: String,
}

impl Monitor {
    /// `run --iface IFACE --metrics-addr 127.0.0.1:PORT EXTRA...` in `ns`,
    /// once /healthz answers. (`Daemon::start` takes no extra flags.)
    pub fn start(ns: &str, iface: &str, port: u16, extra: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["run", "--iface", iface, "--metrics-addr", &addr];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let daemon = Daemon::spawn(ns, &[], Path::new(BINARY), &args);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match daemon.healthz() {
                Ok(body) if body == "ok\n" => break,
                Ok(body) => panic!("/healthz answered {body:?}\nstderr:\n{}", daemon.stderr()),
                Err(err) => {
                    // clap's usage errors and the daemon's own start-up
                    // errors both end the process: no need to wait them out.
                    let stderr = daemon.stderr();
                    let failed = stderr.lines().any(|l| {
                        l.starts_with("error:") || l.starts_with("handshake-monitor: error:")
                    });
                    assert!(
                        !failed && Instant::now() < deadline,
                        "the daemon did not come up ({err}); args {args:?}\nstderr:\n{stderr}"
                    );
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Self {
            daemon,
            iface: iface.to_string(),
        }
    }

    pub fn scrape(&self) -> Scrape {
        Scrape {
            text: self.daemon.scrape(),
            iface: self.iface.clone(),
        }
    }

    /// Scrapes until `done` holds, failing after `timeout` with `what` and
    /// the last scrape.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Scrape) -> bool,
    ) -> Scrape {
        let mut last = None;
        let held = wait_until(timeout, || {
            let scrape = self.scrape();
            let ok = done(&scrape);
            last = Some(scrape);
            ok
        });
        let last = last.expect("at least one scrape");
        assert!(
            held,
            "{what}: not within {timeout:?} on {}:\n{}",
            self.iface, last.text
        );
        last
    }

    /// [`Monitor::wait_for`], then one more scrape after a pause, so that
    /// counting too much shows up as well.
    pub fn settled(&self, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
        self.wait_for(what, SETTLE_TIMEOUT, done);
        thread::sleep(Duration::from_millis(300));
        self.scrape()
    }

    /// Waits up to `timeout` for `series` to reach `at_least`.
    pub fn wait_for_value(&self, series: Series, at_least: f64, timeout: Duration) -> Scrape {
        let what = format!("{series:?} >= {at_least}");
        self.wait_for(&what, timeout, |s| s.value(series) >= at_least)
    }

    /// Waits until the flood detector (run once a second) has evaluated
    /// `port`'s series twice since the call, so that it has judged every
    /// SYN counted before the call; or until that series' `SynFlood` fires.
    /// The series' learned baseline (an average of the normal seconds'
    /// rates) moves at each evaluation once it has seen SYNs, and stays
    /// put only in a flood; two moves, because the first may come from an
    /// evaluation that read the counters just before the call.
    pub fn wait_flood_evaluations(&self, port: &str) {
        let series = [("interface", self.iface.as_str()), ("port", port)];
        let firing = [
            ("alertname", "SynFlood"),
            ("interface", self.iface.as_str()),
            ("port", port),
        ];
        let baseline = |s: &Scrape| prom::value(&s.text, FLOOD_BASELINE, &series);
        let mut last = baseline(&self.scrape());
        let mut moves = 0;
        self.wait_for(
            &format!("two flood detector evaluations of port {port}"),
            FLOOD_EVALUATIONS_TIMEOUT,
            |s| {
                let now = baseline(s);
                if now != last {
                    (moves, last) = (moves + 1, now);
                }
                moves >= 2 || prom::value(&s.text, FIRING, &firing) == Some(1.0)
            },
        );
    }

    /// [`Monitor::settled`] on `series` reaching `at_least`.
    pub fn settled_at(&self, series: Series, at_least: f64) -> Scrape {
        let what = format!("{series:?} >= {at_least}");
        self.settled(&what, |s| s.value(series) >= at_least)
    }
}

/// One lifecycle series of the scraped interface (whose `interface` label
/// is implied); its Debug form names it in failure messages.
#[derive(Debug, Clone, Copy)]
pub enum Series {
    /// role, result (`completed`, `reset`, `timed_out`).
    Handshakes(&'static str, &'static str),
    HalfOpen(&'static str),
    /// role, phase, and the part of the histogram: `count` or `sum`.
    Phase(&'static str, &'static str, &'static str),
    /// role, phase, and the bucket bound as the daemon writes it ("0.25").
    Bucket(&'static str, &'static str, &'static str),
    SynRetransmits(&'static str),
    SynAckRetransmits(&'static str),
    /// role, reason.
    Anomalies(&'static str, &'static str),
    /// kind (`graceful`, `reset`), initiator.
    Closes(&'static str, &'static str),
    /// role: the count of the connection duration histogram.
    ConnectionDurations(&'static str),
    /// direction, flag: the per-flag packet counter, which checks the
    /// traffic a test made independently of the handshake tracking.
    Packets(&'static str, &'static str),
}

/// One scrape, read for one interface. A series the daemon has not
/// written reads as 0: label combinations may stay absent until non-zero.
pub struct Scrape {
    pub text: String,
    iface: String,
}

impl Scrape {
    pub fn value(&self, series: Series) -> f64 {
        use Series::*;
        let (name, labels): (&str, Vec<(&str, &str)>) = match series {
            Handshakes(role, result) => (HANDSHAKES, vec![("role", role), ("result", result)]),
            HalfOpen(role) => ("handshake_tcp_half_open", vec![("role", role)]),
            Phase(role, phase, "count") => (PHASE_COUNT, vec![("role", role), ("phase", phase)]),
            Phase(role, phase, "sum") => (PHASE_SUM, vec![("role", role), ("phase", phase)]),
            Phase(_, _, part) => panic!("a histogram has no part {part:?}"),
            Bucket(role, phase, le) => (
                PHASE_BUCKET,
                vec![("role", role), ("phase", phase), ("le", le)],
            ),
            SynRetransmits(role) => ("handshake_tcp_syn_retransmits_total", vec![("role", role)]),
            SynAckRetransmits(role) => (SYNACK_RETRANSMITS, vec![("role", role)]),
            Anomalies(role, reason) => (ANOMALIES, vec![("role", role), ("reason", reason)]),
            Closes(kind, initiator) => (CLOSES, vec![("kind", kind), ("initiator", initiator)]),
            ConnectionDurations(role) => (DURATION_COUNT, vec![("role", role)]),
            Packets(direction, flag) => (PACKETS, vec![("direction", direction), ("flag", flag)]),
        };
        let mut all = vec![("interface", self.iface.as_str())];
        all.extend(labels);
        prom::value(&self.text, name, &all).unwrap_or(0.0)
    }

    /// Closes of every kind and initiator.
    pub fn closes(&self) -> f64 {
        let initiators = ["local", "remote", "simultaneous"];
        ["graceful", "reset"]
            .iter()
            .flat_map(|&kind| {
                initiators.map(|initiator| self.value(Series::Closes(kind, initiator)))
            })
            .sum()
    }

    /// What `n` clean connections, closed first by `initiator`, leave in
    /// `role`'s metrics; and nothing in the other role.
    pub fn expect_clean(&self, role: &'static str, n: usize, initiator: &'static str) {
        use Series::*;
        let n = n as f64;
        let (syn_direction, other) = match role {
            SERVER => ("ingress", CLIENT),
            _ => ("egress", SERVER),
        };
        self.expect(&[
            (Packets(syn_direction, "syn"), n),
            (Packets("ingress", "fin"), n),
            (Packets("egress", "fin"), n),
            (Handshakes(role, "completed"), n),
            (Handshakes(role, "reset"), 0.0),
            (Handshakes(role, "timed_out"), 0.0),
            (HalfOpen(role), 0.0),
            (Phase(role, SYN_TO_SYNACK, "count"), n),
            (Phase(role, SYNACK_TO_ACK, "count"), n),
            (SynRetransmits(role), 0.0),
            (SynAckRetransmits(role), 0.0),
            (Closes("graceful", initiator), n),
            (ConnectionDurations(role), n),
        ]);
        assert_eq!(self.closes(), n, "closes of other kinds:\n{}", self.text);
        self.expect_idle(other);
    }

    /// No handshake at all in `role`.
    pub fn expect_idle(&self, role: &'static str) {
        use Series::*;
        self.expect(&[
            (Handshakes(role, "completed"), 0.0),
            (Handshakes(role, "reset"), 0.0),
            (Handshakes(role, "timed_out"), 0.0),
            (HalfOpen(role), 0.0),
            (Phase(role, SYN_TO_SYNACK, "count"), 0.0),
        ]);
    }

    /// Checks every `(series, want)` at once, so a failure shows the whole
    /// picture.
    pub fn expect(&self, checks: &[(Series, f64)]) {
        let wrong: Vec<String> = checks
            .iter()
            .map(|&(series, want)| (series, self.value(series), want))
            .filter(|(_, got, want)| got != want)
            .map(|(series, got, want)| format!("{series:?}: got {got}, want {want}"))
            .collect();
        assert!(
            wrong.is_empty(),
            "wrong values on {}: {wrong:#?}\nscrape:\n{}",
            self.iface,
            self.text
        );
    }
}

const HANDSHAKES: &str = "handshake_tcp_handshakes_total";
const PHASE_COUNT: &str = "handshake_tcp_handshake_duration_seconds_count";
const PHASE_SUM: &str = "handshake_tcp_handshake_duration_seconds_sum";
const PHASE_BUCKET: &str = "handshake_tcp_handshake_duration_seconds_bucket";
const SYNACK_RETRANSMITS: &str = "handshake_tcp_synack_retransmits_total";
const ANOMALIES: &str = "handshake_tcp_handshake_anomalies_total";
const CLOSES: &str = "handshake_tcp_closes_total";
const DURATION_COUNT: &str = "handshake_tcp_connection_duration_seconds_count";
const PACKETS: &str = "handshake_tcp_packets_total";
const FLOOD_BASELINE: &str = "handshake_detector_baseline_syn_rate";
const FIRING: &str = "handshake_alert_firing";
