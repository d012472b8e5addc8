//! The guest's whole root file system, as an uncompressed `newc` cpio the
//! kernel unpacks itself: a static busybox, the init script below, the
//! TestRun test binaries with the shared libraries `ldd` names for them
//! (and the dynamic loader), and `/dev/console`.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::proc;

/// The static busybox of Debian's `busybox-static` package.
pub const BUSYBOX: &str = "/bin/busybox";

/// Mounts what the tests touch (bpffs at /sys/fs/bpf, debugfs and tracefs
/// for good measure), brings `lo` up, runs each binary under a time limit
/// with libtest's own output on the console, framed by lines the host
/// parses (see `results`), and powers off.
fn init_script(areas: &[&str], per_binary_secs: u64) -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin RUST_BACKTRACE=1
mount -t devtmpfs dev /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t bpf bpf /sys/fs/bpf
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t tmpfs tmp /tmp
ip link set lo up
echo "{kernel}$(uname -r)"
for n in {areas}; do
    echo "{begin}$n"
    timeout {per_binary_secs} /tests/suite "$n::" --skip support:: --test-threads=1 </dev/null 2>&1
    echo "{end}$n rc=$?"
done
echo "{done}"
poweroff -f
"#,
        areas = areas.join(" "),
        kernel = super::results::KERNEL,
        begin = super::results::BEGIN,
        end = super::results::END,
        done = super::results::DONE,
    )
}

/// The test binary to run in the guest, as `/tests/<name>`, once per area.
pub struct TestBinary {
    pub name: String,
    pub path: PathBuf,
}

/// Write the initramfs running `areas` of `test` to `out` (`scratch` holds
/// the stripped copy of the binary).
pub fn build(
    test: &TestBinary,
    areas: &[&str],
    per_binary_secs: u64,
    scratch: &Path,
    out: &Path,
) -> Result<()> {
    if !Path::new(BUSYBOX).is_file() {
        bail!("{BUSYBOX} is missing: run `cargo xtask setup` (it installs busybox-static)");
    }
    let libs: BTreeSet<PathBuf> = shared_libraries(&test.path)?.into_iter().collect();

    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cpio = Cpio::new(BufWriter::new(file));
    for dir in ["bin", "dev", "proc", "sys", "tmp", "tests"] {
        cpio.dir(dir)?;
    }
    // The kernel opens /dev/console for init's stdio before init runs, so it
    // must exist in the archive (devtmpfs is mounted later).
    cpio.entry("dev/console", 0o020600, (5, 1), &[])?;
    cpio.file("bin/busybox", 0o755, &read(Path::new(BUSYBOX))?)?;
    cpio.file(
        "init",
        0o755,
        init_script(areas, per_binary_secs).as_bytes(),
    )?;
    std::fs::create_dir_all(scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let stripped = strip_debug(&test.path, &scratch.join(&test.name))?;
    cpio.file(&format!("tests/{}", test.name), 0o755, &read(&stripped)?)?;
    for lib in &libs {
        let rel = lib.strip_prefix("/").unwrap_or(lib);
        let mut parent = PathBuf::new();
        for part in rel.parent().into_iter().flat_map(Path::components) {
            parent.push(part);
            cpio.dir(&parent.to_string_lossy())?;
        }
        // `read` follows symlinks: the archive holds plain copies.
        cpio.file(&rel.to_string_lossy(), 0o755, &read(lib)?)?;
    }
    cpio.finish()
        .with_context(|| format!("writing {}", out.display()))
}

/// A copy of `binary` without its DWARF (about 85 MB of a 91 MB test
/// binary), which would otherwise not fit twice in the guest's memory
/// (the initrd and its unpacked copy). Symbols stay, so backtraces still
/// name functions.
fn strip_debug(binary: &Path, copy: &Path) -> Result<PathBuf> {
    proc::run(
        proc::command("objcopy")
            .arg("--strip-debug")
            .arg(binary)
            .arg(copy),
    )
    .with_context(|| format!("stripping {} (binutils)", binary.display()))?;
    Ok(copy.to_owned())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The absolute paths `ldd` resolves for `binary` (libraries and loader).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out =
        proc::probe(proc::command("ldd").arg(binary)).context("could not run ldd (libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let libs = parse_ldd(&text);
    if libs.is_empty() {
        bail!(
            "ldd listed no libraries for {} (static or not an ELF?): {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(libs)
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rhs)) => rhs.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A `newc` ("070701") cpio writer: directories are deduplicated, every
/// entry is owned by root with mtime 0, so the archive is reproducible.
struct Cpio<W: Write> {
    out: W,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl<W: Write> Cpio<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn dir(&mut self, name: &str) -> Result<()> {
        if self.dirs.insert(name.to_owned()) {
            self.entry(name, 0o040755, (0, 0), &[])?;
        }
        Ok(())
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(name, 0o100000 | perm, (0, 0), data)
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> Result<()> {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let size = u32::try_from(data.len()).context("file over 4 GiB in the initramfs")?;
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(110 + name.len() + 1)?;
        self.out.write_all(data)?;
        self.pad(data.len())?;
        Ok(())
    }

    fn pad(&mut self, len: usize) -> Result<()> {
        let n = (4 - len % 4) % 4;
        self.out.write_all(&[0; 3][..n])?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn cpio_entries_are_aligned_and_terminated() {
        let mut buf = Vec::new();
        let mut cpio = Cpio::new(&mut buf);
        cpio.dir("bin").unwrap();
        cpio.dir("bin").unwrap(); // deduplicated
        cpio.file("bin/x", 0o755, b"hello").unwrap();
        cpio.finish().unwrap();
        assert_eq!(buf.len() % 4, 0);
        let text = String::from_utf8_lossy(&buf);
        assert_eq!(text.matches("070701").count(), 3);
        assert!(text.starts_with("070701"));
        // bin: 110-byte header + "bin\0" = 114, padded to 116.
        assert_eq!(&buf[116..122], b"070701");
        assert!(text.contains("bin/x\0"));
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!\0"));
    }

    #[test]
    fn init_frames_every_area() {
        let s = init_script(&["testrun", "testrun_tls"], 120);
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        assert!(s.contains("for n in testrun testrun_tls; do"));
        assert!(s.contains("timeout 120 /tests/suite \"$n::\" --skip support:: --test-threads=1"));
        assert!(s.contains("echo \"HSM-END $n rc=$?\""));
        assert!(s.contains("mount -t bpf bpf /sys/fs/bpf"));
        assert!(s.trim_end().ends_with("poweroff -f"));
    }
}
