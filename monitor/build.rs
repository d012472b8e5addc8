//! Builds the kernel object (`monitor-ebpf`) with the nightly toolchain and
//! bpf-linker, and leaves it in OUT_DIR for `include_bytes_aligned!`.
//!
//! aya-build keeps its cargo target directory under OUT_DIR, which differs
//! for every profile and for clippy (its wrapper changes the build script's
//! unit), so each of them used to rebuild the object and `core` from
//! scratch: about 40 s a time, three times in `cargo xtask test`. The object
//! is always a release build for the BPF target whatever the host profile,
//! so one directory beside the host profiles serves them all, and the
//! second build is an up-to-date check.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

const OBJECT: &str = "monitor";

fn main() -> anyhow::Result<()> {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let ebpf_dir = format!("{manifest_dir}/../monitor-ebpf");
    // The kernel object also compiles the shared parser.
    println!("cargo:rerun-if-changed={manifest_dir}/../monitor-common/src");
    println!("cargo:rerun-if-changed={manifest_dir}/../monitor-common/Cargo.toml");
    if std::env::var_os("AYA_BUILD_SKIP").is_none() {
        let linker_ok = Command::new("bpf-linker")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if !linker_ok {
            bail!(
                "bpf-linker is missing or broken: run `cargo xtask setup` \
                 (it builds bpf-linker against the nightly toolchain's LLVM)"
            );
        }
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let shared = shared_dir(&out_dir);
    std::fs::create_dir_all(&shared)
        .with_context(|| format!("cannot create {}", shared.display()))?;
    // SAFETY: a build script is single-threaded here: nothing else reads the
    // environment while aya-build is pointed at the shared directory.
    unsafe { std::env::set_var("OUT_DIR", &shared) };
    let built = aya_build::build_ebpf(
        [aya_build::Package {
            name: "monitor-ebpf",
            root_dir: &ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    );
    // SAFETY: as above.
    unsafe { std::env::set_var("OUT_DIR", &out_dir) };
    built.context(
        "building the eBPF programs (monitor-ebpf) failed; `cargo xtask setup` installs what they need",
    )?;
    if std::env::var_os("AYA_BUILD_SKIP").is_none() {
        let from = shared.join(OBJECT);
        let to = out_dir.join(OBJECT);
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// `<target>/<profile>/build/monitor-<hash>/out` -> `<target>/ebpf`: the
/// same for every profile of one target directory (and one host triple).
fn shared_dir(out_dir: &Path) -> PathBuf {
    match out_dir.ancestors().nth(4) {
        Some(target) => target.join("ebpf"),
        None => out_dir.join("ebpf"),
    }
}
