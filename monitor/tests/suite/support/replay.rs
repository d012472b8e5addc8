//! `handshake-monitor replay` run to its end, and tcpdump capturing a lab
//! interface for it.

use std::{
    collections::BTreeMap,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{daemon::BINARY, netns::in_netns, wait_until};

/// A replay never takes long here: the captures are small.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

/// What one replay left: its exit, its outputs.
#[derive(Debug)]
pub struct Replayed {
    pub status: ExitStatus,
    /// The events log, line by line.
    pub events: Vec<Value>,
    /// The final metrics snapshot.
    pub metrics: String,
    pub stderr: String,
}

impl Replayed {
    /// The events of one type.
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind).collect()
    }
}

/// `replay FILES --events DIR/replay-events.jsonl --metrics-out
/// DIR/replay.prom EXTRA...`, to its end (bounded).
pub fn replay(dir: &Path, files: &[&Path], extra: &[&str]) -> Replayed {
    let events = dir.join("replay-events.jsonl");
    let metrics = dir.join("replay.prom");
    let _ = std::fs::remove_file(&events);
    let _ = std::fs::remove_file(&metrics);
    let mut child = Command::new(BINARY)
        .arg("replay")
        .args(files)
        .arg("--events")
        .arg(&events)
        .arg("--metrics-out")
        .arg(&metrics)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start handshake-monitor replay");
    let status = wait_bounded(&mut child, REPLAY_TIMEOUT);
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Replayed {
        status,
        events: read_events(&events),
        metrics: std::fs::read_to_string(&metrics).unwrap_or_default(),
        stderr,
    }
}

/// Waits for `child`, killing it past `timeout` (a test failure).
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not end within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Every JSON line of an events log.
pub fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

/// The events written so far: every complete line (a writer may be
/// halfway through the last one).
pub fn read_events_so_far(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Every sample of the families named `names` (and their histogram
/// `_bucket`/`_sum`/`_count` series), by series text.
pub fn samples(text: &str, names: &[&str]) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let name = series.split('{').next().unwrap_or_default();
            names.iter().any(|n| {
                name == *n
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(n))
            })
        })
        .map(|(series, value)| (series.to_string(), value.parse().unwrap_or(f64::NAN)))
        .collect()
}

/// tcpdump writing every frame of `iface` in `ns` to a pcap file, until
/// [`Tcpdump::stop`] (or drop).
pub struct Tcpdump {
    child: Child,
    pub path: PathBuf,
}

impl Tcpdump {
    pub fn start(ns: &str, iface: &str, path: &Path) -> Self {
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-i", iface, "-n", "-U", "-s", "0",
            ])
            .args(["-Z", "root", "--time-stamp-precision=nano", "-w"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump (installed by `cargo xtask setup`)");
        let mut dump = Self {
            child,
            path: path.to_path_buf(),
        };
        // tcpdump writes the file's header once its capture is set up
        // (activated, filter installed); the kernel shows its packet
        // socket bound to the interface and running.
        let pid = dump.child.id();
        let ready = wait_until(Duration::from_secs(10), || {
            std::fs::metadata(path).is_ok_and(|m| m.len() >= 24) && capturing(ns, iface, pid)
        });
        assert!(ready, "tcpdump did not start: {}", dump.stderr_now());
        dump
    }

    fn stderr_now(&mut self) -> String {
        let _ = self.child.kill();
        let mut text = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    }

    /// SIGINT: tcpdump writes what it holds and ends.
    pub fn stop(mut self) -> PathBuf {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        wait_bounded(&mut self.child, Duration::from_secs(10));
        self.path.clone()
    }
}

/// Whether process `pid` holds a packet socket of namespace `ns` that is
/// bound to `iface` and running (/proc/net/packet's `Iface` and `R`).
fn capturing(ns: &str, iface: &str, pid: u32) -> bool {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?;
            Some(
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    in_netns(ns, || {
        let name = std::ffi::CString::new(iface).expect("an interface name");
        // SAFETY: a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) }.to_string();
        let table = std::fs::read_to_string("/proc/thread-self/net/packet").unwrap_or_default();
        table.lines().skip(1).any(|line| {
            // sk RefCnt Type Proto Iface R Rmem User Inode
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() >= 9 && f[4] == index && f[5] == "1" && inodes.iter().any(|i| i == f[8])
        })
    })
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
