//! bpf-linker, built against the nightly toolchain's own libLLVM.
//!
//! bpf-linker must speak the same LLVM bitcode as the rustc that emits it
//! (the nightly), so instead of a system LLVM it links the libLLVM shipped in
//! the nightly sysroot. It does so through an `LLVM_PREFIX` directory that
//! holds symlinks to that library; the binary keeps an rpath into it, so the
//! directory must outlive the install: it lives under `$CARGO_HOME`, not /tmp.
//! When the nightly is replaced the links dangle, bpf-linker stops running,
//! and `ensure` notices and reinstalls it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::report;
use crate::{env, proc};

const WHAT: &str = "bpf-linker 0.13.0";
const VERSION: &str = "0.13.0";

/// What `bpf-linker --version` told us.
#[derive(Debug, PartialEq)]
enum Probe {
    Missing,
    /// Present but does not run, e.g. its libLLVM vanished with an old nightly.
    Broken(String),
    Version(String),
}

pub fn ensure() -> Result<()> {
    let reason = match probe() {
        Probe::Version(v) if v == VERSION => {
            report(WHAT, "ok");
            return Ok(());
        }
        Probe::Version(v) => format!("reinstalling (found {v})"),
        Probe::Broken(why) => format!("reinstalling (installed one fails to run: {why})"),
        Probe::Missing => "installing (not found; takes 1-2 minutes)".to_owned(),
    };
    report(WHAT, &reason);
    install().context(
        "could not install bpf-linker 0.13.0 (needed to link the eBPF programs); \
         see the cargo output above",
    )?;
    match probe() {
        Probe::Version(v) if v == VERSION => {
            report(WHAT, "installed");
            Ok(())
        }
        other => bail!(
            "bpf-linker was installed into {} but `bpf-linker --version` gives {other:?}",
            env::cargo_home().join("bin").display()
        ),
    }
}

fn probe() -> Probe {
    match proc::probe(proc::command("bpf-linker").arg("--version")) {
        Err(e) if e.kind() == ErrorKind::NotFound => Probe::Missing,
        Err(e) => Probe::Broken(e.to_string()),
        Ok(out) if !out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Probe::Broken(
                stderr
                    .lines()
                    .next()
                    .unwrap_or("no output")
                    .trim()
                    .to_owned(),
            )
        }
        Ok(out) => match parse_version(&String::from_utf8_lossy(&out.stdout)) {
            Some(v) => Probe::Version(v.to_owned()),
            None => Probe::Broken("unrecognised `--version` output".to_owned()),
        },
    }
}

fn install() -> Result<()> {
    let llvm = nightly_libllvm()?;
    let file_name = llvm
        .file_name()
        .and_then(|n| n.to_str())
        .context("libLLVM path has no UTF-8 file name")?;
    let major = parse_llvm_major(file_name)
        .with_context(|| format!("cannot read the LLVM major version from `{file_name}`"))?;
    let prefix = env::cargo_home()
        .join("handshake-monitor")
        .join("llvm-prefix");
    link_prefix(&prefix.join("lib"), &llvm, file_name)?;

    let features = format!("llvm-{major}");
    let install = |locked: bool| {
        let mut cmd = proc::command("cargo");
        cmd.env("LLVM_PREFIX", &prefix)
            // Away from the workspace so its .cargo/config.toml cannot
            // change how a foreign crate is built.
            .current_dir(env::cargo_home())
            .args(["install", "bpf-linker", "--version", VERSION, "--force"])
            .args(["--no-default-features", "--features", &features]);
        if locked {
            cmd.arg("--locked");
        }
        proc::run(&mut cmd)
    };
    // --locked reproduces the published dependency set; if that lock no
    // longer resolves with this cargo, let cargo pick versions instead.
    install(true).or_else(|e| {
        eprintln!("setup: `cargo install --locked` failed ({e:#}); retrying without --locked");
        install(false)
    })
}

/// `<nightly sysroot>/lib/libLLVM.so.<ver>-rust-<rustver>-nightly`.
fn nightly_libllvm() -> Result<PathBuf> {
    let sysroot = proc::probe_stdout(
        proc::command("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]),
    )
    .context("`rustup run nightly rustc --print sysroot` failed")?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let mut found: Vec<PathBuf> = fs::read_dir(&lib)
        .with_context(|| format!("cannot list {}", lib.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no libLLVM.so.* in {}: this nightly does not ship a shared LLVM, \
             so bpf-linker cannot be built against it",
            lib.display()
        )
    })
}

/// Fill `lib` with the links bpf-linker needs: `libLLVM.so` is what the
/// linker looks for at build time (`-lLLVM`); the versioned name is the
/// library's SONAME, which is what the dynamic loader looks for in the
/// rpath when bpf-linker runs. Links from older nightlies are removed.
fn link_prefix(lib: &Path, llvm: &Path, soname: &str) -> Result<()> {
    fs::create_dir_all(lib).with_context(|| format!("cannot create {}", lib.display()))?;
    for entry in fs::read_dir(lib)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("libLLVM.so.") && name != soname {
            fs::remove_file(entry.path())?;
        }
    }
    for name in ["libLLVM.so", soname] {
        let link = lib.join(name);
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link).with_context(|| format!("cannot replace {}", link.display()))?;
        }
        std::os::unix::fs::symlink(llvm, &link)
            .with_context(|| format!("cannot link {} -> {}", link.display(), llvm.display()))?;
    }
    Ok(())
}

/// `libLLVM.so.22.1-rust-1.97.0-nightly` -> 22.
fn parse_llvm_major(file_name: &str) -> Option<u32> {
    let version = file_name.strip_prefix("libLLVM.so.")?;
    let end = version
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(version.len());
    version[..end].parse().ok()
}

/// `bpf-linker 0.13.0` -> `0.13.0`.
fn parse_version(stdout: &str) -> Option<&str> {
    let mut words = stdout.lines().next()?.split_whitespace();
    (words.next()? == "bpf-linker").then_some(())?;
    words.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_file_name() {
        assert_eq!(
            parse_llvm_major("libLLVM.so.22.1-rust-1.97.0-nightly"),
            Some(22)
        );
        assert_eq!(
            parse_llvm_major("libLLVM.so.21.1-rust-1.91.0-nightly"),
            Some(21)
        );
        assert_eq!(parse_llvm_major("libLLVM.so.23"), Some(23));
        assert_eq!(parse_llvm_major("libLLVM-22-rust-1.97.0-nightly.so"), None);
        assert_eq!(parse_llvm_major("libLLVM.so."), None);
    }

    #[test]
    fn version_from_output() {
        assert_eq!(parse_version("bpf-linker 0.13.0\n"), Some("0.13.0"));
        assert_eq!(parse_version("bpf-linker 0.9.15"), Some("0.9.15"));
        assert_eq!(parse_version("something-else 0.13.0\n"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn prefix_links_replace_stale_ones() {
        let dir = std::env::temp_dir().join(format!("xtask-prefix-test-{}", std::process::id()));
        let lib = dir.join("lib");
        let target = dir.join("libLLVM.so.22.1-rust-1.98.0-nightly");
        fs::create_dir_all(&lib).unwrap();
        fs::write(&target, b"").unwrap();
        std::os::unix::fs::symlink("/gone", lib.join("libLLVM.so.22.1-rust-1.97.0-nightly"))
            .unwrap();
        std::os::unix::fs::symlink("/gone", lib.join("libLLVM.so")).unwrap();

        link_prefix(&lib, &target, "libLLVM.so.22.1-rust-1.98.0-nightly").unwrap();

        let mut names: Vec<String> = fs::read_dir(&lib)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["libLLVM.so", "libLLVM.so.22.1-rust-1.98.0-nightly"]);
        for n in &names {
            assert_eq!(fs::read_link(lib.join(n)).unwrap(), target);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
