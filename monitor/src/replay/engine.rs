//! The replay's engine: the daemon's parts (flow tracker, detector,
//! mitigation, TLS capture, records, metrics) wired as `run` wires them,
//! but driven by the capture: each frame sets the clock, runs through a
//! program, and the rings are drained behind it; the daemon's timers fire
//! at their deadlines on the capture's clock.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use monitor_common::counters::Direction;
use prometheus::{IntCounterVec, Registry};
use tokio::sync::mpsc;

pub use super::tally::Tally;
use super::{
    link::Captured,
    local::{LocalSide, Route},
    tally::TC_ACT_SHOT,
};
use crate::{
    cli::RunArgs,
    clock,
    detector::{AlertBoard, AlertCollector, Detector, scan::ScanWatcher},
    events::EventSink,
    flow_metrics::FlowCollector,
    flows::{Activity, FlowTracker},
    interfaces::Interface,
    loader::{
        Attachment, EbpfError, LoadSettings, Programs, TcAttachMode, XdpAttachMode,
        replay::ReplayClock,
    },
    metrics,
    mitigation::{Mitigation, metrics::MitigationCollector},
    records::{self, FlowHello, RecordCore, hub::Hub},
    sweep::{self, Followers},
    tls_capture::{
        self, Capture, CaptureMaps, Pipeline,
        metrics::{CaptureCollector, TlsMetrics},
        reassembly::ReassemblyStats,
    },
};

/// Test runs take ifindex 1 (the loopback of the caller's namespace); the
/// replay registers it under the name the metrics and events carry.
const TEST_RUN_IFINDEX: u32 = 1;
/// The largest frame BPF_PROG_TEST_RUN takes for an XDP program without
/// fragments: a page less XDP's headroom and the skb_shared_info tail.
pub const MAX_FRAME: usize = 4096 - 256 - 320;
/// Up to here a frame is one the kernel must run: a refusal of such a
/// frame is the replay's failure, not the frame's.
const MAX_ETHERNET_FRAME: usize = 1518;
const SWEEP_PERIOD_NS: u64 = 1_000_000_000;
const TLS_PERIOD_NS: u64 = tls_capture::DRAIN_INTERVAL.as_nanos() as u64;
const RECORDS_PERIOD_NS: u64 = records::DRAIN_INTERVAL.as_nanos() as u64;
/// Sweeps run one by one through an idle gap up to this many; past it the
/// rest of the gap is one sweep (nothing happens in it but time).
const MAX_SWEEPS_PER_GAP: u64 = 600;

/// When each of the daemon's periodic jobs is next due.
struct Deadlines {
    sweep: u64,
    tls: u64,
    records: u64,
}

pub struct Engine {
    programs: Programs,
    clock: ReplayClock,
    tracker: Arc<Mutex<FlowTracker>>,
    detector: Arc<Mutex<Detector>>,
    followers: Followers,
    tls_ring: RingBuf<MapData>,
    capture: Capture,
    record_ring: RingBuf<MapData>,
    records: RecordCore,
    hellos: mpsc::Receiver<FlowHello>,
    registry: Registry,
    /// `handshake_replay_frames_total`, from the tally.
    frames: IntCounterVec,
    local: LocalSide,
    handshake_timeout: Duration,
    /// The programs' clock: the latest capture time seen (never backwards).
    now: Option<u64>,
    due: Deadlines,
    /// Whether a program ran since the last sweep.
    ran_since_sweep: bool,
    pub tally: Tally,
}

impl Engine {
    /// Loads the programs for a replay and wires the daemon's parts to
    /// them, with `args`' settings, under interface name `iface`.
    pub fn new(
        args: &RunArgs,
        iface: &str,
        local: LocalSide,
        sink: EventSink,
    ) -> anyhow::Result<Self> {
        // One CPU's partition, budgets and limits, however the scheduler
        // would have moved the thread: the same capture, the same outputs.
        // The lowest allowed CPU rather than the one we started on: the same
        // CPU every run, and (measured) ~30 % faster than staying put, which
        // often lands the test runs beside the tokio workers.
        crate::cpu::pin_to_first_allowed_cpu();
        let flow_settings = args.flow_settings();
        let (mut programs, clock) = Programs::load_for_replay(&LoadSettings::from(&flow_settings))
            .context("loading the programs for the replay")?;
        let interface = Interface {
            name: iface.to_string(),
            ifindex: TEST_RUN_IFINDEX,
        };
        let slot = programs.register(&interface)?;
        let attachment = Attachment {
            iface: interface,
            slot,
            xdp: XdpAttachMode::TestRun,
            tc: TcAttachMode::TestRun,
        };
        let named = vec![(iface.to_string(), slot)];
        let slot_names: HashMap<u8, String> = HashMap::from([(slot as u8, iface.to_string())]);
        let registry = metrics::registry(programs.take_counters()?, &[attachment])
            .context("registering metrics")?;
        let tracker = Arc::new(Mutex::new(FlowTracker::new(
            &mut programs,
            flow_settings,
            args.port_settings(),
            vec![slot],
        )?));
        registry
            .register(Box::new(FlowCollector::new(
                Arc::clone(&tracker),
                named.clone(),
            )))
            .context("registering the flow metrics")?;
        let mitigation = Arc::new(Mutex::new(
            Mitigation::start(
                &mut programs,
                args.mitigation.clone(),
                named.clone(),
                sink.clone(),
            )
            .context("starting the SYN-flood mitigation")?,
        ));
        registry
            .register(Box::new(MitigationCollector::new(Arc::clone(&mitigation))))
            .context("registering the mitigation metrics")?;
        let board = AlertBoard::default();
        registry
            .register(Box::new(AlertCollector::new(board.clone())))
            .context("registering the alert metrics")?;
        let scans = ScanWatcher::new(&mut programs, args.scan)?;
        let detector = Arc::new(Mutex::new(
            Detector::new(args.detector, named, board.clone(), sink.clone())
                .with_scan_watcher(scans),
        ));
        let parts = records::prepare(
            &mut programs,
            args.record_settings(),
            slot_names.clone(),
            sink.clone(),
            Hub::new(),
            &registry,
        )?;
        programs.set_tls_budget(args.tls_hellos_per_sec, args.tls_hellos_per_sec.min(2_000))?;
        let maps = CaptureMaps::take(&mut programs)?;
        let tls = TlsMetrics::register(&registry).context("registering the TLS metrics")?;
        let reassembly = Arc::new(Mutex::new(ReassemblyStats::default()));
        registry
            .register(Box::new(CaptureCollector::new(
                maps.counters,
                Arc::clone(&reassembly),
                Arc::clone(&sink.stats),
            )))
            .context("registering the TLS capture metrics")?;
        let pipeline = Pipeline::new(tls, sink, slot_names).with_records(parts.inputs.hellos);
        let frames = IntCounterVec::new(
            prometheus::Opts::new(
                "handshake_replay_frames_total",
                "Frames of the replayed captures: run through XDP or TC (by verdict), or skipped (by reason).",
            ),
            &["result"],
        )?;
        registry
            .register(Box::new(frames.clone()))
            .context("registering the replay's frame counts")?;
        Ok(Self {
            programs,
            clock,
            tracker,
            detector,
            followers: Followers {
                mitigation,
                cookies: None,
                board,
            },
            tls_ring: maps.ring,
            capture: Capture::new(pipeline, reassembly),
            record_ring: parts.ring,
            records: parts.core,
            hellos: parts.hellos,
            registry,
            frames,
            local,
            handshake_timeout: args.handshake_timeout,
            now: None,
            due: Deadlines {
                sweep: 0,
                tls: 0,
                records: 0,
            },
            ran_since_sweep: false,
            tally: Tally::default(),
        })
    }

    pub fn local(&self) -> &LocalSide {
        &self.local
    }

    /// The metrics as they stand, with the replay's own frame counts
    /// (`handshake_replay_frames_total`) brought up to date.
    pub fn registry(&self) -> &Registry {
        for (result, count) in self.tally.results() {
            let counter = self.frames.with_label_values(&[result.as_str()]);
            counter.inc_by(count - counter.get());
        }
        &self.registry
    }

    /// The capture time of the latest frame.
    pub fn now(&self) -> Option<u64> {
        self.now
    }

    /// Runs one Ethernet frame captured at `ts_ns`; `captured`, the
    /// capture's own word on its direction, wins over the local side.
    pub fn frame(
        &mut self,
        ts_ns: u64,
        frame: &[u8],
        captured: Option<Captured>,
    ) -> Result<(), EbpfError> {
        let now = match self.now {
            Some(previous) => ts_ns.max(previous),
            None => {
                // The parts' intervals start here, as live from the start.
                self.tracker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .start_clock(ts_ns);
                self.due = Deadlines {
                    sweep: ts_ns + SWEEP_PERIOD_NS,
                    tls: ts_ns + TLS_PERIOD_NS,
                    records: ts_ns + RECORDS_PERIOD_NS,
                };
                ts_ns
            }
        };
        self.run_timers(now);
        self.set_time(now);
        if frame.len() > MAX_FRAME {
            self.tally.skip("oversized");
            return Ok(());
        }
        let route = match captured {
            Some(Captured::Sent) => Route::Egress,
            Some(Captured::Received) => Route::Ingress,
            None => self.local.route(frame),
        };
        match route {
            Route::Ingress => {
                self.run(Direction::Ingress, frame)?;
            }
            Route::Egress => {
                self.run(Direction::Egress, frame)?;
            }
            Route::Both => {
                // Dropped on its way out, a frame never comes back in.
                if self.run(Direction::Egress, frame)? != Some(TC_ACT_SHOT) {
                    self.run(Direction::Ingress, frame)?;
                }
            }
        }
        Ok(())
    }

    /// One program run and what it left in the rings; the verdict, or
    /// none when the kernel refused the frame.
    fn run(&mut self, direction: Direction, frame: &[u8]) -> Result<Option<u32>, EbpfError> {
        self.ran_since_sweep = true;
        let verdict = match self.programs.run_frame(direction, frame) {
            Ok(verdict) => {
                self.tally.verdict(direction, verdict);
                Some(verdict)
            }
            Err(EbpfError::TestRun { source, .. })
                if frame.len() > MAX_ETHERNET_FRAME && is_refusal(&source) =>
            {
                self.tally.skip("refused_by_kernel");
                None
            }
            Err(err) => return Err(err),
        };
        self.drain();
        Ok(verdict)
    }

    /// The end of the input: time runs on, frameless, past the handshake
    /// timeout (as if the capture had gone on silent), so handshakes left
    /// open end as timed out the way the live daemon reports them; then
    /// everything held is written.
    pub fn finish(&mut self) {
        self.drain();
        if let Some(last) = self.now {
            let end = last + self.handshake_timeout.as_nanos() as u64 + 2 * SWEEP_PERIOD_NS;
            self.run_timers(end);
            clock::set_capture_time(end);
            self.now = Some(end);
        }
        self.drain();
        self.records.finish(&mut self.record_ring);
    }

    fn set_time(&mut self, now: u64) {
        // 0 means "no time" to the programs and to the daemon's clock.
        let now = now.max(1);
        self.now = Some(now);
        clock::set_capture_time(now);
        self.clock.set(now);
    }

    /// What the kernel wrote while the frame ran: TLS chunks, the hellos
    /// they complete, records.
    fn drain(&mut self) {
        self.capture.drain(&mut self.tls_ring);
        while let Ok(hello) = self.hellos.try_recv() {
            self.records.hello(hello);
        }
        self.records.drain(&mut self.record_ring);
    }

    /// Fires every periodic job due up to `now`, each at its deadline.
    fn run_timers(&mut self, now: u64) {
        let mut sweeps = 0;
        loop {
            let next = self.due.sweep.min(self.due.tls).min(self.due.records);
            if next > now {
                return;
            }
            clock::set_capture_time(next);
            if next == self.due.tls {
                self.capture.expire(&mut self.tls_ring);
                self.due.tls += TLS_PERIOD_NS;
            } else if next == self.due.records {
                self.drain();
                self.records.expire(&mut self.record_ring);
                self.due.records += RECORDS_PERIOD_NS;
            } else {
                self.drain();
                self.sweep(next);
                sweeps += 1;
                self.due.sweep += SWEEP_PERIOD_NS;
                if sweeps == MAX_SWEEPS_PER_GAP && self.due.sweep <= now {
                    // The rest of a long idle gap: each job once, at its end.
                    self.due.sweep += (now - self.due.sweep) / SWEEP_PERIOD_NS * SWEEP_PERIOD_NS;
                    self.due.tls = self.due.sweep;
                    self.due.records = self.due.sweep;
                }
            }
        }
    }

    fn sweep(&mut self, now: u64) {
        let activity = if std::mem::take(&mut self.ran_since_sweep) {
            Activity::ProgramsSinceLastSweep
        } else {
            Activity::NoneSinceLastSweep
        };
        let (swept, batch) = sweep::once(
            &self.tracker,
            &self.detector,
            &self.followers,
            sweep::At::Time(now),
            activity,
        );
        if let Err(err) = swept {
            tracing::warn!("sweeping the flow table failed: {err}");
        }
        self.records.timeouts(&mut self.record_ring, &batch);
    }
}

/// The kernel's refusal to run a frame (its size or form), not a failure
/// of the replay.
fn is_refusal(err: &aya::programs::ProgramError) -> bool {
    match err {
        aya::programs::ProgramError::SyscallError(e) => {
            matches!(e.io_error.raw_os_error(), Some(libc::EINVAL | libc::E2BIG))
        }
        _ => false,
    }
}

impl Drop for Engine {
    /// The process's clock is the kernel's again once the replay is over.
    fn drop(&mut self) {
        clock::use_kernel_clock();
    }
}
