//! Debian packages the test suite shells out to. Checked with dpkg-query (a
//! local, fast query); installed with apt-get only when something is missing.

use std::collections::HashSet;
use std::process::Command;

use anyhow::{Result, bail};

use super::report;
use crate::{env, proc};

/// `(package, why)`. Extend this list when tests start using a new tool.
pub const PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "ip, tc: namespaces, veths, qdiscs"),
    ("bpftool", "inspecting loaded programs and maps"),
    ("curl", "scraping /metrics, HTTP(S) clients"),
    ("openssl", "TLS clients and servers, test certificates"),
    ("util-linux", "setpriv, nsenter"),
    (
        "bsdutils",
        "script: a pseudo-terminal for the `watch` tests",
    ),
    ("procps", "pgrep, ps"),
    ("iputils-ping", "ping"),
    (
        "prometheus-alertmanager",
        "a real Alertmanager for the alert push tests",
    ),
    (
        "prometheus",
        "promtool and a real Prometheus server for the deploy/prometheus tests",
    ),
    ("hping3", "the bounded SYN flood of `cargo xtask demo`"),
    (
        "ethtool",
        "turning a veth peer's GRO on and off in the SYN-cookie guard tests",
    ),
    (
        "tcpdump",
        "capturing lab traffic for the replay-agrees-with-live tests",
    ),
    (
        "python3-yaml",
        "parsing the Kubernetes manifests in the deploy/kubernetes test",
    ),
];

/// What `cargo xtask test-kernels` needs besides: installed by that command
/// only, so that the set-up of `run` and `test` stays lean.
pub const KERNEL_PACKAGES: &[(&str, &str)] = &[
    (
        "qemu-system-x86",
        "booting other kernels in `cargo xtask test-kernels`",
    ),
    (
        "binutils",
        "objcopy: test binaries without DWARF for the test-kernels initramfs",
    ),
    (
        "busybox-static",
        "the init and shell of the `cargo xtask test-kernels` guests",
    ),
];

pub fn ensure() -> Result<()> {
    ensure_list(PACKAGES)
}

/// Installs whatever of `list` is missing.
pub fn ensure_list(list: &[(&str, &str)]) -> Result<()> {
    let names: Vec<&str> = list.iter().map(|(p, _)| *p).collect();
    let Some(installed) = installed(&names) else {
        // Not Debian (or dpkg is broken): nothing we can install; say what
        // the tests expect and let them fail loudly if a tool is absent.
        report(
            "Debian packages",
            "skipped (no dpkg-query; not a Debian system?)",
        );
        eprintln!(
            "setup: warning: make sure these are installed: {}",
            names.join(" ")
        );
        return Ok(());
    };
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|p| !installed.contains(*p))
        .collect();
    for p in &names {
        report(
            &format!("package {p}"),
            if missing.contains(p) { "missing" } else { "ok" },
        );
    }
    if missing.is_empty() {
        return Ok(());
    }
    install(&missing)
}

fn install(missing: &[&str]) -> Result<()> {
    if !env::is_root() && !env::have_sudo() {
        bail!(
            "missing Debian packages: {}; not root and no sudo, so install them as root: \
             apt-get install {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    proc::run(&mut privileged(&["apt-get", "update"]))?;

    // apt-get install refuses the whole batch if one name has no candidate
    // (e.g. bpftool on some releases), so install what exists and warn
    // about the rest instead of failing.
    let (available, unavailable): (Vec<&str>, Vec<&str>) =
        missing.iter().partition(|p| has_candidate(p));
    for p in &unavailable {
        eprintln!("setup: warning: no apt candidate for `{p}`; tests that need it will fail");
    }
    if available.is_empty() {
        return Ok(());
    }
    let mut args = vec!["apt-get", "install", "-y", "--no-install-recommends"];
    args.extend(&available);
    proc::run(&mut privileged(&args))?;
    for p in &available {
        report(&format!("package {p}"), "installed");
    }
    Ok(())
}

/// `args` run as root: directly when we are root, else through sudo. The
/// frontend var goes on sudo's command line because sudo resets the env.
fn privileged(args: &[&str]) -> Command {
    const FRONTEND: &str = "DEBIAN_FRONTEND=noninteractive";
    if env::is_root() {
        let mut cmd = proc::command(args[0]);
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(&args[1..]);
        cmd
    } else {
        let mut cmd = proc::command("sudo");
        cmd.arg(FRONTEND).args(args);
        cmd
    }
}

/// The subset of `names` dpkg reports as installed; `None` without dpkg.
fn installed(names: &[&str]) -> Option<HashSet<String>> {
    let mut cmd = proc::command("dpkg-query");
    cmd.args(["-W", "-f=${Package}\\t${Status}\\n"]).args(names);
    // dpkg-query exits 1 when some names are unknown, but still prints the
    // known ones: read stdout whatever the status.
    let out = proc::probe(&mut cmd).ok()?;
    Some(parse_dpkg_query(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_dpkg_query(stdout: &str) -> HashSet<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, status)| status.trim() == "install ok installed")
        .map(|(pkg, _)| pkg.trim().to_owned())
        .collect()
}

fn has_candidate(pkg: &str) -> bool {
    proc::probe_stdout(proc::command("apt-cache").args(["policy", pkg]))
        .is_some_and(|out| parse_candidate(&out))
}

/// Does `apt-cache policy` show an installable version? Unknown packages
/// print nothing; known ones without a source say `Candidate: (none)`.
fn parse_candidate(policy: &str) -> bool {
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .is_some_and(|c| c.trim() != "(none)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_parsing() {
        let out = "iproute2\tinstall ok installed\ncurl\tdeinstall ok config-files\nprocps\tinstall ok installed\n";
        let got = parse_dpkg_query(out);
        assert!(got.contains("iproute2"));
        assert!(got.contains("procps"));
        assert!(!got.contains("curl"));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn apt_candidate_parsing() {
        let yes = "bpftool:\n  Installed: (none)\n  Candidate: 7.1.0+6.1.158-1\n  Version table:\n";
        let no = "bpftool:\n  Installed: (none)\n  Candidate: (none)\n";
        assert!(parse_candidate(yes));
        assert!(!parse_candidate(no));
        assert!(!parse_candidate(""));
    }

    #[test]
    fn package_list_has_no_duplicates() {
        let names: HashSet<_> = PACKAGES.iter().map(|(p, _)| p).collect();
        assert_eq!(names.len(), PACKAGES.len());
    }
}
