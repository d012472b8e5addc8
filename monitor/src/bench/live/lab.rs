//! The bench's network namespace: one veth pair inside a namespace of its
//! own, deleted by a guard on every exit path, and the per-thread helpers
//! to work inside it.

use std::{ffi::CStr, fs::File, os::fd::AsRawFd as _, process::Command, thread};

use anyhow::{Context as _, bail};

/// A namespace holding the veth pair `gen_if` <-> `rx_if`. Frames the
/// generator redirects out of `gen_if` arrive on `rx_if`, where the
/// program under test is attached. The namespace has no route out and its
/// addresses are in 198.18.0.0/15 and 2001:2::/48.
pub struct Lab {
    pub ns: String,
    pub gen_if: String,
    pub rx_if: String,
    created: bool,
}

pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2 is needed by the bench)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Lab {
    pub fn new() -> anyhow::Result<Self> {
        let id = std::process::id();
        // Interface names must fit IFNAMSIZ (15 characters).
        let mut lab = Self {
            ns: format!("hmb-{id}"),
            gen_if: format!("hmb{id}g"),
            rx_if: format!("hmb{id}r"),
            created: false,
        };
        ip(&["netns", "add", &lab.ns])?;
        lab.created = true;
        let ns = lab.ns.clone();
        ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "link",
            "add",
            &lab.gen_if,
            "type",
            "veth",
            "peer",
            "name",
            &lab.rx_if,
        ])?;
        for (ifname, host) in [(&lab.gen_if, 1), (&lab.rx_if, 2)] {
            let v4 = format!("198.18.250.{host}/24");
            let v6 = format!("2001:2:0:fa::{host}/64");
            ip(&["-n", &ns, "addr", "add", &v4, "dev", ifname])?;
            ip(&["-n", &ns, "addr", "add", &v6, "dev", ifname, "nodad"])?;
            ip(&["-n", &ns, "link", "set", "dev", ifname, "up"])?;
        }
        Ok(lab)
    }

    /// Runs `f` on a fresh thread joined to the lab namespace.
    pub fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        run_in(&self.ns, f)
    }
}

/// Runs `f` on a fresh thread joined to the named namespace. The network
/// namespace is a per-thread attribute: the rest of the process stays
/// where it is, threads `f` starts inherit the namespace.
pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
    thread::scope(|scope| {
        let handle = scope.spawn(|| {
            // SAFETY: the fd is open for the call and names a network
            // namespace; setns changes only this thread's namespace.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("setns({path})"));
            }
            Ok(f())
        });
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Joins the calling thread to the named namespace for good (for threads
/// the bench starts and ends itself).
pub fn enter(ns: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
    // SAFETY: as in run_in.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns({path})"));
    }
    Ok(())
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting the namespace deletes both veth ends and whatever is
        // still attached to them.
        if self.created
            && let Err(err) = ip(&["netns", "del", &self.ns])
        {
            eprintln!("handshake-monitor-bench: cleanup: {err:#}");
        }
    }
}

/// ifindex of `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    let cname = std::ffi::CString::new(name)?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        bail!("no interface {name} in this namespace");
    }
    Ok(index)
}

/// Packets the interface has received (its rx counter, which on veth
/// counts every frame its XDP program saw, whatever the verdict), read in
/// the calling thread's namespace. 32-bit: callers take wrapping deltas.
pub fn rx_packets(name: &str) -> anyhow::Result<u32> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getifaddrs");
    }
    let mut found = None;
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a node of the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_data.is_null() {
            continue;
        }
        // SAFETY: non-null addr and name of a list entry.
        let (family, entry_name) = unsafe {
            (
                i32::from((*entry.ifa_addr).sa_family),
                CStr::from_ptr(entry.ifa_name),
            )
        };
        if family == libc::AF_PACKET && entry_name.to_bytes() == name.as_bytes() {
            // SAFETY: for AF_PACKET entries ifa_data is a struct
            // rtnl_link_stats, whose first field is rx_packets (u32).
            found = Some(unsafe { std::ptr::read_unaligned(entry.ifa_data as *const u32) });
            break;
        }
    }
    // SAFETY: the list from getifaddrs, not used after this.
    unsafe { libc::freeifaddrs(list) };
    found.with_context(|| format!("no link statistics for {name}"))
}

/// Pins the calling thread to `cpu`: the generator, the veth receive path
/// (softirq on the same CPU) and a tap reader then do not trade places
/// between rounds.
pub use crate::cpu::pin_to_cpu;
