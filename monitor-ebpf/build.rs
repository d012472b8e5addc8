//! Rebuild the kernel object when the linker changes (a new bpf-linker can
//! emit different BTF), and declare the `bpf_target_arch` cfg.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    println!("cargo::rustc-check-cfg=cfg(bpf_target_arch, values(\"x86_64\", \"aarch64\"))");
}
