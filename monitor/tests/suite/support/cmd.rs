//! Running external tools (`ip`, `tc`, `bpftool`) with a deadline.

use std::{
    process::{Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

/// Any of the tools here answers in milliseconds; this only bounds a hang.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `program args...` to completion, killing it after [`TOOL_TIMEOUT`].
pub fn output(program: &str, args: &[&str]) -> Output {
    let shown = format!("{program} {}", args.join(" "));
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start `{shown}`: {err}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    // wait_with_output drains both pipes, so a chatty tool cannot block.
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TOOL_TIMEOUT) {
        Ok(result) => result.unwrap_or_else(|err| panic!("waiting for `{shown}`: {err}")),
        Err(_) => {
            // SAFETY: kill has no memory-safety preconditions; the child has
            // not been reaped (its waiter is still blocked), so the pid is ours.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("`{shown}` did not finish within {TOOL_TIMEOUT:?}");
        }
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = output(program, args);
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip args...`, which must succeed.
pub fn ip(args: &[&str]) -> String {
    run("ip", args)
}
