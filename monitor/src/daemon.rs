//! `handshake-monitor run`: check, load, attach, serve, detach.

use std::{path::Path, sync::Arc};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};

use crate::{
    cli::RunArgs,
    ebpf::{Attachment, Programs},
    http, interfaces, metrics, preflight,
};

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    preflight::check_btf(Path::new(preflight::KERNEL_BTF_PATH))?;
    preflight::check_capabilities()?;
    let ifaces = interfaces::resolve(&args.ifaces)?;
    // Bind first: a taken port must fail before anything is attached.
    let listener = http::bind(args.metrics_addr).await?;

    let mut programs = Programs::load()?;
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

    let registry = metrics::registry(programs.take_counters()?, &attachments)
        .context("registering metrics")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(http::serve(listener, Arc::new(registry), stop_rx));
    tracing::info!(
        metrics = %format!("http://{}/metrics", args.metrics_addr),
        interfaces = attachments.len(),
        "handshake-monitor {} running",
        crate::VERSION
    );

    let signal_name = wait_for_shutdown().await?;
    tracing::info!(signal = signal_name, "shutting down");
    let _ = stop_tx.send(true);
    let _ = server.await;
    drop(programs);
    tracing::info!(
        interfaces = attachments.len(),
        "detached from every interface"
    );
    Ok(())
}

async fn wait_for_shutdown() -> anyhow::Result<&'static str> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
