//! Builds the kernel object (`monitor-ebpf`) with the nightly toolchain and
//! bpf-linker, and leaves it in OUT_DIR for `include_bytes_aligned!`.
use std::process::Command;

use anyhow::{Context as _, bail};

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
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "monitor-ebpf",
            root_dir: &ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
    .context("building the eBPF programs (monitor-ebpf) failed; `cargo xtask setup` installs what they need")
}
