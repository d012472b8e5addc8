//! The records task: drains the kernel's record ring, takes hellos from
//! the TLS capture and timeouts from the sweep, and writes what is
//! finished to the events log and to the watchers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use monitor_common::{
    flow::RateLimit,
    record::{FlowRecord, RecordKind},
};
use prometheus::Registry;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::{
    FlowHello, FlowId, Hello,
    hub::Hub,
    join::{Finished, Joiner},
    metrics::{HelloTimings, RecordCollector, RecordTotals},
    render,
    timeouts::{Timeout, TimeoutBatch, summarize},
};
use crate::{clock::monotonic_ns, events::EventSink, loader::Programs};

/// Below the ring's wake-up threshold, this timer drains it.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(100);
/// Hellos queued from the TLS capture before new ones are dropped.
const HELLO_QUEUE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    /// Records each CPU's programs may write per second.
    pub per_sec_per_cpu: u64,
    /// Ports with hello-timing series of their own (`--port`).
    pub named_ports: Vec<u16>,
}

/// Where the other tasks send what the records need.
#[derive(Clone)]
pub struct RecordInputs {
    pub hellos: mpsc::Sender<FlowHello>,
    pub timeouts: mpsc::Sender<TimeoutBatch>,
}

/// What the records are made of, before the task runs them: the daemon
/// spawns [`run`] on it; a replay drives it frame by frame.
pub struct RecordParts {
    pub inputs: RecordInputs,
    pub ring: RingBuf<MapData>,
    pub core: RecordCore,
    pub hellos: mpsc::Receiver<FlowHello>,
    pub timeouts: mpsc::Receiver<TimeoutBatch>,
}

/// Sets the budget and registers the metrics.
pub fn prepare(
    programs: &mut Programs,
    settings: RecordSettings,
    interfaces: HashMap<u8, String>,
    sink: EventSink,
    hub: Hub,
    registry: &Registry,
) -> anyhow::Result<RecordParts> {
    let budget = RateLimit {
        per_sec_per_cpu: settings.per_sec_per_cpu,
        burst: settings.per_sec_per_cpu,
    };
    crate::loader::write_settings(programs.ebpf_mut(), "RECORD_CONFIG", budget)?;
    let ring: RingBuf<MapData> = programs.take_map("RECORDS")?;
    let totals = Arc::new(Mutex::new(RecordTotals::default()));
    registry
        .register(Box::new(RecordCollector::new(
            programs.take_map("RECORD_COUNTERS")?,
            Arc::clone(&totals),
        )))
        .context("registering the record metrics")?;
    let timings = HelloTimings::register(registry).context("registering the hello timings")?;
    let (hello_tx, hello_rx) = mpsc::channel(HELLO_QUEUE);
    let (timeout_tx, timeout_rx) = mpsc::channel(4);
    let writer = Writer {
        joiner: Joiner::new(),
        interfaces,
        sink,
        hub,
        timings,
        named_ports: settings.named_ports,
        totals,
        reported_timeouts: 0,
    };
    Ok(RecordParts {
        inputs: RecordInputs {
            hellos: hello_tx,
            timeouts: timeout_tx,
        },
        ring,
        core: RecordCore {
            writer,
            out: Vec::new(),
        },
        hellos: hello_rx,
        timeouts: timeout_rx,
    })
}

/// [`prepare`], and the task started.
pub fn start(
    programs: &mut Programs,
    settings: RecordSettings,
    interfaces: HashMap<u8, String>,
    sink: EventSink,
    hub: Hub,
    registry: &Registry,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(RecordInputs, JoinHandle<()>)> {
    let parts = prepare(programs, settings, interfaces, sink, hub, registry)?;
    let inputs = parts.inputs.clone();
    Ok((inputs, tokio::spawn(run(parts, stop))))
}

struct Writer {
    joiner: Joiner,
    interfaces: HashMap<u8, String>,
    sink: EventSink,
    hub: Hub,
    timings: HelloTimings,
    named_ports: Vec<u16>,
    totals: Arc<Mutex<RecordTotals>>,
    /// Timeouts reported (singly or aggregated) since start.
    reported_timeouts: u64,
}

/// The joining and writing of records, whoever drives it.
pub struct RecordCore {
    writer: Writer,
    out: Vec<Finished>,
}

impl RecordCore {
    /// Takes what the kernel wrote to the ring and writes what is finished.
    pub fn drain(&mut self, ring: &mut RingBuf<MapData>) {
        drain(ring, &mut self.writer.joiner, &mut self.out);
        self.writer.write_all(&mut self.out);
    }

    /// A hello from the TLS capture, for its flow's record.
    pub fn hello(&mut self, hello: FlowHello) {
        self.writer
            .joiner
            .hello(hello, monotonic_ns(), &mut self.out);
        self.writer.write_all(&mut self.out);
    }

    /// The sweep's timed-out handshakes, after what the ring holds.
    pub fn timeouts(&mut self, ring: &mut RingBuf<MapData>, batch: &TimeoutBatch) {
        self.drain(ring);
        self.writer.timeouts(batch);
    }

    /// Writes the records whose hold for hellos is over.
    pub fn expire(&mut self, ring: &mut RingBuf<MapData>) {
        drain(ring, &mut self.writer.joiner, &mut self.out);
        self.writer.joiner.expire(monotonic_ns(), &mut self.out);
        self.writer.write_all(&mut self.out);
    }

    /// The end: everything held is written as it is.
    pub fn finish(&mut self, ring: &mut RingBuf<MapData>) {
        drain(ring, &mut self.writer.joiner, &mut self.out);
        self.writer.joiner.flush(&mut self.out);
        self.writer.write_all(&mut self.out);
    }
}

async fn run(parts: RecordParts, mut stop: watch::Receiver<bool>) {
    let RecordParts {
        ring,
        mut core,
        mut hellos,
        mut timeouts,
        ..
    } = parts;
    // SAFETY: the RingBuf owns its map fd for as long as the AsyncFd owns
    // the RingBuf, and always reports that same fd.
    let registered = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) };
    let mut ring = match registered {
        Ok(fd) => fd,
        Err(err) => {
            tracing::error!("cannot poll the record ring buffer: {err}; handshake records are off");
            return;
        }
    };
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => match guard {
                Ok(mut guard) => {
                    core.drain(guard.get_inner_mut());
                    guard.clear_ready();
                }
                Err(err) => {
                    tracing::error!("polling the record ring buffer failed: {err}; records stop");
                    return;
                }
            },
            Some(hello) = hellos.recv() => core.hello(hello),
            Some(batch) = timeouts.recv() => core.timeouts(ring.get_mut(), &batch),
            _ = tick.tick() => core.expire(ring.get_mut()),
            _ = stop.changed() => {
                core.finish(ring.get_mut());
                return;
            }
        }
    }
}

fn drain(ring: &mut RingBuf<MapData>, joiner: &mut Joiner, out: &mut Vec<Finished>) {
    let now = monotonic_ns();
    while let Some(item) = ring.next() {
        if item.len() < size_of::<FlowRecord>() {
            continue;
        }
        // SAFETY: at least size_of::<FlowRecord>() bytes, and every bit
        // pattern is a valid FlowRecord (integers only).
        let record = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<FlowRecord>()) };
        joiner.record(record, now, out);
    }
}

impl Writer {
    fn interface(&self, slot: u8) -> &str {
        self.interfaces.get(&slot).map_or("unknown", String::as_str)
    }

    fn port_label(&self, port: u16) -> String {
        if self.named_ports.contains(&port) {
            port.to_string()
        } else {
            "other".to_string()
        }
    }

    fn write_all(&mut self, out: &mut Vec<Finished>) {
        for finished in out.drain(..) {
            self.write(&finished);
        }
    }

    fn write(&mut self, f: &Finished) {
        self.observe(f);
        self.totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .emitted += 1;
        if !self.sink.enabled() && self.hub.watchers() == 0 {
            return;
        }
        let iface = self.interface(f.record.key.slot);
        let item = match f.record.kind() {
            RecordKind::Closed => render::close(f, iface),
            _ => render::handshake(f, iface),
        };
        self.sink.send(item.json.clone());
        self.hub.publish(|| item);
    }

    /// The hello timings of a completed handshake, per named port.
    fn observe(&self, f: &Finished) {
        if f.record.kind() != RecordKind::Completed {
            return;
        }
        let flow = FlowId::of_key(&f.record.key, f.record.role());
        let first_client = f.hellos.iter().find_map(|(ts, h)| match h {
            Hello::Client(_) => Some(*ts),
            Hello::Server(_) => None,
        });
        let Some(client_ns) = first_client else {
            return;
        };
        let labels = [
            self.interface(flow.slot).to_string(),
            f.record.role().name().to_string(),
            self.port_label(flow.server.1),
        ];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let seconds = |ns: u64| ns as f64 / 1e9;
        self.timings
            .ack_to_client_hello
            .with_label_values(&labels)
            .observe(seconds(
                client_ns.saturating_sub(f.record.state.established_ns),
            ));
        if let Some((server_ns, _)) = f.hellos.iter().find(|(_, h)| h.is_final()) {
            self.timings
                .client_hello_to_server_hello
                .with_label_values(&labels)
                .observe(seconds(server_ns.saturating_sub(client_ns)));
        }
    }

    fn timeouts(&mut self, batch: &TimeoutBatch) {
        let mut singles = Vec::new();
        let mut aggregated = 0;
        let mut lines = Vec::new();
        for timeout in summarize(batch) {
            match timeout {
                Timeout::Single(record) => {
                    self.joiner.record(record, batch.now_ns, &mut singles);
                }
                Timeout::Aggregate(a) => {
                    aggregated += a.count;
                    lines.push(a);
                }
            }
        }
        self.reported_timeouts += batch.expired.len() as u64;
        {
            let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
            t.aggregated += aggregated;
            t.timeout_overflow += batch.overflow;
            t.timeout_unseen = t.timeout_unseen.max(
                batch
                    .total_timeouts
                    .saturating_sub(self.reported_timeouts + t.timeout_overflow),
            );
        }
        self.write_all(&mut singles);
        if !self.sink.enabled() && self.hub.watchers() == 0 {
            return;
        }
        for a in &lines {
            let item = render::aggregate(a, self.interface(a.slot), batch.now_ns);
            self.sink.send(item.json.clone());
            self.hub.publish(|| item);
        }
    }
}
