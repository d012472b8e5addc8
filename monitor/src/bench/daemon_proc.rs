//! The real daemon as a child process in a lab namespace: started with
//! the flags a case names, on a control socket of its own and pinning
//! nothing (so no block or map of one run outlives it into the next, and
//! nothing meets another daemon's default paths), stopped by Drop
//! (SIGTERM, then SIGKILL) before the namespace goes.

use std::{
    fs,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::live::lab::run_in;

const START_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Daemon {
    child: Child,
    log: PathBuf,
    socket: PathBuf,
    ns: String,
    metrics_addr: String,
}

impl Daemon {
    /// `handshake-monitor run --iface IFACE --metrics-addr ADDR` plus
    /// `flags`, in namespace `ns`; returns once it serves `/metrics`.
    pub fn start(
        ns: &str,
        iface: &str,
        metrics_addr: &str,
        flags: &[&str],
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?.with_file_name("handshake-monitor");
        let tag = format!("hmb-{}-{ns}", std::process::id());
        let log = std::env::temp_dir().join(format!("{tag}-daemon.log"));
        let socket = std::env::temp_dir().join(format!("{tag}-control.sock"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(&exe)
            .args(["run", "--iface", iface, "--metrics-addr", metrics_addr])
            .args(["--log-level", "warn", "--pin-dir", ""])
            .arg("--control-socket")
            .arg(&socket)
            .args(flags);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut daemon = Self {
            child,
            log,
            socket,
            ns: ns.to_string(),
            metrics_addr: metrics_addr.to_string(),
        };
        daemon.wait_ready()?;
        Ok(daemon)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if self.scrape().is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the daemon exited ({status}): {}", self.log_text());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "the daemon did not serve /metrics within {START_TIMEOUT:?}: {}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// One GET /metrics from inside the daemon's namespace.
    pub fn scrape(&self) -> anyhow::Result<Scrape> {
        let addr = self.metrics_addr.clone();
        run_in(&self.ns, move || scrape(&addr))?
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// CPU time the daemon has used, user and system, in seconds.
    pub fn cpu_secs(&self) -> anyhow::Result<f64> {
        super::procstat::process_cpu_secs(self.child.id())
    }

    /// VmRSS in MiB (`ip netns exec` execs the daemon: same pid).
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS line")?;
        Ok(kib / 1024.0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(5));
        let _ = fs::remove_file(&self.log);
        let _ = fs::remove_file(&self.socket);
    }
}

/// What one scrape returned.
pub struct Scrape {
    pub time: Duration,
    pub series: usize,
    /// `handshake_flow_table_entries` plus `handshake_half_open_table_used`:
    /// what the two flow tables hold (a scrape sweeps them).
    pub flow_entries: f64,
}

/// One scrape of `addr`, from the calling thread's namespace.
pub fn scrape(addr: &str) -> anyhow::Result<Scrape> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body)?;
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&body);
    if !text.starts_with("HTTP/1.1 200") {
        bail!("unexpected response: {}", text.lines().next().unwrap_or(""));
    }
    let samples = || {
        text.split("\r\n\r\n")
            .nth(1)
            .unwrap_or("")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
    };
    let flow_entries = samples()
        .filter(|l| {
            l.starts_with("handshake_flow_table_entries ")
                || l.starts_with("handshake_half_open_table_used ")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok(Scrape {
        time: elapsed,
        series: samples().count(),
        flow_entries,
    })
}

/// Stops a child of the bench: SIGTERM, `grace` to exit, then SIGKILL.
pub fn stop(child: &mut Child, grace: Duration) {
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
