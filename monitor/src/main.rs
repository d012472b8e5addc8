use std::process::ExitCode;

use clap::Parser as _;
use monitor::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            monitor::cli::init_logging(&args.log_level);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("handshake-monitor: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(monitor::daemon::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("handshake-monitor: error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
