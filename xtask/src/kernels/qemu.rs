//! Booting one kernel with the initramfs under qemu: serial console on
//! stdout, copied line by line to the terminal and to a log file, a hard
//! time limit, KVM when it works and TCG when it does not.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::proc;

pub const QEMU: &str = "qemu-system-x86_64";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// KVM when /dev/kvm can be opened read-write, else TCG.
    pub fn detect() -> Self {
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm");
        if kvm.is_ok() { Self::Kvm } else { Self::Tcg }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Self::Kvm => &["-enable-kvm", "-cpu", "host"],
            Self::Tcg => &["-accel", "tcg", "-cpu", "max"],
        }
    }
}

pub struct Boot {
    /// The whole serial log (also written to the log file).
    pub log: String,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// Killed because the init had not started by `init_limit`.
    pub no_init: bool,
    pub elapsed: Duration,
    /// qemu's exit status, if it exited by itself.
    pub status: Option<std::process::ExitStatus>,
}

/// Boot `kernel` with `initrd`; every console line is echoed prefixed with
/// `[label]` and saved to `log_path`. Killed at `limit`, or at `init_limit`
/// if the init has not printed its first line by then (nested KVM can hang
/// silently: the caller then retries with TCG).
pub fn boot(
    kernel: &Path,
    initrd: &Path,
    accel: Accel,
    (limit, init_limit): (Duration, Duration),
    label: &str,
    log_path: &Path,
) -> Result<Boot> {
    let mut cmd = proc::command(QEMU);
    cmd.args(accel.args())
        .args(["-m", "1024", "-smp", "2", "-no-reboot"])
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .args(["-nic", "none"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    eprintln!("$ {}", proc::display(&cmd));
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {QEMU} (run `cargo xtask setup`)"))?;

    let stdout = child.stdout.take().context("qemu stdout")?;
    let mut file = std::fs::File::create(log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let prefix = format!("[{label}] ");
    let started = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&started);
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches('\r');
            if line.starts_with(super::results::KERNEL) {
                seen.store(true, Ordering::Relaxed);
            }
            let _ = writeln!(file, "{line}");
            eprintln!("{prefix}{line}");
            log.push_str(line);
            log.push('\n');
        }
        log
    });

    let (mut timed_out, mut no_init) = (false, false);
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for qemu")? {
            break Some(status);
        }
        if start.elapsed() >= init_limit && !started.load(Ordering::Relaxed) {
            eprintln!(
                "test-kernels: {label}: no init output after {}s under {accel:?}; killing qemu",
                init_limit.as_secs()
            );
            no_init = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if start.elapsed() >= limit {
            eprintln!(
                "test-kernels: {label}: no power-off after {}s; killing qemu",
                limit.as_secs()
            );
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = reader
        .join()
        .map_err(|_| anyhow::anyhow!("serial reader panicked"))?;
    Ok(Boot {
        log,
        timed_out,
        no_init,
        elapsed: start.elapsed(),
        status,
    })
}
