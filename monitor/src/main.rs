use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use monitor::{
    cli::{Cli, Command, RunArgs},
    config,
};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    match cli.command {
        Command::Run(mut args) => {
            args.absorb_flags();
            args.argv = std::env::args().collect();
            if let Some(path) = &args.config {
                match config::load(path) {
                    Ok(file) => file.apply(&mut args, matches.subcommand_matches("run")),
                    Err(err) => return fail(&anyhow::Error::new(err)),
                }
            }
            run(*args)
        }
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(loaded) => {
                let mut args = RunArgs::defaults();
                loaded.apply(&mut args, None);
                print!("{}", config::render(&args));
                ExitCode::SUCCESS
            }
            Err(err) => fail(&anyhow::Error::new(err)),
        },
        Command::Detach {
            pin_dir,
            control_socket,
        } => match monitor::loader::pins::detach(&pin_dir, &control_socket) {
            Ok(removed) if removed.is_empty() => {
                println!("nothing pinned under {}", pin_dir.display());
                ExitCode::SUCCESS
            }
            Ok(removed) => {
                for path in removed {
                    println!("removed {path}");
                }
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        },
        Command::Status {
            json,
            control_socket,
        } => match monitor::mitigation::client::status(&control_socket, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err),
        },
        Command::Top {
            iterations,
            control_socket,
        } => match monitor::mitigation::client::top(&control_socket, iterations) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err),
        },
        Command::Watch(args) => {
            match monitor::watch::client::run(&args.request, &args.control_socket) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&err),
            }
        }
        Command::Replay(args) => replay(*args),
        Command::Block {
            action,
            control_socket,
        } => match monitor::mitigation::client::run(&action, &control_socket) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err),
        },
    }
}

fn run(args: RunArgs) -> ExitCode {
    monitor::cli::init_logging(&args.log_level);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(monitor::daemon::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Exit status: 0 when every file was replayed to its end, 2 when some
/// could not be read to its end (what could be read was replayed), 128 +
/// the signal's number when SIGINT (130) or SIGTERM (143) stopped it, 1 on
/// any other error.
fn replay(args: monitor::replay::args::ReplayArgs) -> ExitCode {
    use monitor::replay::Ending;
    monitor::cli::init_logging(&args.log_level);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(monitor::replay::run(args)) {
        Ok(Ending::Complete) => ExitCode::SUCCESS,
        Ok(Ending::FileErrors) => ExitCode::from(2),
        Ok(Ending::Interrupted(signal)) => ExitCode::from(128 + signal as u8),
        Err(err) => fail(&err),
    }
}

/// The single-threaded runtime both long-running commands use; None (said
/// on stderr) if it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(err) => {
            eprintln!("handshake-monitor: cannot start the async runtime: {err}");
            None
        }
    }
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("handshake-monitor: error: {err:#}");
    ExitCode::FAILURE
}
