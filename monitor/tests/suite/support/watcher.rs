//! `Watcher`: `handshake-monitor watch` running against a daemon, on a
//! pipe or on a pseudo-terminal of its own (`script`), its output read
//! line by line as it comes; killed by its guard.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::daemon::BINARY;

/// How long a watcher must stay silent to have received nothing more.
pub const QUIET: Duration = Duration::from_secs(2);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// `handshake-monitor watch ARGS... --control-socket SOCKET`, its stdout
/// read line by line as it comes; killed on drop.
pub struct Watcher {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Watcher {
    /// stdout a pipe, stderr kept apart.
    pub fn piped(args: &[&str], socket: &str) -> Self {
        Self::spawn(watch_command(args, socket), true)
    }

    /// stdout a pipe nobody reads: closed at once.
    pub fn unread(args: &[&str], socket: &str) -> Self {
        Self::spawn(watch_command(args, socket), false)
    }

    /// On a pseudo-terminal of its own: stdout and stderr both reach the
    /// terminal, whose output is what `lines` gives; stdin is the
    /// keyboard (`interrupt` types Ctrl-C). `script -e` exits with the
    /// watcher's status.
    pub fn on_terminal(args: &[&str], socket: &str) -> Self {
        let watch = format!(
            "exec '{BINARY}' watch {} --control-socket '{socket}'",
            args.join(" ")
        );
        let mut command = Command::new("script");
        command
            .args(["-eqfc", &watch, "/dev/null"])
            .env("SHELL", "/bin/sh");
        Self::spawn(command, true)
    }

    fn spawn(mut command: Command, read_stdout: bool) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the watcher");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        if read_stdout {
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    // A terminal ends lines with CR LF.
                    let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next `count` lines (failing after `timeout`), then nothing for
    /// [`QUIET`].
    pub fn exactly(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => got.push(line),
                Err(_) => panic!("{count} lines expected within {timeout:?}, got {got:?}"),
            }
        }
        if let Ok(extra) = self.lines.recv_timeout(QUIET) {
            panic!("after {got:?}, also {extra:?}");
        }
        got
    }

    /// Types Ctrl-C on the watcher's terminal.
    pub fn interrupt(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin.write_all(b"\x03").expect("typing Ctrl-C");
        stdin.flush().expect("flushing stdin");
    }

    /// The exit status and everything written to stderr (a terminal's
    /// watcher writes none: it is all in `lines`).
    pub fn wait(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("polling the watcher") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the watcher did not exit within {EXIT_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().expect("waited once").join().unwrap();
        (status, stderr)
    }

    /// Lines received so far that nobody took.
    pub fn rest(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn watch_command(args: &[&str], socket: &str) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("watch")
        .args(args)
        .args(["--control-socket", socket]);
    command
}

/// `handshake-monitor watch ARGS...` to completion.
pub fn watch_once(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(BINARY)
        .arg("watch")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running handshake-monitor watch");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
