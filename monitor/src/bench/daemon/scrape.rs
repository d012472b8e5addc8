//! The real daemon, started in the bench namespace on the receiving veth:
//! its resident memory once loaded and attached at the default settings,
//! then `/metrics` scrape time over HTTP after live frames have filled its
//! per-port series (every named port slot configured, the SYN flood
//! spread over 64 destination ports, so the top-N and `other` series
//! exist too).

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

use crate::bench::live::{Traffic, drive, lab::Lab};

const METRICS_ADDR: &str = "127.0.0.1:9879";
const SCRAPES: usize = 20;
const START_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The daemon process; stopped (SIGTERM, then SIGKILL) by Drop, before
/// the namespace it runs in is deleted.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(lab: &Lab) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?.with_file_name("handshake-monitor");
        let log = std::env::temp_dir().join(format!("hmb-{}-daemon.log", std::process::id()));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &lab.ns])
            .arg(&exe)
            .args(["run", "--iface", &lab.rx_if, "--metrics-addr", METRICS_ADDR])
            .args(["--top-ports-interval", "1", "--log-level", "warn"]);
        for i in 0..monitor_common::ports::NAMED_PORT_SLOTS {
            cmd.args(["--port", &(8000 + i).to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        Ok(Self { child, log })
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// CPU time the daemon has used, user and system, in seconds.
    fn cpu_secs(&self) -> anyhow::Result<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which may hold spaces, inside
        // parentheses): utime and stime are the 12th and 13th of them.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields
            .get(11..13)
            .context("short /proc/PID/stat")?
            .iter()
            .map(|f| f.parse::<f64>().unwrap_or(0.0))
            .sum();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / hz.max(1.0))
    }

    /// VmRSS in MiB (`ip netns exec` execs the daemon: same pid).
    fn rss_mib(&self) -> anyhow::Result<f64> {
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
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = fs::remove_file(&self.log);
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

/// What one scrape returned.
struct Scrape {
    time: Duration,
    series: usize,
    /// `handshake_flow_table_entries`: a scrape sweeps the flow table.
    flow_entries: f64,
}

/// One scrape from inside the namespace.
fn scrape() -> anyhow::Result<Scrape> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(METRICS_ADDR)?;
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
        .filter(|l| l.starts_with("handshake_flow_table_entries"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok(Scrape {
        time: elapsed,
        series: samples().count(),
        flow_entries,
    })
}

pub struct DaemonFigures {
    pub rss_loaded_mib: f64,
    pub rss_after_mib: f64,
    /// The daemon's CPU use while the kernel handled the flood and the mix
    /// (and for the settling seconds after), in percent of one core.
    pub cpu_percent: f64,
    /// Scrape times right after start (empty flow table), and after the
    /// traffic.
    pub idle_scrape_ms: Vec<f64>,
    pub scrape_ms: Vec<f64>,
    pub series: usize,
    pub flow_entries: f64,
}

/// `SCRAPES` timed scrapes after an untimed one; (times in ms, the first).
fn scrapes() -> anyhow::Result<(Vec<f64>, Scrape)> {
    let first = scrape()?;
    let mut times = Vec::with_capacity(SCRAPES);
    for _ in 0..SCRAPES {
        times.push(scrape()?.time.as_secs_f64() * 1e3);
    }
    Ok((times, first))
}

pub fn measure(lab: &Lab) -> anyhow::Result<DaemonFigures> {
    let mut daemon = Daemon::start(lab)?;
    let started = Instant::now();
    loop {
        if lab.run_inside(scrape)?.is_ok() {
            break;
        }
        if let Some(status) = daemon.child.try_wait()? {
            bail!("the daemon exited ({status}): {}", daemon.log_text());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "the daemon did not serve /metrics within {START_TIMEOUT:?}: {}",
                daemon.log_text()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    let rss_loaded_mib = daemon.rss_mib()?;
    let (idle_scrape_ms, _) = lab.run_inside(scrapes)??;
    let (cpu_before, wall) = (daemon.cpu_secs()?, Instant::now());
    drive(lab, Traffic::SynFlood)?;
    drive(lab, Traffic::Mixed)?;
    // A flow sweep and a top-ports refresh (1 s each) turn the traffic
    // into series.
    thread::sleep(Duration::from_millis(2500));
    let cpu_percent = 100.0 * (daemon.cpu_secs()? - cpu_before) / wall.elapsed().as_secs_f64();
    let (scrape_ms, first) = lab.run_inside(scrapes)??;
    Ok(DaemonFigures {
        rss_loaded_mib,
        rss_after_mib: daemon.rss_mib()?,
        cpu_percent,
        idle_scrape_ms,
        scrape_ms,
        series: first.series,
        flow_entries: first.flow_entries,
    })
}
