//! Debian kernel images to boot: the newest package behind each meta-package
//! in [`META_PACKAGES`], fetched with `apt-get download` (no install, no
//! root) into a cache under target/ and reused by later runs. Only the
//! `vmlinuz` is unpacked: everything the tests need is built in.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::Kernel;
use crate::proc;

/// Meta-packages whose current kernel is booted by default. bookworm's own
/// 6.1 LTS, and 6.12 (the trixie kernel, which bookworm carries in
/// bookworm-security; elsewhere it needs bookworm-backports). A meta-package
/// apt does not know is skipped with a warning.
pub const META_PACKAGES: &[&str] = &["linux-image-amd64", "linux-image-6.12-amd64"];

/// The kernels of [`META_PACKAGES`] that apt can provide, downloaded into
/// `cache` when not already there.
pub fn kernels(cache: &Path) -> Result<Vec<Kernel>> {
    let mut out = Vec::new();
    for meta in META_PACKAGES {
        let Some(pkg) = resolve(meta) else {
            eprintln!(
                "test-kernels: warning: apt has no candidate for `{meta}`; skipping it \
                 (add its apt source, or pass the image with --kernel PATH)"
            );
            continue;
        };
        out.push(fetch(cache, &pkg)?);
    }
    Ok(out)
}

/// The image package a meta-package depends on right now, e.g.
/// `linux-image-amd64` -> `linux-image-6.1.0-56-amd64`.
fn resolve(meta: &str) -> Option<String> {
    let out =
        proc::probe_stdout(proc::command("apt-cache").args(["show", "--no-all-versions", meta]))?;
    parse_depends(&out)
}

fn parse_depends(show: &str) -> Option<String> {
    let deps = show.lines().find_map(|l| l.strip_prefix("Depends:"))?;
    deps.split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or_default())
        .find(|d| d.starts_with("linux-image-"))
        .map(str::to_owned)
}

/// `cache/boot/vmlinuz-<release>` for `pkg`, downloading and unpacking the
/// package unless a previous run already did.
fn fetch(cache: &Path, pkg: &str) -> Result<Kernel> {
    let release = pkg
        .strip_prefix("linux-image-")
        .with_context(|| format!("`{pkg}` is not a linux-image package"))?;
    let image = cache.join("boot").join(format!("vmlinuz-{release}"));
    let kernel = Kernel {
        label: release.to_owned(),
        image: image.clone(),
    };
    if image.is_file() {
        eprintln!("test-kernels: {pkg}: cached at {}", image.display());
        return Ok(kernel);
    }
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    let deb = match find_deb(&debs, pkg)? {
        Some(deb) => deb,
        None => {
            // -o APT::Sandbox::User=root: as root, apt would otherwise try
            // (and warn about) dropping to _apt, which cannot write here.
            let mut cmd = proc::command("apt-get");
            cmd.current_dir(&debs);
            if crate::env::is_root() {
                cmd.args(["-o", "APT::Sandbox::User=root"]);
            }
            cmd.args(["download", pkg]);
            proc::run(&mut cmd).with_context(|| format!("downloading {pkg}"))?;
            find_deb(&debs, pkg)?.with_context(|| {
                format!("apt-get download left no {pkg}_*.deb in {}", debs.display())
            })?
        }
    };
    let script = format!(
        "dpkg-deb --fsys-tarfile {} | tar -x -C {} --wildcards './boot/vmlinuz-*'",
        proc::quote(deb.as_os_str()),
        proc::quote(cache.as_os_str()),
    );
    proc::run(proc::command("sh").args(["-c", &script]))
        .with_context(|| format!("unpacking the kernel image from {}", deb.display()))?;
    if !image.is_file() {
        bail!("{} holds no boot/vmlinuz-{release}", deb.display());
    }
    Ok(kernel)
}

fn find_deb(dir: &Path, pkg: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{pkg}_");
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_package_depends() {
        let show = "Package: linux-image-amd64\nVersion: 6.1.192-2\n\
                    Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\nDescription: x\n";
        assert_eq!(
            parse_depends(show).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        let twelve = "Depends: linux-image-6.12.117+deb12-amd64 (= 6.12.117-1~deb12u1)\n";
        assert_eq!(
            parse_depends(twelve).as_deref(),
            Some("linux-image-6.12.117+deb12-amd64")
        );
        assert_eq!(parse_depends("Package: x\n"), None);
        assert_eq!(parse_depends("Depends: libc6 (>= 2)\n"), None);
    }
}
