//! `handshake-monitor run`: check, load, attach, serve, detach.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::{
    cli::RunArgs,
    detector::{
        AlertBoard, AlertCollector, Detector,
        notify::{self, Alertmanager},
        scan::ScanWatcher,
    },
    events::{self, EventSink, EventsTarget},
    flow_metrics::FlowCollector,
    flows::{Activity, FlowTracker},
    http, interfaces, kernel_state,
    loader::{Attachment, LoadSettings, Programs, btf::KERNEL_BTF_PATH, links, pins},
    metrics,
    mitigation::{Mitigation, control, metrics::MitigationCollector},
    notify_systemd::Notifier,
    preflight,
    records::{self, hub::Hub, timeouts::TimeoutBatch},
    signals,
    status::StatusSource,
    sweep::{self, Followers},
    syncookies::{Syncookies, metrics::SyncookieCollector},
    tls_capture::{
        self, CaptureMaps, Pipeline,
        metrics::{CaptureCollector, TlsMetrics},
        reassembly::ReassemblyStats,
    },
};

pub async fn run(mut args: RunArgs) -> anyhow::Result<()> {
    let systemd = Notifier::from_env();
    preflight::check_btf(Path::new(KERNEL_BTF_PATH))?;
    preflight::check_capabilities()?;
    let ifaces = interfaces::resolve(&args.ifaces)?;
    let alertmanager = args
        .alertmanager_url
        .as_deref()
        .map(Alertmanager::parse)
        .transpose()?;
    let web = args
        .web_config
        .as_deref()
        .map(crate::webconfig::load)
        .transpose()?;
    // Bind first: a taken port must fail before anything is attached.
    let listener = http::bind(args.metrics_addr).await?;

    let flow_settings = args.flow_settings();
    let port_settings = args.port_settings();
    args.check_ports()?;
    // A second daemon must fail here too, before it attaches anything.
    let control = control::bind(&args.mitigation.control_socket)?;
    let pin_dir = pins::prepare(&args.pins, flow_settings.table_size)?;
    let mut programs = Programs::load_pinned(
        &LoadSettings::from(&flow_settings),
        pin_dir.as_deref(),
        args.pins.persist,
    )?;
    let mut attachments: Vec<Attachment> = Vec::with_capacity(ifaces.len());
    for iface in &ifaces {
        // On error, dropping `programs` detaches what was attached so far.
        let attachment = programs.attach(iface)?;
        tracing::info!(
            interface = %iface.name,
            ifindex = iface.ifindex,
            xdp_mode = attachment.xdp.name(),
            tc_mode = attachment.tc.name(),
            "attached"
        );
        attachments.push(attachment);
    }
    if let (true, Some(dir)) = (programs.persistent(), pin_dir.as_deref()) {
        // Interfaces an earlier persisting run watched and this one does not.
        let keep: Vec<u32> = ifaces.iter().map(|i| i.ifindex).collect();
        programs.forget_other_interfaces(&keep)?;
        for link in links::release_others(&pins::links_dir(dir), &ifaces) {
            tracing::info!(link = %link, "detached a pinned link of an interface no longer watched");
        }
    }
    // The kernel's own view (tp_btf); on error `programs` drops as above.
    let kernel_view = kernel_state::attach(programs.ebpf_mut())
        .context("attaching the kernel-state tracepoint programs")?;

    let registry = metrics::registry(programs.take_counters()?, &attachments)
        .context("registering metrics")?;
    registry
        .register(Box::new(kernel_view))
        .context("registering the kernel-state metrics")?;
    let slots: Vec<u32> = attachments.iter().map(|a| a.slot).collect();
    let tracker = Arc::new(Mutex::new(FlowTracker::new(
        &mut programs,
        flow_settings,
        port_settings,
        slots,
    )?));
    let named_slots = attachments
        .iter()
        .map(|a| (a.iface.name.clone(), a.slot))
        .collect();
    registry
        .register(Box::new(FlowCollector::new(
            Arc::clone(&tracker),
            named_slots,
        )))
        .context("registering the flow metrics")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let sink = match &args.events {
        Some(target) => events::start(&EventsTarget::parse(target)).await?,
        None => EventSink::disabled(),
    };
    let mitigation = Arc::new(Mutex::new(
        Mitigation::start(
            &mut programs,
            args.mitigation.clone(),
            named_interfaces(&attachments),
            sink.clone(),
        )
        .context("starting the SYN-flood mitigation")?,
    ));
    registry
        .register(Box::new(MitigationCollector::new(Arc::clone(&mitigation))))
        .context("registering the mitigation metrics")?;
    let mut cookie_settings = args.syncookies.clone();
    if cookie_settings.ports.is_empty() {
        cookie_settings.ports = port_settings_ports(&args);
    }
    let board = AlertBoard::default();
    let mut cookies = Syncookies::start(
        &mut programs,
        cookie_settings,
        &ifaces,
        named_interfaces(&attachments),
    )
    .context("starting the SYN cookies")?;
    cookies.set_alerts(board.clone());
    let cookies = Arc::new(Mutex::new(cookies));
    registry
        .register(Box::new(SyncookieCollector::new(Arc::clone(&cookies))))
        .context("registering the SYN-cookie metrics")?;
    let board_for_mitigation = board.clone();
    let status = StatusSource {
        started: std::time::Instant::now(),
        persist: programs.persistent(),
        attachments: attachments.clone(),
        tracker: Arc::clone(&tracker),
        board: board.clone(),
    };
    // Records are published here, and `watch` clients subscribe.
    let hub = Hub::new();
    let control_task = tokio::spawn(control::serve(
        control,
        args.mitigation.control_socket.clone(),
        Arc::clone(&mitigation),
        status,
        hub.clone(),
        stop_rx.clone(),
    ));
    registry
        .register(Box::new(AlertCollector::new(board.clone())))
        .context("registering the alert metrics")?;
    let interfaces = named_interfaces(&attachments);
    let scans = ScanWatcher::new(&mut programs, args.scan)?;
    let detector = Arc::new(Mutex::new(
        Detector::new(args.detector, interfaces, board.clone(), sink.clone())
            .with_scan_watcher(scans),
    ));
    let notifier = match alertmanager {
        Some(target) => {
            let counter = prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "handshake_alertmanager_notifications_total",
                    "Posts of alerts to Alertmanager, sent (accepted) or failed.",
                ),
                &["result"],
            )?;
            registry.register(Box::new(counter.clone()))?;
            let resend = args.alert_resend_interval;
            Some(tokio::spawn(notify::run(
                target,
                board,
                resend,
                counter,
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let (records, records_task) = records::start(
        &mut programs,
        args.record_settings(),
        slot_names(&attachments),
        sink.clone(),
        hub.clone(),
        &registry,
        stop_rx.clone(),
    )?;
    let tls_task = start_tls_capture(
        &args,
        &mut programs,
        &registry,
        &attachments,
        sink,
        records.hellos.clone(),
        stop_rx.clone(),
    )
    .await?;
    let sweeper = tokio::spawn(sweep_flows(
        tracker,
        Arc::clone(&detector),
        Followers {
            mitigation: Arc::clone(&mitigation),
            cookies: Some(cookies),
            board: board_for_mitigation,
        },
        records.timeouts,
        stop_rx.clone(),
    ));
    let server = tokio::spawn(http::serve(
        listener,
        Arc::new(registry),
        web,
        stop_rx.clone(),
    ));
    tracing::info!(
        metrics = %format!("http://{}/metrics", args.metrics_addr),
        interfaces = attachments.len(),
        "handshake-monitor {} running",
        crate::VERSION
    );

    let status = format!(
        "watching {} interface(s); mitigation {}",
        attachments.len(),
        args.mitigation.mode.name()
    );
    programs.keep_pins();
    drop_capabilities(&attachments);
    systemd.ready(&status);
    let watchdog = Notifier::watchdog_interval().map(|every| {
        tokio::spawn(signals::ping_watchdog(
            systemd.clone(),
            every,
            stop_rx.clone(),
        ))
    });
    let live = signals::Live {
        notifier: systemd.clone(),
        mitigation,
        detector,
        status,
    };
    let signal_name = signals::serve(&mut args, &live).await?;
    tracing::info!(signal = signal_name, "shutting down");
    systemd.stopping();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = sweeper.await;
    let _ = tls_task.await;
    let _ = records_task.await;
    let _ = control_task.await;
    if let Some(notifier) = notifier {
        let _ = notifier.await;
    }
    let persistent = programs.persistent();
    drop(programs);
    if persistent {
        tracing::info!(
            interfaces = attachments.len(),
            "programs left attached through their pinned links (--persist); \
             `handshake-monitor detach` removes them"
        );
    } else {
        tracing::info!(
            interfaces = attachments.len(),
            "detached from every interface"
        );
    }
    Ok(())
}

/// Everything is loaded, attached and bound: keep only what is still used.
fn drop_capabilities(attachments: &[Attachment]) {
    use crate::privilege::{CAP_BPF, CAP_NET_ADMIN, bpf_needs_capability, keep_only};
    let mut keep = Vec::new();
    // Before Linux 6.5 every bpf() command, map access included, needs
    // CAP_BPF while unprivileged BPF is disabled; since then only loading does.
    let old_kernel = aya::util::KernelVersion::current()
        .is_ok_and(|v| v < aya::util::KernelVersion::new(6, 5, 0));
    if old_kernel && bpf_needs_capability() {
        keep.push(CAP_BPF);
    }
    if attachments
        .iter()
        .any(|a| a.tc == crate::loader::TcAttachMode::Clsact)
    {
        keep.push(CAP_NET_ADMIN);
    }
    let names: Vec<&str> = keep
        .iter()
        .map(|c| {
            if *c == CAP_BPF {
                "CAP_BPF"
            } else {
                "CAP_NET_ADMIN"
            }
        })
        .collect();
    match keep_only(&keep) {
        Ok(_) => tracing::info!(kept = ?names, "dropped the capabilities no longer needed"),
        Err(err) => tracing::warn!("could not drop capabilities: {err}"),
    }
}

/// The `--port` ports, the SYN cookies' default.
fn port_settings_ports(args: &RunArgs) -> Vec<u16> {
    args.port_settings().configured
}

fn named_interfaces(attachments: &[Attachment]) -> Vec<(String, u32)> {
    attachments
        .iter()
        .map(|a| (a.iface.name.clone(), a.slot))
        .collect()
}

/// Once a second: the shared sweep ([`sweep::once`]), its timeouts to the
/// records. The walk is blocking map syscalls, so it runs off the async
/// thread.
async fn sweep_flows(
    tracker: Arc<Mutex<FlowTracker>>,
    detector: Arc<Mutex<Detector>>,
    followers: Followers,
    timeouts: tokio::sync::mpsc::Sender<TimeoutBatch>,
    mut stop: watch::Receiver<bool>,
) {
    let followers = Arc::new(followers);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let tracker = Arc::clone(&tracker);
        let detector = Arc::clone(&detector);
        let followers = Arc::clone(&followers);
        let timeouts = timeouts.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let (swept, batch) = sweep::once(
                &tracker,
                &detector,
                &followers,
                sweep::At::Now,
                Activity::Unknown,
            );
            let _ = timeouts.try_send(batch);
            swept
        })
        .await;
        match swept {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!("sweeping the flow table failed: {err}"),
            Err(err) => tracing::warn!("the flow table sweep panicked: {err}"),
        }
    }
}

fn slot_names(attachments: &[Attachment]) -> std::collections::HashMap<u8, String> {
    attachments
        .iter()
        .map(|a| (a.slot as u8, a.iface.name.clone()))
        .collect()
}

/// Starts the TLS hello capture: budget, metrics, reader task.
async fn start_tls_capture(
    args: &RunArgs,
    programs: &mut Programs,
    registry: &prometheus::Registry,
    attachments: &[Attachment],
    sink: EventSink,
    records: tokio::sync::mpsc::Sender<crate::records::FlowHello>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    programs.set_tls_budget(args.tls_hellos_per_sec, args.tls_hellos_per_sec.min(2_000))?;
    let maps = CaptureMaps::take(programs)?;
    let metrics = TlsMetrics::register(registry).context("registering the TLS metrics")?;
    let reassembly = Arc::new(Mutex::new(ReassemblyStats::default()));
    registry
        .register(Box::new(CaptureCollector::new(
            maps.counters,
            Arc::clone(&reassembly),
            Arc::clone(&sink.stats),
        )))
        .context("registering the TLS capture metrics")?;
    let pipeline = Pipeline::new(metrics, sink, slot_names(attachments)).with_records(records);
    let capture = tls_capture::Capture::new(pipeline, reassembly);
    Ok(tokio::spawn(tls_capture::run(maps.ring, capture, stop)))
}
