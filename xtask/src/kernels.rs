//! `cargo xtask test-kernels`: the TestRun tests (load every program, feed
//! frames through BPF_PROG_TEST_RUN) on other kernels, each booted under
//! qemu with the test binary in an initramfs.
//!
//! Kernels: the current Debian packages of [`debian::META_PACKAGES`]
//! (downloaded once into `target/kernels/`), plus any `--kernel PATH`.
//! Fails unless every binary passed on every kernel.

mod debian;
mod initramfs;
mod qemu;
mod results;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::env;
use initramfs::TestBinary;
use results::GuestLog;

/// The areas (modules of the `suite` test binary) that need only
/// BPF_PROG_TEST_RUN on `lo`: no namespaces, no daemon, no tools beyond the
/// binary itself. Each runs, and is reported, on its own.
pub const TEST_AREAS: &[&str] = &[
    "testrun",
    "testrun_flows",
    "testrun_tls",
    "testrun_mitigation",
];

/// A kernel image to boot, and the name it is reported under.
pub struct Kernel {
    pub label: String,
    pub image: PathBuf,
}

pub struct Options<'a> {
    pub kernels: &'a [PathBuf],
    pub no_debian: bool,
    pub timeout: Duration,
}

pub fn run(opts: &Options) -> Result<()> {
    crate::setup::run()?;
    crate::setup::packages::ensure_list(crate::setup::packages::KERNEL_PACKAGES)?;
    let start = Instant::now();
    let dir = env::target_dir().join("kernels");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut kernels = if opts.no_debian {
        Vec::new()
    } else {
        debian::kernels(&dir)?
    };
    for path in opts.kernels {
        kernels.push(given_kernel(path)?);
    }
    if kernels.is_empty() {
        bail!("no kernel to boot: apt offered none and no --kernel PATH was given");
    }

    let tests = build_tests()?;
    let initrd = dir.join("initramfs.cpio");
    // Each binary gets at most 2/5 of the boot's limit, so one hung binary
    // still leaves time for the others to report.
    let per_binary = (opts.timeout.as_secs() * 2 / 5).max(10);
    initramfs::build(&tests, TEST_AREAS, per_binary, &dir.join("bin"), &initrd)?;
    eprintln!(
        "test-kernels: initramfs {} ({} MiB)",
        initrd.display(),
        std::fs::metadata(&initrd)?.len() >> 20
    );

    let mut accel = qemu::Accel::detect();
    let mut outcomes = Vec::new();
    for kernel in &kernels {
        let log_path = dir.join(format!("{}.log", kernel.label));
        let boot = |accel| {
            // TCG boots a distribution kernel to its init in about 10 s
            // here; KVM in 2. Neither may wait forever for the first line.
            let init_limit = match accel {
                qemu::Accel::Kvm => Duration::from_secs(30),
                qemu::Accel::Tcg => opts.timeout,
            };
            qemu::boot(
                &kernel.image,
                &initrd,
                accel,
                (opts.timeout, init_limit),
                &kernel.label,
                &log_path,
            )
        };
        let mut boot_result = boot(accel)?;
        if accel == qemu::Accel::Kvm && results::parse(&boot_result.log).release.is_none() {
            // e.g. nested KVM: "failed to set MSR 0x10a", or a silent hang.
            eprintln!(
                "test-kernels: {}: the guest's init never ran under KVM; using TCG from now on",
                kernel.label
            );
            accel = qemu::Accel::Tcg;
            boot_result = boot(accel)?;
        }
        let boot = boot_result;
        outcomes.push(Outcome {
            label: kernel.label.clone(),
            accel,
            guest: results::parse(&boot.log),
            timed_out: boot.timed_out || boot.no_init,
            status: boot.status,
            elapsed: boot.elapsed,
            log: log_path,
        });
    }

    let failures = report(&outcomes);
    eprintln!(
        "test-kernels: {} kernel(s) in {:.0}s",
        outcomes.len(),
        start.elapsed().as_secs_f64()
    );
    if failures > 0 {
        bail!(
            "test-kernels: {failures} failure(s); serial logs in {}",
            dir.display()
        );
    }
    Ok(())
}

fn given_kernel(path: &Path) -> Result<Kernel> {
    if !path.is_file() {
        bail!("--kernel {}: no such file", path.display());
    }
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let label = name
        .strip_prefix("vmlinuz-")
        .or_else(|| name.strip_prefix("bzImage-"))
        .unwrap_or(&name)
        .to_owned();
    Ok(Kernel {
        label,
        image: path.to_owned(),
    })
}

/// Builds the suite; the guest runs each of [`TEST_AREAS`] from it.
fn build_tests() -> Result<TestBinary> {
    Ok(TestBinary {
        name: crate::suite::NAME.to_owned(),
        path: crate::suite::build()?,
    })
}

struct Outcome {
    label: String,
    accel: qemu::Accel,
    guest: GuestLog,
    timed_out: bool,
    status: Option<std::process::ExitStatus>,
    elapsed: Duration,
    log: PathBuf,
}

/// The oldest kernel the project supports (README, docs/kernels.md).
/// Older kernels are still booted and reported, but their failures are
/// the documented limit, not a regression.
const SUPPORTED_FROM: (u32, u32) = (6, 1);

/// `6.1.0-56-amd64` -> (6, 1).
fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Print the per-kernel, per-binary table; the number of failures on
/// supported kernels.
fn report(outcomes: &[Outcome]) -> usize {
    let mut failures = 0;
    eprintln!("\ntest-kernels: results");
    for o in outcomes {
        let before = failures;
        let release = o.guest.release.as_deref().unwrap_or("init never ran");
        eprintln!(
            "  {} (uname -r {release}; {:?}, {:.0}s; log {})",
            o.label,
            o.accel,
            o.elapsed.as_secs_f64(),
            o.log.display()
        );
        for name in TEST_AREAS {
            match o.guest.binaries.iter().find(|b| b.name == *name) {
                Some(b) => {
                    if !b.ok() {
                        failures += 1;
                    }
                    eprintln!("    {name:<20} {}", b.describe());
                    if !b.failures.is_empty() {
                        eprintln!("    {:<20} failed: {}", "", b.failures.join(", "));
                    }
                }
                None => {
                    failures += 1;
                    eprintln!("    {name:<20} did not run");
                }
            }
        }
        if o.timed_out {
            failures += 1;
            eprintln!("    (timed out: the guest was killed)");
        } else if !o.guest.done {
            failures += 1;
            let status = o.status.map_or("?".to_owned(), |s| s.to_string());
            eprintln!("    (the guest stopped before its init finished; qemu {status})");
        }
        let unsupported = o
            .guest
            .release
            .as_deref()
            .and_then(major_minor)
            .is_some_and(|v| v < SUPPORTED_FROM);
        if unsupported && failures > before {
            eprintln!(
                "    (below the supported range, Linux {}.{}+: reported, not counted)",
                SUPPORTED_FROM.0, SUPPORTED_FROM.1
            );
            failures = before;
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_below_the_supported_range() {
        assert_eq!(major_minor("6.1.0-56-amd64"), Some((6, 1)));
        assert_eq!(major_minor("6.12.117+deb12-amd64"), Some((6, 12)));
        assert!(major_minor("5.15.0-1-amd64").unwrap() < SUPPORTED_FROM);
        assert!(major_minor("6.1.0-56-amd64").unwrap() >= SUPPORTED_FROM);
        assert!(major_minor("6.18.0").unwrap() >= SUPPORTED_FROM);
        assert_eq!(major_minor("init never ran"), None);
    }

    #[test]
    fn labels_of_given_kernels() {
        let dir = std::env::temp_dir().join(format!("xtask-kernels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("vmlinuz-6.6.1");
        std::fs::write(&image, b"").unwrap();
        assert_eq!(given_kernel(&image).unwrap().label, "6.6.1");
        assert!(given_kernel(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
