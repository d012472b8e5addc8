//! The benchmark runner behind `cargo xtask bench` (needs root).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "What handshake-monitor costs, each figure against a baseline taken alongside")]
struct Args {
    /// Rounds per figure; the median is reported (the flood section runs
    /// at most 2).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also write the results as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<std::path::PathBuf>,
    /// Run only these sections (comma-separated): xdp, tc, live, daemon,
    /// flood.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(monitor::bench::SECTIONS))]
    only: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let figures = match monitor::bench::run(args.rounds.max(1), &args.only) {
        Ok(f) => f,
        Err(err) => {
            eprintln!("handshake-monitor-bench: error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", monitor::bench::table(&figures));
    if let Some(path) = args.json {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_default();
        let json = monitor::bench::json(&figures, kernel.trim(), &cpu);
        if let Err(err) = std::fs::write(&path, json) {
            eprintln!(
                "handshake-monitor-bench: cannot write {}: {err}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
