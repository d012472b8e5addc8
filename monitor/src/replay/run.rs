//! The `replay` command: learn the local side, load, replay every file in
//! order, then write the events, the metrics and the summary.

use std::{
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    args::ReplayArgs,
    engine::Engine,
    input::{self, FileReport, Item},
    local::{Learner, LocalSide},
    summary::Summary,
};
use crate::{
    events::{self, EventSink, EventsTarget},
    loader::btf::KERNEL_BTF_PATH,
    preflight,
};

/// How the replay ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every file read to its end.
    Complete,
    /// Some file could not be read to its end (or at all).
    FileErrors,
    /// SIGINT or SIGTERM (the signal's number) stopped it.
    Interrupted(i32),
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<Ending> {
    preflight::check_btf(Path::new(KERNEL_BTF_PATH))?;
    preflight::check_capabilities()?;
    let settings = args.settings()?;
    let events_to_stdout = args.events.as_deref() == Some("-");
    let metrics_target = args.metrics_out.clone();
    let events_target = args.events.clone();
    let (sink, writer) = match &args.events {
        Some(target) => {
            let (sink, writer) = events::open(&EventsTarget::parse(target)).await?;
            (sink.lossless(), Some(writer))
        }
        None => (EventSink::disabled(), None),
    };
    let event_stats = Arc::clone(&sink.stats);
    let stop = Arc::new(AtomicBool::new(false));
    let signal = Arc::new(AtomicI32::new(0));
    let signals = tokio::spawn(watch_signals(Arc::clone(&stop), Arc::clone(&signal)));
    let job = {
        let stop = Arc::clone(&stop);
        tokio::task::spawn_blocking(move || replay(&args, &settings, sink, &stop))
    };
    let outcome = job.await.context("the replay thread panicked")?;
    signals.abort();
    // Every sink clone went with the engine: the writer ends once written.
    if let Some(writer) = writer {
        let _ = writer.await;
    }
    let outcome = outcome?;
    match metrics_target.as_deref() {
        Some("-") => print_stdout(&outcome.metrics)?,
        Some(path) => std::fs::write(path, &outcome.metrics)
            .with_context(|| format!("writing the metrics to {path}"))?,
        None if !events_to_stdout => print_stdout(&outcome.metrics)?,
        None => {}
    }
    eprint!("{}", outcome.summary);
    let lost = event_stats.dropped.load(Ordering::Relaxed);
    if lost > 0 {
        anyhow::bail!(
            "{lost} event lines could not be written to {}",
            events_target.as_deref().unwrap_or("-")
        );
    }
    Ok(match outcome.ending {
        Ending::Interrupted(_) => Ending::Interrupted(signal.load(Ordering::Relaxed)),
        ending => ending,
    })
}

struct Outcome {
    metrics: Vec<u8>,
    summary: String,
    ending: Ending,
}

fn print_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing the metrics to stdout")
}

async fn watch_signals(stop: Arc<AtomicBool>, which: Arc<AtomicI32>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let number = tokio::select! {
        _ = int.recv() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
    };
    which.store(number, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
}

/// How long the snapshot waits for the events log writer to catch up.
const EVENTS_CATCH_UP: Duration = Duration::from_secs(30);

/// Runs on a blocking thread: the events sink waits for room there.
fn replay(
    args: &ReplayArgs,
    settings: &crate::cli::RunArgs,
    sink: EventSink,
    stop: &AtomicBool,
) -> anyhow::Result<Outcome> {
    let local = if args.local.is_empty() {
        learn_local_side(&args.files, stop)
    } else {
        LocalSide::given(args.local.clone())
    };
    let mut engine = Engine::new(settings, &args.iface_name, local, sink.clone())?;
    let mut pacer = args.pace().map(Pacer::new);
    let mut reports: Vec<(PathBuf, FileReport)> = Vec::new();
    let mut failure = None;
    let mut first = None;
    for path in &args.files {
        if stop.load(Ordering::Relaxed) || failure.is_some() {
            break;
        }
        // The stop is checked after each record: the reader has counted
        // the record it hands over, so it is run (or skipped) first.
        let mut record = 0u64;
        let report = input::read_file(path, |item| {
            record += 1;
            match item {
                Item::Frame(frame) => {
                    first.get_or_insert(frame.ts_ns);
                    if let Some(pacer) = &mut pacer {
                        pacer.wait(frame.ts_ns, stop);
                    }
                    if let Err(err) = engine.frame(frame.ts_ns, frame.ethernet, frame.captured) {
                        let at = crate::tls_capture::wallclock::rfc3339(crate::clock::wall_time(
                            frame.ts_ns,
                        ));
                        let place = format!("{}: record {record}, captured {at}", path.display());
                        failure = Some(anyhow::Error::new(err).context(place));
                        return ControlFlow::Break(());
                    }
                }
                Item::Skipped { reason, .. } => engine.tally.skip(reason.name()),
            }
            if stop.load(Ordering::Relaxed) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        reports.push((path.clone(), report));
    }
    if let Some(err) = failure {
        return Err(err);
    }
    let last = engine.now();
    engine.finish();
    // The snapshot's `handshake_events_total` counts every line written,
    // however far behind the writer was.
    if !sink.wait_written(EVENTS_CATCH_UP) {
        tracing::warn!("the events log writer is still behind; the metrics may undercount it");
    }
    drop(sink);
    let metrics = crate::metrics::render(engine.registry());
    let families = engine.registry().gather();
    let interrupted = stop.load(Ordering::Relaxed);
    let summary = Summary {
        files: &reports,
        tally: &engine.tally,
        local: engine.local(),
        span: first.zip(last),
        metrics: &families,
        interrupted,
    }
    .render();
    let ending = if interrupted {
        Ending::Interrupted(libc::SIGINT)
    } else if reports.iter().any(|(_, r)| r.error.is_some()) {
        Ending::FileErrors
    } else {
        Ending::Complete
    };
    Ok(Outcome {
        metrics,
        summary,
        ending,
    })
}

/// The first pass: who answers SYNs (see [`super::local`]).
fn learn_local_side(files: &[PathBuf], stop: &AtomicBool) -> LocalSide {
    let mut learner = Learner::default();
    for path in files {
        input::read_file(path, |item| {
            if stop.load(Ordering::Relaxed) {
                return ControlFlow::Break(());
            }
            if let Item::Frame(frame) = item {
                learner.frame(frame.ethernet);
            }
            ControlFlow::Continue(())
        });
    }
    learner.finish()
}

/// Holds the replay to `speed` times the capture's pace.
struct Pacer {
    speed: f64,
    start: Option<(u64, Instant)>,
}

impl Pacer {
    fn new(speed: f64) -> Self {
        Self { speed, start: None }
    }

    fn wait(&mut self, ts_ns: u64, stop: &AtomicBool) {
        let (first, started) = *self.start.get_or_insert((ts_ns, Instant::now()));
        let due = Duration::from_secs_f64(ts_ns.saturating_sub(first) as f64 / 1e9 / self.speed);
        // In steps, so a signal is not kept waiting by a long gap.
        while let Some(ahead) = due.checked_sub(started.elapsed()) {
            if ahead.is_zero() || stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(ahead.min(Duration::from_millis(100)));
        }
    }
}
