//! Developer and user workflows for handshake-monitor: `cargo xtask <cmd>`.
//!
//! Each subcommand lives in its own module; `proc` is how every child
//! process is spawned, `env` answers questions about the machine.

mod bench;
mod build;
mod demo;
mod env;
mod flaky;
mod fuzz;
mod kernels;
mod lab;
mod lint;
mod package;
mod proc;
mod run;
mod setup;
mod soak;
mod steps;
mod suite;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "handshake-monitor workflows"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Check the toolchain pieces and Debian packages; install what is missing.
    Setup,
    /// Setup, then build the daemon (and its eBPF object).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Setup, build in release mode, then run handshake-monitor (as root).
    Run {
        /// Arguments for handshake-monitor (default: `run`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The whole CI suite: setup, fmt, clippy (host and eBPF), tests, a
    /// bounded fuzz run, the demo.
    Test {
        /// Extra args for the test harness, e.g. `--test-threads=1`; put
        /// cargo's own args before a `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The benchmarks (root): per-packet cost of the XDP and TC programs
    /// (TestRun), live-frames throughput, an AF_PACKET tap, the daemon side;
    /// `--json PATH` also writes the results as JSON.
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A one-minute tour: a namespace lab, the daemon, real HTTP and TLS
    /// clients and a short flood, and what the daemon saw (root).
    Demo,
    /// The flake hunt: the integration suite N times, every test that
    /// ever failed reported with its failure (`flaky N -- FILTER...`).
    Flaky {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A bounded long run (default 10 min) of real traffic with floods on
    /// and off: flat memory, nothing lost, nothing left behind (root).
    Soak {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A bounded cargo-fuzz run of the parsers and the TLS reassembly
    /// (monitor-common/fuzz), installing cargo-fuzz if missing.
    Fuzz {
        /// Seconds of fuzzing per target.
        #[arg(long, default_value_t = fuzz::DEFAULT_SECONDS, value_parser = fuzz::parse_seconds)]
        seconds: u64,
        /// Targets to run (default: all of them).
        targets: Vec<String>,
    },
    /// The TestRun test binaries on other kernels, each booted under qemu
    /// with the binaries in an initramfs: the current Debian 6.1 and 6.12
    /// kernels (downloaded once into target/kernels) and any --kernel PATH.
    /// Long: not part of `test`.
    TestKernels {
        /// A kernel image (vmlinuz/bzImage with BTF) to boot as well;
        /// repeatable.
        #[arg(long = "kernel", value_name = "PATH")]
        kernels: Vec<std::path::PathBuf>,
        /// Boot only the --kernel images, not the Debian packages.
        #[arg(long)]
        no_debian: bool,
        /// Time limit per kernel, in seconds (boot, all binaries, power-off).
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        timeout: u64,
    },
    /// fmt check, host clippy and eBPF clippy.
    Lint,
    /// Format the whole workspace.
    Fmt,
    /// Build a Debian package (.deb) with dpkg-deb: the release binary, the
    /// systemd unit, the default config (a conffile), docs, rules and
    /// dashboard.
    Package {
        /// Directory the .deb is written to (default: target/debian).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// Package this already built binary instead of building a release.
        #[arg(long, value_name = "PATH")]
        binary: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::Setup => setup::run(),
        Cmd::Build { release } => build::run(*release),
        Cmd::Run { args } => run::run(args),
        Cmd::Test { args } => test::run(args),
        Cmd::Bench { args } => bench::run(args),
        Cmd::Demo => demo::run(),
        Cmd::Flaky { args } => flaky::run(args),
        Cmd::Soak { args } => soak::run(args),
        Cmd::Fuzz { seconds, targets } => fuzz::run(*seconds, targets),
        Cmd::TestKernels {
            kernels,
            no_debian,
            timeout,
        } => kernels::run(&kernels::Options {
            kernels,
            no_debian: *no_debian,
            timeout: std::time::Duration::from_secs(*timeout),
        }),
        Cmd::Lint => lint::run(),
        Cmd::Fmt => lint::fmt(),
        Cmd::Package { out, binary } => package::run(out.as_deref(), binary.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cmd {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .unwrap()
            .cmd
    }

    fn run_args(args: &[&str]) -> Vec<String> {
        match parse(args) {
            Cmd::Run { args } => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn run_takes_daemon_flags_with_or_without_separator() {
        assert_eq!(run_args(&["run", "--iface", "eth0"]), ["--iface", "eth0"]);
        assert_eq!(
            run_args(&["run", "--", "--iface", "eth0"]),
            ["--iface", "eth0"]
        );
        assert_eq!(
            run_args(&["run", "run", "--iface", "eth0"]),
            ["run", "--iface", "eth0"]
        );
        assert!(run_args(&["run"]).is_empty());
    }

    #[test]
    fn test_passes_harness_args() {
        match parse(&["test", "--", "--test-threads=1"]) {
            Cmd::Test { args } => assert_eq!(args, ["--test-threads=1"]),
            other => panic!("parsed as {other:?}"),
        }
        match parse(&["test", "--test-threads=1"]) {
            Cmd::Test { args } => assert_eq!(args, ["--test-threads=1"]),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn fuzz_seconds_and_targets() {
        match parse(&["fuzz"]) {
            Cmd::Fuzz { seconds, targets } => {
                assert_eq!(seconds, fuzz::DEFAULT_SECONDS);
                assert!(targets.is_empty());
            }
            other => panic!("parsed as {other:?}"),
        }
        match parse(&["fuzz", "--seconds", "5", "parse_tcp"]) {
            Cmd::Fuzz { seconds, targets } => {
                assert_eq!((seconds, targets), (5, vec!["parse_tcp".to_owned()]))
            }
            other => panic!("parsed as {other:?}"),
        }
        let zero = Cli::try_parse_from(["xtask", "fuzz", "--seconds", "0"]);
        assert!(zero.is_err());
    }

    #[test]
    fn test_kernels_takes_repeated_kernel_paths() {
        match parse(&[
            "test-kernels",
            "--kernel",
            "/a",
            "--kernel",
            "/b",
            "--timeout",
            "60",
        ]) {
            Cmd::TestKernels {
                kernels,
                no_debian,
                timeout,
            } => {
                assert_eq!(kernels, [std::path::PathBuf::from("/a"), "/b".into()]);
                assert!(!no_debian);
                assert_eq!(timeout, 60);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn build_release_flag() {
        assert!(matches!(
            parse(&["build", "--release"]),
            Cmd::Build { release: true }
        ));
        assert!(matches!(parse(&["build"]), Cmd::Build { release: false }));
    }
}
