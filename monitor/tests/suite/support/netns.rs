//! Running code of the test process inside a lab namespace.

use std::{fs::File, os::fd::AsRawFd as _, thread};

/// Runs `f` on a fresh thread that has joined network namespace `ns`
/// (`/run/netns/NS`, as made by `ip netns add`). A network namespace is a
/// per-thread attribute, so the rest of the test process stays where it is;
/// sockets made inside keep their namespace wherever they are used later.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).unwrap_or_else(|err| panic!("opening {path}: {err}"));
    thread::scope(|scope| {
        let handle = scope.spawn(|| {
            // SAFETY: the fd is open for the duration of the call and names a
            // network namespace; setns only changes this thread's namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
            f()
        });
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Whether a TCP socket of namespace `ns` listens on `port` (any address,
/// IPv4 or IPv6), as the kernel's socket tables say. Unlike a probe
/// connection, looking costs the listener nothing: no accept, no handshake
/// for a daemon to count.
pub fn tcp_listening(ns: &str, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let port = format!("{port:04X}");
    in_netns(ns, || {
        ["tcp", "tcp6"].iter().any(|table| {
            let text = std::fs::read_to_string(format!("/proc/thread-self/net/{table}"))
                .unwrap_or_default();
            text.lines().skip(1).any(|line| {
                let mut fields = line.split_whitespace().skip(1);
                let local = fields.next().unwrap_or_default();
                let state = fields.nth(1).unwrap_or_default();
                local.rsplit(':').next() == Some(port.as_str()) && state == LISTEN
            })
        })
    })
}
