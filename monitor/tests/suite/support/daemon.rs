//! `Daemon`: the real `handshake-monitor` binary running in a lab namespace,
//! killed by its guard if a test does not stop it.

use std::{
    fs::{self, File},
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::http;

pub const BINARY: &str = env!("CARGO_BIN_EXE_handshake-monitor");
/// Loading and verifying the programs takes well under a second here; the
/// margin is for a loaded CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Daemon {
    child: Child,
    ns: String,
    metrics: SocketAddr,
    stderr_path: PathBuf,
    /// The control socket `run` was given.
    pub control_socket: Option<String>,
    /// Whether the control socket's directory is this guard's to remove.
    owns_control_dir: bool,
}

impl Daemon {
    /// Starts `run --iface IF... --metrics-addr 127.0.0.1:PORT` in `ns` and
    /// waits until /healthz answers, which it does only once every
    /// interface is attached.
    pub fn start(ns: &str, ifaces: &[&str], port: u16) -> Self {
        Self::start_as(ns, &[], Path::new(BINARY), ifaces, port)
    }

    /// [`Daemon::start`] with `binary` run through `wrapper` (e.g. setpriv).
    pub fn start_as(
        ns: &str,
        wrapper: &[String],
        binary: &Path,
        ifaces: &[&str],
        port: u16,
    ) -> Self {
        let mut args = vec!["run".to_string()];
        for iface in ifaces {
            args.extend(["--iface".to_string(), iface.to_string()]);
        }
        args.extend(["--metrics-addr".to_string(), format!("127.0.0.1:{port}")]);
        let mut daemon = Self::spawn(ns, wrapper, binary, &args);
        daemon.wait_healthy();
        daemon
    }

    /// Spawns `ip netns exec NS [wrapper...] BINARY args...` without waiting
    /// for anything. `ip netns exec` execs in place, so the child's pid is
    /// the daemon's and signals reach it directly.
    pub fn spawn(ns: &str, wrapper: &[String], binary: &Path, args: &[String]) -> Self {
        Self::spawn_with_env(ns, wrapper, binary, args, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables (e.g. systemd's).
    pub fn spawn_with_env(
        ns: &str,
        wrapper: &[String],
        binary: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Self {
        let stderr_path = std::env::temp_dir().join(format!(
            "hmt-{}-{}-stderr.log",
            std::process::id(),
            super::unique()
        ));
        let stderr = File::create(&stderr_path)
            .unwrap_or_else(|err| panic!("creating {}: {err}", stderr_path.display()));
        // Daemons of concurrent tests must not meet on the default control
        // socket (the second would refuse to start).
        let mut args = args.to_vec();
        let owns_control_dir = args.first().is_some_and(|a| a == "run")
            && !args.iter().any(|a| a == "--control-socket");
        if owns_control_dir {
            args.extend(["--control-socket".to_string(), control_socket_path()]);
        }
        let args = &args[..];
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(wrapper)
            .arg(binary)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| panic!("spawning {} in {ns}: {err}", binary.display()));
        let metrics = metrics_addr(args).unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 9879)));
        Self {
            child,
            ns: ns.to_string(),
            metrics,
            stderr_path,
            control_socket: control_socket_of(args),
            owns_control_dir,
        }
    }

    /// `handshake-monitor block ARGS... --control-socket SOCKET` against
    /// this daemon: exit status, stdout and stderr.
    pub fn block(&self, args: &[&str]) -> std::process::Output {
        let socket = self
            .control_socket
            .as_deref()
            .expect("a daemon started with `run`");
        Command::new(BINARY)
            .arg("block")
            .args(args)
            .args(["--control-socket", socket])
            .output()
            .expect("running handshake-monitor block")
    }

    /// `handshake-monitor status --json` of this daemon, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let socket = self
            .control_socket
            .as_deref()
            .expect("a daemon started with `run`");
        let out = Command::new(BINARY)
            .args(["status", "--json", "--control-socket", socket])
            .output()
            .expect("running handshake-monitor status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn healthz(&self) -> std::io::Result<String> {
        http::get(&self.ns, self.metrics, "/healthz")
    }

    pub fn scrape(&self) -> String {
        http::get(&self.ns, self.metrics, "/metrics").unwrap_or_else(|err| {
            panic!(
                "scraping {}: {err}\nstderr:\n{}",
                self.metrics,
                self.stderr()
            )
        })
    }

    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the daemon") {
                panic!(
                    "the daemon exited during start-up ({status}):\n{}",
                    self.stderr()
                );
            }
            match self.healthz() {
                Ok(body) if body == "ok\n" => return,
                Ok(body) => panic!("/healthz answered {body:?}\nstderr:\n{}", self.stderr()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(err) => panic!(
                    "/healthz did not answer within {START_TIMEOUT:?} ({err})\nstderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.stop(libc::SIGTERM)
    }

    /// The daemon's pid (`ip netns exec` execs in place).
    /// The network namespace the daemon runs in.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. SIGHUP) without waiting for anything.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: as in `stop`.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Sends `signal` and waits (bounded) for the exit.
    pub fn stop(&mut self, signal: libc::c_int) -> ExitStatus {
        if self.child.try_wait().expect("polling the daemon").is_none() {
            // SAFETY: kill has no memory-safety preconditions; the child is
            // not reaped yet, so its pid cannot have been reused.
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        }
        self.wait_exit()
    }

    /// Waits (bounded) for the daemon to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the daemon") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {EXIT_TIMEOUT:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A daemon still running here belongs to a failed test: SIGKILL
        // closes its link fds, which detaches its programs.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_file(&self.stderr_path);
        // Only a directory this guard made up: a test may point a second
        // daemon at the first one's socket.
        let dir = self
            .control_socket
            .as_ref()
            .and_then(|s| Path::new(s).parent());
        if let (true, Some(dir)) = (self.owns_control_dir, dir) {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Runs the daemon in `ns` with `args` until it exits on its own (the error
/// paths); returns its exit status and stderr.
pub fn run_to_exit(
    ns: &str,
    wrapper: &[String],
    binary: &Path,
    args: &[&str],
) -> (ExitStatus, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut daemon = Daemon::spawn(ns, wrapper, binary, &args);
    let status = daemon.wait_exit();
    (status, daemon.stderr())
}

/// A control socket path of its own, in a directory anyone may create in
/// (tests also run the daemon as an unprivileged user).
pub fn control_socket_path() -> String {
    std::env::temp_dir()
        .join(format!("hmt-{}-{}", std::process::id(), super::unique()))
        .join("control.sock")
        .display()
        .to_string()
}

/// The `--control-socket` a daemon was started with.
pub fn control_socket_of(args: &[String]) -> Option<String> {
    let at = args.iter().position(|a| a == "--control-socket")?;
    args.get(at + 1).cloned()
}

fn metrics_addr(args: &[String]) -> Option<SocketAddr> {
    let at = args.iter().position(|a| a == "--metrics-addr")?;
    args.get(at + 1)?.parse().ok()
}

/// A command's outcome: success, stdout and stderr as text.
pub fn text(out: &std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
