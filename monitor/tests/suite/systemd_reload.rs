//! End to end: the daemon as systemd runs it. `sd_notify` messages (READY
//! once attached, RELOADING/READY around a reload, STOPPING, watchdog
//! pings) read from a real notification socket, and SIGHUP re-reading the
//! config without detaching anything or losing a counter; a broken config
//! changes nothing.
//!
//! Needs root (namespaces, BPF); run with
//! `cargo xtask test -- systemd_reload::`.

use crate::support;

use std::{
    net::SocketAddr,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use support::{
    attach,
    daemon::{BINARY, Daemon},
    lab::NetnsLab,
    prom, require_root, traffic, wait_until,
};

/// A notification socket like systemd's, in a directory of its own.
struct NotifySocket {
    dir: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn bind() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "hmt-{}-{}-notify",
            std::process::id(),
            support::unique()
        ));
        std::fs::create_dir_all(&dir).expect("notify dir");
        let socket = UnixDatagram::bind(dir.join("notify")).expect("bind notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Self { dir, socket }
    }

    fn path(&self) -> String {
        self.dir.join("notify").display().to_string()
    }

    /// Messages until one contains `wanted` (or 10 s pass); all of them.
    fn until(&self, wanted: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = message.contains(wanted);
                seen.push(message);
                if done {
                    return seen;
                }
            }
        }
        panic!("no {wanted:?} within 10 s; got {seen:?}");
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_config(path: &Path, body: &str) {
    std::fs::write(path, body).expect("writing the config");
}

fn value(daemon: &Daemon, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    prom::value(&daemon.scrape(), name, labels)
}

#[test]
fn notifies_systemd_and_reloads_on_sighup_without_losing_anything() {
    require_root();
    let lab = NetnsLab::pair();
    let link = lab.link();
    let notify = NotifySocket::bind();
    let config = notify.dir.join("config.toml");
    write_config(&config, "[mitigation]\nmode = \"dry-run\"\n");
    let args: Vec<String> = [
        "run",
        "--iface",
        &link.peer_if,
        "--metrics-addr",
        "127.0.0.1:19951",
        "--config",
        config.to_str().expect("utf-8"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let socket_path = notify.path();
    let env = [
        ("NOTIFY_SOCKET", socket_path.as_str()),
        ("WATCHDOG_USEC", "400000"),
    ];
    let mut daemon = Daemon::spawn_with_env(&link.peer_ns, &[], Path::new(BINARY), &args, &env);
    let ready = notify.until("READY=1");
    daemon.wait_healthy();
    assert_eq!(
        ready.last().map(String::as_str),
        Some("READY=1\nSTATUS=watching 1 interface(s); mitigation dry-run")
    );
    // Pings every half of WATCHDOG_USEC.
    notify.until("WATCHDOG=1");
    notify.until("WATCHDOG=1");

    // Traffic, so there are counters to keep.
    let addr = SocketAddr::from((link.peer_addr, 8080));
    let server = traffic::Server::start(&link.peer_ns, addr, 3);
    traffic::exchange_many(&lab.hub, addr, 3);
    server.join();
    let completed = [
        ("interface", link.peer_if.as_str()),
        ("role", "server"),
        ("result", "completed"),
    ];
    assert!(wait_until(Duration::from_secs(5), || {
        value(&daemon, "handshake_tcp_handshakes_total", &completed) == Some(3.0)
    }));
    let xdp_before = attach::xdp_program(&link.peer_ns, &link.peer_if);
    assert!(xdp_before.is_some());

    // A good reload: the mode changes live; a restart-only key is named.
    write_config(
        &config,
        "[mitigation]\nmode = \"enforce\"\n[flows]\ntable_size = 4096\n",
    );
    daemon.signal(libc::SIGHUP);
    let reload = notify.until("config reloaded");
    assert!(
        reload.iter().any(|m| m.starts_with("RELOADING=1")),
        "{reload:?}"
    );
    assert!(reload.last().is_some_and(|m| m.starts_with("READY=1")));
    let enforce = [("mode", "enforce")];
    assert_eq!(
        value(&daemon, "handshake_mitigation_mode", &enforce),
        Some(1.0)
    );
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("these settings only change on a restart")
            && stderr.contains("flows.table_size"),
        "{stderr}"
    );
    // Nothing detached, nothing reset.
    assert_eq!(
        attach::xdp_program(&link.peer_ns, &link.peer_if),
        xdp_before
    );
    assert_eq!(
        value(&daemon, "handshake_tcp_handshakes_total", &completed),
        Some(3.0)
    );

    // A broken reload: refused with a log line, the running config stays.
    write_config(&config, "[mitigation]\nmode = \"maybe\"\n");
    daemon.signal(libc::SIGHUP);
    let failed = notify.until("last reload failed");
    assert!(failed.last().is_some_and(|m| m.starts_with("READY=1")));
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("config reload failed, the running config stays in force")
            && stderr.contains("mitigation.mode = maybe"),
        "{stderr}"
    );
    assert_eq!(
        value(&daemon, "handshake_mitigation_mode", &enforce),
        Some(1.0)
    );

    assert!(daemon.terminate().success());
    notify.until("STOPPING=1");
    attach::assert_nothing_attached(&link.peer_ns, &link.peer_if);
}
