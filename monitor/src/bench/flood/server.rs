//! The service behind the monitored end: `python3 -m http.server` on
//! 8080, serving a one-line page from a directory of its own; stopped and
//! cleaned up by Drop.

use std::{
    fs,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::client;
use crate::bench::live::lab::run_in;

pub struct HttpServer {
    child: Child,
    dir: PathBuf,
}

impl HttpServer {
    /// Starts the server in `ns` on `addr`; returns once a request from
    /// `client_ns` gets its page.
    pub fn start(ns: &str, addr: SocketAddr, client_ns: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("hmb-{}-www", std::process::id()));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("index.html"), "handshake-monitor bench\n")?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-m", "http.server"])
            .arg(addr.port().to_string())
            .args(["--bind", &addr.ip().to_string(), "--directory"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting `python3 -m http.server` (python3 is needed by the bench)")?;
        let mut server = Self { child, dir };
        let started = Instant::now();
        while !run_in(client_ns, || client::reachable(addr))? {
            if let Some(status) = server.child.try_wait()? {
                bail!("python3 -m http.server exited ({status})");
            }
            if started.elapsed() > Duration::from_secs(15) {
                bail!("python3 -m http.server did not answer on {addr} within 15 s");
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        crate::bench::daemon_proc::stop(&mut self.child, Duration::from_secs(3));
        let _ = fs::remove_dir_all(&self.dir);
    }
}
