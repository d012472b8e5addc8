//! `cargo xtask package [--out DIR] [--binary PATH]`: a Debian package of
//! the daemon, built with `dpkg-deb` from a staging directory (nothing to
//! install beyond dpkg).
//!
//! Layout: `/usr/bin/handshake-monitor`, the systemd unit in
//! `/lib/systemd/system`, `/etc/handshake-monitor/config.toml` (a conffile),
//! the docs in `/usr/share/doc/handshake-monitor`, and the Prometheus rules,
//! Grafana dashboard and Kubernetes manifests in `/usr/share/handshake-monitor`.
//! The maintainer scripts never start the service: `postinst` and `postrm`
//! only run `systemctl daemon-reload` when systemd is running, `prerm` stops
//! the service when the package is removed.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::{build, env, proc, setup};

pub const PACKAGE: &str = "handshake-monitor";
/// The workspace's version (xtask shares `version.workspace` with the
/// daemon).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAINTAINER: &str = "handshake-monitor maintainers <handshake-monitor@localhost>";

/// `cargo xtask package`: builds the release binary unless `binary` is
/// given, then the package in `out` (default `target/debian`).
pub fn run(out: Option<&Path>, binary: Option<&Path>) -> Result<()> {
    let binary = match binary {
        Some(path) => path.to_path_buf(),
        None => {
            setup::run()?;
            build::build_monitor(true)?;
            env::target_dir().join("release").join(PACKAGE)
        }
    };
    let out = out.map_or_else(|| env::target_dir().join("debian"), Path::to_path_buf);
    let deb = build_deb(env::workspace_root(), &binary, &out)?;
    println!("{}", deb.display());
    Ok(())
}

/// Stages the package's files from the repository at `root` and `binary`,
/// and builds `OUT/handshake-monitor_VERSION_ARCH.deb`; returns its path.
pub fn build_deb(root: &Path, binary: &Path, out: &Path) -> Result<PathBuf> {
    if !binary.is_file() {
        bail!(
            "{} is not a file: build the daemon first (cargo xtask build --release) or give \
             --binary PATH",
            binary.display()
        );
    }
    let arch = architecture()?;
    let name = format!("{PACKAGE}_{VERSION}_{arch}");
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stage = out.join(format!("{name}.staging"));
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    let staged = stage_files(root, binary, &stage, &arch);
    let deb = out.join(format!("{name}.deb"));
    let built = staged.and_then(|()| {
        proc::run(
            proc::command("dpkg-deb")
                .args(["--root-owner-group", "-Zxz", "--build"])
                .arg(&stage)
                .arg(&deb),
        )
    });
    let _ = fs::remove_dir_all(&stage);
    built?;
    Ok(deb)
}

/// `(source relative to the repository, destination in the package, mode)`
/// of every file but the binary and the generated ones.
fn file_list(root: &Path) -> Result<Vec<(PathBuf, String, u32)>> {
    let doc = format!("usr/share/doc/{PACKAGE}");
    let share = format!("usr/share/{PACKAGE}");
    let mut files = vec![
        (
            "deploy/systemd/handshake-monitor.service".into(),
            "lib/systemd/system/handshake-monitor.service".to_string(),
            0o644,
        ),
        (
            "deploy/config.toml".into(),
            "etc/handshake-monitor/config.toml".to_string(),
            0o644,
        ),
        ("README.md".into(), format!("{doc}/README.md"), 0o644),
        ("deploy/README.md".into(), format!("{doc}/deploy.md"), 0o644),
        (
            "deploy/config.example.toml".into(),
            format!("{doc}/config.example.toml"),
            0o644,
        ),
    ];
    for md in sorted_files(&root.join("docs"), "md")? {
        files.push((
            Path::new("docs").join(&md),
            format!("{doc}/{}", md.display()),
            0o644,
        ));
    }
    for (dir, ext) in [
        ("prometheus", "yml"),
        ("grafana", "json"),
        ("kubernetes", "yaml"),
    ] {
        for file in sorted_files(&root.join("deploy").join(dir), ext)? {
            files.push((
                Path::new("deploy").join(dir).join(&file),
                format!("{share}/{dir}/{}", file.display()),
                0o644,
            ));
        }
    }
    Ok(files)
}

/// The names of the files ending in `.ext` in `dir` (none if it does not
/// exist), sorted.
fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == ext) {
            names.push(PathBuf::from(path.file_name().expect("a file name")));
        }
    }
    names.sort();
    Ok(names)
}

fn stage_files(root: &Path, binary: &Path, stage: &Path, arch: &str) -> Result<()> {
    install(binary, &stage.join("usr/bin").join(PACKAGE), 0o755)?;
    for (source, dest, mode) in file_list(root)? {
        install(&root.join(source), &stage.join(dest), mode)?;
    }
    let doc = stage.join(format!("usr/share/doc/{PACKAGE}"));
    write(&doc.join("copyright"), &copyright(), 0o644)?;
    let debian = stage.join("DEBIAN");
    write(
        &debian.join("conffiles"),
        "/etc/handshake-monitor/config.toml\n",
        0o644,
    )?;
    write(&debian.join("postinst"), POSTINST, 0o755)?;
    write(&debian.join("prerm"), PRERM, 0o755)?;
    write(&debian.join("postrm"), POSTRM, 0o755)?;
    let size_kib = tree_size(stage)?.div_ceil(1024);
    write(&debian.join("control"), &control(arch, size_kib), 0o644)?;
    // dpkg-deb wants 0755 directories (a umask of 077 would make it refuse).
    set_dir_modes(stage)
}

fn install(source: &Path, dest: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::copy(source, dest)
        .with_context(|| format!("copying {} to {}", source.display(), dest.display()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", dest.display()))
}

fn write(dest: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(dest, text).with_context(|| format!("writing {}", dest.display()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", dest.display()))
}

fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            tree_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn set_dir_modes(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            set_dir_modes(&entry.path())?;
        }
    }
    Ok(())
}

/// `dpkg --print-architecture`: the package is for the machine it is built
/// on.
fn architecture() -> Result<String> {
    let out = proc::probe(proc::command("dpkg").arg("--print-architecture"))
        .context("running dpkg --print-architecture (is this a Debian system?)")?;
    let arch = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || arch.is_empty() {
        bail!(
            "dpkg --print-architecture failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(arch)
}

fn control(arch: &str, installed_size_kib: u64) -> String {
    format!(
        "Package: {PACKAGE}\n\
         Version: {VERSION}\n\
         Architecture: {arch}\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {installed_size_kib}\n\
         Depends: libc6\n\
         Section: net\n\
         Priority: optional\n\
         Description: TCP and TLS handshake monitor (eBPF, XDP and TC)\n \
         handshake-monitor watches every TCP and TLS handshake on a host's\n \
         interfaces from XDP and TC programs and BTF tracepoints, exports\n \
         Prometheus metrics (results, latencies, half-open handshakes, TLS\n \
         versions and post-quantum key shares), detects SYN floods and port\n \
         scans, and can drop SYN floods in XDP.\n \
         .\n \
         The package installs a systemd unit; it does not start it. Edit\n \
         /etc/handshake-monitor/config.toml, then\n \
         systemctl enable --now handshake-monitor.\n"
    )
}

fn copyright() -> String {
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: {PACKAGE}\n\
         \n\
         Files: *\n\
         Copyright: the {PACKAGE} authors\n\
         License: MIT or Apache-2.0\n \
         This package is dual-licensed under the MIT license and the Apache\n \
         License, Version 2.0, at your option. On Debian systems the Apache\n \
         License is in /usr/share/common-licenses/Apache-2.0.\n"
    )
}

/// Never starts the service: a monitor that can drop traffic starts when
/// an operator says so.
const POSTINST: &str = "#!/bin/sh
set -e
if [ \"$1\" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
";

/// Stops a running service before its binary is removed (not on upgrade:
/// the running daemon keeps its old binary until the operator restarts it).
const PRERM: &str = "#!/bin/sh
set -e
if [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop handshake-monitor.service >/dev/null 2>&1 || true
fi
exit 0
";

/// Makes systemd forget the removed unit.
const POSTRM: &str = "#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
";

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn dpkg_deb(args: &[&str], deb: &Path) -> String {
        let out = Command::new("dpkg-deb")
            .args(args)
            .arg(deb)
            .output()
            .expect("running dpkg-deb");
        assert!(
            out.status.success(),
            "dpkg-deb {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Builds the package from this repository with a stand-in binary (the
    /// daemon's own build is the monitor crate's business; the layout does
    /// not depend on what the binary is), then reads it back with dpkg-deb.
    #[test]
    fn the_package_has_the_layout_control_fields_and_scripts() {
        let scratch =
            Scratch(std::env::temp_dir().join(format!("hm-package-test-{}", std::process::id())));
        let binary = scratch.0.join("handshake-monitor");
        fs::create_dir_all(&scratch.0).unwrap();
        fs::write(&binary, b"#!/bin/sh\necho stand-in\n").unwrap();
        let out = scratch.0.join("out");
        let deb = build_deb(env::workspace_root(), &binary, &out).expect("building the package");
        let arch = architecture().unwrap();
        assert_eq!(
            deb.file_name().unwrap().to_str().unwrap(),
            format!("handshake-monitor_{VERSION}_{arch}.deb")
        );
        assert!(
            !out.join(format!("handshake-monitor_{VERSION}_{arch}.staging"))
                .exists(),
            "the staging directory is removed"
        );

        // Contents: path -> mode and owner.
        let listing = dpkg_deb(&["-c"], &deb);
        let entry = |path: &str| {
            listing
                .lines()
                .find(|l| l.ends_with(&format!(" ./{path}")))
                .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"))
        };
        for (path, mode) in [
            ("usr/bin/handshake-monitor", "-rwxr-xr-x"),
            ("lib/systemd/system/handshake-monitor.service", "-rw-r--r--"),
            ("etc/handshake-monitor/config.toml", "-rw-r--r--"),
            ("usr/share/doc/handshake-monitor/README.md", "-rw-r--r--"),
            ("usr/share/doc/handshake-monitor/deploy.md", "-rw-r--r--"),
            ("usr/share/doc/handshake-monitor/copyright", "-rw-r--r--"),
            ("usr/share/doc/handshake-monitor/metrics.md", "-rw-r--r--"),
            ("usr/share/doc/handshake-monitor/config.md", "-rw-r--r--"),
            (
                "usr/share/doc/handshake-monitor/mitigation.md",
                "-rw-r--r--",
            ),
            (
                "usr/share/handshake-monitor/prometheus/handshake-monitor.rules.yml",
                "-rw-r--r--",
            ),
            (
                "usr/share/handshake-monitor/prometheus/tests.yml",
                "-rw-r--r--",
            ),
            (
                "usr/share/handshake-monitor/grafana/handshake-monitor.json",
                "-rw-r--r--",
            ),
        ] {
            let line = entry(path);
            assert!(line.starts_with(mode), "{path}: {line}");
            assert!(line.contains(" root/root "), "{path} owned by root: {line}");
        }
        // Every docs/*.md is shipped.
        for md in sorted_files(&env::workspace_root().join("docs"), "md").unwrap() {
            entry(&format!("usr/share/doc/handshake-monitor/{}", md.display()));
        }
        // Shipped files are the repository's, byte for byte.
        let extract = scratch.0.join("x");
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&extract)
            .status()
            .unwrap();
        assert!(status.success());
        for (source, dest, _) in file_list(env::workspace_root()).unwrap() {
            assert_eq!(
                fs::read(env::workspace_root().join(&source)).unwrap(),
                fs::read(extract.join(&dest)).unwrap(),
                "{dest} differs from {}",
                source.display()
            );
        }

        // Control fields.
        let field = |name: &str| {
            dpkg_deb(&["-f"], &deb)
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
        };
        assert_eq!(field("Package").as_deref(), Some("handshake-monitor"));
        assert_eq!(field("Version").as_deref(), Some(VERSION));
        assert_eq!(field("Architecture").as_deref(), Some(arch.as_str()));
        assert_eq!(field("Depends").as_deref(), Some("libc6"));
        assert!(field("Maintainer").is_some_and(|m| m.contains('<') && m.ends_with('>')));
        assert!(field("Description").is_some_and(|d| d.contains("handshake")));
        assert!(field("Installed-Size").is_some_and(|s| s.parse::<u64>().is_ok()));

        // Control archive: conffiles and the maintainer scripts.
        let ctrl = scratch.0.join("ctrl.tar");
        let tar = Command::new("dpkg-deb")
            .arg("--ctrl-tarfile")
            .arg(&deb)
            .output()
            .unwrap();
        assert!(tar.status.success());
        fs::write(&ctrl, &tar.stdout).unwrap();
        let members = Command::new("tar").arg("-tvf").arg(&ctrl).output().unwrap();
        let members = String::from_utf8_lossy(&members.stdout).into_owned();
        for (name, mode) in [
            ("./conffiles", "-rw-r--r--"),
            ("./control", "-rw-r--r--"),
            ("./postinst", "-rwxr-xr-x"),
            ("./prerm", "-rwxr-xr-x"),
            ("./postrm", "-rwxr-xr-x"),
        ] {
            let line = members
                .lines()
                .find(|l| l.ends_with(&format!(" {name}")))
                .unwrap_or_else(|| panic!("{name} not in the control archive:\n{members}"));
            assert!(line.starts_with(mode), "{name}: {line}");
        }
        let member = |name: &str| {
            let out = Command::new("tar")
                .arg("-xOf")
                .arg(&ctrl)
                .arg(name)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(
            member("./conffiles"),
            "/etc/handshake-monitor/config.toml\n"
        );
        for script in ["./postinst", "./prerm", "./postrm"] {
            let text = member(script);
            assert!(text.starts_with("#!/bin/sh\nset -e\n"), "{script}:\n{text}");
            assert!(
                text.contains("[ -d /run/systemd/system ]"),
                "{script} acts only when systemd runs:\n{text}"
            );
            for never in ["start", "enable", "restart"] {
                assert!(
                    !text.split_whitespace().any(|w| w == never),
                    "{script} must never {never} the service:\n{text}"
                );
            }
            let copy = scratch.0.join(script.trim_start_matches("./"));
            fs::write(&copy, &text).unwrap();
            let syntax = Command::new("sh").arg("-n").arg(&copy).status().unwrap();
            assert!(syntax.success(), "{script} is not valid sh:\n{text}");
        }
        assert!(member("./postinst").contains("systemctl daemon-reload"));
        assert!(member("./postrm").contains("systemctl daemon-reload"));
    }
}
