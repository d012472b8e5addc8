//! Readers of what a replay of the built captures left: records, counts,
//! the summary, the kernel objects it held.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use monitor_common::community_id::community_id_v1;
use serde_json::Value;

use super::{
    capture_files::{
        BASE_NS, CLIENT_ISN, CLIENT_PORT, Family, NS_PER_MS, SERVER_ISN, SERVER_PORT, write,
    },
    cmd,
    daemon::BINARY,
    deploy::TempDir,
    replay::{Replayed, replay, samples, wait_bounded},
};

/// Replays one capture file `name` holding `bytes`, in a scratch
/// directory of its own, to a successful end (exit 0).
pub fn replay_ok(name: &str, bytes: &[u8], extra: &[&str]) -> Replayed {
    let dir = TempDir::new("replay-files");
    let path = write(dir.path(), name, bytes);
    let r = replay(dir.path(), &[&path], extra);
    assert_ok(&r);
    r
}

/// The replay's exit was 0.
pub fn assert_ok(r: &Replayed) {
    assert_eq!(r.status.code(), Some(0), "replay failed:\n{}", r.stderr);
}

/// The sample of `name` on the replayed interface with the other `labels`.
pub fn metric(r: &Replayed, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let all = [&[("interface", "replay")], labels].concat();
    super::prom::value(&r.metrics, name, &all)
}

/// The `handshake_tcp_packets_total` samples, zeros included.
pub fn packets(r: &Replayed) -> BTreeMap<String, f64> {
    samples(&r.metrics, &["handshake_tcp_packets_total"])
}

/// The non-zero samples of `family` by the values of `labels`.
pub fn nonzero(r: &Replayed, family: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let value_of = |series: &str, name: &str| {
        let start = series.find(&format!("{name}=\""))? + name.len() + 2;
        series[start..].split('"').next().map(str::to_string)
    };
    samples(&r.metrics, &[family])
        .into_iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(s, v)| (labels.iter().filter_map(|l| value_of(&s, l)).collect(), v))
        .collect()
}

/// The non-zero `handshake_tcp_packets_total` samples, by direction and
/// flag.
pub fn packet_counts(r: &Replayed) -> BTreeMap<Vec<String>, f64> {
    nonzero(r, "handshake_tcp_packets_total", &["direction", "flag"])
}

/// `"ingress syn 1, egress fin 1"` as [`packet_counts`] gives it.
pub fn counts(spec: &str) -> BTreeMap<Vec<String>, f64> {
    let item = |i: &str| {
        let mut words: Vec<String> = i.split_whitespace().map(str::to_string).collect();
        let count = words.pop().and_then(|n| n.parse().ok()).expect("a count");
        (words, count)
    };
    spec.split(',').map(item).collect()
}

/// What [`exchange`] gives through the programs, server side.
pub const EXCHANGE_COUNTS: &str =
    "ingress syn 1, ingress ack 2, ingress data 1, ingress fin 1, egress syn_ack 1, egress fin 1";

/// The one record of `kind`.
pub fn only<'a>(r: &'a Replayed, kind: &str) -> &'a Value {
    let found = r.of_type(kind);
    assert_eq!(found.len(), 1, "{kind} records: {:#?}", r.events);
    found[0]
}

/// `ts` of a capture time within the hour after [`BASE_NS`], as the
/// records write it (microseconds).
pub fn rfc3339(ns: u64) -> String {
    let us = (ns - BASE_NS) / 1_000;
    let (min, sec, frac) = (us / 60_000_000, us / 1_000_000 % 60, us % 1_000_000);
    assert!(min < 60, "{ns} is not within the hour");
    format!("2026-03-01T12:{min:02}:{sec:02}.{frac:06}Z")
}

/// The records of [`exchange_on`] (`role`: as the local side made it).
pub fn assert_exchange_records(r: &Replayed, family: Family, role: &str) {
    let (client, server) = family.addrs();
    let community = community_id_v1(0, 6, client, CLIENT_PORT, server, SERVER_PORT);
    let hs = only(r, "tcp_handshake");
    let close = only(r, "tcp_close");
    for rec in [hs, close] {
        assert_eq!(rec["interface"], "replay", "{rec}");
        assert_eq!(rec["role"], role, "{rec}");
        assert_eq!(rec["client_ip"], client.to_string(), "{rec}");
        assert_eq!(rec["client_port"], CLIENT_PORT, "{rec}");
        assert_eq!(rec["server_ip"], server.to_string(), "{rec}");
        assert_eq!(rec["server_port"], SERVER_PORT, "{rec}");
        assert_eq!(rec["community_id"], community, "{rec}");
        assert_eq!(rec["client_isn"], CLIENT_ISN, "{rec}");
        assert_eq!(rec["server_isn"], SERVER_ISN, "{rec}");
    }
    // The times are the capture's, 1 ms a frame.
    assert_eq!(hs["ts"], rfc3339(BASE_NS), "{hs}");
    assert_eq!(hs["outcome"], "completed", "{hs}");
    assert_eq!(hs["conn_state"], "S1", "{hs}");
    assert_eq!(hs["seq_checks"], serde_json::json!([]), "{hs}");
    assert_eq!(hs["syn_to_synack_us"], 1_000, "{hs}");
    assert_eq!(hs["synack_to_ack_us"], 1_000, "{hs}");
    assert_eq!(close["ts"], rfc3339(BASE_NS + 6 * NS_PER_MS), "{close}");
    let established = rfc3339(BASE_NS + 2 * NS_PER_MS);
    assert_eq!(close["established_ts"], established, "{close}");
    assert_eq!(close["conn_state"], "SF", "{close}");
    assert_eq!(close["close_kind"], "graceful", "{close}");
    assert_eq!(close["closed_by"], "client", "{close}");
    assert_eq!(close["duration_ms"], 4.0, "{close}");
}

/// The summary line starting with `prefix`.
pub fn line<'a>(r: &'a Replayed, prefix: &str) -> &'a str {
    r.stderr
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{}", r.stderr))
}

/// A replay running in the background (killed on drop).
pub struct Running(Child);

impl Running {
    pub fn start(args: &[&OsStr]) -> Self {
        let child = Command::new(BINARY)
            .arg("replay")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start handshake-monitor replay");
        Self(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGINT; then its exit and its stderr (bounded).
    pub fn interrupt(mut self) -> (ExitStatus, String) {
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGINT) };
        let status = wait_bounded(&mut self.0, Duration::from_secs(20));
        let mut stderr = String::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ids and types (`xdp`, `sched_cls`, ...) of the BPF programs process
/// `pid` holds open. From its fdinfo: bpftool's `pids` needs a bpftool
/// built with BPF skeletons, which Debian's is not.
pub fn programs_of(pid: u32) -> Vec<(u64, String)> {
    let fdinfo = PathBuf::from(format!("/proc/{pid}/fdinfo"));
    let ids = std::fs::read_dir(fdinfo).into_iter().flatten().flatten();
    ids.filter_map(|fd| {
        let text = std::fs::read_to_string(fd.path()).ok()?;
        let id = text.lines().find_map(|l| l.strip_prefix("prog_id:"))?;
        let id: u64 = id.trim().parse().ok()?;
        let out = cmd::output("bpftool", &["prog", "show", "id", &id.to_string(), "-j"]);
        let info: Value = serde_json::from_slice(&out.stdout).ok()?;
        Some((id, info["type"].as_str()?.to_string()))
    })
    .collect()
}

pub fn program_exists(id: u64) -> bool {
    let out = cmd::output("bpftool", &["prog", "show", "id", &id.to_string()]);
    out.status.success()
}

/// Every path under the daemon's pin directory (none when it is missing).
pub fn pinned() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            out.push(entry.path());
            walk(&entry.path(), out);
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/bpf/handshake-monitor"), &mut out);
    out.sort();
    out
}

/// Replays a capture damaged after its fourth record: exit 2, those four
/// replayed, and the summary's line for the file saying `error`.
pub fn assert_damaged_after_four(name: &str, bytes: &[u8], error: &str) {
    let dir = TempDir::new("replay-damaged");
    let path = write(dir.path(), name, bytes);
    let r = replay(dir.path(), &[&path], &[]);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    // SYN, SYN-ACK, ACK and the request: a completed handshake, no close.
    let hs = only(&r, "tcp_handshake");
    assert_eq!(hs["outcome"], "completed", "{hs}");
    assert_eq!(hs["client_isn"], CLIENT_ISN, "{hs}");
    assert_eq!(hs["server_isn"], SERVER_ISN, "{hs}");
    assert!(r.of_type("tcp_close").is_empty(), "{:#?}", r.events);
    let expected = counts("ingress syn 1, ingress ack 1, ingress data 1, egress syn_ack 1");
    assert_eq!(packet_counts(&r), expected, "{}", r.metrics);
    let expected = format!(
        "{}: {error}; replayed the 4 records before it",
        path.display()
    );
    assert!(
        r.stderr.lines().any(|l| l == expected),
        "{expected}:\n{}",
        r.stderr
    );
}
